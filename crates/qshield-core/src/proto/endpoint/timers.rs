//! The timers: what [`Endpoint::handle_timeout`] runs and when
//! [`Endpoint::poll_timeout`] says it next has work — session expiry, rekeying, the
//! dead-peer check, keepalives, handshake retransmission and the QKD waits. Every deadline
//! is an entry of the peer's [`TimerTable`] (see `timer.rs`).

use super::Endpoint;
use super::timer::{PeerTimer, TimerTable};
use crate::constants::QKD_REQUEST_TIMEOUT;
use crate::proto::PeerId;
use crate::proto::events::InitiationReason;
use crate::proto::session::{ExpiryReason, KeyUse};
use crate::proto::time::Instant;

impl Endpoint {
    /// Runs every timer that is due at `now`. Each handler checks its peer's state as well
    /// as its timers, so a call at any time is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        for p in self.peers.ids() {
            // QkdRetry: only a "not before" for the next key request; once passed it gates
            // nothing, and left armed it would keep `poll_timeout` in the past
            let timers = &mut self.peers[p].timers;
            if timers.is_expired(PeerTimer::QkdRetry, now) {
                timers.stop(PeerTimer::QkdRetry);
            }
            // SessionExpiry
            self.expire_sessions(now, p);
            // InitiationKeyTimeout, StartYield, ResponseKeyTimeout
            self.qkd_timers(now, p);
            // HandshakeRetry
            self.retry_handshake(now, p);
            // DeadPeer, Rekey (and QkdRetry through it)
            self.rekey_if_due(now, p);
            // Keepalive, PersistentKeepalive
            self.keepalive_if_due(now, p);
        }
    }

    /// The earliest instant at which [`Endpoint::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .ids()
            .filter_map(|p| self.peer_timers(p).next())
            .min()
    }

    /// Peer `p`'s whole timer table: the timers its state changes set, with those that
    /// follow from its sessions, key requests and settings filled in.
    fn peer_timers(&self, p: PeerId) -> TimerTable {
        let peer = &self.peers[p];
        let b = &self.budget;
        let mut timers = peer.timers;
        let expiry = [&peer.previous, &peer.current, &peer.next]
            .into_iter()
            .flatten()
            .map(|s| s.created_at + b.reject_after)
            .min();
        timers.set_or_stop(PeerTimer::SessionExpiry, expiry);
        let not_before = timers.get(PeerTimer::QkdRetry).unwrap_or_default();
        let rekey = peer
            .current
            .as_ref()
            .filter(|_| peer.pending.is_none() && peer.qkd_pending.is_none())
            .map(|s| (s.created_at + s.rekey_after(b)).max(not_before));
        timers.set_or_stop(PeerTimer::Rekey, rekey);
        let persistent = peer
            .settings
            .persistent_keepalive
            .zip(peer.last_sent)
            .map(|(i, t)| t + i);
        timers.set_or_stop(PeerTimer::PersistentKeepalive, persistent);
        let key_timeout =
            |q: &Option<super::qkd::PendingQkd>| q.as_ref().map(|q| q.since + QKD_REQUEST_TIMEOUT);
        timers.set_or_stop(
            PeerTimer::InitiationKeyTimeout,
            key_timeout(&peer.qkd_pending),
        );
        timers.set_or_stop(
            PeerTimer::ResponseKeyTimeout,
            key_timeout(&peer.qkd_answering),
        );
        timers
    }

    fn expire_sessions(&mut self, now: Instant, p: PeerId) {
        let reject_after = self.budget.reject_after;
        let peer = &mut self.peers[p];
        let mut freed = Vec::new();
        for slot in [&mut peer.previous, &mut peer.next] {
            if slot.as_ref().is_some_and(|s| s.age(now) >= reject_after) {
                freed.extend(slot.take().map(|s| s.local_index));
            }
        }
        for i in freed {
            self.indices.remove(&i);
        }
        if self.peers[p]
            .current
            .as_ref()
            .is_some_and(|s| s.age(now) >= reject_after)
        {
            self.expire_current(p, ExpiryReason::Time);
        }
    }

    fn rekey_if_due(&mut self, now: Instant, p: PeerId) {
        let peer = &mut self.peers[p];
        if peer.timers.is_expired(PeerTimer::DeadPeer, now) {
            peer.timers.stop(PeerTimer::DeadPeer);
            self.initiate(now, p, InitiationReason::DeadPeer);
            return;
        }
        let due = peer.current.as_ref().map(|s| s.send_use(now, &self.budget));
        if let Some(KeyUse::RekeyDue(reason)) = due {
            self.initiate(now, p, InitiationReason::Rekey(reason));
        } else if peer.current.is_none() && !peer.staged.is_empty() {
            // traffic waits (e.g. a QKD key was missing under `require`): try again
            self.initiate(now, p, InitiationReason::Traffic);
        }
    }

    fn keepalive_if_due(&mut self, now: Instant, p: PeerId) {
        let peer = &self.peers[p];
        let passive = peer.timers.is_expired(PeerTimer::Keepalive, now);
        let persistent = peer
            .settings
            .persistent_keepalive
            .is_some_and(|i| peer.last_sent.is_none_or(|t| now - t >= i));
        if passive {
            self.peers[p].timers.stop(PeerTimer::Keepalive);
        }
        if (passive || persistent) && self.ensure_sendable(now, p) {
            self.send_single(now, p, &[]);
        }
    }
}
