//! [`UdpSocket`]: the underlay socket. It binds IPv4 or IPv6 (`[::]` is dual stack),
//! asks for large kernel buffers, lets the kernel fragment oversized datagrams, and moves
//! batches with `recvmmsg`/`sendmmsg`.
//!
//! Scratch memory: each batch call builds its `mmsghdr`, `iovec` and address arrays on the
//! stack, [`BATCH_PACKETS`] entries at a time (about 7 KiB), and loops for larger batches.
//! The stack keeps the receiving and the sending thread independent (no lock to share)
//! and allocates nothing per packet.
//!
//! Peer queues: each known peer endpoint gets a connected socket of its own on the same
//! port ([`super::peer_queues`]), so a flood from other addresses cannot crowd its
//! datagrams out of the kernel's queue. One receive call reads them all through one epoll,
//! peers first.
//!
//! Path MTU: the socket uses `IP_PMTUDISC_DONT` / `IPV6_PMTUDISC_DONT`. With Linux's
//! default (`IP_PMTUDISC_WANT`) a data datagram larger than a cached path MTU is refused
//! locally with `EMSGSIZE`, so one ICMP "fragmentation needed" would silently black-hole
//! every full-size inner packet until the cache expires. With `DONT` the kernel fragments
//! instead: the packet may still cross (most paths pass fragments), and sizing the tunnel
//! MTU stays the operator's lever. Handshake datagrams are at most
//! [`MAX_HANDSHAKE_DATAGRAM_BYTES`](crate::constants::MAX_HANDSHAKE_DATAGRAM_BYTES), so
//! they never need fragmenting.

use super::error::NetError;
use super::peer_queues::{BoundSocket, PeerQueue, PeerQueues};
use super::sys::{self, Epoll, RawAddr};
use super::udp_gso::{self, GroRx};
use super::{Counters, IoStats, UdpIo};
use crate::batch::{PacketBatch, SlotMeta};
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Packets moved per batch between TUN, core and UDP.
pub const BATCH_PACKETS: usize = 64;
/// Kernel send and receive buffer asked for each UDP socket, in bytes (wireguard-go's
/// 7 MiB: room for a few thousand full datagrams while a batch is being processed).
pub const UDP_SOCKET_BUFFER_BYTES: usize = 7 << 20;

/// `SO_SNDBUFFORCE` / `SO_RCVBUFFORCE` (asm-generic/socket.h): like `SO_SNDBUF` /
/// `SO_RCVBUF` but not capped by `net.core.[rw]mem_max`; needs `CAP_NET_ADMIN`.
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_RCVBUFFORCE: libc::c_int = 33;

/// Readiness reports taken from epoll per wait.
const READY_EVENTS_MAX: usize = 64;

/// A bound UDP socket, and a connected socket per known peer endpoint
/// ([`UdpIo::set_peer_endpoints`]). Receiving and sending may run on two threads at once.
pub struct UdpSocket {
    /// The bound socket: everything is sent from it, and it receives what no peer socket
    /// takes.
    bound: Receiver,
    local: SocketAddr,
    /// The socket is `AF_INET6`: IPv4 destinations are sent as IPv4-mapped addresses.
    map_v4: bool,
    counters: Counters,
    /// Sends use `UDP_SEGMENT` (turned off for good if the kernel refuses it on a send).
    gso: AtomicBool,
    /// Readiness of the bound socket and of every peer socket.
    epoll: Epoll,
    /// The peers' own sockets.
    peers: PeerQueues,
}

/// One socket datagrams are received from: the bound one or a peer's connected one.
pub(super) struct Receiver {
    fd: OwnedFd,
    /// `UDP_GRO` is on: receives go through `gro_rx`.
    gro: bool,
    gro_rx: Mutex<GroRx>,
    /// Datagrams of an earlier `UDP_GRO` receive wait in `gro_rx`.
    pending: AtomicBool,
}

