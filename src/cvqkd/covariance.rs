//! An independent numerical computation of I_AB and χ_BE from covariance matrices
//! (cvqkd-physics.md §3, "generic covariance-matrix recipe"), used to check the closed form.
//!
//! Modes, in order: Alice's EPR half A, Bob's mode B, and the detector-noise EPR pair
//! (F0, G). Bob's detector is a beam splitter of transmittance η mixing B with F0, whose
//! EPR variance is `v = 1 + v_el/(1−η)` (homodyne) or `1 + 2v_el/(1−η)` (heterodyne).
//! Symplectic eigenvalues are computed numerically: for a covariance matrix γ > 0 they are
//! the singular values of the real antisymmetric matrix `γ^½ Ω γ^½` (each appearing twice),
//! found with a self-written cyclic Jacobi eigen solver on symmetric matrices. The matrices
//! are at most 8×8, so no linear-algebra crate is needed.

use super::params::{Detection, LinkParams};
use super::rate::{AsymptoticRate, g};

/// A small dense real matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Mat {
    /// The `rows × cols` zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// The `n × n` identity.
    pub fn identity(n: usize) -> Self {
        let mut m = Mat::zeros(n, n);
        (0..n).for_each(|i| m.set(i, i, 1.0));
        m
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Element (i, j).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Set element (i, j).
    pub fn set(&mut self, i: usize, j: usize, x: f64) {
        self.data[i * self.cols + j] = x;
    }

    /// The product `self · other`.
    pub fn mul(&self, other: &Mat) -> Mat {
        let mut out = Mat::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            for j in 0..other.cols {
                let s = (0..self.cols)
                    .map(|k| self.get(i, k) * other.get(k, j))
                    .sum();
                out.set(i, j, s);
            }
        }
        out
    }

    /// The transpose.
    pub fn transpose(&self) -> Mat {
        let mut out = Mat::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            (0..self.cols).for_each(|j| out.set(j, i, self.get(i, j)));
        }
        out
    }

    /// `self − other`.
    pub fn sub(&self, other: &Mat) -> Mat {
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a - b)
            .collect();
        Mat {
            rows: self.rows,
            cols: self.cols,
            data,
        }
    }

    /// The submatrix on the given rows and columns.
    pub fn select(&self, rows: &[usize], cols: &[usize]) -> Mat {
        let mut out = Mat::zeros(rows.len(), cols.len());
        for (i, &r) in rows.iter().enumerate() {
            cols.iter()
                .enumerate()
                .for_each(|(j, &c)| out.set(i, j, self.get(r, c)));
        }
        out
    }

    /// `self + other`.
    pub fn add(&self, other: &Mat) -> Mat {
        let data = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a + b)
            .collect();
        Mat {
            rows: self.rows,
            cols: self.cols,
            data,
        }
    }

    /// The inverse of a 2×2 matrix, `None` if singular.
    pub fn inverse_2x2(&self) -> Option<Mat> {
        let (a, b, c, d) = (
            self.get(0, 0),
            self.get(0, 1),
            self.get(1, 0),
            self.get(1, 1),
        );
        let det = a * d - b * c;
        if det == 0.0 || !det.is_finite() {
            return None;
        }
        Some(Mat {
            rows: 2,
            cols: 2,
            data: vec![d / det, -b / det, -c / det, a / det],
        })
    }
}

/// Eigenvalues and eigenvectors (columns of the returned matrix) of a symmetric matrix, by
/// cyclic Jacobi rotations until the off-diagonal part vanishes to double precision.
pub fn symmetric_eigen(m: &Mat) -> (Vec<f64>, Mat) {
    let n = m.rows;
    let (mut a, mut v) = (m.clone(), Mat::identity(n));
    let scale: f64 = m.data.iter().map(|x| x * x).sum();
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a.get(i, j).powi(2))
            .sum();
        if off <= scale * 1e-32 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                jacobi_rotate(&mut a, &mut v, p, q);
            }
        }
    }
    ((0..n).map(|i| a.get(i, i)).collect(), v)
}

/// One Jacobi rotation zeroing `a[p][q]` (Numerical Recipes §11.1 convention).
fn jacobi_rotate(a: &mut Mat, v: &mut Mat, p: usize, q: usize) {
    let apq = a.get(p, q);
    if apq == 0.0 {
        return;
    }
    let theta = (a.get(q, q) - a.get(p, p)) / (2.0 * apq);
    let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
    let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
    let c = 1.0 / (t * t + 1.0).sqrt();
    let s = t * c;
    for k in 0..a.rows {
        let (akp, akq) = (a.get(k, p), a.get(k, q));
        a.set(k, p, c * akp - s * akq);
        a.set(k, q, s * akp + c * akq);
    }
    for k in 0..a.rows {
        let (apk, aqk) = (a.get(p, k), a.get(q, k));
        a.set(p, k, c * apk - s * aqk);
        a.set(q, k, s * apk + c * aqk);
        let (vkp, vkq) = (v.get(k, p), v.get(k, q));
        v.set(k, p, c * vkp - s * vkq);
        v.set(k, q, s * vkp + c * vkq);
    }
}

