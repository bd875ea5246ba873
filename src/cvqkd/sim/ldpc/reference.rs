//! The first decoder, kept as the reference the fast one is tested against: layered
//! sum-product in the φ domain with φ from two uniform tables (fine on [0, 1), coarse on
//! [1, 24)), exact below the first fine bin, and φ evaluated three times per edge.

use super::{Decoded, LdpcCode, hard_decision, phi_exact};
use crate::cvqkd::sim::bits::BitVec;

/// Entries per unit of the fine φ table, on [0, 1) where φ is steep.
const PHI_FINE_STEPS: f32 = 4096.0;
/// Entries per unit of the coarse φ table, on [1, 24).
const PHI_COARSE_STEPS: f32 = 64.0;

/// Decode as [`LdpcCode::decode`] does, the slow way.
pub fn decode(code: &LdpcCode, llr: &[f32], syndrome: &BitVec, max_iterations: u32) -> Decoded {
    let mut post = llr.to_vec();
    let mut msgs = vec![0f32; code.edges()];
    let mut scratch = Vec::new();
    let flips: Vec<bool> = (0..code.m).map(|c| syndrome.get(c)).collect();
    let mut iterations = 0;
    let mut ok = code.satisfied(&post, &flips);
    while !ok && iterations < max_iterations {
        for (c, &flip) in flips.iter().enumerate() {
            update_check(code, c, flip, &mut post, &mut msgs, &mut scratch);
        }
        iterations += 1;
        ok = code.satisfied(&post, &flips);
    }
    Decoded {
        bits: hard_decision(&post),
        syndrome_ok: ok,
        iterations,
    }
}

fn update_check(
    code: &LdpcCode,
    c: usize,
    flip: bool,
    post: &mut [f32],
    msgs: &mut [f32],
    q: &mut Vec<f32>,
) {
    let range = code.row_start[c] as usize..code.row_start[c + 1] as usize;
    q.clear();
    let (mut sum, mut neg) = (0f32, flip);
    for e in range.clone() {
        let x = post[code.cols[e] as usize] - msgs[e];
        q.push(x);
        neg ^= x < 0.0;
        sum += phi(x.abs());
    }
    for (k, e) in range.enumerate() {
        let mag = phi((sum - phi(q[k].abs())).max(0.0));
        let negative = neg ^ (q[k] < 0.0);
        let r = if negative { -mag } else { mag };
        msgs[e] = r;
        post[code.cols[e] as usize] = q[k] + r;
    }
}

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
