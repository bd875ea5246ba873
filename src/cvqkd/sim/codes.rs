//! The family of LDPC codes shared by Alice and Bob, and which one to use at an estimated
//! SNR. Each code is a random irregular code (variable degrees 2, 3 and one high degree;
//! near-regular checks) built from a fixed public seed, so both sides build the same
//! matrix. Degree distributions were chosen by Gaussian-approximation density evolution
//! on the BIAWGN channel; the operating SNR of each code was measured on MD
//! reconciliation frames (see docs/cvqkd-sim.md).

use super::ldpc::{DegreeDistribution, LdpcCode};
use std::sync::OnceLock;

/// Default frame (code) length, bits = real samples.
pub const DEFAULT_FRAME_BITS: usize = 1 << 16;
/// Seed of the public code construction.
const CODE_SEED: u64 = 0x5153_6869_656c_6443;

/// One code of the family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeSpec {
    /// Design rate R = 1 − m/n.
    pub rate: f64,
    /// Density-evolution (Gaussian approximation) threshold SNR per real sample.
    pub threshold_snr: f64,
    /// Measured factor over the threshold where frames of [`DEFAULT_FRAME_BITS`] bits
    /// decode with a frame error rate of about 10 % or less (MD channel, BP, 100 iterations).
    pub margin: f64,
    /// Variable-degree edge fractions λ_d.
    pub variable_edge_fractions: &'static [(usize, f64)],
}

/// The codes, from the lowest rate up.
pub const CODE_SPECS: &[CodeSpec] = &[
    CodeSpec {
        rate: 0.1,
        margin: 1.12,
        threshold_snr: 0.2009,
        variable_edge_fractions: &[(2, 0.50), (3, 0.48), (8, 0.02)],
    },
    CodeSpec {
        rate: 0.15,
        margin: 1.12,
        threshold_snr: 0.2994,
        variable_edge_fractions: &[(2, 0.34), (3, 0.36), (12, 0.30)],
    },
    CodeSpec {
        rate: 0.2,
        margin: 1.12,
        threshold_snr: 0.3938,
        variable_edge_fractions: &[(2, 0.30), (3, 0.36), (12, 0.34)],
    },
    CodeSpec {
        rate: 0.25,
        margin: 1.12,
        threshold_snr: 0.4919,
        variable_edge_fractions: &[(2, 0.26), (3, 0.36), (12, 0.38)],
    },
    CodeSpec {
        rate: 0.3,
        margin: 1.12,
        threshold_snr: 0.6034,
        variable_edge_fractions: &[(2, 0.26), (3, 0.30), (12, 0.44)],
    },
    CodeSpec {
        rate: 0.4,
        margin: 1.16,
        threshold_snr: 0.847,
        variable_edge_fractions: &[(2, 0.22), (3, 0.36), (12, 0.42)],
    },
    CodeSpec {
        rate: 0.5,
        margin: 1.24,
        threshold_snr: 1.1407,
        variable_edge_fractions: &[(2, 0.10), (3, 0.36), (20, 0.54)],
    },
    CodeSpec {
        rate: 0.6,
        margin: 1.24,
        threshold_snr: 1.5059,
        variable_edge_fractions: &[(2, 0.18), (3, 0.30), (12, 0.52)],
    },
    CodeSpec {
        rate: 0.7,
        // Measured (MD frames of 2^16 bits, 24 each): 1.21: FER 23/24; 1.27: 1/24; 1.33: 0/24.
        margin: 1.33,
        threshold_snr: 1.9808,
        variable_edge_fractions: &[(2, 0.10), (3, 0.30), (20, 0.60)],
    },
    CodeSpec {
        rate: 0.8,
        // Measured (MD frames of 2^16 bits, 24 each): 1.24: FER 24/24; 1.30: 14/24; 1.36: 0/24.
        margin: 1.38,
        threshold_snr: 2.7468,
        variable_edge_fractions: &[(2, 0.06), (3, 0.30), (20, 0.64)],
    },
];

/// The factor over the threshold at which a code of length `frame_bits` is used: the
/// measured margin at the default length, the gap scaled as n^(−1/2) (finite-length
/// scaling) for other lengths.
fn finite_length_factor(margin: f64, frame_bits: usize) -> f64 {
    1.0 + (margin - 1.0) * ((DEFAULT_FRAME_BITS as f64) / frame_bits as f64).sqrt()
}

/// The codes at one frame length, built lazily.
#[derive(Debug)]
pub struct CodeFamily {
    frame_bits: usize,
    codes: Vec<OnceLock<LdpcCode>>,
}

impl CodeFamily {
    /// The family at frame length `frame_bits` (a multiple of 8).
    pub fn new(frame_bits: usize) -> Self {
        CodeFamily {
            frame_bits,
            codes: CODE_SPECS.iter().map(|_| OnceLock::new()).collect(),
        }
    }

    /// Frame length, bits.
    pub fn frame_bits(&self) -> usize {
        self.frame_bits
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        CODE_SPECS.len()
    }

    /// Whether the family is empty (never).
    pub fn is_empty(&self) -> bool {
        CODE_SPECS.is_empty()
    }

    /// The lowest SNR at which code `i` is used.
    pub fn min_snr(&self, i: usize) -> f64 {
        let spec = &CODE_SPECS[i];
        spec.threshold_snr * finite_length_factor(spec.margin, self.frame_bits)
    }

    /// The highest-rate code usable at SNR `snr`, if any.
    pub fn select(&self, snr: f64) -> Option<usize> {
        (0..self.len()).rev().find(|&i| snr >= self.min_snr(i))
    }

    /// The exact rate 1 − m/n of code `i`.
    pub fn rate(&self, i: usize) -> f64 {
        self.code(i).rate()
    }

    /// Code `i`, built on first use.
    pub fn code(&self, i: usize) -> &LdpcCode {
        self.codes[i].get_or_init(|| {
            let spec = &CODE_SPECS[i];
            let dist = DegreeDistribution {
                variable_edge_fractions: spec.variable_edge_fractions.to_vec(),
            };
            LdpcCode::random(self.frame_bits, spec.rate, &dist, CODE_SEED ^ i as u64)
        })
    }
}
