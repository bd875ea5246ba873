//! Closed-form asymptotic secret key rate of GG02 with reverse reconciliation
//! (cvqkd-physics.md §3): mutual information I_AB, Holevo bound χ_BE from the symplectic
//! eigenvalues, trusted and untrusted detector, homodyne and heterodyne; the PLOB bound.

use super::params::{Detection, LinkParams, ParamError};
use serde::Serialize;
use std::f64::consts::LN_2;

/// The asymptotic rate and the quantities it is made of, all per pulse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AsymptoticRate {
    /// Signal-to-noise ratio at Bob's detector (per real sample).
    pub snr: f64,
    /// Mutual information between Alice and Bob, bits per pulse.
    pub i_ab: f64,
    /// Holevo bound on Eve's information on Bob's data, bits per pulse.
    pub chi_be: f64,
    /// `β·I_AB − χ_BE`, bits per pulse; no key (abort) when ≤ 0.
    pub key_rate_bits_per_pulse: f64,
}

/// Entropy of a thermal mode of symplectic eigenvalue `x` (cvqkd-physics.md §3), bits:
/// `g(x) = ((x+1)/2) log2((x+1)/2) − ((x−1)/2) log2((x−1)/2)`, `g(x ≤ 1) = 0`.
///
/// Evaluated as `G(y) = log2(1+y) + y·log2(1+1/y)` with `y = (x−1)/2`, which keeps full
/// precision both near x = 1 and for large x.
pub fn g(x: f64) -> f64 {
    let y = (x - 1.0) / 2.0;
    if y.is_nan() || y <= 0.0 {
        return 0.0;
    }
    (y.ln_1p() + y * (1.0 / y).ln_1p()) / LN_2
}

/// The PLOB bound (Pirandola et al. 2017): `−log2(1 − T)` bits per pulse, the secret-key
/// capacity of a pure-loss channel; infinite at T = 1.
pub fn plob_bound(transmittance: f64) -> f64 {
    -(-transmittance).ln_1p() / LN_2
}

/// The asymptotic key rate of `p` after validating it.
pub fn asymptotic_rate(p: &LinkParams) -> Result<AsymptoticRate, ParamError> {
    p.validate()?;
    Ok(asymptotic_rate_unchecked(p))
}

/// The asymptotic key rate of `p`, which must be valid (see [`LinkParams::validate`]).
pub fn asymptotic_rate_unchecked(p: &LinkParams) -> AsymptoticRate {
    let snr = snr(p);
    let i_ab = mutual_information(p.detection, snr);
    let chi_be = holevo_bound(p);
    AsymptoticRate {
        snr,
        i_ab,
        chi_be,
        key_rate_bits_per_pulse: p.reconciliation_efficiency * i_ab - chi_be,
    }
}

/// SNR per real sample at Bob's detector (cvqkd-physics.md §3):
/// homodyne `ηT V_A/(1 + v_el + ηTξ)`, heterodyne `ηT V_A/(2(1 + v_el) + ηTξ)`.
/// The same whether or not the detector is trusted.
pub fn snr(p: &LinkParams) -> f64 {
    let et = p.detector_efficiency * p.transmittance;
    let noise = match p.detection {
        Detection::Homodyne => 1.0 + p.electronic_noise_snu,
        Detection::Heterodyne => 2.0 * (1.0 + p.electronic_noise_snu),
    };
    et * p.modulation_variance_snu / (noise + et * p.excess_noise_snu)
}

/// I_AB in bits per pulse from the SNR: `½ log2(1+SNR)` (homodyne) or `log2(1+SNR)`
/// (heterodyne, two quadratures per pulse).
pub fn mutual_information(detection: Detection, snr: f64) -> f64 {
    let per_sample = 0.5 * snr.ln_1p() / LN_2;
    per_sample * f64::from(detection.samples_per_pulse())
}

/// The channel seen by the closed form: for an untrusted detector, η and v_el go to Eve:
/// `T′ = ηT`, `ξ′ = ξ + v_el/(ηT)` (homodyne) or `ξ + 2v_el/(ηT)` (heterodyne), and an
/// ideal detector (cvqkd-physics.md §3, "Untrusted receiver").
pub fn effective_trusted_params(p: &LinkParams) -> LinkParams {
    if p.trusted_detector {
        return *p;
    }
    let et = p.detector_efficiency * p.transmittance;
    let per_det = f64::from(p.detection.samples_per_pulse());
    LinkParams {
        transmittance: et,
        excess_noise_snu: p.excess_noise_snu + per_det * p.electronic_noise_snu / et,
        detector_efficiency: 1.0,
        electronic_noise_snu: 0.0,
        trusted_detector: true,
        ..*p
    }
}

