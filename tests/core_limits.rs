//! Limits of the core that nothing else exercises: the cookie secret's lifetime, the staging
//! queue's bound, the minimum spacing of answered initiations, and data under a session the
//! receiver no longer knows (after its restart).

mod support;

use qshield::constants::{COOKIE_SECRET_MAX_AGE, MIN_INITIATION_INTERVAL, STAGED_PACKETS_MAX};
use qshield::crypto::dh::DhSecret;
use qshield::crypto::random::SeededRng;
use qshield::proto::cookie::{CookieChecker, append_macs, mac1_key, open_cookie_reply};
use qshield::proto::events::Event;
use qshield::proto::time::Instant;
use qshield::proto::wire::{
    CookieReply, TYPE_INITIATION, TYPE_RESPONSE, parse_fragment, split_message,
};
use std::net::SocketAddr;
use std::time::Duration;
use support::sim::{Side, Sim, budget};

const MIB: u64 = 1 << 20;

#[test]
fn a_cookie_stops_making_mac2_valid_once_its_secret_is_replaced() {
    let responder = DhSecret::generate().unwrap().public();
    let mut checker = CookieChecker::new(&responder);
    let mut rng = SeededRng::new(7);
    let src: SocketAddr = "198.18.0.1:5000".parse().unwrap();
    let t0 = Instant::ZERO + Duration::from_secs(3);
    // a fragment without mac2 earns a cookie reply (the secret is born now)
    let bare = {
        let mut f = split_message(TYPE_INITIATION, 9, &[7u8; 100]).remove(0);
        let mac1 = append_macs(&mut f, &mac1_key(&responder), None);
        (f, mac1)
    };
    let reply = checker.reply(t0, src, &parse_fragment(&bare.0).unwrap(), &mut rng);
    let cookie = open_cookie_reply(&responder, &CookieReply::decode(&reply).unwrap(), &[bare.1])
        .expect("the cookie opens");
    let with_cookie = |cookie: &[u8; 16]| {
        let mut f = split_message(TYPE_INITIATION, 9, &[7u8; 100]).remove(0);
        append_macs(&mut f, &mac1_key(&responder), Some(cookie));
        f
    };
    let frag = with_cookie(&cookie);
    let last_valid = t0 + (COOKIE_SECRET_MAX_AGE - Duration::from_nanos(1));
    assert!(
        checker.mac2_valid(last_valid, src, &parse_fragment(&frag).unwrap(), &mut rng),
        "valid until the secret is COOKIE_SECRET_MAX_AGE old"
    );
    // no grace for the previous secret: from the secret's maximum age on, the old cookie
    // fails, and a cookie under the new secret works
    let replaced = t0 + COOKIE_SECRET_MAX_AGE;
    assert!(
        !checker.mac2_valid(replaced, src, &parse_fragment(&frag).unwrap(), &mut rng),
        "a cookie under the replaced secret is refused"
    );
    let reply = checker.reply(replaced, src, &parse_fragment(&bare.0).unwrap(), &mut rng);
    let fresh =
        open_cookie_reply(&responder, &CookieReply::decode(&reply).unwrap(), &[bare.1]).unwrap();
    assert_ne!(fresh, cookie);
    let frag = with_cookie(&fresh);
    assert!(checker.mac2_valid(replaced, src, &parse_fragment(&frag).unwrap(), &mut rng));
}

#[test]
fn the_staging_queue_keeps_its_bound_and_delivers_in_order() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let extra = 10;
    let total = STAGED_PACKETS_MAX + extra;
    let packets: Vec<Vec<u8>> = (0..total as u32)
        .map(|t| sim.packet(Side::A, 10, t))
        .collect();
    // all at one instant, before the initiation they start can be answered
    sim.send(Side::A, &packets);
    assert!(!sim.has_current(Side::A));
    assert_eq!(
        sim.status(Side::A).drops.no_session,
        extra as u64,
        "the packets beyond the queue are counted"
    );
    sim.run_for(Duration::from_secs(1));
    assert!(
        sim.sessions_disagree().is_none(),
        "{:?}",
        sim.sessions_disagree()
    );
    let got: Vec<u32> = sim.b.received.iter().map(|p| Sim::tag_of(p)).collect();
    let want: Vec<u32> = (0..STAGED_PACKETS_MAX as u32).collect();
    assert_eq!(got, want, "the staged packets, in order");
    assert_eq!(sim.total_drops(Side::A), extra as u64);
    assert_eq!(sim.total_drops(Side::B), 0);
}

