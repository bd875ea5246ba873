//! No QKD key is fetched that no handshake uses: two sites starting at once fetch one key,
//! and a peer's initiation arriving while we wait for our own key orphans nothing.

mod support;

use qshield::proto::events::Role;
use qshield::proto::qkd_flow::QkdPolicy;
use std::time::Duration;
use support::sim::{Side, Sim, SimOptions, budget};

const MIB: u64 = 1 << 20;

fn require_both() -> Sim {
    let mut o = SimOptions::new(budget(64 * MIB, 120));
    o.qkd_policy = (QkdPolicy::Require, QkdPolicy::Require);
    Sim::with_options(o)
}

fn lower(sim: &Sim) -> Side {
    if sim.a.endpoint.public().dh.0 < sim.b.endpoint.public().dh.0 {
        Side::A
    } else {
        Side::B
    }
}

#[test]
fn two_sites_starting_at_once_fetch_one_key_for_their_one_handshake() {
    for _ in 0..4 {
        let mut sim = require_both();
        let now = sim.now;
        sim.a.endpoint.start(now);
        sim.b.endpoint.start(now);
        sim.collect(Side::A);
        sim.collect(Side::B);
        sim.run_for(Duration::from_secs(3));
        let (a, b) = (sim.status(Side::A), sim.status(Side::B));
        let (ka, kb) = (
            a.current_key.expect("A has a key"),
            b.current_key.expect("B"),
        );
        assert_eq!((ka.epoch, kb.epoch), (1, 1), "one handshake completed");
        assert_eq!(ka.qkd_key_id, kb.qkd_key_id);
        let initiator = if ka.role == Role::Initiator {
            Side::A
        } else {
            Side::B
        };
        assert_eq!(initiator, lower(&sim), "the simultaneous-start rule");
        assert_eq!(sim.kme.enc_calls, 1, "keys fetched for one handshake");
        assert!(sim.kme.keys.is_empty(), "a fetched key was never used");
    }
}

#[test]
fn a_peer_initiation_while_we_wait_for_enc_keys_orphans_no_key() {
    // B has the higher key: it answers A's initiation while its own key is on the way
    let mut sim = loop {
        let sim = require_both();
        if lower(&sim) == Side::A {
            break sim;
        }
    };
    sim.establish();
    sim.run_for(Duration::from_secs(2));
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
    // B asks for a key for a rotation; the KME answers it 50 ms later...
    sim.kme.enc_keys_delay = Some(Duration::from_millis(50));
    let now = sim.now;
    sim.b.endpoint.start(now);
    sim.collect(Side::B);
    sim.kme.enc_keys_delay = None;
    // ...and meanwhile A rotates: B answers A's initiation
    sim.a.endpoint.start(now);
    sim.collect(Side::A);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.status(Side::A).current_key.unwrap().epoch, 2);
    assert_eq!(sim.kme.enc_calls, 3);
    // B's next rotation uses the key it fetched; nothing is left unused at the KME
    let now = sim.now;
    sim.b.endpoint.start(now);
    sim.collect(Side::B);
    sim.run_for(Duration::from_secs(1));
    let kb = sim.status(Side::B).current_key.unwrap();
    assert_eq!(kb.role, Role::Initiator, "B rotated");
    assert!(
        sim.kme.keys.is_empty(),
        "{} key(s) fetched and never used: {:?}",
        sim.kme.keys.len(),
        sim.kme.keys.keys().collect::<Vec<_>>()
    );
    assert_eq!(sim.kme.enc_calls, 3, "B's rotation fetched no new key");
}

#[test]
fn a_forged_initiation_during_the_start_yield_does_not_cancel_our_start() {
    // B has the higher key, so at start it waits for A's initiation; a forgery (A's X25519
    // key only) answered meanwhile is no reason to give up its own initiation
    let mut o = SimOptions::new(budget(64 * MIB, 120));
    o.qkd_policy = (QkdPolicy::Allow, QkdPolicy::Allow);
    let mut sim = Sim::with_options_a_lower(o);
    let now = sim.now;
    sim.b.endpoint.start(now);
    sim.collect(Side::B);
    assert_eq!(sim.kme.enc_calls, 0, "B yields at start");
    let forged = sim.forged_initiation_from_a(2_000_000 + sim.now.as_nanos() + 1_000_000, None);
    let attacker = "198.18.0.66:4444".parse().unwrap();
    for f in &forged {
        sim.inject(Side::B, attacker, f);
    }
    sim.run_for(Duration::from_secs(2));
    let kb = sim.status(Side::B).current_key.expect("B never started");
    assert_eq!(kb.role, Role::Initiator);
    assert!(kb.qkd_key_id.is_some());
    assert!(sim.kme.keys.is_empty());
}

#[test]
fn an_enc_keys_answer_after_the_timeout_is_kept_for_the_next_initiation() {
    let mut sim = Sim::with_options_a_lower({
        let mut o = SimOptions::new(budget(64 * MIB, 120));
        o.qkd_policy = (QkdPolicy::Require, QkdPolicy::Require);
        o
    });
    // the first enc_keys is answered after the core's 5 s wait
    sim.kme.enc_keys_delay = Some(Duration::from_secs(6));
    let now = sim.now;
    sim.a.endpoint.start(now);
    sim.collect(Side::A);
    sim.kme.enc_keys_delay = None;
    let p = sim.packet(Side::A, 10, 1);
    sim.send(Side::A, std::slice::from_ref(&p));
    sim.run_for(Duration::from_secs(7));
    assert!(sim.has_current(Side::A), "A retried after its backoff");
    assert_eq!(sim.b.received, vec![p]);
    // A's next rotation uses the late key instead of fetching another
    let calls = sim.kme.enc_calls;
    let now = sim.now;
    sim.a.endpoint.start(now);
    sim.collect(Side::A);
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.status(Side::A).current_key.unwrap().epoch, 2);
    assert!(
        sim.kme.keys.is_empty(),
        "{} key(s) fetched and never used",
        sim.kme.keys.len()
    );
    assert_eq!(sim.kme.enc_calls, calls, "the rotation fetched no new key");
}
