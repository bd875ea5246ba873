//! A deterministic two-site network for the sans-IO core: two endpoints, a simulated clock,
//! and a wire whose datagrams a test can drop, delay, duplicate, reorder or alter.

#![allow(dead_code)]

use qshield::batch::PacketBatch;
use qshield::cidr::IpCidr;
use qshield::constants::{DATA_HEADER_BYTES, MAX_HANDSHAKE_DATAGRAM_BYTES};
use qshield::crypto::random::SeededRng;
use qshield::crypto::{CipherSuite, StaticIdentity};
use qshield::proto::endpoint::{Endpoint, EndpointSettings, PeerSettings};
use qshield::proto::events::{Event, Transmit};
use qshield::proto::handshake::QkdKey;
use qshield::proto::qkd_flow::QkdPolicy;
use qshield::proto::session::RotationBudget;
use qshield::proto::time::Instant;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Handshake and cookie datagrams (types 1, 2, 3) any sim of this test binary put on the
/// wire, and the largest of them: every one is checked against the 1200-byte limit.
pub static HANDSHAKE_DATAGRAMS_SEEN: AtomicU64 = AtomicU64::new(0);
/// See [`HANDSHAKE_DATAGRAMS_SEEN`].
pub static LARGEST_HANDSHAKE_DATAGRAM: AtomicU64 = AtomicU64::new(0);

/// Checks one datagram an endpoint produced against the handshake size limit.
pub fn check_datagram_size(bytes: &[u8]) {
    if matches!(bytes.first(), Some(1..=3)) {
        assert!(
            bytes.len() <= MAX_HANDSHAKE_DATAGRAM_BYTES,
            "handshake datagram of type {} is {} bytes",
            bytes[0],
            bytes.len()
        );
        HANDSHAKE_DATAGRAMS_SEEN.fetch_add(1, Ordering::Relaxed);
        LARGEST_HANDSHAKE_DATAGRAM.fetch_max(bytes.len() as u64, Ordering::Relaxed);
    }
}

/// Side A or B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A datagram on the simulated wire.
#[derive(Clone, Debug)]
pub struct Datagram {
    pub from: Side,
    pub deliver_at: Instant,
    pub bytes: Vec<u8>,
}

/// What the wire does with a datagram.
pub enum Fate {
    Deliver,
    Drop,
    Delay(Duration),
    /// Deliver now and a second copy this much later.
    Duplicate(Duration),
}

pub type WireFilter = Box<dyn FnMut(&mut Datagram) -> Fate>;

pub struct Site {
    pub endpoint: Endpoint,
    pub addr: SocketAddr,
    pub overlay: [u8; 4],
    pub received: Vec<Vec<u8>>,
    pub events: Vec<Event>,
    /// Every event with the instant it was polled.
    pub log: Vec<(Instant, Event)>,
    /// Datagrams addressed to anyone but the other site (cookie replies to flooders...).
    pub stray: Vec<Transmit>,
    /// Every session this site established, in order (trim it as the test goes).
    pub sessions_seen: Vec<SessionSeen>,
    /// The longest each of the endpoint's output queues was when [`Sim::collect`] found it.
    pub queue_high_water: QueueHighWater,
}

/// A session a site established: when, its epoch, role and QKD key_ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSeen {
    pub at: Instant,
    pub epoch: u64,
    pub is_initiator: bool,
    pub qkd_key_id: Option<String>,
}

/// The longest each output queue of an endpoint was found (reset it to measure a period).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueHighWater {
    pub transmits: usize,
    pub events: usize,
    pub qkd_requests: usize,
}

impl Site {
    fn new(endpoint: Endpoint, addr: SocketAddr, overlay: [u8; 4]) -> Site {
        Site {
            endpoint,
            addr,
            overlay,
            received: vec![],
            events: vec![],
            log: vec![],
            stray: vec![],
            sessions_seen: vec![],
            queue_high_water: QueueHighWater::default(),
        }
    }
}

