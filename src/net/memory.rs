//! In-memory twins of the TUN device and the UDP socket, built on `Mutex` + `Condvar`
//! queues. They honor the same contracts as the real devices (wait at most `timeout` for
//! the first packet, then take what is queued up to the batch capacity; slot layout;
//! oversize packets dropped and counted; a bounded queue that drops when full), so the
//! runtime can be tested without root and deterministically. Unlike the real devices they
//! allocate one `Vec` per queued packet: they are for tests.
//!
//! - [`MemoryTun`] is the daemon's side of a TUN; [`MemoryTunHost`] is the operating
//!   system's side, which the test drives (inject packets, collect packets written).
//! - [`MemoryNetwork`] hands out [`MemoryUdp`] endpoints by address; a datagram sent to an
//!   address nobody bound is dropped silently, as UDP would.

use super::{Counters, IoStats, TunIo, UdpIo};
use crate::batch::{PacketBatch, SlotMeta};
use crate::constants::DATA_HEADER_BYTES;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Packets each in-memory twin queue holds before it drops (like a kernel queue).
pub const MEMORY_QUEUE_PACKETS: usize = 4096;

/// One queued packet and, for UDP, its source address.
type Packet = (Vec<u8>, Option<SocketAddr>);

/// A bounded FIFO of packets with a condition variable for waiting readers.
#[derive(Debug, Default)]
struct PacketQueue {
    packets: Mutex<VecDeque<Packet>>,
    ready: Condvar,
}

impl PacketQueue {
    /// Locks the queue, recovering from a poisoned lock (the data is still a queue).
    fn lock(&self) -> MutexGuard<'_, VecDeque<Packet>> {
        self.packets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a packet; false (and nothing queued) when the queue is full.
    fn push(&self, bytes: &[u8], addr: Option<SocketAddr>) -> bool {
        let mut q = self.lock();
        if q.len() >= MEMORY_QUEUE_PACKETS {
            return false;
        }
        q.push_back((bytes.to_vec(), addr));
        drop(q);
        self.ready.notify_all();
        true
    }

    /// Waits at most `timeout` for a packet; then hands queued packets to `place` until it
    /// has kept `max` of them (it returns whether it kept each) or the queue is empty.
    fn pop_into(
        &self,
        timeout: Duration,
        max: usize,
        mut place: impl FnMut(Packet) -> bool,
    ) -> usize {
        let mut q = self.wait_nonempty(timeout);
        let mut kept = 0;
        while kept < max {
            let Some(packet) = q.pop_front() else { break };
            if place(packet) {
                kept += 1;
            }
        }
        kept
    }

    /// The locked queue, once it is not empty or `timeout` has passed.
    fn wait_nonempty(&self, timeout: Duration) -> MutexGuard<'_, VecDeque<Packet>> {
        let deadline = Instant::now() + timeout;
        let mut q = self.lock();
        while q.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = match self.ready.wait_timeout(q, left) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
        q
    }
}

/// Copies `bytes` into slot `i` at `start` and sets its metadata; false when they do not
/// fit in the slot.
fn place(
    batch: &mut PacketBatch,
    i: usize,
    start: usize,
    bytes: &[u8],
    addr: Option<SocketAddr>,
) -> bool {
    let (slot, meta) = batch.slot_and_meta_mut(i);
    let Some(room) = slot.get_mut(start..start + bytes.len()) else {
        return false;
    };
    room.copy_from_slice(bytes);
    *meta = SlotMeta {
        start,
        len: bytes.len(),
        addr,
    };
    true
}

/// Fills `batch` from `queue` with the slot layout `start`; returns the count.
fn recv_into(
    queue: &PacketQueue,
    counters: &Counters,
    batch: &mut PacketBatch,
    timeout: Duration,
    start: usize,
) -> usize {
    batch.clear();
    let cap = batch.capacity();
    let mut filled = 0;
    queue.pop_into(timeout, cap, |(bytes, addr)| {
        let ok = place(batch, filled, start, &bytes, addr);
        if ok {
            filled += 1;
        } else {
            counters.truncated(1);
        }
        ok
    });
    batch.set_len(filled);
    counters.received(filled);
    filled
}

