//! Privacy amplification by Toeplitz hashing (cvqkd-physics.md §6.1 step 8): an ℓ × n binary
//! Toeplitz matrix, defined by n + ℓ − 1 public seed bits, maps the n reconciled bits to
//! ℓ output bits. `out_i = ⊕_j s[i − j + n − 1]·in_j`, a slice of the convolution of the
//! input with the seed, computed exactly with one complex FFT of size ≥ n + ℓ − 1
//! (real inputs packed as real and imaginary parts) in O(n log n).

use super::bits::BitVec;
use super::rng::SimRng;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

/// Largest FFT accepted, so that rounding stays far below 1/2 (sums of ≤ 2^26 zeros and
/// ones at double precision).
pub const MAX_FFT_LEN: usize = 1 << 27;

/// The n + ℓ − 1 seed bits expanded from a public 64-bit seed.
pub fn seed_bits(seed: u64, n: usize, out_len: usize) -> BitVec {
    let len = n + out_len.max(1) - 1;
    let mut words = vec![0u64; len.div_ceil(64)];
    SimRng::new(seed).fill_words(&mut words);
    BitVec::from_words(words, len)
}

/// Toeplitz hash of `input` to `out_len` bits with the matrix of `seed` (n + ℓ − 1 bits).
pub fn toeplitz_hash(input: &BitVec, seed: &BitVec, out_len: usize) -> BitVec {
    let n = input.len();
    if out_len == 0 || n == 0 {
        return BitVec::zeros(out_len);
    }
    assert_eq!(seed.len(), n + out_len - 1, "Toeplitz seed length");
    let size = (n + out_len - 1).next_power_of_two();
    assert!(size <= MAX_FFT_LEN, "Toeplitz input too long for one FFT");
    let mut buf: Vec<Complex<f64>> = (0..size)
        .map(|i| {
            let a = if i < n && input.get(i) { 1.0 } else { 0.0 };
            let b = if i < seed.len() && seed.get(i) {
                1.0
            } else {
                0.0
            };
            Complex::new(a, b)
        })
        .collect();
    let mut planner = FftPlanner::new();
    planner.plan_fft_forward(size).process(&mut buf);
    let product = spectrum_product(&buf);
    let mut conv = product;
    planner.plan_fft_inverse(size).process(&mut conv);
    let mut out = BitVec::zeros(out_len);
    for i in 0..out_len {
        let c = (conv[i + n - 1].re / size as f64).round() as u64;
        out.set(i, c & 1 == 1);
    }
    out
}

/// From the FFT Z of `a + i·b` (a, b real), the spectrum of the convolution a ∗ b:
/// `A_k = (Z_k + Z̄_{−k})/2`, `B_k = (Z_k − Z̄_{−k})/(2i)`, product `A_k B_k`.
fn spectrum_product(z: &[Complex<f64>]) -> Vec<Complex<f64>> {
    let size = z.len();
    (0..size)
        .map(|k| {
            let zk = z[k];
            let zn = z[(size - k) % size].conj();
            let a = (zk + zn) * 0.5;
            let b = (zk - zn) * Complex::new(0.0, -0.5);
            a * b
        })
        .collect()
}

/// The same hash by the definition, O(n·ℓ): the reference the FFT version is tested on.
pub fn toeplitz_hash_direct(input: &BitVec, seed: &BitVec, out_len: usize) -> BitVec {
    let n = input.len();
    let mut out = BitVec::zeros(out_len);
    for i in 0..out_len {
        let bit = (0..n).fold(false, |p, j| p ^ (input.get(j) & seed.get(i + n - 1 - j)));
        out.set(i, bit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_matches_the_definition() {
        let mut rng = SimRng::new(11);
        for (n, l) in [
            (1usize, 1usize),
            (7, 3),
            (100, 37),
            (1000, 999),
            (3000, 500),
        ] {
            let mut w = vec![0u64; n.div_ceil(64)];
            rng.fill_words(&mut w);
            let input = BitVec::from_words(w, n);
            let seed = seed_bits(rng.next_u64(), n, l);
            assert_eq!(
                toeplitz_hash(&input, &seed, l),
                toeplitz_hash_direct(&input, &seed, l),
                "n {n} l {l}"
            );
        }
    }
}