/// How a sim differs from the default (both AES-256-GCM, each knows the other's key).
#[derive(Clone, Copy)]
pub struct SimOptions {
    pub budget: RotationBudget,
    pub suite_a: CipherSuite,
    pub suite_b: CipherSuite,
    /// A is configured with a wrong public key for B.
    pub a_has_wrong_key_for_b: bool,
    /// B is configured with a wrong public key for A.
    pub b_has_wrong_key_for_a: bool,
    /// Persistent keepalive interval on both sides.
    pub persistent_keepalive: Option<Duration>,
    /// QKD policy of A and of B.
    pub qkd_policy: (QkdPolicy, QkdPolicy),
}

impl SimOptions {
    pub fn new(budget: RotationBudget) -> Self {
        Self {
            budget,
            suite_a: CipherSuite::Aes256Gcm,
            suite_b: CipherSuite::Aes256Gcm,
            a_has_wrong_key_for_b: false,
            b_has_wrong_key_for_a: false,
            persistent_keepalive: None,
            qkd_policy: (QkdPolicy::Disable, QkdPolicy::Disable),
        }
    }
}

pub struct Sim {
    pub now: Instant,
    pub a: Site,
    pub b: Site,
    pub wire: Vec<Datagram>,
    pub latency: Duration,
    pub filter: Option<WireFilter>,
    pub identities: (PublicPair, PublicPair),
    pub budget: RotationBudget,
    pub suite: CipherSuite,
    /// Each side's cipher suite (A, B), used again by [`Sim::restart`].
    pub suites: (CipherSuite, CipherSuite),
    pub delivered: u64,
    pub qkd_policy: (QkdPolicy, QkdPolicy),
    /// The simulated KME both sides fetch QKD keys from.
    pub kme: SimKme,
    /// KME answers not yet handed back (see [`SimKme::dec_keys_delay`]): when, to whom, request ID.
    pub kme_answers: Vec<(Instant, Side, u64, Result<QkdKey, String>)>,
}

/// A KME twin: `enc_keys` makes a key and files it under a new ID, `dec_keys` hands it out
/// once. `down` makes every request fail; `corrupt_dec` makes `dec_keys` return wrong bits.
#[derive(Default)]
pub struct SimKme {
    pub keys: std::collections::HashMap<String, Vec<u8>>,
    pub issued: u64,
    pub down: bool,
    pub corrupt_dec: bool,
    /// Every key_ID handed to an initiator, in order.
    pub enc_log: Vec<String>,
    /// Every key_ID handed to a responder (`dec_keys` answered with a key), in order.
    pub dec_log: Vec<String>,
    /// `enc_keys` calls made (each is one key fetched when the KME is up).
    pub enc_calls: u64,
    /// `dec_keys` calls made (answered or not).
    pub dec_calls: u64,
    /// The next this many `dec_keys` calls fail (a 503), after which the KME answers again.
    pub fail_next_dec_keys: u32,
    /// Answer every `dec_keys` call this much later (the key is taken from the store at call
    /// time, as a real KME hands it out when it receives the request).
    pub dec_keys_delay: Option<Duration>,
    /// Answer every `enc_keys` call this much later (the key is made at call time).
    pub enc_keys_delay: Option<Duration>,
}

impl SimKme {
    fn answer(&mut self, key_id: Option<String>) -> Result<QkdKey, String> {
        match key_id {
            None => self.enc_calls += 1,
            Some(_) => self.dec_calls += 1,
        }
        if self.down {
            return Err("KME unreachable".into());
        }
        if key_id.is_some() && self.fail_next_dec_keys > 0 {
            self.fail_next_dec_keys -= 1;
            return Err("KME refused (503): no key available".into());
        }
        match key_id {
            None => {
                self.issued += 1;
                let id = format!("00000000-0000-4000-8000-{:012x}", self.issued);
                let key: Vec<u8> = (0..32)
                    .map(|i| (self.issued as u8).wrapping_mul(31).wrapping_add(i))
                    .collect();
                self.keys.insert(id.clone(), key.clone());
                self.enc_log.push(id.clone());
                Ok(QkdKey {
                    key_id: id.into_bytes(),
                    material: zeroize::Zeroizing::new(key),
                })
            }
            Some(id) => {
                let mut key = self
                    .keys
                    .remove(&id)
                    .ok_or("one or more keys specified are not found on KME")?;
                if self.corrupt_dec {
                    key[0] ^= 1;
                }
                self.dec_log.push(id.clone());
                Ok(QkdKey {
                    key_id: id.into_bytes(),
                    material: zeroize::Zeroizing::new(key),
                })
            }
        }
    }
}

