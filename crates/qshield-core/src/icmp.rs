//! The ICMP errors the tunnel itself answers with: "fragmentation needed" (ICMPv4 type 3
//! code 4) and "packet too big" (ICMPv6 type 2) for an inner packet larger than the tunnel
//! MTU, so the sender's path-MTU discovery adapts, as a kernel tunnel's would. Pure
//! functions: the I/O layer writes the result back into the TUN.
//!
//! IPv4 packets without "don't fragment" get the error too: the tunnel does not fragment
//! inner packets, so it drops them as well, and the sender's kernel lowers its path MTU on
//! the error and fragments at the source from then on.
//!
//! No error is made for a packet that must not get one (RFC 1122 §3.2.2, RFC 4443 §2.4): an
//! ICMP error itself, a non-first IPv4 fragment, a packet from an unspecified, multicast or
//! broadcast source, or one to a multicast or broadcast address.

use std::net::{Ipv4Addr, Ipv6Addr};

/// IPv4 header bytes without options.
const IPV4_HEADER_BYTES: usize = 20;
/// IPv6 fixed header bytes.
const IPV6_HEADER_BYTES: usize = 40;
/// ICMP header bytes (type, code, checksum, 4 bytes of type-specific data).
const ICMP_HEADER_BYTES: usize = 8;
/// Bytes of the original datagram beyond its IPv4 header an ICMPv4 error quotes (the
/// transport ports and, for TCP, the sequence number the sender checks).
const ICMPV4_QUOTED_PAYLOAD_BYTES: usize = 8;
/// An ICMPv6 error quotes as much of the original as fits in the minimum IPv6 MTU.
const IPV6_MIN_MTU_BYTES: usize = 1280;
/// Hop limit / TTL of the errors we send.
const HOP_LIMIT: u8 = 64;
/// IPv4 fragment offset bits.
const IPV4_OFFSET_MASK: u16 = 0x1fff;
/// IP protocol numbers.
const PROTO_ICMPV4: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// The error answering `original` (an inner packet, or at least its first bytes, read from
/// the TUN) that was too large for a tunnel MTU of `mtu` bytes. `None` when the original must
/// get no error, is not IPv4/IPv6, or is too short to quote.
///
/// The error comes from the original's destination: it is written into the TUN, and the
/// kernel drops an arriving packet whose source is one of its own addresses (such as the
/// tunnel interface's), while the destination is routed through the tunnel, so the
/// reverse-path check passes.
pub fn packet_too_big(original: &[u8], mtu: u16) -> Option<Vec<u8>> {
    match original.first()? >> 4 {
        4 => fragmentation_needed_v4(original, mtu),
        6 => packet_too_big_v6(original, mtu),
        _ => None,
    }
}

fn fragmentation_needed_v4(original: &[u8], mtu: u16) -> Option<Vec<u8>> {
    let header_len = usize::from(original[0] & 0x0f) * 4;
    if header_len < IPV4_HEADER_BYTES || original.len() < header_len {
        return None;
    }
    let flags_offset = u16::from_be_bytes([original[6], original[7]]);
    if flags_offset & IPV4_OFFSET_MASK != 0 {
        return None; // only the first fragment may get an error
    }
    let protocol = original[9];
    let src = Ipv4Addr::new(original[12], original[13], original[14], original[15]);
    let dst = Ipv4Addr::new(original[16], original[17], original[18], original[19]);
    if src.is_unspecified() || src.is_multicast() || src.is_broadcast() {
        return None;
    }
    if dst.is_multicast() || dst.is_broadcast() {
        return None;
    }
    if protocol == PROTO_ICMPV4 && is_icmpv4_error(original.get(header_len).copied()) {
        return None;
    }
    let quoted = &original[..original.len().min(header_len + ICMPV4_QUOTED_PAYLOAD_BYTES)];
    let total = IPV4_HEADER_BYTES + ICMP_HEADER_BYTES + quoted.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&[0x45, 0xc0]); // version 4, IHL 5; DSCP CS6 as routers use
    out.extend_from_slice(&(total as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // identification, flags, offset
    out.extend_from_slice(&[HOP_LIMIT, PROTO_ICMPV4, 0, 0]);
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&src.octets());
    let header_sum = internet_checksum(&[&out[..IPV4_HEADER_BYTES]], 0);
    out[10..12].copy_from_slice(&header_sum.to_be_bytes());
    out.extend_from_slice(&[3, 4, 0, 0, 0, 0]); // destination unreachable, fragmentation needed
    out.extend_from_slice(&mtu.to_be_bytes());
    out.extend_from_slice(quoted);
    let icmp_sum = internet_checksum(&[&out[IPV4_HEADER_BYTES..]], 0);
    out[IPV4_HEADER_BYTES + 2..IPV4_HEADER_BYTES + 4].copy_from_slice(&icmp_sum.to_be_bytes());
    Some(out)
}

