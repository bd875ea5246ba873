//! Two sites meeting: simultaneous initiation, restarts, misconfigured keys and ciphers,
//! and the size of every handshake datagram.

mod support;

use qshield::constants::{MAX_HANDSHAKE_DATAGRAM_BYTES, REKEY_ATTEMPT_TIME};
use qshield::crypto::{CipherSuite, StaticIdentity};
use qshield::proto::cookie::{append_macs, mac1_key};
use qshield::proto::events::{Event, Role};
use qshield::proto::handshake::{
    FreshEphemerals, HandshakeError, InitiationParams, QkdKey, create_initiation,
};
use qshield::proto::time::Instant;
use qshield::proto::wire::{QKD_KEY_ID_MAX_BYTES, TYPE_INITIATION, fragment_count, split_message};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::sim::{
    HANDSHAKE_DATAGRAMS_SEEN, LARGEST_HANDSHAKE_DATAGRAM, Side, Sim, SimOptions, budget,
};

const MIB: u64 = 1 << 20;

fn tags(received: &[Vec<u8>]) -> Vec<u32> {
    received.iter().map(|p| Sim::tag_of(p)).collect()
}

fn lower_key_side(sim: &Sim) -> Side {
    if sim.a.endpoint.public().dh.0 < sim.b.endpoint.public().dh.0 {
        Side::A
    } else {
        Side::B
    }
}

#[test]
fn simultaneous_initiation_lower_static_key_wins_with_offsets() {
    let offsets_us = [0i64, 300, 900, -300, -900, 4_000, -9_000];
    for (i, &offset) in offsets_us.iter().enumerate() {
        let mut sim = Sim::new(budget(64 * MIB, 120));
        if i >= 5 {
            sim.latency = Duration::from_millis(10);
        }
        let (first, second) = if offset >= 0 {
            (Side::A, Side::B)
        } else {
            (Side::B, Side::A)
        };
        let now = sim.now;
        sim.site(first).endpoint.start(now);
        sim.collect(first);
        sim.run_for(Duration::from_micros(offset.unsigned_abs()));
        let now = sim.now;
        sim.site(second).endpoint.start(now);
        sim.collect(second);
        sim.run_for(Duration::from_secs(1));
        let winner = lower_key_side(&sim);
        for s in [Side::A, Side::B] {
            let st = sim.status(s);
            let key = st
                .current_key
                .unwrap_or_else(|| panic!("offset {offset}: {s:?} has no key"));
            assert_eq!(key.epoch, 1, "offset {offset}: exactly one session");
            assert_eq!(st.handshakes, 1, "offset {offset}");
            let role = if s == winner {
                Role::Initiator
            } else {
                Role::Responder
            };
            assert_eq!(
                key.role, role,
                "offset {offset}: the lower static key initiates"
            );
        }
        let ignored = sim.count_events(winner, |e| matches!(e, Event::InitiationIgnored { .. }));
        assert_eq!(
            ignored, 1,
            "offset {offset}: the loser's initiation is ignored"
        );
        let p = sim.packet(Side::A, 10, 1);
        sim.send(Side::A, &[p]);
        let q = sim.packet(Side::B, 10, 2);
        sim.send(Side::B, &[q]);
        sim.run_for(Duration::from_millis(50));
        assert_eq!(
            (tags(&sim.b.received), tags(&sim.a.received)),
            (vec![1], vec![2])
        );
    }
}

/// Restarts `who` (which then starts, as the daemon does) and returns how long until a
/// packet each way gets through; `traffic`: packets were flowing both ways before the
/// restart. After it, each side sends a probe every 100 ms.
fn restart_and_measure(who: Side, traffic: bool) -> Duration {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    if traffic {
        for t in 0..5 {
            for s in [Side::A, Side::B] {
                let p = sim.packet(s, 10, t);
                sim.send(s, &[p]);
            }
            sim.run_for(Duration::from_millis(100));
        }
    }
    sim.restart(who);
    let restarted = sim.now;
    let now = sim.now;
    sim.site(who).endpoint.start(now);
    sim.collect(who);
    let (na, nb) = (sim.a.received.len(), sim.b.received.len());
    let mut tag = 1000;
    while sim.now - restarted < Duration::from_secs(30) {
        for s in [Side::A, Side::B] {
            let p = sim.packet(s, 10, tag);
            sim.send(s, &[p]);
        }
        tag += 1;
        sim.run_for(Duration::from_millis(100));
        let (na2, nb2) = (sim.a.received.len(), sim.b.received.len());
        let a_ok = if who == Side::A { na2 > 0 } else { na2 > na };
        let b_ok = if who == Side::B { nb2 > 0 } else { nb2 > nb };
        if a_ok && b_ok {
            // and the two sites agree on one current key: the same epoch and sources, and
            // a packet sealed by each opens at the other (checked above)
            if let Some(why) = sim.sessions_disagree() {
                panic!("{who:?} restart (traffic {traffic}): {why}");
            }
            return sim.now - restarted;
        }
    }
    panic!("{who:?} restart (traffic {traffic}): tunnel not back after 30 s");
}

#[test]
fn restarted_peers_reconnect_within_ten_seconds() {
    for who in [Side::A, Side::B] {
        for traffic in [false, true] {
            let took = restart_and_measure(who, traffic);
            assert!(
                took < Duration::from_secs(10),
                "{who:?} traffic {traffic}: {took:?}"
            );
        }
    }
}

