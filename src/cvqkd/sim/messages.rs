//! What crosses between Alice and Bob: the quantum block (the optical pulses, which the
//! simulator represents by Wigner-function samples) and the public classical messages of
//! GG02. Everything is serializable so the two halves can run in two processes.

use super::bits::BitVec;
use serde::{Deserialize, Serialize};

/// The optical pulses of one block in transit. Each pulse is a Gaussian state represented
/// by one sample (x, p) of its Wigner function, in SNU: a coherent state |α⟩ is Alice's
/// displacement plus a vacuum sample of variance 1 that nobody learns. Gaussian channels
/// and homodyne detection act linearly on these samples, which gives exact measurement
/// statistics (cvqkd-physics.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantumBlock {
    /// Block number.
    pub block_id: u64,
    /// x-quadrature samples, one per pulse.
    pub x: Vec<f64>,
    /// p-quadrature samples, one per pulse.
    pub p: Vec<f64>,
}

impl QuantumBlock {
    /// Pulses in the block.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether the block has no pulses.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// Bob's reconciliation data for one LDPC frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameData {
    /// The MD rotations α, 8 reals per 8 samples of the frame.
    pub rotations: Vec<f64>,
    /// The syndrome H·b of Bob's frame bits.
    pub syndrome: BitVec,
    /// Public key of the verification hash, drawn after the frame was fixed.
    pub hash_key: u64,
    /// Bob's verification tag of his frame bits.
    pub tag: u64,
}

/// A public message of the classical channel (authenticated in a real system).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClassicalMessage {
    /// Bob → Alice after detection: his homodyne bases (one bit per pulse, 1 = p; none for
    /// heterodyne), the public seed that picks the parameter-estimation pulses, and his
    /// samples of those pulses.
    Disclosure {
        /// Block number.
        block_id: u64,
        /// Homodyne bases, or `None` for heterodyne.
        bases: Option<BitVec>,
        /// Seed of the parameter-estimation subset.
        pe_seed: u64,
        /// Bob's samples of the subset, in pulse order.
        bob_values: Vec<f64>,
    },
    /// Alice → Bob: her (sifted) samples of the parameter-estimation subset.
    PeAnswer {
        /// Block number.
        block_id: u64,
        /// Alice's samples of the subset, in pulse order.
        alice_values: Vec<f64>,
    },
    /// Bob → Alice: the code chosen and, per frame, rotations, syndrome and tag.
    Reconciliation {
        /// Block number.
        block_id: u64,
        /// Index of the code in the shared [`super::codes::CodeFamily`].
        code: usize,
        /// One entry per frame.
        frames: Vec<FrameData>,
    },
    /// Alice → Bob: which frames decoded and verified, and the Toeplitz seed.
    Verification {
        /// Block number.
        block_id: u64,
        /// Per frame: decoded with a satisfied syndrome and a matching tag.
        frame_ok: Vec<bool>,
        /// Public seed of the privacy-amplification matrix.
        pa_seed: u64,
    },
}

impl ClassicalMessage {
    /// The block the message belongs to.
    pub fn block_id(&self) -> u64 {
        match self {
            ClassicalMessage::Disclosure { block_id, .. }
            | ClassicalMessage::PeAnswer { block_id, .. }
            | ClassicalMessage::Reconciliation { block_id, .. }
            | ClassicalMessage::Verification { block_id, .. } => *block_id,
        }
    }

    /// The message's name, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClassicalMessage::Disclosure { .. } => "Disclosure",
            ClassicalMessage::PeAnswer { .. } => "PeAnswer",
            ClassicalMessage::Reconciliation { .. } => "Reconciliation",
            ClassicalMessage::Verification { .. } => "Verification",
        }
    }
}
