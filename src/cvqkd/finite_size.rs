//! Finite-size key rate after Leverrier, Grosshans and Grangier, PRA 81, 062343 (2010)
//! (cvqkd-physics.md §5): worst-case T and ξ compatible with m estimation samples except with
//! probability ε_PE, the correction Δ(n), and `K_N = (n/N)[β I_AB − χ_BE(T_min, ξ_max) − Δ(n)]`.
//!
//! The rate is a function of the *estimated* statistics ([`PeStatistics`]), so the link
//! simulator can feed it its measured `t̂, σ̂²`; [`expected_statistics`] gives the values a
//! perfect estimator would return, for the theoretical rate.

use super::params::{LinkParams, Param, ParamError, check, check_open_low};
use super::rate::{holevo_bound, mutual_information};
use super::special::gaussian_two_sided_quantile;
use serde::Serialize;

/// Block and security parameters of the finite-size analysis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FiniteSizeParams {
    /// Pulses per block, N.
    pub block_size: u64,
    /// Pulses disclosed for parameter estimation, m (1 ≤ m < N); n = N − m make the key.
    pub pe_samples: u64,
    /// Failure probability of parameter estimation, ε_PE.
    pub epsilon_pe: f64,
    /// Smoothing parameter ε̄ of Δ(n).
    pub epsilon_smooth: f64,
    /// Privacy-amplification failure probability ε_PA.
    pub epsilon_pa: f64,
}

impl FiniteSizeParams {
    /// N pulses, m of them for estimation, every ε equal (as in the paper, ε = 1e-10).
    pub fn new(block_size: u64, pe_samples: u64, epsilon: f64) -> Self {
        FiniteSizeParams {
            block_size,
            pe_samples,
            epsilon_pe: epsilon,
            epsilon_smooth: epsilon,
            epsilon_pa: epsilon,
        }
    }

    /// Key symbols n = N − m.
    pub fn key_symbols(&self) -> u64 {
        self.block_size.saturating_sub(self.pe_samples)
    }

    /// Check N ≥ 2, 1 ≤ m < N and every ε in (0, 1).
    pub fn validate(&self) -> Result<(), ParamError> {
        let n = self.block_size as f64;
        check(Param::BlockSize, n, 2.0, u64::MAX as f64)?;
        check(Param::PeSamples, self.pe_samples as f64, 1.0, n - 1.0)?;
        for eps in [self.epsilon_pe, self.epsilon_smooth, self.epsilon_pa] {
            check_open_low(Param::Epsilon, eps, 0.0, 1.0 - f64::EPSILON)?;
        }
        Ok(())
    }
}

/// Parameter-estimation statistics of the model `y = t·x + z` per real sample (cvqkd-physics.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PeStatistics {
    /// Estimated gain t̂ = Σxy / Σx².
    pub gain: f64,
    /// Estimated noise variance σ̂², SNU.
    pub noise_variance_snu: f64,
    /// Real samples m′ behind the estimates (m homodyne, 2m heterodyne).
    pub real_samples: u64,
}

/// The statistics an exact estimator returns on the link `p` from `pe_pulses` pulses:
/// `t = √(ηT)`, `σ² = 1 + v_el + ηTξ` (homodyne); `t = √(ηT/2)`, `σ² = 1 + v_el + ηTξ/2`
/// (heterodyne) (cvqkd-physics.md §2 table).
pub fn expected_statistics(p: &LinkParams, pe_pulses: u64) -> PeStatistics {
    let per = f64::from(p.detection.samples_per_pulse());
    let et = p.detector_efficiency * p.transmittance / per;
    PeStatistics {
        gain: et.sqrt(),
        noise_variance_snu: 1.0 + p.electronic_noise_snu + et * p.excess_noise_snu,
        real_samples: pe_pulses.saturating_mul(u64::from(p.detection.samples_per_pulse())),
    }
}

/// Transmittance and input excess noise from a gain and noise variance:
/// `T = t²/η`, `ξ = (σ² − 1 − v_el)/(ηT)` (heterodyne: `2t²/η` and `2(σ² − 1 − v_el)/(ηT)`).
pub fn channel_from_statistics(p: &LinkParams, gain: f64, noise_variance_snu: f64) -> (f64, f64) {
    let per = f64::from(p.detection.samples_per_pulse());
    let eta = p.detector_efficiency;
    let t = per * gain * gain / eta;
    let xi = per * (noise_variance_snu - 1.0 - p.electronic_noise_snu) / (eta * t);
    (t, xi)
}

/// Δ(n) = 7·√(log2(2/ε̄)/n) + (2/n)·log2(1/ε_PA), bits per key symbol (cvqkd-physics.md §5,
/// dim H_X = 2).
pub fn delta_n(key_symbols: u64, epsilon_smooth: f64, epsilon_pa: f64) -> f64 {
    let n = key_symbols as f64;
    7.0 * ((2.0 / epsilon_smooth).log2() / n).sqrt() + 2.0 / n * (1.0 / epsilon_pa).log2()
}

