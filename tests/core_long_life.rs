//! The core over a long life, in simulated time: two sites under QKD policy `require`
//! rotate every 30 s (one handshake each) for [`CI_HANDSHAKES`] handshakes (about 17 days),
//! or for `QSHIELD_LONG_LIFE_HANDSHAKES` of them (1 000 000 is a year), while pings flow
//! both ways every 10 s, an hourly burst drives a key's byte counter across its soft budget
//! towards its hard one (some after its packet counter was moved near the cipher's cap),
//! the wire loses up to 3 % each way, and faults come at random: the KME twin down (for
//! seconds or minutes), failing `dec_keys`, answering slowly; the clock jumping forwards
//! (a suspend of hours) and, as a caller bug, backwards.
//!
//! Checked all along: every table and queue of both endpoints stays under a bound stated
//! below (sampled every 10 s, reported per simulated day); every rotation happens within
//! [`ROTATION_LATE_MAX`] of being due and no key reaches a hard budget, unless a fault was
//! in the way; outside faults the tunnel carries pings both ways every minute, and after a
//! fault it does again within [`RECOVERY_MAX`]; no QKD key_ID is used by two sessions of a
//! site, every session of a site has a fresh epoch and a QKD key the KME handed out.

mod support;

use qshield::constants::{
    AES_GCM_MAX_PACKETS_PER_KEY, QKD_REQUEST_TIMEOUT, QKD_RETRY_MAX,
    REASSEMBLY_SLOTS_PER_SOURCE_MAX, REKEY_ATTEMPT_TIME, STAGED_PACKETS_MAX,
};
use qshield::proto::PeerId;
use qshield::proto::events::{Event, InitiationReason};
use qshield::proto::qkd_flow::QkdPolicy;
use qshield::proto::session::{ExpiryReason, RekeyReason};
use qshield::proto::time::Instant;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use support::sim::{Fate, Side, Sim, SimOptions, budget};

/// Handshakes of the life `cargo test` runs (each side initiates about half of them).
const CI_HANDSHAKES: u64 = 50_000;
/// Environment variable that sets the number of handshakes instead (1 000 000: a year).
const HANDSHAKES_ENV: &str = "QSHIELD_LONG_LIFE_HANDSHAKES";

const MIB: u64 = 1 << 20;
/// Soft time budget: a rotation every 30 s.
const REKEY_AFTER_SECS: u64 = 30;
/// Soft byte budget; the hard one is 5/4 of it ([`budget`]).
const REKEY_AFTER_BYTES: u64 = MIB;
/// Pings go both ways this often.
const TICK: Duration = Duration::from_secs(10);
const TICKS_PER_MINUTE: u64 = 6;
const MINUTES_PER_DAY: u64 = 24 * 60;

/// A rotation happens at most this long after its key reached the soft time budget, when no
/// fault is in the way: a handshake under 3 % loss (retransmitted from 250 ms on).
const ROTATION_LATE_MAX: Duration = Duration::from_secs(5);
/// Outside faults, the tunnel carries a ping each way at least this often.
const UNDISTURBED_OUTAGE_MAX: Duration = Duration::from_secs(60);
/// After a fault ends the tunnel carries pings again within this: the longest QKD retry
/// backoff, a `dec_keys` lookup the KME may still answer, and an initiation retransmitted
/// for its whole attempt time under a name the peer refuses (clock stepped back) before a
/// fresh one, plus a tick to see it.
const RECOVERY_MAX: Duration = Duration::from_secs(
    QKD_RETRY_MAX.as_secs() + QKD_REQUEST_TIMEOUT.as_secs() + REKEY_ATTEMPT_TIME.as_secs() + 20,
);

// Bounds of every table and queue of an endpoint with one peer.
/// previous, current, next.
const SESSIONS_PER_PEER_MAX: usize = 3;
/// One per session and one for our handshake in flight.
const INDICES_MAX: usize = SESSIONS_PER_PEER_MAX + 1;
/// One source (the peer).
const REASSEMBLY_SLOTS_MAX_SEEN: usize = REASSEMBLY_SLOTS_PER_SOURCE_MAX;
const LIMITER_SOURCES_MAX: usize = 1;
/// Our key request and the one for the peer's initiation.
const QKD_OUTSTANDING_MAX: usize = 2;
/// A spare key, a late key, a cancelled `enc_keys`, an abandoned `dec_keys`.
const QKD_KEPT_MAX: usize = 4;
/// Staged packets flushed at once, plus the fragments of a handshake message or two.
const TRANSMITS_QUEUED_MAX: usize = STAGED_PACKETS_MAX + 8;
const EVENTS_QUEUED_MAX: usize = 16;
const QKD_REQUESTS_QUEUED_MAX: usize = 2;
/// Datagrams in flight on the simulated wire (a burst's packets plus handshakes).
const WIRE_MAX: usize = STAGED_PACKETS_MAX + 64;

