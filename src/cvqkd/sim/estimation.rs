//! Parameter estimation from the disclosed samples (cvqkd-physics.md §5) and the per-block
//! decision: the finite-size worst case from the physics module, the reconciliation code
//! for the estimated SNR, and abort when no code reaches or the bound gives no key.

use super::codes::CodeFamily;
use crate::cvqkd::finite_size::{
    FiniteSizeParams, FiniteSizeRate, PeStatistics, finite_size_rate_from_statistics,
};
use crate::cvqkd::params::LinkParams;
use serde::Serialize;

/// Why a block gave no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbortReason {
    /// The estimates are not a physical channel (t̂ ≤ 0 or too few samples).
    InvalidEstimate,
    /// No code in the family works at the estimated SNR (too low).
    ReconciliationOutOfRange,
    /// The finite-size bound at the estimates (with the chosen code's β) is not positive.
    NoKeyAtEstimate,
    /// After reconciliation the surviving frames leave no key.
    NoKeyAfterReconciliation,
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AbortReason::InvalidEstimate => "invalid estimate",
            AbortReason::ReconciliationOutOfRange => "reconciliation out of range",
            AbortReason::NoKeyAtEstimate => "no key at the estimated channel",
            AbortReason::NoKeyAfterReconciliation => "no key after reconciliation",
        })
    }
}

/// Maximum-likelihood estimates of `y = t x + z` from paired samples:
/// `t̂ = Σxy/Σx²`, `σ̂² = (1/m′) Σ(y − t̂x)²`.
pub fn estimate(alice: &[f64], bob: &[f64]) -> PeStatistics {
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (&x, &y) in alice.iter().zip(bob) {
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
    }
    let m = alice.len().min(bob.len());
    let gain = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    // Σ(y − t̂x)² = Σy² − 2t̂Σxy + t̂²Σx² = Σy² − t̂Σxy.
    let resid = (syy - gain * sxy).max(0.0);
    PeStatistics {
        gain,
        noise_variance_snu: resid / m.max(1) as f64,
        real_samples: m as u64,
    }
}

/// What both sides conclude from parameter estimation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PeOutcome {
    /// The estimated statistics.
    pub stats: PeStatistics,
    /// Estimated SNR per real sample, `t̂²V_A/σ̂²`.
    pub snr: f64,
    /// Index of the code chosen for that SNR, if any reaches it.
    pub code: Option<usize>,
    /// The finite-size rate at the estimates, with β = R/C(ŝ) of the chosen code (or β = 1
    /// when none reaches, for reference).
    pub rate: FiniteSizeRate,
    /// The reconciliation efficiency of the chosen code at ŝ, `R·(samples per pulse)/I_AB`.
    pub beta: f64,
    /// Abort, and why; `None` to go on to reconciliation.
    pub abort: Option<AbortReason>,
}

/// Evaluate the estimates: choose the code and decide (cvqkd-physics.md §6.1 step 5).
pub fn evaluate(
    link: &LinkParams,
    fs: &FiniteSizeParams,
    stats: PeStatistics,
    codes: &CodeFamily,
) -> PeOutcome {
    let snr = if stats.noise_variance_snu > 0.0 {
        stats.gain * stats.gain * link.modulation_variance_snu / stats.noise_variance_snu
    } else {
        0.0
    };
    let code = codes.select(snr);
    let ideal = LinkParams {
        reconciliation_efficiency: 1.0,
        ..*link
    };
    let reference = finite_size_rate_from_statistics(&ideal, &stats, fs);
    let spp = f64::from(link.detection.samples_per_pulse());
    let beta = code.map_or(1.0, |c| codes.rate(c) * spp / reference.i_ab);
    let with_code = LinkParams {
        reconciliation_efficiency: beta,
        ..*link
    };
    let rate = finite_size_rate_from_statistics(&with_code, &stats, fs);
    let abort = if stats.gain <= 0.0 || !rate.key_rate_bits_per_pulse.is_finite() {
        Some(AbortReason::InvalidEstimate)
    } else if code.is_none() {
        Some(AbortReason::ReconciliationOutOfRange)
    } else if rate.key_rate_bits_per_pulse <= 0.0 {
        Some(AbortReason::NoKeyAtEstimate)
    } else {
        None
    };
    PeOutcome {
        stats,
        snr,
        code,
        rate,
        beta,
        abort,
    }
}

/// Secret bits the privacy amplification may output (cvqkd-physics.md §6.1 step 8):
/// `ℓ = ⌊Σ_ok (n_c − m_c − tag) − pulses_ok·(χ_BE(T_min, ξ_max) + Δ(n))⌋`, at least 0.
/// `ok_frames` frames of `frame_bits` real samples with `checks` syndrome bits survived.
pub fn secret_length(
    rate: &FiniteSizeRate,
    ok_frames: usize,
    frame_bits: usize,
    checks: usize,
    samples_per_pulse: u32,
) -> usize {
    let tag = super::verify::TAG_BITS;
    let reconciled = (ok_frames * (frame_bits - checks)) as f64;
    let disclosed = (ok_frames * tag) as f64;
    let pulses = (ok_frames * frame_bits) as f64 / f64::from(samples_per_pulse);
    let ell = reconciled - disclosed - pulses * (rate.chi_be_worst + rate.delta);
    if ell > 0.0 { ell.floor() as usize } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cvqkd::sim::rng::SimRng;

    #[test]
    fn estimates_recover_gain_and_noise() {
        let mut rng = SimRng::new(5);
        let (t, s2) = (0.6, 1.2f64);
        let x: Vec<f64> = (0..100_000).map(|_| 2.0 * rng.gaussian()).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|&x| t * x + s2.sqrt() * rng.gaussian())
            .collect();
        let e = estimate(&x, &y);
        assert!(
            (e.gain - t).abs() < 0.005 && (e.noise_variance_snu - s2).abs() < 0.02,
            "{e:?}"
        );
    }
}
