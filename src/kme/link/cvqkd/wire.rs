//! The classical channel of a CV-QKD link between its two KMEs: `POST /kme/v1/link/cvqkd`
//! over the KMEs' mutual TLS, leader (Alice) to follower (Bob), bodies in postcard. The
//! leader drives each block: announce it, pass Alice's messages to Bob, and name the
//! sequence number under which both ends store the block's key. Only what GG02 makes
//! public crosses (estimation samples, rotations, syndromes, tags, seeds); never a key.

use crate::cvqkd::Detection;
use crate::cvqkd::sim::{ClassicalMessage, Protocol};
use serde::{Deserialize, Serialize};

/// Path of the endpoint.
pub const PATH: &str = crate::kme::routes::CVQKD_LINK;
/// Content type of both bodies.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// The protocol parameters both ends must share; the follower refuses a block announced
/// with others, naming the first that differs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProtocolParams {
    /// Modulation variance V_A, SNU.
    pub va: f64,
    /// Detector efficiency η.
    pub eta: f64,
    /// Electronic noise, SNU.
    pub v_el: f64,
    /// Homodyne or heterodyne.
    pub detection: Detection,
    /// Pulses per block.
    pub block_size: u64,
    /// Estimation pulses per block.
    pub pe_samples: u64,
    /// ε of the finite-size bound.
    pub epsilon: f64,
    /// LDPC frame length, bits.
    pub frame_bits: u64,
}

impl ProtocolParams {
    /// The parameters of a protocol.
    pub fn of(p: &Protocol) -> Self {
        ProtocolParams {
            va: p.link.modulation_variance_snu,
            eta: p.link.detector_efficiency,
            v_el: p.link.electronic_noise_snu,
            detection: p.link.detection,
            block_size: p.finite.block_size,
            pe_samples: p.finite.pe_samples,
            epsilon: p.finite.epsilon_pe,
            frame_bits: p.codes.frame_bits() as u64,
        }
    }

    /// The first parameter that differs from `ours`, as "name: leader X, follower Y".
    pub fn first_difference(&self, ours: &ProtocolParams) -> Option<String> {
        let pairs: [(&str, String, String); 8] = [
            ("va", self.va.to_string(), ours.va.to_string()),
            ("eta", self.eta.to_string(), ours.eta.to_string()),
            ("v_el", self.v_el.to_string(), ours.v_el.to_string()),
            (
                "detection",
                format!("{:?}", self.detection),
                format!("{:?}", ours.detection),
            ),
            (
                "block_size",
                self.block_size.to_string(),
                ours.block_size.to_string(),
            ),
            (
                "pe_samples",
                self.pe_samples.to_string(),
                ours.pe_samples.to_string(),
            ),
            (
                "epsilon",
                self.epsilon.to_string(),
                ours.epsilon.to_string(),
            ),
            (
                "frame_bits",
                self.frame_bits.to_string(),
                ours.frame_bits.to_string(),
            ),
        ];
        pairs
            .into_iter()
            .find(|(_, a, b)| a != b)
            .map(|(name, a, b)| format!("{name}: leader {a}, follower {b}"))
    }
}

/// Leader → follower.
#[derive(Debug, Serialize, Deserialize)]
pub enum LinkRequest {
    /// Block `block_id`'s pulses are on the quantum channel: detect them and disclose.
    Start {
        /// The leader's protocol parameters.
        params: ProtocolParams,
        /// The block.
        block_id: u64,
    },
    /// Alice's estimation answer; `reconcile: false` ends the block after estimation (the
    /// pools are full: the link only watches the channel).
    Estimate {
        /// The `PeAnswer`.
        msg: ClassicalMessage,
        /// Go on to reconciliation.
        reconcile: bool,
    },
    /// Alice's verification; with `seq`, store the block's key as link blocks `seq` (its
    /// first `leader_bytes` bytes, the leader's direction) and `seq + 1` (the rest, the
    /// follower's direction); the leader has stored its copy the same way. The leader
    /// shares each key by the two directions' need, and names the share here, so both ends
    /// agree on it.
    Finish {
        /// The `Verification`.
        msg: ClassicalMessage,
        /// Where both ends store the key, if it is long enough to store.
        seq: Option<u64>,
        /// Bytes of the key that go to the leader's direction (block `seq`).
        leader_bytes: u64,
    },
}

