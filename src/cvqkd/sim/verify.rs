//! Error verification: a polynomial hash over GF(2^64) (Wegman–Carter style, cvqkd-physics.md
//! §6.1 step 7).
//!
//! Why this hash and not HMAC-SHA-256: it is ε-universal with no computational assumption
//! (two different messages of L words collide for at most L+1 of the 2^64 keys), so the
//! probability that a wrongly decoded frame passes is at most (L+1)/2^64 for a key drawn
//! after the frame is fixed; the public tag leaks exactly 64 bits, which privacy
//! amplification subtracts. HMAC's guarantee would rest on SHA-256 being a PRF.

/// Carry-less product of two field elements reduced modulo x^64 + x^4 + x^3 + x + 1.
pub fn gf64_mul(a: u64, b: u64) -> u64 {
    let (mut lo, mut hi) = (0u64, 0u64);
    for i in 0..64 {
        if (b >> i) & 1 == 1 {
            lo ^= a << i;
            if i > 0 {
                hi ^= a >> (64 - i);
            }
        }
    }
    let fold = |h: u64| h ^ (h << 1) ^ (h << 3) ^ (h << 4);
    let over = (hi >> 63) ^ (hi >> 61) ^ (hi >> 60);
    lo ^ fold(hi) ^ fold(over)
}

/// The tag of `words` (and their number) under `key`: Horner evaluation of the message
/// polynomial at the key, `acc ← (acc ⊕ w)·key`, with the length as the last block.
pub fn poly_hash(key: u64, words: &[u64]) -> u64 {
    let acc = words.iter().fold(0u64, |acc, &w| gf64_mul(acc ^ w, key));
    gf64_mul(acc ^ words.len() as u64, key)
}

/// Bits each verified frame discloses (the tag).
pub const TAG_BITS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_identities() {
        let (a, b, c) = (
            0x1234_5678_9abc_def0,
            0xfedc_ba98_7654_3210,
            0x0f0f_0f0f_0f0f_0f0f,
        );
        assert_eq!(gf64_mul(a, 1), a);
        assert_eq!(gf64_mul(a, b), gf64_mul(b, a));
        assert_eq!(gf64_mul(a, b ^ c), gf64_mul(a, b) ^ gf64_mul(a, c));
        assert_eq!(gf64_mul(gf64_mul(a, b), c), gf64_mul(a, gf64_mul(b, c)));
        // x^63 · x = x^64 = x^4 + x^3 + x + 1
        assert_eq!(gf64_mul(1 << 63, 2), 0b11011);
    }

    #[test]
    fn one_flipped_bit_changes_the_tag() {
        let words: Vec<u64> = (0..100u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let mut other = words.clone();
        other[37] ^= 1 << 9;
        let key = 0xdead_beef_cafe_f00d;
        assert_ne!(poly_hash(key, &words), poly_hash(key, &other));
        assert_eq!(poly_hash(key, &words), poly_hash(key, &words.clone()));
    }
}
