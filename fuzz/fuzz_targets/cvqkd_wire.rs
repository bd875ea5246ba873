//! `cvqkd_wire`: the CV-QKD link's classical messages (`kme::link::cvqkd::wire`: the
//! leader's `LinkRequest`, the follower's `LinkReply`, and the `ClassicalMessage`s inside
//! them, postcard) and the quantum channel's frames (`quantum_channel::receive`,
//! `receive_at_most`, `decode_payload`) as a stream of frames on an in-memory reader.
//!
//! Checks: whatever decodes re-encodes and decodes again to the same value; every decoded
//! bit string (`BitVec`) is consistent (its words hold its length, so reading its last
//! bit cannot go out of bounds); a received block has the pulse count asked for.
//!
//! Input: a selector byte, then (for frames) the pulse count (u16, little-endian), then
//! the bytes. Seeds: real messages and frames of each kind (`examples/gen_seeds.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qshield::cvqkd::sim::bits::BitVec;
use qshield::cvqkd::sim::{ClassicalMessage, QuantumBlock};
use qshield::kme::link::cvqkd::quantum_channel;
use qshield::kme::link::cvqkd::wire::{self, LinkReply, LinkRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::LazyLock;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

/// Decodes `bytes` as `T`; if it decodes, its encoding decodes to the same value.
fn round_trip<T: Serialize + DeserializeOwned + Debug>(bytes: &[u8]) -> Option<T> {
    let v: T = wire::decode(bytes).ok()?;
    let again = wire::encode(&v);
    let back: T = wire::decode(&again).expect("an encoding decodes");
    assert_eq!(format!("{v:?}"), format!("{back:?}"));
    assert_eq!(wire::encode(&back), again);
    Some(v)
}

fn check_bits(b: &BitVec) {
    assert_eq!(
        b.words().len(),
        b.len().div_ceil(64),
        "a bit string of {} bits in {} words",
        b.len(),
        b.words().len()
    );
    if !b.is_empty() {
        let _ = b.get(b.len() - 1);
    }
    assert!(b.count_ones() <= b.len());
    assert_eq!(b.to_bytes().len(), b.len().div_ceil(8));
}

fn check_message(m: &ClassicalMessage) {
    match m {
        ClassicalMessage::Disclosure { bases, .. } => bases.iter().for_each(check_bits),
        ClassicalMessage::Reconciliation { frames, .. } => {
            frames.iter().for_each(|f| check_bits(&f.syndrome))
        }
        ClassicalMessage::PeAnswer { .. } | ClassicalMessage::Verification { .. } => {}
    }
}

fn check_block(b: &QuantumBlock, pulses: Option<u64>) {
    assert_eq!(b.x.len(), b.p.len());
    if let Some(n) = pulses {
        assert_eq!(b.len() as u64, n);
    }
    let frame = quantum_channel::encode(b);
    let decoded = quantum_channel::decode_payload(&frame[8..], b.len() as u64)
        .expect("an encoded block decodes");
    assert_eq!(format!("{decoded:?}"), format!("{b:?}"));
}

/// Reads frames from `stream` until its end or an error, as the follower's quantum port
/// does (`exact`: blocks of exactly `pulses`; else at most, as Eve's relay).
fn frames(stream: &[u8], pulses: u64, exact: bool) {
    RUNTIME.block_on(async {
        let mut r = stream;
        for _ in 0..64 {
            let got = if exact {
                quantum_channel::receive(&mut r, pulses).await
            } else {
                quantum_channel::receive_at_most(&mut r, pulses).await
            };
            match got {
                Ok(Some(block)) => {
                    assert!(block.len() as u64 <= pulses);
                    check_block(&block, exact.then_some(pulses));
                }
                Ok(None) | Err(_) => break,
            }
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => {
            if let Some(r) = round_trip::<LinkRequest>(rest) {
                match &r {
                    LinkRequest::Start { .. } => {}
                    LinkRequest::Estimate { msg, .. } | LinkRequest::Finish { msg, .. } => {
                        check_message(msg)
                    }
                }
            }
        }
        1 => {
            if let Some(r) = round_trip::<LinkReply>(rest) {
                match &r {
                    LinkReply::Started { msg, .. } | LinkReply::Estimated(Some(msg)) => {
                        check_message(msg)
                    }
                    _ => {}
                }
            }
        }
        2 => {
            if let Some(m) = round_trip::<ClassicalMessage>(rest) {
                check_message(&m);
            }
        }
        k => {
            if rest.len() < 2 {
                return;
            }
            let pulses = u64::from(u16::from_le_bytes([rest[0], rest[1]]));
            let stream = &rest[2..];
            match k {
                3 => frames(stream, pulses, true),
                4 => frames(stream, pulses, false),
                _ => {
                    if let Ok(block) = quantum_channel::decode_payload(stream, pulses) {
                        check_block(&block, Some(pulses));
                    }
                }
            }
        }
    }
});
