//! Cryptographic primitives as typed values: AEAD packet keys, X25519, ML-KEM-768, the
//! HKDF/HMAC/SHA-256 helpers of the key schedule, secret memory, randomness. Backend:
//! aws-lc-rs. Every KDF label lives in [`labels`].

pub mod aead;
pub mod dh;
pub mod identity;
pub mod kdf;
pub mod kem;
pub mod labels;
pub mod random;
pub mod secret;

pub use aead::{CipherSuite, PacketKey};
pub use identity::{PublicIdentity, StaticIdentity};
pub use secret::Secret;

/// A primitive refused its input or failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// AEAD open failed: wrong key, tampered bytes or truncated input.
    #[error("authentication failed")]
    BadTag,
    /// A public key had the wrong length or was rejected by the backend.
    #[error("invalid {0} public key")]
    BadPublicKey(&'static str),
    /// A private key had the wrong length or was rejected by the backend.
    #[error("invalid {0} private key")]
    BadPrivateKey(&'static str),
    /// An X25519 result was all zeros (a low-order public key).
    #[error("X25519 produced the all-zero shared secret (low-order public key)")]
    LowOrderPoint,
    /// A KEM ciphertext had the wrong length.
    #[error("invalid ML-KEM-768 ciphertext")]
    BadCiphertext,
    /// The backend reported an internal failure (random generation, key generation).
    #[error("crypto backend failure: {0}")]
    Backend(&'static str),
}