// ---------------------------------------------------------------- TUN twin

/// The daemon's side of an in-memory TUN; see [`MemoryTunHost`] for the other side.
#[derive(Debug)]
pub struct MemoryTun {
    from_os: Arc<PacketQueue>,
    to_os: Arc<PacketQueue>,
    counters: Counters,
}

/// The operating system's side of a [`MemoryTun`], driven by the test.
#[derive(Clone, Debug)]
pub struct MemoryTunHost {
    from_os: Arc<PacketQueue>,
    to_os: Arc<PacketQueue>,
}

impl MemoryTun {
    /// A connected pair: the device for the daemon and its host side for the test.
    pub fn new() -> (MemoryTun, MemoryTunHost) {
        let from_os = Arc::new(PacketQueue::default());
        let to_os = Arc::new(PacketQueue::default());
        let host = MemoryTunHost {
            from_os: from_os.clone(),
            to_os: to_os.clone(),
        };
        let tun = MemoryTun {
            from_os,
            to_os,
            counters: Counters::default(),
        };
        (tun, host)
    }
}

impl TunIo for MemoryTun {
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Duration) -> io::Result<usize> {
        Ok(recv_into(
            &self.from_os,
            &self.counters,
            batch,
            timeout,
            DATA_HEADER_BYTES,
        ))
    }

    fn send_batch(&self, batch: &PacketBatch) -> io::Result<usize> {
        let mut sent = 0;
        for i in (0..batch.len()).filter(|&i| batch.meta(i).len > 0) {
            if self.to_os.push(batch.bytes(i), None) {
                sent += 1;
            } else {
                self.counters.send_errors(1);
            }
        }
        self.counters.sent(sent);
        Ok(sent)
    }

    fn stats(&self) -> IoStats {
        self.counters.snapshot()
    }
}

impl MemoryTunHost {
    /// Queues a packet "from the operating system" for the daemon to read; false when the
    /// queue is full and the packet was dropped.
    pub fn inject(&self, packet: &[u8]) -> bool {
        self.from_os.push(packet, None)
    }

    /// The next packet the daemon wrote, waiting at most `timeout`.
    pub fn recv_written(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut out = None;
        self.to_os.pop_into(timeout, 1, |(bytes, _)| {
            out = Some(bytes);
            true
        });
        out
    }

    /// Every packet the daemon wrote and nobody collected yet, oldest first (no waiting).
    pub fn take_written(&self) -> Vec<Vec<u8>> {
        self.to_os
            .lock()
            .drain(..)
            .map(|(bytes, _)| bytes)
            .collect()
    }
}

// ---------------------------------------------------------------- UDP twin

/// A simulated network of UDP endpoints, each bound to a [`SocketAddr`]. Cloning gives
/// another handle to the same network.
#[derive(Clone, Debug, Default)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetworkState>>,
}

#[derive(Debug, Default)]
struct NetworkState {
    endpoints: HashMap<SocketAddr, Weak<PacketQueue>>,
    next_port: u16,
    undeliverable: u64,
}

/// First port handed out for a bind to port 0.
const EPHEMERAL_PORT_FIRST: u16 = 49152;

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds an endpoint to `addr`; port 0 picks a free port. An endpoint bound to an
    /// unspecified address receives datagrams sent to any address with its port (`[::]`
    /// also IPv4 ones, as a dual-stack socket), but it sends with that unspecified
    /// address as the source: bind a specific address when peers must reply.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<MemoryUdp> {
        let mut state = self.lock();
        let local = if addr.port() == 0 {
            state.free_port(addr)?
        } else {
            addr
        };
        if state.is_bound(local) {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        let queue = Arc::new(PacketQueue::default());
        state.endpoints.insert(local, Arc::downgrade(&queue));
        Ok(MemoryUdp {
            network: self.clone(),
            local,
            queue,
            counters: Counters::default(),
        })
    }

    /// Datagrams sent to an address nobody bound, or to a full queue, since creation.
    pub fn undeliverable(&self) -> u64 {
        self.lock().undeliverable
    }

    fn lock(&self) -> MutexGuard<'_, NetworkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a datagram for `to`; false when it was dropped (no endpoint or queue full).
    fn deliver(&self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) -> bool {
        let queue = self.lock().lookup(to);
        let delivered = queue.is_some_and(|q| q.push(bytes, Some(from)));
        if !delivered {
            self.lock().undeliverable += 1;
        }
        delivered
    }

    fn unbind(&self, local: SocketAddr) {
        self.lock().endpoints.remove(&local);
    }
}

