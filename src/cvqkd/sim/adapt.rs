//! Automatic modulation variance (`qshield qkd simulate --va auto`): the V_A that puts the
//! estimated SNR just above one code's operating point, for the code that gives the most key.
//!
//! Why: the codes are a discrete family ([`CodeFamily`]). A block uses the highest-rate code
//! whose operating SNR `s_c` (threshold × margin) is ≤ the estimated SNR ŝ = t̂²V_A/σ̂², and
//! its efficiency is β = R·spp/I_AB(ŝ). An SNR well above `s_c` wastes mutual information
//! (β drops and the block may abort), so V_A must be tuned to the channel.
//!
//! How: Bob's noise σ² = 1 + v_el + ηTξ/spp does not depend on V_A (y = t·x + z), so code
//! `c` is reached at `V_c = s_c·k_c·σ²/t²`, where the safety factor `k_c` keeps ŝ ≥ s_c when
//! t̂ and σ̂² err by [`SNR_SAFETY_SIGMAS`] standard deviations each in the unfavourable
//! direction, the same confidence-interval form as the finite-size worst case
//! (cvqkd-physics.md §5): `t̂ ≥ t − z√(σ²/(m′V_A))` and `σ̂² ≤ σ² + zσ²√2/√m′`. Every code whose
//! `V_c` lies in [[`MIN_AUTO_VA_SNU`], [`MAX_AUTO_VA_SNU`]] is scored by the finite-size key
//! rate at the expected estimates with that code's β (the function parameter estimation
//! uses, [`finite_size_rate_from_statistics`]); the best positive one wins.

use super::codes::{CODE_SPECS, CodeFamily};
use super::link::SimConfig;
use crate::cvqkd::finite_size::{
    FiniteSizeParams, expected_statistics, finite_size_rate_from_statistics,
};
use crate::cvqkd::params::LinkParams;
use serde::Serialize;

/// Smallest V_A considered, SNU (below it no code of the family is reached on metro links,
/// and the ADC/modulator resolution of real devices degrades).
pub const MIN_AUTO_VA_SNU: f64 = 1.0;
/// Largest V_A considered, SNU: GG02 experiments modulate at a few to a few tens of SNU
/// (Jouguet et al., Nat. Photon. 7, 378 (2013)); beyond it β·I_AB − χ_BE falls for any
/// realistic β.
pub const MAX_AUTO_VA_SNU: f64 = 40.0;
/// Standard deviations of t̂ and of σ̂² (each, worst direction) the SNR margin covers. The
/// two margins add linearly, which is at least 3 standard deviations of ŝ itself, so ŝ falls
/// below the chosen code's operating point (a lower code, poor β, likely abort) in less
/// than 0.14 % of blocks.
pub const SNR_SAFETY_SIGMAS: f64 = 3.0;

/// The modulation chosen for a link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModulationChoice {
    /// Alice's modulation variance V_A, SNU.
    pub modulation_variance_snu: f64,
    /// Index of the code the blocks are expected to use ([`CodeFamily`] order).
    pub code_index: usize,
    /// Expected SNR per real sample at that V_A (exact estimator), t²V_A/σ².
    pub expected_snr: f64,
    /// Expected reconciliation efficiency β = R·spp/I_AB.
    pub beta: f64,
    /// Expected finite-size key rate K_N, bits per pulse (before frame losses).
    pub key_rate_bits_per_pulse: f64,
}

/// V_A used by `--va auto` when no code gives key (the reference V_A of cvqkd-physics.md §4), SNU:
/// the run then shows why blocks abort.
pub const FALLBACK_VA_SNU: f64 = 4.0;

/// How the V_A of a simulation run was set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum VaSelection {
    /// Given as a number on the command line.
    Fixed,
    /// Chosen by [`choose_modulation`].
    Auto(ModulationChoice),
    /// `auto` found no code that gives key; [`FALLBACK_VA_SNU`] is used.
    AutoOutOfRange,
}