/// χ_BE, bits per pulse, by the closed form of cvqkd-physics.md §3 (Lodewyck 2007, Fossier 2009).
pub fn holevo_bound(p: &LinkParams) -> f64 {
    let q = effective_trusted_params(p);
    let c = Closed::new(&q);
    let (l1, l2) = root_pair(c.a, c.b);
    let (l3, l4) = match q.detection {
        Detection::Homodyne => c.conditional_homodyne(&q),
        Detection::Heterodyne => c.conditional_heterodyne(&q),
    };
    g(l1) + g(l2) - g(l3) - g(l4)
}

/// The symplectic eigenvalues `λ1,2` with `λ² = ½[P ± √(P² − 4Q)]`, the small one taken
/// as `Q/λ_big²` (cvqkd-physics.md §3, numerical detail).
///
/// Symplectic eigenvalues of a physical state are ≥ 1. When the discriminant is rounding
/// noise around 0 (a double root at 1, e.g. T = 1 and ξ = 0), the subtraction can push
/// the small root below 1 and the big one above by ~√ε; the small root is then set to 1
/// and the big one to the product `Q`, which keeps `λ_big²·λ_small² = Q` exact.
fn root_pair(p: f64, q: f64) -> (f64, f64) {
    let disc = (p * p - 4.0 * q).max(0.0).sqrt();
    let mut big = 0.5 * (p + disc);
    let mut small = if big > 0.0 { q / big } else { 0.0 };
    if small < 1.0 {
        (small, big) = (1.0, q.max(1.0));
    }
    (big.sqrt(), small.sqrt())
}

/// The intermediate quantities of the closed form.
struct Closed {
    v: f64,
    t: f64,
    chi_line: f64,
    a: f64,
    b: f64,
}

impl Closed {
    fn new(p: &LinkParams) -> Self {
        let (v, t) = (p.modulation_variance_snu + 1.0, p.transmittance);
        let chi_line = 1.0 / t - 1.0 + p.excess_noise_snu;
        let a = v * v * (1.0 - 2.0 * t) + 2.0 * t + (t * (v + chi_line)).powi(2);
        let b = (t * (v * chi_line + 1.0)).powi(2);
        Closed {
            v,
            t,
            chi_line,
            a,
            b,
        }
    }

    /// `T(V + chi_tot)` for a detector noise `chi_det`.
    fn t_v_chi_tot(&self, chi_det: f64) -> f64 {
        self.t * (self.v + self.chi_line) + chi_det
    }

    fn conditional_homodyne(&self, p: &LinkParams) -> (f64, f64) {
        let eta = p.detector_efficiency;
        let chi_hom = (1.0 + p.electronic_noise_snu) / eta - 1.0;
        let den = self.t_v_chi_tot(chi_hom);
        let sb = self.b.sqrt();
        let c = (self.v * sb + self.t * (self.v + self.chi_line) + self.a * chi_hom) / den;
        let d = sb * (self.v + sb * chi_hom) / den;
        root_pair(c, d)
    }

    fn conditional_heterodyne(&self, p: &LinkParams) -> (f64, f64) {
        let eta = p.detector_efficiency;
        let chi = (2.0 - eta + 2.0 * p.electronic_noise_snu) / eta;
        let den = self.t_v_chi_tot(chi);
        let (v, t, sb) = (self.v, self.t, self.b.sqrt());
        let num = self.a * chi * chi
            + self.b
            + 1.0
            + 2.0 * chi * (v * sb + t * (v + self.chi_line))
            + 2.0 * t * (v * v - 1.0);
        let d = ((v + sb * chi) / den).powi(2);
        root_pair(num / (den * den), d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_the_textbook_form() {
        for x in [1.000001, 1.5, 3.0, 11.0, 101.0] {
            let a: f64 = (x + 1.0) / 2.0;
            let b: f64 = (x - 1.0) / 2.0;
            let textbook = a * a.log2() - b * b.log2();
            assert!((g(x) - textbook).abs() < 1e-12, "x = {x}");
        }
        assert_eq!(g(1.0), 0.0);
        assert_eq!(g(0.5), 0.0);
    }

    #[test]
    fn plob_values() {
        assert!((plob_bound(0.5) - 1.0).abs() < 1e-15);
        assert!(plob_bound(1.0).is_infinite());
        assert!((plob_bound(0.1) - 0.152_003).abs() < 1e-6);
    }

    #[test]
    fn reference_point_25_km_homodyne() {
        let t = 10f64.powf(-0.5);
        let r = asymptotic_rate(&LinkParams::reference(t)).unwrap();
        assert!(
            (r.key_rate_bits_per_pulse / 8.448e-2 - 1.0).abs() < 5e-4,
            "{r:?}"
        );
    }

    #[test]
    fn untrusted_detector_is_worse() {
        let p = LinkParams::reference(0.5);
        let u = LinkParams {
            trusted_detector: false,
            ..p
        };
        let (rt, ru) = (asymptotic_rate(&p).unwrap(), asymptotic_rate(&u).unwrap());
        assert!((rt.i_ab - ru.i_ab).abs() < 1e-12);
        assert!(ru.chi_be > rt.chi_be);
    }
}
