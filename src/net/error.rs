//! [`NetError`]: why a TUN device or a UDP socket could not be set up. Each message names
//! the interface or address and the operation, and adds a hint when the cause is common.
//! Per-packet I/O errors stay plain [`std::io::Error`]s (they are counted, not fatal).

use std::io;
use std::net::SocketAddr;

/// A failure to create or configure a TUN device or a UDP socket.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The interface name is empty, too long (15 bytes at most) or contains `/`, a space
    /// or a NUL byte.
    #[error("invalid interface name '{name}': {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Opening `/dev/net/tun` or attaching it to an interface (`TUNSETIFF`) failed.
    #[error("cannot create TUN '{name}': /dev/net/tun: {source}{}", hint(.source))]
    TunCreate {
        /// The interface name asked for.
        name: String,
        /// The system error.
        source: io::Error,
    },
    /// A configuration step on an existing interface failed (MTU, address, route, up).
    #[error("cannot {operation} on '{name}': {source}{}", hint(.source))]
    Configure {
        /// The interface name.
        name: String,
        /// The step, e.g. "add address 198.18.0.1/24".
        operation: String,
        /// The system error (for netlink: the kernel's answer).
        source: io::Error,
    },
    /// Creating or binding the UDP socket failed.
    #[error("cannot bind UDP socket to {addr}: {source}{}", hint(.source))]
    UdpBind {
        /// The address asked for.
        addr: SocketAddr,
        /// The system error.
        source: io::Error,
    },
    /// Setting a socket option on the UDP socket failed.
    #[error("cannot set {option} on UDP socket {addr}: {source}")]
    UdpOption {
        /// The address the socket is for.
        addr: SocketAddr,
        /// The option, e.g. "IPV6_V6ONLY".
        option: &'static str,
        /// The system error.
        source: io::Error,
    },
    /// A peer endpoint could not get a receive socket of its own (see
    /// [`super::peer_queues`]); its datagrams go on arriving on the bound socket.
    #[error(
        "cannot give peer endpoint {endpoint} a receive socket of its own on {local} ({step}): {source}"
    )]
    PeerQueue {
        /// The peer's endpoint.
        endpoint: SocketAddr,
        /// The bound socket's address, shared by the peer's socket.
        local: SocketAddr,
        /// The step that failed, e.g. "connect".
        step: &'static str,
        /// The system error.
        source: io::Error,
    },
}

/// An operator hint for the common causes, with a leading space; empty otherwise.
fn hint(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => " (run as root or grant CAP_NET_ADMIN)",
        Some(libc::ENOENT) | Some(libc::ENODEV) => " (is the tun module loaded? modprobe tun)",
        Some(libc::EBUSY) => " (the interface exists and is in use by another process)",
        Some(libc::EADDRINUSE) => " (another process listens on this address)",
        Some(libc::EADDRNOTAVAIL) => " (no local interface has this address)",
        Some(libc::EEXIST) => " (it already exists)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_interface_and_give_a_hint() {
        let e = NetError::TunCreate {
            name: "qs0".into(),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot create TUN 'qs0': /dev/net/tun: "),
            "{text}"
        );
        assert!(
            text.ends_with("(run as root or grant CAP_NET_ADMIN)"),
            "{text}"
        );
        let e = NetError::Configure {
            name: "qs0".into(),
            operation: "set MTU 1400".into(),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert!(e.to_string().starts_with("cannot set MTU 1400 on 'qs0': "));
    }
}
