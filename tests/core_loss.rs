//! Loss, reordering, duplication and replay of handshake and data datagrams.

mod support;

use qshield::constants::{REASSEMBLY_TIMEOUT, REKEY_TIMEOUT_INITIAL, REPLAY_WINDOW_PACKETS};
use qshield::proto::events::{Event, InitiationReason};
use qshield::proto::wire::{
    FRAGMENT_PAYLOAD_MAX_BYTES, INITIATION_FIXED_BYTES, INITIATION_PAYLOAD_MIN_BYTES,
    RESPONSE_BYTES, TYPE_DATA, TYPE_INITIATION, TYPE_RESPONSE, fragment_count,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use support::sim::{Fate, Side, Sim, budget};

const MIB: u64 = 1 << 20;

type Tap = Rc<RefCell<Vec<(Side, Vec<u8>)>>>;

/// Installs a filter that records every datagram and delivers it.
fn tap(sim: &mut Sim) -> Tap {
    let seen: Tap = Rc::default();
    let s = seen.clone();
    sim.filter = Some(Box::new(move |d| {
        s.borrow_mut().push((d.from, d.bytes.clone()));
        Fate::Deliver
    }));
    seen
}

fn of_type(tap: &Tap, from: Side, t: u8) -> Vec<Vec<u8>> {
    tap.borrow()
        .iter()
        .filter(|(s, b)| *s == from && b[0] == t)
        .map(|(_, b)| b.clone())
        .collect()
}

fn tags(received: &[Vec<u8>]) -> Vec<u32> {
    received.iter().map(|p| Sim::tag_of(p)).collect()
}

/// Data flows both ways, and each side holds exactly one session that matches the other's.
fn assert_tunnel_works(sim: &mut Sim, tag: u32) {
    let (na, nb) = (sim.a.received.len(), sim.b.received.len());
    let p = sim.packet(Side::A, 40, tag);
    sim.send(Side::A, &[p]);
    let q = sim.packet(Side::B, 40, tag + 1);
    sim.send(Side::B, &[q]);
    sim.run_for(Duration::from_millis(10));
    assert_eq!(tags(&sim.b.received[nb..]), vec![tag], "A to B");
    assert_eq!(tags(&sim.a.received[na..]), vec![tag + 1], "B to A");
}

fn established(sim: &Sim, s: Side) -> usize {
    sim.count_events(s, |e| matches!(e, Event::SessionEstablished { .. }))
}

#[test]
fn message_sizes_match_the_fragment_counts() {
    let init = INITIATION_FIXED_BYTES + INITIATION_PAYLOAD_MIN_BYTES;
    assert_eq!(fragment_count(init), 3, "initiation: 3 fragments");
    assert_eq!(fragment_count(RESPONSE_BYTES), 2, "response: 2 fragments");
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let seen = tap(&mut sim);
    sim.establish();
    assert_eq!(of_type(&seen, Side::A, TYPE_INITIATION).len(), 3);
    assert_eq!(of_type(&seen, Side::B, TYPE_RESPONSE).len(), 2);
    for f in of_type(&seen, Side::A, TYPE_INITIATION) {
        assert!(f.len() <= 12 + FRAGMENT_PAYLOAD_MAX_BYTES + 32);
    }
}

#[test]
fn dropping_each_handshake_fragment_in_turn_is_recovered_by_a_retry() {
    for (msg_type, count) in [(TYPE_INITIATION, 3u8), (TYPE_RESPONSE, 2)] {
        for index in 0..count {
            let mut sim = Sim::new(budget(64 * MIB, 120));
            let mut dropped = false;
            sim.filter = Some(Box::new(move |d| {
                if !dropped && d.bytes[0] == msg_type && d.bytes[1] == index {
                    assert_eq!(d.bytes[2], count, "fragment count on the wire");
                    dropped = true;
                    return Fate::Drop;
                }
                Fate::Deliver
            }));
            // less than the first retransmission timeout: only the first attempt was sent
            sim.a.endpoint.start(sim.now);
            sim.collect(Side::A);
            sim.run_for(REKEY_TIMEOUT_INITIAL / 2);
            assert!(
                !sim.has_current(Side::A),
                "type {msg_type} index {index} was lost"
            );
            sim.run_for(REKEY_TIMEOUT_INITIAL + Duration::from_millis(400));
            assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
            // a lost response is answered again from the cache: one session at B, not two
            assert_eq!(
                sim.status(Side::B).handshakes,
                1,
                "type {msg_type} index {index}"
            );
            assert_eq!(sim.status(Side::A).current_key.unwrap().epoch, 1);
            assert_tunnel_works(&mut sim, 10);
        }
    }
}

#[test]
fn handshake_blackout_then_recovery_and_timeout_after_attempt_time() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let open = Rc::new(RefCell::new(false));
    let o = open.clone();
    sim.filter = Some(Box::new(move |d| {
        if d.bytes[0] <= 3 && !*o.borrow() {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_secs(20));
    assert!(!sim.has_current(Side::A));
    assert!(sim.status(Side::A).handshake_in_progress);
    *open.borrow_mut() = true;
    let reopened = sim.now;
    sim.run_for(Duration::from_secs(6));
    let at = sim
        .first_event_at(Side::A, |e| matches!(e, Event::SessionEstablished { .. }))
        .unwrap();
    assert!(
        at - reopened < Duration::from_millis(5334),
        "next retry completes it"
    );
    assert_eq!(
        tags(&sim.b.received),
        vec![1],
        "the staged packet survived the blackout"
    );
    let starts = sim.count_events(Side::A, |e| matches!(e, Event::HandshakeStarted { .. }));
    assert_eq!(starts, 1, "retries are not new handshakes");

    // A blackout longer than the attempt time: the handshake is abandoned, then new
    // traffic starts a new one.
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let open = Rc::new(RefCell::new(false));
    let o = open.clone();
    sim.filter = Some(Box::new(move |d| {
        if d.bytes[0] <= 3 && !*o.borrow() {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_secs(100));
    let gave_up = sim
        .first_event_at(Side::A, |e| matches!(e, Event::HandshakeTimedOut { .. }))
        .expect("timed out");
    assert!(gave_up >= qshield::proto::time::Instant::ZERO + Duration::from_secs(90));
    assert_eq!(
        sim.status(Side::A).drops.no_session,
        1,
        "the staged packet is dropped, counted"
    );
    *open.borrow_mut() = true;
    let p = sim.packet(Side::A, 10, 2);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_millis(10));
    assert_eq!(tags(&sim.b.received), vec![2]);
}

#[test]
fn reordered_and_duplicated_fragments_complete_one_handshake() {
    // reversed order: each fragment is delayed more the lower its index
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.filter = Some(Box::new(|d| {
        if matches!(d.bytes[0], TYPE_INITIATION | TYPE_RESPONSE) {
            Fate::Delay(Duration::from_millis(u64::from(4 - d.bytes[1])))
        } else {
            Fate::Deliver
        }
    }));
    sim.establish();
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
    assert_eq!(
        (established(&sim, Side::A), established(&sim, Side::B)),
        (1, 1)
    );
    assert_tunnel_works(&mut sim, 1);

    // every handshake fragment twice, the copy 3 ms later
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.filter = Some(Box::new(|d| {
        if matches!(d.bytes[0], TYPE_INITIATION | TYPE_RESPONSE) {
            Fate::Duplicate(Duration::from_millis(3))
        } else {
            Fate::Deliver
        }
    }));
    sim.establish();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        (established(&sim, Side::A), established(&sim, Side::B)),
        (1, 1)
    );
    assert_eq!(
        sim.status(Side::B).handshakes,
        1,
        "the duplicate initiation is not answered anew"
    );
    assert_tunnel_works(&mut sim, 1);

    // duplicates arriving interleaved with the originals (1 µs later)
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.filter = Some(Box::new(|d| {
        if matches!(d.bytes[0], TYPE_INITIATION | TYPE_RESPONSE) {
            Fate::Duplicate(Duration::from_micros(1))
        } else {
            Fate::Deliver
        }
    }));
    sim.establish();
    assert_eq!(
        (established(&sim, Side::A), established(&sim, Side::B)),
        (1, 1)
    );
    assert_tunnel_works(&mut sim, 1);
}

#[test]
fn response_delayed_past_the_first_retry_is_served_from_the_cache() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let mut first_response = true;
    sim.filter = Some(Box::new(move |d| {
        if d.bytes[0] == TYPE_RESPONSE && first_response {
            if d.bytes[1] == 1 {
                first_response = false;
            }
            return Fate::Delay(Duration::from_millis(1500));
        }
        Fate::Deliver
    }));
    sim.establish();
    sim.run_for(Duration::from_secs(3));
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
    let b = sim.status(Side::B);
    assert_eq!(
        b.handshakes, 1,
        "the retried initiation got the cached response"
    );
    assert_eq!(b.current_key.unwrap().epoch, 1);
    assert_eq!(sim.status(Side::A).current_key.unwrap().epoch, 1);
    // the late original response finds no pending handshake: harmless, and no data was
    // lost (unknown_index counts data under a dropped session only)
    assert_eq!(
        sim.drops(Side::A).unknown_index,
        0,
        "a late copy of an answered response is not data under a dropped session"
    );
    assert_eq!(sim.drops(Side::A).stale_reply, 1, "it is a stale reply");
    assert_tunnel_works(&mut sim, 1);
}

/// Establishes a sim and sends `first` packets from A held back by the wire, then
/// `then` packets delivered at once; returns the sim and the held datagrams.
fn reorder(first: u32, then: u32) -> (Sim, Vec<Vec<u8>>) {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    let held = Rc::new(RefCell::new(Vec::new()));
    let h = held.clone();
    sim.filter = Some(Box::new(move |d| {
        if d.bytes[0] == TYPE_DATA && d.from == Side::A && h.borrow().len() < first as usize {
            h.borrow_mut().push(d.bytes.clone());
            return Fate::Drop;
        }
        Fate::Deliver
    }));
    for chunk in (0..first + then).collect::<Vec<_>>().chunks(256) {
        let batch: Vec<_> = chunk.iter().map(|&t| sim.packet(Side::A, 4, t)).collect();
        sim.send(Side::A, &batch);
        sim.run_for(Duration::from_micros(100));
    }
    sim.run_for(Duration::from_millis(5));
    let held = held.borrow().clone();
    (sim, held)
}

fn counter(d: &[u8]) -> u64 {
    u64::from_le_bytes(d[8..16].try_into().unwrap())
}

#[test]
fn data_reordered_within_the_window_is_accepted() {
    let (mut sim, held) = reorder(100, 3000);
    assert_eq!(sim.b.received.len(), 3000);
    let from = sim.a.addr;
    for d in held.iter().rev() {
        assert!(
            sim.inject(Side::B, from, d).is_some(),
            "counter {} accepted",
            counter(d)
        );
    }
    let mut got = tags(&sim.b.received);
    got.sort();
    assert_eq!(got, (0..3100).collect::<Vec<_>>());
    assert_eq!(sim.total_drops(Side::B), 0);
}

#[test]
fn data_reordered_beyond_the_window_is_dropped_as_replay_at_the_exact_edge() {
    let then = REPLAY_WINDOW_PACKETS as u32 - 20;
    let (mut sim, held) = reorder(40, then);
    let highest = counter(&held[0]) + 40 + u64::from(then) - 1;
    let from = sim.a.addr;
    let mut expect_replay = 0;
    for d in &held {
        let distance = highest - counter(d);
        let accepted = sim.inject(Side::B, from, d).is_some();
        assert_eq!(
            accepted,
            distance < REPLAY_WINDOW_PACKETS,
            "distance {distance}"
        );
        expect_replay += u64::from(!accepted);
    }
    assert!(
        expect_replay > 0 && expect_replay < 40,
        "both sides of the edge were exercised"
    );
    assert_eq!(sim.status(Side::B).drops.replay, expect_replay);
    assert_eq!(sim.total_drops(Side::B), expect_replay);
    assert_tunnel_works(&mut sim, 90_000);
}

#[test]
fn replayed_data_is_dropped_and_counted() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    let seen = tap(&mut sim);
    let batch: Vec<_> = (0..10).map(|t| sim.packet(Side::A, 100, t)).collect();
    sim.send(Side::A, &batch);
    sim.run_for(Duration::from_millis(5));
    let from = sim.a.addr;
    for d in of_type(&seen, Side::A, TYPE_DATA) {
        assert_eq!(sim.inject(Side::B, from, &d), None);
        assert_eq!(sim.inject(Side::B, from, &d), None);
    }
    assert_eq!(sim.b.received.len(), 10, "each packet once");
    assert_eq!(sim.status(Side::B).drops.replay, 20);
    assert_tunnel_works(&mut sim, 100);
}

#[test]
fn data_loss_during_rotations_loses_only_what_the_wire_dropped() {
    let mut sim = Sim::new(budget(MIB, 120));
    sim.establish();
    // drop the first packet under every new key (the one that would confirm it at B)
    // and every 7th data packet besides
    let mut last_index: Option<u32> = None;
    let mut n = 0u64;
    let lost = Rc::new(RefCell::new(Vec::new()));
    let l = lost.clone();
    sim.filter = Some(Box::new(move |d| {
        if d.bytes[0] != TYPE_DATA || d.from != Side::A || d.bytes.len() < 100 {
            return Fate::Deliver;
        }
        n += 1;
        let index = u32::from_le_bytes(d.bytes[4..8].try_into().unwrap());
        let new_key = last_index.replace(index) != Some(index) && n > 1;
        if new_key || n.is_multiple_of(7) {
            l.borrow_mut().push(n);
            return Fate::Drop;
        }
        Fate::Deliver
    }));
    let count = 6000u32; // ~7 MiB: 6 rotations
    let mut tag = 0;
    while tag < count {
        let batch: Vec<_> = (tag..tag + 64)
            .map(|t| sim.packet(Side::A, 1200, t))
            .collect();
        sim.send(Side::A, &batch);
        tag += 64;
        sim.run_for(Duration::from_millis(8));
    }
    sim.run_for(Duration::from_millis(20));
    let st = sim.status(Side::A);
    assert!(st.rotations >= 6, "{}", st.rotations);
    let lost = lost.borrow();
    let got = tags(&sim.b.received);
    assert_eq!(
        got.len() + lost.len(),
        tag as usize,
        "only the dropped ones are missing"
    );
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    for &k in lost.iter() {
        assert!(
            !got.contains(&(k as u32 - 1)),
            "packet {} was dropped",
            k - 1
        );
    }
    assert_eq!(sim.total_drops(Side::B), 0);
    assert_eq!(
        sim.status(Side::B).current_key.unwrap().epoch,
        st.current_key.unwrap().epoch
    );
}

#[test]
fn replayed_initiation_is_answered_from_cache_then_ignored_once_superseded() {
    let mut sim = Sim::new(budget(64 * MIB, 20));
    let seen = tap(&mut sim);
    sim.establish();
    let first = of_type(&seen, Side::A, TYPE_INITIATION);
    assert_eq!(first.len(), 3);
    let from = sim.a.addr;
    // right away: the same initiation is answered with the cached response, no new session
    sim.run_for(Duration::from_millis(10));
    for f in &first {
        sim.inject(Side::B, from, f);
    }
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.status(Side::B).handshakes, 1);
    assert_eq!(sim.status(Side::A).current_key.unwrap().epoch, 1);
    assert_eq!(
        sim.drops(Side::A).stale_reply,
        1,
        "the re-sent response is dropped by A"
    );
    // after a rotation by time, the old initiation's timestamp is stale: ignored (B no
    // longer keeps it as a completed message: that ends REASSEMBLY_TIMEOUT after its last
    // fragment, before the rotation)
    assert!(REASSEMBLY_TIMEOUT < Duration::from_secs(20));
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_secs(21));
    assert_eq!(sim.status(Side::B).handshakes, 2, "rotated");
    for f in &first {
        sim.inject(Side::B, from, f);
    }
    sim.run_for(Duration::from_millis(10));
    let ignored: Vec<_> = sim
        .b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::InitiationIgnored { why, .. } => Some(*why),
            _ => None,
        })
        .collect();
    assert_eq!(ignored.len(), 1);
    assert!(ignored[0].contains("replayed"), "{ignored:?}");
    assert_eq!(
        sim.status(Side::B).handshakes,
        2,
        "no session from a replay"
    );
    assert_tunnel_works(&mut sim, 5);
}

