//! `etsi014`: the KME's ETSI GS QKD 014 API through its real router, in-process
//! (`qshield_fuzz::kme`): `status`, `enc_keys` and `dec_keys` in their GET (query string:
//! `number`, `size`, `key_ID`) and POST (JSON bodies: Key request, Key IDs) forms, any
//! caller (SAEs, KMEs, a stranger), path IDs known or arbitrary (percent-encoded), JSON
//! fields of any type, unknown fields and extensions, raw paths and bodies; a fresh store
//! per input. Checks: statuses and error bodies as ETSI 014 has them, and the key model
//! (`enc_keys` gives new IDs of the size asked; `dec_keys` gives each key once, to its
//! slave, with its bytes).
//!
//! Input: a first byte; even: a list of raw requests (`qshield_fuzz::requests`, the seed
//! format: real requests of every kind); odd: `arbitrary` actions.
#![no_main]

use arbitrary::Arbitrary;
use axum::http::Method;
use libfuzzer_sys::fuzz_target;
use qshield_fuzz::kme::{Kme, encode_component};
use qshield_fuzz::requests::{Json, Name, caller, run_input};

#[derive(Arbitrary, Debug)]
enum KeyId {
    /// One the model knows (`ids[i % len]`).
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct KeyRequest {
    number: Option<Json>,
    size: Option<Json>,
    additional_slave_sae_ids: Option<Json>,
    extension_mandatory: Option<Json>,
    extension_optional: Option<Json>,
    unknown: Option<(String, Json)>,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Request(KeyRequest),
    Empty,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Action {
    Status {
        caller: u8,
        slave: Name,
    },
    EncGet {
        caller: u8,
        slave: Name,
        number: Option<Json>,
        size: Option<Json>,
        extra: Option<(String, String)>,
    },
    EncPost {
        caller: u8,
        slave: Name,
        body: Body,
    },
    DecGet {
        caller: u8,
        master: Name,
        id: KeyId,
        extra: Option<(String, String)>,
    },
    DecPost {
        caller: u8,
        master: Name,
        ids: Vec<KeyId>,
        extension: Option<Json>,
        raw: Option<Vec<u8>>,
    },
    Raw {
        caller: u8,
        method: u8,
        path: String,
        body: Vec<u8>,
    },
    KmeStatus {
        caller: u8,
    },
}

fn query(pairs: &[(&str, String)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// The size in bits an `enc_keys` with this `size` field asks for (256 when absent).
fn size_asked(size: Option<&Json>) -> Option<u32> {
    match size {
        None => Some(256),
        Some(Json::Small(n)) => Some(u32::from(*n)),
        Some(Json::Int(n)) => u32::try_from(*n).ok(),
        Some(_) => None,
    }
}

fn key_id(kme: &Kme, id: &KeyId) -> String {
    match id {
        KeyId::Known(i) if !kme.model.ids.is_empty() => {
            kme.model.ids[usize::from(*i) % kme.model.ids.len()].clone()
        }
        KeyId::Known(i) => format!("{i:08x}-0000-4000-8000-000000000000"),
        KeyId::Other(s) => s.clone(),
    }
}

fn step(kme: &mut Kme, action: Action) {
    match action {
        Action::Status { caller: c, slave } => {
            let uri = format!("/api/v1/keys/{}/status", encode_component(&slave.resolve()));
            kme.call(caller(c), Method::GET, &uri, vec![]);
        }
        Action::EncGet {
            caller: c,
            slave,
            number,
            size,
            extra,
        } => {
            let slave = slave.resolve();
            let mut q = Vec::new();
            if let Some(n) = &number {
                q.push(("number", n.query()));
            }
            if let Some(s) = &size {
                q.push(("size", s.query()));
            }
            if let Some((k, v)) = &extra {
                q.push((k.as_str(), v.clone()));
            }
            let uri = format!(
                "/api/v1/keys/{}/enc_keys{}",
                encode_component(&slave),
                query(&q)
            );
            if let Some(reply) = kme.call(caller(c), Method::GET, &uri, vec![]) {
                kme.note_enc(caller(c), &slave, size_asked(size.as_ref()), &reply);
            }
        }
        Action::EncPost {
            caller: c,
            slave,
            body,
        } => {
            let slave = slave.resolve();
            let (bytes, size) = match &body {
                Body::Request(r) => {
                    let mut m = serde_json::Map::new();
                    let mut put = |k: &str, v: &Option<Json>| {
                        if let Some(v) = v {
                            m.insert(k.to_string(), v.value());
                        }
                    };
                    put("number", &r.number);
                    put("size", &r.size);
                    put("additional_slave_SAE_IDs", &r.additional_slave_sae_ids);
                    put("extension_mandatory", &r.extension_mandatory);
                    put("extension_optional", &r.extension_optional);
                    if let Some((k, v)) = &r.unknown {
                        m.insert(k.clone(), v.value());
                    }
                    let size = size_asked(r.size.as_ref());
                    (serde_json::to_vec(&m).expect("JSON"), size)
                }
                Body::Empty => (vec![], Some(256)),
                Body::Raw(b) => (b.clone(), None),
            };
            let uri = format!("/api/v1/keys/{}/enc_keys", encode_component(&slave));
            if let Some(reply) = kme.call(caller(c), Method::POST, &uri, bytes) {
                kme.note_enc(caller(c), &slave, size, &reply);
            }
        }
        Action::DecGet {
            caller: c,
            master,
            id,
            extra,
        } => {
            let master = master.resolve();
            let id = key_id(kme, &id);
            let mut q = vec![("key_ID", id.clone())];
            if let Some((k, v)) = &extra {
                q.push((k.as_str(), v.clone()));
            }
            let uri = format!(
                "/api/v1/keys/{}/dec_keys{}",
                encode_component(&master),
                query(&q)
            );
            if let Some(reply) = kme.call(caller(c), Method::GET, &uri, vec![]) {
                kme.note_dec(caller(c), &master, &[id], &reply);
            }
        }
        Action::DecPost {
            caller: c,
            master,
            ids,
            extension,
            raw,
        } => {
            let master = master.resolve();
            let ids: Vec<String> = ids.iter().map(|i| key_id(kme, i)).collect();
            let body = raw.unwrap_or_else(|| {
                let entries: Vec<_> = ids
                    .iter()
                    .map(|i| serde_json::json!({"key_ID": i}))
                    .collect();
                let mut v = serde_json::json!({ "key_IDs": entries });
                if let Some(e) = &extension {
                    v["key_IDs_extension"] = e.value();
                }
                serde_json::to_vec(&v).expect("JSON")
            });
            let uri = format!("/api/v1/keys/{}/dec_keys", encode_component(&master));
            if let Some(reply) = kme.call(caller(c), Method::POST, &uri, body) {
                kme.note_dec(caller(c), &master, &ids, &reply);
            }
        }
        Action::Raw {
            caller: c,
            method,
            path,
            body,
        } => {
            let methods = [Method::GET, Method::POST, Method::PUT, Method::DELETE];
            let m = methods[usize::from(method) % methods.len()].clone();
            let uri = if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            };
            kme.call(caller(c), m, &uri, body);
        }
        Action::KmeStatus { caller: c } => {
            kme.call(caller(c), Method::GET, "/kme/v1/status", vec![]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    run_input(data, 32, step);
});
