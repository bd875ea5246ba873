//! The framing of a raw datagram list, the input format of the targets' raw modes and of
//! their seed files: each datagram is its length (u16, little-endian) and its bytes; a
//! truncated last frame keeps the bytes there are.

/// Splits `data` into the datagrams it frames.
pub fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
        let end = (2 + len).min(data.len());
        out.push(&data[2..end]);
        data = &data[end..];
    }
    out
}

/// Frames `datagrams` (the inverse of [`split`]).
pub fn join<'a>(datagrams: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for d in datagrams {
        let len = u16::try_from(d.len()).expect("a datagram under 64 KiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(d);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_inverts_join() {
        let d: [&[u8]; 3] = [b"ab", b"", b"xyz"];
        assert_eq!(super::split(&super::join(d)), d.to_vec());
    }
}
