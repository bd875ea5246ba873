//! Just enough IPv4/IPv6 + TCP/UDP header parsing for segmentation and coalescing.

use super::checksum;

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// Shortest TCP header (data offset 5): its flags and checksum lie within it, so a
/// shorter data offset is refused.
pub const TCP_HEADER_MIN_BYTES: usize = 20;
/// Bytes of a UDP header.
pub const UDP_HEADER_BYTES: usize = 8;
/// Offset of the checksum field in a TCP header.
pub const TCP_CSUM_OFFSET: usize = 16;
/// Offset of the checksum field in a UDP header.
pub const UDP_CSUM_OFFSET: usize = 6;

/// Where the headers of one IP packet end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L4Headers {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// IP header bytes (IPv4 with options; IPv6 fixed header only: no extension headers).
    pub ip_len: usize,
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// TCP header with options, or 8 for UDP.
    pub l4_len: usize,
}

impl L4Headers {
    /// Parses an IP packet whose transport is TCP or UDP directly after the IP header;
    /// `None` for anything else, a TCP data offset below 5, or headers that do not fit.
    pub fn parse(p: &[u8]) -> Option<Self> {
        let (v6, ip_len, proto) = match p.first()? >> 4 {
            4 => {
                let ihl = usize::from(p[0] & 0xf) * 4;
                (ihl >= 20 && p.len() >= ihl).then_some(())?;
                (false, ihl, p[9])
            }
            6 if p.len() >= 40 => (true, 40, p[6]),
            _ => return None,
        };
        let (l4_len, min) = match proto {
            PROTO_TCP => (
                usize::from(*p.get(ip_len + 12)? >> 4) * 4,
                TCP_HEADER_MIN_BYTES,
            ),
            PROTO_UDP => (UDP_HEADER_BYTES, UDP_HEADER_BYTES),
            _ => return None,
        };
        (l4_len >= min && p.len() >= ip_len + l4_len).then_some(Self {
            v6,
            ip_len,
            proto,
            l4_len,
        })
    }

    /// IP plus transport header bytes.
    pub fn total(&self) -> usize {
        self.ip_len + self.l4_len
    }

    /// Offset of the transport checksum field.
    pub fn csum_at(&self) -> usize {
        self.ip_len
            + if self.proto == PROTO_TCP {
                TCP_CSUM_OFFSET
            } else {
                UDP_CSUM_OFFSET
            }
    }

    /// The source and destination address bytes.
    pub fn addresses<'a>(&self, p: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        if self.v6 {
            (&p[8..24], &p[24..40])
        } else {
            (&p[12..16], &p[16..20])
        }
    }

    /// Running sum of the pseudo-header for a transport segment of `l4_len` bytes.
    pub fn pseudo_sum(&self, p: &[u8], l4_len: usize) -> u64 {
        let (s, d) = self.addresses(p);
        checksum::pseudo_header(s, d, self.proto, l4_len)
    }

    /// Writes the IP length fields for a packet of `len` bytes in total.
    pub fn set_ip_length(&self, p: &mut [u8], len: usize) {
        if self.v6 {
            p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        } else {
            p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
    }
}

/// Recomputes the IPv4 header checksum of `header` (the whole header, options included).
pub fn set_ipv4_checksum(header: &mut [u8]) {
    header[10..12].fill(0);
    let c = checksum::finish(checksum::add(header, 0));
    header[10..12].copy_from_slice(&c.to_be_bytes());
}

/// True when the IPv4 header checksum of `header` verifies.
pub fn ipv4_checksum_ok(header: &[u8]) -> bool {
    checksum::fold(checksum::add(header, 0)) == 0xffff
}

/// Big-endian `u16` at `i`.
pub fn be16(p: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([p[i], p[i + 1]])
}

/// Big-endian `u32` at `i`.
pub fn be32(p: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]])
}