/// Public identities and the private material needed to rebuild an endpoint (restart).
pub struct PublicPair {
    pub dh: [u8; 32],
    pub kem: Vec<u8>,
}

pub fn budget(rekey_bytes: u64, rekey_secs: u64) -> RotationBudget {
    RotationBudget {
        rekey_after_bytes: rekey_bytes,
        rekey_after: Duration::from_secs(rekey_secs),
        reject_after_bytes: rekey_bytes + rekey_bytes / 4,
        reject_after: Duration::from_secs(rekey_secs * 3 / 2),
    }
}

fn export(id: &StaticIdentity) -> PublicPair {
    PublicPair {
        dh: *id.dh.to_bytes().unwrap().expose(),
        kem: id.kem.to_bytes().unwrap().to_vec(),
    }
}

fn import(p: &PublicPair) -> StaticIdentity {
    use qshield::crypto::Secret;
    use qshield::crypto::dh::DhSecret;
    use qshield::crypto::kem::KemSecret;
    StaticIdentity {
        dh: DhSecret::from_bytes(&Secret::new(p.dh)).unwrap(),
        kem: KemSecret::from_bytes(&p.kem).unwrap(),
    }
}

/// How long [`Sim::establish`] waits (simulated time) for both sides to share a session.
pub const ESTABLISH_DEADLINE: Duration = Duration::from_secs(10);

const ADDR_A: &str = "198.18.0.1:51820";
const ADDR_B: &str = "198.18.0.2:51820";

#[allow(clippy::too_many_arguments)] // a test fixture: each argument is one knob of a site
fn endpoint(
    own: &StaticIdentity,
    peer: &StaticIdentity,
    peer_addr: SocketAddr,
    peer_overlay: [u8; 4],
    budget: RotationBudget,
    suite: CipherSuite,
    seed: u64,
    unix: u64,
    persistent_keepalive: Option<Duration>,
    qkd_policy: QkdPolicy,
) -> Endpoint {
    let own = import(&export(own));
    let settings = EndpointSettings {
        identity: own,
        suite,
        budget,
        peers: vec![PeerSettings {
            name: "peer".into(),
            public: peer.public(),
            endpoint: Some(peer_addr),
            allowed_ips: vec![IpCidr::new(peer_overlay.into(), 32).unwrap()],
            persistent_keepalive,
        }],
        qkd_policy,
        unix_ns_at_origin: unix,
    };
    Endpoint::new(settings, Box::new(SeededRng::new(seed)))
}

impl Sim {
    pub fn new(budget: RotationBudget) -> Sim {
        Self::with_suite(budget, CipherSuite::Aes256Gcm)
    }

    pub fn with_suite(budget: RotationBudget, suite: CipherSuite) -> Sim {
        let mut o = SimOptions::new(budget);
        o.suite_a = suite;
        o.suite_b = suite;
        Self::with_options(o)
    }

