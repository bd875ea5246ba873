//! Measuring a code on the MD reconciliation channel alone (no fiber, no estimation): the
//! frame error rate and iterations at a given SNR. This is how the operating points in
//! [`super::codes`] were set, and what `qshield qkd simulate --calibrate` prints.

use super::bits::BitVec;
use super::codes::CodeFamily;
use super::md::{alice_llrs, bob_rotation};
use super::rng::SimRng;
use serde::Serialize;

/// Frame error rate of one code at one SNR.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CodePoint {
    /// Code rate.
    pub rate: f64,
    /// SNR per real sample.
    pub snr: f64,
    /// β = R / (½ log2(1 + SNR)).
    pub beta: f64,
    /// Frames decoded wrongly or not at all, over frames tried.
    pub fer: f64,
    /// Mean BP iterations.
    pub mean_iterations: f64,
}

/// Run `frames` MD frames of code `index` at `snr` (`y = √snr·x + z`, x, z ~ N(0, 1)).
pub fn measure(codes: &CodeFamily, index: usize, snr: f64, frames: usize, seed: u64) -> CodePoint {
    let code = codes.code(index);
    let n = code.len();
    let mut rng = SimRng::new(seed);
    let (mut failed, mut iterations) = (0usize, 0u64);
    let gain = snr.sqrt();
    for _ in 0..frames {
        let x: Vec<f64> = (0..n).map(|_| rng.gaussian()).collect();
        let y: Vec<f64> = x.iter().map(|v| gain * v + rng.gaussian()).collect();
        let mut words = vec![0u64; n.div_ceil(64)];
        rng.fill_words(&mut words);
        let bits = BitVec::from_words(words, n);
        let mut llr = vec![0f32; n];
        for (k, ((xs, ys), out)) in x
            .chunks_exact(8)
            .zip(y.chunks_exact(8))
            .zip(llr.chunks_exact_mut(8))
            .enumerate()
        {
            let byte = (bits.words()[k / 8] >> ((k % 8) * 8)) as u8;
            let alpha = bob_rotation(&ys.try_into().expect("8"), byte);
            alice_llrs(&xs.try_into().expect("8"), &alpha, gain, 1.0, out);
        }
        let d = code.decode(
            &llr,
            &code.syndrome(&bits),
            super::protocol::DEFAULT_MAX_ITERATIONS,
        );
        iterations += u64::from(d.iterations);
        failed += usize::from(!(d.syndrome_ok && d.bits == bits));
    }
    let rate = code.rate();
    CodePoint {
        rate,
        snr,
        beta: rate / (0.5 * snr.log2_1p()),
        fer: failed as f64 / frames as f64,
        mean_iterations: iterations as f64 / frames as f64,
    }
}

trait Log2OnePlus {
    fn log2_1p(self) -> f64;
}

impl Log2OnePlus for f64 {
    fn log2_1p(self) -> f64 {
        self.ln_1p() / std::f64::consts::LN_2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[ignore = "calibration table, run with --release --ignored --nocapture"]
    fn calibration_table() {
        let codes = CodeFamily::new(super::super::codes::DEFAULT_FRAME_BITS);
        for i in [1, 4, 6] {
            let base = super::super::codes::CODE_SPECS[i].threshold_snr;
            for f in [1.06, 1.12, 1.18, 1.26] {
                let p = measure(&codes, i, base * f, 12, 1);
                eprintln!("{p:?}");
            }
        }
    }
}
