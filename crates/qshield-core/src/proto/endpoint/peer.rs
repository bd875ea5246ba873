//! One peer's state: its three session slots (previous / current / next, as WireGuard
//! keeps them, so no packet is lost to a rotation), the handshake we have in flight, the
//! replay guard for its initiations, staged packets, its timer table and counters; and
//! [`Peers`], every peer of the endpoint indexed by [`PeerId`].

use super::timer::{PeerTimer, TimerTable};
use crate::cidr::IpCidr;
use crate::crypto::PublicIdentity;
use crate::proto::PeerId;
use crate::proto::events::Role;
use crate::proto::handshake::InitiatorState;
use crate::proto::session::{RotationBudget, Session};
use crate::proto::status::{KeyStatus, PeerDrops, PeerStatus, QkdStatus};
use crate::proto::time::Instant;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::{Index, IndexMut};
use std::time::Duration;

/// What the core needs to know about a configured peer.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// Name for logs and status.
    pub name: String,
    /// The peer's public identity.
    pub public: PublicIdentity,
    /// Where to send initiations (`None`: wait for the peer).
    pub endpoint: Option<SocketAddr>,
    /// Inner prefixes routed to and accepted from the peer.
    pub allowed_ips: Vec<IpCidr>,
    /// Keepalive interval when idle (`None`: off).
    pub persistent_keepalive: Option<Duration>,
}

/// Our initiation awaiting its response.
pub(super) struct PendingHandshake {
    pub(super) state: InitiatorState,
    pub(super) message: Vec<u8>,
    pub(super) first_sent: Instant,
    pub(super) last_sent: Instant,
    pub(super) attempts: u32,
    pub(super) mac1s: Vec<[u8; 16]>,
    /// [`Event::HandshakeStalled`](crate::proto::events::Event::HandshakeStalled) was
    /// emitted for this handshake.
    pub(super) stall_reported: bool,
}

/// The last response we sent, kept so a retransmitted initiation gets the same answer
/// without new key material.
pub(super) struct CachedResponse {
    pub(super) initiation_digest: [u8; 32],
    pub(super) response: Vec<u8>,
    pub(super) sender_index: u32,
    pub(super) sent_at: Instant,
}

/// A peer's whole state.
pub(super) struct Peer {
    pub(super) settings: PeerSettings,
    pub(super) mac1_key: [u8; 32],
    pub(super) endpoint: Option<SocketAddr>,
    pub(super) previous: Option<Session>,
    pub(super) current: Option<Session>,
    pub(super) next: Option<Session>,
    pub(super) pending: Option<PendingHandshake>,
    pub(super) cached_response: Option<CachedResponse>,
    /// The replay guard: timestamp of the newest initiation from this peer whose session
    /// the peer confirmed (proving both its static keys), and when it was confirmed.
    pub(super) last_initiation: Option<(u64, Instant)>,
    /// When we last answered an initiation from this peer (the flood limit; kept whether or
    /// not the initiation is ever confirmed, so it bounds forgeries too).
    pub(super) last_answered_at: Option<Instant>,
    /// The session we answered and that waits in `next` (its local index) and its
    /// initiation's timestamp, which becomes the replay guard once the peer confirms it.
    pub(super) next_initiation: Option<(u32, u64)>,
    pub(super) cookie: Option<([u8; 16], Instant)>,
    /// The sender index and mac1 values of the last response we sent, until a cookie reply
    /// to it is accepted (at most one: a replayed reply finds nothing to open).
    pub(super) response_mac1s: Option<(u32, Vec<[u8; 16]>)>,
    pub(super) staged: VecDeque<Vec<u8>>,
    pub(super) epoch: u64,
    pub(super) rotations: u64,
    pub(super) had_current: bool,
    pub(super) handshakes: u64,
    pub(super) last_handshake: Option<Instant>,
    /// The deadlines set and stopped as this peer's state changes.
    pub(super) timers: TimerTable,
    pub(super) last_sent: Option<Instant>,
    pub(super) total_sent: u64,
    pub(super) total_received: u64,
    pub(super) total_packets_sent: u64,
    pub(super) total_packets_received: u64,
    pub(super) drops: PeerDrops,
    /// Our request for a new key (`enc_keys`) for our own initiation.
    pub(super) qkd_pending: Option<super::qkd::PendingQkd>,
    /// Our request for the key the peer's initiation names (`dec_keys`), to answer it.
    pub(super) qkd_answering: Option<super::qkd::PendingQkd>,
    pub(super) qkd: QkdCounters,
}