fn packet_too_big_v6(original: &[u8], mtu: u16) -> Option<Vec<u8>> {
    if original.len() < IPV6_HEADER_BYTES {
        return None;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&original[8..24]).ok()?);
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&original[24..40]).ok()?);
    if src.is_unspecified() || src.is_multicast() || dst.is_multicast() {
        return None;
    }
    // an ICMPv6 error (types below 128) right after the fixed header gets none
    if original[6] == PROTO_ICMPV6 && original.get(IPV6_HEADER_BYTES).is_some_and(|&t| t < 128) {
        return None;
    }
    let room = IPV6_MIN_MTU_BYTES - IPV6_HEADER_BYTES - ICMP_HEADER_BYTES;
    let quoted = &original[..original.len().min(room)];
    let icmp_len = ICMP_HEADER_BYTES + quoted.len();
    let from = dst;
    let mut out = Vec::with_capacity(IPV6_HEADER_BYTES + icmp_len);
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&(icmp_len as u16).to_be_bytes());
    out.extend_from_slice(&[PROTO_ICMPV6, HOP_LIMIT]);
    out.extend_from_slice(&from.octets());
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&[2, 0, 0, 0]); // packet too big
    let mtu = u32::from(mtu).max(IPV6_MIN_MTU_BYTES as u32);
    out.extend_from_slice(&mtu.to_be_bytes());
    out.extend_from_slice(quoted);
    let pseudo_len = (icmp_len as u32).to_be_bytes();
    let pseudo = [
        &from.octets()[..],
        &src.octets()[..],
        &pseudo_len[..],
        &[0, 0, 0, PROTO_ICMPV6],
    ];
    let mut parts: Vec<&[u8]> = pseudo.to_vec();
    parts.push(&out[IPV6_HEADER_BYTES..]);
    let sum = internet_checksum(&parts, 0);
    out[IPV6_HEADER_BYTES + 2..IPV6_HEADER_BYTES + 4].copy_from_slice(&sum.to_be_bytes());
    Some(out)
}

/// ICMPv4 types that are errors (destination unreachable, source quench, redirect, time
/// exceeded, parameter problem); `None` (no ICMP header) counts as one, to be safe.
fn is_icmpv4_error(icmp_type: Option<u8>) -> bool {
    icmp_type.is_none_or(|t| matches!(t, 3 | 4 | 5 | 11 | 12))
}

