//! Message 1 proves only the initiator's X25519 static key; its ML-KEM key is proven later
//! (its first data packet on the new session). Someone holding only site A's X25519 private
//! key can therefore forge initiations that B answers, but nothing they cause may last: no
//! replay timestamp, no endpoint move, no loss of B's own handshake, and a bounded number of
//! KME calls.

mod support;

use qshield::constants::{
    INITIATION_TIMESTAMP_AHEAD_MAX, QKD_UNCONFIRMED_DEC_KEYS_BURST,
    QKD_UNCONFIRMED_DEC_KEYS_REFILL_INTERVAL,
};
use qshield::proto::events::{Event, Role};
use qshield::proto::qkd_flow::QkdPolicy;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use support::sim::{Fate, Sim, SimOptions, budget};

const MIB: u64 = 1 << 20;

/// Where the forger sends from (the simulated underlay's test range).
fn attacker() -> SocketAddr {
    "198.18.0.66:4444".parse().unwrap()
}

/// B's wall clock in ns (the sim starts B at 2 ms past the epoch).
fn b_clock(sim: &Sim) -> u64 {
    2_000_000 + sim.now.as_nanos()
}

fn inject_all(sim: &mut Sim, fragments: &[Vec<u8>]) {
    for f in fragments {
        sim.inject(support::sim::Side::B, attacker(), f);
    }
}

/// One packet each way gets through.
fn assert_tunnel_works(sim: &mut Sim, tag: u32) {
    use support::sim::Side;
    let (ra, rb) = (sim.a.received.len(), sim.b.received.len());
    let p = sim.packet(Side::A, 10, tag);
    sim.send(Side::A, std::slice::from_ref(&p));
    let q = sim.packet(Side::B, 10, tag + 1);
    sim.send(Side::B, std::slice::from_ref(&q));
    sim.run_for(Duration::from_millis(20));
    assert_eq!(sim.b.received[rb..], [p], "A to B");
    assert_eq!(sim.a.received[ra..], [q], "B to A");
}

#[test]
fn forged_initiations_with_future_timestamps_do_not_lock_a_out() {
    use support::sim::Side;
    let mut sim = Sim::new(budget(64 * MIB, 10));
    // 2^64 - 1: far beyond any clock skew, refused outright (no response, no state)
    let far = sim.forged_initiation_from_a(u64::MAX, None);
    inject_all(&mut sim, &far);
    // just inside the allowed skew: answered, but its timestamp is not kept
    let ahead = b_clock(&sim) + INITIATION_TIMESTAMP_AHEAD_MAX.as_nanos() as u64 - 1_000_000_000;
    let near = sim.forged_initiation_from_a(ahead, None);
    inject_all(&mut sim, &near);
    sim.run_for(Duration::from_millis(10));
    sim.establish();
    assert!(
        sim.has_current(Side::A) && sim.has_current(Side::B),
        "A's genuine handshake did not complete after the forgeries"
    );
    assert_tunnel_works(&mut sim, 1);
    assert!(
        sim.b.stray.len() == 2,
        "B answered a timestamp of 2^64-1 (only the near one is answered, 2 fragments): {}",
        sim.b.stray.len()
    );
    assert!(
        sim.b
            .events
            .iter()
            .any(|e| matches!(e, Event::InitiationIgnored { why, .. } if why.contains("ahead"))),
        "{:?}",
        sim.b.events
    );
    // and A's later rotations complete too
    sim.run_for(Duration::from_secs(11));
    assert_eq!(sim.status(Side::A).handshakes, 2, "A rotated");
    assert_eq!(
        sim.status(Side::B).current_key.unwrap().role,
        Role::Responder
    );
    assert_tunnel_works(&mut sim, 3);
}

#[test]
fn a_forged_initiation_does_not_move_b_endpoint() {
    use support::sim::Side;
    let mut sim = Sim::new(budget(64 * MIB, 10));
    sim.establish();
    let forged = sim.forged_initiation_from_a(b_clock(&sim) + 1_000_000, None);
    inject_all(&mut sim, &forged);
    assert_eq!(
        sim.status(Side::B).endpoint,
        Some(sim.a.addr),
        "B's endpoint for A moved to the forger"
    );
    assert_tunnel_works(&mut sim, 1);
    assert!(
        !sim.b.events.iter().any(|e| matches!(
            e,
            Event::EndpointChanged { to, .. } if *to == attacker()
        )),
        "{:?}",
        sim.b.events
    );
}

#[test]
fn a_forged_initiation_does_not_make_b_drop_its_own_handshake() {
    use support::sim::Side;
    // B answers A's initiations while its own is pending only if B has the higher key
    let mut sim = loop {
        let sim = Sim::new(budget(64 * MIB, 120));
        if sim.b.endpoint.public().dh.0 > sim.a.endpoint.public().dh.0 {
            break sim;
        }
    };
    let block = Rc::new(Cell::new(true));
    let blocking = block.clone();
    sim.filter = Some(Box::new(move |d| {
        if blocking.get() && d.from == Side::B && d.bytes[0] == 1 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    let now = sim.now;
    sim.b.endpoint.start(now);
    sim.collect(Side::B);
    assert!(sim.status(Side::B).handshake_in_progress);
    let forged = sim.forged_initiation_from_a(b_clock(&sim) + 1_000_000, None);
    inject_all(&mut sim, &forged);
    assert!(
        sim.status(Side::B).handshake_in_progress,
        "B dropped its own pending handshake for a forged initiation"
    );
    block.set(false);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        sim.status(Side::B).current_key.map(|k| k.role),
        Some(Role::Initiator),
        "B's own handshake completed on its retransmission"
    );
    assert_tunnel_works(&mut sim, 1);
}

#[test]
fn forged_initiations_cause_a_bounded_number_of_kme_calls() {
    use support::sim::Side;
    let mut o = SimOptions::new(budget(64 * MIB, 10));
    o.qkd_policy = (QkdPolicy::Require, QkdPolicy::Require);
    let mut sim = Sim::with_options(o);
    sim.establish();
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
    let before = sim.kme.dec_calls;
    let start = sim.now;
    // 100 forged initiations, 3 ms apart (above the flood limit), each naming a key_ID
    for i in 0..100u64 {
        let id = format!("00000000-0000-4000-8000-ffff{i:08x}");
        let forged = sim.forged_initiation_from_a(b_clock(&sim) + 1_000_000, Some(&id));
        inject_all(&mut sim, &forged);
        sim.run_for(Duration::from_millis(3));
    }
    let elapsed = sim.now - start;
    let bound = u64::from(QKD_UNCONFIRMED_DEC_KEYS_BURST)
        + (elapsed.as_nanos() / QKD_UNCONFIRMED_DEC_KEYS_REFILL_INTERVAL.as_nanos()) as u64;
    let calls = sim.kme.dec_calls - before;
    assert!(
        calls <= bound,
        "{calls} dec_keys calls from 100 forged initiations in {elapsed:?} (bound {bound})"
    );
    // A's genuine rotation still completes
    sim.run_for(Duration::from_secs(11));
    assert_eq!(sim.status(Side::A).handshakes, 2, "A rotated");
    assert!(
        sim.status(Side::B)
            .current_key
            .unwrap()
            .qkd_key_id
            .is_some()
    );
    assert_tunnel_works(&mut sim, 1);
}
