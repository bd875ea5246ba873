//! Under `require`, a KME hiccup at the responder (one failed `dec_keys`, or one answered
//! after the core's own timeout) costs at most one retransmission of the initiation.

mod support;

use qshield::constants::{
    QKD_REQUEST_TIMEOUT, QKD_RETRY_MAX, REKEY_TIMEOUT_INITIAL, REKEY_TIMEOUT_JITTER_MAX,
    REKEY_TIMEOUT_MAX,
};
use qshield::proto::events::Event;
use qshield::proto::qkd_flow::QkdPolicy;
use std::time::Duration;
use support::sim::{Side, Sim, SimOptions, budget};

const MIB: u64 = 1 << 20;

fn require_both() -> Sim {
    let mut o = SimOptions::new(budget(64 * MIB, 120));
    o.qkd_policy = (QkdPolicy::Require, QkdPolicy::Require);
    Sim::with_options_a_lower(o)
}

fn established_at(sim: &Sim, s: Side) -> Option<Duration> {
    sim.first_event_at(s, |e| matches!(e, Event::SessionEstablished { .. }))
        .map(|t| t - qshield::proto::time::Instant::ZERO)
}

/// Both sides hold a session with the same QKD key, and a packet gets through each way.
fn assert_qkd_tunnel(sim: &mut Sim) {
    let (a, b) = (sim.status(Side::A), sim.status(Side::B));
    let (ka, kb) = (
        a.current_key.expect("A has a key"),
        b.current_key.expect("B"),
    );
    assert!(ka.qkd_key_id.is_some());
    assert_eq!(ka.qkd_key_id, kb.qkd_key_id);
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, std::slice::from_ref(&p));
    let q = sim.packet(Side::B, 10, 2);
    sim.send(Side::B, std::slice::from_ref(&q));
    sim.run_for(Duration::from_millis(20));
    assert_eq!(
        (sim.b.received.clone(), sim.a.received.clone()),
        (vec![p], vec![q])
    );
}

#[test]
fn one_failed_dec_keys_costs_one_retransmission() {
    let mut sim = require_both();
    sim.kme.fail_next_dec_keys = 1;
    sim.a.endpoint.start(sim.now);
    sim.collect(Side::A);
    sim.run_for(Duration::from_secs(3));
    let at = established_at(&sim, Side::A).expect("A never established a session");
    let bound = REKEY_TIMEOUT_INITIAL + REKEY_TIMEOUT_JITTER_MAX + Duration::from_millis(10);
    assert!(at <= bound, "established at {at:?}, bound {bound:?}");
    assert_eq!(sim.kme.dec_calls, 2, "the retransmission retried dec_keys");
    assert_qkd_tunnel(&mut sim);
}

#[test]
fn a_dec_keys_answer_after_the_timeout_is_used_by_the_retransmission() {
    let mut sim = require_both();
    let late = QKD_REQUEST_TIMEOUT + Duration::from_secs(1);
    sim.kme.dec_keys_delay = Some(late);
    sim.a.endpoint.start(sim.now);
    sim.collect(Side::A);
    sim.run_for(Duration::from_secs(15));
    let at = established_at(&sim, Side::A).expect("A never established a session");
    let bound = late + REKEY_TIMEOUT_MAX + REKEY_TIMEOUT_JITTER_MAX;
    assert!(at <= bound, "established at {at:?}, bound {bound:?}");
    assert_eq!(
        sim.kme.dec_calls, 1,
        "the late key answered the retransmission; no second lookup (the KME hands a key out once)"
    );
    assert_qkd_tunnel(&mut sim);
}

/// After a failed key request under `require` the retry wait is a "not before": once it has
/// passed it must not keep asking to be woken at that past instant. It did: `poll_timeout`
/// stayed in the past for as long as no new request came (no traffic, no peer initiation),
/// so the daemon's timer thread woke every millisecond, taking the core's lock each time.
#[test]
fn a_passed_qkd_retry_wait_asks_for_no_more_wake_ups() {
    let mut sim = require_both();
    sim.kme.down = true;
    sim.start_a_and_run();
    let failures = sim.status(Side::A).qkd.failures;
    assert!(failures >= 1, "A's enc_keys never failed");
    sim.run_for(QKD_RETRY_MAX + Duration::from_secs(1));
    let now = sim.now;
    for (side, endpoint) in [(Side::A, &sim.a.endpoint), (Side::B, &sim.b.endpoint)] {
        if let Some(at) = endpoint.poll_timeout() {
            assert!(
                at > now,
                "{side:?} asks to be woken at {at:?}, already past at {now:?}"
            );
        }
    }
    assert_eq!(
        sim.status(Side::A).qkd.retry_in_seconds,
        None,
        "a retry wait that has passed is not shown as pending"
    );
}
