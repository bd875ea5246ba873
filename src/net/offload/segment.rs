//! Segmentation (TSO/USO in software): one packet read from a TUN with `IFF_VNET_HDR` —
//! a super-packet of up to 64 KiB, or a single packet whose checksum may be left partial
//! — becomes wire-sized packets, each with complete, correct checksums.
//!
//! A [`Plan`] is made once per read; [`Plan::write`] then writes segment `k` into any
//! buffer, so a caller can stop when its batch is full and resume later.

use super::checksum;
use super::headers::{L4Headers, PROTO_TCP, PROTO_UDP, be16, be32, set_ipv4_checksum};
use super::vnet::{F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, VirtioNetHdr};

/// TCP flags cleared on all segments but the last (FIN, PSH).
const TCP_LAST_ONLY: u8 = 0x01 | 0x08;
/// TCP flag kept on the first segment only (CWR).
const TCP_FIRST_ONLY: u8 = 0x80;

/// Why a packet from the TUN cannot be segmented (it is dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// The headers do not parse, or the virtio header points outside the packet.
    #[error("malformed packet or virtio header")]
    Malformed,
    /// A GSO type qshield never asked for.
    #[error("unsupported GSO type {0}")]
    Unsupported(u8),
}

/// How one packet is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    kind: Kind,
    len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Pass the packet on, completing its partial checksum at `at` (from `start`) if any.
    Whole { csum: Option<(usize, usize)> },
    /// Cut the payload after the headers into `gso_size` pieces.
    Gso { h: L4Headers, gso_size: usize },
}

impl Plan {
    /// The plan for `packet` (the bytes after the virtio header) as `hdr` describes it.
    pub fn new(hdr: &VirtioNetHdr, packet: &[u8]) -> Result<Self, SegmentError> {
        let len = packet.len();
        let kind = match hdr.gso_type {
            GSO_NONE => Kind::Whole {
                csum: csum_range(hdr, len)?,
            },
            t @ (GSO_TCPV4 | GSO_TCPV6 | GSO_UDP_L4) => {
                let h = L4Headers::parse(packet).ok_or(SegmentError::Malformed)?;
                let want_tcp = t != GSO_UDP_L4;
                let proto_ok = (h.proto == PROTO_TCP) == want_tcp;
                let family_ok = t == GSO_UDP_L4 || (t == GSO_TCPV6) == h.v6;
                if !proto_ok || !family_ok || hdr.gso_size == 0 {
                    return Err(SegmentError::Malformed);
                }
                Kind::Gso {
                    h,
                    gso_size: usize::from(hdr.gso_size),
                }
            }
            other => return Err(SegmentError::Unsupported(other)),
        };
        Ok(Self { kind, len })
    }

    /// Number of segments.
    pub fn count(&self) -> usize {
        match self.kind {
            Kind::Whole { .. } => 1,
            Kind::Gso { h, gso_size } => (self.len - h.total()).div_ceil(gso_size).max(1),
        }
    }

    /// Length of segment `k`.
    pub fn segment_len(&self, k: usize) -> usize {
        match self.kind {
            Kind::Whole { .. } => self.len,
            Kind::Gso { h, gso_size } => {
                let payload = self.len - h.total();
                h.total() + (payload - (k * gso_size).min(payload)).min(gso_size)
            }
        }
    }

    /// Writes segment `k < count()` of `packet` into `out` (at least `segment_len(k)`
    /// bytes) and returns its length.
    pub fn write(&self, packet: &[u8], k: usize, out: &mut [u8]) -> usize {
        let n = self.segment_len(k);
        match self.kind {
            Kind::Whole { csum } => {
                out[..n].copy_from_slice(packet);
                if let Some((start, at)) = csum {
                    let c = checksum::finish(checksum::add(&out[start..n], 0));
                    out[at..at + 2].copy_from_slice(&nonzero(c).to_be_bytes());
                }
            }
            Kind::Gso { h, gso_size } => {
                let hl = h.total();
                let from = hl + k * gso_size;
                out[..hl].copy_from_slice(&packet[..hl]);
                let sum = checksum::copy_add(&mut out[hl..n], &packet[from..from + n - hl], 0);
                let last = k + 1 == self.count();
                fix_segment(&h, &mut out[..n], k, last, (k * gso_size) as u32, sum);
            }
        }
        n
    }
}

/// The checksum range a `GSO_NONE` header asks to complete: (start, field offset).
fn csum_range(hdr: &VirtioNetHdr, len: usize) -> Result<Option<(usize, usize)>, SegmentError> {
    if hdr.flags & F_NEEDS_CSUM == 0 {
        return Ok(None);
    }
    let start = usize::from(hdr.csum_start);
    let at = start + usize::from(hdr.csum_offset);
    if at + 2 > len {
        return Err(SegmentError::Malformed);
    }
    Ok(Some((start, at)))
}

/// Rewrites a segment's headers: lengths, IPv4 ID and header checksum, TCP sequence and
/// flags, UDP length, and the full transport checksum (`payload_sum`: the running sum of
/// the payload after the transport header).
fn fix_segment(h: &L4Headers, seg: &mut [u8], k: usize, last: bool, offset: u32, payload_sum: u64) {
    let n = seg.len();
    h.set_ip_length(seg, n);
    if !h.v6 {
        let id = be16(seg, 4).wrapping_add(k as u16);
        seg[4..6].copy_from_slice(&id.to_be_bytes());
        set_ipv4_checksum(&mut seg[..h.ip_len]);
    }
    let l4 = h.ip_len;
    if h.proto == PROTO_TCP {
        let seq = be32(seg, l4 + 4).wrapping_add(offset);
        seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        if !last {
            seg[l4 + 13] &= !TCP_LAST_ONLY;
        }
        if k > 0 {
            seg[l4 + 13] &= !TCP_FIRST_ONLY;
        }
    } else {
        debug_assert_eq!(h.proto, PROTO_UDP);
        seg[l4 + 4..l4 + 6].copy_from_slice(&((n - l4) as u16).to_be_bytes());
    }
    let at = h.csum_at();
    seg[at..at + 2].fill(0);
    let acc = checksum::add(&seg[l4..h.total()], h.pseudo_sum(seg, n - l4) + payload_sum);
    seg[at..at + 2].copy_from_slice(&nonzero(checksum::finish(acc)).to_be_bytes());
}

/// A computed checksum of 0 is sent as 0xffff (the same in ones' complement; 0 means "no
/// checksum" for UDP).
fn nonzero(c: u16) -> u16 {
    if c == 0 { 0xffff } else { c }
}
