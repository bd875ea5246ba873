//! Segmentation and coalescing against a straightforward reference: packets are built
//! field by field, checksums verified by a naive routine (16-bit words, carry folded at
//! every step) that shares no code with [`super::checksum`].

use super::vnet::{F_NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4};
use super::*;
use proptest::prelude::*;

/// Naive ones' complement sum.
fn ref_sum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut s: u32 = 0;
    for w in bytes.chunks(2) {
        let v = u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0));
        s += v;
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The pseudo-header, spelled out (RFC 768 / RFC 8200 §8.1).
fn ref_pseudo(p: &[u8], v6: bool, proto: u8, l4_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    if v6 {
        out.extend_from_slice(&p[8..40]);
        out.extend_from_slice(&(l4_len as u32).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, proto]);
    } else {
        out.extend_from_slice(&p[12..20]);
        out.extend_from_slice(&[0, proto]);
        out.extend_from_slice(&(l4_len as u16).to_be_bytes());
    }
    out
}

#[derive(Clone, Debug)]
struct Spec {
    v6: bool,
    tcp: bool,
    ip_opts: Vec<u8>,
    tcp_opts: Vec<u8>,
    id: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    src_port: u16,
}

impl Spec {
    fn ip_len(&self) -> usize {
        if self.v6 { 40 } else { 20 + self.ip_opts.len() }
    }
    fn l4_len(&self) -> usize {
        if self.tcp {
            20 + self.tcp_opts.len()
        } else {
            8
        }
    }
    fn proto(&self) -> u8 {
        if self.tcp { 6 } else { 17 }
    }

    /// A complete packet with correct lengths and checksums.
    fn build(&self, payload: &[u8], id: u16, seq: u32, flags: u8) -> Vec<u8> {
        let mut p = self.headers(payload.len(), id, seq, flags);
        p.extend_from_slice(payload);
        self.fix_checksums(&mut p);
        p
    }

