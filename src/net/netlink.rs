//! A small rtnetlink writer: the few requests a TUN device needs (set MTU and up, add an
//! IPv4 or IPv6 address, add a route through the device). Each request asks for an
//! acknowledgement and returns the kernel's answer as an [`io::Error`]. Messages are built
//! byte by byte in native endianness, so no C struct layout is assumed beyond the kernel
//! ABI documented in `linux/netlink.h`, `linux/rtnetlink.h` and `linux/if_addr.h`.

use super::sys;
use crate::cidr::IpCidr;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

const NLMSG_HEADER_BYTES: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTN_LOCAL: u8 = 2;
/// Offset of `rtm_type` in a route message (after the header and seven one-byte fields).
const RTM_TYPE_OFFSET: usize = NLMSG_HEADER_BYTES + 7;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = 0x1;

/// An open `NETLINK_ROUTE` socket that sends requests one at a time and waits for each
/// acknowledgement.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Opens a route netlink socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let fd = sys::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
        Ok(Self { fd, seq: 0 })
    }

    /// Sets the MTU of interface `index` (when given) and brings it up.
    pub fn set_link_up(&mut self, index: u32, mtu: Option<u32>) -> io::Result<()> {
        let mut msg = Message::new(RTM_NEWLINK, 0);
        msg.push(&[libc::AF_UNSPEC as u8, 0]); // ifi_family, padding
        msg.push(&0u16.to_ne_bytes()); // ifi_type
        msg.push(&index.to_ne_bytes()); // ifi_index
        msg.push(&IFF_UP.to_ne_bytes()); // ifi_flags
        msg.push(&IFF_UP.to_ne_bytes()); // ifi_change
        if let Some(mtu) = mtu {
            msg.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        self.request(msg)
    }

    /// Adds `cidr` as an address of interface `index`. IPv6 addresses skip duplicate
    /// address detection so they are usable at once (the TUN is point-to-point).
    pub fn add_address(&mut self, index: u32, cidr: &IpCidr) -> io::Result<()> {
        let mut msg = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        let flags = if cidr.is_ipv4() { 0 } else { IFA_F_NODAD };
        msg.push(&[
            family(cidr.addr),
            cidr.prefix,
            flags as u8,
            RT_SCOPE_UNIVERSE,
        ]);
        msg.push(&index.to_ne_bytes());
        let octets = ip_octets(cidr.addr);
        if cidr.is_ipv4() {
            msg.attr(IFA_LOCAL, &octets);
        }
        msg.attr(IFA_ADDRESS, &octets);
        msg.attr(IFA_FLAGS, &flags.to_ne_bytes());
        self.request(msg)
    }

    /// Adds a route to `cidr` (its network, host bits cleared) through interface `index`
    /// in the main table. Fails with `EEXIST` when the same route exists.
    pub fn add_route(&mut self, index: u32, cidr: &IpCidr) -> io::Result<()> {
        let mut msg = Message::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        let scope = if cidr.is_ipv4() {
            RT_SCOPE_LINK
        } else {
            RT_SCOPE_UNIVERSE
        };
        msg.push(&[family(cidr.addr), cidr.prefix, 0, 0]); // family, dst_len, src_len, tos
        msg.push(&[RT_TABLE_MAIN, RTPROT_STATIC, scope, RTN_UNICAST]);
        msg.push(&0u32.to_ne_bytes()); // rtm_flags
        if cidr.prefix > 0 {
            msg.attr(RTA_DST, &ip_octets(cidr.network()));
        }
        msg.attr(RTA_OIF, &index.to_ne_bytes());
        self.request(msg)
    }

    /// True when the kernel routes `ip` to this host (a local route exists for it).
    /// IPv6 addresses become local a moment after they are added (the kernel finishes
    /// them on a work queue), so [`TunDevice`](super::TunDevice) waits on this.
    pub fn is_local(&mut self, ip: IpAddr) -> io::Result<bool> {
        let mut msg = Message::new(RTM_GETROUTE, 0);
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        msg.push(&[family(ip), bits, 0, 0, 0, 0, 0, 0]);
        msg.push(&0u32.to_ne_bytes());
        msg.attr(RTA_DST, &ip_octets(ip));
        let mut local = false;
        self.transact(msg, |kind, whole| {
            if kind == RTM_NEWROUTE {
                local = whole.get(RTM_TYPE_OFFSET) == Some(&RTN_LOCAL);
            }
        })?;
        Ok(local)
    }

    /// Sends `msg` and waits for the kernel's acknowledgement of it.
    fn request(&mut self, msg: Message) -> io::Result<()> {
        self.transact(msg, |_, _| {})
    }

    /// Sends `msg`, hands each answer to it (type, whole message) to `on_reply`, and
    /// returns the acknowledgement's verdict.
    fn transact(
        &mut self,
        mut msg: Message,
        mut on_reply: impl FnMut(u16, &[u8]),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = msg.finish(self.seq);
        // SAFETY: the pointer and length describe `bytes`, a live slice; the kernel is the
        // destination because an unbound netlink socket sends to pid 0 by default.
        let sent = sys::cvt_size(unsafe {
            libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0)
        })?;
        if sent != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: the pointer and length describe `buf`, a live, writable buffer.
            let n = sys::cvt_size(unsafe {
                libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
            })?;
            if let Some(result) = scan_answers(&buf[..n], self.seq, &mut on_reply) {
                return result;
            }
        }
    }
}