    pub fn with_options(o: SimOptions) -> Sim {
        let ia = StaticIdentity::generate().unwrap();
        let ib = StaticIdentity::generate().unwrap();
        let stranger = StaticIdentity::generate().unwrap();
        let (aa, ab): (SocketAddr, SocketAddr) = (ADDR_A.parse().unwrap(), ADDR_B.parse().unwrap());
        let a_knows = if o.a_has_wrong_key_for_b {
            &stranger
        } else {
            &ib
        };
        let b_knows = if o.b_has_wrong_key_for_a {
            &stranger
        } else {
            &ia
        };
        let (budget, suite) = (o.budget, o.suite_a);
        let ea = endpoint(
            &ia,
            a_knows,
            ab,
            [198, 19, 0, 2],
            budget,
            suite,
            1,
            1_000_000,
            o.persistent_keepalive,
            o.qkd_policy.0,
        );
        let eb = endpoint(
            &ib,
            b_knows,
            aa,
            [198, 19, 0, 1],
            budget,
            o.suite_b,
            2,
            2_000_000,
            o.persistent_keepalive,
            o.qkd_policy.1,
        );
        Sim {
            now: Instant::ZERO,
            a: Site::new(ea, aa, [198, 19, 0, 1]),
            b: Site::new(eb, ab, [198, 19, 0, 2]),
            wire: vec![],
            latency: Duration::from_millis(1),
            filter: None,
            identities: (export(&ia), export(&ib)),
            budget,
            suite,
            suites: (o.suite_a, o.suite_b),
            delivered: 0,
            qkd_policy: o.qkd_policy,
            kme: SimKme::default(),
            kme_answers: vec![],
        }
    }

