//! Key rotation end to end: by bytes and by time, in one and both directions, over many
//! rotations, and the hard budgets that refuse an old key, each checked at its exact edge.

mod support;

use qshield::proto::events::{Event, InitiationReason, Role};
use qshield::proto::session::{ExpiryReason, RekeyReason, RotationBudget};
use qshield::proto::time::Instant;
use qshield::proto::wire::TYPE_DATA;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use support::sim::{Fate, Side, Sim, budget};

const MIB: u64 = 1 << 20;
const NS: Duration = Duration::from_nanos(1);

/// Sends `count` 1228-byte packets from `s`, tagged from `first_tag`, in batches of 64
/// every `gap`.
fn stream(sim: &mut Sim, s: Side, first_tag: u32, count: u32, gap: Duration) {
    let mut tag = first_tag;
    while tag < first_tag + count {
        let n = (first_tag + count - tag).min(64);
        let batch: Vec<_> = (tag..tag + n).map(|t| sim.packet(s, 1200, t)).collect();
        sim.send(s, &batch);
        tag += n;
        sim.run_for(gap);
    }
}

/// Sends inner packets from `s` totalling exactly `total` bytes (each 28..=1228 bytes).
fn send_exactly(sim: &mut Sim, s: Side, total: u64) {
    let mut left = total;
    let mut tag = 1_000_000;
    while left > 0 {
        let mut size = left.min(1228);
        if (1..28).contains(&(left - size)) {
            size = left - 28;
        }
        let p = sim.packet(s, size as usize - 28, tag);
        tag += 1;
        sim.send(s, &[p]);
        left -= size;
        sim.run_for(Duration::from_micros(50));
    }
}

fn tags(received: &[Vec<u8>]) -> Vec<u32> {
    received.iter().map(|p| Sim::tag_of(p)).collect()
}

/// Asserts that `received` holds exactly `first..=last`, in order; reports gaps compactly.
fn assert_all_in_order(received: &[Vec<u8>], first: u32, last: u32, what: &str) {
    let got = tags(received);
    let mut problems = Vec::new();
    let mut expect = first;
    for &t in &got {
        if t != expect {
            problems.push(format!("expected {expect}, got {t}"));
            if problems.len() > 10 {
                break;
            }
        }
        expect = t + 1;
    }
    assert!(
        problems.is_empty() && got.len() as u32 == last - first + 1,
        "{what}: {} of {} packets; {problems:?}",
        got.len(),
        last - first + 1
    );
}

fn rekeys(sim: &Sim, s: Side, why: RekeyReason) -> usize {
    sim.count_events(s, |e| {
        matches!(e, Event::HandshakeStarted { reason: InitiationReason::Rekey(r), .. } if *r == why)
    })
}

/// Drops every handshake and cookie datagram from now on, so no rotation can complete.
fn block_handshakes(sim: &mut Sim) {
    sim.filter = Some(Box::new(|d| {
        if d.bytes[0] <= 3 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    }));
}

fn established_at(sim: &Sim, s: Side) -> Instant {
    sim.first_event_at(s, |e| matches!(e, Event::SessionEstablished { .. }))
        .expect("session established")
}

#[test]
fn bidirectional_heavy_traffic_rotates_both_ways_in_order() {
    let mut sim = Sim::new(budget(2 * MIB, 120));
    sim.establish();
    // 11.8 MB each way, 64 packets per side every 5 ms: a 2 MiB key lasts ~130 ms, so
    // about 5 rotations started by each side (the per-source handshake rate limit applies
    // only under load; these few handshakes do not put the responder under load).
    let per_side = 64 * 150;
    let mut tag = 1;
    while tag <= per_side {
        for s in [Side::A, Side::B] {
            let batch: Vec<_> = (tag..tag + 64).map(|t| sim.packet(s, 1200, t)).collect();
            sim.send(s, &batch);
        }
        tag += 64;
        sim.run_for(Duration::from_millis(5));
    }
    sim.run_for(Duration::from_millis(20));
    assert_all_in_order(&sim.b.received, 1, per_side, "A to B");
    assert_all_in_order(&sim.a.received, 1, per_side, "B to A");
    for s in [Side::A, Side::B] {
        let st = sim.status(s);
        assert!(st.rotations >= 4, "{s:?} rotated {} times", st.rotations);
        assert_eq!(
            sim.total_drops(s),
            0,
            "{s:?} drops: {:?} {:?}",
            st.drops,
            sim.drops(s)
        );
        let key = st.current_key.expect("current key");
        assert_eq!(key.epoch, st.handshakes, "the current key is the newest");
        assert!(key.bytes_sent < 5 * MIB / 2, "never past the hard budget");
    }
    assert!(
        rekeys(&sim, Side::A, RekeyReason::Bytes) + rekeys(&sim, Side::B, RekeyReason::Bytes) >= 8
    );
}

