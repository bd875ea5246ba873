//! Each knob of the engine, measured over many datagrams against what it promises.

use super::Engine;
use crate::impair::model::{Delay, GilbertElliott, Impairment, JitterShape, Probability, Reorder};
use crate::proto::time::Instant;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

const DATAGRAMS: u64 = 100_000;
/// Arrivals every 10 µs (100k datagrams/s).
const SPACING: Duration = Duration::from_micros(10);

/// A datagram in these tests: its number and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    id: u64,
    sent: Instant,
}

fn p(v: f64) -> Probability {
    Probability::new(v).unwrap()
}

fn at(i: u64) -> Instant {
    Instant::ZERO + SPACING * u32::try_from(i).unwrap()
}

/// Feeds `count` probes at `SPACING`, polling every datagram at its due instant; returns
/// (instant it left, probe) in leaving order, with everything drained at the end.
fn run(engine: &mut Engine<Probe>, count: u64) -> Vec<(Instant, Probe)> {
    /// Polls at every due instant up to `now` (all of them when `None`).
    fn drain_until(
        engine: &mut Engine<Probe>,
        now: Option<Instant>,
        out: &mut Vec<(Instant, Probe)>,
    ) {
        while let Some(due) = engine.next_due().filter(|d| now.is_none_or(|n| *d <= n)) {
            while let Some(probe) = engine.poll_ready(due) {
                out.push((due, probe));
            }
        }
    }
    let mut out = Vec::new();
    for id in 0..count {
        let now = at(id);
        drain_until(engine, Some(now), &mut out);
        engine.push(now, Probe { id, sent: now });
    }
    drain_until(engine, None, &mut out);
    assert_eq!(engine.in_flight(), 0);
    out
}

fn within(value: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (value - expected).abs() <= tolerance,
        "{what}: {value} is not within {tolerance} of {expected}"
    );
}

#[test]
fn random_loss_of_30_percent_loses_30_percent() {
    let mut e = Engine::new(
        Impairment {
            loss: p(0.3),
            ..Impairment::default()
        },
        1,
    );
    let out = run(&mut e, DATAGRAMS);
    let c = *e.counters();
    let lost = c.dropped_random as f64 / DATAGRAMS as f64;
    // σ = sqrt(0.3 · 0.7 / 100k) ≈ 0.0014: 0.01 is seven of them.
    within(lost, 0.3, 0.01, "random loss fraction");
    assert_eq!(out.len() as u64, DATAGRAMS - c.dropped_random);
    assert_eq!(
        (c.dropped_burst, c.duplicated, c.reordered, c.delayed),
        (0, 0, 0, 0)
    );
    assert!(
        out.windows(2).all(|w| w[0].1.id < w[1].1.id),
        "loss alone never reorders"
    );
}

#[test]
fn burst_loss_matches_the_gilbert_elliott_chain() {
    let ge = GilbertElliott {
        good_to_bad: p(0.01),
        bad_to_good: p(0.25),
        loss_in_bad: Probability::ALWAYS,
    };
    let mut e = Engine::new(
        Impairment {
            burst: Some(ge),
            ..Impairment::default()
        },
        2,
    );
    let out = run(&mut e, DATAGRAMS);
    let c = *e.counters();
    within(
        c.dropped_burst as f64 / DATAGRAMS as f64,
        ge.stationary_loss(),
        0.008,
        "burst loss fraction",
    );
    // Mean length of a run of consecutive losses is 1 / P(bad -> good) = 4 datagrams.
    let kept: Vec<u64> = out.iter().map(|(_, probe)| probe.id).collect();
    let gaps: Vec<u64> = kept
        .windows(2)
        .map(|w| w[1] - w[0] - 1)
        .filter(|&g| g > 0)
        .collect();
    let mean_burst = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
    within(mean_burst, 4.0, 0.4, "mean burst length");
    assert_eq!(c.dropped_random, 0);
}

fn everything(seed: u64) -> Engine<Probe> {
    Engine::new(
        Impairment {
            loss: p(0.05),
            burst: Some(GilbertElliott {
                good_to_bad: p(0.01),
                bad_to_good: p(0.3),
                loss_in_bad: p(0.8),
            }),
            reorder: Some(Reorder {
                probability: p(0.1),
                depth: NonZeroU32::new(5).unwrap(),
                max_hold: Duration::from_millis(3),
            }),
            duplicate: p(0.2),
            delay: Delay {
                base: Duration::from_millis(2),
                jitter: Duration::from_millis(1),
                shape: JitterShape::Normal,
            },
        },
        seed,
    )
}