/// QKD bookkeeping of one peer.
#[derive(Debug, Default)]
pub(super) struct QkdCounters {
    pub(super) keys_consumed: u64,
    pub(super) failures: u64,
    pub(super) fallbacks: u64,
    pub(super) last_error: Option<String>,
    pub(super) backoff: Option<Duration>,
    /// `dec_keys` calls this peer may still cause before it proves both static keys.
    pub(super) unconfirmed_dec_keys: super::qkd::UnconfirmedBudget,
    /// The last `dec_keys` request we stopped waiting for (request ID, key_ID, when): its
    /// answer may still come, and the KME hands a key out only once.
    pub(super) abandoned_dec_keys: Option<(u64, String, Instant)>,
    /// A key that came after we stopped waiting for it, kept (with its arrival) for the
    /// initiation's retransmission.
    pub(super) late_key: Option<(crate::proto::handshake::QkdKey, Instant)>,
    /// Our `enc_keys` request that became unnecessary while it ran (the peer's initiation won).
    pub(super) cancelled_enc_keys: Option<u64>,
    /// Its key, kept (with its arrival) for our next initiation.
    pub(super) spare_key: Option<(crate::proto::handshake::QkdKey, Instant)>,
    /// Set once our start has yielded (it yields at most once).
    pub(super) start_yielded: bool,
}

impl Peer {
    pub(super) fn new(settings: PeerSettings) -> Self {
        Self {
            mac1_key: crate::proto::cookie::mac1_key(&settings.public.dh),
            endpoint: settings.endpoint,
            settings,
            previous: None,
            current: None,
            next: None,
            pending: None,
            cached_response: None,
            last_initiation: None,
            last_answered_at: None,
            next_initiation: None,
            cookie: None,
            response_mac1s: None,
            staged: VecDeque::new(),
            epoch: 0,
            rotations: 0,
            had_current: false,
            handshakes: 0,
            last_handshake: None,
            timers: TimerTable::default(),
            last_sent: None,
            total_sent: 0,
            total_received: 0,
            total_packets_sent: 0,
            total_packets_received: 0,
            drops: PeerDrops::default(),
            qkd_pending: None,
            qkd_answering: None,
            qkd: QkdCounters::default(),
        }
    }

    /// Our initiation is in flight; its first retransmission is due at `retry_at`.
    pub(super) fn start_handshake(&mut self, pending: PendingHandshake, retry_at: Instant) {
        self.pending = Some(pending);
        self.timers.set(PeerTimer::HandshakeRetry, retry_at);
    }

    /// Our initiation is no longer in flight (answered, superseded or abandoned).
    pub(super) fn take_pending(&mut self) -> Option<PendingHandshake> {
        self.timers.stop(PeerTimer::HandshakeRetry);
        self.pending.take()
    }

    /// The session (any slot) whose local index is `index`.
    pub(super) fn session_mut(&mut self, index: u32) -> Option<(&mut Session, Slot)> {
        if self
            .current
            .as_ref()
            .is_some_and(|s| s.local_index == index)
        {
            return self.current.as_mut().map(|s| (s, Slot::Current));
        }
        if self.next.as_ref().is_some_and(|s| s.local_index == index) {
            return self.next.as_mut().map(|s| (s, Slot::Next));
        }
        if self
            .previous
            .as_ref()
            .is_some_and(|s| s.local_index == index)
        {
            return self.previous.as_mut().map(|s| (s, Slot::Previous));
        }
        None
    }

    /// Installs a session we initiated: it becomes current at once, the old current
    /// becomes previous. Returns the local index of the session this displaced (the old
    /// previous), to be forgotten.
    ///
    /// A session we answered and that waits in `next` stays there. Until our first data
    /// packet under the new session reaches the peer, the peer sends under its own current
    /// key: our old current, or that `next` if the peer completed the handshake it started;
    /// so neither may go. (WireGuard instead moves `next` to previous and frees current,
    /// and so loses the peer's packets in flight when the peer abandoned its handshake,
    /// as a peer does once its own answered session is confirmed.)
    pub(super) fn install_initiated(&mut self, session: Session) -> Vec<u32> {
        self.count_rotation();
        let old_previous = std::mem::replace(&mut self.previous, self.current.take());
        self.current = Some(session);
        old_previous.map(|s| s.local_index).into_iter().collect()
    }

    /// Installs a session we responded to: it waits in `next` until the peer uses it.
    pub(super) fn install_responded(&mut self, session: Session) -> Vec<u32> {
        self.next
            .replace(session)
            .map(|s| s.local_index)
            .into_iter()
            .collect()
    }

    /// The peer used `next`: it becomes current. Returns the freed index.
    pub(super) fn promote_next(&mut self) -> Option<u32> {
        let next = self.next.take()?;
        self.count_rotation();
        let old_previous = std::mem::replace(&mut self.previous, self.current.replace(next));
        old_previous.map(|s| s.local_index)
    }

