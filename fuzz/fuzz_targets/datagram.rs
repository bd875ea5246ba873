//! `datagram`: every decoder of `qshield::proto::wire` on every datagram (data header,
//! handshake fragment, cookie reply, and the two handshake messages and the initiation
//! payload as message bodies), each checked to re-encode to the bytes it came from, and the
//! fragment `Reassembler` over the sequence of fragments the input makes.
//!
//! Input: a first byte, then either (even) a datagram list (`qshield_fuzz::frames`, the
//! seed format: real datagrams, all from one source) or (odd) `arbitrary` items, among them
//! fragments whose header the harness writes consistently from the fields given (type,
//! index, count from the length, sender index, message length), so they pass
//! `parse_fragment` and reach reassembly, optionally with one byte tampered afterwards.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use qshield::constants::{DATA_HEADER_BYTES, REASSEMBLY_SLOTS_MAX};
use qshield::crypto::kdf;
use qshield::proto::fragment::{Reassembled, Reassembler};
use qshield::proto::time::Instant;
use qshield::proto::wire::{
    CookieReply, DataHeader, FRAGMENT_HEADER_BYTES, FRAGMENT_MACS_BYTES,
    FRAGMENT_PAYLOAD_MAX_BYTES, FRAGMENTS_MAX, Fragment, Initiation, InitiationPayload, Response,
    TYPE_INITIATION, TYPE_RESPONSE, fragment_count, parse_fragment, split_message,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Item {
    /// Raw bytes from source `source`.
    Raw { source: u8, bytes: Vec<u8> },
    /// A well-formed fragment built from these fields.
    Fragment {
        source: u8,
        response: bool,
        index: u8,
        sender_index: u8,
        message_len: u16,
        fill: Vec<u8>,
        tamper: Option<(u8, u8)>,
    },
    /// A whole message split into fragments, delivered in the order of `order`.
    Message {
        source: u8,
        response: bool,
        sender_index: u8,
        body: Vec<u8>,
        order: u8,
    },
    /// The clock moves on.
    Advance { millis: u16 },
}

/// Which message a fragment belongs to, as the reassembler matches it.
type MessageKey = (SocketAddr, u8, u32, u8, u16);

struct Harness {
    now: Instant,
    reassembler: Reassembler,
    /// Payloads seen per (message, index): a reassembled message is made of these only.
    seen: HashMap<(MessageKey, u8), HashSet<Vec<u8>>>,
    /// The last message completed per key: a repeat names its digest.
    completed: HashMap<MessageKey, Vec<u8>>,
}

fn source(n: u8) -> SocketAddr {
    SocketAddr::from(([198, 18, 1, n % 8], 4000 + u16::from(n / 8 % 2)))
}

/// Header (12 bytes) of fragment `index` of a message of `len` bytes.
fn header(msg_type: u8, index: u8, count: u8, sender_index: u32, len: u16) -> Vec<u8> {
    let mut h = vec![msg_type, index, count, 0];
    h.extend_from_slice(&sender_index.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&[0, 0]);
    h
}

impl Harness {
    fn datagram(&mut self, from: SocketAddr, d: &[u8]) {
        check_decoders(d);
        if let Ok(frag) = parse_fragment(d) {
            self.fragment(from, d, &frag);
        }
    }

    fn fragment(&mut self, from: SocketAddr, d: &[u8], frag: &Fragment<'_>) {
        let h = frag.header;
        assert_eq!(frag.payload.len(), h.expected_payload_len());
        assert_eq!(
            d.len(),
            FRAGMENT_HEADER_BYTES + frag.payload.len() + FRAGMENT_MACS_BYTES
        );
        assert_eq!(
            header(h.msg_type, h.index, h.count, h.sender_index, h.message_len),
            d[..FRAGMENT_HEADER_BYTES]
        );
        let key = (from, h.msg_type, h.sender_index, h.count, h.message_len);
        self.seen
            .entry((key, h.index))
            .or_default()
            .insert(frag.payload.to_vec());
        let done = self.reassembler.insert(self.now, from, frag);
        assert!(self.reassembler.slots() <= REASSEMBLY_SLOTS_MAX);
        let at = usize::from(h.index) * FRAGMENT_PAYLOAD_MAX_BYTES;
        let message = match done {
            None => return,
            // a fragment of a message completed earlier, carrying the same bytes
            Some(Reassembled::Repeat(digest)) => {
                let known = self
                    .completed
                    .get(&key)
                    .expect("a repeat of a message never completed");
                assert_eq!(digest, kdf::hash(&[known]));
                assert_eq!(&known[at..at + frag.payload.len()], frag.payload);
                return;
            }
            Some(Reassembled::Complete(message)) => message,
        };
        assert_eq!(message.len(), usize::from(h.message_len));
        for (i, chunk) in message.chunks(FRAGMENT_PAYLOAD_MAX_BYTES).enumerate() {
            let seen = &self.seen[&(key, i as u8)];
            assert!(seen.contains(chunk), "chunk {i} was never received");
        }
        assert_eq!(&message[at..at + frag.payload.len()], frag.payload);
        check_message_decoders(&message);
        self.completed.insert(key, message);
    }
}

/// Every datagram decoder; whatever decodes re-encodes to the same bytes.
fn check_decoders(d: &[u8]) {
    if let Ok(h) = DataHeader::parse(d) {
        let mut out = [0u8; DATA_HEADER_BYTES];
        h.write(&mut out);
        assert_eq!(out, d[..DATA_HEADER_BYTES]);
    }
    if let Ok(c) = CookieReply::decode(d) {
        assert_eq!(c.encode(), d);
    }
    check_message_decoders(d);
}

/// The decoders of reassembled messages and of the initiation's sealed payload.
fn check_message_decoders(m: &[u8]) {
    if let Ok(i) = Initiation::decode(m) {
        assert_eq!(i.encode(), m);
    }
    if let Ok(r) = Response::decode(m) {
        assert_eq!(r.encode(), m);
    }
    if let Ok(p) = InitiationPayload::decode(m) {
        assert_eq!(p.encode(), m);
    }
}

fn run_items(h: &mut Harness, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    while !u.is_empty() {
        match u.arbitrary::<Item>()? {
            Item::Raw { source: s, bytes } => h.datagram(source(s), &bytes),
            Item::Fragment {
                source: s,
                response,
                index,
                sender_index,
                message_len,
                fill,
                tamper,
            } => {
                let max = FRAGMENTS_MAX * FRAGMENT_PAYLOAD_MAX_BYTES;
                let len = (usize::from(message_len) % max + 1) as u16;
                let count = fragment_count(usize::from(len)) as u8;
                let msg_type = if response {
                    TYPE_RESPONSE
                } else {
                    TYPE_INITIATION
                };
                let index = index % count;
                let mut d = header(msg_type, index, count, u32::from(sender_index), len);
                let before = usize::from(index) * FRAGMENT_PAYLOAD_MAX_BYTES;
                let n = (usize::from(len) - before).min(FRAGMENT_PAYLOAD_MAX_BYTES);
                d.extend((0..n).map(|i| fill.get(i % fill.len().max(1)).copied().unwrap_or(0)));
                d.extend_from_slice(&[0u8; FRAGMENT_MACS_BYTES]);
                if let Some((at, value)) = tamper {
                    let at = usize::from(at) % d.len();
                    d[at] = value;
                }
                h.datagram(source(s), &d);
            }
            Item::Message {
                source: s,
                response,
                sender_index,
                body,
                order,
            } => {
                if body.is_empty() || body.len() > FRAGMENTS_MAX * FRAGMENT_PAYLOAD_MAX_BYTES {
                    continue;
                }
                let msg_type = if response {
                    TYPE_RESPONSE
                } else {
                    TYPE_INITIATION
                };
                let mut frags = split_message(msg_type, u32::from(sender_index), &body);
                let k = frags.len();
                frags.rotate_left(usize::from(order) % k);
                for mut f in frags {
                    f.extend_from_slice(&[0u8; FRAGMENT_MACS_BYTES]);
                    h.datagram(source(s), &f);
                }
            }
            Item::Advance { millis } => {
                h.now = h.now + Duration::from_millis(u64::from(millis));
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut h = Harness {
        now: Instant::ZERO,
        reassembler: Reassembler::default(),
        seen: HashMap::new(),
        completed: HashMap::new(),
    };
    if mode % 2 == 0 {
        for d in qshield_fuzz::frames::split(rest) {
            h.datagram(source(0), d);
        }
    } else {
        let _ = run_items(&mut h, &mut Unstructured::new(rest));
    }
});
