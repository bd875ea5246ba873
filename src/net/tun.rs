//! [`TunDevice`]: a kernel TUN interface. It is opened through `/dev/net/tun`
//! (`TUNSETIFF`, no packet-information header, non-blocking fd), configured through
//! [`netlink`](super::netlink) (MTU, addresses, up, routes), and moves inner IP packets in
//! batches. The interface is not persistent: it disappears when the device is dropped.
//!
//! The ioctls are written here rather than taken from a TUN crate (such as `tun-rs`) so
//! that the later offload work keeps full control of the fd, its flags and its framing.
//!
//! Offload seam: [`TunMode`] is the one place that decides the `TUNSETIFF` flags. Adding
//! `IFF_VNET_HDR` (then `TUNSETVNETHDRSZ` and `TUNSETOFFLOAD` for TSO/GRO, and a
//! `virtio_net_hdr` in front of every packet) or `IFF_MULTI_QUEUE` (then one open per
//! queue under the same name, one fd per worker) starts there.

use super::error::NetError;
use super::netlink::Netlink;
use super::tun_too_big::TooBigResponder;
use super::tun_vnet::{VnetReader, VnetWriter};
use super::{Counters, IoStats, TunIo, sys};
use crate::batch::{PacketBatch, SlotMeta};
use crate::cidr::IpCidr;
use crate::constants::DATA_HEADER_BYTES;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest wait, after adding its addresses to a new TUN, for the kernel to treat them as
/// local (IPv6 addresses are finished on a kernel work queue, usually within a millisecond).
pub const TUN_ADDRESS_READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the daemon asks of its TUN interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunSettings {
    /// Interface name, at most 15 bytes (e.g. `qs0`); a `%d` pattern lets the kernel pick.
    pub name: String,
    /// Interface MTU in bytes (inner packets).
    pub mtu: u16,
    /// Addresses with their prefix length; each prefix becomes a connected route.
    pub addresses: Vec<IpCidr>,
    /// Prefixes routed into the tunnel; those inside a connected prefix are skipped.
    pub routes: Vec<IpCidr>,
    /// Offloads to try (TSO on reads, coalescing on writes); others are ignored here.
    pub offload: super::OffloadWish,
}

/// The offloads a [`TunDevice`] got from the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TunOffload {
    /// Packets carry a `virtio_net_hdr` (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
    /// Reads may be TCP super-packets (`TUN_F_TSO4 | TUN_F_TSO6`).
    pub tso: bool,
    /// Reads may be UDP super-packets (`TUN_F_USO4 | TUN_F_USO6`, Linux 6.2+).
    pub uso: bool,
    /// Writes coalesce TCP segments into super-packets.
    pub gro: bool,
}

/// `TUNSETOFFLOAD` (`_IOW('T', 208, unsigned int)`).
const TUNSETOFFLOAD: libc::Ioctl = 0x4004_54d0;
/// `TUN_F_*` offload bits (linux/if_tun.h).
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;

/// The `TUNSETIFF` flags: the seam for the later offload work (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
struct TunMode {
    /// `IFF_VNET_HDR`: every packet carries a `virtio_net_hdr` (needed for TSO/GRO).
    vnet_hdr: bool,
    /// `IFF_MULTI_QUEUE`: several fds share the interface, one per worker.
    multi_queue: bool,
}

impl TunMode {
    fn iff_flags(self) -> libc::c_short {
        let mut flags = libc::IFF_TUN | libc::IFF_NO_PI;
        if self.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        if self.multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        flags as libc::c_short
    }
}

/// An open TUN interface. Receiving and sending may run on two threads at once.
pub struct TunDevice {
    fd: OwnedFd,
    name: String,
    index: u32,
    counters: Counters,
    offload: TunOffload,
    /// Answers inner packets larger than the MTU asked for.
    too_big: TooBigResponder,
    reader: Mutex<VnetReader>,
    writer: Mutex<VnetWriter>,
}

