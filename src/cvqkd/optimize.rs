//! One-dimensional maximisation used to choose the modulation variance V_A.
//!
//! Method: a log-spaced grid of [`GRID_POINTS`] points over the bounded interval, then a
//! golden-section search (in log V_A) on the bracket formed by the best grid point's
//! neighbours. The grid guards against a flat or noisy start; the golden section refines
//! a unimodal peak (the key rate is unimodal in V_A for GG02). The result is never worse
//! than the best grid point, and a boundary optimum (a "cap", cvqkd-physics.md §4) is found as such.

/// Points of the initial log-spaced grid.
pub const GRID_POINTS: usize = 48;
/// Golden-section stops when the bracket is this narrow in ln(V_A) (relative 1e-9).
const LOG_TOLERANCE: f64 = 1e-9;
/// 1/φ, the golden-section step.
const INV_PHI: f64 = 0.618_033_988_749_894_8;

/// Default V_A search interval, SNU (cvqkd-physics.md §4: "V_A optimised in [0.05, 50] SNU").
pub const VA_SEARCH_MIN_SNU: f64 = 0.05;
/// See [`VA_SEARCH_MIN_SNU`].
pub const VA_SEARCH_MAX_SNU: f64 = 50.0;

/// The argument in `[lo, hi]` (0 < lo ≤ hi) that maximises `f`, and `f` there.
pub fn maximize_log_interval(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> (f64, f64) {
    let (a, b) = (lo.ln(), hi.ln());
    // Map back exactly onto the ends, so a boundary optimum is reported as lo or hi.
    let to_x = |u: f64| {
        if u <= a {
            lo
        } else if u >= b {
            hi
        } else {
            u.exp()
        }
    };
    let at = |i: usize| a + (b - a) * i as f64 / (GRID_POINTS - 1) as f64;
    let value = |u: f64| {
        let v = f(to_x(u));
        if v.is_nan() { f64::NEG_INFINITY } else { v }
    };
    let (best_i, best_v) =
        (0..GRID_POINTS)
            .map(|i| (i, value(at(i))))
            .fold(
                (0, f64::NEG_INFINITY),
                |acc, x| if x.1 > acc.1 { x } else { acc },
            );
    let left = at(best_i.saturating_sub(1));
    let right = if best_i + 1 >= GRID_POINTS {
        b
    } else {
        at(best_i + 1)
    };
    let (u, v) = golden_section(&value, left, right);
    if v >= best_v {
        (to_x(u), v)
    } else {
        (to_x(at(best_i)), best_v)
    }
}

/// Golden-section maximisation of `f` on `[a, b]`; returns the best point seen.
fn golden_section(f: &impl Fn(f64) -> f64, mut a: f64, mut b: f64) -> (f64, f64) {
    let mut c = b - INV_PHI * (b - a);
    let mut d = a + INV_PHI * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > LOG_TOLERANCE {
        if fc >= fd {
            (b, d, fd) = (d, c, fc);
            c = b - INV_PHI * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + INV_PHI * (b - a);
            fd = f(d);
        }
    }
    let ends = [(a, f(a)), (b, f(b)), (c, fc), (d, fd)];
    ends.into_iter().fold(
        (a, f64::NEG_INFINITY),
        |acc, x| if x.1 > acc.1 { x } else { acc },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_interior_peak() {
        let (x, v) = maximize_log_interval(|x| -(x.ln() - 2.0_f64.ln()).powi(2), 0.05, 50.0);
        assert!((x - 2.0).abs() < 1e-6 && v > -1e-12, "{x} {v}");
    }

    #[test]
    fn finds_a_boundary_peak() {
        let (x, _) = maximize_log_interval(|x| x, 0.05, 50.0);
        assert!((x - 50.0).abs() < 1e-6);
        let (x, _) = maximize_log_interval(|x| -x, 0.05, 50.0);
        assert!((x - 0.05).abs() < 1e-8);
    }
}
