//! A hub with many peers, in the in-memory twin (no root, no sockets): one hub endpoint with
//! N spoke peers and N spoke endpoints with the hub as their peer, datagrams handed between
//! them in memory, for N = 10, 100 and 1000. Reported against N, so growth shows:
//!
//! - the heap the hub holds per peer, configured and with every session up (a counting
//!   allocator that counts only the hub's calls);
//! - the time until all N first handshakes are complete when every spoke starts at once,
//!   without and with QKD keys (the KME twin, `qkd::memory::MemoryKme`, answering at once):
//!   a virtual clock that advances by the hub's own processing time (the spokes are other
//!   machines, working in parallel) and jumps over protocol waits (cookie replies under
//!   load, retransmissions);
//! - rotation: the most sessions that rekey within one second of each other;
//! - criterion: routing and sealing one packet to a random peer among N (the allowed-IPs
//!   prefix trie), the same lookup as a scan of every prefix (what the trie replaced), and
//!   one pass of the hub's timers.
//!
//! In test mode (`cargo test --bench hub`, as scripts/test.sh runs it) the report runs once
//! at each N and asserts what must hold at any speed: every session up, none lost, the
//! rotation spread, every packet routed to its own peer.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use qshield::batch::{PacketBatch, SlotMeta};
use qshield::cidr::{IpCidr, PrefixTable};
use qshield::constants::DATA_HEADER_BYTES;
use qshield::crypto::random::SeededRng;
use qshield::crypto::{CipherSuite, StaticIdentity};
use qshield::proto::PeerId;
use qshield::proto::endpoint::{Endpoint, EndpointSettings, PeerSettings};
use qshield::proto::events::{Event, Transmit};
use qshield::proto::handshake::QkdKey;
use qshield::proto::qkd_flow::QkdPolicy;
use qshield::proto::session::RotationBudget;
use qshield::proto::time::Instant;
use qshield::qkd::KeySource;
use qshield::qkd::memory::{MemoryKme, MemoryKmeClient};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

/// Peer counts reported.
const PEER_COUNTS: [usize; 3] = [10, 100, 1000];
/// Session keys are rekeyed after this (the default `rekey_after`).
const REKEY_AFTER: Duration = Duration::from_secs(120);
/// QKD key size, bits.
const QKD_KEY_BITS: u32 = 256;
/// Give up on the handshakes after this much virtual time.
const UP_DEADLINE: Duration = Duration::from_secs(60);
/// Packets per sealed batch in the routing benchmark.
const BATCH_PACKETS: usize = 64;
/// Inner packet size in the routing benchmark, bytes.
const INNER_BYTES: usize = 64;
/// Tunnel MTU, bytes.
const MTU: usize = 1420;

// ------------------------------------------------------------ the hub's heap

/// Counts the bytes allocated minus freed while [`hub_scope`] runs on this thread.
struct CountingAlloc;

static HUB_LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static IN_HUB: Cell<bool> = const { Cell::new(false) };
}

fn count(delta: isize) {
    if IN_HUB.with(Cell::get) {
        HUB_LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to `System` unchanged; only a counter is updated beside it.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` with this layout (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: as for `dealloc`, and `new_size` is the caller's to choose.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` as the hub: what it allocates and frees is the hub's.
fn hub_scope<R>(f: impl FnOnce() -> R) -> R {
    IN_HUB.with(|c| c.set(true));
    let r = f();
    IN_HUB.with(|c| c.set(false));
    r
}

fn hub_live_bytes() -> isize {
    HUB_LIVE_BYTES.load(Ordering::Relaxed)
}

// ------------------------------------------------------------ the network

fn spoke_addr(i: usize) -> SocketAddr {
    let host = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + 1 + i as u32;
    SocketAddr::new(IpAddr::V4(host.into()), 51820)
}

const HUB_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 19, 255, 1)), 51820);

/// Spoke `i`'s inner network: a /28 of 198.19.0.0/16 (4096 of them).
fn spoke_net(i: usize) -> IpCidr {
    let base = u32::from(Ipv4Addr::new(198, 19, 0, 0)) + 16 * i as u32;
    IpCidr::new(IpAddr::V4(base.into()), 28).unwrap()
}

