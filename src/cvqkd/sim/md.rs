//! Eight-dimensional multidimensional (MD) reconciliation (Leverrier, Alléaume, Boutros,
//! Zémor, Grangier, PRA 77, 042325 (2008); cvqkd-physics.md §6.2), reverse direction.
//!
//! Bob draws 8 random bits b, maps them to `u = ((−1)^b_i / √8)`, and publishes the
//! octonion `α = u · ȳ` where `ŷ = y/|y|` is his normalised 8-sample vector. Because
//! octonions are a normed alternative algebra, `α · ŷ = u` and left multiplication by the
//! unit `α` is orthogonal; `ŷ` is uniform on the sphere, so `α` is uniform and independent
//! of `u`: it leaks nothing about b. Alice computes `α · x` from her own samples, which is
//! `u` scaled and seen through Gaussian noise (a near-BIAWGN channel), and turns it into
//! log-likelihood ratios for the LDPC decoder.

/// An octonion, as its 8 real coordinates (e0 = real part).
pub type Octonion = [f64; 8];

/// Quaternion product (Hamilton), coordinates (1, i, j, k).
fn qmul(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    ]
}

fn qconj(a: [f64; 4]) -> [f64; 4] {
    [a[0], -a[1], -a[2], -a[3]]
}

fn split(o: &Octonion) -> ([f64; 4], [f64; 4]) {
    ([o[0], o[1], o[2], o[3]], [o[4], o[5], o[6], o[7]])
}

/// Octonion product by the Cayley–Dickson construction:
/// `(a, b)(c, d) = (ac − d̄b, da + bc̄)`.
pub fn omul(x: &Octonion, y: &Octonion) -> Octonion {
    let ((a, b), (c, d)) = (split(x), split(y));
    let (ac, db) = (qmul(a, c), qmul(qconj(d), b));
    let (da, bc) = (qmul(d, a), qmul(b, qconj(c)));
    let mut out = [0.0; 8];
    for i in 0..4 {
        out[i] = ac[i] - db[i];
        out[i + 4] = da[i] + bc[i];
    }
    out
}

/// Octonion conjugate.
pub fn oconj(x: &Octonion) -> Octonion {
    let mut out = x.map(|v| -v);
    out[0] = x[0];
    out
}

/// Euclidean norm.
pub fn norm(x: &Octonion) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// The point `u` of bits `b` (bit i of `bits`): `u_i = (−1)^{b_i}/√8`.
pub fn bits_to_point(bits: u8) -> Octonion {
    let a = 1.0 / 8f64.sqrt();
    std::array::from_fn(|i| if (bits >> i) & 1 == 1 { -a } else { a })
}

/// Bob's side: the public rotation `α = u·ȳ/|y|` for his samples `y` and bits `b`.
pub fn bob_rotation(y: &Octonion, bits: u8) -> Octonion {
    let ny = norm(y).max(f64::MIN_POSITIVE);
    let yhat = y.map(|v| v / ny);
    omul(&bits_to_point(bits), &oconj(&yhat))
}

/// Alice's side: LLRs (`ln P(b_i = 0)/P(b_i = 1)`) of Bob's 8 bits from her samples `x`,
/// the published `α`, the estimated gain t̂ and noise variance σ̂² of `y = t x + z`.
///
/// `t·α·x = |y|·u − α·z`, with `α·z` ~ N(0, σ²) per coordinate; Alice does not know |y|
/// and uses its expectation given x, `√(t²|x|² + 8σ²)`.
pub fn alice_llrs(x: &Octonion, alpha: &Octonion, gain: f64, noise_var: f64, out: &mut [f32]) {
    let v = omul(alpha, x);
    let ny = (gain * gain * norm(x).powi(2) + 8.0 * noise_var).sqrt();
    let scale = 2.0 * gain * ny / (8f64.sqrt() * noise_var);
    for (o, vi) in out.iter_mut().zip(v) {
        *o = (scale * vi) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_is_multiplicative_and_rotation_maps_y_to_u() {
        let x: Octonion = [0.3, -1.2, 0.5, 2.0, -0.7, 0.1, 1.1, -0.4];
        let y: Octonion = [1.0, 0.2, -0.3, 0.4, 0.9, -1.5, 0.6, 0.25];
        assert!((norm(&omul(&x, &y)) - norm(&x) * norm(&y)).abs() < 1e-12);
        for bits in [0u8, 0b1010_0110, 255] {
            let alpha = bob_rotation(&y, bits);
            let ny = norm(&y);
            let got = omul(&alpha, &y.map(|v| v / ny));
            let want = bits_to_point(bits);
            for i in 0..8 {
                assert!((got[i] - want[i]).abs() < 1e-12, "{bits} {i}");
            }
        }
    }

    #[test]
    fn noiseless_llrs_give_the_bits() {
        let x: Octonion = [0.3, -1.2, 0.5, 2.0, -0.7, 0.1, 1.1, -0.4];
        let y = x.map(|v| 0.6 * v);
        let alpha = bob_rotation(&y, 0b0110_1001);
        let mut llr = [0f32; 8];
        alice_llrs(&x, &alpha, 0.6, 1.0, &mut llr);
        for (i, l) in llr.iter().enumerate() {
            assert_eq!(*l < 0.0, (0b0110_1001 >> i) & 1 == 1);
        }
    }
}
