//! More than one peer: three sites, each with the other two as peers. Routing by allowed
//! IPs, telling callers apart, and one peer's failure leaving another's session alone.

mod support;

use qshield::constants::REKEY_ATTEMPT_TIME;
use qshield::proto::events::{Event, Role};
use std::time::Duration;
use support::mesh::{Mesh, Node};
use support::sim::budget;

const MIB: u64 = 1 << 20;

#[test]
fn packets_are_routed_to_the_peer_whose_allowed_ips_hold_the_destination() {
    let mut mesh = Mesh::new(budget(64 * MIB, 120), &[]);
    for n in Node::ALL {
        mesh.start(n);
    }
    mesh.run_until_sessions(&[(Node::A, Node::B), (Node::A, Node::C), (Node::B, Node::C)]);
    let to_b: Vec<_> = (0..5)
        .map(|t| Mesh::packet(Node::A, Node::B.overlay(), t))
        .collect();
    let to_c: Vec<_> = (100..105)
        .map(|t| Mesh::packet(Node::A, Node::C.overlay(), t))
        .collect();
    let nowhere = Mesh::packet(Node::A, [198, 19, 0, 99], 999);
    // interleaved in one batch
    let mut batch = vec![];
    for (b, c) in to_b.iter().zip(&to_c) {
        batch.push(b.clone());
        batch.push(c.clone());
    }
    batch.push(nowhere);
    mesh.send(Node::A, &batch);
    mesh.run_for(Duration::from_millis(20));
    assert_eq!(
        mesh.tags_from(Node::B, Node::A),
        [0, 1, 2, 3, 4],
        "B gets B's only"
    );
    assert_eq!(
        mesh.tags_from(Node::C, Node::A),
        [100, 101, 102, 103, 104],
        "C gets C's only"
    );
    assert_eq!(mesh.drops(Node::A).no_route, 1, "the packet for neither");
    // and the other way: each answer arrives at A from its own peer
    let from_b = Mesh::packet(Node::B, Node::A.overlay(), 7);
    let from_c = Mesh::packet(Node::C, Node::A.overlay(), 8);
    mesh.send(Node::B, &[from_b]);
    mesh.send(Node::C, &[from_c]);
    mesh.run_for(Duration::from_millis(20));
    assert_eq!(mesh.tags_from(Node::A, Node::B), [7]);
    assert_eq!(mesh.tags_from(Node::A, Node::C), [8]);
    for n in Node::ALL {
        let p = mesh.peers(n);
        assert!(
            p.iter().all(|p| p.drops == Default::default()),
            "{n:?}: {p:?}"
        );
    }
}

#[test]
fn a_tells_its_callers_apart() {
    let mut mesh = Mesh::new(budget(64 * MIB, 120), &[]);
    // B and C each call A; A starts nothing
    mesh.start(Node::B);
    mesh.start(Node::C);
    mesh.run_until_sessions(&[(Node::A, Node::B), (Node::A, Node::C)]);
    let peers = mesh.peers(Node::A);
    assert_eq!(peers.len(), 2);
    for (status, caller) in peers.iter().zip([Node::B, Node::C]) {
        assert_eq!(status.name, caller.name());
        assert_eq!(status.endpoint, Some(caller.addr()), "{caller:?}");
        assert_eq!(status.handshakes, 1, "{caller:?}");
        let key = status.current_key.as_ref().unwrap();
        assert_eq!(key.role, Role::Responder, "{caller:?} called");
        let theirs = mesh.peer_status(caller, Node::A).current_key.unwrap();
        assert_eq!(theirs.role, Role::Initiator);
    }
    // each session carries its own peer's traffic: A's reply to each caller
    mesh.send(Node::A, &[Mesh::packet(Node::A, Node::B.overlay(), 1)]);
    mesh.send(Node::A, &[Mesh::packet(Node::A, Node::C.overlay(), 2)]);
    mesh.run_for(Duration::from_millis(20));
    assert_eq!(mesh.tags_from(Node::B, Node::A), [1]);
    assert_eq!(mesh.tags_from(Node::C, Node::A), [2]);
    let peers = mesh.peers(Node::A);
    assert_eq!(
        (peers[0].total_bytes_sent, peers[1].total_bytes_sent),
        (32, 32),
        "one packet on each peer's session"
    );
}

