//! A deterministic three-site network for the sans-IO core: A, B and C, each with the other
//! two as peers (each peer's allowed IPs: its own overlay /32), a simulated clock, and a
//! wire whose datagrams a test can drop. QKD is off (no KME).

#![allow(dead_code)]

use qshield::batch::{PacketBatch, SlotMeta};
use qshield::cidr::IpCidr;
use qshield::constants::DATA_HEADER_BYTES;
use qshield::crypto::random::SeededRng;
use qshield::crypto::{CipherSuite, StaticIdentity};
use qshield::proto::endpoint::{Endpoint, EndpointSettings, PeerSettings};
use qshield::proto::events::Event;
use qshield::proto::qkd_flow::QkdPolicy;
use qshield::proto::session::RotationBudget;
use qshield::proto::status::{InterfaceDrops, PeerStatus};
use qshield::proto::time::Instant;
use std::net::SocketAddr;
use std::time::Duration;

/// One of the three sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    A,
    B,
    C,
}

impl Node {
    pub const ALL: [Node; 3] = [Node::A, Node::B, Node::C];

    fn index(self) -> usize {
        self as usize
    }

    /// The peer name the other sites give this one.
    pub fn name(self) -> &'static str {
        match self {
            Node::A => "A",
            Node::B => "B",
            Node::C => "C",
        }
    }

    /// Underlay address.
    pub fn addr(self) -> SocketAddr {
        SocketAddr::from(([198, 18, 0, 1 + self as u8], 51820))
    }

    /// Overlay address (the only address in its peers' allowed IPs for it).
    pub fn overlay(self) -> [u8; 4] {
        [198, 19, 0, 1 + self as u8]
    }

    fn others(self) -> impl Iterator<Item = Node> {
        Node::ALL.into_iter().filter(move |&n| n != self)
    }
}

/// A datagram on the wire.
pub struct MeshDatagram {
    pub from: Node,
    pub to: Node,
    pub deliver_at: Instant,
    pub bytes: Vec<u8>,
}

/// Decides whether a datagram is delivered (true) or dropped.
pub type MeshFilter = Box<dyn FnMut(&MeshDatagram) -> bool>;

pub struct Site {
    pub endpoint: Endpoint,
    /// Inner packets this site's endpoint opened.
    pub received: Vec<Vec<u8>>,
    pub events: Vec<Event>,
}

pub struct Mesh {
    pub now: Instant,
    pub sites: Vec<Site>,
    pub wire: Vec<MeshDatagram>,
    pub latency: Duration,
    pub filter: Option<MeshFilter>,
}

impl Mesh {
    /// Three sites; `wrong_key`: (holder, peer) pairs in which the holder is configured with
    /// a wrong public key for that peer.
    pub fn new(budget: RotationBudget, wrong_key: &[(Node, Node)]) -> Mesh {
        let ids: Vec<StaticIdentity> = Node::ALL
            .iter()
            .map(|_| StaticIdentity::generate().unwrap())
            .collect();
        let stranger = StaticIdentity::generate().unwrap();
        let sites = Node::ALL
            .into_iter()
            .map(|n| {
                let peers = n
                    .others()
                    .map(|o| {
                        let public = if wrong_key.contains(&(n, o)) {
                            stranger.public()
                        } else {
                            ids[o.index()].public()
                        };
                        PeerSettings {
                            name: o.name().into(),
                            public,
                            endpoint: Some(o.addr()),
                            allowed_ips: vec![IpCidr::new(o.overlay().into(), 32).unwrap()],
                            persistent_keepalive: None,
                        }
                    })
                    .collect();
                let own = &ids[n.index()];
                let settings = EndpointSettings {
                    identity: StaticIdentity {
                        dh: qshield::crypto::dh::DhSecret::from_bytes(&own.dh.to_bytes().unwrap())
                            .unwrap(),
                        kem: qshield::crypto::kem::KemSecret::from_bytes(
                            &own.kem.to_bytes().unwrap(),
                        )
                        .unwrap(),
                    },
                    suite: CipherSuite::Aes256Gcm,
                    budget,
                    peers,
                    qkd_policy: QkdPolicy::Disable,
                    unix_ns_at_origin: 1_000_000 * (1 + n.index() as u64),
                };
                Site {
                    endpoint: Endpoint::new(settings, Box::new(SeededRng::new(n.index() as u64))),
                    received: vec![],
                    events: vec![],
                }
            })
            .collect();
        Mesh {
            now: Instant::ZERO,
            sites,
            wire: vec![],
            latency: Duration::from_millis(1),
            filter: None,
        }
    }

    pub fn site(&mut self, n: Node) -> &mut Site {
        &mut self.sites[n.index()]
    }

    /// Starts `n` (it initiates to both its peers).
    pub fn start(&mut self, n: Node) {
        let now = self.now;
        self.site(n).endpoint.start(now);
        self.collect(n);
    }

    /// `n`'s status of its peer `peer`.
    pub fn peer_status(&self, n: Node, peer: Node) -> PeerStatus {
        self.sites[n.index()]
            .endpoint
            .status(self.now)
            .peers
            .into_iter()
            .find(|p| p.name == peer.name())
            .unwrap_or_else(|| panic!("{n:?} has no peer {peer:?}"))
    }

