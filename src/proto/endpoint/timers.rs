//! The timers: what [`Endpoint::handle_timeout`] runs and when
//! [`Endpoint::poll_timeout`] says it next has work — session expiry, rekeying, the
//! dead-peer check, keepalives, handshake retransmission and the QKD waits.

use super::Endpoint;
use super::peer::Peer;
use crate::proto::PeerId;
use crate::proto::events::InitiationReason;
use crate::proto::session::{ExpiryReason, KeyUse};
use crate::proto::time::Instant;

impl Endpoint {
    // ------------------------------------------------------------ timers

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for p in self.peers.ids() {
            self.expire_sessions(now, p);
            self.qkd_timers(now, p);
            self.retry_handshake(now, p);
            self.rekey_if_due(now, p);
            self.keepalive_if_due(now, p);
        }
    }

    /// The earliest instant at which [`Endpoint::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .ids()
            .flat_map(|p| [self.peer_deadline(&self.peers[p]), self.qkd_deadline(p)])
            .flatten()
            .min()
    }

    fn peer_deadline(&self, peer: &Peer) -> Option<Instant> {
        let b = &self.budget;
        let expiries = [&peer.previous, &peer.current, &peer.next]
            .into_iter()
            .flatten()
            .map(|s| s.created_at + b.reject_after);
        let rekey = peer
            .current
            .as_ref()
            .filter(|_| peer.pending.is_none() && peer.qkd_pending.is_none())
            .map(|s| (s.created_at + s.rekey_after(b)).max(peer.qkd.retry_at.unwrap_or_default()));
        let persistent = peer
            .settings
            .persistent_keepalive
            .zip(peer.last_sent)
            .map(|(i, t)| t + i);
        expiries
            .chain(rekey)
            .chain(peer.pending.as_ref().map(|h| h.next_retry))
            .chain(peer.keepalive_due)
            .chain(peer.dead_peer_due)
            .chain(persistent)
            .min()
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
        if peer.dead_peer_due.is_some_and(|t| now >= t) {
            peer.dead_peer_due = None;
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
        let passive = peer.keepalive_due.is_some_and(|t| now >= t);
        let persistent = peer
            .settings
            .persistent_keepalive
            .is_some_and(|i| peer.last_sent.is_none_or(|t| now - t >= i));
        if passive {
            self.peers[p].keepalive_due = None;
        }
        if (passive || persistent) && self.ensure_sendable(now, p) {
            self.send_single(now, p, &[]);
        }
    }
}