/// A and B exchange a packet each way every 100 ms until A has given up on C (past
/// `REKEY_ATTEMPT_TIME`; budget: rotate every 2 s); checks every one arrives, that A's
/// session with B rotates and drops nothing, and that A did give up on C meanwhile.
fn a_and_b_keep_working_while_a_gives_up_on_c(mesh: &mut Mesh) {
    let secs = REKEY_ATTEMPT_TIME.as_secs() as u32 + 10;
    let rotations = mesh.peer_status(Node::A, Node::B).rotations;
    let (ra, rb) = (
        mesh.tags_from(Node::A, Node::B).len(),
        mesh.tags_from(Node::B, Node::A).len(),
    );
    let steps = secs * 10;
    for t in 0..steps {
        mesh.send(Node::A, &[Mesh::packet(Node::A, Node::B.overlay(), t)]);
        mesh.send(Node::B, &[Mesh::packet(Node::B, Node::A.overlay(), t)]);
        mesh.run_for(Duration::from_millis(100));
    }
    mesh.run_for(Duration::from_millis(20));
    let want: Vec<u32> = (0..steps).collect();
    assert_eq!(mesh.tags_from(Node::B, Node::A)[rb..], want, "A to B");
    assert_eq!(mesh.tags_from(Node::A, Node::B)[ra..], want, "B to A");
    let b = mesh.peer_status(Node::A, Node::B);
    assert!(
        b.rotations >= rotations + (secs as u64) / 3,
        "A's session with B kept rotating: {} then {}",
        rotations,
        b.rotations
    );
    assert_eq!(b.drops, Default::default(), "A's drops for B");
    let a = mesh.peer_status(Node::B, Node::A);
    assert_eq!(a.drops, Default::default(), "B's drops for A");
    let site = mesh.site(Node::A);
    let gave_up = site.events.iter().any(|e| {
        matches!(e, Event::HandshakeTimedOut { peer, .. } if site.endpoint.peer_name(*peer) == Some(Node::C.name()))
    });
    assert!(gave_up, "A gave up its handshake with C meanwhile");
}

#[test]
fn a_peer_that_stops_answering_does_not_touch_another_peers_session() {
    let mut mesh = Mesh::new(budget(64 * MIB, 2), &[]);
    for n in Node::ALL {
        mesh.start(n);
    }
    mesh.run_until_sessions(&[(Node::A, Node::B), (Node::A, Node::C)]);
    // C goes silent: everything it sends is lost; A keeps sending to it
    mesh.filter = Some(Box::new(|d| d.from != Node::C));
    for t in 0..3 {
        mesh.send(Node::A, &[Mesh::packet(Node::A, Node::C.overlay(), t)]);
    }
    a_and_b_keep_working_while_a_gives_up_on_c(&mut mesh);
    let c = mesh.peer_status(Node::A, Node::C);
    assert!(
        c.current_key.is_none(),
        "A's session with the silent C expired: {c:?}"
    );
}

#[test]
fn a_peer_with_a_wrong_key_does_not_touch_another_peers_session() {
    // C holds a wrong public key for A: its initiations fail mac1 at A
    let mut mesh = Mesh::new(budget(64 * MIB, 2), &[(Node::C, Node::A)]);
    for n in Node::ALL {
        mesh.start(n);
    }
    mesh.run_until_sessions(&[(Node::A, Node::B)]);
    a_and_b_keep_working_while_a_gives_up_on_c(&mut mesh);
    assert!(
        mesh.drops(Node::A).bad_mac1 >= 1,
        "C's initiations are refused at A"
    );
    assert!(mesh.peer_status(Node::A, Node::C).current_key.is_none());
    assert!(mesh.peer_status(Node::C, Node::A).current_key.is_none());
}
