//! `vnet_offload`: the software offloads of a TUN opened with `IFF_VNET_HDR`
//! (`qshield::net::offload`), differentially. A super-packet and its virtio-net header go
//! through `VirtioNetHdr::parse` and `Plan` (segmentation), and every segment is compared
//! byte for byte with a plain reference segmenter written here from the rules (split the
//! TCP/UDP payload by `gso_size`; per segment: IP length, IPv4 ID + k and header checksum,
//! TCP sequence + offset, FIN/PSH on the last segment only, CWR on the first only, UDP
//! length, the full transport checksum); both must accept the same packets. Then the
//! segments go through coalescing (`GroTable`), and each group written as the TUN would
//! get it (`Group::write_header` and its members' payloads) must segment back into exactly
//! the segments it was made of, in order; segments that GRO may merge (one flow, ACK with
//! at most PSH, consecutive, within its limits) must come back as one group.
//!
//! Input: a first byte; even: raw (10-byte virtio header, then the packet); odd: a packet
//! built from `arbitrary` fields (IPv4 with options or IPv6, TCP with options or UDP, any
//! GSO type and size, flags, addresses), so most inputs get past the header checks.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use qshield::net::offload::vnet::{F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};
use qshield::net::offload::{GROUP_HEADER_MAX, GroTable, Plan, VNET_HDR_LEN, VirtioNetHdr};

/// The fields of a generated super-packet.
#[derive(Arbitrary, Debug)]
struct Shape {
    v6: bool,
    udp: bool,
    ip_option_words: u8,
    tcp_option_words: u8,
    /// `None`: the GSO type that fits the packet.
    gso_type: Option<u8>,
    gso_size: u16,
    needs_csum: bool,
    csum_start: u16,
    csum_offset: u16,
    tcp_flags: u8,
    /// A TCP data offset (in words) other than the header's true length.
    tcp_data_offset: Option<u8>,
    seq: u32,
    ip_id: u16,
    frag: u16,
    /// Addresses, ports, TTL, TOS, ack, window, urgent pointer, options, as they come.
    filler: [u8; 64],
    payload: Vec<u8>,
}

const TCP: u8 = 6;
const UDP: u8 = 17;

fn build(s: &Shape) -> (VirtioNetHdr, Vec<u8>) {
    let f = &s.filler;
    let proto = if s.udp { UDP } else { TCP };
    let mut p = Vec::new();
    if s.v6 {
        p.extend_from_slice(&[0x60 | (f[0] & 0xf), f[1], f[2], f[3], 0, 0, proto, f[4]]);
        p.extend_from_slice(&f[8..40]);
    } else {
        let opts = usize::from(s.ip_option_words % 11);
        p.extend_from_slice(&[0x40 | (5 + opts as u8), f[0], 0, 0]);
        p.extend_from_slice(&s.ip_id.to_be_bytes());
        p.extend_from_slice(&s.frag.to_be_bytes());
        p.extend_from_slice(&[f[4], proto, 0, 0]);
        p.extend_from_slice(&f[8..16]);
        p.extend((0..opts * 4).map(|i| f[16 + i % 48]));
    }
    let l4 = p.len();
    if s.udp {
        p.extend_from_slice(&f[40..44]);
        p.extend_from_slice(&[0, 0, 0, 0]);
    } else {
        let opts = usize::from(s.tcp_option_words % 11);
        p.extend_from_slice(&f[40..44]);
        p.extend_from_slice(&s.seq.to_be_bytes());
        p.extend_from_slice(&f[44..48]);
        let doff = s.tcp_data_offset.map_or(5 + opts as u8, |d| d & 0xf);
        p.extend_from_slice(&[doff << 4, s.tcp_flags]);
        p.extend_from_slice(&f[48..50]);
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&f[50..52]);
        p.extend((0..opts * 4).map(|i| f[52 + i % 12]));
    }
    let hl = p.len();
    p.extend_from_slice(&s.payload);
    let len = p.len();
    if s.v6 {
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    } else {
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        let c = !fold(sum(&p[..l4], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let fitting = match (s.udp, s.v6) {
        (true, _) => GSO_UDP_L4,
        (false, false) => GSO_TCPV4,
        (false, true) => GSO_TCPV6,
    };
    let hdr = VirtioNetHdr {
        flags: if s.needs_csum { F_NEEDS_CSUM } else { 0 },
        gso_type: s.gso_type.unwrap_or(fitting),
        hdr_len: hl as u16,
        gso_size: s.gso_size,
        csum_start: s.csum_start,
        csum_offset: s.csum_offset,
    };
    (hdr, p)
}

// ------------------------------------------------------------ reference segmenter

/// Ones' complement running sum of big-endian words (an odd last byte padded with zero).
fn sum(data: &[u8], mut acc: u64) -> u64 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        acc += u64::from(word);
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value (0 is sent as 0xffff).
fn field(acc: u64) -> u16 {
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// IP header length, protocol, transport header length of a TCP (header ≥ 20 bytes) or UDP
/// packet directly over IPv4 or IPv6.
fn headers(p: &[u8]) -> Option<(bool, usize, u8, usize)> {
    let (v6, ip, proto) = match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0xf) * 4;
            if ihl < 20 || p.len() < ihl {
                return None;
            }
            (false, ihl, p[9])
        }
        6 if p.len() >= 40 => (true, 40, p[6]),
        _ => return None,
    };
    let l4 = match proto {
        TCP => usize::from(*p.get(ip + 12)? >> 4) * 4,
        UDP => 8,
        _ => return None,
    };
    let min = if proto == TCP { 20 } else { 8 };
    (l4 >= min && p.len() >= ip + l4).then_some((v6, ip, proto, l4))
}

