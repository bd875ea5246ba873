//! CV-QKD physics (GG02 with reverse reconciliation): the secret key rate of a Gaussian-
//! modulated coherent-state link, asymptotic and finite-size, and the reports behind
//! `qshield qkd rate`. Formulas, limits and reference tables: `docs/cvqkd-physics.md`.
//!
//! This module owns:
//! - [`params`]: typed link parameters with units, validated ranges, distance → T;
//! - [`rate`]: the closed-form asymptotic rate (I_AB, χ_BE, g, PLOB), trusted and
//!   untrusted detector, homodyne and heterodyne;
//! - [`optimize`]: the modulation-variance search;
//! - [`finite_size`]: parameter-estimation worst case and Δ(n) (Leverrier et al. 2010);
//! - [`covariance`]: an independent numerical covariance-matrix computation, to check
//!   the closed form;
//! - [`special`]: erfc and the Gaussian quantile;
//! - [`report`] and [`plot`]: what `qshield qkd rate` prints, as text, JSON and SVG;
//! - [`sim`]: the link simulator (Alice, fiber, Eve, Bob, the whole GG02 pipeline).
//!
//! The pulses framed on TCP between two KMEs and Eve's TCP relay are the KME's
//! (`kme::link::cvqkd::{quantum_channel, eve}`). The physics is pure: no I/O, no clock,
//! no randomness. A simulated link built on it
//! gives no quantum security; its keys must never be labelled "QKD-secured".

pub mod covariance;
pub mod finite_size;
pub mod optimize;
pub mod params;
pub mod plot;
pub mod rate;
pub mod report;
pub mod sim;
pub mod special;

pub use finite_size::{FiniteSizeParams, FiniteSizeRate, PeStatistics, finite_size_rate};
pub use params::{Detection, LinkParams, Param, ParamError, transmittance_from_distance};
pub use rate::{AsymptoticRate, asymptotic_rate, g, plob_bound};

/// A link with the V_A (in `[lo, hi]` SNU) that maximises its asymptotic rate, and that rate.
pub fn optimal_asymptotic(
    p: &LinkParams,
    lo: f64,
    hi: f64,
) -> Result<(LinkParams, AsymptoticRate), ParamError> {
    p.validate()?;
    check_va_interval(lo, hi)?;
    let rate = |va: f64| rate::asymptotic_rate_unchecked(&p.with_modulation_variance(va));
    let (va, _) = optimize::maximize_log_interval(|va| rate(va).key_rate_bits_per_pulse, lo, hi);
    Ok((p.with_modulation_variance(va), rate(va)))
}

/// A link with the V_A (in `[lo, hi]` SNU) that maximises its theoretical finite-size
/// rate, and that rate.
pub fn optimal_finite_size(
    p: &LinkParams,
    fs: &FiniteSizeParams,
    lo: f64,
    hi: f64,
) -> Result<(LinkParams, FiniteSizeRate), ParamError> {
    p.validate()?;
    fs.validate()?;
    check_va_interval(lo, hi)?;
    let rate = |va: f64| {
        let q = p.with_modulation_variance(va);
        let stats = finite_size::expected_statistics(&q, fs.pe_samples);
        finite_size::finite_size_rate_from_statistics(&q, &stats, fs)
    };
    let (va, _) = optimize::maximize_log_interval(|va| rate(va).key_rate_bits_per_pulse, lo, hi);
    Ok((p.with_modulation_variance(va), rate(va)))
}

/// Distance cap of reach searches, km (T = 1e-8 at 0.2 dB/km): beyond it the entropies
/// cancel below double precision and a zero crossing means nothing (cvqkd-physics.md §4.5).
pub const REACH_LIMIT_KM: f64 = 400.0;

/// The distance in `[0, limit_km]` where `rate_at(km)` (decreasing in distance) crosses
/// zero, by bisection to 1e-6 km; `Some(0.0)` if there is no key at 0 km, `None` if there
/// is still key at `limit_km` (the reach exceeds the cap).
pub fn reach_km(rate_at: impl Fn(f64) -> f64, limit_km: f64) -> Option<f64> {
    if rate_at(0.0) <= 0.0 {
        return Some(0.0);
    }
    if rate_at(limit_km) > 0.0 {
        return None;
    }
    let (mut lo, mut hi) = (0.0, limit_km);
    while hi - lo > 1e-6 {
        let mid = 0.5 * (lo + hi);
        if rate_at(mid) > 0.0 {
            lo = mid
        } else {
            hi = mid
        }
    }
    Some(0.5 * (lo + hi))
}

/// A V_A search interval must satisfy 0 < lo ≤ hi ≤ the largest accepted V_A.
fn check_va_interval(lo: f64, hi: f64) -> Result<(), ParamError> {
    let max = params::MAX_MODULATION_VARIANCE_SNU;
    params::check_open_low(Param::ModulationVariance, lo, 0.0, max)?;
    params::check(Param::ModulationVariance, hi, lo, max)
}
