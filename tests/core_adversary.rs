//! An active attacker on the wire: tampering with every byte of every message type,
//! garbage and truncated datagrams, and handshake floods (cookies, rate limits, bounded
//! reassembly).

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use qshield::constants::{
    HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST, REASSEMBLY_SLOTS_MAX,
    UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND,
};
use qshield::proto::cookie::{append_macs, mac1_key, open_cookie_reply};
use qshield::proto::events::Event;
use qshield::proto::status::{InterfaceDrops, PeerDrops};
use qshield::proto::wire::{
    COOKIE_REPLY_BYTES, CookieReply, TYPE_COOKIE_REPLY, TYPE_DATA, TYPE_INITIATION, TYPE_RESPONSE,
    split_message,
};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use support::sim::{Fate, Side, Sim, budget};

const MIB: u64 = 1 << 20;

/// Which drop counter moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Malformed,
    UnknownIndex,
    StaleReply,
    BadMac1,
    BadTag,
    Replay,
}

fn counters(sim: &Sim, s: Side) -> (InterfaceDrops, PeerDrops) {
    (sim.drops(s), sim.status(s).drops)
}

/// Injects `bytes` into `to` and returns the one counter that moved (panics if none or
/// several did, or if an inner packet came out).
fn inject_expect_drop(sim: &mut Sim, to: Side, from: SocketAddr, bytes: &[u8]) -> Counter {
    let (i0, p0) = counters(sim, to);
    let total0 = sim.total_drops(to);
    assert_eq!(
        sim.inject(to, from, bytes),
        None,
        "a tampered datagram was delivered"
    );
    assert_eq!(sim.total_drops(to), total0 + 1, "exactly one drop counted");
    let (i1, p1) = counters(sim, to);
    if i1.malformed > i0.malformed {
        Counter::Malformed
    } else if i1.unknown_index > i0.unknown_index {
        Counter::UnknownIndex
    } else if i1.stale_reply > i0.stale_reply {
        Counter::StaleReply
    } else if i1.bad_mac1 > i0.bad_mac1 {
        Counter::BadMac1
    } else if p1.bad_tag > p0.bad_tag {
        Counter::BadTag
    } else if p1.replay > p0.replay {
        Counter::Replay
    } else {
        panic!("unexpected counter: {i1:?} {p1:?}")
    }
}

fn flip(bytes: &[u8], at: usize, bit: u32) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] ^= 1 << bit;
    v
}

type Held = Rc<RefCell<Vec<Vec<u8>>>>;

/// Holds back (drops and records) every datagram of type `t` from `from`.
fn hold(sim: &mut Sim, from: Side, t: u8) -> Held {
    let held: Held = Rc::default();
    let h = held.clone();
    sim.filter = Some(Box::new(move |d| {
        if d.from == from && d.bytes[0] == t {
            h.borrow_mut().push(d.bytes.clone());
            return Fate::Drop;
        }
        Fate::Deliver
    }));
    held
}

/// The counter a bit flip at `at` of a handshake fragment must move.
fn expected_for_fragment(at: usize, bit: u32, msg_type: u8) -> &'static [Counter] {
    match at {
        // the type byte: unknown type, or a cookie reply of the wrong length
        0 => &[Counter::Malformed],
        // reserved bytes
        3 | 10 | 11 => &[Counter::Malformed],
        // index, count, message length: malformed unless still self-consistent
        1 | 2 | 8 | 9 => &[Counter::Malformed, Counter::BadMac1],
        // sender index, payload, mac1: mac1 covers them all
        _ => {
            let _ = (bit, msg_type);
            &[Counter::BadMac1]
        }
    }
}

fn tamper_fragment(sim: &mut Sim, to: Side, from: SocketAddr, frag: &[u8], mac2_too: bool) {
    let macs_at = frag.len() - 32;
    for at in 0..macs_at + 16 {
        let bit = (at % 8) as u32;
        let got = inject_expect_drop(sim, to, from, &flip(frag, at, bit));
        let expect = expected_for_fragment(at, bit, frag[0]);
        assert!(expect.contains(&got), "type {} byte {at}: {got:?}", frag[0]);
    }
    if !mac2_too {
        return;
    }
    // mac2 is checked only under load: a flipped mac2 is otherwise an ordinary fragment
    // (and the per-source rate limit, also applied only under load, does not count it)
    let before = sim.total_drops(to);
    for at in macs_at + 16..frag.len() {
        sim.inject(to, from, &flip(frag, at, (at % 8) as u32));
    }
    assert_eq!(
        sim.total_drops(to),
        before,
        "mac2 ignored when not under load"
    );
}

