//! The interface-level state machine: every peer of one TUN interface, the session-index
//! table, routing by allowed IPs, and the queues of datagrams and events for the runtime.
//!
//! Driven quinn-style: [`Endpoint::seal_batch`] (inner packets from the TUN),
//! [`Endpoint::open_batch`] (datagrams from the UDP socket), [`Endpoint::handle_timeout`];
//! drained with [`Endpoint::poll_transmit`], [`Endpoint::poll_event`],
//! [`Endpoint::poll_timeout`]. The handshake side lives in `exchange.rs`.

use super::cookie::{CookieChecker, RateLimiter};
use super::events::{EndpointStatus, Event, InitiationReason, InterfaceDrops, Transmit};
use super::fragment::Reassembler;
use super::inner;
use super::peer::{Peer, PeerSettings, Peers, Slot};
use super::peer_id::PeerId;
use super::session::{KeyUse, OpenError, RotationBudget, Session};
use super::time::Instant;
use super::wire::{DataHeader, TYPE_COOKIE_REPLY, TYPE_DATA, TYPE_INITIATION, TYPE_RESPONSE};
use crate::batch::{PacketBatch, SlotMeta};
use crate::cidr::longest_match;
use crate::constants::{
    AEAD_TAG_BYTES, DATA_HEADER_BYTES, KEEPALIVE_TIMEOUT, PADDING_MULTIPLE_BYTES,
    REKEY_TIMEOUT_MAX, STAGED_PACKETS_MAX,
};
use crate::crypto::dh::DhPublic;
use crate::crypto::random::Rng;
use crate::crypto::{CipherSuite, PublicIdentity, StaticIdentity};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Everything the endpoint is built from.
pub struct EndpointSettings {
    /// Our static identity.
    pub identity: StaticIdentity,
    /// Data cipher (both peers must agree).
    pub suite: CipherSuite,
    /// Key budgets.
    pub budget: RotationBudget,
    /// The peers.
    pub peers: Vec<PeerSettings>,
    /// How sessions use QKD keys.
    pub qkd_policy: super::qkd_flow::QkdPolicy,
    /// Wall clock (ns since the Unix epoch) at [`Instant::ZERO`]: initiation timestamps
    /// are this plus `now`, so they keep increasing across restarts.
    pub unix_ns_at_origin: u64,
}

/// One interface's protocol state.
pub struct Endpoint {
    pub(crate) identity: StaticIdentity,
    pub(crate) public: PublicIdentity,
    pub(crate) suite: CipherSuite,
    pub(crate) budget: RotationBudget,
    pub(crate) peers: Peers,
    pub(crate) by_static: HashMap<DhPublic, PeerId>,
    pub(crate) indices: HashMap<u32, PeerId>,
    pub(crate) reassembler: Reassembler,
    pub(crate) cookies: CookieChecker,
    pub(crate) limiter: RateLimiter,
    pub(crate) rng: Box<dyn Rng>,
    pub(crate) unix_ns_at_origin: u64,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) drops: InterfaceDrops,
    pub(crate) last_bad_mac1_event: Option<Instant>,
    pub(crate) last_rejected_event: Option<Instant>,
    pub(crate) qkd_policy: super::qkd_flow::QkdPolicy,
    pub(crate) qkd_requests: VecDeque<super::qkd_flow::QkdRequest>,
    pub(crate) qkd_next_request_id: u64,
}

