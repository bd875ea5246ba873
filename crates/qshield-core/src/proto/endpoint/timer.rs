//! One peer's timers, as quinn-proto's `connection/timer.rs` keeps a connection's:
//! [`PeerTimer`] names every deadline the endpoint has for a peer and [`TimerTable`] holds
//! when each fires. [`Endpoint::poll_timeout`](super::Endpoint::poll_timeout) is the
//! earliest entry of any peer's table; `timers.rs` handles them.
//!
//! Some timers are set and stopped as the peer's state changes (the handshake retry, the
//! keepalive and dead-peer checks, the QKD retry and start yield: the peer's own table);
//! the others follow from its sessions, requests and settings and are filled in when the
//! whole table is read (see `Endpoint::peer_timers`).

use crate::proto::time::Instant;

/// A deadline of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PeerTimer {
    /// The oldest of its sessions reaches the hard time budget (from the sessions).
    SessionExpiry,
    /// The current key reaches its soft time budget and a rotation starts (from the
    /// current session, while no handshake or key request of ours is in flight; not before
    /// [`PeerTimer::QkdRetry`]).
    Rekey,
    /// Our initiation is retransmitted, or abandoned (set while one is in flight).
    HandshakeRetry,
    /// Data came but we sent nothing back: a keepalive is due (set).
    Keepalive,
    /// Data went but nothing came back: the peer may be dead, a handshake starts (set).
    DeadPeer,
    /// The configured persistent keepalive interval has passed since we last sent (from
    /// the settings and the last send).
    PersistentKeepalive,
    /// Our `enc_keys` request for our initiation's key is given up (from the request).
    InitiationKeyTimeout,
    /// Our `dec_keys` request for the key of the peer's initiation is given up (from the
    /// request).
    ResponseKeyTimeout,
    /// Under `require`, after a failed key request: the next may be made (set).
    QkdRetry,
    /// At start, the site that would lose a simultaneous initiation stops waiting for the
    /// peer's (set).
    StartYield,
}

impl PeerTimer {
    const COUNT: usize = 10;

    fn slot(self) -> usize {
        self as usize
    }
}

/// When each of a peer's timers fires (`None`: not armed).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TimerTable {
    deadlines: [Option<Instant>; PeerTimer::COUNT],
}

impl TimerTable {
    /// Arms `timer` to fire at `at` (replacing any earlier setting).
    pub(super) fn set(&mut self, timer: PeerTimer, at: Instant) {
        self.deadlines[timer.slot()] = Some(at);
    }

    /// Disarms `timer`.
    pub(super) fn stop(&mut self, timer: PeerTimer) {
        self.deadlines[timer.slot()] = None;
    }

    /// Arms `timer` at `at`, or disarms it for `None`.
    pub(super) fn set_or_stop(&mut self, timer: PeerTimer, at: Option<Instant>) {
        self.deadlines[timer.slot()] = at;
    }

    /// When `timer` fires, if armed.
    pub(super) fn get(&self, timer: PeerTimer) -> Option<Instant> {
        self.deadlines[timer.slot()]
    }

    /// The earliest armed deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// True when `timer` is armed and due at `now`.
    pub(super) fn is_expired(&self, timer: PeerTimer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| now >= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_is_the_earliest_armed_timer_and_expiry_is_inclusive() {
        let at = |ms| Instant::ZERO + Duration::from_millis(ms);
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(PeerTimer::Keepalive, at(30));
        t.set(PeerTimer::StartYield, at(20));
        t.set(PeerTimer::SessionExpiry, at(40));
        assert_eq!(t.next(), Some(at(20)));
        assert!(t.is_expired(PeerTimer::StartYield, at(20)));
        assert!(!t.is_expired(PeerTimer::Keepalive, at(29)));
        assert!(!t.is_expired(PeerTimer::DeadPeer, at(99)), "not armed");
        t.stop(PeerTimer::StartYield);
        assert_eq!(t.next(), Some(at(30)));
        t.set_or_stop(PeerTimer::Keepalive, None);
        assert_eq!(t.get(PeerTimer::Keepalive), None);
        assert_eq!(t.next(), Some(at(40)));
    }
}
