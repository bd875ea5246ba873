//! Packed bit strings: bit `i` is bit `i % 64` of word `i / 64`.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// A bit string of a given length, packed into 64-bit words (unused high bits are zero).
/// Decoding checks both (a peer's message cannot make `get` index past the words).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize, Zeroize)]
#[serde(try_from = "RawBitVec")]
pub struct BitVec {
    words: Vec<u64>,
    len: usize,
}

/// A bit string as decoded, before its words and length are checked against each other.
#[derive(Deserialize)]
struct RawBitVec {
    words: Vec<u64>,
    len: usize,
}

impl TryFrom<RawBitVec> for BitVec {
    type Error = String;

    fn try_from(raw: RawBitVec) -> Result<Self, String> {
        if raw.words.len() != raw.len.div_ceil(64) {
            return Err(format!(
                "a bit string of {} bits in {} words",
                raw.len,
                raw.words.len()
            ));
        }
        let v = BitVec::from_words(raw.words.clone(), raw.len);
        if v.words != raw.words {
            return Err(format!(
                "a bit string of {} bits with bits past its end",
                raw.len
            ));
        }
        Ok(v)
    }
}

impl std::fmt::Debug for BitVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BitVec({} bits)", self.len)
    }
}

impl BitVec {
    /// `len` zero bits.
    pub fn zeros(len: usize) -> Self {
        BitVec {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// The bit string made of `words`, truncated to `len` bits.
    pub fn from_words(mut words: Vec<u64>, len: usize) -> Self {
        words.resize(len.div_ceil(64), 0);
        let mut v = BitVec { words, len };
        v.clear_tail();
        v
    }

    /// Length in bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Bit `i`.
    pub fn get(&self, i: usize) -> bool {
        (self.words[i / 64] >> (i % 64)) & 1 == 1
    }

    /// Set bit `i` to `b`.
    pub fn set(&mut self, i: usize, b: bool) {
        let mask = 1u64 << (i % 64);
        if b {
            self.words[i / 64] |= mask;
        } else {
            self.words[i / 64] &= !mask;
        }
    }

    /// Append all bits of `other`.
    pub fn extend(&mut self, other: &BitVec) {
        for i in 0..other.len {
            self.push(other.get(i));
        }
    }

    /// Append one bit.
    pub fn push(&mut self, b: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.len += 1;
        self.set(self.len - 1, b);
    }

    /// Number of one bits.
    pub fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The bytes of the string, least significant bit of each byte first.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Straight into the result: no second buffer of (possibly key) bytes left unwiped.
        self.words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(self.len.div_ceil(8))
            .collect()
    }

    fn clear_tail(&mut self) {
        let r = self.len % 64;
        if r != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << r) - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `cvqkd_wire` fuzz target: a bit string decoded from a peer's message
    /// could claim more bits than its words hold (`get` then indexed past them: a panic in
    /// the link task reading a follower's bases or syndromes) or carry set bits past its
    /// length. Decoding refuses both; a consistent string round-trips.
    #[test]
    fn decoding_refuses_an_inconsistent_bit_string() {
        let lying = BitVec {
            words: vec![],
            len: 8,
        };
        let bytes = postcard::to_stdvec(&lying).unwrap();
        assert!(
            postcard::from_bytes::<BitVec>(&bytes).is_err(),
            "8 bits in 0 words"
        );
        let dirty = BitVec {
            words: vec![u64::MAX],
            len: 3,
        };
        let bytes = postcard::to_stdvec(&dirty).unwrap();
        assert!(
            postcard::from_bytes::<BitVec>(&bytes).is_err(),
            "bits past the end"
        );
        let good = BitVec::from_words(vec![0b101, 7], 70);
        let back: BitVec = postcard::from_bytes(&postcard::to_stdvec(&good).unwrap()).unwrap();
        assert_eq!(back, good);
        assert!(back.get(66) && !back.get(69));
    }
}