/// The UDP offloads a socket got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UdpOffload {
    /// Sending with `UDP_SEGMENT`.
    pub gso: bool,
    /// Receiving with `UDP_GRO`.
    pub gro: bool,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local)
            .field("offload", &self.offload())
            .finish()
    }
}

impl UdpSocket {
    /// Binds to `addr`. Binding `[::]` accepts IPv4 too (`IPV6_V6ONLY` cleared); IPv4
    /// peers are then reported and addressed as plain IPv4 [`SocketAddr`]s.
    pub fn bind(addr: SocketAddr) -> Result<Self, NetError> {
        Self::bind_offloaded(addr, super::OffloadWish::none())
    }

    /// Binds like [`UdpSocket::bind`], then turns on the UDP offloads `wish` asks for that
    /// the kernel has (see [`UdpSocket::offload`]).
    pub fn bind_offloaded(addr: SocketAddr, wish: super::OffloadWish) -> Result<Self, NetError> {
        let bind_err = |source| NetError::UdpBind { addr, source };
        let domain = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let fd = sys::socket(domain, libc::SOCK_DGRAM, 0).map_err(bind_err)?;
        configure(&fd, addr)?;
        let (raw, len) = RawAddr::from_socket_addr(addr, false);
        sys::bind(fd.as_fd(), &raw, len).map_err(bind_err)?;
        let local = local_address(&fd).map_err(bind_err)?;
        // After the bind, so that binding this port without it still fails (a second
        // daemon): the peers' sockets set it before theirs to share the port.
        if let Err(e) = sys::set_int_option(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1) {
            tracing::debug!(local = %local, error = %e, "SO_REUSEPORT refused: peers share one receive queue");
        }
        let gso = wish.udp_gso && udp_gso::gso_supported(fd.as_fd());
        let gro = wish.udp_gro && udp_gso::enable_gro(fd.as_fd());
        let epoll_err = |source| NetError::UdpOption {
            addr,
            option: "epoll",
            source,
        };
        let epoll = Epoll::new().map_err(epoll_err)?;
        epoll.add(fd.as_fd()).map_err(epoll_err)?;
        Ok(Self {
            bound: Receiver::new(fd, gro),
            local,
            map_v4: !addr.is_ipv4(),
            counters: Counters::default(),
            gso: AtomicBool::new(gso),
            epoll,
            peers: PeerQueues::new(),
        })
    }

    /// The offloads in use now.
    pub fn offload(&self) -> UdpOffload {
        UdpOffload {
            gso: self.gso.load(Ordering::Relaxed),
            gro: self.bound.gro,
        }
    }

    /// The peer endpoints that have a receive socket of their own now.
    pub fn peer_queues(&self) -> Vec<SocketAddr> {
        self.peers.snapshot().iter().map(|q| q.endpoint).collect()
    }

    /// The kernel receive buffer size in bytes (as `SO_RCVBUF` reports it).
    pub fn recv_buffer_bytes(&self) -> io::Result<usize> {
        sys::get_int_option(self.bound.fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF)
            .map(|v| v as usize)
    }