#[test]
fn every_tampered_byte_of_handshake_fragments_is_dropped_and_the_originals_still_work() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let inits = hold(&mut sim, Side::A, TYPE_INITIATION);
    sim.a.endpoint.start(sim.now);
    sim.collect(Side::A);
    sim.run_for(Duration::from_millis(5));
    let inits = inits.borrow().clone();
    assert_eq!(inits.len(), 3);
    let (a_addr, b_addr) = (sim.a.addr, sim.b.addr);
    for (i, f) in inits.iter().enumerate() {
        tamper_fragment(&mut sim, Side::B, a_addr, f, i == 0);
    }
    assert_eq!(
        sim.status(Side::B).handshakes,
        0,
        "no tampered initiation was answered"
    );
    assert!(
        !sim.wire.iter().any(|d| d.from == Side::B),
        "nothing answered"
    );
    let responses = hold(&mut sim, Side::B, TYPE_RESPONSE);
    for f in &inits {
        sim.inject(Side::B, a_addr, f);
    }
    sim.run_for(Duration::from_millis(5));
    let responses = responses.borrow().clone();
    assert_eq!(responses.len(), 2, "the untampered initiation is answered");
    for (i, f) in responses.iter().enumerate() {
        tamper_fragment(&mut sim, Side::A, b_addr, f, i == 0);
    }
    assert!(!sim.has_current(Side::A));
    sim.filter = None;
    for f in &responses {
        sim.inject(Side::A, b_addr, f);
    }
    sim.run_for(Duration::from_millis(5));
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
    assert!(
        sim.a
            .events
            .iter()
            .any(|e| matches!(e, Event::BadMac1 { .. }))
    );
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, std::slice::from_ref(&p));
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.b.received, vec![p]);
}

/// An established sim and one data datagram from A that B has not seen (the highest).
fn held_data_packet() -> (Sim, Vec<u8>) {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    for t in 0..5 {
        let p = sim.packet(Side::A, 4, t);
        sim.send(Side::A, &[p]);
    }
    sim.run_for(Duration::from_millis(5));
    let held = hold(&mut sim, Side::A, TYPE_DATA);
    let p = sim.packet(Side::A, 4, 99);
    sim.send(Side::A, &[p]);
    let d = held.borrow()[0].clone();
    sim.filter = None;
    (sim, d)
}

#[test]
fn every_tampered_bit_of_a_data_packet_is_dropped_in_the_right_counter() {
    let (mut sim, d) = held_data_packet();
    let counter = u64::from_le_bytes(d[8..16].try_into().unwrap());
    let from = sim.a.addr;
    for at in 0..d.len() {
        for bit in 0..8 {
            let t = flip(&d, at, bit);
            let got = inject_expect_drop(&mut sim, Side::B, from, &t);
            let expect = match at {
                0..4 => Counter::Malformed, // type and reserved bytes
                4..8 => Counter::UnknownIndex,
                8..16 => {
                    // the counter is the nonce and in the AAD; a lower one was seen already
                    let c = u64::from_le_bytes(t[8..16].try_into().unwrap());
                    if c < counter {
                        Counter::Replay
                    } else {
                        Counter::BadTag
                    }
                }
                _ => Counter::BadTag, // ciphertext and tag
            };
            assert_eq!(got, expect, "byte {at} bit {bit}");
        }
    }
    assert!(sim.has_current(Side::B));
    let inner = sim
        .inject(Side::B, from, &d)
        .expect("the original still opens");
    assert_eq!(Sim::tag_of(&inner), 99);
}

/// Floods B with fragment 0 of bogus 3-fragment initiations with a valid mac1 (the
/// attacker knows B's public key), one per source; returns the sources.
fn flood(sim: &mut Sim, n: usize, salt: u32) -> Vec<SocketAddr> {
    let key = mac1_key(&sim.b.endpoint.public().dh);
    (0..n)
        .map(|k| {
            let src: SocketAddr = format!("198.18.{}.{}:4000", 10 + k / 250, k % 250 + 1)
                .parse()
                .unwrap();
            let mut f = split_message(TYPE_INITIATION, salt + k as u32, &[7u8; 2500]).remove(0);
            append_macs(&mut f, &key, None);
            sim.inject(Side::B, src, &f);
            src
        })
        .collect()
}

