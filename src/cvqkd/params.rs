//! Typed link parameters of a GG02 CV-QKD link, their allowed ranges and validation.
//!
//! Units follow cvqkd-physics.md §1: noises and variances in shot-noise units (SNU), the excess
//! noise ξ referred to the channel input, transmittance and efficiencies dimensionless.

use serde::Serialize;
use std::fmt;

/// Smallest transmittance accepted (500 km at 0.2 dB/km). Below it the entropies whose
/// difference is the key rate cancel below double precision (cvqkd-physics.md §4.5).
pub const MIN_TRANSMITTANCE: f64 = 1e-10;
/// Largest excess noise accepted, in SNU (intercept-resend is 2 SNU, cvqkd-physics.md §3.1).
pub const MAX_EXCESS_NOISE_SNU: f64 = 100.0;
/// Largest electronic noise accepted, in SNU.
pub const MAX_ELECTRONIC_NOISE_SNU: f64 = 100.0;
/// Largest modulation variance accepted, in SNU.
pub const MAX_MODULATION_VARIANCE_SNU: f64 = 1e4;
/// Largest fiber attenuation accepted, in dB/km.
pub const MAX_LOSS_DB_PER_KM: f64 = 10.0;

/// Bob's detection scheme (cvqkd-physics.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detection {
    /// One quadrature, chosen at random and sifted: one real sample per pulse.
    Homodyne,
    /// Both quadratures after a 50:50 split: two real samples per pulse.
    Heterodyne,
}

impl Detection {
    /// Real samples per pulse: 1 for homodyne, 2 for heterodyne.
    pub fn samples_per_pulse(self) -> u32 {
        match self {
            Detection::Homodyne => 1,
            Detection::Heterodyne => 2,
        }
    }
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Detection::Homodyne => "homodyne",
            Detection::Heterodyne => "heterodyne",
        })
    }
}

/// Everything the asymptotic key rate depends on (cvqkd-physics.md §1–§3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinkParams {
    /// Channel transmittance T, in [`MIN_TRANSMITTANCE`, 1].
    pub transmittance: f64,
    /// Excess noise ξ referred to the channel input, SNU, in [0, 100].
    pub excess_noise_snu: f64,
    /// Bob's detection efficiency η, in (0, 1].
    pub detector_efficiency: f64,
    /// Bob's electronic noise v_el, SNU (per detector for heterodyne), in [0, 100].
    pub electronic_noise_snu: f64,
    /// Reconciliation efficiency β, in (0, 1].
    pub reconciliation_efficiency: f64,
    /// Alice's modulation variance V_A per quadrature, SNU, in (0, 1e4].
    pub modulation_variance_snu: f64,
    /// Homodyne or heterodyne detection.
    pub detection: Detection,
    /// Whether η and v_el are trusted (calibrated, out of Eve's reach) or handed to Eve.
    pub trusted_detector: bool,
}

impl LinkParams {
    /// The reference set of cvqkd-physics.md §4 (ξ = 0.01, η = 0.6, v_el = 0.1, β = 0.95, V_A = 4,
    /// homodyne, trusted) at transmittance `t`.
    pub fn reference(t: f64) -> Self {
        LinkParams {
            transmittance: t,
            excess_noise_snu: 0.01,
            detector_efficiency: 0.6,
            electronic_noise_snu: 0.1,
            reconciliation_efficiency: 0.95,
            modulation_variance_snu: 4.0,
            detection: Detection::Homodyne,
            trusted_detector: true,
        }
    }

    /// Check every field against its allowed range; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ParamError> {
        check(
            Param::Transmittance,
            self.transmittance,
            MIN_TRANSMITTANCE,
            1.0,
        )?;
        check(
            Param::ExcessNoise,
            self.excess_noise_snu,
            0.0,
            MAX_EXCESS_NOISE_SNU,
        )?;
        check_open_low(
            Param::DetectorEfficiency,
            self.detector_efficiency,
            0.0,
            1.0,
        )?;
        let v_el = self.electronic_noise_snu;
        check(Param::ElectronicNoise, v_el, 0.0, MAX_ELECTRONIC_NOISE_SNU)?;
        check_open_low(
            Param::ReconciliationEfficiency,
            self.reconciliation_efficiency,
            0.0,
            1.0,
        )?;
        let va = self.modulation_variance_snu;
        check_open_low(
            Param::ModulationVariance,
            va,
            0.0,
            MAX_MODULATION_VARIANCE_SNU,
        )
    }

    /// The same link with another modulation variance.
    pub fn with_modulation_variance(mut self, va_snu: f64) -> Self {
        self.modulation_variance_snu = va_snu;
        self
    }

    /// The same link with another channel (transmittance, input excess noise).
    pub fn with_channel(mut self, transmittance: f64, excess_noise_snu: f64) -> Self {
        self.transmittance = transmittance;
        self.excess_noise_snu = excess_noise_snu;
        self
    }
}

