//! Coalescing (GRO in software): consecutive TCP segments of one flow, as they come out of
//! the tunnel, become one super-packet for a TUN opened with `IFF_VNET_HDR`, so the kernel
//! takes up to 64 KiB per write. Nothing is copied but the headers: a [`Group`] lists the
//! batch slots whose payloads follow its rewritten header, and the writer hands them to
//! `writev` as they lie.
//!
//! A packet joins the open group of its flow (same addresses and ports) when it could have
//! been cut from the same super-packet by [`segment`](super::segment): the same headers
//! except lengths, checksums, IPv4 ID (+1 per segment) and sequence number (+payload);
//! flags ACK (PSH allowed, and it closes the group); payload of the group's segment size,
//! or shorter, which closes it too. Anything else is written alone, and it closes its
//! flow's open group first, so order within a flow is kept. Groups are written in the
//! order they were opened.
//!
//! The coalesced header carries `NEEDS_CSUM` with the pseudo-header sum in the TCP
//! checksum field (as a TSO packet from the kernel does): the segments come authenticated
//! from the peer, whose own segmenter computed their checksums.

use super::checksum;
use super::headers::{L4Headers, PROTO_TCP, be16, be32, ipv4_checksum_ok, set_ipv4_checksum};
use super::vnet::{F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, VNET_HDR_LEN, VirtioNetHdr};

/// Most segments in one group (Linux GRO's limit).
pub const MAX_GROUP_SEGMENTS: usize = 64;
/// Most bytes of a coalesced packet (the IP length fields are 16 bits).
pub const MAX_GROUP_BYTES: usize = 65535;
/// Longest header a group writes: virtio header, IPv4 with options, TCP with options.
pub const GROUP_HEADER_MAX: usize = VNET_HDR_LEN + 60 + 60;
/// Flows with an open group at once; beyond it the oldest is closed.
const OPEN_GROUPS_MAX: usize = 16;
/// No next member.
const END: usize = usize::MAX;
/// TCP flags.
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// One write to the TUN: a header followed by the payloads of its members.
#[derive(Clone, Copy, Debug)]
pub struct Group {
    first: usize,
    last: usize,
    /// Number of packets.
    pub count: usize,
    /// Header bytes of each member skipped (0: the whole packet, written alone).
    pub hdr_len: usize,
    /// Whole length of the coalesced packet.
    pub total: usize,
    mss: usize,
    next_seq: u32,
    next_id: u16,
    h: Option<L4Headers>,
    open: bool,
    psh: bool,
}

/// The grouping of one batch; reused across batches (no allocation once warmed up).
#[derive(Debug, Default)]
pub struct GroTable {
    groups: Vec<Group>,
    next: Vec<usize>,
    open: Vec<usize>,
}

/// What a TCP packet is, for coalescing.
struct Seg {
    h: L4Headers,
    payload: usize,
    seq: u32,
    flags: u8,
    /// Could be part of a group (else it is written alone).
    mergeable: bool,
}

impl GroTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the last grouping and makes room for `n` packets.
    fn reset(&mut self, n: usize) {
        self.groups.clear();
        self.open.clear();
        self.next.clear();
        self.next.resize(n, END);
    }

    /// Groups the packets `packet(i)` for `i` in `0..n` (an empty slice is skipped).
    pub fn build<'a>(&mut self, n: usize, packet: impl Fn(usize) -> &'a [u8]) {
        self.reset(n);
        for i in 0..n {
            let p = packet(i);
            if !p.is_empty() {
                self.add(i, p, &packet);
            }
        }
    }

    /// One group per packet (coalescing off): each is written alone.
    pub fn build_alone<'a>(&mut self, n: usize, packet: impl Fn(usize) -> &'a [u8]) {
        self.reset(n);
        for i in 0..n {
            let p = packet(i);
            if !p.is_empty() {
                self.push_alone(i, p.len());
            }
        }
    }

    /// The groups, in the order to write them.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The batch indices of `g`'s members, in order.
    pub fn members(&self, g: &Group) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(g.first), |&i| Some(self.next[i]).filter(|&j| j != END))
    }

    fn add<'a>(&mut self, i: usize, p: &[u8], packet: &impl Fn(usize) -> &'a [u8]) {
        let Some(seg) = parse(p) else {
            self.push_alone(i, p.len());
            return;
        };
        let found = self.open.iter().rposition(|&g| {
            let head = packet(self.groups[g].first);
            same_flow(&self.groups[g], head, &seg.h, p)
        });
        if let Some(pos) = found {
            let g = self.open[pos];
            if seg.mergeable && fits(&self.groups[g], packet(self.groups[g].first), &seg, p) {
                self.extend(g, i, &seg);
                if !self.groups[g].open {
                    self.open.remove(pos);
                }
                return;
            }
            self.groups[g].open = false;
            self.open.remove(pos);
        }
        if !seg.mergeable {
            self.push_alone(i, p.len());
            return;
        }
        if self.open.len() == OPEN_GROUPS_MAX {
            let g = self.open.remove(0);
            self.groups[g].open = false;
        }
        let id = if seg.h.v6 { 0 } else { be16(p, 4) };
        let mut g = Group {
            first: i,
            last: i,
            count: 1,
            hdr_len: seg.h.total(),
            total: p.len(),
            mss: seg.payload,
            next_seq: seg.seq.wrapping_add(seg.payload as u32),
            next_id: id.wrapping_add(1),
            h: Some(seg.h),
            open: true,
            psh: seg.flags & PSH != 0,
        };
        g.open = !g.psh;
        self.groups.push(g);
        if g.open {
            self.open.push(self.groups.len() - 1);
        }
    }

    fn push_alone(&mut self, i: usize, len: usize) {
        self.groups.push(Group {
            first: i,
            last: i,
            count: 1,
            hdr_len: 0,
            total: len,
            mss: 0,
            next_seq: 0,
            next_id: 0,
            h: None,
            open: false,
            psh: false,
        });
    }

    fn extend(&mut self, g: usize, i: usize, seg: &Seg) {
        let grp = &mut self.groups[g];
        self.next[grp.last] = i;
        grp.last = i;
        grp.count += 1;
        grp.total += seg.payload;
        grp.next_seq = grp.next_seq.wrapping_add(seg.payload as u32);
        grp.next_id = grp.next_id.wrapping_add(1);
        grp.psh = seg.flags & PSH != 0;
        if grp.psh || seg.payload < grp.mss || grp.count == MAX_GROUP_SEGMENTS {
            grp.open = false;
        }
    }
}

