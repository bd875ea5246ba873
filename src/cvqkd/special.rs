//! Special functions the finite-size analysis needs: `erfc` and the Gaussian tail
//! quantile `z` with `erfc(z/√2) = ε` (cvqkd-physics.md §5). Self-written: std has no `erf`.

use std::f64::consts::{FRAC_2_SQRT_PI, SQRT_2};

/// Below this argument `erfc` uses the positive power series, above it the continued
/// fraction; both are accurate to about 1e-14 relative there.
const ERFC_SERIES_MAX_X: f64 = 1.5;
/// Terms of the erf power series (enough for x ≤ 1.5 to converge below 1e-17).
const ERF_SERIES_TERMS: u32 = 120;
/// Depth of the erfc continued fraction (enough for x ≥ 1.5 to converge below 1e-16).
const ERFC_FRACTION_DEPTH: u32 = 400;

/// The complementary error function `erfc(x) = 1 − erf(x)`.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x <= ERFC_SERIES_MAX_X {
        1.0 - erf_series(x)
    } else {
        erfc_fraction(x)
    }
}

/// `erf(x) = (2/√π) e^(−x²) Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))`: all terms positive, so no
/// cancellation (Abramowitz & Stegun 7.1.6).
fn erf_series(x: f64) -> f64 {
    let mut term = x;
    let mut sum = x;
    for n in 1..ERF_SERIES_TERMS {
        term *= 2.0 * x * x / f64::from(2 * n + 1);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    FRAC_2_SQRT_PI * (-x * x).exp() * sum
}

/// `erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))`, evaluated from the
/// tail (Abramowitz & Stegun 7.1.14).
fn erfc_fraction(x: f64) -> f64 {
    let mut f = x;
    for k in (1..=ERFC_FRACTION_DEPTH).rev() {
        f = x + f64::from(k) / 2.0 / f;
    }
    0.5 * FRAC_2_SQRT_PI * (-x * x).exp() / f
}

/// The two-sided Gaussian quantile `z` with `erfc(z/√2) = ε`, i.e. `P(|N(0,1)| > z) = ε`
/// (cvqkd-physics.md §5: z = 6.467 for ε = 1e-10). `epsilon` must lie in (0, 1); found by
/// bisection on [0, 40], which is monotone and exact to double precision.
pub fn gaussian_two_sided_quantile(epsilon: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if erfc(mid / SQRT_2) > epsilon {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_known_values() {
        let cases = [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_13),
            (1.6, 2.365_161_665_535_599e-2),
            (2.5, 4.069_520_174_449_59e-4),
            (3.0, 2.209_049_699_858_544e-5),
            (5.0, 1.537_459_794_428_035e-12),
            (-1.0, 1.842_700_792_949_715),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 1e-13,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn quantile_for_1e_10_is_6_467() {
        let z = gaussian_two_sided_quantile(1e-10);
        assert!((z - 6.467).abs() < 5e-4, "{z}");
        assert!((erfc(z / SQRT_2) / 1e-10 - 1.0).abs() < 1e-10);
        assert!((gaussian_two_sided_quantile(0.05) - 1.959_964).abs() < 1e-6);
    }
}