/// The symplectic form Ω = ⊕ [[0, 1], [−1, 0]] on `modes` modes.
pub fn omega(modes: usize) -> Mat {
    let mut w = Mat::zeros(2 * modes, 2 * modes);
    for k in 0..modes {
        w.set(2 * k, 2 * k + 1, 1.0);
        w.set(2 * k + 1, 2 * k, -1.0);
    }
    w
}

/// The symplectic eigenvalues of a positive-definite covariance matrix, ascending (the
/// moduli of the eigenvalues of iΩγ, each counted once).
pub fn symplectic_eigenvalues(gamma: &Mat) -> Vec<f64> {
    let (vals, vecs) = symmetric_eigen(gamma);
    let n = gamma.rows;
    let mut root = Mat::zeros(n, n);
    (0..n).for_each(|i| root.set(i, i, vals[i].max(0.0).sqrt()));
    let half = vecs.mul(&root).mul(&vecs.transpose());
    let m = half.mul(&omega(n / 2)).mul(&half);
    let (mut sq, _) = symmetric_eigen(&m.transpose().mul(&m));
    sq.sort_by(f64::total_cmp);
    sq.chunks(2)
        .map(|p| (0.5 * (p[0] + p[1])).max(0.0).sqrt())
        .collect()
}

/// Von Neumann entropy (bits) of a Gaussian state: Σ g(ν) over its symplectic eigenvalues.
pub fn entropy_bits(gamma: &Mat) -> f64 {
    symplectic_eigenvalues(gamma).into_iter().map(g).sum()
}

/// Why the numerical model cannot represent a parameter set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CovarianceError {
    /// η = 1 with v_el > 0 has no beam-splitter model (the noise mode would need infinite
    /// variance); the closed form still covers it.
    #[error("η = 1 with v_el > 0 has no beam-splitter detector model")]
    NoDetectorModel,
    /// A matrix to invert was singular.
    #[error("singular covariance block")]
    Singular,
}

/// Quadrature indices of the modes A, B, F, G in the 8×8 matrix.
const MODE_A: usize = 0;
const MODE_B: usize = 1;
const MODE_F: usize = 2;
const MODE_G: usize = 3;

/// The 8×8 covariance matrix of (A, B′, F′, G): the EPR state of Alice (variance
/// V = V_A + 1) through the channel (`T`, `χ_line`), and the detector-noise EPR pair, after
/// the efficiency beam splitter mixed B with F0. The detector is taken as it is in `p`
/// (no untrusted-receiver rewriting).
pub fn detector_output_covariance(p: &LinkParams) -> Result<Mat, CovarianceError> {
    let (v, t) = (p.modulation_variance_snu + 1.0, p.transmittance);
    let chi_line = 1.0 / t - 1.0 + p.excess_noise_snu;
    let w = noise_mode_variance(p)?;
    let mut gamma = Mat::zeros(8, 8);
    let c_ab = (t * (v * v - 1.0)).sqrt();
    place_two_mode(&mut gamma, (MODE_A, MODE_B), (v, t * (v + chi_line)), c_ab);
    place_two_mode(
        &mut gamma,
        (MODE_F, MODE_G),
        (w, w),
        (w * w - 1.0).max(0.0).sqrt(),
    );
    let bs = beam_splitter(4, MODE_B, MODE_F, p.detector_efficiency);
    Ok(bs.mul(&gamma).mul(&bs.transpose()))
}

/// EPR variance of the detector-noise mode: `1 + v_el/(1−η)` per detector.
fn noise_mode_variance(p: &LinkParams) -> Result<f64, CovarianceError> {
    let eta = p.detector_efficiency;
    let v_el = p.electronic_noise_snu * f64::from(p.detection.samples_per_pulse());
    match (eta >= 1.0, v_el > 0.0) {
        (true, true) => Err(CovarianceError::NoDetectorModel),
        (true, false) => Ok(1.0),
        _ => Ok(1.0 + v_el / (1.0 - eta)),
    }
}

/// Write a two-mode block: variances `va`, `vb` on the diagonal, correlation `c·Z` off it.
fn place_two_mode(m: &mut Mat, (a, b): (usize, usize), (va, vb): (f64, f64), c: f64) {
    for q in 0..2 {
        let sign = if q == 0 { 1.0 } else { -1.0 };
        m.set(2 * a + q, 2 * a + q, va);
        m.set(2 * b + q, 2 * b + q, vb);
        m.set(2 * a + q, 2 * b + q, sign * c);
        m.set(2 * b + q, 2 * a + q, sign * c);
    }
}

/// The symplectic matrix of a beam splitter of transmittance `eta` between modes a and b.
fn beam_splitter(modes: usize, a: usize, b: usize, eta: f64) -> Mat {
    let mut s = Mat::identity(2 * modes);
    let (c, r) = (eta.sqrt(), (1.0 - eta).max(0.0).sqrt());
    for q in 0..2 {
        let (i, j) = (2 * a + q, 2 * b + q);
        s.set(i, i, c);
        s.set(i, j, r);
        s.set(j, i, -r);
        s.set(j, j, c);
    }
    s
}

