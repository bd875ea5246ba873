//! The sans-IO core driven by two endpoints over a simulated wire and clock.

mod support;

use qshield::proto::events::{Event, Role};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use support::sim::{Fate, Side, Sim, budget};

const MIB: u64 = 1 << 20;

#[test]
fn handshake_completes_and_data_flows_both_ways() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    assert!(sim.has_current(Side::A), "initiator has a session");
    assert!(
        sim.has_current(Side::B),
        "responder confirmed by the initiator's keepalive"
    );
    let p = sim.packet(Side::A, 100, 1);
    sim.send(Side::A, std::slice::from_ref(&p));
    let q = sim.packet(Side::B, 50, 2);
    sim.send(Side::B, std::slice::from_ref(&q));
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.b.received, vec![p]);
    assert_eq!(sim.a.received, vec![q]);
    let est = sim.a.events.iter().find(|e| {
        matches!(
            e,
            Event::SessionEstablished {
                role: Role::Initiator,
                ..
            }
        )
    });
    assert!(est.is_some(), "events: {:?}", sim.a.events);
}

#[test]
fn first_packet_triggers_handshake_and_is_not_lost() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let p = sim.packet(Side::A, 10, 7);
    sim.send(Side::A, std::slice::from_ref(&p));
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        sim.b.received,
        vec![p],
        "staged packet delivered after the handshake"
    );
}

#[test]
fn rotation_by_bytes_loses_nothing() {
    let mut sim = Sim::new(budget(2 * MIB, 120));
    sim.establish();
    let mut sent = 0u32;
    for _ in 0..200 {
        let batch: Vec<_> = (0..64)
            .map(|_| {
                sent += 1;
                sim.packet(Side::A, 1200, sent)
            })
            .collect();
        sim.send(Side::A, &batch);
        sim.run_for(Duration::from_micros(500));
    }
    sim.run_for(Duration::from_millis(20));
    assert_eq!(
        sim.b.received.len() as u32,
        sent,
        "every packet arrived across rotations"
    );
    let st = sim.status(Side::A);
    assert!(
        st.rotations >= 5,
        "15 MiB over 2 MiB budgets rotates at least 5 times: {}",
        st.rotations
    );
    assert_eq!(st.drops.no_session, 0);
}

#[test]
fn rotation_by_time() {
    let mut sim = Sim::new(budget(64 * MIB, 10));
    sim.establish();
    for _ in 0..10 {
        let p = sim.packet(Side::A, 10, 0);
        sim.send(Side::A, &[p]);
        sim.run_for(Duration::from_secs(5));
    }
    let st = sim.status(Side::A);
    assert!(
        st.rotations >= 4,
        "50 s over 10 s keys: {} rotations",
        st.rotations
    );
    assert!(st.current_key.unwrap().age_seconds < 15.0);
}

#[test]
fn lost_handshake_datagrams_are_retried() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let mut dropped = 0;
    sim.filter = Some(Box::new(move |d| {
        if d.bytes[0] <= 2 && dropped < 3 {
            dropped += 1;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    sim.establish();
    sim.run_for(Duration::from_secs(10));
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
}

#[test]
fn simultaneous_initiation_resolves_to_one_session_each() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.a.endpoint.start(sim.now);
    sim.b.endpoint.start(sim.now);
    sim.collect(Side::A);
    sim.collect(Side::B);
    sim.run_for(Duration::from_secs(1));
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
    let (ea, eb) = (
        sim.status(Side::A).current_key.unwrap().epoch,
        sim.status(Side::B).current_key.unwrap().epoch,
    );
    assert_eq!((ea, eb), (1, 1), "exactly one handshake completed");
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, std::slice::from_ref(&p));
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.b.received, vec![p]);
}

#[test]
fn restarted_peer_reconnects() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    sim.restart(Side::B);
    sim.b.endpoint.start(sim.now);
    sim.collect(Side::B);
    sim.run_for(Duration::from_millis(100));
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, std::slice::from_ref(&p));
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.b.received, vec![p]);
}

#[test]
fn replayed_data_is_dropped_and_counted() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    let copies = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&copies);
    sim.filter = Some(Box::new(move |d| {
        if d.from == Side::A && d.bytes[0] == 4 && d.bytes.len() > 32 {
            seen.borrow_mut().push(d.bytes.clone());
        }
        Fate::Deliver
    }));
    let packets: Vec<_> = (1..=3).map(|tag| sim.packet(Side::A, 10, tag)).collect();
    sim.send(Side::A, &packets);
    sim.run_for(Duration::from_millis(10));
    assert_eq!(sim.b.received, packets, "the originals arrive once each");
    let replays = copies.borrow().clone();
    assert_eq!(replays.len(), 3, "the filter saw the three data datagrams");
    let before = sim.status(Side::B).drops.replay;
    let from = sim.a.addr;
    for bytes in &replays {
        assert_eq!(
            sim.inject(Side::B, from, bytes),
            None,
            "a replay is not delivered"
        );
    }
    // Replayed again, out of order: still refused.
    assert_eq!(sim.inject(Side::B, from, &replays[0]), None);
    assert_eq!(sim.b.received.len(), 3, "nothing delivered twice");
    assert_eq!(
        sim.status(Side::B).drops.replay - before,
        4,
        "every replay counted"
    );
}

/// A small byte budget at a high rate rotates ~30 times a second: the responder must not
/// rate-limit the rekey handshakes of a legitimate peer while it is not under load (a
/// dropped rekey fragment stalled the namespace rotation test for a whole retransmission
/// timeout, past the hard limit).
#[test]
fn fast_rotation_is_not_rate_limited() {
    let mut sim = Sim::new(budget(MIB, 120));
    sim.establish();
    let mut sent = 0u32;
    for _ in 0..800 {
        let batch: Vec<_> = (0..64)
            .map(|_| {
                sent += 1;
                sim.packet(Side::A, 1200, sent)
            })
            .collect();
        sim.send(Side::A, &batch);
        sim.run_for(Duration::from_micros(2500));
    }
    sim.run_for(Duration::from_millis(20));
    let st = sim.status(Side::A);
    assert!(st.rotations >= 50, "rotations: {}", st.rotations);
    assert_eq!(sim.drops(Side::B).rate_limited, 0);
    assert_eq!(st.drops.no_session, 0);
    assert_eq!(
        sim.b.received.len() as u32,
        sent,
        "every packet arrived across {} rotations",
        st.rotations
    );
}