    /// Every peer in `n`'s status, in config order.
    pub fn peers(&self, n: Node) -> Vec<PeerStatus> {
        self.sites[n.index()].endpoint.status(self.now).peers
    }

    pub fn drops(&self, n: Node) -> InterfaceDrops {
        self.sites[n.index()].endpoint.status(self.now).drops
    }

    /// An IPv4/UDP-shaped inner packet from `from`'s overlay to `dst` carrying `tag`.
    pub fn packet(from: Node, dst: [u8; 4], tag: u32) -> Vec<u8> {
        let total = 32;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[9] = 17;
        p[12..16].copy_from_slice(&from.overlay());
        p[16..20].copy_from_slice(&dst);
        p[28..32].copy_from_slice(&tag.to_le_bytes());
        p
    }

    /// The tag [`Mesh::packet`] wrote.
    pub fn tag_of(packet: &[u8]) -> u32 {
        u32::from_le_bytes(packet[28..32].try_into().unwrap())
    }

    /// Tags of the packets `n` received from `from`'s overlay.
    pub fn tags_from(&self, n: Node, from: Node) -> Vec<u32> {
        self.sites[n.index()]
            .received
            .iter()
            .filter(|p| p[12..16] == from.overlay())
            .map(|p| Self::tag_of(p))
            .collect()
    }

    /// Hands inner packets to `n`'s endpoint as if read from its TUN.
    pub fn send(&mut self, n: Node, packets: &[Vec<u8>]) {
        let now = self.now;
        let mut batch = PacketBatch::new(packets.len().max(1), 1500);
        for (i, p) in packets.iter().enumerate() {
            batch.slot_mut(i)[DATA_HEADER_BYTES..DATA_HEADER_BYTES + p.len()].copy_from_slice(p);
            batch.set_meta(
                i,
                SlotMeta {
                    start: DATA_HEADER_BYTES,
                    len: p.len(),
                    addr: None,
                },
            );
        }
        batch.set_len(packets.len());
        self.site(n).endpoint.seal_batch(now, &mut batch);
        for i in 0..batch.len() {
            let meta = batch.meta(i);
            if meta.len > 0 {
                let to = meta.addr.expect("a sealed datagram has its destination");
                let bytes = batch.bytes(i).to_vec();
                self.put_on_wire(n, to, bytes);
            }
        }
        self.collect(n);
    }

    fn put_on_wire(&mut self, from: Node, to: SocketAddr, bytes: Vec<u8>) {
        let to = Node::ALL
            .into_iter()
            .find(|n| n.addr() == to)
            .unwrap_or_else(|| panic!("{from:?} sent to {to}, no site there"));
        let d = MeshDatagram {
            from,
            to,
            deliver_at: self.now + self.latency,
            bytes,
        };
        if self.filter.as_mut().is_none_or(|f| f(&d)) {
            self.wire.push(d);
        }
    }

    fn collect(&mut self, n: Node) {
        while let Some(t) = self.site(n).endpoint.poll_transmit() {
            self.put_on_wire(n, t.to, t.payload);
        }
        while let Some(e) = self.site(n).endpoint.poll_event() {
            self.site(n).events.push(e);
        }
    }

    fn deliver_due(&mut self) -> bool {
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|d| d.deliver_at <= now);
        self.wire = rest;
        let any = !due.is_empty();
        for mut d in due {
            let site = self.site(d.to);
            if let Some(len) = site.endpoint.receive(now, d.from.addr(), &mut d.bytes) {
                site.received
                    .push(d.bytes[DATA_HEADER_BYTES..DATA_HEADER_BYTES + len].to_vec());
            }
            self.collect(d.to);
        }
        any
    }

    fn timers(&mut self) {
        for n in Node::ALL {
            let now = self.now;
            self.site(n).endpoint.handle_timeout(now);
            self.collect(n);
        }
        while self.deliver_due() {}
    }

    /// Runs the network and timers until `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            self.timers();
            let next = self
                .sites
                .iter()
                .filter_map(|s| s.endpoint.poll_timeout())
                .chain(self.wire.iter().map(|d| d.deliver_at))
                .filter(|&t| t > self.now)
                .min();
            match next {
                Some(t) if t <= until => self.now = t,
                _ => {
                    self.now = until;
                    self.timers();
                    return;
                }
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until every pair in `pairs` has a current session at both ends, or panics after
    /// 10 s of simulated time.
    pub fn run_until_sessions(&mut self, pairs: &[(Node, Node)]) {
        let deadline = self.now + Duration::from_secs(10);
        loop {
            let missing: Vec<_> = pairs
                .iter()
                .flat_map(|&(x, y)| [(x, y), (y, x)])
                .filter(|&(x, y)| self.peer_status(x, y).current_key.is_none())
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                self.now < deadline,
                "no current session at (site, peer) {missing:?} after 10 s"
            );
            self.run_for(Duration::from_millis(1));
        }
    }
}
