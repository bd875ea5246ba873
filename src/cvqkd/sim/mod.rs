//! The GG02 link simulator (issue 4; cvqkd-physics.md §6–§7): Alice, the fiber, Eve and Bob as
//! separate components that share nothing but what a real system exchanges — the optical
//! pulses ([`QuantumBlock`]) and the public classical messages ([`ClassicalMessage`]).
//!
//! Per block: Gaussian modulation, channel and attack, homodyne or heterodyne detection,
//! parameter estimation on a disclosed subset with the finite-size worst case (abort when
//! the bound is not positive), 8-dimensional reverse reconciliation with LDPC codes decoded
//! by belief propagation (β and FER measured), verification by a GF(2^64) polynomial hash,
//! and Toeplitz privacy amplification to the length the bound allows.
//!
//! Layout, one file per stage: [`adapt`] (automatic V_A), [`alice`], [`bob`], [`channel`] (fiber and Eve),
//! [`estimation`], [`md`] (MD rotations), [`ldpc`] and [`codes`], [`verify`], [`privacy`],
//! [`protocol`] (what both sides share), [`messages`], [`link`] (both in one process),
//! [`summary`] (what `qshield qkd simulate` prints).
//!
//! Honesty: the simulator's randomness is a PRNG on one machine. Its *numbers* follow the
//! theory; its *keys* have no quantum security. Never label them "QKD-secured".

pub mod adapt;
pub mod alice;
pub mod bits;
pub mod bob;
pub mod calibrate;
pub mod channel;
pub mod codes;
pub mod estimation;
pub mod ldpc;
pub mod link;
pub mod md;
pub mod messages;
pub mod parse;
pub mod privacy;
pub mod protocol;
pub mod rng;
pub mod summary;
pub mod verify;

pub use adapt::{ModulationChoice, choose_modulation};
pub use alice::Alice;
pub use bob::Bob;
pub use channel::{Attack, Channel};
pub use estimation::AbortReason;
pub use link::{BlockReport, BlockRun, LinkSimulator, SimConfig};
pub use messages::{ClassicalMessage, FrameData, QuantumBlock};
pub use protocol::{Protocol, SideOutcome, SimKey};

use crate::cvqkd::params::ParamError;

/// Errors of the simulator; configuration errors name the flag.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A link or block parameter is out of range.
    #[error("{}", .0.flag_message())]
    Param(ParamError),
    /// The frame length is not a positive multiple of 64.
    #[error("--frame-bits: must be a multiple of 64, at least 64 (got {0})")]
    FrameBits(usize),
    /// The attack is malformed or out of range.
    #[error("--attack: {0}")]
    Attack(String),
    /// A message arrived out of order or does not fit the block (a protocol bug or a
    /// tampered channel).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
}

impl From<ParamError> for SimError {
    fn from(e: ParamError) -> Self {
        SimError::Param(e)
    }
}
