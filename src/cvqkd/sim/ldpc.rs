//! Binary LDPC codes for syndrome-based reconciliation: construction of a random irregular
//! parity-check matrix from a degree distribution and a seed (no repeated edges), the
//! syndrome `H·b`, and a layered (serial-C) sum-product belief-propagation decoder that
//! decodes a word from log-likelihood ratios and the syndrome it must satisfy.
//!
//! The decoder keeps f32 messages in edge order (check-major, contiguous, allocated once
//! per frame), evaluates φ twice per edge from one branch-free table on a logarithmic grid,
//! and stops as soon as the hard decision meets the syndrome. `reference` (tests only)
//! is the first, slower decoder it is checked against.

use super::bits::BitVec;
use super::rng::SimRng;

#[cfg(test)]
pub(crate) mod reference;

/// Degree distribution of an irregular code, node perspective for variables.
#[derive(Debug, Clone, PartialEq)]
pub struct DegreeDistribution {
    /// Variable-node degrees and the *edge* fraction λ_d of each (sums to 1).
    pub variable_edge_fractions: Vec<(usize, f64)>,
}

/// A sparse parity-check matrix H (m × n), stored by rows.
#[derive(Debug, Clone)]
pub struct LdpcCode {
    n: usize,
    m: usize,
    row_start: Vec<u32>,
    cols: Vec<u32>,
}

/// Outcome of one decoding.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The hard decision after the last iteration.
    pub bits: BitVec,
    /// Whether the decision satisfies the syndrome (if not, the frame is flagged failed).
    pub syndrome_ok: bool,
    /// Iterations run.
    pub iterations: u32,
}

impl LdpcCode {
    /// A random code of length `n` and design rate `rate` with variable degrees from
    /// `dist` and near-regular check degrees, built deterministically from `seed`.
    ///
    /// Degree-2 variables form a staircase (variable k joins checks a_k and a_{k+1}): that
    /// subgraph has no cycle, so no low-weight codeword is made of degree-2 bits alone
    /// (the error floor of unstructured irregular codes). The other edges are random.
    pub fn random(n: usize, rate: f64, dist: &DegreeDistribution, seed: u64) -> Self {
        let var_degrees = variable_degrees(n, dist);
        let m = ((1.0 - rate) * n as f64).round() as usize;
        let edges: usize = var_degrees.iter().sum();
        let mut rng = SimRng::new(seed);
        let mut rows: Vec<Vec<u32>> = (0..m).map(|_| Vec::with_capacity(edges / m + 2)).collect();
        let twos: Vec<u32> = (0..n as u32)
            .filter(|&v| var_degrees[v as usize] == 2)
            .collect();
        let span = twos.len().max(1);
        assert!(
            twos.len() < m,
            "too many degree-2 variables for a staircase"
        );
        for (k, &v) in twos.iter().enumerate() {
            rows[k * (m - 1) / span].push(v);
            rows[(k + 1) * (m - 1) / span].push(v);
        }
        let mut sockets: Vec<u32> = Vec::with_capacity(edges);
        for (v, &d) in var_degrees.iter().enumerate().filter(|p| *p.1 != 2) {
            sockets.extend(std::iter::repeat_n(v as u32, d));
        }
        shuffle(&mut sockets, &mut rng);
        fill_rows(&mut rows, &mut sockets, edges);
        let mut row_start = vec![0u32];
        let mut cols = Vec::with_capacity(edges);
        for r in &rows {
            cols.extend_from_slice(r);
            row_start.push(cols.len() as u32);
        }
        let mut code = LdpcCode {
            n,
            m,
            row_start,
            cols,
        };
        code.remove_repeated_edges(&mut rng, &var_degrees);
        code
    }

    /// Code length n (bits per frame).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false: a code has at least one bit.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of parity checks m (syndrome bits, the reconciliation leak).
    pub fn checks(&self) -> usize {
        self.m
    }

    /// The rate 1 − m/n.
    pub fn rate(&self) -> f64 {
        1.0 - self.m as f64 / self.n as f64
    }

    /// Number of edges (ones in H).
    pub fn edges(&self) -> usize {
        self.cols.len()
    }

    fn row(&self, c: usize) -> &[u32] {
        &self.cols[self.row_start[c] as usize..self.row_start[c + 1] as usize]
    }