#[test]
fn many_rotations_by_bytes_lose_nothing_and_status_counts_them() {
    let mut sim = Sim::new(budget(MIB, 120));
    sim.establish();
    let count = 22_000; // 27 MB over 1 MiB keys
    // 64 packets every 7.5 ms: a 1 MiB key lasts ~100 ms, 10 rotations per second: 30
    // initiation fragments a second, far from putting B under load (the only time the
    // per-source rate limit applies; see constants.rs for both figures).
    stream(&mut sim, Side::A, 1, count, Duration::from_micros(7500));
    sim.run_for(Duration::from_millis(20));
    assert_all_in_order(&sim.b.received, 1, count, "A to B");
    let st = sim.status(Side::A);
    let established = sim.count_events(Side::A, |e| {
        matches!(
            e,
            Event::SessionEstablished {
                role: Role::Initiator,
                ..
            }
        )
    });
    assert!(st.rotations >= 20, "{} rotations", st.rotations);
    assert_eq!(
        st.rotations as usize,
        established - 1,
        "every new key but the first is a rotation"
    );
    let key = st.current_key.unwrap();
    assert_eq!(
        key.epoch as usize, established,
        "status shows the current epoch"
    );
    assert_eq!(rekeys(&sim, Side::A, RekeyReason::Bytes), established - 1);
    assert_eq!(sim.total_drops(Side::A) + sim.total_drops(Side::B), 0);
    let b = sim.status(Side::B);
    assert_eq!(
        b.current_key.unwrap().epoch,
        key.epoch,
        "both sides on the same key"
    );
    assert_eq!(b.total_bytes_received, st.total_bytes_sent);
}

#[test]
fn rotation_by_time_keeps_status_current() {
    let mut sim = Sim::new(budget(64 * MIB, 10));
    sim.establish();
    for i in 0..12 {
        let p = sim.packet(Side::A, 10, i);
        sim.send(Side::A, &[p]);
        let q = sim.packet(Side::B, 10, i);
        sim.send(Side::B, &[q]);
        sim.run_for(Duration::from_secs(5));
    }
    assert_eq!(tags(&sim.b.received), (0..12).collect::<Vec<_>>());
    assert_eq!(tags(&sim.a.received), (0..12).collect::<Vec<_>>());
    let st = sim.status(Side::A);
    assert!(st.rotations >= 5, "60 s over 10 s keys: {}", st.rotations);
    let key = st.current_key.unwrap();
    assert!(
        key.age_seconds < 10.0 + 1e-6,
        "the key is younger than its soft budget"
    );
    assert_eq!(key.epoch, st.rotations + 1);
    assert_eq!(
        rekeys(&sim, Side::A, RekeyReason::Time) as u64,
        st.rotations
    );
    assert_eq!(sim.total_drops(Side::A) + sim.total_drops(Side::B), 0);
}