    /// A session is becoming current: a rotation unless it is the peer's first one (even
    /// when the old key had already expired, its replacement is a rotation).
    fn count_rotation(&mut self) {
        if self.had_current {
            self.rotations += 1;
        }
        self.had_current = true;
    }

    /// Every local index this peer holds (sessions and the pending handshake).
    #[cfg(test)]
    pub(super) fn indices(&self) -> Vec<u32> {
        let sessions = [&self.previous, &self.current, &self.next];
        let mut v: Vec<u32> = sessions
            .iter()
            .filter_map(|s| s.as_ref().map(|s| s.local_index))
            .collect();
        v.extend(self.pending.as_ref().map(|p| p.state.sender_index));
        v
    }

    /// Snapshot for `qshield status`.
    pub(super) fn status(
        &self,
        now: Instant,
        budget: &RotationBudget,
        cipher: &'static str,
        policy: crate::proto::qkd_flow::QkdPolicy,
    ) -> PeerStatus {
        PeerStatus {
            name: self.settings.name.clone(),
            endpoint: self.endpoint,
            last_handshake_seconds_ago: self.last_handshake.map(|t| (now - t).as_secs_f64()),
            cipher,
            current_key: self.current.as_ref().map(|s| key_status(s, now, budget)),
            rotations: self.rotations,
            handshakes: self.handshakes,
            handshake_in_progress: self.pending.is_some(),
            total_bytes_sent: self.total_sent,
            total_bytes_received: self.total_received,
            total_packets_sent: self.total_packets_sent,
            total_packets_received: self.total_packets_received,
            drops: self.drops,
            qkd: QkdStatus {
                policy: policy.name(),
                keys_consumed: self.qkd.keys_consumed,
                failures: self.qkd.failures,
                fallbacks: self.qkd.fallbacks,
                waiting_for_kme: self.qkd_pending.is_some() || self.qkd_answering.is_some(),
                last_error: self.qkd.last_error.clone(),
                retry_in_seconds: self
                    .timers
                    .get(PeerTimer::QkdRetry)
                    .map(|t| t.saturating_since(now).as_secs_f64()),
            },
        }
    }
}

/// Every peer of an endpoint, in config order, indexed by [`PeerId`].
pub(super) struct Peers(Vec<Peer>);

impl Peers {
    pub(super) fn new(settings: Vec<PeerSettings>) -> Self {
        Self(settings.into_iter().map(Peer::new).collect())
    }

    /// Every peer's ID, in config order.
    pub(super) fn ids(&self) -> impl Iterator<Item = PeerId> + use<> {
        (0..self.0.len()).map(PeerId::from_index)
    }

    pub(super) fn get(&self, id: PeerId) -> Option<&Peer> {
        self.0.get(id.index())
    }

    /// Every peer with its ID, mutably.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (PeerId, &mut Peer)> {
        self.0
            .iter_mut()
            .enumerate()
            .map(|(i, p)| (PeerId::from_index(i), p))
    }

    /// Every peer, in config order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Peer> {
        self.0.iter()
    }

    /// The first peer for which `matches` holds.
    pub(super) fn position(&self, matches: impl FnMut(&Peer) -> bool) -> Option<PeerId> {
        self.0.iter().position(matches).map(PeerId::from_index)
    }
}

impl Index<PeerId> for Peers {
    type Output = Peer;

    fn index(&self, id: PeerId) -> &Peer {
        &self.0[id.index()]
    }
}

impl IndexMut<PeerId> for Peers {
    fn index_mut(&mut self, id: PeerId) -> &mut Peer {
        &mut self.0[id.index()]
    }
}

/// Which slot a session sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Previous,
    Current,
    Next,
}

fn key_status(s: &Session, now: Instant, budget: &RotationBudget) -> KeyStatus {
    let age = s.age(now);
    let mut sources = vec!["x25519", "ml-kem-768"];
    if s.qkd_key_id.is_some() {
        sources.push("qkd");
    }
    KeyStatus {
        epoch: s.epoch,
        role: if s.is_initiator {
            Role::Initiator
        } else {
            Role::Responder
        },
        age_seconds: age.as_secs_f64(),
        bytes_sent: s.usage.bytes_sent,
        bytes_received: s.usage.bytes_received,
        packets_sent: s.usage.packets_sent,
        packets_received: s.usage.packets_received,
        rekey_in_bytes: budget.rekey_after_bytes.saturating_sub(s.usage.bytes_sent),
        rekey_in_seconds: s.rekey_after(budget).saturating_sub(age).as_secs_f64(),
        reject_in_bytes: budget
            .reject_after_bytes
            .saturating_sub(s.usage.bytes_sent.max(s.usage.bytes_received)),
        reject_in_seconds: budget.reject_after.saturating_sub(age).as_secs_f64(),
        packets_left: s.packets_left(),
        sources,
        qkd_key_id: s.qkd_key_id.clone(),
    }
}
