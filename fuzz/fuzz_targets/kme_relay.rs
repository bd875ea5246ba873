//! `kme_relay`: `POST /kme/v1/relay` of the KME in-process (`qshield_fuzz::kme`): relay
//! hops from any caller naming any master, slave and route (mostly the configured ones),
//! pad ranges (fitted to the masked keys' length on a block `kme-a` pushed, or anywhere:
//! any block, offset, length, direction), masked keys and IDs (new, or ones the KME
//! already holds), or raw bodies; mixed with link pushes that fill the pool, `dec_keys`
//! by the slave, and status reads. Checks: only `kme-a` gets a 200; a delivered key is its
//! masked bytes XOR the pad pushed at the ranges named, served once to its slave; no pad
//! byte is spent twice, none of this KME's own direction; pool levels match the model.
//!
//! Input: a first byte; even: raw requests (the seed format of `qshield_fuzz::requests`);
//! odd: `arbitrary` actions.
#![no_main]

use arbitrary::Arbitrary;
use axum::http::Method;
use libfuzzer_sys::fuzz_target;
use qshield_fuzz::kme::{Kme, PadRange, RelayBody};
use qshield_fuzz::links::Push;
use qshield_fuzz::requests::{Name, caller, run_input};

#[derive(Arbitrary, Debug)]
enum Route {
    /// `["kme-b"]`: deliver here.
    Here,
    /// `["kme-b", "kme-c"]`: forward.
    OnToC,
    Other(Vec<Name>),
}

#[derive(Arbitrary, Debug)]
enum Pads {
    /// One range on pushed block `block % n` at `offset`, as long as the masked keys.
    Fit {
        block: u8,
        offset: u16,
    },
    Explicit(Vec<(u64, u32, u32)>),
}

#[derive(Arbitrary, Debug)]
enum Id {
    Fresh(u16),
    /// One the model holds.
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Action {
    Push(Push),
    Relay {
        caller: Option<u8>,
        /// `None`: sae-a → sae-b (a configured pair this KME delivers).
        pair: Option<(Name, Name)>,
        route: Route,
        pads: Pads,
        keys: Vec<(Id, Vec<u8>)>,
        raw: Option<Vec<u8>>,
    },
    Dec {
        caller: Option<u8>,
        ids: Vec<u8>,
    },
    Levels,
}

fn step(kme: &mut Kme, action: Action) {
    match action {
        Action::Push(p) => p.send(kme),
        Action::Relay {
            caller: c,
            pair,
            route,
            pads,
            keys,
            raw,
        } => {
            let who = c.map_or("kme-a", caller);
            let (master, slave) = pair.map_or(("sae-a".into(), "sae-b".into()), |(m, s)| {
                (m.resolve(), s.resolve())
            });
            let route = match route {
                Route::Here => vec!["kme-b".to_string()],
                Route::OnToC => vec!["kme-b".to_string(), "kme-c".to_string()],
                Route::Other(v) => v.iter().map(Name::resolve).collect(),
            };
            let keys: Vec<(String, Vec<u8>)> = keys
                .into_iter()
                .take(8)
                .map(|(id, m)| {
                    let id = match id {
                        Id::Fresh(n) => format!("00000000-0000-4000-8000-{n:012x}"),
                        Id::Known(i) if !kme.model.ids.is_empty() => {
                            kme.model.ids[usize::from(i) % kme.model.ids.len()].clone()
                        }
                        Id::Known(i) => format!("known-{i}"),
                        Id::Other(s) => s,
                    };
                    (id, m)
                })
                .collect();
            let total: usize = keys.iter().map(|(_, m)| m.len()).sum();
            let pads = match pads {
                Pads::Fit { block, offset } => {
                    let blocks = kme.model.block_lengths();
                    let even: Vec<_> = blocks.iter().filter(|(s, _)| s % 2 == 0).collect();
                    match even.get(usize::from(block) % even.len().max(1)) {
                        Some(&&(seq, len)) => {
                            let room = len.saturating_sub(total).max(1);
                            vec![PadRange {
                                seq,
                                offset: (usize::from(offset) % room) as u32,
                                len: total as u32,
                            }]
                        }
                        None => vec![],
                    }
                }
                Pads::Explicit(v) => v
                    .into_iter()
                    .take(8)
                    .map(|(seq, offset, len)| PadRange { seq, offset, len })
                    .collect(),
            };
            let body = RelayBody {
                master,
                slave,
                passed: vec![who.to_string()],
                route,
                pads,
                keys,
            };
            let bytes = raw.unwrap_or_else(|| body.to_json());
            let is_raw = bytes != body.to_json();
            if let Some(reply) = kme.call(who, Method::POST, "/kme/v1/relay", bytes) {
                if is_raw {
                    if reply.status == 200 {
                        kme.model.forget_levels();
                    }
                } else {
                    kme.note_relay(who, &body, &reply);
                }
            }
        }
        Action::Dec { caller: c, ids } => {
            let who = c.map_or("sae-b", caller);
            if kme.model.ids.is_empty() {
                return;
            }
            let ids: Vec<String> = ids
                .iter()
                .take(4)
                .map(|&i| kme.model.ids[usize::from(i) % kme.model.ids.len()].clone())
                .collect();
            let entries: Vec<_> = ids
                .iter()
                .map(|i| serde_json::json!({"key_ID": i}))
                .collect();
            let body = serde_json::to_vec(&serde_json::json!({ "key_IDs": entries })).unwrap();
            if let Some(reply) = kme.call(who, Method::POST, "/api/v1/keys/sae-a/dec_keys", body) {
                kme.note_dec(who, "sae-a", &ids, &reply);
            }
        }
        Action::Levels => kme.check_levels(),
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(mut kme) = run_input(data, 24, step) {
        kme.check_levels();
    }
});
