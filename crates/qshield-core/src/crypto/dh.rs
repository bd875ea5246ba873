//! X25519 Diffie-Hellman: static and ephemeral secrets, public values, agreement.

use super::{CryptoError, Secret};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use std::fmt;

/// X25519 public key length in bytes.
pub const X25519_PUBLIC_BYTES: usize = 32;

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DhPublic(pub [u8; X25519_PUBLIC_BYTES]);

impl fmt::Debug for DhPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DhPublic({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// An X25519 private key (static or ephemeral).
pub struct DhSecret {
    key: PrivateKey,
    public: DhPublic,
}

impl fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DhSecret({:?}, [redacted])", self.public)
    }
}

impl DhSecret {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        let key = PrivateKey::generate(&X25519)
            .map_err(|_| CryptoError::Backend("X25519 key generation"))?;
        Self::from_key(key)
    }

    /// Loads a key from its 32 private bytes.
    pub fn from_bytes(bytes: &Secret<32>) -> Result<Self, CryptoError> {
        let key = PrivateKey::from_private_key(&X25519, bytes.expose())
            .map_err(|_| CryptoError::BadPrivateKey("X25519"))?;
        Self::from_key(key)
    }

    fn from_key(key: PrivateKey) -> Result<Self, CryptoError> {
        let public = key
            .compute_public_key()
            .map_err(|_| CryptoError::Backend("X25519 public key"))?;
        let mut p = [0u8; 32];
        p.copy_from_slice(public.as_ref());
        Ok(Self {
            key,
            public: DhPublic(p),
        })
    }

    /// The 32 private bytes (for writing the identity file).
    pub fn to_bytes(&self) -> Result<Secret<32>, CryptoError> {
        let bytes: Curve25519SeedBin<'static> = self
            .key
            .as_be_bytes()
            .map_err(|_| CryptoError::Backend("X25519 export"))?;
        Secret::from_slice(bytes.as_ref()).ok_or(CryptoError::Backend("X25519 export length"))
    }

    /// The public key.
    pub fn public(&self) -> DhPublic {
        self.public
    }

    /// The shared secret with `peer`; refuses the all-zero result of a low-order point.
    ///
    /// Every 32-byte string is a valid X25519 public key, so the backend fails only where
    /// the result is all zeros (AWS-LC's `X25519()` refuses it itself): that failure is
    /// reported as [`CryptoError::LowOrderPoint`], and the explicit check below stays as a
    /// second line should a backend ever return the zeros instead.
    pub fn agree(&self, peer: &DhPublic) -> Result<Secret<32>, CryptoError> {
        let peer_key = UnparsedPublicKey::new(&X25519, peer.0);
        let shared = agreement::agree(&self.key, peer_key, CryptoError::LowOrderPoint, |s| {
            Secret::<32>::from_slice(s).ok_or(CryptoError::Backend("X25519 shared secret length"))
        })?;
        if shared.expose().iter().all(|&b| b == 0) {
            return Err(CryptoError::LowOrderPoint);
        }
        Ok(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_keys_reload() {
        let a = DhSecret::generate().unwrap();
        let b = DhSecret::generate().unwrap();
        assert_eq!(a.agree(&b.public()).unwrap(), b.agree(&a.public()).unwrap());
        let a2 = DhSecret::from_bytes(&a.to_bytes().unwrap()).unwrap();
        assert_eq!(a2.public(), a.public());
    }

    #[test]
    fn low_order_point_is_refused() {
        let a = DhSecret::generate().unwrap();
        assert_eq!(
            a.agree(&DhPublic([0u8; 32])),
            Err(CryptoError::LowOrderPoint)
        );
    }
}