impl NetworkState {
    /// True when a live endpoint holds exactly `addr`.
    fn is_bound(&self, addr: SocketAddr) -> bool {
        self.endpoints
            .get(&addr)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// The queue bound to `to`, or to a wildcard address with its port.
    fn lookup(&self, to: SocketAddr) -> Option<Arc<PacketQueue>> {
        let port = to.port();
        let any4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        let candidates: &[SocketAddr] = if to.is_ipv4() {
            &[to, any4, any6]
        } else {
            &[to, any6]
        };
        candidates
            .iter()
            .find_map(|a| self.endpoints.get(a).and_then(Weak::upgrade))
    }

    /// `addr` with the first ephemeral port not bound on its IP.
    fn free_port(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let span = u32::from(u16::MAX - EPHEMERAL_PORT_FIRST) + 1;
        for _ in 0..span {
            let offset = self.next_port % span as u16;
            self.next_port = self.next_port.wrapping_add(1);
            let candidate = SocketAddr::new(addr.ip(), EPHEMERAL_PORT_FIRST + offset);
            if !self.is_bound(candidate) {
                return Ok(candidate);
            }
        }
        Err(io::Error::from(io::ErrorKind::AddrInUse))
    }
}

/// A UDP endpoint on a [`MemoryNetwork`]; unbound when dropped.
#[derive(Debug)]
pub struct MemoryUdp {
    network: MemoryNetwork,
    local: SocketAddr,
    queue: Arc<PacketQueue>,
    counters: Counters,
}

impl MemoryUdp {
    /// Sends one datagram; errors only when this endpoint cannot address `to` (an IPv6
    /// destination from an IPv4 endpoint). Loss in the network is silent.
    fn send_one(&self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        if self.local.is_ipv4() && to.is_ipv6() {
            return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        }
        self.network.deliver(self.local, to, bytes);
        Ok(())
    }
}

impl UdpIo for MemoryUdp {
    /// Not modelled: the twin keeps one bounded queue per socket, shared by every sender
    /// (the real socket's separation is tested in tests/net_root.rs).
    fn set_peer_endpoints(&self, _endpoints: &[SocketAddr]) {}

    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Duration) -> io::Result<usize> {
        Ok(recv_into(&self.queue, &self.counters, batch, timeout, 0))
    }

    fn send_batch(&self, batch: &PacketBatch) -> io::Result<usize> {
        let mut sent = 0;
        for i in (0..batch.len()).filter(|&i| batch.meta(i).len > 0) {
            let result = match batch.meta(i).addr {
                Some(to) => self.send_one(batch.bytes(i), to),
                None => Err(io::Error::from_raw_os_error(libc::EDESTADDRREQ)),
            };
            match result {
                Ok(()) => sent += 1,
                Err(_) => self.counters.send_errors(1),
            }
        }
        self.counters.sent(sent);
        Ok(sent)
    }

    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        self.send_one(buf, to)?;
        self.counters.sent(1);
        Ok(())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn stats(&self) -> IoStats {
        self.counters.snapshot()
    }
}

