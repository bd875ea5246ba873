//! Handshake DoS defences under load, against an attacker who knows the responder's public
//! key (so computes mac1) and spoofs source addresses: every handshake datagram type must
//! carry a valid mac2 before it reaches the per-source limiter or the reassembler, the
//! limiter's source table evicts rather than forgets, and a replayed cookie reply does not
//! make the initiator resend.

mod support;

use qshield::constants::{
    COOKIE_REPLIES_PER_SOURCE_BURST, HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST,
    RATE_LIMITER_SOURCES_MAX, UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND,
};
use qshield::proto::cookie::{append_macs, mac1_key, open_cookie_reply};
use qshield::proto::events::Event;
use qshield::proto::time::Instant;
use qshield::proto::wire::{
    CookieReply, TYPE_COOKIE_REPLY, TYPE_INITIATION, TYPE_RESPONSE, split_message,
};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use support::sim::{Fate, Side, Sim, budget};

const MIB: u64 = 1 << 20;

/// Starts the first handshake from `s` and runs until both sides hold a session.
fn establish_from(sim: &mut Sim, s: Side) {
    let now = sim.now;
    sim.site(s).endpoint.start(now);
    sim.collect(s);
    sim.run_for(Duration::from_millis(50));
    assert!(sim.has_current(Side::A) && sim.has_current(Side::B));
}

/// `n` single-fragment initiations without mac2 into B, each from its own source: at least
/// [`UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND`] of them put B under load for the second.
fn background_load(sim: &mut Sim, n: u32, salt: u32) {
    let key = mac1_key(&sim.b.endpoint.public().dh);
    for k in 0..n {
        let src = SocketAddr::from((
            [198, 18, 100 + (k / 60_000) as u8, 1],
            1024 + (k % 60_000) as u16,
        ));
        let mut f = split_message(TYPE_INITIATION, salt.wrapping_add(k), &[7u8; 16]).remove(0);
        append_macs(&mut f, &key, None);
        sim.inject(Side::B, src, &f);
    }
    sim.b.stray.clear();
}

/// A fragment of type `t` (`count` fragments of a `len`-byte message, fragment 0) with a
/// valid mac1 for B and no mac2: what anyone holding B's public key can send.
fn forged(
    sim: &Sim,
    t: u8,
    sender: u32,
    len: usize,
    cookie: Option<&[u8; 16]>,
) -> (Vec<u8>, [u8; 16]) {
    let key = mac1_key(&sim.b.endpoint.public().dh);
    let mut f = split_message(t, sender, &vec![0u8; len]).remove(0);
    let mac1 = append_macs(&mut f, &key, cookie);
    (f, mac1)
}

/// B is kept under load (a burst of other sources every second) while an attacker spoofing
/// A's address sends B a response fragment with a valid mac1 every 0.5 ms (half of them
/// small whole messages, half the first fragment of a two-fragment response), and the
/// session first initiated by `first` rotates by time. Returns the spoofed fragments sent.
fn rotate_under_spoofed_responses(first: Side) -> (Sim, u64) {
    let mut sim = Sim::new(budget(64 * MIB, 10));
    establish_from(&mut sim, first);
    let a_addr = sim.a.addr;
    sim.run_until(Instant::ZERO + Duration::from_secs(9));
    let mut spoofed = 0u64;
    let deadline = Instant::ZERO + Duration::from_secs(16);
    while sim.now < deadline {
        if sim.now.as_nanos().is_multiple_of(1_000_000_000) {
            background_load(
                &mut sim,
                UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND + 1,
                spoofed as u32,
            );
        }
        let len = if spoofed.is_multiple_of(2) { 16 } else { 2252 };
        let (f, _) = forged(&sim, TYPE_RESPONSE, 0x5000_0000 + spoofed as u32, len, None);
        sim.inject(Side::B, a_addr, &f);
        spoofed += 1;
        sim.run_for(Duration::from_micros(500));
        if sim.status(Side::A).rotations >= 1 && sim.status(Side::B).rotations >= 1 {
            break;
        }
    }
    (sim, spoofed)
}

