//! The data paths: sealing inner packets from the TUN (routing by allowed IPs, staging
//! while no session can carry them) and opening datagrams from the UDP socket (dispatch by
//! type, the session by index, the inner-source check, roaming and confirmation).

use super::Endpoint;
use super::peer::{Peer, Slot};
use super::timer::PeerTimer;
use crate::batch::{PacketBatch, SlotMeta};
use crate::constants::{
    AEAD_TAG_BYTES, DATA_HEADER_BYTES, KEEPALIVE_TIMEOUT, PADDING_MULTIPLE_BYTES,
    REKEY_TIMEOUT_MAX, STAGED_PACKETS_MAX,
};
use crate::proto::PeerId;
use crate::proto::events::{Event, InitiationReason, Transmit};
use crate::proto::inner;
use crate::proto::session::{ExpiryReason, KeyUse, OpenError};
use crate::proto::status::PeerDrops;
use crate::proto::time::Instant;
use crate::proto::wire::{
    DataHeader, TYPE_COOKIE_REPLY, TYPE_DATA, TYPE_INITIATION, TYPE_RESPONSE,
};
use std::net::{IpAddr, SocketAddr};

impl Endpoint {
    // ------------------------------------------------------------ send path

    /// Seals every inner packet of `batch` (slot `i` holds `meta.len` bytes at
    /// `DATA_HEADER_BYTES`) in place. Afterwards each slot is either a datagram
    /// (`start 0`, its length, its destination) or empty (`len 0`: dropped or staged).
    pub fn seal_batch(&mut self, now: Instant, batch: &mut PacketBatch) {
        for i in 0..batch.len() {
            let (slot, meta) = batch.slot_and_meta_mut(i);
            let sealed = self.seal_one(now, slot, meta.len);
            *meta = match sealed {
                Some((to, len)) => SlotMeta {
                    start: 0,
                    len,
                    addr: Some(to),
                },
                None => SlotMeta::default(),
            };
        }
    }

    fn seal_one(
        &mut self,
        now: Instant,
        slot: &mut [u8],
        len: usize,
    ) -> Option<(SocketAddr, usize)> {
        let packet = &slot[DATA_HEADER_BYTES..DATA_HEADER_BYTES + len];
        let Some(header) = inner::parse(packet) else {
            self.drops.malformed += 1;
            return None;
        };
        let Some(p) = self.route(header.dst) else {
            self.drops.no_route += 1;
            return None;
        };
        if !self.ensure_sendable(now, p) {
            self.stage(p, &slot[DATA_HEADER_BYTES..DATA_HEADER_BYTES + len]);
            return None;
        }
        let peer = &mut self.peers[p];
        let to = peer.endpoint?;
        let n = peer.current.as_mut()?.seal(slot, len);
        note_sent(peer, now, len);
        Some((to, n))
    }

    /// The peer whose allowed IPs hold `dst` (longest prefix wins).
    fn route(&self, dst: IpAddr) -> Option<PeerId> {
        self.routes.lookup(dst)
    }

    /// True when the current session may seal now; starts a rekey or a handshake as the
    /// budgets demand, and drops an exhausted key.
    pub(super) fn ensure_sendable(&mut self, now: Instant, p: PeerId) -> bool {
        let peer = &self.peers[p];
        let usable = match peer.current.as_ref().map(|s| s.send_use(now, &self.budget)) {
            Some(KeyUse::Fresh) => return peer.endpoint.is_some(),
            Some(KeyUse::RekeyDue(reason)) => {
                self.initiate(now, p, InitiationReason::Rekey(reason));
                true
            }
            Some(KeyUse::Exhausted(reason)) => {
                self.expire_current(p, reason);
                false
            }
            None => false,
        };
        if !usable {
            self.initiate(now, p, InitiationReason::Traffic);
        }
        usable && self.peers[p].endpoint.is_some()
    }

    fn stage(&mut self, p: PeerId, packet: &[u8]) {
        let peer = &mut self.peers[p];
        if peer.staged.len() >= STAGED_PACKETS_MAX {
            peer.drops.no_session += 1;
            return;
        }
        peer.staged.push_back(packet.to_vec());
    }

    /// Sends what was staged for `p`, once a session can carry it. Returns packets sent.
    pub(super) fn flush_staged(&mut self, now: Instant, p: PeerId) -> usize {
        let mut sent = 0;
        while let Some(packet) = self.peers[p].staged.pop_front() {
            if !self.ensure_sendable(now, p) {
                self.peers[p].staged.push_front(packet);
                break;
            }
            self.send_single(now, p, &packet);
            sent += 1;
        }
        sent
    }

    /// Seals one inner packet (or a keepalive when empty) into a new datagram.
    pub(super) fn send_single(&mut self, now: Instant, p: PeerId, packet: &[u8]) {
        let peer = &mut self.peers[p];
        let (Some(to), Some(session)) = (peer.endpoint, peer.current.as_mut()) else {
            return;
        };
        let mut buf =
            vec![0u8; DATA_HEADER_BYTES + packet.len() + PADDING_MULTIPLE_BYTES + AEAD_TAG_BYTES];
        buf[DATA_HEADER_BYTES..DATA_HEADER_BYTES + packet.len()].copy_from_slice(packet);
        let n = session.seal(&mut buf, packet.len());
        buf.truncate(n);
        note_sent(peer, now, packet.len());
        self.transmits.push_back(Transmit { to, payload: buf });
    }

    pub(super) fn expire_current(&mut self, p: PeerId, reason: ExpiryReason) {
        if let Some(s) = self.peers[p].current.take() {
            self.indices.remove(&s.local_index);
            self.events.push_back(Event::SessionExpired {
                peer: p,
                epoch: s.epoch,
                reason,
            });
        }
    }