#[test]
fn the_same_seed_makes_the_same_decisions_and_another_seed_does_not() {
    let first = run(&mut everything(7), 20_000);
    let again = run(&mut everything(7), 20_000);
    let other = run(&mut everything(8), 20_000);
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[test]
fn no_datagram_is_lost_except_by_decision() {
    let mut e = everything(3);
    let out = run(&mut e, DATAGRAMS);
    let c = *e.counters();
    assert_eq!(c.received, DATAGRAMS);
    assert_eq!(c.forwarded, out.len() as u64);
    assert_eq!(c.in_flight(), 0);
    let mut copies: HashMap<u64, u64> = HashMap::new();
    for (left, probe) in &out {
        assert!(probe.id < DATAGRAMS);
        assert!(
            left >= &probe.sent,
            "datagram {} left before it came",
            probe.id
        );
        *copies.entry(probe.id).or_default() += 1;
    }
    let dropped = c.dropped_random + c.dropped_burst;
    assert_eq!(
        copies.len() as u64,
        DATAGRAMS - dropped,
        "distinct datagrams out"
    );
    assert!(copies.values().all(|&n| n <= 2));
    assert_eq!(
        copies.values().filter(|&&n| n == 2).count() as u64,
        c.duplicated
    );
    // each knob did something
    assert!(c.dropped_random > 0 && c.dropped_burst > 0 && c.reordered > 0 && c.delayed > 0);
}

#[test]
fn duplication_copies_the_asked_fraction() {
    let mut e = Engine::new(
        Impairment {
            duplicate: p(0.5),
            ..Impairment::default()
        },
        4,
    );
    let out = run(&mut e, DATAGRAMS);
    let c = *e.counters();
    within(
        c.duplicated as f64 / DATAGRAMS as f64,
        0.5,
        0.01,
        "duplicate fraction",
    );
    assert_eq!(out.len() as u64, DATAGRAMS + c.duplicated);
}

/// For each datagram out, how many later-sent datagrams left before it.
fn overtaken_by(out: &[(Instant, Probe)]) -> Vec<usize> {
    let mut earlier: Vec<u64> = Vec::with_capacity(out.len());
    out.iter()
        .map(|(_, me)| {
            let smaller = earlier.partition_point(|&id| id < me.id);
            earlier.insert(smaller, me.id);
            earlier.len() - 1 - smaller
        })
        .collect()
}

#[test]
fn reordering_holds_a_datagram_behind_exactly_depth_later_ones() {
    let depth = 3;
    let mut e = Engine::new(
        Impairment {
            reorder: Some(Reorder {
                probability: p(0.05),
                depth: NonZeroU32::new(depth).unwrap(),
                max_hold: Duration::from_secs(1),
            }),
            ..Impairment::default()
        },
        5,
    );
    let out = run(&mut e, 20_000);
    let c = *e.counters();
    within(
        c.reordered as f64 / 20_000.0,
        0.05,
        0.01,
        "reorder fraction",
    );
    assert_eq!(out.len(), 20_000, "reordering loses nothing");
    let overtaken = overtaken_by(&out);
    assert!(
        overtaken.iter().all(|&n| n <= depth as usize),
        "never deeper than depth"
    );
    let moved = overtaken.iter().filter(|&&n| n > 0).count() as u64;
    let exactly = overtaken.iter().filter(|&&n| n == depth as usize).count() as u64;
    // Two held datagrams close together overtake each other less; that is rare at 5 %.
    assert!(moved <= c.reordered && moved * 10 >= c.reordered * 9);
    assert!(
        exactly * 10 >= c.reordered * 8,
        "{exactly} of {} held went exactly {depth} back",
        c.reordered
    );
}

#[test]
fn a_held_datagram_leaves_at_its_max_hold_when_too_few_follow() {
    let hold = Duration::from_millis(5);
    let mut e = Engine::new(
        Impairment {
            reorder: Some(Reorder {
                probability: Probability::ALWAYS,
                depth: NonZeroU32::new(1000).unwrap(),
                max_hold: hold,
            }),
            ..Impairment::default()
        },
        6,
    );
    e.push(
        Instant::ZERO,
        Probe {
            id: 0,
            sent: Instant::ZERO,
        },
    );
    assert_eq!(e.poll_ready(Instant::ZERO + hold / 2), None);
    assert_eq!(e.next_due(), Some(Instant::ZERO + hold));
    assert_eq!(e.poll_ready(Instant::ZERO + hold).map(|p| p.id), Some(0));
    assert_eq!(e.next_due(), None);
}

fn delays(shape: JitterShape, seed: u64) -> Vec<f64> {
    let mut e = Engine::new(
        Impairment {
            delay: Delay {
                base: Duration::from_millis(20),
                jitter: Duration::from_millis(5),
                shape,
            },
            ..Impairment::default()
        },
        seed,
    );
    let out = run(&mut e, 20_000);
    // a normal sample below −4σ (p ≈ 3e-5) clamps to no delay at all
    assert!(e.counters().delayed >= 20_000 - 5);
    out.iter()
        .map(|(left, probe)| (*left - probe.sent).as_secs_f64() * 1000.0)
        .collect()
}

fn mean_and_deviation(v: &[f64]) -> (f64, f64) {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    (mean, var.sqrt())
}

#[test]
fn uniform_jitter_stays_within_its_band_around_the_delay() {
    let d = delays(JitterShape::Uniform, 9);
    assert!(
        d.iter().all(|&ms| (15.0..=25.0).contains(&ms)),
        "outside 20 ± 5 ms"
    );
    let (mean, sd) = mean_and_deviation(&d);
    within(mean, 20.0, 0.1, "mean delay, ms");
    // uniform on ±5 ms: σ = 5/√3
    within(sd, 5.0 / 3f64.sqrt(), 0.1, "delay deviation, ms");
}

#[test]
fn normal_jitter_has_the_asked_mean_and_deviation() {
    let (mean, sd) = mean_and_deviation(&delays(JitterShape::Normal, 10));
    within(mean, 20.0, 0.15, "mean delay, ms");
    within(sd, 5.0, 0.15, "delay deviation, ms");
}

#[test]
fn without_impairment_every_datagram_leaves_at_once_in_order() {
    let mut e = Engine::new(Impairment::default(), 11);
    let out = run(&mut e, 1000);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, (left, probe))| probe.id == i as u64 && *left == probe.sent)
    );
    assert_eq!(e.counters().forwarded, 1000);
}