fn assert_rotated_and_spoofs_stopped_at_the_door(sim: &Sim, spoofed: u64) {
    let (a, b) = (sim.status(Side::A), sim.status(Side::B));
    assert!(
        a.rotations >= 1 && b.rotations >= 1,
        "the genuine rotation completed under load (rotations A {}, B {}; B rate_limited {})",
        a.rotations,
        b.rotations,
        sim.drops(Side::B).rate_limited
    );
    assert_eq!(
        a.current_key.unwrap().epoch,
        b.current_key.unwrap().epoch,
        "both on the new key"
    );
    assert_eq!(
        sim.drops(Side::B).rate_limited,
        0,
        "no genuine fragment of A was refused by a bucket the spoofer spent"
    );
    assert_eq!(
        sim.b.endpoint.reassembly_in_progress(),
        0,
        "no spoofed fragment holds a reassembly slot"
    );
    assert!(spoofed > 1000, "{spoofed} spoofed fragments");
    assert!(
        sim.drops(Side::B).cookie_required >= spoofed,
        "every spoofed fragment was dropped at the door, before the limiter: {} of {spoofed}",
        sim.drops(Side::B).cookie_required
    );
}

#[test]
fn under_load_spoofed_response_fragments_do_not_stall_a_rotation_the_peer_initiates() {
    let (sim, spoofed) = rotate_under_spoofed_responses(Side::A);
    assert_rotated_and_spoofs_stopped_at_the_door(&sim, spoofed);
}

#[test]
fn under_load_spoofed_response_fragments_do_not_stall_a_rotation_we_initiate() {
    let (sim, spoofed) = rotate_under_spoofed_responses(Side::B);
    assert_rotated_and_spoofs_stopped_at_the_door(&sim, spoofed);
}

/// Gets a cookie for `src` from B (under load) with one fragment without mac2.
fn cookie_for(sim: &mut Sim, src: SocketAddr, sender: u32) -> [u8; 16] {
    let (f, mac1) = forged(sim, TYPE_INITIATION, sender, 2500, None);
    sim.inject(Side::B, src, &f);
    let reply = sim.b.stray.pop().expect("a cookie reply");
    assert_eq!((reply.to, reply.payload[0]), (src, TYPE_COOKIE_REPLY));
    let reply = CookieReply::decode(&reply.payload).unwrap();
    open_cookie_reply(&sim.b.endpoint.public().dh, &reply, &[mac1]).expect("the cookie opens")
}

#[test]
fn a_limited_source_stays_limited_when_more_sources_than_the_table_holds_appear() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    background_load(&mut sim, UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND + 1, 0);
    // all at one instant: no bucket refills, B stays under load throughout
    let flooder: SocketAddr = "198.18.77.1:4000".parse().unwrap();
    let cookie = cookie_for(&mut sim, flooder, 1);
    let burst = u64::from(HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST);
    for k in 0..burst + 5 {
        let (f, _) = forged(&sim, TYPE_INITIATION, 100 + k as u32, 2500, Some(&cookie));
        sim.inject(Side::B, flooder, &f);
    }
    assert_eq!(
        sim.drops(Side::B).rate_limited,
        5,
        "the flooder spent its burst"
    );
    let others = RATE_LIMITER_SOURCES_MAX + 904;
    for k in 0..others {
        let src = SocketAddr::from(([198, 18, 200 + (k / 250) as u8, (k % 250) as u8 + 1], 4000));
        let c = cookie_for(&mut sim, src, 10_000 + k as u32);
        let (f, _) = forged(&sim, TYPE_INITIATION, 20_000 + k as u32, 2500, Some(&c));
        let before = sim.drops(Side::B).rate_limited;
        sim.inject(Side::B, src, &f);
        assert_eq!(
            sim.drops(Side::B).rate_limited,
            before,
            "source {k} has its burst"
        );
        if k % 100 == 99 {
            let (f, _) = forged(
                &sim,
                TYPE_INITIATION,
                50_000 + k as u32,
                2500,
                Some(&cookie),
            );
            let before = sim.drops(Side::B).rate_limited;
            sim.inject(Side::B, flooder, &f);
            assert_eq!(
                sim.drops(Side::B).rate_limited,
                before + 1,
                "the flooder is still limited after {} other sources",
                k + 1
            );
        }
    }
}

type Held = Rc<RefCell<Vec<Vec<u8>>>>;