/// What the segmenter must produce for `hdr` and `p`, or `None` when it must refuse.
fn reference(hdr: &VirtioNetHdr, p: &[u8]) -> Option<Vec<Vec<u8>>> {
    if hdr.gso_type == GSO_NONE {
        let mut out = p.to_vec();
        if hdr.flags & F_NEEDS_CSUM != 0 {
            let start = usize::from(hdr.csum_start);
            let at = start + usize::from(hdr.csum_offset);
            if at + 2 > p.len() {
                return None;
            }
            let c = field(sum(&out[start..], 0));
            out[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        return Some(vec![out]);
    }
    let (v6, ip, proto, l4) = headers(p)?;
    let fits = match hdr.gso_type {
        GSO_TCPV4 => proto == TCP && !v6,
        GSO_TCPV6 => proto == TCP && v6,
        GSO_UDP_L4 => proto == UDP,
        _ => return None,
    };
    if !fits || hdr.gso_size == 0 {
        return None;
    }
    let hl = ip + l4;
    let mss = usize::from(hdr.gso_size);
    let payload = &p[hl..];
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(mss).collect()
    };
    let last = pieces.len() - 1;
    let segments = pieces
        .iter()
        .enumerate()
        .map(|(k, piece)| {
            let mut s = p[..hl].to_vec();
            s.extend_from_slice(piece);
            let n = s.len();
            if v6 {
                s[4..6].copy_from_slice(&((n - 40) as u16).to_be_bytes());
            } else {
                s[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                let id = u16::from_be_bytes([s[4], s[5]]).wrapping_add(k as u16);
                s[4..6].copy_from_slice(&id.to_be_bytes());
                s[10..12].fill(0);
                let c = !fold(sum(&s[..ip], 0));
                s[10..12].copy_from_slice(&c.to_be_bytes());
            }
            let csum_at = if proto == TCP {
                let seq = u32::from_be_bytes(s[ip + 4..ip + 8].try_into().unwrap())
                    .wrapping_add((k * mss) as u32);
                s[ip + 4..ip + 8].copy_from_slice(&seq.to_be_bytes());
                if k != last {
                    s[ip + 13] &= !(0x01 | 0x08);
                }
                if k != 0 {
                    s[ip + 13] &= !0x80;
                }
                ip + 16
            } else {
                s[ip + 4..ip + 6].copy_from_slice(&((n - ip) as u16).to_be_bytes());
                ip + 6
            };
            s[csum_at..csum_at + 2].fill(0);
            let (src, dst) = if v6 {
                (8..24, 24..40)
            } else {
                (12..16, 16..20)
            };
            let pseudo = sum(&s[src], sum(&s[dst], 0)) + u64::from(proto) + (n - ip) as u64;
            let c = field(sum(&s[ip..], pseudo));
            s[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
            s
        })
        .collect();
    Some(segments)
}

// ------------------------------------------------------------ the checks

/// Segments `p` as the TUN reader does.
fn segment(hdr: &VirtioNetHdr, p: &[u8]) -> Option<Vec<Vec<u8>>> {
    let plan = Plan::new(hdr, p).ok()?;
    Some(
        (0..plan.count())
            .map(|k| {
                let mut out = vec![0u8; plan.segment_len(k)];
                let n = plan.write(p, k, &mut out);
                assert_eq!(n, out.len());
                out
            })
            .collect(),
    )
}

/// Coalesces `segments`; every group written out must segment back to its members.
fn coalesce_and_resegment(segments: &[Vec<u8>]) -> usize {
    let mut gro = GroTable::new();
    gro.build(segments.len(), |i| &segments[i]);
    let mut back = Vec::new();
    for g in gro.groups() {
        let members: Vec<usize> = gro.members(g).collect();
        assert_eq!(members.len(), g.count);
        let mut out = vec![0u8; GROUP_HEADER_MAX];
        let n = g.write_header(&segments[members[0]], &mut out);
        out.truncate(n);
        for &m in &members {
            out.extend_from_slice(&segments[m][g.hdr_len..]);
        }
        assert_eq!(out.len(), VNET_HDR_LEN + g.total);
        let hdr = VirtioNetHdr::parse(&out).expect("a written virtio header");
        let again = segment(&hdr, &out[VNET_HDR_LEN..]).expect("a group segments");
        let originals: Vec<&Vec<u8>> = members.iter().map(|&m| &segments[m]).collect();
        assert_eq!(again.iter().collect::<Vec<_>>(), originals, "group {g:?}");
        back.extend(members);
    }
    back.sort_unstable();
    let nonempty: Vec<usize> = (0..segments.len())
        .filter(|&i| !segments[i].is_empty())
        .collect();
    assert_eq!(
        back, nonempty,
        "GRO wrote each non-empty packet once (it skips empty ones)"
    );
    gro.groups().len()
}

/// Whether GRO must merge all of `segments` (cut from one TCP super-packet) into one group.
fn must_merge_all(segments: &[Vec<u8>]) -> bool {
    let Some((v6, ip, proto, l4)) = segments.first().and_then(|s| headers(s)) else {
        return false;
    };
    let payloads: Vec<usize> = segments.iter().map(|s| s.len() - ip - l4).collect();
    let total = ip + l4 + payloads.iter().sum::<usize>();
    proto == TCP
        && segments.len() <= 64
        && total <= 65535
        && payloads.iter().all(|&n| n > 0)
        && segments.iter().all(|s| s[ip + 13] == 0x10)
        && (v6 || u16::from_be_bytes([segments[0][6], segments[0][7]]) & 0x3fff == 0)
}

fn check(hdr_bytes: &[u8], p: &[u8]) {
    let Some(hdr) = VirtioNetHdr::parse(hdr_bytes) else {
        return;
    };
    assert_eq!(hdr.to_bytes(), hdr_bytes[..VNET_HDR_LEN]);
    let ours = segment(&hdr, p);
    let expected = reference(&hdr, p);
    assert_eq!(
        ours.is_some(),
        expected.is_some(),
        "segmenter {} a packet the reference {}",
        if ours.is_some() {
            "accepted"
        } else {
            "refused"
        },
        if expected.is_some() {
            "accepts"
        } else {
            "refuses"
        }
    );
    let (Some(ours), Some(expected)) = (ours, expected) else {
        return;
    };
    assert_eq!(ours.len(), expected.len());
    for (k, (a, b)) in ours.iter().zip(&expected).enumerate() {
        assert_eq!(a, b, "segment {k} of {}", ours.len());
    }
    let groups = coalesce_and_resegment(&ours);
    if hdr.gso_type != GSO_NONE && must_merge_all(&ours) {
        assert_eq!(
            groups,
            1,
            "{} mergeable segments in {groups} groups",
            ours.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if rest.len() >= VNET_HDR_LEN {
            check(&rest[..VNET_HDR_LEN], &rest[VNET_HDR_LEN..]);
        }
        return;
    }
    let Ok(shape) = Shape::arbitrary_take_rest(Unstructured::new(rest)) else {
        return;
    };
    let (hdr, packet) = build(&shape);
    check(&hdr.to_bytes(), &packet);
});
