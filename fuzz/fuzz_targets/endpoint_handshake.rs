//! `endpoint_handshake`: `Endpoint::receive` of site B with no live session, structure
//! aware. The input is a setup (which sites initiate) and a sequence of actions: handshake
//! fragments with any header fields (type, index, count, sender index, message length) and
//! payload, to which the harness appends a mac1 valid for B, so they get past the mac1
//! check into reassembly; whole messages split into consistent fragments (reaching the
//! initiation and response parsers); A's real datagrams (initiations made by a second
//! endpoint, responses to B's initiation) replayed as they are, or edited and re-MACed, or
//! reassembled, edited as a message and split again (reaching the handshake's crypto);
//! cookie replies, data datagrams, raw bytes; the clock (`proto::time::Instant`) moving on
//! with both endpoints' timers run. Events and transmits are drained after each step.
//!
//! Checks (`qshield_fuzz::pair`): no panic; reassembly bounded; refusals counted under the
//! right drop; B's handshake datagrams within the size limit and sent to the sender or A;
//! B never delivers an inner packet without a session.
//!
//! Input: a first byte; even: a datagram list (`qshield_fuzz::frames`) delivered to B from
//! A's address (the seeds: real initiation fragments from A to B, made with the fixed
//! identities by `examples/gen_seeds.rs`); odd: `arbitrary` setup and actions.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use qshield::proto::cookie::append_macs;
use qshield::proto::wire::{
    CookieReply, DataHeader, FRAGMENT_HEADER_BYTES, FRAGMENT_MACS_BYTES,
    FRAGMENT_PAYLOAD_MAX_BYTES, FRAGMENTS_MAX, TYPE_INITIATION, TYPE_RESPONSE, split_message,
};
use qshield_fuzz::pair::Pair;
use qshield_fuzz::sites::Side;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
struct Setup {
    /// A starts a handshake with B (B gets real initiations to replay and edit).
    a_initiates: bool,
    /// B knows A's address and starts a handshake with A (so responses can reach B's
    /// pending handshake).
    b_initiates: bool,
}

#[derive(Arbitrary, Debug)]
enum Action {
    /// A fragment with the header fields as given, `payload`, a valid mac1 for B (unless
    /// `bad_mac1`) and `mac2`.
    Fragment {
        source: u8,
        response: bool,
        index: u8,
        count: u8,
        sender_index: u32,
        message_len: u16,
        payload: Vec<u8>,
        bad_mac1: bool,
        mac2: [u8; 16],
    },
    /// `body` as a whole message, split and MACed as an endpoint does, its fragments
    /// rotated by `order` and fragment `skip` left out.
    Message {
        source: u8,
        response: bool,
        sender_index: u32,
        body: Vec<u8>,
        order: u8,
        skip: Option<u8>,
    },
    /// A's datagram number `which` (of those it sent) again, with byte edits, re-MACed for
    /// B when `remac`.
    ReplayA {
        which: u8,
        edits: Vec<(u16, u8)>,
        remac: bool,
        from_elsewhere: bool,
    },
    /// The handshake message made of A's fragments with the sender index of A's datagram
    /// `which`, edited (`edits`, then truncated or extended to `resize`), split again and
    /// MACed for B.
    EditAMessage {
        which: u8,
        edits: Vec<(u16, u8)>,
        resize: Option<u16>,
    },
    /// Everything A has not delivered yet, in order.
    DeliverA,
    /// B's datagrams to A (B's initiation reaches A, which answers).
    DeliverB,
    CookieReply {
        receiver_index: u32,
        nonce: [u8; 12],
        sealed_cookie: [u8; 32],
        index_of_b: bool,
    },
    Data {
        receiver_index: u32,
        counter: u64,
        body: Vec<u8>,
    },
    Raw {
        source: u8,
        bytes: Vec<u8>,
    },
    Advance {
        millis: u16,
    },
}

fn source(n: u8) -> SocketAddr {
    match n % 4 {
        0 => Side::A.addr(),
        k => SocketAddr::from(([198, 18, 2, k], 40000 + u16::from(n / 4))),
    }
}

/// The sender index B put in its last initiation fragment, if it sent one.
fn b_index(p: &Pair) -> Option<u32> {
    p.b_sent
        .iter()
        .rev()
        .find(|t| t.payload.first() == Some(&TYPE_INITIATION))
        .map(|t| u32::from_le_bytes(t.payload[4..8].try_into().expect("4 bytes")))
}

fn edit(bytes: &mut [u8], edits: &[(u16, u8)]) {
    if bytes.is_empty() {
        return;
    }
    for &(at, v) in edits {
        let n = bytes.len();
        bytes[usize::from(at) % n] ^= v;
    }
}

struct Run {
    pair: Pair,
    /// A's datagrams already handed to B.
    a_delivered: usize,
    /// B's datagrams already handed to A.
    b_delivered: usize,
}

impl Run {
    fn deliver_message(&mut self, from: SocketAddr, msg_type: u8, sender: u32, body: &[u8]) {
        if body.is_empty() || body.len() > FRAGMENTS_MAX * FRAGMENT_PAYLOAD_MAX_BYTES {
            return;
        }
        for mut f in split_message(msg_type, sender, body) {
            append_macs(&mut f, &self.pair.b_mac1_key, None);
            self.pair.to_b(from, &f);
        }
    }