#[test]
fn hard_byte_budget_refuses_the_old_key_then_a_new_one_carries_the_staged_packets() {
    let b = budget(MIB, 120);
    let mut sim = Sim::new(b);
    sim.establish();
    let data_sent = Rc::new(RefCell::new(0u64));
    let held = Rc::new(RefCell::new(Vec::new()));
    let blocked = Rc::new(RefCell::new(true));
    {
        let (data_sent, held, blocked) = (data_sent.clone(), held.clone(), blocked.clone());
        sim.filter = Some(Box::new(move |d| {
            if d.bytes[0] <= 3 && *blocked.borrow() {
                return Fate::Drop;
            }
            if d.bytes[0] == 4 && d.from == Side::A {
                *data_sent.borrow_mut() += 1;
                if *data_sent.borrow() == 1 {
                    held.borrow_mut().push(d.bytes.clone());
                    return Fate::Drop;
                }
            }
            Fate::Deliver
        }));
    }
    let small = sim.packet(Side::A, 0, 0);
    sim.send(Side::A, &[small]); // held back by the wire, delivered late below
    stream(&mut sim, Side::A, 1, 1100, Duration::from_micros(300)); // 1.35 MB > 1.25 MiB
    sim.run_for(Duration::from_millis(5));
    assert!(
        sim.status(Side::A).current_key.is_none(),
        "the exhausted key is gone"
    );
    assert!(sim.a.events.iter().any(|e| matches!(
        e,
        Event::SessionExpired {
            epoch: 1,
            reason: ExpiryReason::Bytes,
            ..
        }
    )));
    let b_key = sim.status(Side::B).current_key.unwrap();
    assert!(b_key.bytes_received >= b.reject_after_bytes - 28);
    assert!(
        b_key.bytes_received + 28 < b.reject_after_bytes + 1228,
        "at most one packet was sealed after the key reached its hard budget"
    );
    let sent_under_key = sim.b.received.len() as u64;
    assert_eq!(*data_sent.borrow(), sent_under_key + 1);
    let p = sim.packet(Side::A, 10, 5000);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_millis(10));
    assert_eq!(
        *data_sent.borrow(),
        sent_under_key + 1,
        "nothing sealed under the expired key"
    );
    // B has received past the hard budget: the late packet under that key is refused.
    let late = held.borrow_mut().pop().unwrap();
    let from = sim.a.addr;
    assert!(sim.status(Side::B).current_key.unwrap().bytes_received >= b.reject_after_bytes);
    assert_eq!(sim.inject(Side::B, from, &late), None);
    assert_eq!(sim.status(Side::B).drops.key_expired, 1);
    // Handshakes get through again: the staged packets (up to the queue size) go out.
    *blocked.borrow_mut() = false;
    sim.run_for(Duration::from_secs(6));
    assert_eq!(sim.status(Side::A).current_key.unwrap().epoch, 2);
    let got = tags(&sim.b.received);
    let tail = &got[sent_under_key as usize..];
    assert_eq!(
        tail.len() as u64,
        1101 - sent_under_key,
        "every staged packet arrives"
    );
    assert!(
        tail.windows(2).all(|w| w[0] < w[1]),
        "staged packets in order"
    );
    assert_eq!(*tail.last().unwrap(), 5000);
    assert_eq!(sim.total_drops(Side::A), 0);
}

#[test]
fn byte_budgets_at_their_exact_edges() {
    let b = budget(MIB, 120);
    // soft: exactly one byte short does not rotate, exactly the budget does
    for (total, rotates) in [
        (b.rekey_after_bytes - 1, false),
        (b.rekey_after_bytes, true),
    ] {
        let mut sim = Sim::new(b);
        sim.establish();
        send_exactly(&mut sim, Side::A, total);
        sim.run_for(Duration::from_millis(1));
        let key = sim.status(Side::A).current_key.unwrap();
        assert_eq!(key.bytes_sent, total);
        assert_eq!(key.rekey_in_bytes, b.rekey_after_bytes - total);
        assert_eq!(
            rekeys(&sim, Side::A, RekeyReason::Bytes),
            usize::from(rotates),
            "at {total}"
        );
    }
    // hard: one byte short still seals, exactly the budget refuses
    for (total, refused) in [
        (b.reject_after_bytes - 1, false),
        (b.reject_after_bytes, true),
    ] {
        let mut sim = Sim::new(b);
        sim.establish();
        block_handshakes(&mut sim);
        send_exactly(&mut sim, Side::A, total);
        sim.run_for(Duration::from_millis(5));
        let key = sim.status(Side::A).current_key.unwrap();
        assert_eq!(
            (key.bytes_sent, key.reject_in_bytes),
            (total, b.reject_after_bytes - total)
        );
        let before = sim.b.received.len();
        let p = sim.packet(Side::A, 0, 77);
        sim.send(Side::A, &[p]);
        sim.run_for(Duration::from_millis(5));
        let delivered = sim.b.received.len() - before;
        assert_eq!(delivered, usize::from(!refused), "at {total}");
        let expired = sim.count_events(Side::A, |e| {
            matches!(
                e,
                Event::SessionExpired {
                    reason: ExpiryReason::Bytes,
                    ..
                }
            )
        });
        assert_eq!(expired, usize::from(refused));
        assert_eq!(sim.status(Side::A).current_key.is_none(), refused);
    }
}