impl Drop for MemoryUdp {
    fn drop(&mut self) {
        self.network.unbind(self.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Fills slot `i` with `bytes` at `start`, for `addr`, and extends the batch.
    fn push(batch: &mut PacketBatch, start: usize, bytes: &[u8], addr: Option<SocketAddr>) {
        let i = batch.len();
        assert!(place(batch, i, start, bytes, addr));
        batch.set_len(i + 1);
    }

    #[test]
    fn tun_recv_takes_at_most_capacity_with_the_header_room() {
        let (tun, host) = MemoryTun::new();
        for n in 1..=3u8 {
            assert!(host.inject(&[n; 20]));
        }
        let mut batch = PacketBatch::new(2, 1280);
        assert_eq!(tun.recv_batch(&mut batch, Duration::ZERO).unwrap(), 2);
        assert_eq!(batch.len(), 2);
        let m = batch.meta(1);
        assert_eq!((m.start, m.len, m.addr), (DATA_HEADER_BYTES, 20, None));
        assert_eq!(batch.bytes(1), &[2; 20]);
        assert_eq!(tun.recv_batch(&mut batch, Duration::ZERO).unwrap(), 1);
        assert_eq!(batch.bytes(0), &[3; 20]);
        assert_eq!(tun.stats().received, 3);
    }

    #[test]
    fn tun_recv_times_out_empty() {
        let (tun, _host) = MemoryTun::new();
        let mut batch = PacketBatch::new(4, 1280);
        let t0 = Instant::now();
        assert_eq!(
            tun.recv_batch(&mut batch, Duration::from_millis(30))
                .unwrap(),
            0
        );
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(batch.is_empty());
    }

    #[test]
    fn tun_recv_wakes_when_a_packet_arrives() {
        let (tun, host) = MemoryTun::new();
        let injector = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            host.inject(&[9; 40])
        });
        let mut batch = PacketBatch::new(4, 1280);
        let t0 = Instant::now();
        assert_eq!(
            tun.recv_batch(&mut batch, Duration::from_secs(10)).unwrap(),
            1
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(injector.join().unwrap());
    }

    #[test]
    fn tun_drops_and_counts_packets_larger_than_a_slot() {
        let (tun, host) = MemoryTun::new();
        let mut batch = PacketBatch::new(4, 1280);
        let room = batch.stride() - DATA_HEADER_BYTES;
        host.inject(&vec![1; room + 1]);
        host.inject(&vec![2; room]);
        assert_eq!(tun.recv_batch(&mut batch, Duration::ZERO).unwrap(), 1);
        assert_eq!(batch.meta(0).len, room);
        assert_eq!(tun.stats().dropped_truncated, 1);
    }

    #[test]
    fn tun_send_skips_empty_slots_and_host_collects() {
        let (tun, host) = MemoryTun::new();
        let mut batch = PacketBatch::new(4, 1280);
        push(&mut batch, DATA_HEADER_BYTES, &[1; 30], None);
        push(&mut batch, DATA_HEADER_BYTES, &[], None);
        push(&mut batch, DATA_HEADER_BYTES, &[3; 10], None);
        assert_eq!(tun.send_batch(&batch).unwrap(), 2);
        assert_eq!(host.recv_written(Duration::ZERO), Some(vec![1; 30]));
        assert_eq!(host.take_written(), vec![vec![3; 10]]);
        assert_eq!(host.recv_written(Duration::from_millis(5)), None);
        assert_eq!(tun.stats().sent, 2);
    }

    #[test]
    fn udp_batch_carries_contents_and_source_addresses() {
        let net = MemoryNetwork::new();
        let a = net.bind(addr("198.18.0.1:5000")).unwrap();
        let b = net.bind(addr("198.18.0.2:0")).unwrap();
        let b_addr = b.local_addr().unwrap();
        assert_eq!(b_addr.ip(), addr("198.18.0.2:1").ip());
        assert_ne!(b_addr.port(), 0);
        let mut out = PacketBatch::new(8, 1280);
        for n in 0..5u8 {
            push(&mut out, 0, &[n; 100], Some(b_addr));
        }
        assert_eq!(a.send_batch(&out).unwrap(), 5);
        let mut inb = PacketBatch::new(8, 1280);
        assert_eq!(b.recv_batch(&mut inb, Duration::ZERO).unwrap(), 5);
        for n in 0..5 {
            let m = inb.meta(n);
            assert_eq!(
                (m.start, m.len, m.addr),
                (0, 100, Some(addr("198.18.0.1:5000")))
            );
            assert_eq!(inb.bytes(n), &[n as u8; 100]);
        }
        b.send_to(b"reply", addr("198.18.0.1:5000")).unwrap();
        assert_eq!(a.recv_batch(&mut inb, Duration::ZERO).unwrap(), 1);
        assert_eq!(inb.bytes(0), b"reply");
        assert_eq!(inb.meta(0).addr, Some(b_addr));
    }

    #[test]
    fn udp_bind_conflicts_and_unbinds_on_drop() {
        let net = MemoryNetwork::new();
        let a = net.bind(addr("198.18.0.1:5000")).unwrap();
        let err = net.bind(addr("198.18.0.1:5000")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(a);
        let a = net.bind(addr("198.18.0.1:5000")).unwrap();
        let b = net.bind(addr("198.18.0.2:5000")).unwrap();
        drop(a);
        b.send_to(b"lost", addr("198.18.0.1:5000")).unwrap();
        assert_eq!(net.undeliverable(), 1);
    }

    #[test]
    fn udp_wildcard_v6_endpoint_is_dual_stack() {
        let net = MemoryNetwork::new();
        let server = net.bind(addr("[::]:51820")).unwrap();
        let v4 = net.bind(addr("198.18.0.9:4000")).unwrap();
        let v6 = net.bind(addr("[fd00:5159::9]:4000")).unwrap();
        v4.send_to(b"four", addr("198.18.0.1:51820")).unwrap();
        v6.send_to(b"six", addr("[fd00:5159::1]:51820")).unwrap();
        let mut inb = PacketBatch::new(4, 1280);
        assert_eq!(server.recv_batch(&mut inb, Duration::ZERO).unwrap(), 2);
        assert_eq!(inb.meta(0).addr, Some(addr("198.18.0.9:4000")));
        assert_eq!(inb.meta(1).addr, Some(addr("[fd00:5159::9]:4000")));
    }

    #[test]
    fn udp_send_errors_are_counted_and_the_rest_still_go() {
        let net = MemoryNetwork::new();
        let a = net.bind(addr("198.18.0.1:5000")).unwrap();
        let b = net.bind(addr("198.18.0.2:5000")).unwrap();
        let mut out = PacketBatch::new(4, 1280);
        push(&mut out, 0, b"no address", None);
        push(
            &mut out,
            0,
            b"wrong family",
            Some(addr("[fd00:5159::2]:5000")),
        );
        push(&mut out, 0, b"fine", Some(addr("198.18.0.2:5000")));
        assert_eq!(a.send_batch(&out).unwrap(), 1);
        assert_eq!(a.stats().send_errors, 2);
        let mut inb = PacketBatch::new(4, 1280);
        assert_eq!(b.recv_batch(&mut inb, Duration::ZERO).unwrap(), 1);
        assert_eq!(inb.bytes(0), b"fine");
    }

    #[test]
    fn udp_drops_and_counts_datagrams_larger_than_a_slot() {
        let net = MemoryNetwork::new();
        let a = net.bind(addr("198.18.0.1:5000")).unwrap();
        let b = net.bind(addr("198.18.0.2:5000")).unwrap();
        let mut inb = PacketBatch::new(4, 1280);
        a.send_to(&vec![0; inb.stride() + 1], addr("198.18.0.2:5000"))
            .unwrap();
        a.send_to(&[1; 8], addr("198.18.0.2:5000")).unwrap();
        assert_eq!(b.recv_batch(&mut inb, Duration::ZERO).unwrap(), 1);
        assert_eq!(inb.bytes(0), &[1; 8]);
        assert_eq!(b.stats().dropped_truncated, 1);
    }

    #[test]
    fn udp_recv_times_out() {
        let net = MemoryNetwork::new();
        let a = net.bind(addr("198.18.0.1:5000")).unwrap();
        let mut inb = PacketBatch::new(4, 1280);
        let t0 = Instant::now();
        assert_eq!(
            a.recv_batch(&mut inb, Duration::from_millis(25)).unwrap(),
            0
        );
        assert!(t0.elapsed() >= Duration::from_millis(25));
    }
}