    // ------------------------------------------------------------ receive path

    /// Processes every datagram of `batch` (slot `i`: `meta.len` bytes from 0, source in
    /// `meta.addr`). Afterwards a slot holds an inner packet for the TUN (`start`
    /// `DATA_HEADER_BYTES`, its length) or is empty (handshake, keepalive or dropped).
    pub fn open_batch(&mut self, now: Instant, batch: &mut PacketBatch) {
        for i in 0..batch.len() {
            let (slot, meta) = batch.slot_and_meta_mut(i);
            let from = meta
                .addr
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            let opened = self.receive(now, from, &mut slot[..meta.len]);
            *meta = match opened {
                Some(len) => SlotMeta {
                    start: DATA_HEADER_BYTES,
                    len,
                    addr: meta.addr,
                },
                None => SlotMeta::default(),
            };
        }
    }

    /// Processes one datagram; returns the inner packet length (at `DATA_HEADER_BYTES`)
    /// when it carried one.
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Option<usize> {
        match datagram.first() {
            Some(&TYPE_DATA) => self.receive_data(now, from, datagram),
            Some(&TYPE_INITIATION) | Some(&TYPE_RESPONSE) => {
                self.receive_fragment(now, from, datagram);
                None
            }
            Some(&TYPE_COOKIE_REPLY) => {
                self.receive_cookie_reply(now, datagram);
                None
            }
            _ => {
                self.drops.malformed += 1;
                None
            }
        }
    }

    fn receive_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Option<usize> {
        let Ok(header) = DataHeader::parse(datagram) else {
            self.drops.malformed += 1;
            return None;
        };
        let Some(&p) = self.indices.get(&header.receiver_index) else {
            self.drops.unknown_index += 1;
            return None;
        };
        let budget = self.budget;
        let peer = &mut self.peers[p];
        let Some((session, slot)) = peer.session_mut(header.receiver_index) else {
            self.drops.unknown_index += 1;
            return None;
        };
        let padded = match session.open(&header, datagram, now, &budget) {
            Ok(n) => n,
            Err(e) => {
                count_open_error(&mut peer.drops, e);
                return None;
            }
        };
        // A packet the peer may not send (inner source outside its allowed IPs) is dropped
        // and counted by `check_inner`, and has no other effect: it neither confirms a
        // session nor moves the endpoint (its counter stays spent in the replay window).
        let inner_len =
            self.check_inner(p, &datagram[DATA_HEADER_BYTES..DATA_HEADER_BYTES + padded])?;
        let peer = &mut self.peers[p];
        if let Some((session, _)) = peer.session_mut(header.receiver_index) {
            session.count_received_bytes(inner_len);
        }
        self.after_authenticated(now, p, slot, from, inner_len);
        Some(inner_len).filter(|&n| n > 0)
    }

    /// The inner packet's true length if it is IP from an allowed source; `Some(0)` for a
    /// keepalive; `None` (counted) otherwise.
    fn check_inner(&mut self, p: PeerId, padded: &[u8]) -> Option<usize> {
        if padded.is_empty() {
            return Some(0);
        }
        let peer = &mut self.peers[p];
        match inner::parse(padded) {
            Some(h) if peer.settings.allowed_ips.iter().any(|c| c.contains(h.src)) => Some(h.len),
            _ => {
                peer.drops.disallowed_source += 1;
                None
            }
        }
    }

    fn after_authenticated(
        &mut self,
        now: Instant,
        p: PeerId,
        slot: Slot,
        from: SocketAddr,
        inner_len: usize,
    ) {
        if slot == Slot::Next {
            self.confirm_next(now, p);
        }
        let peer = &mut self.peers[p];
        if peer.endpoint != Some(from) && slot != Slot::Previous {
            peer.endpoint = Some(from);
            self.endpoints_generation += 1;
            self.events
                .push_back(Event::EndpointChanged { peer: p, to: from });
        }
        let peer = &mut self.peers[p];
        peer.timers.stop(PeerTimer::DeadPeer);
        peer.total_received += inner_len as u64;
        peer.total_packets_received += 1;
        if inner_len > 0 && peer.timers.get(PeerTimer::Keepalive).is_none() {
            peer.timers
                .set(PeerTimer::Keepalive, now + KEEPALIVE_TIMEOUT);
        }
    }

    fn confirm_next(&mut self, now: Instant, p: PeerId) {
        let confirmed = self.peers[p].next.as_ref().map(|s| s.local_index);
        if let Some(freed) = self.peers[p].promote_next() {
            self.indices.remove(&freed);
        }
        if let Some(index) = confirmed {
            self.initiator_confirmed(now, p, index);
        }
        let peer = &self.peers[p];
        let epoch = peer.current.as_ref().map_or(0, |s| s.epoch);
        self.events
            .push_back(Event::SessionConfirmed { peer: p, epoch });
        self.flush_staged(now, p);
    }
}

fn note_sent(peer: &mut Peer, now: Instant, inner_len: usize) {
    peer.last_sent = Some(now);
    peer.timers.stop(PeerTimer::Keepalive);
    peer.total_sent += inner_len as u64;
    peer.total_packets_sent += 1;
    if inner_len > 0 && peer.timers.get(PeerTimer::DeadPeer).is_none() {
        let dead_at = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT_MAX;
        peer.timers.set(PeerTimer::DeadPeer, dead_at);
    }
}

fn count_open_error(drops: &mut PeerDrops, e: OpenError) {
    match e {
        OpenError::BadTag => drops.bad_tag += 1,
        OpenError::Replay => drops.replay += 1,
        OpenError::Expired => drops.key_expired += 1,
    }
}
