//! Binary LDPC codes for syndrome-based reconciliation: construction of a random irregular
//! parity-check matrix from a degree distribution and a seed (no repeated edges), the
//! syndrome `H·b`, and a layered normalised min-sum belief-propagation decoder that decodes
//! a word from log-likelihood ratios and the syndrome it must satisfy.

use super::bits::BitVec;
use super::rng::SimRng;

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
    /// `syndrome`, with at most `max_iterations` layered min-sum iterations.
    pub fn decode(&self, llr: &[f32], syndrome: &BitVec, max_iterations: u32) -> Decoded {
        let mut post = llr.to_vec();
        let mut msgs = vec![0f32; self.edges()];
        let mut scratch = Vec::new();
        let flips: Vec<bool> = (0..self.m).map(|c| syndrome.get(c)).collect();
        let mut iterations = 0;
        let mut ok = self.satisfied(&post, &flips);
        while !ok && iterations < max_iterations {
            for (c, &flip) in flips.iter().enumerate() {
                self.update_check(c, flip, &mut post, &mut msgs, &mut scratch);
            }
            iterations += 1;
            ok = self.satisfied(&post, &flips);
        }
        let mut bits = BitVec::zeros(self.n);
        for (i, &l) in post.iter().enumerate() {
            bits.set(i, l < 0.0);
        }
        Decoded {
            bits,
            syndrome_ok: ok,
            iterations,
        }
    }

    /// One layered sum-product update of check `c`, in the φ domain:
    /// `|r_e| = φ(Σ_{e'≠e} φ(|q_e'|))`, φ(x) = ln((e^x + 1)/(e^x − 1)).
    fn update_check(
        &self,
        c: usize,
        flip: bool,
        post: &mut [f32],
        msgs: &mut [f32],
        q: &mut Vec<f32>,
    ) {
        let range = self.row_start[c] as usize..self.row_start[c + 1] as usize;
        q.clear();
        let (mut sum, mut neg) = (0f32, flip);
        for e in range.clone() {
            let x = post[self.cols[e] as usize] - msgs[e];
            q.push(x);
            neg ^= x < 0.0;
            sum += phi(x.abs());
        }
        for (k, e) in range.enumerate() {
            let mag = phi((sum - phi(q[k].abs())).max(0.0));
            let negative = neg ^ (q[k] < 0.0);
            let r = if negative { -mag } else { mag };
            msgs[e] = r;
            post[self.cols[e] as usize] = q[k] + r;
        }
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

/// Entries per unit of the fine φ table, on [0, 1) where φ is steep.
const PHI_FINE_STEPS: f32 = 4096.0;
/// Entries per unit of the coarse φ table, on [1, 24).
const PHI_COARSE_STEPS: f32 = 64.0;

/// φ(x) = ln((e^x + 1)/(e^x − 1)) = −ln tanh(x/2) (its own inverse), exactly.
fn phi_exact(x: f64) -> f64 {
    let e = (-x.max(1e-12)).exp();
    ((1.0 + e) / (1.0 - e)).ln()
}

/// φ from two tables sampled at bin centres (fine on [0, 1), coarse on [1, 24)), exact
/// below the first fine bin, 0 beyond 24.
fn phi(x: f32) -> f32 {
    static TABLES: std::sync::OnceLock<(Vec<f32>, Vec<f32>)> = std::sync::OnceLock::new();
    let (fine, coarse) = TABLES.get_or_init(|| {
        let table = |steps: f32, from: f64, len: usize| -> Vec<f32> {
            (0..len)
                .map(|i| phi_exact(from + (i as f64 + 0.5) / f64::from(steps)) as f32)
                .collect()
        };
        (
            table(PHI_FINE_STEPS, 0.0, 4096),
            table(PHI_COARSE_STEPS, 1.0, 23 * 64),
        )
    });
    if x < 1.0 / PHI_FINE_STEPS {
        phi_exact(f64::from(x)) as f32
    } else if x < 1.0 {
        fine[(x * PHI_FINE_STEPS) as usize]
    } else {
        coarse
            .get(((x - 1.0) * PHI_COARSE_STEPS) as usize)
            .copied()
            .unwrap_or(0.0)
    }
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
