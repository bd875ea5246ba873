//! Inner packets read from the TUN that are larger than the tunnel MTU: dropped, counted,
//! and answered with ICMP "fragmentation needed" / "packet too big" written back into the
//! TUN (built by [`crate::icmp`]), so the sender's path-MTU discovery adapts as it would
//! behind a kernel tunnel. This happens when the interface's MTU was raised above the
//! tunnel's (by hand, or by a network manager). The first such packet is logged, once per
//! interface; answers are rate-limited.

use super::Counters;
use super::offload::VNET_HDR_LEN;
use crate::icmp;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// At most this many ICMP errors per [`TOO_BIG_ANSWER_WINDOW`] per interface (Linux's own
/// `icmp_msgs_per_sec` default is 1000 per second for the whole host).
pub const TOO_BIG_ANSWERS_PER_WINDOW: u32 = 100;
/// The window of [`TOO_BIG_ANSWERS_PER_WINDOW`].
pub const TOO_BIG_ANSWER_WINDOW: Duration = Duration::from_millis(100);

/// Answers oversize inner packets of one TUN interface.
#[derive(Debug)]
pub(crate) struct TooBigResponder {
    /// The interface name (for the log line).
    name: String,
    /// The tunnel MTU the answers advertise.
    mtu: u16,
    /// The TUN carries a virtio-net header before each packet.
    vnet_hdr: bool,
    logged: AtomicBool,
    /// Start of the current rate window and the answers sent in it.
    window: Mutex<(Instant, u32)>,
}

impl TooBigResponder {
    pub(crate) fn new(name: &str, mtu: u16, vnet_hdr: bool) -> Self {
        Self {
            name: name.to_string(),
            mtu,
            vnet_hdr,
            logged: AtomicBool::new(false),
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// The tunnel MTU: inner packets longer than this are too big.
    pub(crate) fn mtu(&self) -> usize {
        usize::from(self.mtu)
    }

    /// Handles one packet of `len` bytes that is too big; `start` is as much of it as was
    /// read (at least its headers when the read was cut short).
    pub(crate) fn answer(&self, fd: &OwnedFd, start: &[u8], len: usize, counters: &Counters) {
        counters.too_big(1);
        let Some(error) = icmp::packet_too_big(start, self.mtu) else {
            return;
        };
        if !self.logged.swap(true, Ordering::Relaxed) {
            let header = crate::proto::inner::parse(start);
            tracing::warn!(
                tun = %self.name,
                bytes = len,
                mtu = self.mtu,
                src = ?header.map(|h| h.src),
                dst = ?header.map(|h| h.dst),
                "inner packet larger than the tunnel MTU: dropped and answered with ICMP fragmentation needed / packet too big, so the sender lowers its path MTU (was the interface's MTU raised above interface.mtu? logged once)"
            );
        }
        if !self.take_token() {
            return;
        }
        let result = if self.vnet_hdr {
            let mut framed = vec![0u8; VNET_HDR_LEN];
            framed.extend_from_slice(&error);
            super::tun::write_packet(fd, &framed)
        } else {
            super::tun::write_packet(fd, &error)
        };
        match result {
            Ok(_) => counters.too_big_answered(1),
            Err(e) => {
                tracing::debug!(tun = %self.name, error = %e, "ICMP too-big answer not written")
            }
        }
    }

    fn take_token(&self) -> bool {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now - window.0 >= TOO_BIG_ANSWER_WINDOW {
            *window = (now, 0);
        }
        if window.1 >= TOO_BIG_ANSWERS_PER_WINDOW {
            return false;
        }
        window.1 += 1;
        true
    }
}