fn hub_net() -> IpCidr {
    "198.19.255.0/28".parse().unwrap()
}

fn budget() -> RotationBudget {
    RotationBudget {
        rekey_after_bytes: 1 << 40,
        rekey_after: REKEY_AFTER,
        reject_after_bytes: 1 << 41,
        reject_after: REKEY_AFTER * 3 / 2,
    }
}

fn policy(qkd: bool) -> QkdPolicy {
    if qkd {
        QkdPolicy::Require
    } else {
        QkdPolicy::Disable
    }
}

/// One hub, N spokes and the KME twin, on a virtual clock.
struct HubNet {
    hub: Endpoint,
    spokes: Vec<Endpoint>,
    kme_hub: MemoryKmeClient,
    kme_spokes: Vec<MemoryKmeClient>,
    now: Instant,
    /// When each spoke saw each of its sessions established (epoch → instant).
    spoke_sessions: Vec<BTreeMap<u64, Instant>>,
    /// Data packets the hub opened, per peer (each spoke sends one when its first session is
    /// up: the tunnel's first traffic, which also confirms the session to the hub).
    hub_opened: Vec<u64>,
    /// Datagrams in flight to the hub, with their source.
    to_hub: Vec<(SocketAddr, Vec<u8>)>,
    /// The hub's live heap right after it was built.
    configured_bytes: isize,
}

impl HubNet {
    fn new(n: usize, qkd: bool) -> HubNet {
        let spoke_ids: Vec<StaticIdentity> = (0..n)
            .map(|_| StaticIdentity::generate().unwrap())
            .collect();
        let before = hub_live_bytes();
        let (hub, hub_public) = hub_scope(|| {
            let identity = StaticIdentity::generate().unwrap();
            let public = identity.public();
            let peers = spoke_ids
                .iter()
                .enumerate()
                .map(|(i, id)| PeerSettings {
                    name: format!("spoke-{i}"),
                    public: id.public(),
                    endpoint: None,
                    allowed_ips: vec![spoke_net(i)],
                    persistent_keepalive: None,
                })
                .collect();
            let settings = EndpointSettings {
                identity,
                suite: CipherSuite::Aes256Gcm,
                budget: budget(),
                peers,
                qkd_policy: policy(qkd),
                unix_ns_at_origin: 1_700_000_000_000_000_000,
            };
            (Endpoint::new(settings, Box::new(SeededRng::new(1))), public)
        });
        let configured_bytes = hub_live_bytes() - before;
        let spokes = spoke_ids
            .into_iter()
            .enumerate()
            .map(|(i, identity)| {
                let settings = EndpointSettings {
                    identity,
                    suite: CipherSuite::Aes256Gcm,
                    budget: budget(),
                    peers: vec![PeerSettings {
                        name: "hub".into(),
                        public: hub_public.clone(),
                        endpoint: Some(HUB_ADDR),
                        allowed_ips: vec![hub_net()],
                        persistent_keepalive: None,
                    }],
                    qkd_policy: policy(qkd),
                    unix_ns_at_origin: 1_700_000_000_000_000_000,
                };
                Endpoint::new(settings, Box::new(SeededRng::new(100 + i as u64)))
            })
            .collect();
        let kme = MemoryKme::new();
        HubNet {
            hub,
            spokes,
            kme_hub: kme.client("hub"),
            kme_spokes: (0..n).map(|i| kme.client(&format!("spoke-{i}"))).collect(),
            now: Instant::ZERO,
            spoke_sessions: vec![BTreeMap::new(); n],
            hub_opened: vec![0; n],
            to_hub: Vec::new(),
            configured_bytes,
        }
    }

    /// Runs the hub on what is in flight to it; its time is the virtual clock's.
    fn run_hub(&mut self) {
        let started = std::time::Instant::now();
        let now = self.now;
        let (hub, to_hub) = (&mut self.hub, &mut self.to_hub);
        let opened = &mut self.hub_opened;
        hub_scope(|| {
            for (from, datagram) in to_hub.iter_mut() {
                if hub.receive(now, *from, datagram).is_some() {
                    opened[spoke_index(*from)] += 1;
                }
            }
        });
        self.to_hub.clear();
        self.answer_hub_qkd();
        let out = self.hub_output();
        self.now = self.now + started.elapsed();
        self.deliver_to_spokes(out);
    }