/// Events of each site kept for the messages of failed checks.
const LOG_KEPT: usize = 200;

/// What went wrong for a while.
#[derive(Debug, Clone, Copy)]
enum FaultKind {
    KmeDown,
    DecKeysRefused,
    KmeSlow,
    Suspend,
    ClockBack,
}

impl FaultKind {
    const COUNT: usize = 5;
}

/// A fault from `start` to `end`.
#[derive(Debug, Clone, Copy)]
struct Fault {
    kind: FaultKind,
    start: Instant,
    end: Instant,
}

/// SplitMix64: the test's own seeded randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `per_million` / 10^6.
    fn chance(&mut self, per_million: u64) -> bool {
        self.next() % 1_000_000 < per_million
    }
}

/// The largest value of each probe over one simulated day.
#[derive(Debug, Default, Clone, Copy)]
struct DayMax {
    sessions: usize,
    indices: usize,
    reassembly: usize,
    limiter: usize,
    staged: usize,
    qkd_outstanding: usize,
    qkd_kept: usize,
    transmits: usize,
    events: usize,
    qkd_queued: usize,
    wire: usize,
    kme_answers: usize,
    kme_unfetched: usize,
}

/// A set of key numbers (the SimKme numbers its key_IDs), one bit each.
#[derive(Default)]
struct KeySet(Vec<u64>);

impl KeySet {
    /// Adds `n`; false if it was there.
    fn insert(&mut self, n: u64) -> bool {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }

    fn contains(&self, n: u64) -> bool {
        self.0
            .get((n / 64) as usize)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }
}

/// The number inside a SimKme key_ID.
fn key_number(key_id: &str) -> u64 {
    u64::from_str_radix(key_id.rsplit('-').next().unwrap(), 16).unwrap()
}

/// What the life measured, for the report.
#[derive(Default)]
struct Figures {
    handshakes: u64,
    rotations_by_bytes: u64,
    rotations_by_packets: u64,
    bursts: u64,
    counter_skips: u64,
    kme_outages: u64,
    dec_failures_injected: u64,
    slow_kme_periods: u64,
    suspends: u64,
    clock_steps_back: u64,
    late_rotations_excused: u64,
    latest_rotation: Duration,
    /// Per kind of fault: the longest from its end until pings got through again.
    longest_recovery: [Duration; FaultKind::COUNT],
    keys_never_fetched: u64,
    initiations_refused_as_replays: u64,
    handshakes_given_up: u64,
    keys_expired_by_time: u64,
    /// Ticks in which a ping did not get through, per direction.
    ticks_without_delivery: u64,
    peak_bytes_of_a_key: u64,
    fewest_packets_left: u64,
}

struct Life {
    sim: Sim,
    rng: Rng,
    /// Loss per mille, each way (the wire filter reads it).
    loss: Rc<Cell<u64>>,
    /// Faults, as (start, end): rotations and outages overlapping one (or its recovery
    /// time) are excused; pruned as they age.
    faults: Vec<Fault>,
    /// The KME comes back at this instant (it is down until then).
    kme_down_until: Option<Instant>,
    /// Slow answers end at this instant.
    kme_slow_until: Option<Instant>,
    /// Per direction (A to B, B to A): when a ping last got through.
    last_delivery: [Instant; 2],
    /// Per direction: the outage began with a fault in the way (its recovery is measured).
    recovering: [bool; 2],
    /// Per side: when its newest session was established.
    last_session: [Option<Instant>; 2],
    /// Per side: key numbers used by its sessions; and those the KME handed out.
    used: [KeySet; 2],
    enc_handed: KeySet,
    dec_handed: KeySet,
    /// Per side: the newest epoch seen.
    epoch: [u64; 2],
    /// Oldest key number the KME twin may still hold (older are pruned as never fetched).
    kme_prune_from: u64,
    day: DayMax,
    figures: Figures,
    tag: u32,
}

