//! The Internet checksum (RFC 1071): a ones' complement sum of big-endian 16-bit words,
//! accumulated eight bytes at a time into a `u64` and folded at the end.

/// Adds `data` to the running sum `acc`. `data` must start at an even offset of the
/// checksummed range; an odd final byte is padded with zero (so only the last piece of a
/// range may have odd length).
pub fn add(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let rest = chunks.remainder();
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
    }
}