    /// What the hub sends now; its events are dropped.
    fn hub_output(&mut self) -> Vec<Transmit> {
        hub_scope(|| {
            while self.hub.poll_event().is_some() {}
            std::iter::from_fn(|| self.hub.poll_transmit()).collect()
        })
    }

    fn answer_hub_qkd(&mut self) {
        while let Some(r) = hub_scope(|| self.hub.poll_qkd_request()) {
            let master = format!("spoke-{}", r.peer.index());
            let key_id = r
                .key_id
                .clone()
                .expect("the spokes initiate: the hub decrypts");
            let key = self.kme_hub.key_by_id(&master, &key_id, QKD_KEY_BITS);
            let now = self.now;
            hub_scope(|| {
                let answer = key
                    .map(|k| QkdKey {
                        key_id: k.key_id.as_bytes().to_vec(),
                        material: k.key.to_vec().into(),
                    })
                    .map_err(|e| e.to_string());
                self.hub.handle_qkd_key(now, r.id, answer);
                drop(r);
            });
        }
    }

    fn deliver_to_spokes(&mut self, mut out: Vec<Transmit>) {
        for t in &mut out {
            let i = spoke_index(t.to);
            self.spokes[i].receive(self.now, HUB_ADDR, &mut t.payload);
            self.drain_spoke(i);
        }
        hub_scope(|| drop(out));
    }

    /// Moves spoke `i`'s datagrams towards the hub, answers its key requests, notes its
    /// sessions.
    fn drain_spoke(&mut self, i: usize) {
        loop {
            let spoke = &mut self.spokes[i];
            while let Some(t) = spoke.poll_transmit() {
                self.to_hub.push((spoke_addr(i), t.payload));
            }
            let Some(r) = spoke.poll_qkd_request() else {
                break;
            };
            let answer = match &r.key_id {
                None => self.kme_spokes[i].new_key("hub", QKD_KEY_BITS),
                Some(id) => self.kme_spokes[i].key_by_id("hub", id, QKD_KEY_BITS),
            }
            .map(|k| QkdKey {
                key_id: k.key_id.as_bytes().to_vec(),
                material: k.key.to_vec().into(),
            })
            .map_err(|e| e.to_string());
            spoke.handle_qkd_key(self.now, r.id, answer);
        }
        while let Some(e) = self.spokes[i].poll_event() {
            if let Event::SessionEstablished { epoch, .. } = e {
                self.spoke_sessions[i].entry(epoch).or_insert(self.now);
                if epoch == 1 {
                    self.send_first_packet(i);
                }
            }
        }
    }

    /// Spoke `i` sends one inner packet to the hub's network.
    fn send_first_packet(&mut self, i: usize) {
        let mut batch = PacketBatch::new(1, MTU);
        batch.set_len(1);
        write_inner(&mut batch, 0, spoke_net(i).addr, hub_net().addr);
        self.spokes[i].seal_batch(self.now, &mut batch);
        let meta = batch.meta(0);
        assert_eq!(
            meta.addr,
            Some(HUB_ADDR),
            "spoke {i}'s first packet is sealed"
        );
        self.to_hub.push((spoke_addr(i), batch.bytes(0).to_vec()));
    }

