//! The key-schedule primitives: SHA-256, HMAC-SHA-256, and HKDF (RFC 5869) written on HMAC
//! so the chaining key stays a plain 32-byte value that tests can pin. Labels: [`super::labels`].

use super::Secret;
use aws_lc_rs::{digest, hmac};

/// Output length of every hash, MAC and KDF step, in bytes.
pub const HASH_BYTES: usize = 32;

/// SHA-256 over the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; HASH_BYTES] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; HASH_BYTES];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// HMAC-SHA-256 keyed by `key` over the concatenation of `parts`.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; HASH_BYTES] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; HASH_BYTES];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// An HMAC-SHA-256 key prepared once (its padded key blocks hashed), for a key that MACs
/// many messages: the mac1 key of every fragment addressed to us.
pub struct HmacKey(hmac::Key);

impl HmacKey {
    /// Prepares `key`.
    pub fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// HMAC-SHA-256 of the concatenated parts under this key.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; HASH_BYTES] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(p);
        }
        let mut out = [0u8; HASH_BYTES];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// HKDF-Extract(salt, ikm) = HMAC(salt, ikm).
pub fn extract(salt: &[u8], ikm: &[u8]) -> Secret<HASH_BYTES> {
    Secret::new(hmac(salt, &[ikm]))
}

/// HKDF-Expand(prk, info, 32): one block, T(1) = HMAC(prk, info ‖ 0x01).
pub fn expand(prk: &Secret<HASH_BYTES>, info: &[u8]) -> Secret<HASH_BYTES> {
    Secret::new(hmac(prk.expose(), &[info, &[1u8]]))
}

/// One chaining step: the new chaining key is HKDF-Extract(salt = ck, ikm = input), with a
/// label prepended to the input so every mixed secret is bound to its role.
pub fn mix(ck: &Secret<HASH_BYTES>, label: &[u8], input: &[u8]) -> Secret<HASH_BYTES> {
    let mut ikm = zeroize::Zeroizing::new(Vec::with_capacity(label.len() + input.len()));
    ikm.extend_from_slice(label);
    ikm.extend_from_slice(input);
    extract(ck.expose(), &ikm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5869_test_case_1_first_block() {
        // RFC 5869 A.1: IKM 22×0x0b, salt 000102…0c, info f0…f9; OKM starts 3cb25f25…
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let prk = extract(&salt, &ikm);
        assert_eq!(
            prk.expose()[..8],
            [0x07, 0x77, 0x09, 0x36, 0x2c, 0x2e, 0x32, 0xdf]
        );
        let okm = expand(&prk, &info);
        assert_eq!(
            okm.expose()[..8],
            [0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a]
        );
    }
}
