//! ML-KEM-768 (FIPS 203): key pairs, encapsulation to a public key, decapsulation.

use super::{CryptoError, Secret};
use aws_lc_rs::kem::{Ciphertext, DecapsulationKey, EncapsulationKey, ML_KEM_768};
use std::fmt;

/// Encapsulation (public) key length in bytes.
pub const MLKEM768_PUBLIC_BYTES: usize = 1184;
/// Decapsulation (private) key length in bytes (FIPS 203 expanded form).
pub const MLKEM768_SECRET_BYTES: usize = 2400;
/// Ciphertext length in bytes.
pub const MLKEM768_CIPHERTEXT_BYTES: usize = 1088;

/// An ML-KEM-768 encapsulation key.
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublic(pub Vec<u8>);

impl fmt::Debug for KemPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemPublic({} bytes)", self.0.len())
    }
}

/// An ML-KEM-768 decapsulation key with its public half.
pub struct KemSecret {
    key: DecapsulationKey,
    public: KemPublic,
}

impl fmt::Debug for KemSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KemSecret([redacted])")
    }
}

impl KemPublic {
    /// Checks the length, the FIPS 203 §7.2 modulus check, and that the backend accepts it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        parse_encapsulation_key(bytes)?;
        Ok(Self(bytes.to_vec()))
    }

    /// Encapsulates a fresh shared secret to this key: (ciphertext, shared secret).
    pub fn encapsulate(&self) -> Result<(Vec<u8>, Secret<32>), CryptoError> {
        let ek = parse_encapsulation_key(&self.0)?;
        let (ct, ss) = ek
            .encapsulate()
            .map_err(|_| CryptoError::Backend("ML-KEM encapsulate"))?;
        let ss = Secret::from_slice(ss.as_ref())
            .ok_or(CryptoError::Backend("ML-KEM shared secret length"))?;
        Ok((ct.as_ref().to_vec(), ss))
    }
}

/// Bytes of the encoded vector t̂ at the start of an encapsulation key (k = 3 polynomials of
/// 256 twelve-bit coefficients); the 32-byte seed ρ follows.
const T_HAT_BYTES: usize = 1152;
/// The ML-KEM modulus q.
const Q: u16 = 3329;

/// FIPS 203 §7.2 input check on an encapsulation key: the length, and the modulus check
/// (every 12-bit coefficient of t̂ below q, i.e. ByteEncode12(ByteDecode12(t̂)) = t̂).
/// aws-lc-rs's `EncapsulationKey::new` does not run the modulus check (AWS-LC runs it only at
/// encapsulation, reported as an unspecified failure), so a malformed peer key would pass
/// config validation and fail at the first handshake; it is checked here instead.
fn parse_encapsulation_key(bytes: &[u8]) -> Result<EncapsulationKey, CryptoError> {
    let bad = CryptoError::BadPublicKey("ML-KEM-768");
    if bytes.len() != MLKEM768_PUBLIC_BYTES {
        return Err(bad);
    }
    let in_range = bytes[..T_HAT_BYTES].chunks_exact(3).all(|c| {
        let lo = u16::from(c[0]) | (u16::from(c[1] & 0x0f) << 8);
        let hi = u16::from(c[1] >> 4) | (u16::from(c[2]) << 4);
        lo < Q && hi < Q
    });
    if !in_range {
        return Err(bad);
    }
    EncapsulationKey::new(&ML_KEM_768, bytes).map_err(|_| bad)
}

impl KemSecret {
    /// A fresh random key pair.
    pub fn generate() -> Result<Self, CryptoError> {
        let key = DecapsulationKey::generate(&ML_KEM_768)
            .map_err(|_| CryptoError::Backend("ML-KEM key generation"))?;
        Self::from_key(key)
    }