/// Scans a buffer of netlink messages with sequence `seq`: hands each to `on_reply` and
/// returns the verdict of the error/ack message when there is one.
fn scan_answers(
    mut buf: &[u8],
    seq: u32,
    on_reply: &mut impl FnMut(u16, &[u8]),
) -> Option<io::Result<()>> {
    while buf.len() >= NLMSG_HEADER_BYTES {
        let len = u32::from_ne_bytes(buf[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().ok()?);
        let msg_seq = u32::from_ne_bytes(buf[8..12].try_into().ok()?);
        if len < NLMSG_HEADER_BYTES || len > buf.len() {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad netlink answer",
            )));
        }
        if msg_seq == seq && kind == NLMSG_ERROR && len >= NLMSG_HEADER_BYTES + 4 {
            let code = i32::from_ne_bytes(buf[16..20].try_into().ok()?);
            return Some(match code {
                0 => Ok(()),
                c => Err(io::Error::from_raw_os_error(-c)),
            });
        }
        if msg_seq == seq {
            on_reply(kind, &buf[..len]);
        }
        buf = &buf[align4(len).min(buf.len())..];
    }
    None
}

/// A netlink request under construction: header, fixed part, attributes.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    /// A request of type `kind` asking for an acknowledgement, plus `flags`.
    fn new(kind: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence, set by finish
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: 0 lets the kernel fill it
        Self { buf }
    }

    /// Appends raw bytes of the fixed part.
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends one `rtattr` (length, type, value, padding to 4 bytes).
    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = (4 + value.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// Writes the total length and the sequence number; returns the bytes to send.
    fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn ip_octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_length_is_written() {
        let mut msg = Message::new(RTM_NEWADDR, 0);
        msg.push(&[2, 24, 0, 0, 1, 0, 0, 0]);
        msg.attr(IFA_LOCAL, &[198, 18, 0, 1]);
        msg.attr(99, &[1]); // 5 bytes, padded to 8
        let bytes = msg.finish(7).to_vec();
        assert_eq!(bytes.len(), 16 + 8 + 8 + 8);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 40);
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
        assert_eq!(u16::from_ne_bytes(bytes[32..34].try_into().unwrap()), 5);
    }

    #[test]
    fn ack_parsing_maps_errno() {
        let mut ack = vec![0u8; 36];
        ack[0..4].copy_from_slice(&36u32.to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&3u32.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let mut ignore = |_: u16, _: &[u8]| {};
        let err = scan_answers(&ack, 3, &mut ignore).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        assert!(scan_answers(&ack, 4, &mut ignore).is_none());
        ack[16..20].copy_from_slice(&0i32.to_ne_bytes());
        assert!(scan_answers(&ack, 3, &mut ignore).unwrap().is_ok());
    }
}