/// The Internet checksum (RFC 1071) over `parts` read as one byte string, each part of even
/// length but the last; `initial` is added first.
fn internet_checksum(parts: &[&[u8]], initial: u32) -> u16 {
    let mut sum = initial;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(len: usize, df: bool) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        if df {
            p[6] = 0x40;
        }
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[198, 19, 0, 1]);
        p[16..20].copy_from_slice(&[198, 19, 0, 2]);
        p[20..28].copy_from_slice(&[0x9c, 0x40, 0x14, 0x51, 1, 2, 3, 4]); // ports, seq
        p
    }

    fn ipv6_udp(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p[6] = 17;
        p[7] = 64;
        p[8..24].copy_from_slice(&"fd00:5159::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"fd00:5159::2".parse::<Ipv6Addr>().unwrap().octets());
        p
    }

    #[test]
    fn fragmentation_needed_quotes_the_header_and_8_bytes_with_valid_checksums() {
        let original = ipv4_tcp(1500, true);
        let e = packet_too_big(&original, 1420).unwrap();
        assert_eq!(e.len(), 20 + 8 + 28);
        assert_eq!(internet_checksum(&[&e[..20]], 0), 0, "IPv4 header checksum");
        assert_eq!(internet_checksum(&[&e[20..]], 0), 0, "ICMP checksum");
        assert_eq!(
            &e[12..16],
            &[198, 19, 0, 2],
            "from the original's destination"
        );
        assert_eq!(&e[16..20], &[198, 19, 0, 1], "to the sender");
        assert_eq!((e[9], e[20], e[21]), (1, 3, 4));
        assert_eq!(u16::from_be_bytes([e[26], e[27]]), 1420, "next-hop MTU");
        assert_eq!(&e[28..], &original[..28]);
    }

    #[test]
    fn packet_too_big_quotes_up_to_the_minimum_mtu_with_a_valid_checksum() {
        let original = ipv6_udp(1500);
        let e = packet_too_big(&original, 1420).unwrap();
        assert_eq!(e.len(), 1280);
        assert_eq!((e[6], e[40], e[41]), (58, 2, 0));
        assert_eq!(u32::from_be_bytes([e[44], e[45], e[46], e[47]]), 1420);
        assert_eq!(&e[24..40], &original[8..24], "to the sender");
        assert_eq!(
            &e[8..24],
            &original[24..40],
            "from the original's destination"
        );
        let len = (e.len() - 40) as u32;
        let pseudo = [
            &e[8..24],
            &e[24..40],
            &len.to_be_bytes()[..],
            &[0, 0, 0, 58],
        ];
        let mut parts: Vec<&[u8]> = pseudo.to_vec();
        parts.push(&e[40..]);
        assert_eq!(internet_checksum(&parts, 0), 0);
        assert_eq!(&e[48..], &original[..1280 - 48]);
        // a short read (only the start of the packet) still gets an answer
        let e = packet_too_big(&original[..100], 1300).unwrap();
        assert_eq!(e.len(), 48 + 100);
    }

    #[test]
    fn no_error_for_errors_fragments_multicast_or_junk() {
        let mut later_fragment = ipv4_tcp(1500, false);
        later_fragment[7] = 10;
        assert!(packet_too_big(&later_fragment, 1420).is_none());
        let mut icmp_error = ipv4_tcp(1500, true);
        icmp_error[9] = 1;
        icmp_error[20] = 3;
        assert!(packet_too_big(&icmp_error, 1420).is_none());
        let mut echo = icmp_error.clone();
        echo[20] = 8;
        assert!(
            packet_too_big(&echo, 1420).is_some(),
            "an echo request gets one"
        );
        let mut to_multicast = ipv4_tcp(1500, true);
        to_multicast[16] = 224;
        assert!(packet_too_big(&to_multicast, 1420).is_none());
        let mut from_zero = ipv4_tcp(1500, true);
        from_zero[12..16].copy_from_slice(&[0; 4]);
        assert!(packet_too_big(&from_zero, 1420).is_none());
        let mut v6_error = ipv6_udp(1500);
        v6_error[6] = 58;
        v6_error[40] = 1;
        assert!(packet_too_big(&v6_error, 1420).is_none());
        assert!(packet_too_big(&[], 1420).is_none());
        assert!(packet_too_big(&[0x45; 10], 1420).is_none());
        assert!(packet_too_big(&[0x60; 39], 1420).is_none());
        assert!(packet_too_big(&[0x10; 100], 1420).is_none());
    }

    #[test]
    fn an_ipv4_packet_without_df_gets_one_too() {
        // the tunnel does not fragment inner packets: it drops this one too, and Linux
        // lowers its route's path MTU on the error and fragments at the source from then on
        let e = packet_too_big(&ipv4_tcp(1500, false), 1420).unwrap();
        assert_eq!((e[20], e[21]), (3, 4));
    }
}
