//! The Internet checksum (RFC 1071): a ones' complement sum of big-endian 16-bit words,
//! accumulated eight bytes at a time into a `u64` and folded at the end.

/// Adds `data` to the running sum `acc`. `data` must start at an even offset of the
/// checksummed range; an odd final byte is padded with zero (so only the last piece of a
/// range may have odd length).
///
/// The bulk is summed as native-endian 32-bit halves of 64-bit words and byte-swapped once
/// at the end (the ones' complement sum does not depend on byte order, RFC 1071 §2(B)).
pub fn add(data: &[u8], acc: u64) -> u64 {
    // 32-bit native words widened into 64-bit lanes: a shape the compiler vectorizes.
    let mut words = data.chunks_exact(4);
    let native: u64 = (&mut words)
        .map(|w| u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    acc + u64::from(to_be_word(fold(native))) + add_tail(words.remainder())
}

/// Copies `src` into `dst` (same length) and returns `acc` plus the sum of the bytes; the
/// same rules as [`add`].
pub fn copy_add(dst: &mut [u8], src: &[u8], acc: u64) -> u64 {
    dst.copy_from_slice(src);
    add(dst, acc)
}

/// A 16-bit sum of native-endian words as the sum of big-endian words.
fn to_be_word(x: u16) -> u16 {
    if cfg!(target_endian = "little") {
        x.swap_bytes()
    } else {
        x
    }
}

/// Big-endian words of a short tail, the odd byte padded.
fn add_tail(rest: &[u8]) -> u64 {
    let mut acc = 0;
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for a running sum: the complement of its fold.
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// The running sum of the TCP/UDP pseudo-header: addresses (4 or 16 bytes each), protocol
/// and the length of the transport header plus payload.
pub fn pseudo_header(src: &[u8], dst: &[u8], proto: u8, l4_len: usize) -> u64 {
    let acc = add(dst, add(src, 0));
    acc + u64::from(proto) + (l4_len as u64 & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // RFC 1071 §3 example bytes.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add(&data, 0)), 0xddf2);
        assert_eq!(fold(add(&[0xff], 0)), 0xff00);
        assert_eq!(finish(0), 0xffff);
        let mut dst = [0u8; 11];
        let src: Vec<u8> = (1..=11).collect();
        assert_eq!(fold(copy_add(&mut dst, &src, 7)), fold(add(&src, 7)));
        assert_eq!(&dst[..], &src[..]);
    }
}
