//! Inner-source filtering: an authenticated data packet whose inner source lies outside the
//! sending peer's `allowed_ips` is dropped and counted (`disallowed_source`), is not
//! delivered, and has no other effect: it neither moves the peer's endpoint (roaming) nor
//! confirms the responder's new session. Only a packet the peer may send does that.

mod support;

use qshield::proto::events::Event;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use support::sim::{Fate, Side, Sim, budget};

const MIB: u64 = 1 << 20;

/// A packet from A whose inner source (198.19.0.99) is outside B's allowed IPs for A.
fn spoofed_source_packet(sim: &Sim, tag: u32) -> Vec<u8> {
    let mut p = sim.packet(Side::A, 20, tag);
    p[12..16].copy_from_slice(&[198, 19, 0, 99]);
    p
}

/// Captures A's data datagrams instead of delivering them.
fn capture_data_from_a(sim: &mut Sim) -> Rc<RefCell<Vec<Vec<u8>>>> {
    let captured = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&captured);
    sim.filter = Some(Box::new(move |d| {
        if d.from == Side::A && d.bytes[0] == 4 {
            sink.borrow_mut().push(d.bytes.clone());
            return Fate::Drop;
        }
        Fate::Deliver
    }));
    captured
}

#[test]
fn a_disallowed_inner_source_is_dropped_counted_and_does_not_move_the_endpoint() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    assert!(sim.has_current(Side::B));
    let endpoint_before = sim.status(Side::B).endpoint;
    let captured = capture_data_from_a(&mut sim);
    let p = spoofed_source_packet(&sim, 7);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_millis(5));
    let datagrams = captured.borrow().clone();
    assert_eq!(datagrams.len(), 1, "A sealed the packet");

    // Authentic (sealed by A's session) but from a new underlay address.
    let roamed: SocketAddr = "198.18.7.7:4000".parse().unwrap();
    let before = sim.status(Side::B).drops.disallowed_source;
    assert_eq!(sim.inject(Side::B, roamed, &datagrams[0]), None);
    let st = sim.status(Side::B);
    assert_eq!(st.drops.disallowed_source, before + 1, "counted");
    assert!(sim.b.received.is_empty(), "not delivered");
    assert_eq!(st.endpoint, endpoint_before, "the endpoint did not move");
    assert_eq!(
        sim.count_events(Side::B, |e| matches!(e, Event::EndpointChanged { .. })),
        0
    );

    // The same peer with an allowed source from the new address does roam.
    sim.send(Side::A, &[sim.packet(Side::A, 20, 8)]);
    sim.run_for(Duration::from_millis(5));
    let good = captured.borrow().last().cloned().unwrap();
    assert!(sim.inject(Side::B, roamed, &good).is_some());
    assert_eq!(sim.status(Side::B).endpoint, Some(roamed));
}

#[test]
fn a_disallowed_inner_source_does_not_confirm_the_responders_session() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    // Handshake, but hold back every data datagram of A's (its confirming keepalive too).
    let captured = capture_data_from_a(&mut sim);
    sim.start_a_and_run();
    assert!(sim.has_current(Side::A), "the initiator has its session");
    assert!(
        !sim.has_current(Side::B),
        "the responder waits for A's first packet"
    );
    captured.borrow_mut().clear();

    sim.send(Side::A, &[spoofed_source_packet(&sim, 1)]);
    sim.run_for(Duration::from_millis(5));
    let spoofed = captured.borrow_mut().pop().expect("A sealed the packet");
    let from = sim.a.addr;
    assert_eq!(sim.inject(Side::B, from, &spoofed), None);
    assert_eq!(sim.status(Side::B).drops.disallowed_source, 1);
    assert!(
        !sim.has_current(Side::B),
        "a packet A may not send confirmed B's session"
    );
    assert_eq!(
        sim.count_events(Side::B, |e| matches!(e, Event::SessionConfirmed { .. })),
        0
    );

    sim.send(Side::A, &[sim.packet(Side::A, 20, 2)]);
    sim.run_for(Duration::from_millis(5));
    let good = captured.borrow_mut().pop().expect("A sealed the packet");
    assert!(sim.inject(Side::B, from, &good).is_some());
    assert!(sim.has_current(Side::B), "an allowed packet confirms it");
}
