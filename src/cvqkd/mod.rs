//! CV-QKD physics (GG02 with reverse reconciliation): the secret key rate of a Gaussian-
//! modulated coherent-state link, asymptotic and finite-size, and the reports behind
//! `qshield qkd rate`. Formulas, limits and reference tables: `research/cvqkd.md`.
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
//! - [`report`] and [`plot`]: what `qshield qkd rate` prints, as text, JSON and SVG.
//!
//! Everything here is pure: no I/O, no clock, no randomness. A simulated link built on it
//! gives no quantum security; its keys must never be labelled "QKD-secured".

pub mod covariance;
pub mod finite_size;
pub mod optimize;
pub mod params;
pub mod plot;
pub mod rate;
pub mod report;
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
    let rate = |va: f64| {
        let q = p.with_modulation_variance(va);
        let stats = finite_size::expected_statistics(&q, fs.pe_samples);
        finite_size::finite_size_rate_from_statistics(&q, &stats, fs)
    };
    let (va, _) = optimize::maximize_log_interval(|va| rate(va).key_rate_bits_per_pulse, lo, hi);
    Ok((p.with_modulation_variance(va), rate(va)))
}
