//! Network I/O: the TUN device and the UDP socket behind small batch-shaped traits, each
//! with an in-memory twin so the runtime can be tested without root. This is the only
//! layer of qshield that holds `unsafe` code (system calls); every block says why it is
//! sound.
//!
//! Files and what each owns:
//! - `mod.rs`: the [`TunIo`] and [`UdpIo`] traits and [`IoStats`], the contracts every
//!   implementation honors.
//! - [`error`]: [`NetError`], the setup failures (creating the TUN, binding the socket).
//! - `sys.rs`: thin, safe wrappers over the raw system calls shared by the real devices
//!   (an owned fd, `poll`, `epoll`, socket options, interface ioctls).
//! - [`tun`]: [`TunDevice`], a kernel TUN interface opened with `/dev/net/tun` and
//!   configured (MTU, addresses, routes, up) through [`netlink`].
//! - [`netlink`]: a small rtnetlink writer: link MTU and up, IPv4/IPv6 addresses, routes.
//! - [`udp`]: [`UdpSocket`], a dual-stack capable UDP socket moving batches with
//!   `recvmmsg`/`sendmmsg`.
//! - [`peer_queues`]: a connected socket per known peer endpoint on the same port, so a
//!   flood from other addresses cannot crowd a peer's datagrams out of the kernel.
//! - [`memory`]: [`MemoryTun`] and [`MemoryNetwork`]/[`MemoryUdp`], the in-memory twins.
//!
//! # Batch contracts
//!
//! Every implementation fills and drains a caller-owned [`PacketBatch`]: nothing is
//! allocated per packet on the real devices. Receiving waits at most `timeout` for the
//! first packet, then takes what is already queued, up to the batch's capacity. Sending
//! skips slots whose `len` is 0; a packet the kernel refuses is counted in [`IoStats`]
//! and does not stop the rest of the batch.
//!
//! Both traits take `&self`: one thread receives while another sends on the same object.

pub mod error;
pub mod memory;
pub mod netlink;
pub mod offload;
pub mod peer_queues;
mod sys;
pub mod tun;
mod tun_too_big;
mod tun_vnet;

pub use tun_too_big::{TOO_BIG_ANSWER_WINDOW, TOO_BIG_ANSWERS_PER_WINDOW};
pub mod udp;
mod udp_gso;

pub use error::NetError;
pub use memory::{MemoryNetwork, MemoryTun, MemoryTunHost, MemoryUdp};
pub use sys::{effective_uid, exit_quietly_on_closed_stdout};
pub use tun::{TunDevice, TunOffload, TunSettings};
pub use udp::{UdpOffload, UdpSocket};

use crate::batch::PacketBatch;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Packets moved per batch when offloads are on: a few 64 KiB super-packets' segments.
pub const OFFLOAD_BATCH_PACKETS: usize = 256;

/// Which kernel offloads to ask for. [`OffloadWish::all`] for `offload = "auto"`,
/// [`OffloadWish::none`] for `off`; single levers can be turned off for measurements with
/// the environment variable `QSHIELD_OFFLOAD_DISABLE` (see [`OffloadWish::from_env`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OffloadWish {
    /// TUN reads super-packets (`IFF_VNET_HDR` + `TUNSETOFFLOAD` TSO4/TSO6/USO4/USO6).
    pub tun_tso: bool,
    /// TUN writes coalesced TCP super-packets.
    pub tun_gro: bool,
    /// UDP sends equal-size datagrams in one call (`UDP_SEGMENT`).
    pub udp_gso: bool,
    /// UDP receives coalesced datagrams (`UDP_GRO`).
    pub udp_gro: bool,
}

impl OffloadWish {
    /// Every offload.
    pub fn all() -> Self {
        Self {
            tun_tso: true,
            tun_gro: true,
            udp_gso: true,
            udp_gro: true,
        }
    }

    /// No offload.
    pub fn none() -> Self {
        Self {
            tun_tso: false,
            tun_gro: false,
            udp_gso: false,
            udp_gro: false,
        }
    }

    /// `self` minus the levers named in `QSHIELD_OFFLOAD_DISABLE` (comma-separated
    /// `tun_tso`, `tun_gro`, `udp_gso`, `udp_gro`): for ablation measurements.
    pub fn from_env(self) -> Self {
        let list = std::env::var("QSHIELD_OFFLOAD_DISABLE").unwrap_or_default();
        let off = |name: &str| list.split(',').any(|s| s.trim() == name);
        Self {
            tun_tso: self.tun_tso && !off("tun_tso"),
            tun_gro: self.tun_gro && !off("tun_gro"),
            udp_gso: self.udp_gso && !off("udp_gso"),
            udp_gro: self.udp_gro && !off("udp_gro"),
        }
    }
}

/// Counters of packets an I/O object dropped or failed to send, since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Packets received (handed to the caller in a batch).
    pub received: u64,
    /// Packets sent (accepted by the kernel or the twin).
    pub sent: u64,
    /// Received packets dropped because they did not fit in a batch slot.
    pub dropped_truncated: u64,
    /// Inner packets read from the TUN larger than the tunnel MTU: dropped (0 for UDP).
    pub dropped_too_big: u64,
    /// Of those, answered with ICMP fragmentation needed / packet too big (the rest were
    /// ICMP errors themselves, fragments or multicast, or over the answer rate).
    pub too_big_answered: u64,
    /// Packets whose send failed (each error counted once, the batch went on).
    pub send_errors: u64,
    /// Peer endpoints with a receive socket of their own now ([`peer_queues`]; 0 for TUN).
    pub peer_queues: u64,
}