    /// Takes what a peer's socket has queued into slots `filled..end`; returns the new
    /// fill. Its errors are the kernel's reports of ICMP errors for earlier sends to that
    /// peer (a connected socket gets them): logged, never fatal to the receive.
    fn fill_from_peer(
        &self,
        queue: &PeerQueue,
        batch: &mut PacketBatch,
        filled: usize,
        end: usize,
    ) -> usize {
        if filled >= end {
            return filled;
        }
        match queue.receiver.fill(batch, filled, end, &self.counters) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(local = %self.local, endpoint = %queue.endpoint, error = %e, "peer socket reported an error (an ICMP error for an earlier datagram to it)");
                filled
            }
        }
    }

    /// Sends the slots listed in `indices` (at most `BATCH_PACKETS`, all with `len > 0`)
    /// with as few `sendmmsg` calls as errors allow; returns the number sent.
    fn send_chunk(&self, batch: &PacketBatch, indices: &[usize]) -> usize {
        let mut scratch = Scratch::new();
        let mut n = 0;
        for &i in indices {
            let Some(dest) = self.destination(batch.meta(i).addr) else {
                self.counters.send_errors(1);
                continue;
            };
            let (name, name_len) = RawAddr::from_socket_addr(dest, self.map_v4);
            let bytes = batch.bytes(i);
            scratch.set(n, bytes.as_ptr().cast_mut(), bytes.len(), name, name_len);
            n += 1;
        }
        scratch.link(n);
        self.sendmmsg_all(&mut scratch, n)
    }

    /// The address to send to, or `None` when there is none or the family cannot be
    /// reached from this socket.
    fn destination(&self, addr: Option<SocketAddr>) -> Option<SocketAddr> {
        addr.filter(|a| self.map_v4 || a.is_ipv4())
    }

    /// Calls `sendmmsg` until all `n` linked entries are sent or failed; one failing
    /// datagram is counted and skipped.
    fn sendmmsg_all(&self, scratch: &mut Scratch, n: usize) -> usize {
        let (mut next, mut sent) = (0, 0);
        while next < n {
            // SAFETY: entries next..n are linked to their own iovec and address; the iovecs
            // point at batch bytes that stay borrowed (shared) for this call, and the kernel
            // only reads them when sending.
            let ret = unsafe {
                libc::sendmmsg(
                    self.bound.fd.as_raw_fd(),
                    scratch.hdrs[next..].as_mut_ptr(),
                    (n - next) as libc::c_uint,
                    0,
                )
            };
            match sys::cvt(ret) {
                Ok(k) => {
                    next += k as usize;
                    sent += k as usize;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::trace!(local = %self.local, error = %e, "UDP send failed");
                    self.counters.send_errors(1);
                    next += 1;
                }
            }
        }
        sent
    }
}