/// The finite-size rate and what it is made of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FiniteSizeRate {
    /// Estimated transmittance T̂.
    pub transmittance_estimate: f64,
    /// Estimated input excess noise ξ̂, SNU.
    pub excess_noise_estimate_snu: f64,
    /// Worst-case transmittance T_min (≤ 0 when the estimate bounds nothing).
    pub transmittance_min: f64,
    /// Worst-case input excess noise ξ_max, SNU.
    pub excess_noise_max_snu: f64,
    /// The quantile z with erfc(z/√2) = ε_PE.
    pub z: f64,
    /// Δ(n), bits per key symbol.
    pub delta: f64,
    /// Key symbols n = N − m.
    pub key_symbols: u64,
    /// I_AB at the estimated channel, bits per pulse.
    pub i_ab: f64,
    /// χ_BE at the worst-case channel, bits per pulse.
    pub chi_be_worst: f64,
    /// K_N, bits per pulse of the whole block (N); no key when ≤ 0.
    pub key_rate_bits_per_pulse: f64,
}

/// The theoretical finite-size rate of link `p` (estimates equal to the true values).
pub fn finite_size_rate(
    p: &LinkParams,
    fs: &FiniteSizeParams,
) -> Result<FiniteSizeRate, ParamError> {
    p.validate()?;
    fs.validate()?;
    let stats = expected_statistics(p, fs.pe_samples);
    Ok(finite_size_rate_from_statistics(p, &stats, fs))
}

/// K_N from estimated statistics. `p` supplies η, v_el, β, V_A, detection and trust; its
/// channel (T, ξ) is ignored. The worst case (cvqkd-physics.md §5):
/// `t_min = t̂ − z√(σ̂²/(m′V_A))`, `σ²_max = σ̂² + z σ̂² √2/√m′`.
pub fn finite_size_rate_from_statistics(
    p: &LinkParams,
    stats: &PeStatistics,
    fs: &FiniteSizeParams,
) -> FiniteSizeRate {
    let z = gaussian_two_sided_quantile(fs.epsilon_pe);
    let m = stats.real_samples.max(1) as f64;
    let s2 = stats.noise_variance_snu;
    let t_min = stats.gain - z * (s2 / (m * p.modulation_variance_snu)).sqrt();
    let s2_max = s2 + z * s2 * std::f64::consts::SQRT_2 / m.sqrt();
    let (t_hat, xi_hat) = channel_from_statistics(p, stats.gain, s2);
    let (t_lo, xi_hi) = channel_from_statistics(p, t_min.max(0.0), s2_max);
    let i_ab = estimated_mutual_information(p, t_hat, xi_hat);
    let chi = worst_case_holevo(p, t_min, t_lo, xi_hi, i_ab);
    let n = fs.key_symbols();
    let delta = delta_n(n, fs.epsilon_smooth, fs.epsilon_pa);
    let share = n as f64 / fs.block_size.max(1) as f64;
    FiniteSizeRate {
        transmittance_estimate: t_hat,
        excess_noise_estimate_snu: xi_hat,
        transmittance_min: if t_min > 0.0 { t_lo } else { 0.0 },
        excess_noise_max_snu: xi_hi,
        z,
        delta,
        key_symbols: n,
        i_ab,
        chi_be_worst: chi,
        key_rate_bits_per_pulse: share * (p.reconciliation_efficiency * i_ab - chi - delta),
    }
}

/// I_AB at the estimated channel, T̂ clamped to (0, 1] and ξ̂ to ≥ 0.
fn estimated_mutual_information(p: &LinkParams, t_hat: f64, xi_hat: f64) -> f64 {
    let q = p.with_channel(t_hat.clamp(f64::MIN_POSITIVE, 1.0), xi_hat.max(0.0));
    mutual_information(q.detection, super::rate::snr(&q))
}

/// χ_BE at the worst case; when the estimate bounds no transmittance (`t_min ≤ 0`) Eve is
/// granted all of I_AB. T_min is clamped to ≤ 1 and ξ_max to ≥ 0 (physical channels).
fn worst_case_holevo(p: &LinkParams, t_min: f64, t_lo: f64, xi_hi: f64, i_ab: f64) -> f64 {
    if t_min <= 0.0 || t_lo <= 0.0 || !xi_hi.is_finite() {
        return i_ab;
    }
    holevo_bound(&p.with_channel(t_lo.min(1.0), xi_hi.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_statistics_round_trip() {
        for het in [false, true] {
            let mut p = LinkParams::reference(0.3);
            if het {
                p.detection = super::super::params::Detection::Heterodyne;
            }
            let s = expected_statistics(&p, 1000);
            let (t, xi) = channel_from_statistics(&p, s.gain, s.noise_variance_snu);
            assert!(
                (t - 0.3).abs() < 1e-14 && (xi - 0.01).abs() < 1e-12,
                "{t} {xi}"
            );
        }
    }

    #[test]
    fn delta_for_paper_parameters() {
        let d = delta_n(5_000_000_000, 1e-10, 1e-10);
        let want = 7.0 * ((2e10f64).log2() / 5e9).sqrt() + 2.0 / 5e9 * (1e10f64).log2();
        assert!((d - want).abs() < 1e-15);
    }

    #[test]
    fn block_validation_names_the_flag() {
        let e = FiniteSizeParams::new(100, 100, 1e-10)
            .validate()
            .unwrap_err();
        assert_eq!(e.param, Param::PeSamples);
        let e = FiniteSizeParams::new(100, 50, 0.0).validate().unwrap_err();
        assert_eq!(e.param.flag(), "--epsilon");
    }
}
