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
}
