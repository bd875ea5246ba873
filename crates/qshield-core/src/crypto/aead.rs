//! AEAD packet keys: AES-256-GCM (default) or ChaCha20-Poly1305, with a 96-bit nonce made of
//! four zero bytes and the 64-bit little-endian packet counter (as WireGuard does).

use super::{CryptoError, Secret};
use aws_lc_rs::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use std::fmt;
use std::str::FromStr;

/// The data-plane cipher. Both peers must use the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CipherSuite {
    /// AES-256-GCM: fastest where AES-NI/VAES exist; packet cap per key applies.
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305: constant-time without AES hardware.
    ChaCha20Poly1305,
}

impl CipherSuite {
    /// The name used in configs and status (`aes-256-gcm`, `chacha20-poly1305`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }

    /// The one-byte identifier carried in the handshake.
    pub fn wire_id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
            Self::ChaCha20Poly1305 => 2,
        }
    }

    /// Inverse of [`CipherSuite::wire_id`].
    pub fn from_wire_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Aes256Gcm),
            2 => Some(Self::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Packets one key may seal (the AEAD usage limit; see `constants`).
    pub fn max_packets_per_key(self) -> u64 {
        use crate::constants::*;
        match self {
            Self::Aes256Gcm => AES_GCM_MAX_PACKETS_PER_KEY,
            Self::ChaCha20Poly1305 => CHACHA_MAX_PACKETS_PER_KEY,
        }
    }

    /// Failed openings one key tolerates before it is dropped (integrity limit).
    pub fn max_forgeries_per_key(self) -> u64 {
        use crate::constants::*;
        match self {
            Self::Aes256Gcm => AES_GCM_MAX_FORGERIES_PER_KEY,
            Self::ChaCha20Poly1305 => CHACHA_MAX_FORGERIES_PER_KEY,
        }
    }

    fn algorithm(self) -> &'static aws_lc_rs::aead::Algorithm {
        match self {
            Self::Aes256Gcm => &AES_256_GCM,
            Self::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        }
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The cipher name was not one of the supported suites.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown cipher '{0}' (expected \"aes-256-gcm\" or \"chacha20-poly1305\")")]
pub struct UnknownCipher(pub String);

impl FromStr for CipherSuite {
    type Err = UnknownCipher;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aes-256-gcm" => Ok(Self::Aes256Gcm),
            "chacha20-poly1305" => Ok(Self::ChaCha20Poly1305),
            other => Err(UnknownCipher(other.to_string())),
        }
    }
}

/// One direction's AEAD key. Nonces are packet counters; the caller guarantees uniqueness.
pub struct PacketKey {
    key: LessSafeKey,
    suite: CipherSuite,
}

impl fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketKey({}, [redacted])", self.suite)
    }
}

/// The 96-bit nonce for a packet counter: 4 zero bytes then the counter, little-endian.
pub fn counter_nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

impl PacketKey {
    /// A key for `suite` from 32 secret bytes.
    pub fn new(suite: CipherSuite, key: &Secret<32>) -> Self {
        let unbound = UnboundKey::new(suite.algorithm(), key.expose())
            .expect("32-byte key is valid for both suites");
        Self {
            key: LessSafeKey::new(unbound),
            suite,
        }
    }

    /// The suite of this key.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Encrypts `in_out` in place and returns the 16-byte tag.
    pub fn seal(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
        let nonce = Nonce::assume_unique_for_key(counter_nonce(counter));
        let tag: Tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), in_out)
            .expect("AEAD seal cannot fail for in-range lengths");
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypts `in_out` (ciphertext followed by the tag) in place; returns the plaintext
    /// length (the input length minus the tag).
    pub fn open(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> Result<usize, CryptoError> {
        let nonce = Nonce::assume_unique_for_key(counter_nonce(counter));
        self.key
            .open_in_place(nonce, Aad::from(aad), in_out)
            .map(|pt| pt.len())
            .map_err(|_| CryptoError::BadTag)
    }

    /// Seals `plaintext` into a new vector `ciphertext ‖ tag` (handshake use, not per packet).
    pub fn seal_to_vec(&self, counter: u64, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut buf = plaintext.to_vec();
        let tag = self.seal(counter, aad, &mut buf);
        buf.extend_from_slice(&tag);
        buf
    }

    /// Opens `ciphertext ‖ tag` into a new vector (handshake use, not per packet).
    pub fn open_to_vec(
        &self,
        counter: u64,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut buf = sealed.to_vec();
        let n = self.open(counter, aad, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_both_suites() {
        for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
            let key = PacketKey::new(suite, &Secret::new([3u8; 32]));
            let sealed = key.seal_to_vec(7, b"hdr", b"hello");
            assert_eq!(key.open_to_vec(7, b"hdr", &sealed).unwrap(), b"hello");
            assert_eq!(
                key.open_to_vec(8, b"hdr", &sealed),
                Err(CryptoError::BadTag)
            );
            assert_eq!(
                key.open_to_vec(7, b"hdX", &sealed),
                Err(CryptoError::BadTag)
            );
            let mut bad = sealed.clone();
            bad[0] ^= 1;
            assert_eq!(key.open_to_vec(7, b"hdr", &bad), Err(CryptoError::BadTag));
        }
    }

    #[test]
    fn names_round_trip() {
        for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
            assert_eq!(suite.name().parse::<CipherSuite>().unwrap(), suite);
            assert_eq!(CipherSuite::from_wire_id(suite.wire_id()), Some(suite));
        }
        assert!("aes-128-gcm".parse::<CipherSuite>().is_err());
    }
}