#[test]
fn time_budgets_at_their_exact_edges() {
    let b = RotationBudget {
        rekey_after_bytes: 64 * MIB,
        rekey_after: Duration::from_secs(10),
        reject_after_bytes: 80 * MIB,
        reject_after: Duration::from_secs(15),
    };
    let mut sim = Sim::new(b);
    sim.establish();
    let (ta, tb) = (established_at(&sim, Side::A), established_at(&sim, Side::B));
    assert!(tb < ta, "the responder's key is made first");
    // From now on: no handshake gets through, and A's data is held back (sent times kept).
    let held = Rc::new(RefCell::new(Vec::<(Instant, Vec<u8>)>::new()));
    {
        let held = held.clone();
        let latency = sim.latency;
        sim.filter = Some(Box::new(move |d| {
            if d.bytes[0] == 4 && d.from == Side::A {
                let sent = Instant::from_nanos(d.deliver_at.as_nanos() - latency.as_nanos() as u64);
                held.borrow_mut().push((sent, d.bytes.clone()));
            }
            Fate::Drop
        }));
    }
    for i in 0..3 {
        let p = sim.packet(Side::A, 10, i);
        sim.send(Side::A, &[p]);
    }
    let rekey_started = |sim: &Sim, s| {
        sim.first_event_at(s, |e| {
            matches!(
                e,
                Event::HandshakeStarted {
                    reason: InitiationReason::Rekey(RekeyReason::Time),
                    ..
                }
            )
        })
    };
    // initiator: soft time at exactly rekey_after less its session's random spread (whole
    // ms, at most a tenth of rekey_after), which its status shows
    let key = sim.status(Side::A).current_key.unwrap();
    assert_eq!(key.role, Role::Initiator);
    let soft_ms = ((sim.now - ta).as_secs_f64() + key.rekey_in_seconds) * 1e3;
    let initiator_soft = Duration::from_millis(soft_ms.round() as u64);
    assert!(
        initiator_soft <= b.rekey_after && initiator_soft >= b.rekey_after - b.rekey_after / 10,
        "{initiator_soft:?}"
    );
    sim.run_until(ta + (initiator_soft - NS));
    assert_eq!(rekey_started(&sim, Side::A), None);
    sim.run_until(ta + initiator_soft);
    assert_eq!(rekey_started(&sim, Side::A), Some(ta + initiator_soft));
    // responder: soft time half-way between soft and hard (12.5 s)
    let responder_soft = b.rekey_after + (b.reject_after - b.rekey_after) / 2;
    let key = sim.status(Side::B).current_key.unwrap();
    assert_eq!(key.role, Role::Responder);
    assert!((key.rekey_in_seconds - (tb + responder_soft - sim.now).as_secs_f64()).abs() < 1e-9);
    sim.run_until(tb + (responder_soft - NS));
    assert_eq!(rekey_started(&sim, Side::B), None);
    sim.run_until(tb + responder_soft);
    assert_eq!(rekey_started(&sim, Side::B), Some(tb + responder_soft));
    // receive side of the hard time: a packet one nanosecond before is accepted ...
    sim.run_until(tb + (b.reject_after - NS));
    let packets: Vec<Vec<u8>> = held.borrow().iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(packets.len(), 3);
    let from = sim.a.addr;
    assert!(sim.inject(Side::B, from, &packets[0]).is_some());
    // ... and one at the instant is refused as key_expired (before any timer ran)
    sim.now = tb + b.reject_after;
    assert_eq!(sim.inject(Side::B, from, &packets[1]), None);
    assert_eq!(sim.status(Side::B).drops.key_expired, 1);
    sim.run_until(tb + b.reject_after);
    assert!(!sim.has_current(Side::B));
    // send side: A seals one nanosecond before its hard time, never at it
    sim.run_until(ta + (b.reject_after - NS));
    assert!(sim.has_current(Side::A));
    let p = sim.packet(Side::A, 10, 100);
    sim.send(Side::A, &[p]);
    assert_eq!(held.borrow().len(), 4);
    sim.run_until(ta + b.reject_after);
    assert_eq!(
        sim.first_event_at(Side::A, |e| matches!(
            e,
            Event::SessionExpired {
                reason: ExpiryReason::Time,
                ..
            }
        )),
        Some(ta + b.reject_after)
    );
    let p = sim.packet(Side::A, 10, 101);
    sim.send(Side::A, &[p]);
    sim.run_for(Duration::from_secs(2));
    let last_sent = held.borrow().iter().map(|(t, _)| *t).max().unwrap();
    assert!(
        last_sent < ta + b.reject_after,
        "no data sealed under the expired key"
    );
    assert!(!sim.has_current(Side::A));
}