impl VaSelection {
    /// One line for the text output.
    pub fn describe(&self, va_snu: f64) -> String {
        match self {
            VaSelection::Fixed => format!("V_A {va_snu} SNU (fixed)"),
            VaSelection::Auto(c) => format!(
                "V_A auto: {:.3} SNU, code R {} (#{}), expected SNR {:.3}, beta {:.3}, K_N {:.3e} bits/pulse",
                c.modulation_variance_snu,
                CODE_SPECS[c.code_index].rate,
                c.code_index,
                c.expected_snr,
                c.beta,
                c.key_rate_bits_per_pulse
            ),
            VaSelection::AutoOutOfRange => format!(
                "V_A auto: no code gives key with V_A in [{MIN_AUTO_VA_SNU}, {MAX_AUTO_VA_SNU}] SNU (out of range); using {va_snu} SNU"
            ),
        }
    }
}

/// Set `config`'s V_A automatically for its link (as the devices would, from the expected
/// channel: an attack is not anticipated) and say how.
pub fn apply_auto(config: &mut SimConfig) -> VaSelection {
    let codes = CodeFamily::new(config.frame_bits);
    match choose_modulation(&config.link, &config.finite, &codes) {
        Some(c) => {
            config.link.modulation_variance_snu = c.modulation_variance_snu;
            VaSelection::Auto(c)
        }
        None => {
            config.link.modulation_variance_snu = FALLBACK_VA_SNU;
            VaSelection::AutoOutOfRange
        }
    }
}

/// The V_A and code that give the most finite-size key on the expected channel `nominal`
/// (its transmittance, excess noise, detector and detection; its V_A and β are ignored),
/// with blocks `finite` and codes `codes`. `None` when no code gives key with V_A in
/// [[`MIN_AUTO_VA_SNU`], [`MAX_AUTO_VA_SNU`]] (out of range).
pub fn choose_modulation(
    nominal: &LinkParams,
    finite: &FiniteSizeParams,
    codes: &CodeFamily,
) -> Option<ModulationChoice> {
    (0..codes.len())
        .filter_map(|c| evaluate_code(nominal, finite, codes, c))
        .filter(|m| m.key_rate_bits_per_pulse > 0.0)
        .max_by(|a, b| {
            a.key_rate_bits_per_pulse
                .total_cmp(&b.key_rate_bits_per_pulse)
        })
}

/// The choice for code `c` alone: V_A that reaches it with margin, or `None` when that V_A
/// is out of range or the SNR would select another code.
pub fn evaluate_code(
    nominal: &LinkParams,
    finite: &FiniteSizeParams,
    codes: &CodeFamily,
    c: usize,
) -> Option<ModulationChoice> {
    let exact = expected_statistics(nominal, finite.pe_samples);
    let noise_to_gain = exact.noise_variance_snu / (exact.gain * exact.gain);
    let target = codes.min_snr(c) * safety_factor(codes.min_snr(c), exact.real_samples);
    let va = target * noise_to_gain;
    if !(MIN_AUTO_VA_SNU..=MAX_AUTO_VA_SNU).contains(&va) || codes.select(target) != Some(c) {
        return None;
    }
    let link = nominal.with_modulation_variance(va);
    let ideal = LinkParams {
        reconciliation_efficiency: 1.0,
        ..link
    };
    let i_ab = finite_size_rate_from_statistics(&ideal, &exact, finite).i_ab;
    let spp = f64::from(link.detection.samples_per_pulse());
    let beta = codes.rate(c) * spp / i_ab;
    if !(beta > 0.0 && beta <= 1.0) {
        return None;
    }
    let with_code = LinkParams {
        reconciliation_efficiency: beta,
        ..link
    };
    let rate = finite_size_rate_from_statistics(&with_code, &exact, finite);
    Some(ModulationChoice {
        modulation_variance_snu: va,
        code_index: c,
        expected_snr: target,
        beta,
        key_rate_bits_per_pulse: rate.key_rate_bits_per_pulse,
    })
}

