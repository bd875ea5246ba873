//! Peer queues: a receive queue of its own for each known peer endpoint, so that a flood
//! from other addresses cannot crowd a peer's datagrams out of the kernel.
//!
//! Why: when datagrams arrive faster than the daemon drains its socket, the kernel drops
//! from the full receive queue without regard to the sender. A flood of spoofed handshake
//! fragments then costs the real peer the same share of its datagrams as the flood loses:
//! data, and the handshake fragments that rotate the key (tests/netns/flood.sh measured
//! 62 % of everything lost, and a key that expired before the next handshake got through).
//!
//! How: [`UdpSocket`](super::UdpSocket) turns `SO_REUSEPORT` on for its bound socket after
//! binding it (so a later bind of the same port without it, such as a second daemon, is
//! still refused), and gives each peer endpoint a socket that sets `SO_REUSEPORT`, binds
//! the same address and port, and connects to the endpoint. The kernel hands a datagram to
//! the connected socket whose addresses match it (the most specific match), so a peer's
//! datagrams queue apart from everything else; only sockets of the same user may join the
//! port. Every socket is read by the same receive call, peers first (see
//! [`UdpSocket`](super::UdpSocket)'s `recv_batch`); all sending stays on the bound socket.
//!
//! Limits, each falling back to the bound socket's shared queue (nothing is lost):
//! - at most [`PEER_QUEUES_MAX`] endpoints (each socket is a file descriptor);
//! - an endpoint is known once a peer authenticated from it, or from the configuration;
//! - a sender that spoofs exactly a peer's address and port shares that peer's queue;
//! - on a host with several addresses, a peer that sends to an address other than the one
//!   the kernel would send to it from arrives on the bound socket (the connected socket is
//!   bound to the address routing chose).

use super::error::NetError;
use super::sys::{self, Epoll, RawAddr};
use super::udp::Receiver;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, RwLock};

/// Most peer endpoints given a receive socket of their own; the others share the bound
/// socket's queue. Each is a file descriptor (a process's soft limit is often 1024).
pub const PEER_QUEUES_MAX: usize = 256;

/// One peer endpoint's connected socket.
#[derive(Clone)]
pub(super) struct PeerQueue {
    /// The peer's address and port.
    pub(super) endpoint: SocketAddr,
    /// Its socket.
    pub(super) receiver: Arc<Receiver>,
}

/// The peer queues of one bound socket.
pub(super) struct PeerQueues {
    /// The current sockets, sorted by epoll token; the receiving thread takes the list
    /// once per call.
    current: RwLock<Arc<[PeerQueue]>>,
    /// Held while the set changes, so two updates do not interleave.
    update: Mutex<()>,
}

/// What a peer socket copies from the bound socket.
pub(super) struct BoundSocket<'a> {
    /// Its address (port resolved).
    pub(super) local: SocketAddr,
    /// It is a dual-stack `AF_INET6` socket: IPv4 endpoints are connected IPv4-mapped.
    pub(super) map_v4: bool,
    /// It receives with `UDP_GRO`.
    pub(super) gro: bool,
    /// Readiness of every socket it reads.
    pub(super) epoll: &'a Epoll,
}

impl PeerQueues {
    /// No peer sockets yet.
    pub(super) fn new() -> Self {
        Self {
            current: RwLock::new(Arc::from(Vec::new())),
            update: Mutex::new(()),
        }
    }

    /// The sockets now, sorted by [`Receiver::token`].
    pub(super) fn snapshot(&self) -> Arc<[PeerQueue]> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes the set of peer sockets match `endpoints` (the first [`PEER_QUEUES_MAX`]
    /// distinct ones): keeps the sockets of endpoints still listed, opens the missing ones
    /// and closes the rest (datagrams still queued on a closed one are lost: its peer has
    /// moved). Returns the endpoints that could not get a socket, with why.
    pub(super) fn set(&self, endpoints: &[SocketAddr], bound: &BoundSocket<'_>) -> Vec<NetError> {
        let _update = self.update.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.snapshot();
        let mut wanted: Vec<SocketAddr> = Vec::new();
        for &e in endpoints {
            if wanted.len() < PEER_QUEUES_MAX && !wanted.contains(&e) {
                wanted.push(e);
            }
        }
        let mut errors = Vec::new();
        let mut next: Vec<PeerQueue> = Vec::with_capacity(wanted.len());
        for &endpoint in &wanted {
            if let Some(kept) = old.iter().find(|q| q.endpoint == endpoint) {
                next.push(kept.clone());
                continue;
            }
            match open(endpoint, bound) {
                Ok(receiver) => next.push(PeerQueue {
                    endpoint,
                    receiver: Arc::new(receiver),
                }),
                Err(e) => errors.push(e),
            }
        }
        for gone in old.iter().filter(|q| !wanted.contains(&q.endpoint)) {
            // The descriptor closes when the last list holding it is dropped.
            let _ = bound.epoll.delete(gone.receiver.fd().as_fd());
        }
        next.sort_by_key(|q| q.receiver.token());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(next);
        errors
    }
}

/// A socket sharing the bound socket's address and port, connected to `endpoint` and
/// watched by the bound socket's epoll.
fn open(endpoint: SocketAddr, bound: &BoundSocket<'_>) -> Result<Receiver, NetError> {
    let local = bound.local;
    let err = |step| {
        move |source| NetError::PeerQueue {
            endpoint,
            local,
            step,
            source,
        }
    };
    if local.is_ipv4() && endpoint.is_ipv6() {
        return Err(err("family")(std::io::Error::from_raw_os_error(
            libc::EAFNOSUPPORT,
        )));
    }
    let domain = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = sys::socket(domain, libc::SOCK_DGRAM, 0).map_err(err("socket"))?;
    super::udp::configure(&fd, local)?;
    sys::set_int_option(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)
        .map_err(err("SO_REUSEPORT"))?;
    let (raw, len) = RawAddr::from_socket_addr(local, false);
    sys::bind(fd.as_fd(), &raw, len).map_err(err("bind"))?;
    let (raw, len) = RawAddr::from_socket_addr(endpoint, bound.map_v4);
    sys::connect(fd.as_fd(), &raw, len).map_err(err("connect"))?;
    let gro = bound.gro && super::udp_gso::enable_gro(fd.as_fd());
    let receiver = Receiver::new(fd, gro);
    bound
        .epoll
        .add(receiver.fd().as_fd())
        .map_err(err("epoll"))?;
    Ok(receiver)
}
