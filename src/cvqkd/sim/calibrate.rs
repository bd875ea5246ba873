//! Measuring a code on the MD reconciliation channel alone (no fiber, no estimation): the
//! frame error rate and iterations at a given SNR. This is how the operating points in
//! [`super::codes`] were set, and what `qshield qkd calibrate` prints ([`table`]).

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
    for _ in 0..frames {
        let (llr, bits) = md_frame(n, snr, &mut rng);
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

/// One MD reconciliation frame of `n` bits at `snr`: Alice's LLRs and Bob's bits.
pub fn md_frame(n: usize, snr: f64, rng: &mut SimRng) -> (Vec<f32>, BitVec) {
    let gain = snr.sqrt();
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
    (llr, bits)
}

/// Margin offsets [`table`] measures each code at, around the margin it is used from.
pub const TABLE_MARGIN_OFFSETS: [f64; 5] = [-0.06, 0.0, 0.06, 0.12, 0.2];

/// One row of the calibration table: a code at its margin plus an offset.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TableRow {
    /// Code index in the family.
    pub code: usize,
    /// The margin over the threshold SNR this row measures at.
    pub margin: f64,
    /// Whether that is the margin the code is used from.
    pub in_use: bool,
    /// What was measured.
    pub point: CodePoint,
}

/// Every code of `codes` at each of [`TABLE_MARGIN_OFFSETS`] around its margin, `frames`
/// frames each; `on_row` sees each row as it is measured (a long run shows progress).
pub fn table(
    codes: &CodeFamily,
    frames: usize,
    seed: u64,
    mut on_row: impl FnMut(&TableRow),
) -> Vec<TableRow> {
    let mut rows = Vec::new();
    for (i, spec) in super::codes::CODE_SPECS.iter().enumerate() {
        for df in TABLE_MARGIN_OFFSETS {
            let margin = spec.margin + df;
            let row = TableRow {
                code: i,
                margin,
                in_use: df == 0.0,
                point: measure(codes, i, spec.threshold_snr * margin, frames, seed),
            };
            on_row(&row);
            rows.push(row);
        }
    }
    rows
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
    fn the_table_measures_every_code_around_its_margin() {
        let codes = CodeFamily::new(1024);
        let mut seen = 0;
        let rows = table(&codes, 2, 3, |_| seen += 1);
        assert_eq!(rows.len(), super::super::codes::CODE_SPECS.len() * 5);
        assert_eq!(seen, rows.len());
        let used: Vec<_> = rows.iter().filter(|r| r.in_use).collect();
        assert_eq!(used.len(), super::super::codes::CODE_SPECS.len());
        assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.point.fer)));
        // Far above the margin a short code still decodes every frame.
        let top = rows.iter().rfind(|r| r.code == 0).unwrap();
        assert_eq!(top.point.fer, 0.0, "{top:?}");
    }

    /// Both decoders on the same MD frames of code `index` at `snr`: (successes of the
    /// fast decoder, of the reference, total iterations of each).
    fn compare(codes: &CodeFamily, index: usize, snr: f64, frames: usize) -> [u64; 4] {
        let code = codes.code(index);
        let mut rng = SimRng::new(11);
        let mut out = [0u64; 4];
        for _ in 0..frames {
            let (llr, bits) = md_frame(code.len(), snr, &mut rng);
            let s = code.syndrome(&bits);
            let fast = code.decode(&llr, &s, 100);
            let slow = crate::cvqkd::sim::ldpc::reference::decode(code, &llr, &s, 100);
            out[0] += u64::from(fast.syndrome_ok && fast.bits == bits);
            out[1] += u64::from(slow.syndrome_ok && slow.bits == bits);
            out[2] += u64::from(fast.iterations);
            out[3] += u64::from(slow.iterations);
        }
        out
    }

    #[test]
    fn fast_decoder_agrees_with_the_reference_at_the_operating_point() {
        let codes = CodeFamily::new(8192);
        for i in [1, 4, 6, 9] {
            let [fast, slow, fast_it, slow_it] = compare(&codes, i, codes.min_snr(i) * 1.05, 6);
            eprintln!("code {i}: ok {fast}/{slow} iterations {fast_it}/{slow_it}");
            assert!(fast >= slow, "code {i}: fast {fast} < reference {slow}");
            assert!(
                fast_it <= slow_it + slow_it / 10 + 6,
                "code {i}: {fast_it} > {slow_it}"
            );
        }
    }
}