/// `k` with `s_c·k·(1 − z/√(m′s_c k))²/(1 + z√2/√m′) = s_c`: the SNR at the lower end of the
/// t̂ interval and the upper end of the σ̂² interval (z = [`SNR_SAFETY_SIGMAS`], m′ real
/// estimation samples) still reaches `s_c`. Solved by fixed-point iteration (converges in a
/// few steps since z/√(m′s) ≪ 1); infinite when m′ is too small for any margin.
fn safety_factor(snr: f64, real_samples: u64) -> f64 {
    const ITERATIONS: usize = 8;
    let z = SNR_SAFETY_SIGMAS;
    let m = real_samples.max(1) as f64;
    let noise_side = 1.0 + z * std::f64::consts::SQRT_2 / m.sqrt();
    let mut k = noise_side;
    for _ in 0..ITERATIONS {
        let gain_side = 1.0 - z / (m * snr * k).sqrt();
        if gain_side <= 0.0 {
            return f64::INFINITY;
        }
        k = noise_side / (gain_side * gain_side);
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cvqkd::params::transmittance_from_distance;
    use crate::cvqkd::sim::codes::DEFAULT_FRAME_BITS;

    /// Block of the physics tests, pulses (the size of the benchmark).
    const N: u64 = 1 << 21;

    fn nominal(km: f64) -> LinkParams {
        LinkParams::reference(transmittance_from_distance(km, 0.2).unwrap())
    }

    fn choose(km: f64, n: u64) -> Option<ModulationChoice> {
        let fs = FiniteSizeParams::new(n, n / 2, 1e-10);
        choose_modulation(&nominal(km), &fs, &CodeFamily::new(DEFAULT_FRAME_BITS))
    }

    /// At 10 km and N = 1e7 the rate-0.5 code is reached at V_A ≈ 4.15 (the hand-tuned value
    /// of docs/cvqkd-sim.md), but the rate-0.4 code at V_A ≈ 2.9 leaves more key (smaller
    /// χ_BE for the same β ≈ 0.8), so that is the choice.
    #[test]
    fn ten_km_reaches_rate_half_at_4_15_and_picks_the_best_code() {
        let fs = FiniteSizeParams::new(10_000_000, 5_000_000, 1e-10);
        let codes = CodeFamily::new(DEFAULT_FRAME_BITS);
        let half = (0..codes.len())
            .find(|&i| (codes.rate(i) - 0.5).abs() < 1e-3)
            .unwrap();
        let at_half = evaluate_code(&nominal(10.0), &fs, &codes, half).expect("reachable");
        assert!(
            (at_half.modulation_variance_snu - 4.15).abs() < 0.05,
            "{at_half:?}"
        );
        assert!(at_half.expected_snr >= codes.min_snr(half), "{at_half:?}");
        let best = choose(10.0, 10_000_000).expect("10 km gives key");
        assert!(best.key_rate_bits_per_pulse >= at_half.key_rate_bits_per_pulse);
        assert!((codes.rate(best.code_index) - 0.4).abs() < 1e-3, "{best:?}");
        assert!(
            (best.modulation_variance_snu - 2.88).abs() < 0.05,
            "{best:?}"
        );
        assert!(best.beta > 0.78 && best.beta < 0.85, "{best:?}");
    }

    #[test]
    fn five_and_fifteen_km_give_key_two_hundred_none() {
        for km in [5.0, 15.0] {
            let c = choose(km, 10_000_000).expect("metro link gives key");
            assert!(
                c.key_rate_bits_per_pulse > 0.0 && c.beta < 1.0,
                "{km} km {c:?}"
            );
        }
        assert_eq!(choose(200.0, 10_000_000), None);
    }

    #[test]
    fn margin_shrinks_with_samples() {
        let small = safety_factor(1.4, 1 << 17);
        let large = safety_factor(1.4, 1 << 23);
        assert!(
            small > large && large > 1.0 && small < 1.1,
            "{small} {large}"
        );
        assert!(safety_factor(1.0, 1).is_infinite());
    }

    #[test]
    fn chosen_va_gives_key_in_a_simulated_run() {
        use crate::cvqkd::sim::{Attack, LinkSimulator, SimConfig};
        let c = choose(10.0, N).expect("10 km gives key at 2^21");
        let mut link = nominal(10.0).with_modulation_variance(c.modulation_variance_snu);
        link.reconciliation_efficiency = 1.0;
        let mut sim = LinkSimulator::new(SimConfig {
            link,
            finite: FiniteSizeParams::new(N, N / 2, 1e-10),
            attack: Attack::None,
            frame_bits: DEFAULT_FRAME_BITS,
            max_iterations: 100,
            seed: 7,
        })
        .unwrap();
        let run = sim.run_block().unwrap();
        assert!(
            run.report.key_bits > 0 && run.alice_key == run.bob_key,
            "{:?}",
            run.report
        );
    }
}