    /// The syndrome `H·b` of an n-bit word.
    pub fn syndrome(&self, word: &BitVec) -> BitVec {
        let mut s = BitVec::zeros(self.m);
        for c in 0..self.m {
            let parity = self
                .row(c)
                .iter()
                .fold(false, |p, &v| p ^ word.get(v as usize));
            s.set(c, parity);
        }
        s
    }

    /// Decode from LLRs (`ln P(0)/P(1)`, one per bit) the word whose syndrome is
    /// `syndrome`, with at most `max_iterations` layered sum-product iterations (stops as
    /// soon as the hard decision meets the syndrome).
    pub fn decode(&self, llr: &[f32], syndrome: &BitVec, max_iterations: u32) -> Decoded {
        let phi = PhiTable::get();
        let mut post = llr.to_vec();
        let mut msgs = vec![0f32; self.edges()];
        let mut scratch = CheckScratch::new(self.max_check_degree());
        let flips: Vec<bool> = (0..self.m).map(|c| syndrome.get(c)).collect();
        let mut iterations = 0;
        let mut ok = self.satisfied(&post, &flips);
        while !ok && iterations < max_iterations {
            for (c, &flip) in flips.iter().enumerate() {
                let edges = self.row_start[c] as usize..self.row_start[c + 1] as usize;
                let cols = &self.cols[edges.clone()];
                update_check(cols, flip, &mut post, &mut msgs[edges], &mut scratch, phi);
            }
            iterations += 1;
            ok = self.satisfied(&post, &flips);
        }
        Decoded {
            bits: hard_decision(&post),
            syndrome_ok: ok,
            iterations,
        }
    }

    /// The largest number of edges of one check.
    fn max_check_degree(&self) -> usize {
        self.row_start
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .max()
            .unwrap_or(0)
    }

    /// Whether the hard decision of `post` satisfies every check.
    fn satisfied(&self, post: &[f32], flips: &[bool]) -> bool {
        flips.iter().enumerate().all(|(c, &flip)| {
            let parity = self
                .row(c)
                .iter()
                .fold(false, |p, &v| p ^ (post[v as usize] < 0.0));
            parity == flip
        })
    }

    /// Swap sockets until no check is connected twice to the same variable.
    fn remove_repeated_edges(&mut self, rng: &mut SimRng, var_degrees: &[usize]) {
        for _round in 0..100 {
            let mut clean = true;
            for c in 0..self.m {
                clean &= self.fix_row(c, rng, var_degrees);
            }
            if clean {
                return;
            }
        }
    }

    /// Replace repeated variables in row `c` by swapping with random sockets elsewhere;
    /// returns whether the row was clean already.
    fn fix_row(&mut self, c: usize, rng: &mut SimRng, var_degrees: &[usize]) -> bool {
        let (lo, hi) = (self.row_start[c] as usize, self.row_start[c + 1] as usize);
        let mut clean = true;
        for e in lo..hi {
            if !self.cols[lo..e].contains(&self.cols[e]) {
                continue;
            }
            clean = false;
            let other = rng.below(self.cols.len());
            let oc = self.row_start.partition_point(|&s| s as usize <= other) - 1;
            let (v, w) = (self.cols[e], self.cols[other]);
            if var_degrees[w as usize] != 2
                && oc != c
                && !self.row(c).contains(&w)
                && !self.row(oc).contains(&v)
            {
                self.cols.swap(e, other);
            }
        }
        clean
    }
}

/// Give each row its share of the `edges` (near-regular degrees) from `sockets`.
fn fill_rows(rows: &mut [Vec<u32>], sockets: &mut Vec<u32>, edges: usize) {
    let m = rows.len();
    for (c, row) in rows.iter_mut().enumerate() {
        let target = (c + 1) * edges / m - c * edges / m;
        while row.len() < target {
            match sockets.pop() {
                Some(v) => row.push(v),
                None => return,
            }
        }
    }
    // Rounding leftovers (if any) go to the last rows.
    let last = rows.len() - 1;
    rows[last].append(sockets);
}