fn cookies_sent(sim: &Sim, to: SocketAddr) -> usize {
    sim.count_events(
        Side::B,
        |e| matches!(e, Event::CookieSent { to: t } if *t == to),
    )
}

#[test]
fn under_load_initiations_get_cookies_and_the_legit_peer_completes_with_mac2() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let load = UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND as usize;
    let sources = flood(&mut sim, load + 50, 0);
    assert!(
        sim.b.endpoint.reassembly_in_progress() <= REASSEMBLY_SLOTS_MAX,
        "bounded"
    );
    // beyond the load threshold every initiation fragment without mac2 gets a cookie
    assert_eq!(sim.b.stray.len(), 50);
    for (t, src) in sim.b.stray.iter().zip(&sources[load..]) {
        assert_eq!(
            (t.to, t.payload[0], t.payload.len()),
            (*src, TYPE_COOKIE_REPLY, COOKIE_REPLY_BYTES)
        );
    }
    assert_eq!(cookies_sent(&sim, sources[load]), 1);
    // The legit initiator: its first attempt is answered with cookies; hold the replies.
    let replies = hold(&mut sim, Side::B, TYPE_COOKIE_REPLY);
    sim.a.endpoint.start(sim.now);
    sim.collect(Side::A);
    sim.run_for(Duration::from_millis(5));
    let a_addr = sim.a.addr;
    assert_eq!(cookies_sent(&sim, a_addr), 3);
    assert_eq!(
        sim.status(Side::B).handshakes,
        0,
        "no public-key work under load"
    );
    let replies = replies.borrow().clone();
    assert_eq!(replies.len(), 3);
    // every tampered byte of a cookie reply is dropped and counted
    let b_addr = sim.b.addr;
    for at in 0..replies[0].len() {
        let got = inject_expect_drop(
            &mut sim,
            Side::A,
            b_addr,
            &flip(&replies[0], at, (at % 8) as u32),
        );
        let expect = match at {
            4..8 => Counter::StaleReply,
            _ => Counter::Malformed, // type, reserved, or a seal that does not open
        };
        assert_eq!(got, expect, "cookie reply byte {at}");
    }
    // the original is accepted (no counter), and keep B under load until A's retry
    sim.filter = None;
    let before = sim.total_drops(Side::A);
    sim.inject(Side::A, b_addr, &replies[0]);
    assert_eq!(sim.total_drops(Side::A), before);
    for round in 1..=20 {
        flood(&mut sim, load + 1, round * 1000);
        sim.run_for(Duration::from_millis(100));
        if sim.has_current(Side::A) {
            break;
        }
    }
    assert!(
        sim.has_current(Side::A) && sim.has_current(Side::B),
        "completed under load"
    );
    assert_eq!(
        cookies_sent(&sim, a_addr),
        3,
        "the retry carried a valid mac2"
    );
    assert!(sim.b.endpoint.reassembly_in_progress() <= REASSEMBLY_SLOTS_MAX);
    // a replayed cookie reply now matches no pending handshake
    let before = sim.drops(Side::A).stale_reply;
    sim.inject(Side::A, b_addr, &replies[1]);
    assert_eq!(sim.drops(Side::A).stale_reply, before + 1);
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, std::slice::from_ref(&p));
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.b.received, vec![p]);
}

#[test]
fn per_source_rate_limit_applies_under_load_and_reassembly_stays_bounded() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let b_dh = sim.b.endpoint.public().dh;
    let key = mac1_key(&b_dh);
    let src: SocketAddr = "198.18.77.1:4000".parse().unwrap();
    let burst = HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST as u64;
    let fragment = |k: u32, cookie: Option<&[u8; 16]>| {
        let mut f = split_message(TYPE_INITIATION, k, &[7u8; 2500]).remove(0);
        let mac1 = append_macs(&mut f, &key, cookie);
        (f, mac1)
    };
    // Not under load: a source is never throttled (a peer rotating fast must not be).
    for k in 0..burst + 10 {
        sim.inject(Side::B, src, &fragment(k as u32, None).0);
    }
    assert_eq!(
        sim.drops(Side::B).rate_limited,
        0,
        "no rate limit without load"
    );
    assert!(
        sim.b.endpoint.reassembly_in_progress() <= 4,
        "per-source slots bounded"
    );
    // Under load: the source proves its address with a cookie, then is held to its rate.
    flood(
        &mut sim,
        UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND as usize,
        50_000,
    );
    assert_eq!(
        sim.b.endpoint.reassembly_in_progress(),
        REASSEMBLY_SLOTS_MAX,
        "slots bounded"
    );
    let (f, mac1) = fragment(9_000, None);
    sim.inject(Side::B, src, &f);
    let reply = sim
        .b
        .stray
        .iter()
        .rev()
        .find(|t| t.to == src)
        .expect("a cookie reply");
    let reply = CookieReply::decode(&reply.payload).unwrap();
    let cookie = open_cookie_reply(&b_dh, &reply, &[mac1]).expect("the cookie opens");
    let before = sim.drops(Side::B).rate_limited;
    for k in 0..burst + 10 {
        sim.inject(Side::B, src, &fragment(10_000 + k as u32, Some(&cookie)).0);
    }
    assert_eq!(
        sim.drops(Side::B).rate_limited - before,
        10,
        "a burst of {burst}, then refused"
    );
    // and a real handshake still gets through once the load has passed
    sim.run_for(Duration::from_secs(2));
    sim.establish();
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
}