/// Transmittance of `distance_km` of fiber at `loss_db_per_km`: `T = 10^(−αL/10)`
/// (cvqkd-physics.md §1). Errors if either input is out of range or T falls below
/// [`MIN_TRANSMITTANCE`].
pub fn transmittance_from_distance(
    distance_km: f64,
    loss_db_per_km: f64,
) -> Result<f64, ParamError> {
    check(Param::LossDbPerKm, loss_db_per_km, 0.0, MAX_LOSS_DB_PER_KM)?;
    let max_km = if loss_db_per_km > 0.0 {
        -10.0 * MIN_TRANSMITTANCE.log10() / loss_db_per_km
    } else {
        f64::INFINITY
    };
    check(Param::DistanceKm, distance_km, 0.0, max_km)?;
    Ok(10f64.powf(-loss_db_per_km * distance_km / 10.0))
}

/// A named parameter, for error messages: its physics name and its `qshield qkd rate` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Channel transmittance T.
    Transmittance,
    /// Fiber length, km.
    DistanceKm,
    /// Fiber attenuation, dB/km.
    LossDbPerKm,
    /// Excess noise ξ at the channel input, SNU.
    ExcessNoise,
    /// Detection efficiency η.
    DetectorEfficiency,
    /// Electronic noise v_el, SNU.
    ElectronicNoise,
    /// Reconciliation efficiency β.
    ReconciliationEfficiency,
    /// Modulation variance V_A, SNU.
    ModulationVariance,
    /// Block size N, pulses.
    BlockSize,
    /// Parameter-estimation samples m, pulses.
    PeSamples,
    /// Security parameters ε.
    Epsilon,
    /// Symbol rate, Hz.
    SymbolRate,
}

impl Param {
    /// Human name with symbol and unit.
    pub fn name(self) -> &'static str {
        match self {
            Param::Transmittance => "transmittance T",
            Param::DistanceKm => "distance (km)",
            Param::LossDbPerKm => "fiber loss (dB/km)",
            Param::ExcessNoise => "excess noise ξ (SNU)",
            Param::DetectorEfficiency => "detection efficiency η",
            Param::ElectronicNoise => "electronic noise v_el (SNU)",
            Param::ReconciliationEfficiency => "reconciliation efficiency β",
            Param::ModulationVariance => "modulation variance V_A (SNU)",
            Param::BlockSize => "block size N",
            Param::PeSamples => "parameter-estimation samples m",
            Param::Epsilon => "security parameter ε",
            Param::SymbolRate => "symbol rate (Hz)",
        }
    }

    /// The `qshield qkd rate` flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Param::Transmittance => "--transmittance",
            Param::DistanceKm => "--distance-km",
            Param::LossDbPerKm => "--loss-db-per-km",
            Param::ExcessNoise => "--xi",
            Param::DetectorEfficiency => "--eta",
            Param::ElectronicNoise => "--v-el",
            Param::ReconciliationEfficiency => "--beta",
            Param::ModulationVariance => "--va",
            Param::BlockSize => "--block-size",
            Param::PeSamples => "--pe-samples",
            Param::Epsilon => "--epsilon",
            Param::SymbolRate => "--symbol-rate",
        }
    }
}

/// A parameter outside its allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} = {value}: must be {allowed}", .param.name())]
pub struct ParamError {
    /// Which parameter.
    pub param: Param,
    /// The value given.
    pub value: f64,
    /// The allowed range, in words (e.g. "in [0, 100]").
    pub allowed: String,
}

impl ParamError {
    /// The message with the CLI flag instead of the physics name: `--xi: must be …`.
    pub fn flag_message(&self) -> String {
        format!(
            "{}: must be {} (got {})",
            self.param.flag(),
            self.allowed,
            self.value
        )
    }
}

/// `lo ≤ value ≤ hi` and finite.
pub(crate) fn check(param: Param, value: f64, lo: f64, hi: f64) -> Result<(), ParamError> {
    if value.is_finite() && value >= lo && value <= hi {
        return Ok(());
    }
    let allowed = if hi.is_infinite() {
        format!("≥ {lo}")
    } else if lo == 0.0 && !value.is_nan() && value < 0.0 {
        "≥ 0".to_string()
    } else {
        format!("in [{lo}, {hi}]")
    };
    Err(ParamError {
        param,
        value,
        allowed,
    })
}

/// `lo < value ≤ hi` and finite.
pub(crate) fn check_open_low(param: Param, value: f64, lo: f64, hi: f64) -> Result<(), ParamError> {
    if value.is_finite() && value > lo && value <= hi {
        return Ok(());
    }
    let allowed = format!("in ({lo}, {hi}]");
    Err(ParamError {
        param,
        value,
        allowed,
    })
}