fn idx(s: Side) -> usize {
    match s {
        Side::A => 0,
        Side::B => 1,
    }
}

impl Life {
    fn new(seed: u64) -> Life {
        let mut o = SimOptions::new(budget(REKEY_AFTER_BYTES, REKEY_AFTER_SECS));
        o.qkd_policy = (QkdPolicy::Require, QkdPolicy::Require);
        let mut sim = Sim::with_options(o);
        let loss = Rc::new(Cell::new(0u64));
        let (filter_loss, mut filter_rng) = (loss.clone(), Rng(seed ^ 0x5eed));
        sim.filter = Some(Box::new(move |_| {
            if filter_rng.next() % 1000 < filter_loss.get() {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        }));
        sim.establish();
        let now = sim.now;
        Life {
            sim,
            rng: Rng(seed),
            loss,
            faults: Vec::new(),
            kme_down_until: None,
            kme_slow_until: None,
            last_delivery: [now; 2],
            recovering: [false; 2],
            last_session: [None; 2],
            used: [KeySet::default(), KeySet::default()],
            enc_handed: KeySet::default(),
            dec_handed: KeySet::default(),
            epoch: [0; 2],
            kme_prune_from: 1,
            day: DayMax::default(),
            figures: Figures {
                fewest_packets_left: u64::MAX,
                ..Figures::default()
            },
            tag: 0,
        }
    }

    fn fault(&mut self, kind: FaultKind, start: Instant, end: Instant) {
        self.faults.push(Fault { kind, start, end });
    }

    /// True when [from, to] overlaps a fault or the recovery time after one.
    fn disturbed(&self, from: Instant, to: Instant) -> bool {
        self.faults
            .iter()
            .any(|f| from <= f.end + RECOVERY_MAX && f.start <= to)
    }

    /// True when `t` falls in a fault or in the recovery time after one.
    fn in_fault_or_recovery(&self, t: Instant) -> bool {
        self.faults
            .iter()
            .any(|f| f.start <= t && t <= f.end + RECOVERY_MAX)
    }

    /// Ends the KME's faults that are over (checked every tick: they last whole ticks).
    fn end_faults(&mut self) {
        let now = self.sim.now;
        if self.kme_down_until.is_some_and(|t| now >= t) {
            self.kme_down_until = None;
            self.sim.kme.down = false;
        }
        if self.kme_slow_until.is_some_and(|t| now >= t) {
            self.kme_slow_until = None;
            self.sim.kme.dec_keys_delay = None;
            self.sim.kme.enc_keys_delay = None;
        }
    }

    /// Starts the faults of minute `minute`, at random.
    fn faults_for_minute(&mut self, minute: u64) {
        self.end_faults();
        let now = self.sim.now;
        // The KME down about 4 times a day: for seconds (the current key outlives it) or
        // minutes (the tunnel fails closed, then recovers).
        if self.kme_down_until.is_none() && self.rng.chance(4 * 1_000_000 / MINUTES_PER_DAY) {
            let ticks = if self.rng.chance(500_000) {
                self.rng.range(1, 4)
            } else {
                self.rng.range(6, 90)
            };
            let secs = ticks * TICK.as_secs();
            let until = now + Duration::from_secs(secs);
            self.sim.kme.down = true;
            self.kme_down_until = Some(until);
            self.fault(FaultKind::KmeDown, now, until);
            self.figures.kme_outages += 1;
        }
        // dec_keys refused (503) a few times, 6 times a day.
        if self.rng.chance(6 * 1_000_000 / MINUTES_PER_DAY) {
            self.sim.kme.fail_next_dec_keys += self.rng.range(1, 3) as u32;
            self.fault(
                FaultKind::DecKeysRefused,
                now,
                now + Duration::from_secs(60),
            );
            self.figures.dec_failures_injected += 1;
        }
        // Slow answers for minutes, 4 times a day: some slower than the core waits.
        if self.kme_slow_until.is_none() && self.rng.chance(4 * 1_000_000 / MINUTES_PER_DAY) {
            let until = now + TICK * self.rng.range(6, 60) as u32;
            let mut delay = || Duration::from_millis(200 + self.rng.next() % 7800);
            let (dec, enc) = (delay(), delay());
            self.sim.kme.dec_keys_delay = Some(dec);
            self.sim.kme.enc_keys_delay = self.rng.chance(500_000).then_some(enc);
            self.kme_slow_until = Some(until);
            self.fault(FaultKind::KmeSlow, now, until);
            self.figures.slow_kme_periods += 1;
        }
        // A new loss rate every hour, 0 to 3 % each way.
        if minute.is_multiple_of(60) {
            self.loss.set(self.rng.range(0, 30));
        }
    }

    /// A suspend: the clock jumps `hours` ahead with nothing run in between.
    fn suspend(&mut self) {
        let hours = self.rng.range(1, 8);
        let before = self.sim.now;
        self.sim.now = before + Duration::from_secs(hours * 3600);
        self.fault(FaultKind::Suspend, before, self.sim.now);
        self.figures.suspends += 1;
        // the KME's own faults end while the machine sleeps
        self.end_faults();
    }

    /// A caller bug: both endpoints' clock steps back by up to 2 minutes (timers, pings
    /// and the wire run from the earlier `now` on), and runs on until it is where it was.
    fn step_clock_back(&mut self) {
        let right = self.sim.now;
        let back = Duration::from_millis(self.rng.range(1, 120_000));
        self.sim.now = Instant::from_nanos(right.as_nanos().saturating_sub(back.as_nanos() as u64));
        self.fault(FaultKind::ClockBack, self.sim.now, right + back);
        while self.sim.now < right {
            self.tick();
        }
        self.figures.clock_steps_back += 1;
    }

    fn next_ping(&mut self, s: Side) -> Vec<u8> {
        self.tag += 1;
        self.sim.packet(s, 20, self.tag)
    }

    /// One 10 s tick: a ping each way, then the network runs; checks the pings got through
    /// (or are excused).
    fn tick(&mut self) {
        self.end_faults();
        let start = self.sim.now;
        let before = [self.sim.b.received.len(), self.sim.a.received.len()];
        for s in [Side::A, Side::B] {
            let p = self.next_ping(s);
            self.sim.send(s, &[p]);
        }
        self.sim.run_for(TICK);
        let after = [self.sim.b.received.len(), self.sim.a.received.len()];
        for dir in 0..2 {
            self.check_delivery(dir, start, after[dir] > before[dir]);
        }
        self.sample();
    }

    fn check_delivery(&mut self, dir: usize, tick_start: Instant, delivered: bool) {
        let now = self.sim.now;
        let since = self.last_delivery[dir];
        if delivered {
            if self.recovering[dir] {
                let last = self
                    .faults
                    .iter()
                    .filter(|f| f.start <= now)
                    .max_by_key(|f| f.end);
                if let Some(f) = last {
                    let r = &mut self.figures.longest_recovery[f.kind as usize];
                    *r = (*r).max(now.saturating_since(f.end));
                }
                self.recovering[dir] = false;
            }
            self.last_delivery[dir] = now;
            return;
        }
        self.figures.ticks_without_delivery += 1;
        let outage = now.saturating_since(since);
        if outage > UNDISTURBED_OUTAGE_MAX && self.in_fault_or_recovery(now) {
            self.recovering[dir] = true;
            return;
        }
        assert!(
            outage <= UNDISTURBED_OUTAGE_MAX,
            "direction {dir}: no ping through for {outage:?} (tick at {tick_start:?}), no fault \
             or recovery in the way (faults {:?}); A: {:?}; B: {:?}; last events A: {:?}; B: {:?}",
            self.faults,
            self.sim.status(Side::A),
            self.sim.status(Side::B),
            self.sim.a.log.iter().rev().take(20).collect::<Vec<_>>(),
            self.sim.b.log.iter().rev().take(20).collect::<Vec<_>>(),
        );
    }

    /// Samples every probe into the day's maxima and checks the bounds at once.
    fn sample(&mut self) {
        for s in [Side::A, Side::B] {
            let sizes = self.sim.site(s).endpoint.state_sizes();
            let p = sizes.peers[0];
            let high = std::mem::take(&mut self.sim.site(s).queue_high_water);
            let d = &mut self.day;
            d.sessions = d.sessions.max(p.sessions);
            d.indices = d.indices.max(sizes.indices);
            d.reassembly = d.reassembly.max(sizes.reassembly_slots);
            d.limiter = d.limiter.max(sizes.limiter_sources);
            d.staged = d.staged.max(p.staged);
            d.qkd_outstanding = d.qkd_outstanding.max(p.qkd_requests_outstanding);
            d.qkd_kept = d.qkd_kept.max(p.qkd_kept);
            d.transmits = d.transmits.max(high.transmits.max(sizes.transmits_queued));
            d.events = d.events.max(high.events.max(sizes.events_queued));
            d.qkd_queued = d
                .qkd_queued
                .max(high.qkd_requests.max(sizes.qkd_requests_queued));
            for session in self
                .sim
                .site(s)
                .endpoint
                .session_probes(PeerId::from_index(0))
            {
                let f = &mut self.figures;
                f.peak_bytes_of_a_key = f.peak_bytes_of_a_key.max(session.usage.bytes_sent);
                f.fewest_packets_left = f.fewest_packets_left.min(session.packets_left);
            }
        }
        self.day.wire = self.day.wire.max(self.sim.wire.len());
        self.day.kme_answers = self.day.kme_answers.max(self.sim.kme_answers.len());
        self.day.kme_unfetched = self.day.kme_unfetched.max(self.sim.kme.keys.len());
        check_bounds(&self.day);
        self.check_sessions_and_keys();
    }

    /// Every session established since the last call: a fresh epoch, a QKD key the KME
    /// handed out (to this side's role) and no other session of this side used; rotations
    /// on time unless excused. Trims the sim's logs.
    fn check_sessions_and_keys(&mut self) {
        for id in self.sim.kme.enc_log.drain(..) {
            assert!(
                self.enc_handed.insert(key_number(&id)),
                "enc_keys gave {id} twice"
            );
        }
        for id in self.sim.kme.dec_log.drain(..) {
            assert!(
                self.dec_handed.insert(key_number(&id)),
                "dec_keys gave {id} twice"
            );
        }
        for s in [Side::A, Side::B] {
            let seen = std::mem::take(&mut self.sim.site(s).sessions_seen);
            for session in seen {
                let i = idx(s);
                assert_eq!(
                    session.epoch,
                    self.epoch[i] + 1,
                    "{s:?}: epochs in sequence"
                );
                self.epoch[i] = session.epoch;
                let id = session
                    .qkd_key_id
                    .as_deref()
                    .unwrap_or_else(|| panic!("{s:?}: a session without QKD key under require"));
                let n = key_number(id);
                let handed = if session.is_initiator {
                    &self.enc_handed
                } else {
                    &self.dec_handed
                };
                assert!(
                    handed.contains(n),
                    "{s:?}: key {id} not handed to this side's role"
                );
                assert!(
                    self.used[i].insert(n),
                    "{s:?}: key {id} used by a second session"
                );
                self.figures.handshakes += u64::from(session.is_initiator);
                if let Some(prev) = self.last_session[i] {
                    let lived = session.at.saturating_since(prev);
                    let due = Duration::from_secs(REKEY_AFTER_SECS);
                    if lived > due + ROTATION_LATE_MAX {
                        assert!(
                            self.disturbed(prev, session.at),
                            "{s:?}: a key lived {lived:?} (rotation due after {due:?}), no fault \
                             in the way; sessions at {prev:?} and {:?}",
                            session.at
                        );
                        self.figures.late_rotations_excused += 1;
                    } else if lived > due && !self.disturbed(prev, session.at) {
                        self.figures.latest_rotation =
                            self.figures.latest_rotation.max(lived - due);
                    }
                }
                self.last_session[i] = Some(session.at);
            }
            let site = self.sim.site(s);
            for e in site.events.drain(..) {
                match e {
                    Event::HandshakeStarted {
                        reason: InitiationReason::Rekey(RekeyReason::Bytes),
                        ..
                    } => self.figures.rotations_by_bytes += 1,
                    Event::HandshakeStarted {
                        reason: InitiationReason::Rekey(RekeyReason::Packets),
                        ..
                    } => self.figures.rotations_by_packets += 1,
                    Event::InitiationIgnored { why, .. } if why.starts_with("replayed") => {
                        self.figures.initiations_refused_as_replays += 1
                    }
                    Event::HandshakeTimedOut { .. } => self.figures.handshakes_given_up += 1,
                    Event::SessionExpired {
                        reason: reason @ (ExpiryReason::Bytes | ExpiryReason::Packets),
                        epoch,
                        ..
                    } => {
                        panic!("{s:?}: key {epoch} reached its hard {reason:?} budget")
                    }
                    Event::SessionExpired { .. } => self.figures.keys_expired_by_time += 1,
                    _ => {}
                }
            }
            // the log keeps its last entries, for the messages of failed checks
            let len = site.log.len();
            site.log.drain(..len.saturating_sub(LOG_KEPT));
            site.received.clear();
            site.stray.clear();
        }
        // the KME twin forgets keys never fetched once they are far older than any wait
        let issued = self.sim.kme.issued;
        while self.kme_prune_from + 1000 < issued {
            let id = format!("00000000-0000-4000-8000-{:012x}", self.kme_prune_from);
            if self.sim.kme.keys.remove(&id).is_some() {
                self.figures.keys_never_fetched += 1;
            }
            self.kme_prune_from += 1;
        }
        // faults older than any check looks back (an hour's outage, its recovery)
        let now = self.sim.now;
        let keep = RECOVERY_MAX + Duration::from_secs(3600);
        self.faults.retain(|f| now.saturating_since(f.end) < keep);
    }

    /// An hour's burst: 2.5 MiB from `s` in one minute (36 packets/s: the 1/4 MiB between
    /// the soft and the hard byte budget lasts 6 s), after the current key's packet counter
    /// was moved 600 packets short of the cipher's cap when `near_cap`.
    fn burst(&mut self, s: Side, near_cap: bool) {
        if near_cap {
            let cap = AES_GCM_MAX_PACKETS_PER_KEY;
            if self
                .sim
                .site(s)
                .endpoint
                .skip_send_counter_to(PeerId::from_index(0), cap - 600)
            {
                self.figures.counter_skips += 1;
            }
        }
        self.figures.bursts += 1;
        let packets = (5 * MIB / 2 / 1228) as usize;
        let steps_per_tick = 60;
        let steps = steps_per_tick * TICKS_PER_MINUTE as usize;
        let mut sent = 0;
        for tick in 0..TICKS_PER_MINUTE as usize {
            // the burst's own packets are the pings of its direction
            self.end_faults();
            let start = self.sim.now;
            let before = [self.sim.b.received.len(), self.sim.a.received.len()];
            let ping = self.next_ping(s.other());
            self.sim.send(s.other(), &[ping]);
            for step in tick * steps_per_tick..(tick + 1) * steps_per_tick {
                let n = packets * (step + 1) / steps - sent;
                let batch: Vec<_> = (0..n)
                    .map(|_| {
                        self.tag += 1;
                        self.sim.packet(s, 1200, self.tag)
                    })
                    .collect();
                self.sim.send(s, &batch);
                sent += n;
                self.sim.run_for(TICK / steps_per_tick as u32);
            }
            let after = [self.sim.b.received.len(), self.sim.a.received.len()];
            for dir in 0..2 {
                self.check_delivery(dir, start, after[dir] > before[dir]);
            }
            self.sample();
        }
    }
}

fn check_bounds(d: &DayMax) {
    let bounds = [
        ("sessions per peer", d.sessions, SESSIONS_PER_PEER_MAX),
        ("session indices", d.indices, INDICES_MAX),
        ("reassembly slots", d.reassembly, REASSEMBLY_SLOTS_MAX_SEEN),
        ("rate limiter sources", d.limiter, LIMITER_SOURCES_MAX),
        ("staged packets", d.staged, STAGED_PACKETS_MAX),
        (
            "QKD requests outstanding",
            d.qkd_outstanding,
            QKD_OUTSTANDING_MAX,
        ),
        ("QKD keys and requests kept", d.qkd_kept, QKD_KEPT_MAX),
        ("transmit queue", d.transmits, TRANSMITS_QUEUED_MAX),
        ("event queue", d.events, EVENTS_QUEUED_MAX),
        ("QKD request queue", d.qkd_queued, QKD_REQUESTS_QUEUED_MAX),
        ("datagrams on the wire", d.wire, WIRE_MAX),
    ];
    for (what, got, max) in bounds {
        assert!(got <= max, "{what}: {got} > {max} ({d:?})");
    }
}

fn handshakes_wanted() -> u64 {
    match std::env::var(HANDSHAKES_ENV) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{HANDSHAKES_ENV}={v}: not a number")),
        Err(_) => CI_HANDSHAKES,
    }
}