/// The TUN side of the data plane: inner IP packets from and to the operating system.
pub trait TunIo: Send + Sync {
    /// Reads up to `batch.capacity()` packets, waiting at most `timeout` for the first one;
    /// returns the count (0 on timeout) and sets `batch.len()` to it. Packet `i` is written
    /// at `slot[DATA_HEADER_BYTES..]` and `meta(i) = SlotMeta { start: DATA_HEADER_BYTES,
    /// len, addr: None }`.
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Duration) -> io::Result<usize>;

    /// Writes every slot `i < batch.len()` whose `meta.len > 0` (`bytes(i)`) as one packet
    /// each; returns the number written. A packet that fails is counted in
    /// [`IoStats::send_errors`] and the rest are still written.
    fn send_batch(&self, batch: &PacketBatch) -> io::Result<usize>;

    /// Counters since creation.
    fn stats(&self) -> IoStats;
}

/// The UDP side of the data plane: encrypted datagrams from and to peers.
pub trait UdpIo: Send + Sync {
    /// Receives up to `batch.capacity()` datagrams, waiting at most `timeout` for the first;
    /// returns the count (0 on timeout) and sets `batch.len()` to it. Datagram `i` is at
    /// `slot[0..]` with `meta = { start: 0, len, addr: Some(source) }`; an IPv4 source seen
    /// on a dual-stack socket is reported as a plain IPv4 address. Datagrams larger than a
    /// slot are dropped and counted in [`IoStats::dropped_truncated`], never returned.
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Duration) -> io::Result<usize>;

    /// Sends every slot `i < batch.len()` with `meta.len > 0` to `meta.addr`; returns the
    /// number of datagrams sent. A slot without an address, or one the kernel refuses, is
    /// counted in [`IoStats::send_errors`] and the rest are still sent.
    fn send_batch(&self, batch: &PacketBatch) -> io::Result<usize>;

    /// Sends one datagram (handshake messages).
    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()>;

    /// The peers' current endpoints (replacing the last list): each gets a receive queue
    /// of its own where the implementation has queues to share ([`peer_queues`]). An
    /// endpoint that cannot have one is logged and shares the common queue.
    fn set_peer_endpoints(&self, endpoints: &[SocketAddr]);

    /// The address the socket is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Counters since creation.
    fn stats(&self) -> IoStats;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_implementation_can_be_shared_between_threads() {
        fn shareable<T: ?Sized + Send + Sync>() {}
        shareable::<dyn TunIo>();
        shareable::<dyn UdpIo>();
        let _: &dyn TunIo = &MemoryTun::new().0;
        let _: fn(&TunDevice) -> &dyn TunIo = |t| t;
        let _: fn(&UdpSocket) -> &dyn UdpIo = |u| u;
        let _: fn(&MemoryUdp) -> &dyn UdpIo = |u| u;
    }
}

/// Atomic counters behind [`IoStats`], shared by the receiving and the sending thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    received: std::sync::atomic::AtomicU64,
    sent: std::sync::atomic::AtomicU64,
    dropped_truncated: std::sync::atomic::AtomicU64,
    dropped_too_big: std::sync::atomic::AtomicU64,
    too_big_answered: std::sync::atomic::AtomicU64,
    send_errors: std::sync::atomic::AtomicU64,
}

impl Counters {
    fn add(counter: &std::sync::atomic::AtomicU64, n: usize) {
        if n > 0 {
            counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Counts `n` packets handed to the caller.
    pub(crate) fn received(&self, n: usize) {
        Self::add(&self.received, n);
    }

    /// Counts `n` packets sent.
    pub(crate) fn sent(&self, n: usize) {
        Self::add(&self.sent, n);
    }

    /// Counts `n` received packets dropped as too large for a slot.
    pub(crate) fn truncated(&self, n: usize) {
        Self::add(&self.dropped_truncated, n);
    }

    /// Counts `n` inner packets dropped as larger than the tunnel MTU.
    pub(crate) fn too_big(&self, n: usize) {
        Self::add(&self.dropped_too_big, n);
    }

    /// Counts `n` ICMP too-big errors written back.
    pub(crate) fn too_big_answered(&self, n: usize) {
        Self::add(&self.too_big_answered, n);
    }

    /// Counts `n` failed sends.
    pub(crate) fn send_errors(&self, n: usize) {
        Self::add(&self.send_errors, n);
    }

    /// A snapshot of every counter.
    pub(crate) fn snapshot(&self) -> IoStats {
        use std::sync::atomic::Ordering::Relaxed;
        IoStats {
            received: self.received.load(Relaxed),
            sent: self.sent.load(Relaxed),
            dropped_truncated: self.dropped_truncated.load(Relaxed),
            dropped_too_big: self.dropped_too_big.load(Relaxed),
            too_big_answered: self.too_big_answered.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            peer_queues: 0,
        }
    }
}