    fn headers(&self, payload: usize, id: u16, seq: u32, flags: u8) -> Vec<u8> {
        let total = self.ip_len() + self.l4_len() + payload;
        let mut p = Vec::new();
        if self.v6 {
            p.extend_from_slice(&[0x60, 0x01, 0x23, 0x45]);
            p.extend_from_slice(&((total - 40) as u16).to_be_bytes());
            p.extend_from_slice(&[self.proto(), 64]);
            p.extend_from_slice(&[0xfd, 0, 0x51, 0x59, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p.extend_from_slice(&[0xfd, 0, 0x51, 0x59, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            p.push(0x40 | (self.ip_len() / 4) as u8);
            p.push(0);
            p.extend_from_slice(&(total as u16).to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&[0x40, 0, 64, self.proto(), 0, 0]);
            p.extend_from_slice(&[198, 19, 0, 1, 198, 19, 0, 2]);
            p.extend_from_slice(&self.ip_opts);
        }
        p.extend_from_slice(&self.src_port.to_be_bytes());
        p.extend_from_slice(&5201u16.to_be_bytes());
        if self.tcp {
            p.extend_from_slice(&seq.to_be_bytes());
            p.extend_from_slice(&self.ack.to_be_bytes());
            p.push(((self.l4_len() / 4) as u8) << 4);
            p.push(flags);
            p.extend_from_slice(&self.window.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0]);
            p.extend_from_slice(&self.tcp_opts);
        } else {
            p.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
            p.extend_from_slice(&[0, 0]);
        }
        p
    }

    fn csum_at(&self) -> usize {
        self.ip_len() + if self.tcp { 16 } else { 6 }
    }

    fn fix_checksums(&self, p: &mut [u8]) {
        if !self.v6 {
            p[10..12].fill(0);
            let c = !ref_sum(&[&p[..self.ip_len()]]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let at = self.csum_at();
        p[at..at + 2].fill(0);
        let l4 = self.ip_len();
        let pseudo = ref_pseudo(p, self.v6, self.proto(), p.len() - l4);
        let mut c = !ref_sum(&[&pseudo, &p[l4..]]);
        if c == 0 {
            c = 0xffff;
        }
        p[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// The super-packet the kernel would hand out: full lengths, partial checksum.
    fn super_packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut p = self.headers(payload.len(), self.id, self.seq, self.flags);
        p.extend_from_slice(payload);
        let l4 = self.ip_len();
        if !self.v6 {
            let c = !ref_sum(&[&p[..l4]]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let pseudo = ref_pseudo(&p, self.v6, self.proto(), p.len() - l4);
        let at = self.csum_at();
        p[at..at + 2].copy_from_slice(&ref_sum(&[&pseudo]).to_be_bytes());
        p
    }

    /// The reference segmentation: each segment built from scratch.
    fn ref_segments(&self, payload: &[u8], mss: usize) -> Vec<Vec<u8>> {
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![&[][..]]
        } else {
            payload.chunks(mss).collect()
        };
        let n = chunks.len();
        chunks
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let mut flags = self.flags;
                if k + 1 < n {
                    flags &= !0x09;
                }
                if k > 0 {
                    flags &= !0x80;
                }
                let id = self.id.wrapping_add(k as u16);
                self.build(c, id, self.seq.wrapping_add((k * mss) as u32), flags)
            })
            .collect()
    }
}

/// Independent verification of every checksum of a complete packet.
fn checksums_ok(spec: &Spec, p: &[u8]) -> bool {
    let l4 = spec.ip_len();
    let ip_ok = spec.v6 || ref_sum(&[&p[..l4]]) == 0xffff;
    let pseudo = ref_pseudo(p, spec.v6, spec.proto(), p.len() - l4);
    ip_ok && ref_sum(&[&pseudo, &p[l4..]]) == 0xffff
}

fn opts(max_words: usize) -> impl Strategy<Value = Vec<u8>> {
    (0..=max_words).prop_flat_map(|w| prop::collection::vec(any::<u8>(), w * 4))
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<bool>(),
        any::<bool>(),
        opts(10),
        opts(10),
        any::<(u16, u32, u32, u16, u16)>(),
        prop::sample::select(vec![0x10u8, 0x18, 0x19, 0x90, 0x11]),
    )
        .prop_map(
            |(v6, tcp, ip_opts, tcp_opts, (id, seq, ack, window, port), flags)| Spec {
                v6,
                tcp,
                ip_opts: if v6 { vec![] } else { ip_opts },
                tcp_opts,
                id,
                seq,
                ack,
                flags,
                window,
                src_port: port,
            },
        )
}

fn gso_type(s: &Spec) -> u8 {
    match (s.tcp, s.v6) {
        (false, _) => GSO_UDP_L4,
        (true, false) => GSO_TCPV4,
        (true, true) => GSO_TCPV6,
    }
}

fn run_plan(hdr: &VirtioNetHdr, packet: &[u8]) -> Vec<Vec<u8>> {
    let plan = Plan::new(hdr, packet).expect("plan");
    (0..plan.count())
        .map(|k| {
            let mut out = vec![0u8; 70_000];
            let n = plan.write(packet, k, &mut out);
            assert_eq!(n, plan.segment_len(k));
            out.truncate(n);
            out
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn checksum_matches_the_naive_sum(data in prop::collection::vec(any::<u8>(), 0..3000)) {
        prop_assert_eq!(checksum::fold(checksum::add(&data, 0)), ref_sum(&[&data]));
    }

    #[test]
    fn segmentation_matches_the_reference(
        s in spec(),
        len in prop_oneof![0usize..4000, 30_000usize..65_000],
        mss in prop_oneof![1usize..100, 500usize..1500],
        seed in any::<u8>(),
    ) {
        let hl = s.ip_len() + s.l4_len();
        let len = len.min(65_535 - hl);
        prop_assume!(len.div_ceil(mss) <= 1000);
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let packet = s.super_packet(&payload);
        let hdr = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: gso_type(&s),
            hdr_len: hl as u16,
            gso_size: mss as u16,
            csum_start: s.ip_len() as u16,
            csum_offset: if s.tcp { 16 } else { 6 },
        };
        let got = run_plan(&hdr, &packet);
        let want = s.ref_segments(&payload, mss);
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert!(checksums_ok(&s, g));
            prop_assert_eq!(g, w);
        }
    }

    #[test]
    fn a_partial_checksum_is_completed(s in spec(), len in 0usize..3000) {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let packet = s.super_packet(&payload);
        let hdr = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_NONE,
            csum_start: s.ip_len() as u16,
            csum_offset: if s.tcp { 16 } else { 6 },
            ..VirtioNetHdr::default()
        };
        let got = run_plan(&hdr, &packet);
        prop_assert_eq!(got.len(), 1);
        prop_assert!(checksums_ok(&s, &got[0]));
        let mut want = packet.clone();
        s.fix_checksums(&mut want);
        prop_assert_eq!(&got[0], &want);
    }

    #[test]
    fn coalescing_then_segmenting_gives_the_packets_back(
        flows in prop::collection::vec((spec(), 1usize..40, 200usize..1400, any::<bool>()), 1..4),
        interleave in any::<u64>(),
        udp_between in any::<bool>(),
    ) {
        // each flow: `count` segments of `mss` (the last maybe short, maybe PSH)
        let mut per_flow: Vec<Vec<Vec<u8>>> = Vec::new();
        for (fi, (s, count, mss, short_last)) in flows.iter().enumerate() {
            let mut s = s.clone();
            s.tcp = true;
            s.flags = 0x10;
            s.src_port = 1000 + fi as u16;
            let mut pkts = Vec::new();
            for k in 0..*count {
                let last = k + 1 == *count;
                let n = if last && *short_last { mss / 2 + 1 } else { *mss };
                let payload: Vec<u8> = (0..n).map(|i| (i + k) as u8).collect();
                let flags = if last && *short_last { 0x18 } else { 0x10 };
                let id = s.id.wrapping_add(k as u16);
                pkts.push(s.build(&payload, id, s.seq.wrapping_add((k * mss) as u32), flags));
            }
            per_flow.push(pkts);
        }
        // interleave the flows deterministically from `interleave`, keeping each in order
        let mut order = Vec::new();
        let mut cursors = vec![0usize; per_flow.len()];
        let mut r = interleave;
        while cursors.iter().zip(&per_flow).any(|(c, f)| *c < f.len()) {
            r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let f = (r >> 33) as usize % per_flow.len();
            if cursors[f] < per_flow[f].len() {
                order.push(per_flow[f][cursors[f]].clone());
                cursors[f] += 1;
                if udp_between && order.len() == 3 {
                    let mut u = flows[0].0.clone();
                    u.tcp = false;
                    order.push(u.build(b"not tcp", 1, 0, 0));
                }
            }
        }
        let mut table = GroTable::new();
        table.build(order.len(), |i| &order[i][..]);
        let mut out_by_port: std::collections::BTreeMap<(bool, u16), Vec<Vec<u8>>> = Default::default();
        let mut groups = 0;
        for g in table.groups() {
            groups += 1;
            let members: Vec<usize> = table.members(g).collect();
            prop_assert_eq!(members.len(), g.count);
            let mut hdr = [0u8; GROUP_HEADER_MAX];
            let n = g.write_header(&order[members[0]], &mut hdr);
            let mut packet = hdr[VNET_HDR_LEN..n].to_vec();
            for &m in &members {
                packet.extend_from_slice(&order[m][g.hdr_len..]);
            }
            prop_assert_eq!(packet.len(), g.total);
            let vnet = VirtioNetHdr::parse(&hdr).unwrap();
            let h = headers::L4Headers::parse(&packet).unwrap();
            let is_tcp = h.proto == 6;
            if g.count > 1 {
                let v6 = packet[0] >> 4 == 6;
                if !v6 { prop_assert_eq!(ref_sum(&[&packet[..h.ip_len]]), 0xffff); }
                let pseudo = ref_pseudo(&packet, v6, 6, packet.len() - h.ip_len);
                prop_assert_eq!(headers::be16(&packet, h.ip_len + 16), ref_sum(&[&pseudo]));
            }
            let port = headers::be16(&packet, h.ip_len);
            for seg in run_plan(&vnet, &packet) {
                out_by_port.entry((is_tcp, port)).or_default().push(seg);
            }
        }
        for (fi, pkts) in per_flow.iter().enumerate() {
            let got = &out_by_port[&(true, 1000 + fi as u16)];
            prop_assert_eq!(got, pkts);
        }
        let total: usize = per_flow.iter().map(Vec::len).sum();
        if per_flow.len() == 1 && !udp_between {
            prop_assert_eq!(groups, total.div_ceil(gro::MAX_GROUP_SEGMENTS).max(
                per_flow[0].iter().map(Vec::len).sum::<usize>() / 65_000 + 1));
        }
    }
}

#[test]
fn non_tcp_and_odd_packets_are_written_alone() {
    let s = Spec {
        v6: false,
        tcp: true,
        ip_opts: vec![],
        tcp_opts: vec![],
        id: 1,
        seq: 100,
        ack: 5,
        flags: 0x10,
        window: 100,
        src_port: 9,
    };
    let a = s.build(&[1; 100], 1, 100, 0x10);
    let syn = s.build(&[], 2, 200, 0x02);
    let b = s.build(&[2; 100], 3, 200, 0x10);
    let gap = s.build(&[3; 100], 4, 999, 0x10);
    let pkts = [a, syn, b, gap, vec![0x45, 0, 0]];
    let mut t = GroTable::new();
    t.build(pkts.len(), |i| &pkts[i][..]);
    let counts: Vec<usize> = t.groups().iter().map(|g| g.count).collect();
    assert_eq!(counts, [1, 1, 1, 1, 1]);
    let mut hdr = [0u8; GROUP_HEADER_MAX];
    let g = t.groups()[4];
    assert_eq!(g.write_header(&pkts[4], &mut hdr), VNET_HDR_LEN);
    assert_eq!(g.hdr_len, 0);
}

/// An IPv4 TCP packet of `len` bytes whose data offset (byte 32, when there is one) says 8
/// bytes: shorter than the 20-byte TCP header, which the flags (byte 13 of the header) and
/// the checksum (bytes 16-17) are part of.
fn tcp_with_short_data_offset(len: usize) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 19, 0, 1, 198, 19, 0, 2,
    ];
    p.resize(len, 0x11);
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    if len > 32 {
        p[32] = 0x20;
    }
    let c = !ref_sum(&[&p[..20]]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// Found by the `vnet_offload` fuzz target: a TSO packet whose TCP data offset is below 5
/// was accepted and its segments written past their end (index out of bounds).
#[test]
fn segmentation_refuses_a_tcp_header_shorter_than_20_bytes() {
    for len in [33, 34, 40, 80] {
        let p = tcp_with_short_data_offset(len);
        let hdr = VirtioNetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 28,
            gso_size: 16,
            csum_start: 20,
            csum_offset: 16,
        };
        assert_eq!(
            Plan::new(&hdr, &p),
            Err(SegmentError::Malformed),
            "{len} bytes"
        );
    }
}

/// The same header from the tunnel (an authenticated peer's inner packet): coalescing read
/// the flags of a 33-byte packet past its end (index out of bounds) instead of writing it
/// alone.
#[test]
fn coalescing_writes_a_short_tcp_header_alone() {
    for len in [33, 34, 60] {
        let p = tcp_with_short_data_offset(len);
        let mut t = GroTable::new();
        t.build(1, |_| &p[..]);
        let g = t.groups()[0];
        assert_eq!((g.count, g.hdr_len, g.total), (1, 0, len));
    }
}
