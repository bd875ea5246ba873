//! Secret memory: fixed-size byte arrays that zeroize on drop and never print their value.

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// `N` secret bytes. Debug and Display print `[redacted]`; memory is zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Secret<const N: usize>([u8; N]);

impl<const N: usize> Secret<N> {
    /// Wraps bytes (the caller's copy should be zeroized by the caller).
    pub fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Copies from a slice of exactly `N` bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; N] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// All-zero secret (a placeholder input to a KDF, documented where used).
    pub fn zero() -> Self {
        Self([0; N])
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<const N: usize> fmt::Display for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_bytes() {
        let s = Secret::new([0x41u8; 4]);
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }

    /// Compiles only if `T` zeroizes itself when dropped.
    fn assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}

    /// Compiles only if the value's type zeroizes itself when dropped (for struct fields).
    fn assert_field_zeroizes_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    #[test]
    fn secret_types_zeroize_on_drop() {
        assert_zeroize_on_drop::<Secret<16>>();
        assert_zeroize_on_drop::<Secret<32>>();
        // QKD key material as the daemon holds it (the KME store's own key type is checked in kme::store)
        assert_zeroize_on_drop::<zeroize::Zeroizing<Vec<u8>>>();
    }

    /// Never called: type-checks that every secret field of the protocol's key types is of a
    /// type that zeroizes on drop, so dropping the struct wipes them.
    #[allow(dead_code)]
    fn secret_fields_zeroize_on_drop(
        keys: &crate::proto::handshake::SessionKeys,
        qkd: &crate::proto::handshake::QkdKey,
    ) {
        assert_field_zeroizes_on_drop(&keys.send);
        assert_field_zeroizes_on_drop(&keys.receive);
        assert_field_zeroizes_on_drop(&qkd.material);
    }

    #[test]
    fn zeroize_clears_the_bytes() {
        let mut s = Secret::new([0xa5u8; 32]);
        s.zeroize();
        assert_eq!(s.expose(), &[0u8; 32]);
        let mut s = Secret::<7>::from_slice(&[0xff; 7]).unwrap();
        s.zeroize();
        assert_eq!(s.expose(), &[0u8; 7]);
    }
}
