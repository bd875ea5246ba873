//! QKD keys in the core: every session mixes a fresh key from the (simulated) KME, a QKD
//! mismatch is named as such, and the `require` / `allow` policies behave as documented
//! when the KME fails.

mod support;

use qshield::proto::events::Event;
use qshield::proto::handshake::HandshakeError;
use qshield::proto::qkd_flow::QkdPolicy;
use std::time::Duration;
use support::sim::{Side, Sim, SimOptions, budget};

const MIB: u64 = 1 << 20;

fn sim(a: QkdPolicy, b: QkdPolicy, rekey_secs: u64) -> Sim {
    let mut o = SimOptions::new(budget(64 * MIB, rekey_secs));
    o.qkd_policy = (a, b);
    Sim::with_options(o)
}

fn key_id(sim: &Sim, s: Side) -> Option<String> {
    sim.status(s).current_key.and_then(|k| k.qkd_key_id)
}

fn ping(sim: &mut Sim, tag: u32) -> bool {
    let before = sim.b.received.len();
    let p = sim.packet(Side::A, 20, tag);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_millis(20));
    sim.b.received.len() > before
}

#[test]
fn every_session_and_rotation_mixes_a_fresh_qkd_key() {
    let mut sim = sim(QkdPolicy::Require, QkdPolicy::Require, 5);
    sim.establish();
    let first = key_id(&sim, Side::A).expect("a QKD key in the first session");
    assert_eq!(
        key_id(&sim, Side::B).as_deref(),
        Some(first.as_str()),
        "both sides name the same key"
    );
    assert!(
        sim.status(Side::A)
            .current_key
            .unwrap()
            .sources
            .contains(&"qkd")
    );
    for i in 0..6 {
        assert!(ping(&mut sim, i), "traffic flows");
        sim.run_for(Duration::from_secs(3));
    }
    let log = &sim.kme.enc_log;
    assert!(log.len() >= 4, "one key per rotation: {log:?}");
    let unique: std::collections::HashSet<_> = log.iter().collect();
    assert_eq!(unique.len(), log.len(), "never the same key_ID twice");
    assert!(
        sim.kme.keys.is_empty(),
        "every key the initiator got was fetched by the responder"
    );
    let (a, b) = (sim.status(Side::A).qkd, sim.status(Side::B).qkd);
    assert_eq!(a.keys_consumed + b.keys_consumed, 2 * log.len() as u64);
    assert_eq!(
        (a.fallbacks, b.fallbacks, a.failures, b.failures),
        (0, 0, 0, 0)
    );
}

#[test]
fn a_qkd_key_mismatch_is_named_and_no_session_forms() {
    let mut sim = sim(QkdPolicy::Require, QkdPolicy::Require, 120);
    sim.kme.corrupt_dec = true;
    sim.start_a_and_run();
    sim.run_for(Duration::from_secs(2));
    assert!(!sim.has_current(Side::A));
    let named = sim.count_events(Side::A, |e| {
        matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::QkdKeyMismatch,
                ..
            }
        )
    });
    assert!(
        named >= 1,
        "the initiator reports a QKD key mismatch: {:?}",
        sim.a.events
    );
}

#[test]
fn require_without_a_kme_makes_no_session_and_recovers_when_keys_return() {
    let mut sim = sim(QkdPolicy::Require, QkdPolicy::Require, 120);
    sim.kme.down = true;
    sim.start_a_and_run();
    sim.run_for(Duration::from_secs(3));
    assert!(
        !sim.has_current(Side::A) && !ping(&mut sim, 1),
        "fail closed"
    );
    assert!(sim.count_events(Side::A, |e| matches!(e, Event::QkdUnavailable { .. })) >= 1);
    assert!(sim.status(Side::A).qkd.failures >= 1);
    sim.kme.down = false;
    sim.run_for(Duration::from_secs(11));
    assert!(
        sim.has_current(Side::A),
        "recovered by itself once the KME answers"
    );
    assert!(key_id(&sim, Side::A).is_some());
    assert!(ping(&mut sim, 2));
}

#[test]
fn require_keeps_the_current_key_until_its_hard_limit_then_stops_then_recovers() {
    let mut sim = sim(QkdPolicy::Require, QkdPolicy::Require, 10);
    sim.establish();
    let epoch = sim.status(Side::A).current_key.unwrap().epoch;
    sim.kme.down = true;
    sim.run_for(Duration::from_secs(12)); // past the soft limit (10 s), before the hard (15 s)
    assert!(
        ping(&mut sim, 1),
        "the current key still carries traffic after its soft limit"
    );
    assert_eq!(
        sim.status(Side::A).current_key.unwrap().epoch,
        epoch,
        "no new session without QKD"
    );
    sim.run_for(Duration::from_secs(4)); // past the hard limit
    assert!(!ping(&mut sim, 2), "fail closed at the hard limit");
    assert!(sim.count_events(Side::A, |e| matches!(e, Event::SessionExpired { .. })) >= 1);
    sim.kme.down = false;
    sim.run_for(Duration::from_secs(11));
    assert!(ping(&mut sim, 3), "traffic resumes when QKD keys return");
    assert!(sim.status(Side::A).current_key.unwrap().epoch > epoch);
}

#[test]
fn allow_falls_back_to_the_hybrid_handshake_loudly() {
    let mut sim = sim(QkdPolicy::Allow, QkdPolicy::Allow, 120);
    sim.kme.down = true;
    sim.establish();
    assert!(
        sim.has_current(Side::A) && ping(&mut sim, 1),
        "a session without QKD"
    );
    assert_eq!(key_id(&sim, Side::A), None);
    assert!(
        !sim.status(Side::A)
            .current_key
            .unwrap()
            .sources
            .contains(&"qkd")
    );
    assert!(sim.count_events(Side::A, |e| matches!(e, Event::QkdFallback { .. })) >= 1);
    assert!(sim.status(Side::A).qkd.fallbacks >= 1);
}

#[test]
fn mismatched_policies_are_settled_by_the_stricter_side() {
    // A offers a key; B (disable) answers without it: A under `allow` accepts, loudly.
    let mut s = sim(QkdPolicy::Allow, QkdPolicy::Disable, 120);
    s.establish();
    assert!(s.has_current(Side::A) && key_id(&s, Side::A).is_none());
    assert!(s.status(Side::A).qkd.fallbacks >= 1);
    // A under `require` refuses the answer without its key.
    let mut s = sim(QkdPolicy::Require, QkdPolicy::Disable, 120);
    s.start_a_and_run();
    s.run_for(Duration::from_secs(2));
    assert!(!s.has_current(Side::A));
    assert!(
        s.count_events(Side::A, |e| matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::QkdNotUsed,
                ..
            }
        )) >= 1
    );
    // B under `require` refuses an initiation without a key.
    let mut s = sim(QkdPolicy::Disable, QkdPolicy::Require, 120);
    s.start_a_and_run();
    assert!(!s.has_current(Side::B));
    assert!(
        s.count_events(Side::B, |e| matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::QkdRequired,
                ..
            }
        )) >= 1
    );
}