#[test]
fn wrong_static_key_is_reported_and_no_session_forms() {
    // B holds a wrong public key for A: A's initiation is refused as unknown; B's own
    // initiations carry a mac1 for the wrong key, which A reports.
    let mut o = SimOptions::new(budget(64 * MIB, 120));
    o.b_has_wrong_key_for_a = true;
    let mut sim = Sim::with_options(o);
    sim.a.endpoint.start(sim.now);
    sim.b.endpoint.start(sim.now);
    sim.collect(Side::A);
    sim.collect(Side::B);
    sim.run_for(REKEY_ATTEMPT_TIME + Duration::from_secs(10));
    assert!(!sim.has_current(Side::A) && !sim.has_current(Side::B));
    let rejected = sim.count_events(Side::B, |e| {
        matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::UnknownInitiator(_),
                ..
            }
        )
    });
    assert!(
        rejected >= 1,
        "B names the unknown initiator: {:?}",
        sim.b.events
    );
    assert!(
        sim.a
            .events
            .iter()
            .any(|e| matches!(e, Event::BadMac1 { from } if *from == sim.b.addr))
    );
    assert!(sim.drops(Side::A).bad_mac1 >= 1);
    for s in [Side::A, Side::B] {
        let at = sim
            .first_event_at(s, |e| matches!(e, Event::HandshakeTimedOut { .. }))
            .unwrap_or_else(|| panic!("{s:?} gives up"));
        assert!(
            at >= Instant::ZERO + REKEY_ATTEMPT_TIME,
            "{s:?} gave up at {at:?}"
        );
        assert!(at < Instant::ZERO + REKEY_ATTEMPT_TIME + Duration::from_secs(6));
    }
    assert_eq!(
        sim.status(Side::A).handshakes + sim.status(Side::B).handshakes,
        0
    );

    // A holds a wrong key for B: B sees only bad mac1s and says so.
    let mut o = SimOptions::new(budget(64 * MIB, 120));
    o.a_has_wrong_key_for_b = true;
    let mut sim = Sim::with_options(o);
    sim.start_a_and_run();
    sim.run_for(Duration::from_secs(3));
    assert!(!sim.has_current(Side::A) && !sim.has_current(Side::B));
    assert!(sim.drops(Side::B).bad_mac1 >= 3);
    assert!(
        sim.b
            .events
            .iter()
            .any(|e| matches!(e, Event::BadMac1 { .. }))
    );
}

#[test]
fn cipher_mismatch_is_reported_as_suite_mismatch() {
    let mut o = SimOptions::new(budget(64 * MIB, 120));
    o.suite_a = CipherSuite::Aes256Gcm;
    o.suite_b = CipherSuite::ChaCha20Poly1305;
    let mut sim = Sim::with_options(o);
    sim.a.endpoint.start(sim.now);
    sim.b.endpoint.start(sim.now);
    sim.collect(Side::A);
    sim.collect(Side::B);
    sim.run_for(Duration::from_secs(2));
    assert!(!sim.has_current(Side::A) && !sim.has_current(Side::B));
    for (s, ours) in [
        (Side::B, CipherSuite::ChaCha20Poly1305),
        (Side::A, CipherSuite::Aes256Gcm),
    ] {
        let found = sim.count_events(s, |e| {
            matches!(e, Event::HandshakeRejected { error: HandshakeError::SuiteMismatch { ours: o, .. }, .. } if *o == ours)
        });
        assert!(found >= 1, "{s:?}: {:?}", sim.site(s).events);
    }
    assert!(sim.drops(Side::B).handshake_rejected >= 1);
}

#[test]
fn handshake_datagrams_never_exceed_1200_bytes() {
    // the largest initiation: a QKD key_ID of the maximum length
    let a = StaticIdentity::generate().unwrap();
    let b = StaticIdentity::generate().unwrap();
    let (a_pub, b_pub) = (a.public(), b.public());
    let params = InitiationParams {
        suite: CipherSuite::Aes256Gcm,
        sender_index: 1,
        timestamp_unix_ns: 1,
        qkd: Some(QkdKey {
            key_id: vec![b'k'; QKD_KEY_ID_MAX_BYTES],
            material: vec![1u8; 32].into(),
        }),
        local_public: &a_pub,
    };
    let (msg, _) = create_initiation(&a, &b_pub, params, &mut FreshEphemerals).unwrap();
    assert_eq!(fragment_count(msg.len()), 3);
    for mut f in split_message(TYPE_INITIATION, 1, &msg) {
        append_macs(&mut f, &mac1_key(&b_pub.dh), Some(&[9u8; 16]));
        assert!(f.len() <= MAX_HANDSHAKE_DATAGRAM_BYTES, "{}", f.len());
    }
    // and every handshake datagram the sims of this binary put on the wire was checked
    let mut sim = Sim::new(budget(MIB, 120));
    sim.establish();
    for t in 0..3000 {
        let p = sim.packet(Side::A, 1200, t);
        sim.send(Side::A, &[p]);
        sim.run_for(Duration::from_micros(100));
    }
    assert!(HANDSHAKE_DATAGRAMS_SEEN.load(Ordering::Relaxed) >= 5 * 4);
    let largest = LARGEST_HANDSHAKE_DATAGRAM.load(Ordering::Relaxed) as usize;
    assert!(
        largest <= MAX_HANDSHAKE_DATAGRAM_BYTES && largest > 1100,
        "{largest}"
    );
}

#[test]
fn a_restarted_side_keeps_its_own_cipher_suite() {
    let mut o = SimOptions::new(budget(64 * MIB, 120));
    o.suite_a = CipherSuite::Aes256Gcm;
    o.suite_b = CipherSuite::ChaCha20Poly1305;
    let mut sim = Sim::with_options(o);
    for s in [Side::B, Side::A] {
        sim.restart(s);
        assert_eq!(
            sim.status(Side::A).cipher,
            "aes-256-gcm",
            "after restarting {s:?}"
        );
        assert_eq!(
            sim.status(Side::B).cipher,
            "chacha20-poly1305",
            "after restarting {s:?}"
        );
    }
}