impl Group {
    /// Writes the bytes that go before the members' payloads into `out` (at least
    /// [`GROUP_HEADER_MAX`] bytes) and returns their length: the virtio header, then (for
    /// a coalesced group) the first member's headers rewritten for the whole.
    pub fn write_header(&self, first: &[u8], out: &mut [u8]) -> usize {
        let Some(h) = self.h else {
            out[..VNET_HDR_LEN].fill(0);
            return VNET_HDR_LEN;
        };
        let hl = self.hdr_len;
        let hdr = &mut out[VNET_HDR_LEN..VNET_HDR_LEN + hl];
        hdr.copy_from_slice(&first[..hl]);
        let vnet = if self.count == 1 {
            VirtioNetHdr::default()
        } else {
            h.set_ip_length(hdr, self.total);
            if !h.v6 {
                set_ipv4_checksum(&mut hdr[..h.ip_len]);
            }
            if self.psh {
                hdr[h.ip_len + 13] |= PSH;
            }
            let partial = checksum::fold(h.pseudo_sum(hdr, self.total - h.ip_len));
            hdr[h.csum_at()..h.csum_at() + 2].copy_from_slice(&partial.to_be_bytes());
            VirtioNetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: if h.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                hdr_len: hl as u16,
                gso_size: self.mss as u16,
                csum_start: h.ip_len as u16,
                csum_offset: super::headers::TCP_CSUM_OFFSET as u16,
            }
        };
        out[..VNET_HDR_LEN].copy_from_slice(&vnet.to_bytes());
        VNET_HDR_LEN + hl
    }
}

/// A TCP packet's coalescing facts; `None` for anything that is not TCP over IP.
fn parse(p: &[u8]) -> Option<Seg> {
    let h = L4Headers::parse(p).filter(|h| h.proto == PROTO_TCP)?;
    let l4 = h.ip_len;
    let flags = p[l4 + 13];
    let ip_ok = if h.v6 {
        usize::from(be16(p, 4)) + 40 == p.len()
    } else {
        usize::from(be16(p, 2)) == p.len()
            && be16(p, 6) & 0x3fff == 0
            && ipv4_checksum_ok(&p[..h.ip_len])
    };
    let payload = p.len() - h.total();
    Some(Seg {
        h,
        payload,
        seq: be32(p, l4 + 4),
        flags,
        mergeable: ip_ok && payload > 0 && flags & !PSH == ACK,
    })
}

/// Same addresses, ports and IP version as the group's first packet.
fn same_flow(g: &Group, head: &[u8], h: &L4Headers, p: &[u8]) -> bool {
    let Some(gh) = g.h else { return false };
    if gh.v6 != h.v6 {
        return false;
    }
    let (a, b) = (gh.addresses(head), h.addresses(p));
    a == b && head[gh.ip_len..gh.ip_len + 4] == p[h.ip_len..h.ip_len + 4]
}

/// True when `p` may follow the group's last member.
fn fits(g: &Group, head: &[u8], seg: &Seg, p: &[u8]) -> bool {
    let Some(gh) = g.h else { return false };
    if !g.open
        || gh != seg.h
        || seg.payload > g.mss
        || seg.seq != g.next_seq
        || g.total + seg.payload > MAX_GROUP_BYTES
    {
        return false;
    }
    let l4 = gh.ip_len;
    let ip_same = if gh.v6 {
        head[..4] == p[..4] && head[6..8] == p[6..8]
    } else {
        be16(p, 4) == g.next_id
            && head[..2] == p[..2]
            && head[6..10] == p[6..10]
            && head[20..l4] == p[20..l4]
    };
    // ack, data offset, window, urgent pointer, options; flags are checked by `parse`.
    ip_same
        && head[l4 + 8..l4 + 13] == p[l4 + 8..l4 + 13]
        && head[l4 + 14..l4 + 16] == p[l4 + 14..l4 + 16]
        && head[l4 + 18..gh.total()] == p[l4 + 18..gh.total()]
}
