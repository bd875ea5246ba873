//! The SAE side of QKD key delivery: the ETSI GS QKD 014 data formats ([`etsi014`]) shared
//! with the KME, the [`KeySource`] trait the daemon fetches keys through, its real mTLS
//! client ([`client::Etsi014Client`]) and its in-memory twin ([`memory::MemoryKme`]).

pub mod client;
pub mod etsi014;
pub mod memory;

use zeroize::Zeroizing;

/// A key as a KME delivered it.
pub struct DeliveredKey {
    /// The ETSI `key_ID`.
    pub key_id: String,
    /// The key bits.
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DeliveredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeliveredKey({}, [redacted])", self.key_id)
    }
}

/// Why no key came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QkdError {
    /// The client could not be built (files, certificates).
    #[error("KME client setup: {0}")]
    Setup(String),
    /// The KME could not be reached or the TLS handshake failed.
    #[error("KME unreachable: {0}")]
    Unreachable(String),
    /// The KME did not answer in time.
    #[error("KME did not answer in time")]
    Timeout,
    /// The KME answered with an error status.
    #[error("KME refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The ETSI error message, if any.
        message: String,
    },
    /// The KME's answer was not what ETSI 014 prescribes.
    #[error("KME answered nonsense: {0}")]
    Malformed(String),
}

/// Where QKD keys come from.
pub trait KeySource: Send + Sync {
    /// A new key shared with `slave_sae` (ETSI `enc_keys`; we are the master SAE).
    fn new_key(&self, slave_sae: &str, size_bits: u32) -> Result<DeliveredKey, QkdError>;
    /// The key `key_id` that `master_sae` obtained for us (ETSI `dec_keys`).
    fn key_by_id(
        &self,
        master_sae: &str,
        key_id: &str,
        size_bits: u32,
    ) -> Result<DeliveredKey, QkdError>;
    /// Where the keys come from, for status and logs.
    fn describe(&self) -> String;
}