    /// Loads a decapsulation key from its 2400-byte FIPS 203 encoding
    /// `dk_pke(1152) ‖ ek(1184) ‖ H(ek)(32) ‖ z(32)`, checking the embedded hash of `ek`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        const EK_START: usize = 1152;
        const EK_END: usize = EK_START + MLKEM768_PUBLIC_BYTES;
        if bytes.len() != MLKEM768_SECRET_BYTES {
            return Err(CryptoError::BadPrivateKey("ML-KEM-768"));
        }
        let ek = &bytes[EK_START..EK_END];
        let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA3_256, ek);
        if h.as_ref() != &bytes[EK_END..EK_END + 32] {
            return Err(CryptoError::BadPrivateKey("ML-KEM-768"));
        }
        let key = DecapsulationKey::new(&ML_KEM_768, bytes)
            .map_err(|_| CryptoError::BadPrivateKey("ML-KEM-768"))?;
        Ok(Self {
            key,
            public: KemPublic::from_bytes(ek)?,
        })
    }

    fn from_key(key: DecapsulationKey) -> Result<Self, CryptoError> {
        let ek = key
            .encapsulation_key()
            .map_err(|_| CryptoError::Backend("ML-KEM public key"))?;
        let bytes = ek
            .key_bytes()
            .map_err(|_| CryptoError::Backend("ML-KEM public key bytes"))?;
        Ok(Self {
            key,
            public: KemPublic(bytes.as_ref().to_vec()),
        })
    }

    /// The 2400-byte private encoding (for the identity file); zeroized by the caller.
    pub fn to_bytes(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
        let b = self
            .key
            .key_bytes()
            .map_err(|_| CryptoError::Backend("ML-KEM export"))?;
        Ok(zeroize::Zeroizing::new(b.as_ref().to_vec()))
    }

    /// The public half.
    pub fn public(&self) -> &KemPublic {
        &self.public
    }

    /// Recovers the shared secret from a ciphertext. ML-KEM never reports a wrong
    /// ciphertext (implicit rejection): a mismatch shows only at key confirmation.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<Secret<32>, CryptoError> {
        if ciphertext.len() != MLKEM768_CIPHERTEXT_BYTES {
            return Err(CryptoError::BadCiphertext);
        }
        let ss = self
            .key
            .decapsulate(Ciphertext::from(ciphertext))
            .map_err(|_| CryptoError::BadCiphertext)?;
        Secret::from_slice(ss.as_ref()).ok_or(CryptoError::Backend("ML-KEM shared secret length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encapsulate_decapsulate_and_reload() {
        let sk = KemSecret::generate().unwrap();
        assert_eq!(sk.public().0.len(), MLKEM768_PUBLIC_BYTES);
        let (ct, ss) = sk.public().encapsulate().unwrap();
        assert_eq!(ct.len(), MLKEM768_CIPHERTEXT_BYTES);
        assert_eq!(sk.decapsulate(&ct).unwrap(), ss);
        let reloaded = KemSecret::from_bytes(&sk.to_bytes().unwrap()).unwrap();
        assert_eq!(reloaded.decapsulate(&ct).unwrap(), ss);
        assert_eq!(reloaded.public(), sk.public());
    }

    #[test]
    fn bad_lengths_are_refused() {
        let sk = KemSecret::generate().unwrap();
        assert_eq!(sk.decapsulate(&[0u8; 10]), Err(CryptoError::BadCiphertext));
        assert!(KemPublic::from_bytes(&[0u8; 100]).is_err());
        assert!(KemSecret::from_bytes(&[0u8; 100]).is_err());
    }

    #[test]
    fn modulus_check_refuses_out_of_range_coefficients() {
        let sk = KemSecret::generate().unwrap();
        let bad = CryptoError::BadPublicKey("ML-KEM-768");
        // First coefficient := q = 3329 = 0xd01 (low 12 bits of bytes 0..2).
        let mut first = sk.public().0.clone();
        first[0] = 0x01;
        first[1] = (first[1] & 0xf0) | 0x0d;
        // Last coefficient of t̂ := 0xfff (high 12 bits of bytes 1149..1152).
        let mut last = sk.public().0.clone();
        last[1150] |= 0xf0;
        last[1151] = 0xff;
        for ek in [first, last] {
            assert_eq!(KemPublic::from_bytes(&ek), Err(bad.clone()));
            assert_eq!(KemPublic(ek).encapsulate().err(), Some(bad.clone()));
        }
        // q − 1 is the largest valid coefficient.
        let mut edge = sk.public().0.clone();
        edge[0] = 0x00;
        edge[1] = (edge[1] & 0xf0) | 0x0d;
        assert!(KemPublic::from_bytes(&edge).is_ok());
    }
}
