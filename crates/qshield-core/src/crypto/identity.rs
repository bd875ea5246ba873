//! A site's static identity: an X25519 key and an ML-KEM-768 key. The public identity is the
//! pair of public keys, written as one base64 string (`x25519 ‖ mlkem768`, 1216 bytes).

use super::dh::{DhPublic, DhSecret, X25519_PUBLIC_BYTES};
use super::kem::{KemPublic, KemSecret, MLKEM768_PUBLIC_BYTES};
use super::{CryptoError, kdf};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;

/// Length of an encoded public identity in bytes (before base64).
pub const PUBLIC_IDENTITY_BYTES: usize = X25519_PUBLIC_BYTES + MLKEM768_PUBLIC_BYTES;

/// The private half of a site identity.
#[derive(Debug)]
pub struct StaticIdentity {
    /// Static X25519 key.
    pub dh: DhSecret,
    /// Static ML-KEM-768 key.
    pub kem: KemSecret,
}

/// The public half of a site identity, as configured for a peer.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicIdentity {
    /// Static X25519 public key (also the peer's lookup key).
    pub dh: DhPublic,
    /// Static ML-KEM-768 encapsulation key.
    pub kem: KemPublic,
}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity({})", self.fingerprint())
    }
}

impl StaticIdentity {
    /// A fresh random identity.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self {
            dh: DhSecret::generate()?,
            kem: KemSecret::generate()?,
        })
    }

    /// The public half.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            dh: self.dh.public(),
            kem: self.kem.public().clone(),
        }
    }
}

/// Why a public identity string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublicIdentityError {
    /// Not valid base64.
    #[error("not valid base64")]
    Base64,
    /// Decoded to the wrong number of bytes.
    #[error("decodes to {0} bytes, expected {PUBLIC_IDENTITY_BYTES} (X25519 32 + ML-KEM-768 1184)")]
    Length(usize),
    /// The ML-KEM key was rejected.
    #[error("{0}")]
    Key(#[from] CryptoError),
}

impl PublicIdentity {
    /// The 1216-byte encoding `x25519 ‖ mlkem768`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(PUBLIC_IDENTITY_BYTES);
        v.extend_from_slice(&self.dh.0);
        v.extend_from_slice(&self.kem.0);
        v
    }

    /// Parses the 1216-byte encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PublicIdentityError> {
        if bytes.len() != PUBLIC_IDENTITY_BYTES {
            return Err(PublicIdentityError::Length(bytes.len()));
        }
        let (dh, kem) = bytes.split_at(X25519_PUBLIC_BYTES);
        let mut d = [0u8; X25519_PUBLIC_BYTES];
        d.copy_from_slice(dh);
        Ok(Self {
            dh: DhPublic(d),
            kem: KemPublic::from_bytes(kem)?,
        })
    }

    /// Standard base64 of [`PublicIdentity::to_bytes`], as written in configs.
    pub fn to_base64(&self) -> String {
        B64.encode(self.to_bytes())
    }

    /// Parses the base64 form (surrounding whitespace ignored).
    pub fn from_base64(s: &str) -> Result<Self, PublicIdentityError> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = B64
            .decode(compact)
            .map_err(|_| PublicIdentityError::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// A short fingerprint for logs: first 8 bytes of SHA-256 of the encoding, hex.
    pub fn fingerprint(&self) -> String {
        let h = kdf::hash(&[&self.to_bytes()]);
        h[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// SHA-256 of the encoding: binds the whole identity into the transcript.
    pub fn digest(&self) -> [u8; 32] {
        kdf::hash(&[&self.to_bytes()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_errors() {
        let id = StaticIdentity::generate().unwrap();
        let p = id.public();
        assert_eq!(PublicIdentity::from_base64(&p.to_base64()).unwrap(), p);
        assert_eq!(
            PublicIdentity::from_base64("!!"),
            Err(PublicIdentityError::Base64)
        );
        assert_eq!(
            PublicIdentity::from_base64("AAAA"),
            Err(PublicIdentityError::Length(3))
        );
    }
}