#[test]
fn fast_rotation_at_the_accepted_initiation_rate_loses_nothing() {
    let mut sim = Sim::new(budget(MIB, 120));
    sim.latency = Duration::from_micros(100);
    sim.establish();
    // 64 packets every 0.4 ms (~1.5 Gbit/s): a 1 MiB key lasts ~5.5 ms, about 180 rotations
    // per second for over half a second, well past any burst allowance: the per-source
    // handshake rate and the load threshold must admit it.
    let count = 100_000;
    stream(&mut sim, Side::A, 1, count, Duration::from_micros(400));
    sim.run_for(Duration::from_millis(20));
    assert_all_in_order(&sim.b.received, 1, count, "A to B");
    let st = sim.status(Side::A);
    assert!(st.rotations >= 100, "{} rotations", st.rotations);
    let expired = sim.count_events(Side::A, |e| matches!(e, Event::SessionExpired { .. }));
    assert_eq!(expired, 0, "every key was replaced before its hard limit");
    assert_eq!(sim.total_drops(Side::A) + sim.total_drops(Side::B), 0);
    assert_eq!(sim.drops(Side::B).rate_limited, 0);
}

/// Rotation every second with handshakes that take up to half a second each way (a loaded
/// machine: handshake datagrams queue behind data), data both ways every millisecond. The
/// responder's own rekey timer then fires while the initiator's new session awaits its
/// confirmation, so the initiator answers an initiation its peer abandons a moment later
/// (the peer's answered session was confirmed). That answered session must not displace
/// the current one the peer still sends on when the initiator next rotates: no data may
/// arrive under a session already dropped.
#[test]
fn rotation_with_slow_handshakes_drops_no_session_the_peer_still_uses() {
    let b = RotationBudget {
        rekey_after_bytes: 1 << 40,
        rekey_after: Duration::from_secs(1),
        reject_after_bytes: 1 << 41,
        reject_after: Duration::from_secs(3),
    };
    for seed in 18..26u64 {
        let mut sim = Sim::new(b);
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        sim.filter = Some(Box::new(move |d| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let max_ms = if d.bytes[0] == TYPE_DATA { 30 } else { 500 };
            Fate::Delay(Duration::from_millis(x % max_ms))
        }));
        sim.establish();
        let mut tag = 0;
        for _ in 0..15_000 {
            for s in [Side::A, Side::B] {
                let p = sim.packet(s, 100, tag);
                tag += 1;
                sim.send(s, &[p]);
            }
            sim.run_for(Duration::from_millis(1));
        }
        let rotations = sim.status(Side::A).rotations;
        assert!(rotations >= 8, "seed {seed}: {rotations} rotations");
        for s in [Side::A, Side::B] {
            assert_eq!(
                sim.drops(s).unknown_index,
                0,
                "seed {seed}: data reached {s:?} under a session it had dropped ({rotations} rotations)"
            );
            assert_eq!(
                sim.status(s).drops,
                Default::default(),
                "seed {seed}, {s:?}"
            );
        }
        assert_eq!(sim.sessions_disagree(), None, "seed {seed}");
    }
}