#[test]
fn a_long_life_of_rotations_stays_bounded_on_time_and_never_reuses_a_key() {
    let wanted = handshakes_wanted();
    let minutes = wanted * REKEY_AFTER_SECS / 60;
    let wall = std::time::Instant::now();
    let mut life = Life::new(0x11fe);
    let mut days = Vec::new();
    for minute in 0..minutes {
        life.faults_for_minute(minute);
        if minute % 60 == 17 && life.kme_down_until.is_none() && life.kme_slow_until.is_none() {
            let s = if minute / 60 % 2 == 0 {
                Side::A
            } else {
                Side::B
            };
            life.burst(s, minute / 60 % 6 < 2);
        } else {
            for _ in 0..TICKS_PER_MINUTE {
                life.tick();
            }
        }
        if life.rng.chance(1_000_000 / MINUTES_PER_DAY) {
            life.suspend();
        }
        if life.rng.chance(2 * 1_000_000 / MINUTES_PER_DAY) {
            life.step_clock_back();
        }
        if (minute + 1) % MINUTES_PER_DAY == 0 {
            days.push(std::mem::take(&mut life.day));
            // a progress line every simulated month (seen with --nocapture at full scale)
            if days.len() % 30 == 0 {
                eprintln!(
                    "[core_long_life {:.0} s] day {} of {}",
                    wall.elapsed().as_secs_f64(),
                    days.len(),
                    minutes / MINUTES_PER_DAY
                );
            }
        }
    }
    days.push(life.day);
    let f = &life.figures;
    let wall = wall.elapsed();
    println!(
        "{} handshakes initiated in {:.1} simulated days ({:.0} µs of wall time each, {:.1} s)",
        f.handshakes,
        life.sim.now.as_nanos() as f64 / 86_400e9,
        wall.as_micros() as f64 / f.handshakes.max(1) as f64,
        wall.as_secs_f64()
    );
    println!(
        "rotations by bytes {}, by packets {}; bursts {}, counters moved near the cap {}; \
         peak bytes under one key {} (hard {}), fewest packets left {}",
        f.rotations_by_bytes,
        f.rotations_by_packets,
        f.bursts,
        f.counter_skips,
        f.peak_bytes_of_a_key,
        REKEY_AFTER_BYTES * 5 / 4,
        f.fewest_packets_left
    );
    println!(
        "faults: KME down {}, dec_keys failures {}, slow KME periods {}, suspends {}, clock \
         stepped back {}; late rotations excused by a fault {}; latest rotation otherwise \
         {:?} after due; longest recovery after each kind of fault (KME down, dec_keys \
         refused, KME slow, suspend, clock back) {:?}; keys never fetched {}",
        f.kme_outages,
        f.dec_failures_injected,
        f.slow_kme_periods,
        f.suspends,
        f.clock_steps_back,
        f.late_rotations_excused,
        f.latest_rotation,
        f.longest_recovery,
        f.keys_never_fetched
    );
    println!(
        "ticks without a ping through {}, keys expired at the hard time budget {}, initiations \
         refused as replays {}, handshakes given up {}",
        f.ticks_without_delivery,
        f.keys_expired_by_time,
        f.initiations_refused_as_replays,
        f.handshakes_given_up
    );
    let overall = days.iter().fold(DayMax::default(), |m, d| DayMax {
        sessions: m.sessions.max(d.sessions),
        indices: m.indices.max(d.indices),
        reassembly: m.reassembly.max(d.reassembly),
        limiter: m.limiter.max(d.limiter),
        staged: m.staged.max(d.staged),
        qkd_outstanding: m.qkd_outstanding.max(d.qkd_outstanding),
        qkd_kept: m.qkd_kept.max(d.qkd_kept),
        transmits: m.transmits.max(d.transmits),
        events: m.events.max(d.events),
        qkd_queued: m.qkd_queued.max(d.qkd_queued),
        wire: m.wire.max(d.wire),
        kme_answers: m.kme_answers.max(d.kme_answers),
        kme_unfetched: m.kme_unfetched.max(d.kme_unfetched),
    });
    println!("largest over {} days: {overall:?}", days.len());
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        println!("first day: {first:?}\nlast day:  {last:?}");
    }
    // suspends and long KME outages take some of the rotations
    assert!(
        f.handshakes >= wanted * 4 / 5,
        "handshakes: {} of about {wanted}",
        f.handshakes
    );
    assert!(f.rotations_by_bytes > 0 && f.rotations_by_packets > 0);
    assert!(f.peak_bytes_of_a_key >= REKEY_AFTER_BYTES);
}