#[test]
fn a_replayed_cookie_reply_does_not_make_the_initiator_resend() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    background_load(&mut sim, UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND + 1, 0);
    // record A's initiation fragments and hold B's cookie replies
    let sent_by_a: Rc<RefCell<u64>> = Rc::default();
    let replies: Held = Rc::default();
    let (count, held) = (sent_by_a.clone(), replies.clone());
    sim.filter = Some(Box::new(move |d| {
        if d.from == Side::A && d.bytes[0] == TYPE_INITIATION {
            *count.borrow_mut() += 1;
        }
        if d.from == Side::B && d.bytes[0] == TYPE_COOKIE_REPLY {
            held.borrow_mut().push(d.bytes.clone());
            return Fate::Drop;
        }
        Fate::Deliver
    }));
    sim.a.endpoint.start(sim.now);
    sim.collect(Side::A);
    sim.run_for(Duration::from_millis(5));
    assert_eq!(*sent_by_a.borrow(), 3, "one initiation, three fragments");
    let replies = replies.borrow().clone();
    assert_eq!(
        replies.len(),
        3,
        "B under load answered each with a cookie reply"
    );
    let b_addr = sim.b.addr;
    for _ in 0..5 {
        for r in &replies {
            sim.inject(Side::A, b_addr, r);
        }
    }
    assert_eq!(
        *sent_by_a.borrow(),
        3,
        "15 cookie replies (3 genuine, 12 replayed) made A send nothing at once"
    );
    assert_eq!(
        sim.drops(Side::A).stale_reply,
        14,
        "one reply accepted; the others found no message awaiting a cookie"
    );
    // the retry timer resends once, with mac2; keep B under load until then
    sim.filter = None;
    let started = sim.now;
    while !sim.has_current(Side::A) && sim.now - started < Duration::from_secs(3) {
        if (sim.now - started).as_millis().is_multiple_of(500) {
            background_load(&mut sim, UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND + 1, 7);
        }
        sim.run_for(Duration::from_millis(10));
    }
    assert!(
        sim.has_current(Side::A) && sim.has_current(Side::B),
        "completed on the retry"
    );
    assert_eq!(
        sim.count_events(
            Side::B,
            |e| matches!(e, Event::CookieSent { to } if *to == sim.a.addr)
        ),
        3,
        "the retry carried a valid mac2"
    );
}

#[test]
fn a_sustained_flood_keeps_the_responder_under_load_from_one_second_to_the_next() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    let a_addr = sim.a.addr;
    // 5000 spoofed fragments a second, evenly spread, for three seconds
    let rate = 5000u32;
    assert!(rate > UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND);
    let step = Duration::from_secs(1) / rate;
    let mut sent = 0u32;
    let mut third_second = (0u64, 0u64);
    while sim.now < Instant::ZERO + Duration::from_secs(3) {
        if sim.now == Instant::ZERO + Duration::from_secs(2) {
            third_second = (sim.drops(Side::B).cookie_required, u64::from(sent));
        }
        let (f, _) = forged(&sim, TYPE_RESPONSE, 0x6000_0000 + sent, 2252, None);
        sim.inject(Side::B, a_addr, &f);
        sent += 1;
        sim.run_for(step);
    }
    let required = sim.drops(Side::B).cookie_required - third_second.0;
    let sent_then = u64::from(sent) - third_second.1;
    assert_eq!(
        required, sent_then,
        "in the third second of the flood every fragment needed mac2 (none reached the reassembler)"
    );
}

/// A spoofed flood from one source under load gets a bounded number of cookie replies: each
/// reply costs the responder a seal and a send (a third of its time per flood datagram in
/// tests/netns/flood.sh), and a genuine sender needs one per message it retransmits.
#[test]
fn under_load_one_source_gets_a_bounded_number_of_cookie_replies() {
    let mut sim = Sim::new(budget(64 * MIB, 120));
    establish_from(&mut sim, Side::A);
    background_load(&mut sim, UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND + 1, 7);
    let src: SocketAddr = "198.18.7.7:4000".parse().unwrap();
    let key = mac1_key(&sim.b.endpoint.public().dh);
    let required_before = sim.drops(Side::B).cookie_required;
    let flood = |sim: &mut Sim, salt: u32| {
        for k in 0..1000u32 {
            let mut f = split_message(TYPE_INITIATION, salt + k, &[7u8; 16]).remove(0);
            append_macs(&mut f, &key, None);
            sim.inject(Side::B, src, &f);
        }
        let replies = sim
            .b
            .stray
            .iter()
            .filter(|t| t.to == src && t.payload[0] == TYPE_COOKIE_REPLY)
            .count();
        sim.b.stray.clear();
        replies
    };
    let replies = flood(&mut sim, 0);
    assert_eq!(
        replies, COOKIE_REPLIES_PER_SOURCE_BURST as usize,
        "cookie replies to 1000 fragments from one source"
    );
    assert_eq!(
        sim.drops(Side::B).cookie_reply_limited,
        1000 - replies as u64
    );
    assert_eq!(
        sim.drops(Side::B).cookie_required - required_before,
        1000,
        "every fragment without mac2 is counted"
    );
    // the source's allowance refills: a genuine sender gets its cookie a moment later
    sim.now = sim.now + Duration::from_secs(1);
    background_load(&mut sim, UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND + 1, 9);
    assert!(flood(&mut sim, 5000) >= 1);
}