/// Follower → leader.
#[derive(Debug, Serialize, Deserialize)]
pub enum LinkReply {
    /// Bob's disclosure, and the next link block the follower expects (so the leader can
    /// confirm or discard blocks whose fate it did not hear).
    Started {
        /// The `Disclosure`.
        msg: ClassicalMessage,
        /// The follower's next expected link block.
        next_seq: u64,
    },
    /// Bob's reconciliation data, or none (aborted or estimate-only).
    Estimated(Option<ClassicalMessage>),
    /// The follower's key bytes stored (0 when the block gave none).
    Finished {
        /// Key bytes stored.
        stored_bytes: u64,
    },
    /// Answer to `Start`: no pulses of the block arrived in time (the quantum channel is
    /// cut or jammed); both ends count the block as starved.
    NoPulses {
        /// The block.
        block_id: u64,
    },
}

/// Largest request body the follower accepts: Alice's estimation samples (8 bytes per real
/// sample) of the largest block among `links`, plus room for the envelope.
pub fn body_limit(links: &[crate::kme::config::LinkConfig]) -> usize {
    const ENVELOPE_BYTES: u64 = 64 * 1024;
    let largest = links
        .iter()
        .filter_map(|l| l.cvqkd.as_ref())
        .map(|c| 8 * c.pe_samples * u64::from(c.detection.samples_per_pulse()))
        .max()
        .unwrap_or(0);
    (largest + ENVELOPE_BYTES) as usize
}

/// Encodes a body.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("link messages always serialize")
}

/// Decodes a body.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

/// The key bytes of a block: whole bytes, an even count.
pub fn key_bytes(key: &crate::cvqkd::sim::SimKey) -> zeroize::Zeroizing<Vec<u8>> {
    let whole = key.bits.len() / 8;
    let mut bytes = zeroize::Zeroizing::new(key.bits.to_bytes());
    bytes.truncate(whole - whole % 2);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_differing_parameter() {
        let a = ProtocolParams {
            va: 4.0,
            eta: 0.6,
            v_el: 0.1,
            detection: Detection::Homodyne,
            block_size: 1 << 20,
            pe_samples: 1 << 19,
            epsilon: 1e-10,
            frame_bits: 65536,
        };
        assert_eq!(a.first_difference(&a), None);
        let b = ProtocolParams {
            block_size: 1 << 21,
            ..a
        };
        assert_eq!(
            a.first_difference(&b).unwrap(),
            "block_size: leader 1048576, follower 2097152"
        );
    }

    #[test]
    fn the_body_limit_admits_the_largest_estimation_answer() {
        let text = "[kme]\nid = \"a\"\nlisten = \"127.0.0.1:1\"\ndata_dir = \"d\"\nca_file = \"c\"\ncert_file = \"c\"\nkey_file = \"k\"\n[[link]]\npeer = \"b\"\nurl = \"https://127.0.0.1:2\"\nrole = \"follower\"\nsource = \"cvqkd\"\n[link.cvqkd]\ndistance_km = 5.0\nblock_size = 2097152\n";
        let cfg = crate::kme::config::parse(text, std::path::Path::new("k.toml")).unwrap();
        let m = cfg.links[0].cvqkd.as_ref().unwrap().pe_samples as usize;
        let answer = LinkRequest::Estimate {
            msg: ClassicalMessage::PeAnswer {
                block_id: u64::MAX,
                alice_values: vec![f64::MAX; m],
            },
            reconcile: true,
        };
        let len = encode(&answer).len();
        let limit = body_limit(&cfg.links);
        assert!(len <= limit && limit < len + 128 * 1024, "{len} vs {limit}");
        assert!(
            limit > 2 << 20,
            "above axum's 2 MiB default, which refused it"
        );
    }

    #[test]
    fn requests_round_trip() {
        let r = LinkRequest::Finish {
            msg: ClassicalMessage::Verification {
                block_id: 3,
                frame_ok: vec![true, false],
                pa_seed: 9,
            },
            seq: Some(4),
            leader_bytes: 17,
        };
        let back: LinkRequest = decode(&encode(&r)).unwrap();
        assert!(matches!(
            back,
            LinkRequest::Finish {
                seq: Some(4),
                leader_bytes: 17,
                ..
            }
        ));
        assert!(decode::<LinkRequest>(&[0xff, 0xff]).is_err());
    }
}