/// Per-variable degrees of a length-`n` code with edge fractions `dist`.
fn variable_degrees(n: usize, dist: &DegreeDistribution) -> Vec<usize> {
    let node_weight: f64 = dist
        .variable_edge_fractions
        .iter()
        .map(|&(d, l)| l / d as f64)
        .sum();
    let mut degrees = Vec::with_capacity(n);
    for (i, &(d, l)) in dist.variable_edge_fractions.iter().enumerate() {
        let count = if i + 1 == dist.variable_edge_fractions.len() {
            n - degrees.len()
        } else {
            ((l / d as f64) / node_weight * n as f64).round() as usize
        };
        degrees.extend(std::iter::repeat_n(d, count.min(n - degrees.len())));
    }
    degrees
}

/// Per-check working memory of the decoder, allocated once per frame.
struct CheckScratch {
    /// Variable-to-check messages `q_e` of the check being updated.
    q: Vec<f32>,
    /// `φ(|q_e|)` of the same edges.
    phi_q: Vec<f32>,
}

impl CheckScratch {
    fn new(max_degree: usize) -> Self {
        CheckScratch {
            q: vec![0.0; max_degree],
            phi_q: vec![0.0; max_degree],
        }
    }
}

/// Sign bit of an IEEE-754 single.
const SIGN_BIT: u32 = 0x8000_0000;

/// One layered sum-product update of the check whose variables are `cols` and whose
/// check-to-variable messages are `msgs`, in the φ domain:
/// `|r_e| = φ(Σ_{e'≠e} φ(|q_e'|))`, the sign the parity of the other signs and the
/// syndrome bit `flip`. Updates the posteriors `post` of the check's variables in place.
fn update_check(
    cols: &[u32],
    flip: bool,
    post: &mut [f32],
    msgs: &mut [f32],
    scratch: &mut CheckScratch,
    phi: &PhiTable,
) {
    let d = cols.len();
    let (q, phi_q) = (&mut scratch.q[..d], &mut scratch.phi_q[..d]);
    let (mut sum, mut sign) = (0f32, u32::from(flip) << 31);
    for (k, (&v, &m)) in cols.iter().zip(msgs.iter()).enumerate() {
        let x = post[v as usize] - m;
        q[k] = x;
        sign ^= x.to_bits();
        phi_q[k] = phi.eval(x.abs());
        sum += phi_q[k];
    }
    for (k, (&v, m)) in cols.iter().zip(msgs.iter_mut()).enumerate() {
        let mag = phi.eval(sum - phi_q[k]);
        let r = f32::from_bits(mag.to_bits() | ((sign ^ q[k].to_bits()) & SIGN_BIT));
        *m = r;
        post[v as usize] = q[k] + r;
    }
}

/// The hard decision (bit 1 where the LLR is negative) of posteriors `post`.
fn hard_decision(post: &[f32]) -> BitVec {
    let mut words = vec![0u64; post.len().div_ceil(64)];
    for (w, chunk) in words.iter_mut().zip(post.chunks(64)) {
        *w = chunk
            .iter()
            .enumerate()
            .fold(0, |acc, (i, &l)| acc | (u64::from(l < 0.0) << i));
    }
    BitVec::from_words(words, post.len())
}

/// Bit pattern of the smallest argument the φ table resolves, 2^−20 (φ ≈ 14.6 there:
/// the cap on a check-to-variable message's magnitude).
const PHI_MIN_BITS: u32 = 0x3580_0000;
/// Bit pattern of the end of the table, 32.0 (φ(32) ≈ 2.5 × 10^−14, taken as constant
/// beyond).
const PHI_END_BITS: u32 = 0x4200_0000;
/// Mantissa bits kept in a table index: 2^8 bins per octave, a relative step of 0.4 %.
const PHI_MANTISSA_BITS: u32 = 8;
/// Right shift from a float's bits to its table index (23 mantissa bits in an f32).
const PHI_SHIFT: u32 = 23 - PHI_MANTISSA_BITS;
/// Number of table entries (25 octaves of 256 bins).
const PHI_ENTRIES: usize = ((PHI_END_BITS - PHI_MIN_BITS) >> PHI_SHIFT) as usize;

/// φ(x) = ln((e^x + 1)/(e^x − 1)) = −ln tanh(x/2) (its own inverse), tabulated on a
/// logarithmic grid: the index is the float's exponent and top mantissa bits, so one
/// clamp, one shift and one load evaluate it without branches at a relative resolution
/// that suits both the steep end (x → 0) and the flat end.
struct PhiTable(Box<[f32; PHI_ENTRIES]>);