/// Where the forger sends from (the simulated underlay's test range).
fn forger() -> SocketAddr {
    "198.18.0.66:4444".parse().unwrap()
}

/// Response datagrams B sent to the forger's address.
fn responses_to_forger(sim: &Sim) -> usize {
    sim.b
        .stray
        .iter()
        .filter(|t| t.to == forger() && t.payload[0] == TYPE_RESPONSE)
        .count()
}

#[test]
fn a_second_initiation_within_the_minimum_interval_is_ignored_as_a_flood() {
    // Initiations as genuine as message 1 can prove (A's X25519 key, see
    // core_responder_commit), each with a newer timestamp, from one address.
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.run_for(Duration::from_millis(10));
    let b_clock = |sim: &Sim| 2_000_000 + sim.now.as_nanos();
    let initiate = |sim: &mut Sim| {
        let ts = b_clock(sim);
        for f in sim.forged_initiation_from_a(ts, None) {
            sim.inject(Side::B, forger(), &f);
        }
    };
    initiate(&mut sim);
    let per_answer = responses_to_forger(&sim);
    assert!(per_answer >= 1, "the first initiation is answered");
    let first = sim.now;
    sim.run_for(MIN_INITIATION_INTERVAL - Duration::from_micros(1));
    initiate(&mut sim);
    assert_eq!(
        responses_to_forger(&sim),
        per_answer,
        "no answer within the interval"
    );
    let floods = |sim: &Sim| {
        sim.count_events(
            Side::B,
            |e| matches!(e, Event::InitiationIgnored { why, .. } if why.contains("flood")),
        )
    };
    assert_eq!(floods(&sim), 1, "{:?}", sim.b.events);
    sim.run_until(first + MIN_INITIATION_INTERVAL);
    initiate(&mut sim);
    assert_eq!(
        responses_to_forger(&sim),
        2 * per_answer,
        "answered once the interval has passed"
    );
    assert_eq!(floods(&sim), 1);
}

#[test]
fn data_under_a_session_lost_in_a_restart_is_counted_as_unknown_index_and_a_rehandshakes() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    sim.establish();
    let handshakes_before = sim.status(Side::A).handshakes;
    sim.restart(Side::B); // not started: only A can bring the tunnel back
    let mut sent = 0u32;
    let restarted = sim.now;
    while sim.b.received.is_empty() {
        assert!(
            sim.now - restarted < Duration::from_secs(60),
            "A never rehandshook: {:?}",
            sim.status(Side::A)
        );
        let p = sim.packet(Side::A, 10, sent);
        sim.send(Side::A, &[p]);
        sent += 1;
        sim.run_for(Duration::from_millis(100));
    }
    let b = sim.drops(Side::B);
    assert!(b.unknown_index >= 1, "{b:?}");
    assert_eq!(
        sim.total_drops(Side::B),
        b.unknown_index,
        "every lost packet is an unknown_index drop, nothing else: {b:?} {:?}",
        sim.status(Side::B).drops
    );
    assert_eq!(sim.status(Side::A).handshakes, handshakes_before + 1);
    assert!(
        sim.sessions_disagree().is_none(),
        "{:?}",
        sim.sessions_disagree()
    );
    // what arrived at the new B was sent under the new session, and nothing was lost twice
    let got: Vec<u32> = sim.b.received.iter().map(|p| Sim::tag_of(p)).collect();
    assert_eq!(
        b.unknown_index + got.len() as u64,
        u64::from(sent),
        "{got:?}"
    );
}
