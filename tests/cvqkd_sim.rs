//! The GG02 link simulator end to end: estimator statistics, attacks, final keys, privacy
//! amplification length, the two halves over serialized messages, auto V_A on metro links.
//! Sizes are small (but for the metro test) so the file runs in about a minute in debug
//! builds.

use qshield::cvqkd::sim::{
    AbortReason, Alice, Attack, BlockReport, Bob, Channel, ClassicalMessage, LinkSimulator,
    Protocol, SimConfig,
    adapt::{VaSelection, apply_auto},
    codes::CodeFamily,
    rng::SimRng,
};
use qshield::cvqkd::{Detection, FiniteSizeParams, LinkParams, transmittance_from_distance};
use std::sync::Arc;

/// Frame length used by the key tests (short, so debug builds decode fast).
const FRAME: usize = 16_384;
/// Block of the key tests: 2^18 pulses, half disclosed, 8 frames of key samples.
const KEY_N: u64 = 1 << 18;

fn link(km: f64) -> LinkParams {
    let mut l = LinkParams::reference(transmittance_from_distance(km, 0.2).unwrap());
    l.reconciliation_efficiency = 1.0;
    l
}

fn config(km: f64, n: u64, m: u64, attack: Attack, seed: u64) -> SimConfig {
    SimConfig {
        link: link(km),
        finite: FiniteSizeParams::new(n, m, 1e-6),
        attack,
        frame_bits: 4096,
        max_iterations: 60,
        seed,
    }
}

/// A short (1 km) link at V_A = 8 whose 2^18-pulse blocks give key (ε = 1e-6).
fn key_config(attack: Attack, seed: u64) -> SimConfig {
    let mut link = link(1.0);
    link.modulation_variance_snu = 8.0;
    SimConfig {
        link,
        finite: FiniteSizeParams::new(KEY_N, KEY_N / 2, 1e-6),
        attack,
        frame_bits: FRAME,
        max_iterations: 60,
        seed,
    }
}