type Specimens = Vec<(Side, Vec<u8>)>;

/// One captured datagram of every type, each unseen by its receiver.
fn specimens() -> (Sim, Specimens) {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let seen: Rc<RefCell<Specimens>> = Rc::default();
    let s = seen.clone();
    sim.filter = Some(Box::new(move |d| {
        s.borrow_mut().push((d.from, d.bytes.clone()));
        Fate::Deliver
    }));
    sim.establish();
    let mut out: Vec<(Side, Vec<u8>)> = seen
        .borrow()
        .iter()
        .filter(|(_, b)| b[0] == TYPE_INITIATION || b[0] == TYPE_RESPONSE)
        .map(|(s, b)| (s.other(), b.clone()))
        .collect();
    let data = hold(&mut sim, Side::A, TYPE_DATA);
    let p = sim.packet(Side::A, 4, 1);
    sim.send(Side::A, &[p]);
    out.push((Side::B, data.borrow()[0].clone()));
    sim.filter = None;
    (sim, out)
}

#[test]
fn truncated_datagrams_of_every_length_and_type_are_counted() {
    let (mut sim, specimens) = specimens();
    assert_eq!(specimens.len(), 3 + 2 + 1);
    for (to, d) in &specimens {
        let from = sim.site(to.other()).addr;
        for len in 0..d.len() {
            let got = inject_expect_drop(&mut sim, *to, from, &d[..len]);
            let expect = if d[0] == TYPE_DATA && len >= 32 {
                Counter::BadTag
            } else {
                Counter::Malformed
            };
            assert_eq!(got, expect, "type {} cut to {len}", d[0]);
        }
    }
    // a cookie reply of every wrong length
    for len in 1..COOKIE_REPLY_BYTES + 8 {
        if len == COOKIE_REPLY_BYTES {
            continue;
        }
        let mut d = vec![0u8; len];
        d[0] = TYPE_COOKIE_REPLY;
        let from = sim.b.addr;
        assert_eq!(
            inject_expect_drop(&mut sim, Side::A, from, &d),
            Counter::Malformed
        );
    }
    let (_, data) = specimens.last().unwrap();
    let from = sim.a.addr;
    assert!(
        sim.inject(Side::B, from, data).is_some(),
        "the whole datagram still opens"
    );
}

#[test]
fn random_garbage_of_every_type_is_counted_never_delivered() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    let sim = RefCell::new(sim);
    let mut runner = TestRunner::new(Config {
        cases: 600,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0u8..7,
        proptest::collection::vec(any::<u8>(), 0..1500),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(kind, mut bytes, mac_like)| {
            let mut sim = sim.borrow_mut();
            if let Some(b) = bytes.first_mut() {
                *b = if kind == 6 { *b } else { kind };
            }
            if mac_like && bytes.len() >= 12 {
                bytes[1..4].fill(0); // reserved bytes right, to get past the first check
            }
            let from: SocketAddr = "198.18.99.1:7".parse().unwrap();
            let before = (sim.total_drops(Side::A), sim.a.received.len());
            let out = sim.inject(Side::A, from, &bytes);
            prop_assert!(out.is_none());
            prop_assert_eq!(sim.total_drops(Side::A), before.0 + 1);
            Ok(())
        })
        .unwrap();
    let mut sim = sim.into_inner();
    assert!(sim.has_current(Side::A));
    let p = sim.packet(Side::B, 10, 1);
    sim.send(Side::B, std::slice::from_ref(&p));
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.a.received, vec![p]);
}