/// Covariance of the other modes after a measurement of mode `b` (cvqkd-physics.md §3, step 3):
/// homodyne of x: `γ_rest − σ diag(1/γ_xx, 0) σᵀ`; heterodyne: `γ_rest − σ(γ_b + I)⁻¹σᵀ`.
pub fn condition_on_measurement(
    gamma: &Mat,
    b: usize,
    detection: Detection,
) -> Result<Mat, CovarianceError> {
    let bq = [2 * b, 2 * b + 1];
    let rest: Vec<usize> = (0..gamma.rows).filter(|i| !bq.contains(i)).collect();
    let g_b = gamma.select(&bq, &bq);
    let inner = match detection {
        Detection::Homodyne if g_b.get(0, 0) > 0.0 => {
            let mut m = Mat::zeros(2, 2);
            m.set(0, 0, 1.0 / g_b.get(0, 0));
            m
        }
        Detection::Homodyne => return Err(CovarianceError::Singular),
        Detection::Heterodyne => g_b
            .add(&Mat::identity(2))
            .inverse_2x2()
            .ok_or(CovarianceError::Singular)?,
    };
    let sigma = gamma.select(&rest, &bq);
    Ok(gamma
        .select(&rest, &rest)
        .sub(&sigma.mul(&inner).mul(&sigma.transpose())))
}

/// χ_BE by the covariance-matrix recipe. Trusted detector: `S(AB′F′G) − S(AF′G | B′)`
/// (S(AB′F′G) = S(AB), the detector pair being pure). Untrusted: Eve holds the detector
/// too, so `S(AB′) − S(A | B′)`.
pub fn holevo_bound_numerical(p: &LinkParams) -> Result<f64, CovarianceError> {
    let gamma = detector_output_covariance(p)?;
    let state = if p.trusted_detector {
        gamma
    } else {
        gamma.select(&[0, 1, 2, 3], &[0, 1, 2, 3])
    };
    let conditional = condition_on_measurement(&state, MODE_B, p.detection)?;
    Ok(entropy_bits(&state) - entropy_bits(&conditional))
}

/// I_AB and the SNR from the covariance matrix: Alice's heterodyne of A conditions Bob's
/// x quadrature, `I = ½ log2(V_B/V_B|A)` (homodyne) or `log2((V_B+1)/(V_B|A+1))`
/// (heterodyne, each output carrying one more vacuum unit).
pub fn mutual_information_numerical(p: &LinkParams) -> Result<(f64, f64), CovarianceError> {
    let ab = detector_output_covariance(p)?.select(&[0, 1, 2, 3], &[0, 1, 2, 3]);
    let b_given_a = condition_on_measurement(&ab, MODE_A, Detection::Heterodyne)?;
    let (vb, vba) = (ab.get(2, 2), b_given_a.get(0, 0));
    let ratio = match p.detection {
        Detection::Homodyne => vb / vba,
        Detection::Heterodyne => (vb + 1.0) / (vba + 1.0),
    };
    let per = f64::from(p.detection.samples_per_pulse());
    Ok((ratio - 1.0, 0.5 * per * ratio.log2()))
}

/// The asymptotic rate computed entirely from covariance matrices.
pub fn asymptotic_rate_numerical(p: &LinkParams) -> Result<AsymptoticRate, CovarianceError> {
    let (snr, i_ab) = mutual_information_numerical(p)?;
    let chi_be = holevo_bound_numerical(p)?;
    Ok(AsymptoticRate {
        snr,
        i_ab,
        chi_be,
        key_rate_bits_per_pulse: p.reconciliation_efficiency * i_ab - chi_be,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_reconstructs_a_symmetric_matrix() {
        let mut m = Mat::zeros(3, 3);
        let vals = [[4.0, 1.0, -2.0], [1.0, 3.0, 0.5], [-2.0, 0.5, 5.0]];
        (0..3).for_each(|i| (0..3).for_each(|j| m.set(i, j, vals[i][j])));
        let (l, v) = symmetric_eigen(&m);
        let mut d = Mat::zeros(3, 3);
        (0..3).for_each(|i| d.set(i, i, l[i]));
        let back = v.mul(&d).mul(&v.transpose());
        (0..3).for_each(|i| {
            (0..3).for_each(|j| assert!((back.get(i, j) - m.get(i, j)).abs() < 1e-13))
        });
    }

    #[test]
    fn thermal_and_epr_states() {
        let mut thermal = Mat::identity(2);
        thermal.set(0, 0, 3.0);
        thermal.set(1, 1, 3.0);
        assert!((symplectic_eigenvalues(&thermal)[0] - 3.0).abs() < 1e-13);
        let mut epr = Mat::zeros(4, 4);
        place_two_mode(&mut epr, (0, 1), (5.0, 5.0), (24.0f64).sqrt());
        let nu = symplectic_eigenvalues(&epr);
        assert!(nu.iter().all(|x| (x - 1.0).abs() < 1e-9), "{nu:?}");
    }
}
