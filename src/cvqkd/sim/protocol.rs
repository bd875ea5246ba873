//! What Alice and Bob share before any block: the public protocol parameters, the code
//! family, the parameter-estimation subset rule and the per-block outcome both compute.

use super::bits::BitVec;
use super::codes::CodeFamily;
use super::estimation::{AbortReason, PeOutcome, secret_length};
use super::rng::SimRng;
use crate::cvqkd::finite_size::FiniteSizeParams;
use crate::cvqkd::params::LinkParams;
use serde::Serialize;
use std::sync::Arc;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Default cap on belief-propagation iterations per frame.
pub const DEFAULT_MAX_ITERATIONS: u32 = 100;

/// Public parameters both sides agree on.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// Modulation and detector: V_A, η, v_el, detection, trust. T, ξ and β are ignored
    /// (they are what the protocol measures).
    pub link: LinkParams,
    /// Block size N, estimation samples m and ε.
    pub finite: FiniteSizeParams,
    /// The LDPC codes (length = frame size).
    pub codes: Arc<CodeFamily>,
    /// Belief-propagation iteration cap.
    pub max_iterations: u32,
}

impl Protocol {
    /// Real samples per pulse (1 homodyne, 2 heterodyne).
    pub fn samples_per_pulse(&self) -> u32 {
        self.link.detection.samples_per_pulse()
    }

    /// Frames of the block: whole frames of key samples.
    pub fn frames(&self) -> usize {
        let key_samples = self.finite.key_symbols() as usize * self.samples_per_pulse() as usize;
        key_samples / self.codes.frame_bits()
    }
}

/// Exactly `m` of `n` pulses chosen uniformly with the public `seed` (Knuth's selection
/// sampling): `true` marks a parameter-estimation pulse.
pub fn pe_mask(seed: u64, n: usize, m: usize) -> Vec<bool> {
    let mut rng = SimRng::new(seed);
    let mut left = m;
    (0..n)
        .map(|i| {
            let pick = (rng.unit() * (n - i) as f64) < left as f64;
            if pick {
                left -= 1;
            }
            pick
        })
        .collect()
}

/// A final key of one block: the privacy-amplified bits. Zeroized on drop, printed as its
/// length only. A simulated link gives no quantum security: never call it "QKD-secured".
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SimKey {
    /// Block number.
    #[zeroize(skip)]
    pub block_id: u64,
    /// The key bits.
    pub bits: BitVec,
}

impl std::fmt::Debug for SimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SimKey(block {}, {} bits, [redacted])",
            self.block_id,
            self.bits.len()
        )
    }
}

/// What one side knows at the end of a block.
#[derive(Debug, Clone, Serialize)]
pub struct SideOutcome {
    /// Block number.
    pub block_id: u64,
    /// Parameter estimation and the decision it led to.
    pub pe: PeOutcome,
    /// Frames reconciled (0 if aborted before).
    pub frames: usize,
    /// Frames that decoded and verified.
    pub frames_ok: usize,
    /// Mean belief-propagation iterations per frame (Alice's side; 0 on Bob's).
    pub mean_iterations: f64,
    /// Secret key bits after privacy amplification.
    pub key_bits: usize,
    /// Why there is no key, if so.
    pub abort: Option<AbortReason>,
}

impl SideOutcome {
    /// The outcome of a block aborted at parameter estimation.
    pub fn aborted(block_id: u64, pe: PeOutcome) -> Self {
        SideOutcome {
            block_id,
            pe,
            frames: 0,
            frames_ok: 0,
            mean_iterations: 0.0,
            key_bits: 0,
            abort: pe.abort,
        }
    }

    /// The outcome after verification of `frame_ok`, and the secret length.
    pub fn reconciled(proto: &Protocol, block_id: u64, pe: PeOutcome, frame_ok: &[bool]) -> Self {
        let ok = frame_ok.iter().filter(|&&b| b).count();
        let code = proto.codes.code(pe.code.unwrap_or(0));
        let spp = proto.samples_per_pulse();
        let key_bits = secret_length(&pe.rate, ok, code.len(), code.checks(), spp);
        SideOutcome {
            block_id,
            pe,
            frames: frame_ok.len(),
            frames_ok: ok,
            mean_iterations: 0.0,
            key_bits,
            abort: (key_bits == 0).then_some(AbortReason::NoKeyAfterReconciliation),
        }
    }
}

/// Concatenate the frames marked ok (frame lengths are multiples of 64 bits).
pub fn concat_ok(frames: &[BitVec], ok: &[bool]) -> BitVec {
    let mut words = Vec::new();
    let mut len = 0;
    for (f, _) in frames.iter().zip(ok).filter(|p| *p.1) {
        debug_assert_eq!(f.len() % 64, 0);
        words.extend_from_slice(f.words());
        len += f.len();
    }
    BitVec::from_words(words, len)
}

/// Privacy amplification of `reconciled` to `key_bits` with the public `pa_seed`.
pub fn amplify(block_id: u64, reconciled: &BitVec, key_bits: usize, pa_seed: u64) -> SimKey {
    let seed = super::privacy::seed_bits(pa_seed, reconciled.len(), key_bits);
    SimKey {
        block_id,
        bits: super::privacy::toeplitz_hash(reconciled, &seed, key_bits),
    }
}