impl PhiTable {
    /// The table, built on first use.
    fn get() -> &'static PhiTable {
        static TABLE: std::sync::OnceLock<PhiTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            let mut t = Box::new([0f32; PHI_ENTRIES]);
            for (i, v) in t.iter_mut().enumerate() {
                let lo = f32::from_bits(PHI_MIN_BITS + ((i as u32) << PHI_SHIFT));
                let hi = f32::from_bits(PHI_MIN_BITS + ((i as u32 + 1) << PHI_SHIFT));
                *v = phi_exact(0.5 * (f64::from(lo) + f64::from(hi))) as f32;
            }
            PhiTable(t)
        })
    }

    /// φ(x) for x ≥ 0 (a negative x, from rounding, counts as the smallest argument).
    #[inline(always)]
    fn eval(&self, x: f32) -> f32 {
        let bits = x
            .max(f32::from_bits(PHI_MIN_BITS))
            .min(f32::from_bits(PHI_END_BITS - 1))
            .to_bits();
        let i = ((bits - PHI_MIN_BITS) >> PHI_SHIFT) as usize;
        self.0[i.min(PHI_ENTRIES - 1)]
    }
}

/// φ(x) = −ln tanh(x/2), exactly (for the table and the reference decoder).
fn phi_exact(x: f64) -> f64 {
    let e = (-x.max(1e-12)).exp();
    ((1.0 + e) / (1.0 - e)).ln()
}

/// Fisher–Yates shuffle.
fn shuffle<T>(v: &mut [T], rng: &mut SimRng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    pub use crate::cvqkd::sim::rng::SimRng;
    pub fn code(n: usize) -> LdpcCode {
        let dist = DegreeDistribution {
            variable_edge_fractions: vec![(2, 0.1), (3, 0.36), (20, 0.54)],
        };
        LdpcCode::random(n, 0.5, &dist, 1)
    }

    /// BPSK (±1) LLRs of `word` through AWGN of standard deviation `sigma`.
    pub fn channel_llrs(word: &BitVec, sigma: f64, rng: &mut SimRng) -> Vec<f32> {
        (0..word.len())
            .map(|i| {
                let x = if word.get(i) { -1.0 } else { 1.0 };
                (2.0 * (x + sigma * rng.gaussian()) / (sigma * sigma)) as f32
            })
            .collect()
    }

    pub fn random_word(n: usize, rng: &mut SimRng) -> BitVec {
        let mut w = vec![0u64; n.div_ceil(64)];
        rng.fill_words(&mut w);
        BitVec::from_words(w, n)
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn no_repeated_edges_and_rate() {
        let c = code(4096);
        assert!((c.rate() - 0.5).abs() < 1e-3);
        for r in 0..c.checks() {
            let row = c.row(r);
            for (i, v) in row.iter().enumerate() {
                assert!(!row[..i].contains(v), "row {r} repeats {v}");
            }
        }
    }

    #[test]
    fn a_noiseless_word_decodes_at_once() {
        let c = code(2048);
        let mut rng = SimRng::new(2);
        let w = random_word(2048, &mut rng);
        let llr: Vec<f32> = (0..2048)
            .map(|i| if w.get(i) { -5.0 } else { 5.0 })
            .collect();
        let d = c.decode(&llr, &c.syndrome(&w), 50);
        assert!(d.syndrome_ok && d.bits == w && d.iterations == 0);
    }

    #[test]
    fn noise_below_threshold_decodes() {
        let c = code(8192);
        let mut rng = SimRng::new(3);
        for _ in 0..3 {
            let w = random_word(8192, &mut rng);
            let llr = channel_llrs(&w, 0.75, &mut rng);
            let d = c.decode(&llr, &c.syndrome(&w), 100);
            assert!(d.syndrome_ok && d.bits == w, "iterations {}", d.iterations);
        }
    }

    #[test]
    fn noise_far_above_threshold_fails_and_is_flagged() {
        let c = code(4096);
        let mut rng = SimRng::new(4);
        let w = random_word(4096, &mut rng);
        let llr = channel_llrs(&w, 1.5, &mut rng);
        let d = c.decode(&llr, &c.syndrome(&w), 30);
        assert!(!d.syndrome_ok && d.bits != w);
    }
}