impl UdpIo for UdpSocket {
    /// Peers' sockets are read first, then the bound socket, which gets at least a quarter
    /// of the batch when it has datagrams (a peer's stream cannot starve the handshakes of
    /// peers without a socket, and a flood on the bound socket cannot starve the peers).
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Duration) -> io::Result<usize> {
        batch.clear();
        let capacity = batch.capacity();
        let deadline = Instant::now() + timeout;
        let mut events = [sys::EPOLL_EVENT_NONE; READY_EVENTS_MAX];
        let mut filled = 0;
        loop {
            // Taken anew each pass: a socket opened since is already in the epoll, and an
            // older list would leave its readiness unserved (and this loop spinning).
            let peers = self.peers.snapshot();
            let peer_pending = peers.iter().any(|q| q.receiver.has_pending());
            let wait = if peer_pending || self.bound.has_pending() {
                Duration::ZERO
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            let ready = self.epoll.wait(&mut events, wait)?;
            let bound_token = self.bound.token();
            let bound_ready = self.bound.has_pending()
                || events[..ready].iter().any(|e| {
                    let token = e.u64;
                    token == bound_token
                });
            let peers_end = if bound_ready {
                capacity - capacity / 4
            } else {
                capacity
            };
            if peer_pending {
                for q in peers.iter().filter(|q| q.receiver.has_pending()) {
                    filled = self.fill_from_peer(q, batch, filled, peers_end);
                }
            }
            for event in &events[..ready] {
                let token = event.u64;
                if let Ok(i) = peers.binary_search_by_key(&token, |q| q.receiver.token()) {
                    filled = self.fill_from_peer(&peers[i], batch, filled, peers_end);
                }
            }
            if bound_ready && filled < capacity {
                match self.bound.fill(batch, filled, capacity, &self.counters) {
                    Ok(n) => filled = n,
                    Err(e) if filled > 0 => {
                        tracing::debug!(local = %self.local, error = %e, "UDP receive failed mid-batch");
                    }
                    Err(e) => return Err(e),
                }
            }
            if filled > 0 || Instant::now() >= deadline {
                break;
            }
        }
        batch.set_len(filled);
        self.counters.received(filled);
        Ok(filled)
    }

    fn send_batch(&self, batch: &PacketBatch) -> io::Result<usize> {
        if self.gso.load(Ordering::Relaxed) {
            match udp_gso::send_batch_gso(self.bound.fd.as_fd(), batch, self.map_v4, &self.counters)
            {
                Ok(sent) => {
                    self.counters.sent(sent);
                    return Ok(sent);
                }
                Err(e) => {
                    tracing::warn!(local = %self.local, error = %e, "UDP GSO refused by the kernel: sending without it");
                    self.gso.store(false, Ordering::Relaxed);
                }
            }
        }
        let mut indices = [0usize; BATCH_PACKETS];
        let (mut n, mut sent) = (0, 0);
        for i in (0..batch.len()).filter(|&i| batch.meta(i).len > 0) {
            indices[n] = i;
            n += 1;
            if n == BATCH_PACKETS {
                sent += self.send_chunk(batch, &indices[..n]);
                n = 0;
            }
        }
        if n > 0 {
            sent += self.send_chunk(batch, &indices[..n]);
        }
        self.counters.sent(sent);
        Ok(sent)
    }

    fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<()> {
        if self.destination(Some(to)).is_none() {
            return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        }
        let (raw, len) = RawAddr::from_socket_addr(to, self.map_v4);
        loop {
            // SAFETY: `buf` is a live slice and `raw` a valid sockaddr of `len` bytes.
            let ret = unsafe {
                libc::sendto(
                    self.bound.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    0,
                    (&raw as *const RawAddr).cast(),
                    len,
                )
            };
            match sys::cvt_size(ret) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(_) => {
                    self.counters.sent(1);
                    return Ok(());
                }
            }
        }
    }

    fn set_peer_endpoints(&self, endpoints: &[SocketAddr]) {
        let bound = BoundSocket {
            local: self.local,
            map_v4: self.map_v4,
            gro: self.bound.gro,
            epoll: &self.epoll,
        };
        for e in self.peers.set(endpoints, &bound) {
            tracing::warn!(error = %e, "a peer shares the receive queue of every other sender");
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn stats(&self) -> IoStats {
        IoStats {
            peer_queues: self.peers.snapshot().len() as u64,
            ..self.counters.snapshot()
        }
    }
}

impl Receiver {
    pub(super) fn new(fd: OwnedFd, gro: bool) -> Self {
        Self {
            fd,
            gro,
            gro_rx: Mutex::new(GroRx::new(gro)),
            pending: AtomicBool::new(false),
        }
    }

    /// The socket.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Its epoll token (its descriptor number).
    pub(super) fn token(&self) -> u64 {
        self.fd.as_raw_fd() as u64
    }

    /// Datagrams of an earlier `UDP_GRO` receive are waiting (epoll does not see them).
    fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Takes what is waiting and what the kernel has queued into slots `from..end`, until
    /// they are full or nothing is queued; returns the new fill.
    fn fill(
        &self,
        batch: &mut PacketBatch,
        from: usize,
        end: usize,
        counters: &Counters,
    ) -> io::Result<usize> {
        if !self.gro {
            return self.drain(batch, from, end, counters);
        }
        let mut rx = self.gro_rx.lock().unwrap_or_else(|e| e.into_inner());
        let filled = rx.fill(self.fd.as_fd(), batch, from, end, counters);
        self.pending.store(rx.has_pending(), Ordering::Relaxed);
        filled
    }

    /// Takes what the kernel has queued, chunk by chunk, into slots `from..end` until they
    /// are full or a chunk comes back short; returns the new fill.
    fn drain(
        &self,
        batch: &mut PacketBatch,
        from: usize,
        end: usize,
        counters: &Counters,
    ) -> io::Result<usize> {
        let mut filled = from;
        while filled < end {
            let want = (end - filled).min(BATCH_PACKETS);
            let result = self.recv_chunk(batch, filled, want, counters);
            let (got, kept) = match result {
                Ok(r) => r,
                Err(e) if filled > from => {
                    tracing::debug!(error = %e, "UDP receive failed mid-batch");
                    break;
                }
                Err(e) => return Err(e),
            };
            filled += kept;
            if got < want {
                break;
            }
        }
        Ok(filled)
    }

    /// One `recvmmsg` with `MSG_DONTWAIT` into slots `from..from + count`
    /// (`count <= BATCH_PACKETS`); returns (datagrams taken from the kernel, slots filled).
    fn recv_chunk(
        &self,
        batch: &mut PacketBatch,
        from: usize,
        count: usize,
        counters: &Counters,
    ) -> io::Result<(usize, usize)> {
        let mut scratch = Scratch::new();
        for (k, slot) in batch.slots_mut().skip(from).take(count).enumerate() {
            scratch.set(
                k,
                slot.as_mut_ptr(),
                slot.len(),
                RawAddr::zeroed(),
                RECV_NAME_BYTES,
            );
        }
        scratch.link(count);
        // The batch is not touched until the kernel has written the slots.
        let got = self.recvmmsg_dontwait(&mut scratch, count)?;
        Ok((got, keep_complete(batch, &scratch, from, got, counters)))
    }

    /// One `recvmmsg(MSG_DONTWAIT)` into the first `count` linked scratch entries; 0 when
    /// nothing is queued.
    fn recvmmsg_dontwait(&self, scratch: &mut Scratch, count: usize) -> io::Result<usize> {
        // SAFETY: entries 0..count are linked (`Scratch::link`): each points at its own
        // iovec, which covers one whole, distinct batch slot that the caller borrowed
        // mutably and leaves alone until this returns, and at its own address buffer of the
        // stated size (no control buffer). Nothing else aliases these buffers during the call.
        unsafe { sys::recvmmsg_dontwait(self.fd.as_fd(), &mut scratch.hdrs[..count]) }
    }
}

/// Sets the metadata of the `got` datagrams just received at `from..`, dropping the
/// truncated ones and moving later ones down so the filled slots stay contiguous;
/// returns how many were kept.
fn keep_complete(
    batch: &mut PacketBatch,
    scratch: &Scratch,
    from: usize,
    got: usize,
    counters: &Counters,
) -> usize {
    let mut kept = 0;
    for k in 0..got {
        let hdr = &scratch.hdrs[k];
        let source = scratch.names[k].socket_addr();
        if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || source.is_none() {
            counters.truncated(1);
            continue;
        }
        let len = hdr.msg_len as usize;
        if kept != k {
            move_bytes(batch, from + k, from + kept, len);
        }
        batch.set_meta(
            from + kept,
            SlotMeta {
                start: 0,
                len,
                addr: source,
            },
        );
        kept += 1;
    }
    kept
}

/// Size of the address buffer offered to the kernel per received datagram.
const RECV_NAME_BYTES: libc::socklen_t = mem::size_of::<RawAddr>() as libc::socklen_t;

/// Per-call arrays for `recvmmsg`/`sendmmsg`, on the caller's stack.
struct Scratch {
    hdrs: [libc::mmsghdr; BATCH_PACKETS],
    iovs: [libc::iovec; BATCH_PACKETS],
    names: [RawAddr; BATCH_PACKETS],
}

impl Scratch {
    fn new() -> Self {
        // SAFETY: mmsghdr and iovec are plain C structs of integers and raw pointers, and
        // RawAddr a union of such; all-zero bytes (null pointers, zero lengths) are valid.
        unsafe { mem::zeroed() }
    }

    /// Fills entry `k`: its buffer and its address (length `name_len`).
    fn set(
        &mut self,
        k: usize,
        base: *mut u8,
        len: usize,
        name: RawAddr,
        name_len: libc::socklen_t,
    ) {
        self.iovs[k] = libc::iovec {
            iov_base: base.cast(),
            iov_len: len,
        };
        self.names[k] = name;
        self.hdrs[k].msg_hdr.msg_namelen = name_len;
        self.hdrs[k].msg_hdr.msg_flags = 0;
        self.hdrs[k].msg_len = 0;
    }

    /// Points headers `0..n` at their own iovec and address. Called once the scratch is in
    /// its final place, since the headers hold pointers into it.
    fn link(&mut self, n: usize) {
        for k in 0..n {
            let hdr = &mut self.hdrs[k].msg_hdr;
            hdr.msg_iov = &mut self.iovs[k];
            hdr.msg_iovlen = 1;
            hdr.msg_name = (&mut self.names[k] as *mut RawAddr).cast();
        }
    }
}

/// Moves the first `len` bytes of slot `src` to slot `dst` through a small stack buffer
/// (the batch offers no two slots at once; this runs only after a truncated datagram).
fn move_bytes(batch: &mut PacketBatch, src: usize, dst: usize, len: usize) {
    let mut tmp = [0u8; 1024];
    let mut off = 0;
    while off < len {
        let end = (off + tmp.len()).min(len);
        tmp[..end - off].copy_from_slice(&batch.slot_mut(src)[off..end]);
        batch.slot_mut(dst)[off..end].copy_from_slice(&tmp[..end - off]);
        off = end;
    }
}

/// Socket options set before binding: dual stack, buffers, path-MTU behavior.
pub(super) fn configure(fd: &OwnedFd, addr: SocketAddr) -> Result<(), NetError> {
    let opt_err = |option| {
        move |source| NetError::UdpOption {
            addr,
            option,
            source,
        }
    };
    let fd = fd.as_fd();
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        sys::set_int_option(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)
            .map_err(opt_err("IPV6_V6ONLY"))?;
    }
    set_buffer(fd, SO_RCVBUFFORCE, libc::SO_RCVBUF).map_err(opt_err("SO_RCVBUF"))?;
    set_buffer(fd, SO_SNDBUFFORCE, libc::SO_SNDBUF).map_err(opt_err("SO_SNDBUF"))?;
    if addr.is_ipv6() {
        sys::set_int_option(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        )
        .map_err(opt_err("IPV6_MTU_DISCOVER"))?;
    }
    // On an AF_INET6 socket this applies to its IPv4-mapped traffic.
    sys::set_int_option(
        fd,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DONT,
    )
    .map_err(opt_err("IP_MTU_DISCOVER"))
}

/// Asks for [`UDP_SOCKET_BUFFER_BYTES`], beyond `net.core.*mem_max` when privileged.
fn set_buffer(
    fd: std::os::fd::BorrowedFd<'_>,
    force: libc::c_int,
    plain: libc::c_int,
) -> io::Result<()> {
    let bytes = UDP_SOCKET_BUFFER_BYTES as libc::c_int;
    sys::set_int_option(fd, libc::SOL_SOCKET, force, bytes)
        .or_else(|_| sys::set_int_option(fd, libc::SOL_SOCKET, plain, bytes))
}

/// The address the kernel bound (the port is resolved when 0 was asked).
fn local_address(fd: &OwnedFd) -> io::Result<SocketAddr> {
    let mut raw = RawAddr::zeroed();
    let mut len = RECV_NAME_BYTES;
    // SAFETY: `raw` is a writable buffer of `len` bytes and `len` a live socklen_t.
    let ret =
        unsafe { libc::getsockname(fd.as_raw_fd(), (&mut raw as *mut RawAddr).cast(), &mut len) };
    sys::cvt(ret)?;
    raw.socket_addr()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected address family"))
}
