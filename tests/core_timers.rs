//! Keepalives, dead-peer detection and endpoint roaming in the sans-IO core.

mod support;

use qshield::proto::events::{Event, InitiationReason};
use std::net::SocketAddr;
use std::time::Duration;
use support::sim::{Fate, Side, Sim, SimOptions, budget};

const MIB: u64 = 1 << 20;

fn packets_received(sim: &Sim, s: Side) -> u64 {
    sim.status(s).current_key.map_or(0, |k| k.packets_received)
}

#[test]
fn passive_keepalive_answers_one_way_traffic() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    let before = packets_received(&sim, Side::A);
    let p = sim.packet(Side::A, 100, 1);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_secs(9));
    assert_eq!(
        packets_received(&sim, Side::A),
        before,
        "nothing from B before the keepalive timeout"
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        packets_received(&sim, Side::A),
        before + 1,
        "B sent one keepalive after 10 s of silence"
    );
    sim.run_for(Duration::from_secs(30));
    assert_eq!(
        packets_received(&sim, Side::A),
        before + 1,
        "and only one: no data, no keepalives"
    );
}

#[test]
fn persistent_keepalive_keeps_an_idle_tunnel_alive() {
    let mut o = SimOptions::new(budget(64 * MIB, 600));
    o.persistent_keepalive = Some(Duration::from_secs(5));
    let mut sim = Sim::with_options(o);
    sim.establish();
    let before = packets_received(&sim, Side::B);
    sim.run_for(Duration::from_secs(61));
    let got = packets_received(&sim, Side::B) - before;
    assert!(
        (11..=13).contains(&got),
        "one keepalive every 5 s for 61 s, got {got}"
    );
}

#[test]
fn dead_peer_triggers_a_new_handshake() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    let p = sim.packet(Side::A, 100, 1);
    sim.filter = Some(Box::new(|d| {
        if d.from == Side::B {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
    sim.send(Side::A, &[p]);
    let sent_at = sim.now;
    sim.run_for(Duration::from_secs(20));
    let at = sim
        .first_event_at(Side::A, |e| {
            matches!(
                e,
                Event::HandshakeStarted {
                    reason: InitiationReason::DeadPeer,
                    ..
                }
            )
        })
        .expect("a dead-peer handshake");
    let waited = at - sent_at;
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(16),
        "after 15 s: {waited:?}"
    );
    sim.filter = None;
    sim.run_for(Duration::from_secs(10));
    assert!(
        sim.status(Side::A).current_key.unwrap().epoch >= 2,
        "the new handshake completed once B was heard"
    );
}

#[test]
fn authenticated_packet_from_a_new_address_moves_the_endpoint() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    let roamed: SocketAddr = "198.18.7.7:40000".parse().unwrap();
    // An unauthenticated datagram from the new address changes nothing.
    let mut junk = sim.packet(Side::A, 10, 0);
    junk.insert(0, 4);
    sim.inject(Side::B, roamed, &junk);
    assert_eq!(sim.status(Side::B).endpoint, Some(sim.a.addr));
    // A moves; its next data packet comes from the new address.
    sim.a.addr = roamed;
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.status(Side::B).endpoint, Some(roamed));
    assert!(
        sim.count_events(
            Side::B,
            |e| matches!(e, Event::EndpointChanged { to, .. } if *to == roamed)
        ) == 1
    );
    // B's replies now go to the new address (the sim delivers only to the current one).
    let q = sim.packet(Side::B, 10, 2);
    sim.send(Side::B, std::slice::from_ref(&q));
    sim.run_for(Duration::from_millis(5));
    assert_eq!(sim.a.received.last(), Some(&q));
}