impl std::fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("index", &self.index)
            .field("offload", &self.offload)
            .finish()
    }
}

impl TunDevice {
    /// Creates the interface, sets its MTU, adds its addresses, brings it up and adds the
    /// routes not already covered by a connected prefix. On any failure the half-made
    /// interface is removed again (its fd is closed).
    pub fn create(settings: &TunSettings) -> Result<Self, NetError> {
        validate_name(&settings.name)?;
        let (fd, name, offload) = open_offloaded(&settings.name, settings.offload)?;
        let index = sys::interface_index(&name).ok_or_else(|| NetError::Configure {
            name: name.clone(),
            operation: "look up the interface index".into(),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        let device = Self {
            fd,
            name: name.clone(),
            index,
            counters: Counters::default(),
            offload,
            too_big: TooBigResponder::new(&name, settings.mtu, offload.vnet_hdr),
            reader: Mutex::new(VnetReader::new_if(offload.vnet_hdr)),
            writer: Mutex::new(VnetWriter::new(offload.gro)),
        };
        device.configure(settings)?;
        Ok(device)
    }

    /// The interface name the kernel gave (differs from the request only for `%d`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The offloads in use.
    pub fn offload(&self) -> TunOffload {
        self.offload
    }

    /// The kernel's interface index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The MTU the kernel reports for the interface now.
    pub fn mtu(&self) -> io::Result<u32> {
        let mut req = sys::ifreq_for(&self.name);
        sys::interface_ioctl(libc::SIOCGIFMTU, &mut req)?;
        // SAFETY: SIOCGIFMTU wrote the mtu member of the union.
        Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
    }

    /// True when the interface is administratively up.
    pub fn is_up(&self) -> io::Result<bool> {
        let mut req = sys::ifreq_for(&self.name);
        sys::interface_ioctl(libc::SIOCGIFFLAGS, &mut req)?;
        // SAFETY: SIOCGIFFLAGS wrote the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        Ok(libc::c_int::from(flags) & libc::IFF_UP != 0)
    }

    fn configure(&self, settings: &TunSettings) -> Result<(), NetError> {
        let mut nl = Netlink::open().map_err(|e| self.error("open rtnetlink", e))?;
        nl.set_link_up(self.index, Some(u32::from(settings.mtu)))
            .map_err(|e| self.error(&format!("set MTU {} and bring up", settings.mtu), e))?;
        for cidr in &settings.addresses {
            nl.add_address(self.index, cidr)
                .map_err(|e| self.error(&format!("add address {cidr}"), e))?;
        }
        self.wait_addresses_usable(&mut nl, &settings.addresses);
        for route in routes_to_add(&settings.addresses, &settings.routes) {
            nl.add_route(self.index, &route)
                .map_err(|e| self.error(&format!("add route {route}"), e))?;
        }
        Ok(())
    }

    /// Waits (at most [`TUN_ADDRESS_READY_TIMEOUT`]) until the kernel treats every address
    /// as local: IPv6 addresses are finished asynchronously, and a packet to one of them
    /// arriving before that is dropped. A timeout is logged, not fatal.
    fn wait_addresses_usable(&self, nl: &mut Netlink, addresses: &[IpCidr]) {
        let deadline = Instant::now() + TUN_ADDRESS_READY_TIMEOUT;
        for cidr in addresses {
            while !nl.is_local(cidr.addr).unwrap_or(true) {
                if Instant::now() >= deadline {
                    tracing::warn!(tun = %self.name, address = %cidr, "address not usable yet");
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn error(&self, operation: &str, source: io::Error) -> NetError {
        NetError::Configure {
            name: self.name.clone(),
            operation: operation.to_string(),
            source,
        }
    }

    /// Reads packets already queued into slots `from..` until the queue is empty or the
    /// batch is full; returns the new number of filled slots.
    fn drain(&self, batch: &mut PacketBatch, from: usize) -> io::Result<usize> {
        let mut filled = from;
        while filled < batch.capacity() {
            let (slot, meta) = batch.slot_and_meta_mut(filled);
            let room = &mut slot[DATA_HEADER_BYTES..];
            match read_packet(&self.fd, room) {
                Ok(0) => break,
                // a read that filled the slot may have been cut short: too big either way
                Ok(n) if n > self.too_big.mtu() => {
                    self.too_big.answer(&self.fd, &room[..n], n, &self.counters)
                }
                Ok(n) => {
                    *meta = SlotMeta {
                        start: DATA_HEADER_BYTES,
                        len: n,
                        addr: None,
                    };
                    filled += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if filled > 0 => {
                    tracing::debug!(tun = %self.name, error = %e, "TUN read failed mid-batch");
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

impl TunDevice {
    fn recv_vnet(&self, batch: &mut PacketBatch, timeout: Duration) -> io::Result<usize> {
        batch.clear();
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + timeout;
        loop {
            if !reader.has_pending() {
                let left = deadline.saturating_duration_since(Instant::now());
                if !sys::poll_readable(self.fd.as_fd(), left)? {
                    return Ok(0);
                }
            }
            let n = reader.fill(&self.fd, batch, &self.too_big, &self.counters)?;
            if n > 0 || Instant::now() >= deadline {
                batch.set_len(n);
                self.counters.received(n);
                return Ok(n);
            }
        }
    }
}

impl TunIo for TunDevice {
    fn recv_batch(&self, batch: &mut PacketBatch, timeout: Duration) -> io::Result<usize> {
        if self.offload.vnet_hdr {
            return self.recv_vnet(batch, timeout);
        }
        batch.clear();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !sys::poll_readable(self.fd.as_fd(), left)? {
                return Ok(0);
            }
            let n = self.drain(batch, 0)?;
            if n > 0 || Instant::now() >= deadline {
                batch.set_len(n);
                self.counters.received(n);
                return Ok(n);
            }
        }
    }

    fn send_batch(&self, batch: &PacketBatch) -> io::Result<usize> {
        if self.offload.vnet_hdr {
            let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            let sent = writer.send(&self.fd, batch, &self.counters);
            self.counters.sent(sent);
            return Ok(sent);
        }
        let mut sent = 0;
        for i in (0..batch.len()).filter(|&i| batch.meta(i).len > 0) {
            match write_packet(&self.fd, batch.bytes(i)) {
                Ok(_) => sent += 1,
                Err(e) => {
                    tracing::trace!(tun = %self.name, error = %e, "TUN write failed");
                    self.counters.send_errors(1);
                }
            }
        }
        self.counters.sent(sent);
        Ok(sent)
    }

    fn stats(&self) -> IoStats {
        self.counters.snapshot()
    }
}

/// The index of interface `name` in the calling thread's network namespace, or `None`
/// when it does not exist.
pub fn interface_index(name: &str) -> Option<u32> {
    sys::interface_index(name)
}

/// Refuses names the kernel would refuse or silently cut.
fn validate_name(name: &str) -> Result<(), NetError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() >= libc::IFNAMSIZ {
        Some("it is longer than 15 bytes")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace())
    {
        Some("it contains '/', a NUL byte or white space")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Opens `/dev/net/tun` non-blocking and attaches it to interface `name`; returns the fd
/// and the name the kernel used.
fn open_tun(name: &str, mode: TunMode) -> Result<(OwnedFd, String), NetError> {
    let fail = |source| NetError::TunCreate {
        name: name.to_string(),
        source,
    };
    let flags = libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: the path is a NUL-terminated literal; open(2) reads it only.
    let raw = sys::cvt(unsafe { libc::open(c"/dev/net/tun".as_ptr(), flags) }).map_err(fail)?;
    // SAFETY: `raw` was just returned by open(2), is open and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = sys::ifreq_for(name);
    req.ifr_ifru.ifru_flags = mode.iff_flags();
    // SAFETY: TUNSETIFF reads and writes the ifreq, which is valid and exclusively borrowed.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF,
            &mut req as *mut libc::ifreq,
        )
    };
    sys::cvt(ret).map_err(fail)?;
    Ok((fd, sys::ifname_from(&req.ifr_name)))
}

/// Opens the TUN with the offloads `wish` asks for that the kernel accepts: TSO and USO
/// first, then TSO alone, then checksum offload only (reads are then single packets, writes
/// may still be coalesced), and without a virtio header when even that is refused or
/// nothing was asked. What was got is returned, for status and the log.
fn open_offloaded(
    name: &str,
    wish: super::OffloadWish,
) -> Result<(OwnedFd, String, TunOffload), NetError> {
    if wish.tun_tso || wish.tun_gro {
        let mode = TunMode {
            vnet_hdr: true,
            multi_queue: false,
        };
        let (fd, got) = open_tun(name, mode)?;
        let tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        let tries: &[(libc::c_uint, bool, bool)] = if wish.tun_tso {
            &[
                (tso | TUN_F_USO4 | TUN_F_USO6, true, true),
                (tso, true, false),
                (TUN_F_CSUM, false, false),
                (0, false, false),
            ]
        } else {
            &[(0, false, false)]
        };
        for &(bits, tso, uso) in tries {
            if set_offload(&fd, bits).is_ok() {
                let offload = TunOffload {
                    vnet_hdr: true,
                    tso,
                    uso,
                    gro: wish.tun_gro,
                };
                return Ok((fd, got, offload));
            }
        }
        tracing::warn!(tun = %got, "TUNSETOFFLOAD refused: TUN without offloads");
        drop(fd);
    }
    let (fd, got) = open_tun(name, TunMode::default())?;
    Ok((fd, got, TunOffload::default()))
}

/// `TUNSETOFFLOAD` with `bits`.
fn set_offload(fd: &OwnedFd, bits: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int), no pointer.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD, libc::c_ulong::from(bits)) };
    sys::cvt(ret).map(drop)
}

/// One `read(2)` into `buf`, retried on `EINTR`.
pub(crate) fn read_packet(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe `buf`, a live, writable slice.
        let ret = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match sys::cvt_size(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// One `write(2)` of a whole packet, retried on `EINTR`.
pub(super) fn write_packet(fd: &OwnedFd, packet: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe `packet`, a live slice.
        let ret = unsafe { libc::write(fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        match sys::cvt_size(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The routes to add: those not inside the connected prefix of one of `addresses`.
fn routes_to_add(addresses: &[IpCidr], routes: &[IpCidr]) -> Vec<IpCidr> {
    routes
        .iter()
        .filter(|r| {
            !addresses
                .iter()
                .any(|a| a.prefix <= r.prefix && a.contains(r.network()))
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<IpCidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn connected_prefixes_are_not_routed_again() {
        let addrs = cidrs(&["198.18.0.1/24", "fd00:5159::1/64"]);
        let routes = cidrs(&[
            "198.18.0.0/24",
            "198.18.0.128/25",
            "198.18.0.0/16",
            "198.19.5.0/24",
            "fd00:5159::/64",
            "fd00:5159:1::/64",
        ]);
        let got: Vec<String> = routes_to_add(&addrs, &routes)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["198.18.0.0/16", "198.19.5.0/24", "fd00:5159:1::/64"]);
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("qs0").is_ok());
        assert!(validate_name("qs%d").is_ok());
        for bad in ["", "a-name-that-is-too-long", "a/b", "a b"] {
            let err = validate_name(bad).unwrap_err();
            assert!(matches!(err, NetError::InvalidName { .. }), "{bad}");
        }
    }

    #[test]
    fn default_mode_is_plain_tun_without_packet_info() {
        let flags = libc::c_int::from(TunMode::default().iff_flags());
        assert_eq!(flags, libc::IFF_TUN | libc::IFF_NO_PI);
    }
}