#[test]
fn replayed_response_is_dropped_and_counted() {
    let mut sim = Sim::new(budget(64 * MIB, 10));
    let seen = tap(&mut sim);
    sim.establish();
    let response = of_type(&seen, Side::B, TYPE_RESPONSE);
    assert_eq!(response.len(), 2);
    let from = sim.b.addr;
    for f in &response {
        sim.inject(Side::A, from, f);
    }
    assert_eq!(
        sim.drops(Side::A).stale_reply,
        1,
        "no handshake is pending for it"
    );
    assert_eq!(sim.status(Side::A).handshakes, 1);
    // and while a later handshake is pending
    let before = sim.drops(Side::A).stale_reply;
    sim.filter = Some(Box::new(|d| {
        if d.bytes[0] == TYPE_INITIATION {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_secs(10));
    assert!(sim.a.events.iter().any(|e| matches!(
        e,
        Event::HandshakeStarted {
            reason: InitiationReason::Rekey(_),
            ..
        }
    )));
    assert!(sim.status(Side::A).handshake_in_progress);
    for f in &response {
        sim.inject(Side::A, from, f);
    }
    assert_eq!(sim.drops(Side::A).stale_reply, before + 1);
    assert_eq!(
        sim.status(Side::A).handshakes,
        1,
        "the replay completed nothing"
    );
    sim.filter = None;
    sim.run_for(Duration::from_secs(6));
    assert_eq!(sim.status(Side::A).handshakes, 2);
    assert_tunnel_works(&mut sim, 7);
}