fn run(cfg: SimConfig, blocks: usize) -> Vec<BlockReport> {
    let mut sim = LinkSimulator::new(cfg).unwrap();
    (0..blocks)
        .map(|_| sim.run_block().unwrap().report)
        .collect()
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// Over many blocks the mean estimate is within 4 standard errors of the truth, and the
/// finite-size worst case covers the truth in every block.
#[test]
fn estimators_unbiased_within_confidence_intervals() {
    for detection in [Detection::Homodyne, Detection::Heterodyne] {
        let mut cfg = config(10.0, 20_000, 10_000, Attack::None, 1);
        cfg.link.detection = detection;
        let reports = run(cfg, 150);
        let (t_true, xi_true) = (
            reports[0].transmittance_true,
            reports[0].excess_noise_true_snu,
        );
        let t: Vec<f64> = reports.iter().map(|r| r.transmittance_estimate).collect();
        let xi: Vec<f64> = reports
            .iter()
            .map(|r| r.excess_noise_estimate_snu)
            .collect();
        let ((mt, st), (mx, sx)) = (mean_sd(&t), mean_sd(&xi));
        let se = (reports.len() as f64).sqrt();
        assert!(
            (mt - t_true).abs() < 4.0 * st / se,
            "{detection}: T {mt} ± {st} vs {t_true}"
        );
        assert!(
            (mx - xi_true).abs() < 4.0 * sx / se,
            "{detection}: ξ {mx} ± {sx} vs {xi_true}"
        );
        for r in &reports {
            assert!(
                r.transmittance_min <= t_true && r.excess_noise_max_snu >= xi_true,
                "{r:?}"
            );
        }
    }
}

#[test]
fn intercept_resend_always_aborts() {
    let reports = run(
        config(
            5.0,
            65_536,
            16_384,
            Attack::InterceptResend { fraction: 1.0 },
            2,
        ),
        10,
    );
    for r in &reports {
        assert_eq!(r.key_bits, 0);
        assert!(r.abort.is_some());
        assert!((r.excess_noise_estimate_snu - 2.01).abs() < 0.2, "{r:?}");
    }
}

#[test]
fn cloner_above_tolerable_noise_aborts_below_lowers_the_rate() {
    let bound = |attack| {
        let r = run(key_config(attack, 3), 2);
        r.iter().map(|r| r.bound_bits).sum::<f64>() / 2.0
    };
    let clean = bound(Attack::None);
    let mild = bound(Attack::Cloner {
        excess_noise_snu: 0.01,
    });
    assert!(clean > 0.0 && mild > 0.0 && mild < clean, "{clean} {mild}");
    let strong = run(
        config(
            2.0,
            65_536,
            16_384,
            Attack::Cloner {
                excess_noise_snu: 0.6,
            },
            4,
        ),
        5,
    );
    for r in &strong {
        assert_eq!(
            r.abort.as_deref(),
            Some(AbortReason::NoKeyAtEstimate.to_string().as_str())
        );
        assert!(r.excess_noise_estimate_snu > 0.4, "{r:?}");
    }
}

#[test]
fn a_tap_shows_in_the_estimated_transmittance() {
    let clean = run(config(5.0, 40_000, 20_000, Attack::None, 5), 20);
    let tapped = run(
        config(5.0, 40_000, 20_000, Attack::Tap { loss_db: 3.0 }, 6),
        20,
    );
    let t = |r: &[BlockReport]| {
        mean_sd(
            &r.iter()
                .map(|r| r.transmittance_estimate)
                .collect::<Vec<_>>(),
        )
    };
    let ((tc, sc), (tt, st)) = (t(&clean), t(&tapped));
    let truth = tapped[0].transmittance_true;
    assert!((truth / clean[0].transmittance_true - 10f64.powf(-0.3)).abs() < 1e-12);
    assert!(
        (tt - truth).abs() < 4.0 * st / 20f64.sqrt(),
        "{tt} vs {truth}"
    );
    assert!(tc - tt > 20.0 * (sc + st), "{tc} {tt}");
}

#[test]
fn final_keys_are_identical_over_many_blocks() {
    let mut sim = LinkSimulator::new(key_config(Attack::None, 7)).unwrap();
    let mut keyed = 0;
    for _ in 0..6 {
        let run = sim.run_block().unwrap();
        assert_eq!(run.alice_key, run.bob_key);
        assert!(run.report.keys_match);
        if let Some(k) = &run.alice_key {
            assert_eq!(k.bits.len(), run.report.key_bits);
            keyed += 1;
        }
    }
    assert!(keyed >= 5, "only {keyed} of 6 blocks gave a key");
}

/// With every frame verified and no leftover samples, ℓ = N·K_N(β of the code) − tags.
#[test]
fn privacy_amplified_length_equals_the_bound() {
    let mut checked = 0;
    for r in run(key_config(Attack::None, 9), 4) {
        if r.frames_failed > 0 || r.key_bits == 0 {
            continue;
        }
        assert_eq!(r.frames * FRAME, (KEY_N / 2) as usize);
        let want = r.bound_bits - (r.frames * 64) as f64;
        assert!(
            (r.key_bits as f64 - want).abs() <= 1.0,
            "{} vs {want}",
            r.key_bits
        );
        checked += 1;
    }
    assert!(checked >= 2);
}

/// `--va auto` on metro links: with the V_A `choose_modulation` picks for the nominal
/// channel, 5, 10 and 15 km give identical non-empty keys at both ends. Blocks of 2^20
/// pulses (2^21 at 15 km, the smallest that gives key there at ε = 1e-6): the slowest test
/// of this file (about a minute in a debug build), stopping at each link's first key.
#[test]
fn auto_va_gives_identical_keys_on_metro_links() {
    for (km, n, seed) in [
        (5.0, 1u64 << 20, 21),
        (10.0, 1 << 20, 22),
        (15.0, 1 << 21, 23),
    ] {
        let mut cfg = SimConfig {
            link: link(km),
            finite: FiniteSizeParams::new(n, n / 2, 1e-6),
            attack: Attack::None,
            frame_bits: qshield::cvqkd::sim::codes::DEFAULT_FRAME_BITS,
            max_iterations: 100,
            seed,
        };
        let choice = apply_auto(&mut cfg);
        assert!(
            matches!(choice, VaSelection::Auto(_)),
            "{km} km: {choice:?}"
        );
        let mut sim = LinkSimulator::new(cfg).unwrap();
        let mut keyed = 0;
        for _ in 0..2 {
            let run = sim.run_block().unwrap();
            assert_eq!(run.alice_key, run.bob_key, "{km} km");
            if let Some(k) = &run.alice_key {
                assert!(!k.bits.is_empty() && k.bits.len() == run.report.key_bits);
                keyed += 1;
                break;
            }
        }
        assert!(keyed >= 1, "{km} km: no block of 2 gave key ({choice:?})");
    }
}

#[test]
fn long_distances_report_reconciliation_out_of_range() {
    let r = run(config(200.0, 20_000, 10_000, Attack::None, 10), 1);
    assert_eq!(r[0].abort.as_deref(), Some("reconciliation out of range"));
}

/// The two halves exchange only serialized messages (as two KMEs would over a network).
#[test]
fn alice_and_bob_over_serialized_messages() {
    let cfg = key_config(Attack::None, 11);
    let proto = Protocol {
        link: cfg.link,
        finite: cfg.finite,
        codes: Arc::new(CodeFamily::new(FRAME)),
        max_iterations: 60,
    };
    let mut alice = Alice::new(proto.clone(), SimRng::new(1));
    let mut bob = Bob::new(proto, SimRng::new(2));
    let mut channel = Channel::new(cfg.link.transmittance, 0.01, Attack::None, SimRng::new(3));
    let wire = |m: &ClassicalMessage| -> ClassicalMessage {
        serde_json::from_str(&serde_json::to_string(m).unwrap()).unwrap()
    };
    let mut pulses = alice.prepare(0);
    channel.transmit(&mut pulses);
    let mut to_alice = Some(wire(&bob.receive(&pulses)));
    while let Some(m) = to_alice.take() {
        let Some(reply) = alice.handle(&m).unwrap() else {
            break;
        };
        to_alice = bob.handle(&wire(&reply)).unwrap().map(|m| wire(&m));
    }
    let (ka, kb) = (alice.take_key().unwrap(), bob.take_key().unwrap());
    assert!(ka.bits.len() > 1000);
    assert_eq!(ka, kb);
    assert_eq!(
        alice.outcome().unwrap().key_bits,
        bob.outcome().unwrap().key_bits
    );
}

/// Heterodyne detection (both quadratures, two real samples per pulse, no sifting) through
/// the whole pipeline: keys identical at both ends, and the estimates near the truth.
#[test]
fn heterodyne_blocks_give_identical_keys() {
    let mut cfg = key_config(Attack::None, 31);
    cfg.link.detection = Detection::Heterodyne;
    let choice = apply_auto(&mut cfg);
    assert!(matches!(choice, VaSelection::Auto(_)), "{choice:?}");
    let mut sim = LinkSimulator::new(cfg).unwrap();
    let mut keyed = 0;
    for _ in 0..3 {
        let run = sim.run_block().unwrap();
        assert_eq!(run.alice_key, run.bob_key);
        let r = &run.report;
        assert!(
            (r.transmittance_estimate - r.transmittance_true).abs() < 0.02,
            "{r:?}"
        );
        if run.alice_key.is_some() {
            assert_eq!(
                r.frames * FRAME,
                KEY_N as usize,
                "two samples per key pulse"
            );
            keyed += 1;
        }
    }
    assert!(keyed >= 2, "only {keyed} of 3 heterodyne blocks gave key");
}