    /// Runs until `done` holds or the virtual clock passes `until`; false if it passed.
    fn run_until(&mut self, until: Instant, done: impl Fn(&HubNet) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.to_hub.is_empty() {
                self.run_hub();
                continue;
            }
            // nothing in flight: the next timer anywhere
            let next = std::iter::once(self.hub.poll_timeout())
                .chain(self.spokes.iter().map(|s| s.poll_timeout()))
                .flatten()
                .min();
            let Some(next) = next.filter(|t| *t <= until) else {
                return false;
            };
            self.now = self.now.max(next);
            let now = self.now;
            hub_scope(|| self.hub.handle_timeout(now));
            self.answer_hub_qkd();
            let out = self.hub_output();
            self.deliver_to_spokes(out);
            for i in 0..self.spokes.len() {
                if self.spokes[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.spokes[i].handle_timeout(now);
                    self.drain_spoke(i);
                }
            }
        }
    }

    fn start(&mut self) {
        for i in 0..self.spokes.len() {
            self.spokes[i].start(self.now);
            self.drain_spoke(i);
        }
    }

    fn sessions_at_spokes(&self, epoch: u64) -> usize {
        self.spoke_sessions
            .iter()
            .filter(|s| s.contains_key(&epoch))
            .count()
    }

    /// Every spoke's session is up and its first packet arrived at the hub.
    fn all_up(&self) -> bool {
        self.hub_opened.iter().all(|&n| n >= 1)
    }

    /// The most sessions of `epoch` established within one second of each other.
    fn densest_second(&self, epoch: u64) -> usize {
        let mut at: Vec<Duration> = self
            .spoke_sessions
            .iter()
            .filter_map(|s| s.get(&epoch))
            .map(|t| t.saturating_since(Instant::ZERO))
            .collect();
        at.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..at.len() {
            while at[hi] - at[lo] >= Duration::from_secs(1) {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

fn spoke_index(addr: SocketAddr) -> usize {
    let IpAddr::V4(ip) = addr.ip() else {
        panic!("a spoke address is IPv4: {addr}");
    };
    (u32::from(ip) - u32::from(Ipv4Addr::new(198, 18, 0, 0)) - 1) as usize
}

// ------------------------------------------------------------ the report

struct ScaleRow {
    peers: usize,
    qkd: bool,
    configured_bytes_per_peer: f64,
    up_bytes_per_peer: f64,
    all_up: Duration,
    cookies: u64,
    densest_rekey_second: usize,
}

fn measure(n: usize, qkd: bool) -> ScaleRow {
    let mut net = HubNet::new(n, qkd);
    net.start();
    let deadline = Instant::ZERO + UP_DEADLINE;
    assert!(
        net.run_until(deadline, HubNet::all_up),
        "{n} peers (qkd {qkd}): {} of {n} spokes' sessions up, {} of {n} first packets at the hub after {UP_DEADLINE:?}",
        net.sessions_at_spokes(1),
        net.hub_opened.iter().filter(|&&s| s >= 1).count()
    );
    let all_up = net.now.saturating_since(Instant::ZERO);
    let up_bytes = hub_live_bytes();
    let cookies = net.hub.status(net.now).drops.cookie_required;
    // every session rekeyed once
    let rotated = Instant::ZERO + REKEY_AFTER * 5 / 4;
    assert!(
        net.run_until(rotated, |h| h.sessions_at_spokes(2) == n),
        "{n} peers (qkd {qkd}): {} of {n} rekeyed by {:?}",
        net.sessions_at_spokes(2),
        REKEY_AFTER * 5 / 4
    );
    // spread: at most a fifth of the sessions (and a few) rekey within one second; without
    // the spread all 1000 did (they were made within 0.2 s of each other)
    let densest = net.densest_second(2);
    assert!(
        densest <= n / 5 + 3,
        "{n} peers (qkd {qkd}): {densest} sessions rekeyed within one second"
    );
    let row = ScaleRow {
        peers: n,
        qkd,
        configured_bytes_per_peer: net.configured_bytes as f64 / n as f64,
        up_bytes_per_peer: up_bytes as f64 / n as f64,
        all_up,
        cookies,
        densest_rekey_second: densest,
    };
    let bytes_before_drop = hub_live_bytes();
    hub_scope(|| drop(net.hub));
    assert!(
        hub_live_bytes() < bytes_before_drop / 8 + 64 * 1024,
        "the hub's heap is freed with it ({} of {bytes_before_drop} bytes left)",
        hub_live_bytes()
    );
    HUB_LIVE_BYTES.store(0, Ordering::Relaxed);
    row
}

fn report() {
    println!(
        "hub scale (in-memory twin; virtual clock = the hub's processing time + protocol waits)"
    );
    println!(
        "{:>6} {:>5} {:>14} {:>14} {:>12} {:>8} {:>20}",
        "peers", "qkd", "B/peer config", "B/peer up", "all up", "cookies", "rekeys in 1 s (max)"
    );
    for qkd in [false, true] {
        for n in PEER_COUNTS {
            let r = measure(n, qkd);
            println!(
                "{:>6} {:>5} {:>14.0} {:>14.0} {:>10.1}ms {:>8} {:>20}",
                r.peers,
                if r.qkd { "yes" } else { "no" },
                r.configured_bytes_per_peer,
                r.up_bytes_per_peer,
                r.all_up.as_secs_f64() * 1e3,
                r.cookies,
                r.densest_rekey_second,
            );
        }
    }
}

// ------------------------------------------------------------ criterion

/// Writes an IPv4/UDP inner packet of `INNER_BYTES` from host 1 of `src_net` to host 1 of
/// `dst_net` into slot `slot`.
fn write_inner(batch: &mut PacketBatch, slot: usize, src_net: IpAddr, dst_net: IpAddr) {
    let host1 = |a: IpAddr| match a {
        IpAddr::V4(a) => (u32::from(a) + 1).to_be_bytes(),
        IpAddr::V6(_) => unreachable!("the bench's networks are IPv4"),
    };
    let p = &mut batch.slot_mut(slot)[DATA_HEADER_BYTES..DATA_HEADER_BYTES + INNER_BYTES];
    p.fill(0);
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(INNER_BYTES as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&host1(src_net));
    p[16..20].copy_from_slice(&host1(dst_net));
    batch.set_meta(
        slot,
        SlotMeta {
            start: DATA_HEADER_BYTES,
            len: INNER_BYTES,
            addr: None,
        },
    );
}

/// A batch of `BATCH_PACKETS` inner packets to random spokes (by a fixed sequence), and the
/// spoke each is for.
fn packets_to_random_spokes(n: usize) -> (PacketBatch, Vec<usize>) {
    let mut batch = PacketBatch::new(BATCH_PACKETS, MTU);
    batch.set_len(BATCH_PACKETS);
    let mut x = 0x9e37_79b9_u32;
    let mut to = Vec::new();
    for slot in 0..BATCH_PACKETS {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let i = x as usize % n;
        write_inner(&mut batch, slot, hub_net().addr, spoke_net(i).addr);
        to.push(i);
    }
    (batch, to)
}

fn bench(c: &mut Criterion) {
    if !std::env::args().any(|a| a == "--list") {
        report();
    }
    for n in PEER_COUNTS {
        let mut net = HubNet::new(n, false);
        net.start();
        assert!(net.run_until(Instant::ZERO + UP_DEADLINE, HubNet::all_up));
        let now = net.now;
        // every packet sealed towards its own spoke, none dropped
        let (mut check, to) = packets_to_random_spokes(n);
        net.hub.seal_batch(now, &mut check);
        for (slot, &i) in to.iter().enumerate() {
            assert_eq!(check.meta(slot).addr, Some(spoke_addr(i)), "slot {slot}");
        }
        c.bench_function(
            &format!("hub/route+seal {BATCH_PACKETS} packets, {n} peers"),
            |b| {
                b.iter_batched_ref(
                    || packets_to_random_spokes(n).0,
                    |batch| net.hub.seal_batch(now, batch),
                    BatchSize::SmallInput,
                )
            },
        );
        let prefixes: Vec<IpCidr> = (0..n).map(spoke_net).collect();
        let trie = PrefixTable::new(
            prefixes
                .iter()
                .enumerate()
                .map(|(i, c)| (c, PeerId::from_index(i))),
        );
        let dsts: Vec<IpAddr> = to.iter().map(|&i| spoke_net(i).addr).collect();
        c.bench_function(
            &format!("hub/route {BATCH_PACKETS} packets (trie), {n} peers"),
            |b| {
                b.iter(|| {
                    for d in &dsts {
                        black_box(trie.lookup(*d));
                    }
                })
            },
        );
        c.bench_function(
            &format!("hub/route {BATCH_PACKETS} packets (scan of every prefix), {n} peers"),
            |b| {
                b.iter(|| {
                    for d in &dsts {
                        black_box(
                            prefixes
                                .iter()
                                .enumerate()
                                .filter(|(_, c)| c.contains(*d))
                                .max_by_key(|(_, c)| c.prefix)
                                .map(|(i, _)| i),
                        );
                    }
                })
            },
        );
        c.bench_function(&format!("hub/one timer pass, {n} peers"), |b| {
            b.iter(|| {
                net.hub.handle_timeout(now);
                black_box(net.hub.poll_timeout())
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