    fn step(&mut self, action: Action) {
        let p = &mut self.pair;
        match action {
            Action::Fragment {
                source: s,
                response,
                index,
                count,
                sender_index,
                message_len,
                payload,
                bad_mac1,
                mac2,
            } => {
                let t = if response {
                    TYPE_RESPONSE
                } else {
                    TYPE_INITIATION
                };
                let mut f = vec![t, index, count, 0];
                f.extend_from_slice(&sender_index.to_le_bytes());
                f.extend_from_slice(&message_len.to_le_bytes());
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&payload);
                let key = if bad_mac1 { [0u8; 32] } else { p.b_mac1_key };
                append_macs(&mut f, &key, None);
                let n = f.len();
                f[n - 16..].copy_from_slice(&mac2);
                p.to_b(source(s), &f);
            }
            Action::Message {
                source: s,
                response,
                sender_index,
                body,
                order,
                skip,
            } => {
                if body.is_empty() || body.len() > FRAGMENTS_MAX * FRAGMENT_PAYLOAD_MAX_BYTES {
                    return;
                }
                let t = if response {
                    TYPE_RESPONSE
                } else {
                    TYPE_INITIATION
                };
                let mut frags = split_message(t, sender_index, &body);
                let k = frags.len();
                frags.rotate_left(usize::from(order) % k);
                for (i, mut f) in frags.into_iter().enumerate() {
                    if skip.is_some_and(|s| usize::from(s) % k == i) {
                        continue;
                    }
                    append_macs(&mut f, &p.b_mac1_key, None);
                    p.to_b(source(s), &f);
                }
            }
            Action::ReplayA {
                which,
                edits,
                remac,
                from_elsewhere,
            } => {
                if p.a_sent.is_empty() {
                    return;
                }
                let mut d = p.a_sent[usize::from(which) % p.a_sent.len()]
                    .payload
                    .clone();
                edit(&mut d, &edits);
                if remac && d.len() > FRAGMENT_HEADER_BYTES + FRAGMENT_MACS_BYTES {
                    p.remac_for_b(&mut d);
                }
                let from = if from_elsewhere {
                    source(1)
                } else {
                    Side::A.addr()
                };
                p.to_b(from, &d);
            }
            Action::EditAMessage {
                which,
                edits,
                resize,
            } => {
                if p.a_sent.is_empty() {
                    return;
                }
                let head = p.a_sent[usize::from(which) % p.a_sent.len()]
                    .payload
                    .clone();
                if head.len() < FRAGMENT_HEADER_BYTES + FRAGMENT_MACS_BYTES || head[0] > 2 {
                    return;
                }
                let (t, sender) = (head[0], &head[4..8]);
                let mut parts: Vec<&Vec<u8>> = p
                    .a_sent
                    .iter()
                    .map(|x| &x.payload)
                    .filter(|x| x.len() > FRAGMENT_HEADER_BYTES + FRAGMENT_MACS_BYTES)
                    .filter(|x| x[0] == t && &x[4..8] == sender)
                    .collect();
                parts.sort_by_key(|x| x[1]);
                parts.dedup_by_key(|x| x[1]);
                let mut body: Vec<u8> = parts
                    .iter()
                    .flat_map(|x| &x[FRAGMENT_HEADER_BYTES..x.len() - FRAGMENT_MACS_BYTES])
                    .copied()
                    .collect();
                edit(&mut body, &edits);
                if let Some(n) = resize {
                    body.resize(
                        usize::from(n) % (FRAGMENTS_MAX * FRAGMENT_PAYLOAD_MAX_BYTES),
                        0,
                    );
                }
                let sender = u32::from_le_bytes(sender.try_into().expect("4 bytes"));
                self.deliver_message(Side::A.addr(), t, sender, &body);
            }
            Action::DeliverA => {
                for d in p.a_sent_since(self.a_delivered) {
                    p.to_b(Side::A.addr(), &d);
                }
                self.a_delivered = p.a_sent.len();
            }
            Action::DeliverB => {
                let from = Side::B.addr();
                let pending: Vec<_> = p.b_sent[self.b_delivered..]
                    .iter()
                    .filter(|t| t.to == Side::A.addr())
                    .map(|t| t.payload.clone())
                    .collect();
                self.b_delivered = p.b_sent.len();
                for mut d in pending {
                    p.a.receive(p.now, from, &mut d);
                }
                p.drain();
            }
            Action::CookieReply {
                receiver_index,
                nonce,
                sealed_cookie,
                index_of_b,
            } => {
                let receiver_index = match b_index(p) {
                    Some(i) if index_of_b => i,
                    _ => receiver_index,
                };
                let reply = CookieReply {
                    receiver_index,
                    nonce,
                    sealed_cookie,
                };
                p.to_b(Side::A.addr(), &reply.encode());
            }
            Action::Data {
                receiver_index,
                counter,
                body,
            } => {
                let mut d = vec![0u8; 16];
                DataHeader {
                    receiver_index,
                    counter,
                }
                .write(&mut d);
                d.extend_from_slice(&body);
                let inner = p.to_b(Side::A.addr(), &d);
                assert!(inner.is_none(), "B opened a forged data datagram");
            }
            Action::Raw { source: s, bytes } => {
                p.to_b(source(s), &bytes);
            }
            Action::Advance { millis } => p.advance(Duration::from_millis(u64::from(millis))),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let mut pair = Pair::new(false, false);
        for d in qshield_fuzz::frames::split(rest) {
            pair.to_b(Side::A.addr(), d);
        }
        return;
    }
    let mut u = Unstructured::new(rest);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let mut run = Run {
        pair: Pair::new(true, setup.b_initiates),
        a_delivered: 0,
        b_delivered: 0,
    };
    let now = run.pair.now;
    if setup.a_initiates {
        run.pair.a.start(now);
    }
    if setup.b_initiates {
        run.pair.b.start(now);
    }
    run.pair.drain();
    for _ in 0..256 {
        match Action::arbitrary(&mut u) {
            Ok(action) => run.step(action),
            Err(_) => break,
        }
    }
});