impl Endpoint {
    /// A new endpoint; nothing is sent until [`Endpoint::start`] or traffic.
    pub fn new(settings: EndpointSettings, rng: Box<dyn Rng>) -> Self {
        let public = settings.identity.public();
        let by_static = settings
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.public.dh, PeerId::from_index(i)))
            .collect();
        Self {
            cookies: CookieChecker::new(&public.dh),
            identity: settings.identity,
            public,
            suite: settings.suite,
            budget: settings.budget,
            peers: Peers::new(settings.peers),
            by_static,
            indices: HashMap::new(),
            reassembler: Reassembler::default(),
            limiter: RateLimiter::default(),
            rng,
            unix_ns_at_origin: settings.unix_ns_at_origin,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            drops: InterfaceDrops::default(),
            last_bad_mac1_event: None,
            last_rejected_event: None,
            qkd_policy: settings.qkd_policy,
            qkd_requests: VecDeque::new(),
            qkd_next_request_id: 0,
        }
    }

    /// Starts a handshake with every peer that has an endpoint.
    pub fn start(&mut self, now: Instant) {
        for p in self.peers.ids() {
            self.initiate(now, p, InitiationReason::Startup);
        }
    }

    /// Our public identity.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Handshake messages being reassembled (bounded; for status and tests).
    pub fn reassembly_in_progress(&self) -> usize {
        self.reassembler.in_progress()
    }

    /// The name of peer `peer` (as configured), or `None` for an ID this endpoint does
    /// not have.
    pub fn peer_name(&self, peer: PeerId) -> Option<&str> {
        self.peers.get(peer).map(|p| p.settings.name.as_str())
    }

    /// A status snapshot.
    pub fn status(&self, now: Instant) -> EndpointStatus {
        EndpointStatus {
            peers: self
                .peers
                .values()
                .map(|p| p.status(now, &self.budget, self.suite.name(), self.qkd_policy))
                .collect(),
            drops: self.drops,
        }
    }

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
        let table = self
            .peers
            .iter()
            .flat_map(|(id, p)| p.settings.allowed_ips.iter().map(move |c| (c, id)));
        longest_match(table, dst)
    }

    /// True when the current session may seal now; starts a rekey or a handshake as the
    /// budgets demand, and drops an exhausted key.
    pub(crate) fn ensure_sendable(&mut self, now: Instant, p: PeerId) -> bool {
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
    pub(crate) fn flush_staged(&mut self, now: Instant, p: PeerId) -> usize {
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
    pub(crate) fn send_single(&mut self, now: Instant, p: PeerId, packet: &[u8]) {
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

    pub(crate) fn expire_current(&mut self, p: PeerId, reason: super::session::ExpiryReason) {
        if let Some(s) = self.peers[p].current.take() {
            self.indices.remove(&s.local_index);
            let peer = p;
            self.events.push_back(Event::SessionExpired {
                peer,
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
            let name = p;
            self.events.push_back(Event::EndpointChanged {
                peer: name,
                to: from,
            });
        }
        let peer = &mut self.peers[p];
        peer.dead_peer_due = None;
        peer.total_received += inner_len as u64;
        if inner_len > 0 && peer.keepalive_due.is_none() {
            peer.keepalive_due = Some(now + KEEPALIVE_TIMEOUT);
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
            self.expire_current(p, super::session::ExpiryReason::Time);
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

    /// Allocates a fresh session index for peer `p`.
    pub(crate) fn new_index(&mut self, p: PeerId) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if let Entry::Vacant(e) = self.indices.entry(i) {
                e.insert(p);
                return i;
            }
        }
    }

    /// Our wall clock at `now`, for initiation timestamps.
    pub(crate) fn unix_ns(&self, now: Instant) -> u64 {
        self.unix_ns_at_origin.saturating_add(now.as_nanos())
    }

    /// Installs a session and frees the indices it displaced.
    pub(crate) fn forget_indices(&mut self, freed: Vec<u32>) {
        for i in freed {
            self.indices.remove(&i);
        }
    }

    /// Builds a session from handshake keys with the peer's next epoch.
    pub(crate) fn new_session(
        &mut self,
        p: PeerId,
        keys: &super::handshake::SessionKeys,
        now: Instant,
    ) -> Session {
        let peer = &mut self.peers[p];
        peer.epoch += 1;
        peer.handshakes += 1;
        peer.last_handshake = Some(now);
        Session::new(keys, self.suite, peer.epoch, now)
    }
}

fn note_sent(peer: &mut Peer, now: Instant, inner_len: usize) {
    peer.last_sent = Some(now);
    peer.keepalive_due = None;
    peer.total_sent += inner_len as u64;
    if inner_len > 0 && peer.dead_peer_due.is_none() {
        peer.dead_peer_due = Some(now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT_MAX);
    }
}

fn count_open_error(drops: &mut super::events::PeerDrops, e: OpenError) {
    match e {
        OpenError::BadTag => drops.bad_tag += 1,
        OpenError::Replay => drops.replay += 1,
        OpenError::Expired => drops.key_expired += 1,
    }
}