    pub fn site(&mut self, s: Side) -> &mut Site {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Replaces a side's endpoint with a fresh one (same identity, later wall clock): a restart.
    pub fn restart(&mut self, s: Side) {
        let (own, peer) = match s {
            Side::A => (&self.identities.0, &self.identities.1),
            Side::B => (&self.identities.1, &self.identities.0),
        };
        let (own, peer) = (import(own), import(peer));
        let (peer_addr, peer_overlay) = match s {
            Side::A => (self.b.addr, self.b.overlay),
            Side::B => (self.a.addr, self.a.overlay),
        };
        let unix = 10_000_000_000 + self.now.as_nanos();
        let e = endpoint(
            &own,
            &peer,
            peer_addr,
            peer_overlay,
            self.budget,
            match s {
                Side::A => self.suites.0,
                Side::B => self.suites.1,
            },
            99,
            unix,
            None,
            if s == Side::A {
                self.qkd_policy.0
            } else {
                self.qkd_policy.1
            },
        );
        let site = self.site(s);
        site.endpoint = e;
        site.received.clear();
    }

    /// An IPv4/UDP-shaped inner packet from `s` to the other side with `len` payload bytes.
    pub fn packet(&self, s: Side, len: usize, tag: u32) -> Vec<u8> {
        let (src, dst) = match s {
            Side::A => (self.a.overlay, self.b.overlay),
            Side::B => (self.b.overlay, self.a.overlay),
        };
        let total = 28 + len;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[28..28 + len.min(4)].copy_from_slice(&tag.to_le_bytes()[..len.min(4)]);
        p
    }

    /// The tag [`Sim::packet`] wrote into an inner packet.
    pub fn tag_of(packet: &[u8]) -> u32 {
        u32::from_le_bytes(packet[28..32].try_into().unwrap())
    }

    /// Hands inner packets to `s`'s endpoint as if read from its TUN.
    pub fn send(&mut self, s: Side, packets: &[Vec<u8>]) {
        let now = self.now;
        let mut batch = PacketBatch::new(packets.len().max(1), 1500);
        for (i, p) in packets.iter().enumerate() {
            batch.slot_mut(i)[DATA_HEADER_BYTES..DATA_HEADER_BYTES + p.len()].copy_from_slice(p);
            batch.set_meta(
                i,
                qshield::batch::SlotMeta {
                    start: DATA_HEADER_BYTES,
                    len: p.len(),
                    addr: None,
                },
            );
        }
        batch.set_len(packets.len());
        self.site(s).endpoint.seal_batch(now, &mut batch);
        for i in 0..batch.len() {
            if batch.meta(i).len > 0 {
                let bytes = batch.bytes(i).to_vec();
                self.put_on_wire(s, bytes);
            }
        }
        self.collect(s);
    }

    fn put_on_wire(&mut self, from: Side, bytes: Vec<u8>) {
        check_datagram_size(&bytes);
        let mut d = Datagram {
            from,
            deliver_at: self.now + self.latency,
            bytes,
        };
        let fate = match self.filter.as_mut() {
            Some(f) => f(&mut d),
            None => Fate::Deliver,
        };
        match fate {
            Fate::Deliver => self.wire.push(d),
            Fate::Drop => {}
            Fate::Delay(extra) => {
                d.deliver_at = d.deliver_at + extra;
                self.wire.push(d);
            }
            Fate::Duplicate(extra) => {
                let mut copy = d.clone();
                copy.deliver_at = copy.deliver_at + extra;
                self.wire.push(d);
                self.wire.push(copy);
            }
        }
    }

    /// Moves a side's pending transmits onto the wire and its events into its log.
    pub fn collect(&mut self, s: Side) {
        let sizes = self.site(s).endpoint.state_sizes();
        let high = &mut self.site(s).queue_high_water;
        high.transmits = high.transmits.max(sizes.transmits_queued);
        high.events = high.events.max(sizes.events_queued);
        high.qkd_requests = high.qkd_requests.max(sizes.qkd_requests_queued);
        let peer_addr = self.site(s.other()).addr;
        while let Some(t) = self.site(s).endpoint.poll_transmit() {
            if t.to == peer_addr {
                self.put_on_wire(s, t.payload);
            } else {
                check_datagram_size(&t.payload);
                self.site(s).stray.push(t);
            }
        }
        let now = self.now;
        if let Some(r) = self.site(s).endpoint.poll_qkd_request() {
            let delay = match r.key_id {
                Some(_) => self.kme.dec_keys_delay,
                None => self.kme.enc_keys_delay,
            };
            let answer = self.kme.answer(r.key_id);
            if let Some(delay) = delay {
                self.kme_answers.push((now + delay, s, r.id, answer));
            } else {
                self.site(s).endpoint.handle_qkd_key(now, r.id, answer);
            }
            return self.collect(s);
        }
        while let Some(e) = self.site(s).endpoint.poll_event() {
            let site = self.site(s);
            if let Event::SessionEstablished { peer, epoch, .. } = e {
                let probe = site.endpoint.session_probes(peer);
                let session = probe.iter().find(|p| p.epoch == epoch);
                site.sessions_seen.push(SessionSeen {
                    at: now,
                    epoch,
                    is_initiator: session.is_some_and(|p| p.is_initiator),
                    qkd_key_id: session.and_then(|p| p.qkd_key_id.clone()),
                });
            }
            site.log.push((now, e.clone()));
            site.events.push(e);
        }
    }

    /// Hands a datagram straight to `to`'s endpoint (bypassing the wire and its filter) as
    /// if it came from `from`; returns the inner packet it carried, if any.
    pub fn inject(&mut self, to: Side, from: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        let now = self.now;
        let mut buf = bytes.to_vec();
        let site = self.site(to);
        let inner = site
            .endpoint
            .receive(now, from, &mut buf)
            .map(|n| buf[DATA_HEADER_BYTES..DATA_HEADER_BYTES + n].to_vec());
        if let Some(p) = &inner {
            site.received.push(p.clone());
        }
        self.collect(to);
        inner
    }

    /// An initiation to B that claims to come from A, built by someone who holds A's X25519
    /// private key but not its ML-KEM one (a random ML-KEM key stands in): it passes every
    /// check of message 1, and its sender cannot finish the handshake. Returns its fragments
    /// (mac1 valid, no mac2), ready for [`Sim::inject`].
    pub fn forged_initiation_from_a(
        &self,
        timestamp_unix_ns: u64,
        qkd_key_id: Option<&str>,
    ) -> Vec<Vec<u8>> {
        use qshield::crypto::Secret;
        use qshield::crypto::dh::DhSecret;
        use qshield::crypto::kem::KemSecret;
        use qshield::proto::handshake::{FreshEphemerals, InitiationParams, create_initiation};
        let forger = StaticIdentity {
            dh: DhSecret::from_bytes(&Secret::new(self.identities.0.dh)).unwrap(),
            kem: KemSecret::generate().unwrap(),
        };
        let a_public = import(&self.identities.0).public();
        let b_public = import(&self.identities.1).public();
        let sender_index = 0x5eed_0000 | (timestamp_unix_ns as u32 & 0xffff);
        let params = InitiationParams {
            suite: self.suite,
            sender_index,
            timestamp_unix_ns,
            qkd: qkd_key_id.map(|id| QkdKey {
                key_id: id.as_bytes().to_vec(),
                material: zeroize::Zeroizing::new(vec![0; 32]),
            }),
            local_public: &a_public,
        };
        let (message, _) =
            create_initiation(&forger, &b_public, params, &mut FreshEphemerals).unwrap();
        let mac1_key = qshield::proto::cookie::mac1_key(&b_public.dh);
        qshield::proto::wire::split_message(
            qshield::proto::wire::TYPE_INITIATION,
            sender_index,
            &message,
        )
        .into_iter()
        .map(|mut f| {
            qshield::proto::cookie::append_macs(&mut f, &mac1_key, None);
            f
        })
        .collect()
    }

    /// Sum of every drop counter of a side (interface and peer).
    pub fn total_drops(&self, s: Side) -> u64 {
        let i = self.drops(s);
        let p = self.status(s).drops;
        i.malformed
            + i.unknown_index
            + i.stale_reply
            + i.bad_mac1
            + i.cookie_required
            + i.rate_limited
            + i.handshake_rejected
            + i.no_route
            + p.bad_tag
            + p.replay
            + p.key_expired
            + p.disallowed_source
            + p.no_session
    }

    /// The instant of the first event of `s` matching `f`.
    pub fn first_event_at(&self, s: Side, f: impl Fn(&Event) -> bool) -> Option<Instant> {
        let site = match s {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        site.log.iter().find(|(_, e)| f(e)).map(|(t, _)| *t)
    }

    /// Events of `s` matching `f`.
    pub fn count_events(&self, s: Side, f: impl Fn(&Event) -> bool) -> usize {
        let site = match s {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        site.events.iter().filter(|e| f(e)).count()
    }

    /// Hands back the delayed KME answers that are due; true if there were any.
    fn answer_due(&mut self) -> bool {
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) =
            self.kme_answers.drain(..).partition(|(at, ..)| *at <= now);
        self.kme_answers = rest;
        let any = !due.is_empty();
        for (_, s, id, answer) in due {
            self.site(s).endpoint.handle_qkd_key(now, id, answer);
            self.collect(s);
        }
        any
    }

    fn deliver_due(&mut self) -> bool {
        let now = self.now;
        if self.answer_due() {
            return true;
        }
        let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|d| d.deliver_at <= now);
        self.wire = rest;
        let any = !due.is_empty();
        for mut d in due {
            let to = d.from.other();
            let from_addr = self.site(d.from).addr;
            let site = self.site(to);
            if let Some(n) = site.endpoint.receive(now, from_addr, &mut d.bytes) {
                site.received
                    .push(d.bytes[DATA_HEADER_BYTES..DATA_HEADER_BYTES + n].to_vec());
            }
            self.delivered += 1;
            self.collect(to);
        }
        any
    }

    /// Runs the network and timers until `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            for s in [Side::A, Side::B] {
                let now = self.now;
                self.site(s).endpoint.handle_timeout(now);
                self.collect(s);
            }
            while self.deliver_due() {}
            let next = [
                self.a.endpoint.poll_timeout(),
                self.b.endpoint.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .chain(self.wire.iter().map(|d| d.deliver_at))
            .chain(self.kme_answers.iter().map(|(at, ..)| *at))
            .filter(|&t| t > self.now)
            .min();
            match next {
                Some(t) if t <= until => self.now = t,
                _ => {
                    self.now = until;
                    for s in [Side::A, Side::B] {
                        let now = self.now;
                        self.site(s).endpoint.handle_timeout(now);
                        self.collect(s);
                    }
                    while self.deliver_due() {}
                    return;
                }
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Starts A and runs the start-up window, checking nothing: 50 ms, and when no session
    /// formed in it, `QKD_SIMULTANEOUS_START_YIELD` more (under a QKD policy a starting site
    /// with the higher static key first waits for the peer's initiation; B, not started,
    /// sends none, so A goes after it). For tests in which the handshake is meant to fail.
    pub fn start_a_and_run(&mut self) {
        self.a.endpoint.start(self.now);
        self.collect(Side::A);
        self.run_for(Duration::from_millis(50));
        if !(self.has_current(Side::A) && self.has_current(Side::B)) {
            let yield_time = qshield::constants::QKD_SIMULTANEOUS_START_YIELD;
            self.run_for(yield_time + Duration::from_millis(50));
        }
    }

    /// Starts A and runs until both sides have a current session of the same handshake (see
    /// [`Sim::sessions_disagree`]; the responder's becomes current only once confirmed by
    /// the initiator's first packet under it), or panics after [`ESTABLISH_DEADLINE`] of
    /// simulated time. Under a QKD policy A may first wait out
    /// `QKD_SIMULTANEOUS_START_YIELD` (B, not started, sends no initiation).
    pub fn establish(&mut self) {
        self.a.endpoint.start(self.now);
        self.collect(Side::A);
        let deadline = self.now + ESTABLISH_DEADLINE;
        loop {
            if let Some(why) = self.sessions_disagree() {
                if self.now >= deadline {
                    panic!(
                        "establish: no common confirmed session after {ESTABLISH_DEADLINE:?}: {why}"
                    );
                }
                self.run_for(Duration::from_millis(1));
            } else {
                return;
            }
        }
    }

    /// Why A and B do not (yet) share one current session; `None` when they do: both have a
    /// current key, one as initiator and the other as responder, with the same key sources
    /// and QKD key_ID. Epochs are not compared: each side counts its own sessions (a
    /// restart, or an answered forgery, makes them differ).
    pub fn sessions_disagree(&self) -> Option<String> {
        let (a, b) = (self.status(Side::A), self.status(Side::B));
        let (ka, kb) = match (a.current_key, b.current_key) {
            (Some(ka), Some(kb)) => (ka, kb),
            (ka, kb) => {
                return Some(format!(
                    "A has a current key: {}, B has one: {}",
                    ka.is_some(),
                    kb.is_some()
                ));
            }
        };
        if ka.role == kb.role || (&ka.sources, &ka.qkd_key_id) != (&kb.sources, &kb.qkd_key_id) {
            return Some(format!(
                "A's key: epoch {} {:?} sources {:?} key_ID {:?}; B's: epoch {} {:?} sources {:?} key_ID {:?}",
                ka.epoch,
                ka.role,
                ka.sources,
                ka.qkd_key_id,
                kb.epoch,
                kb.role,
                kb.sources,
                kb.qkd_key_id
            ));
        }
        None
    }

    /// [`Sim::with_options`] with identities drawn until A has the lower static key (A's
    /// initiations win the simultaneous-initiation rule, and A never yields at start).
    pub fn with_options_a_lower(o: SimOptions) -> Sim {
        loop {
            let sim = Self::with_options(o);
            if sim.a.endpoint.public().dh.0 < sim.b.endpoint.public().dh.0 {
                return sim;
            }
        }
    }

    pub fn has_current(&self, s: Side) -> bool {
        let site = match s {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        site.endpoint.status(self.now).peers[0]
            .current_key
            .is_some()
    }

    pub fn status(&self, s: Side) -> qshield::proto::status::PeerStatus {
        let site = match s {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        site.endpoint.status(self.now).peers[0].clone()
    }

    pub fn drops(&self, s: Side) -> qshield::proto::status::InterfaceDrops {
        let site = match s {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        site.endpoint.status(self.now).drops
    }
}
