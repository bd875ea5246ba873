//! The endpoint's side of the QKD flow (see [`crate::proto::qkd_flow`]): asking for the
//! key before our initiation (`enc_keys`) or our response (`dec_keys`), what waits for which
//! answer, timeouts and retries under `require`, fallbacks under `allow`, and keys that
//! come after we stopped waiting for them.

use super::Endpoint;
use super::timer::PeerTimer;
use crate::constants::{
    QKD_REQUEST_TIMEOUT, QKD_RETRY_INITIAL, QKD_RETRY_MAX, QKD_SIMULTANEOUS_START_YIELD,
    QKD_SPARE_KEY_MAX_AGE, QKD_UNCONFIRMED_DEC_KEYS_BURST,
    QKD_UNCONFIRMED_DEC_KEYS_REFILL_INTERVAL, REKEY_ATTEMPT_TIME,
};
use crate::proto::PeerId;
use crate::proto::events::{Event, InitiationReason};
use crate::proto::handshake::{HandshakeError, QkdKey, ReceivedInitiation, SessionKeys};
use crate::proto::qkd_flow::{QkdPolicy, QkdRequest};
use crate::proto::time::Instant;
use std::net::SocketAddr;

/// What a peer is waiting for.
pub(super) enum QkdWait {
    /// A new key for our initiation.
    Initiation { reason: InitiationReason },
    /// The key named by the peer's initiation, to answer it.
    Response {
        received: Box<ReceivedInitiation<PeerId>>,
        from: SocketAddr,
        digest: [u8; 32],
    },
}

/// An outstanding request.
pub(super) struct PendingQkd {
    pub(super) id: u64,
    pub(super) since: Instant,
    pub(super) wait: QkdWait,
}

/// The `dec_keys` calls one peer may still cause before it proves both its static keys: a
/// token bucket of [`QKD_UNCONFIRMED_DEC_KEYS_BURST`], one token back per
/// [`QKD_UNCONFIRMED_DEC_KEYS_REFILL_INTERVAL`], full again once the peer is confirmed.
#[derive(Debug)]
pub(super) struct UnconfirmedBudget {
    tokens: u32,
    refilled_at: Option<Instant>,
}

impl Default for UnconfirmedBudget {
    fn default() -> Self {
        Self {
            tokens: QKD_UNCONFIRMED_DEC_KEYS_BURST,
            refilled_at: None,
        }
    }
}

impl UnconfirmedBudget {
    /// Takes one call if one is left at `now`.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let interval = QKD_UNCONFIRMED_DEC_KEYS_REFILL_INTERVAL.as_nanos();
        match self.refilled_at {
            None => self.refilled_at = Some(now),
            Some(at) => {
                let earned = (now - at).as_nanos() / interval;
                if earned > 0 {
                    let tokens = u128::from(self.tokens) + earned;
                    self.tokens = tokens.min(u128::from(QKD_UNCONFIRMED_DEC_KEYS_BURST)) as u32;
                    self.refilled_at = Some(now);
                }
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// The peer proved both its static keys: the bucket is full again.
    pub(super) fn refill(&mut self) {
        *self = Self::default();
    }
}

impl Endpoint {
    /// The next key to fetch from the KME, if any.
    pub fn poll_qkd_request(&mut self) -> Option<QkdRequest> {
        self.qkd_requests.pop_front()
    }

    /// True while a handshake still waits for the answer to request `id`: a runtime asks
    /// before it calls the KME, so no key is fetched for a handshake that has moved on.
    pub fn qkd_request_wanted(&self, id: u64) -> bool {
        self.peers.values().any(|peer| {
            [&peer.qkd_pending, &peer.qkd_answering]
                .into_iter()
                .any(|q| q.as_ref().is_some_and(|q| q.id == id))
        })
    }

    /// The KME's answer to request `id`: a key, or why there is none.
    pub fn handle_qkd_key(&mut self, now: Instant, id: u64, result: Result<QkdKey, String>) {
        let found = self.peers.iter_mut().find_map(|(p, peer)| {
            [&mut peer.qkd_pending, &mut peer.qkd_answering]
                .into_iter()
                .find_map(|q| q.take_if(|q| q.id == id))
                .map(|pending| (p, pending))
        });
        let Some((p, pending)) = found else {
            return self.late_qkd_key(now, id, result);
        };
        match result {
            Ok(key) => self.qkd_key_arrived(now, p, pending.wait, key),
            Err(error) => self.qkd_key_missing(now, p, pending.wait, error),
        }
    }

    /// The answer to a request we had stopped waiting for. An `enc_keys` key (its wait timed
    /// out, or the peer's confirmed session made it unnecessary) serves our next initiation.
    /// A `dec_keys` key has been handed out by the KME, which will not do so again: it answers
    /// the initiation's retransmission (at once if one already waits for the same key_ID,
    /// else when it comes).
    fn late_qkd_key(&mut self, now: Instant, id: u64, result: Result<QkdKey, String>) {
        if let Some(p) = self
            .peers
            .position(|peer| peer.qkd.cancelled_enc_keys == Some(id))
        {
            self.peers[p].qkd.cancelled_enc_keys = None;
            let Ok(key) = result else {
                return;
            };
            // an initiation waiting for a newer request takes this key now (the newer one
            // is cancelled in turn); else it waits for our next initiation
            match self.peers[p].qkd_pending.take() {
                Some(pending) => {
                    self.peers[p].qkd.cancelled_enc_keys = Some(pending.id);
                    self.qkd_key_arrived(now, p, pending.wait, key);
                }
                None => self.peers[p].qkd.spare_key = Some((key, now)),
            }
            return;
        }
        let Some(p) = self.peers.position(|peer| {
            peer.qkd
                .abandoned_dec_keys
                .as_ref()
                .is_some_and(|(i, ..)| *i == id)
        }) else {
            return; // an enc_keys answered after its timeout: no handshake will use it
        };
        let (_, key_id, _) = self.peers[p].qkd.abandoned_dec_keys.take().expect("found");
        let Ok(key) = result else {
            return;
        };
        if key.key_id != key_id.as_bytes() {
            return;
        }
        let waiting = self.peers[p].qkd_answering.take_if(|q| {
            matches!(&q.wait, QkdWait::Response { received, .. } if received.payload.qkd_key_id == key.key_id)
        });
        match waiting {
            Some(pending) => self.qkd_key_arrived(now, p, pending.wait, key),
            None => self.peers[p].qkd.late_key = Some((key, now)),
        }
    }

    /// The key a late `dec_keys` answer brought for `key_id`, if it came recently enough to
    /// belong to an initiation still being retransmitted.
    fn take_late_key(&mut self, now: Instant, p: PeerId, key_id: &str) -> Option<QkdKey> {
        let q = &mut self.peers[p].qkd;
        let (key, at) = q.late_key.take()?;
        if now - at >= REKEY_ATTEMPT_TIME {
            return None;
        }
        if key.key_id != key_id.as_bytes() {
            q.late_key = Some((key, at));
            return None;
        }
        Some(key)
    }

    pub(super) fn request_initiation_key(
        &mut self,
        now: Instant,
        p: PeerId,
        reason: InitiationReason,
    ) {
        let peer = &self.peers[p];
        if peer.qkd_pending.is_some()
            || peer
                .timers
                .get(PeerTimer::QkdRetry)
                .is_some_and(|t| now < t)
        {
            return;
        }
        if let Some((key, at)) = self.peers[p].qkd.spare_key.take()
            && now - at < QKD_SPARE_KEY_MAX_AGE
        {
            return self.qkd_key_arrived(now, p, QkdWait::Initiation { reason }, key);
        }
        self.request_key(now, p, None, QkdWait::Initiation { reason });
    }

    fn request_key(&mut self, now: Instant, p: PeerId, key_id: Option<String>, wait: QkdWait) {
        self.qkd_next_request_id += 1;
        let id = self.qkd_next_request_id;
        self.qkd_requests.push_back(QkdRequest {
            id,
            peer: p,
            key_id,
            deadline: now + QKD_REQUEST_TIMEOUT,
        });
        let pending = Some(PendingQkd {
            id,
            since: now,
            wait,
        });
        match pending.as_ref().map(|q| &q.wait) {
            Some(QkdWait::Response { .. }) => self.peers[p].qkd_answering = pending,
            _ => self.peers[p].qkd_pending = pending,
        }
    }

    /// The peer confirmed a session it initiated: a key we are still fetching for our own
    /// initiation is no longer needed now; if it comes, it is kept for our next one.
    pub(super) fn cancel_initiation_key(&mut self, p: PeerId) {
        if let Some(pending) = self.peers[p].qkd_pending.take() {
            self.peers[p].qkd.cancelled_enc_keys = Some(pending.id);
        }
    }

    /// True while we fetch a key for our own initiation to `p` (for the
    /// simultaneous-initiation rule, this counts as an initiation in flight).
    pub(super) fn fetching_initiation_key(&self, p: PeerId) -> bool {
        self.peers[p].qkd_pending.is_some()
    }

    /// At start, the site that would lose a simultaneous initiation (higher static key) waits
    /// [`QKD_SIMULTANEOUS_START_YIELD`] for the peer's before fetching a key for its own.
    /// Returns true while our initiation must wait.
    pub(super) fn start_yields(
        &mut self,
        now: Instant,
        p: PeerId,
        reason: InitiationReason,
    ) -> bool {
        if self.qkd_policy == QkdPolicy::Disable {
            return false;
        }
        let higher = self.public.dh.0 > self.peers[p].settings.public.dh.0;
        let peer = &mut self.peers[p];
        if reason == InitiationReason::Startup
            && higher
            && peer.current.is_none()
            && !peer.qkd.start_yielded
        {
            peer.qkd.start_yielded = true;
            let yield_until = now + QKD_SIMULTANEOUS_START_YIELD;
            peer.timers.set(PeerTimer::StartYield, yield_until);
        }
        peer.timers
            .get(PeerTimer::StartYield)
            .is_some_and(|t| now < t)
    }

    /// Decides how to answer an accepted initiation under our policy.
    pub(super) fn answer_with_policy(
        &mut self,
        now: Instant,
        from: SocketAddr,
        received: ReceivedInitiation<PeerId>,
        digest: [u8; 32],
    ) {
        let p = received.peer;
        let key_id = String::from_utf8_lossy(&received.payload.qkd_key_id).into_owned();
        match (self.qkd_policy, key_id.is_empty()) {
            (QkdPolicy::Disable, _) => self.respond(now, from, received, digest, None),
            (QkdPolicy::Allow, true) => {
                self.qkd_fallback(p, "the peer offered no QKD key");
                self.respond(now, from, received, digest, None);
            }
            (QkdPolicy::Require, true) => {
                self.reject(now, Some(p), from, HandshakeError::QkdRequired)
            }
            (_, false) => {
                if let Some(key) = self.take_late_key(now, p, &key_id) {
                    let wait = QkdWait::Response {
                        received: Box::new(received),
                        from,
                        digest,
                    };
                    return self.qkd_key_arrived(now, p, wait, key);
                }
                if let Some(why) = self.dec_keys_refusal(now, p, &key_id) {
                    self.events
                        .push_back(Event::InitiationIgnored { peer: p, why });
                    return;
                }
                let wait = QkdWait::Response {
                    received: Box::new(received),
                    from,
                    digest,
                };
                self.request_key(now, p, Some(key_id), wait);
            }
        }
    }

    /// Why an initiation from `p` naming a key_ID may not make us call `dec_keys` now, if it
    /// may not: one lookup per peer at a time, and a bounded number before the peer is
    /// confirmed (message 1 alone proves only its X25519 key). The initiator retransmits.
    fn dec_keys_refusal(&mut self, now: Instant, p: PeerId, key_id: &str) -> Option<&'static str> {
        let peer = &mut self.peers[p];
        if peer.qkd_answering.is_some() {
            return Some("the KME is still looking up the key of an earlier initiation");
        }
        // a lookup of this key_ID we stopped waiting for may still be answered (the KME hands
        // a key out once, so a second lookup would fail or take it from the first); its
        // answer, kept as the late key, serves a later retransmission
        if peer
            .qkd
            .abandoned_dec_keys
            .as_ref()
            .is_some_and(|(_, id, at)| id == key_id && now - *at < QKD_REQUEST_TIMEOUT)
        {
            return Some("the KME may still answer an earlier lookup of this key_ID");
        }
        if !peer.qkd.unconfirmed_dec_keys.take(now) {
            return Some(
                "too many QKD key lookups for initiations this peer has not confirmed (dec_keys budget)",
            );
        }
        None
    }

    /// True while the initiation with this digest waits for its QKD key (its retransmissions
    /// are ignored meanwhile).
    pub(super) fn awaiting_key_for(&self, digest: &[u8; 32]) -> bool {
        self.peers.values().any(|peer| {
            matches!(&peer.qkd_answering, Some(PendingQkd { wait: QkdWait::Response { digest: d, .. }, .. }) if d == digest)
        })
    }

    fn qkd_key_arrived(&mut self, now: Instant, p: PeerId, wait: QkdWait, key: QkdKey) {
        let peer = &mut self.peers[p];
        peer.timers.stop(PeerTimer::QkdRetry);
        let q = &mut peer.qkd;
        q.keys_consumed += 1;
        q.backoff = None;
        q.last_error = None;
        match wait {
            QkdWait::Initiation { reason } => self.send_initiation(now, p, reason, Some(key)),
            QkdWait::Response {
                received,
                from,
                digest,
            } => self.respond(now, from, *received, digest, Some(&key)),
        }
    }

    fn qkd_key_missing(&mut self, now: Instant, p: PeerId, wait: QkdWait, error: String) {
        self.peers[p].qkd.failures += 1;
        self.peers[p].qkd.last_error = Some(error.clone());
        if self.qkd_policy == QkdPolicy::Require {
            self.schedule_qkd_retry(now, p);
            self.events
                .push_back(Event::QkdUnavailable { peer: p, error });
            return;
        }
        self.qkd_fallback(p, &format!("no QKD key from the KME: {error}"));
        match wait {
            QkdWait::Initiation { reason } => self.send_initiation(now, p, reason, None),
            QkdWait::Response {
                received,
                from,
                digest,
            } => self.respond(now, from, *received, digest, None),
        }
    }

    fn schedule_qkd_retry(&mut self, now: Instant, p: PeerId) {
        let peer = &mut self.peers[p];
        let backoff = peer
            .qkd
            .backoff
            .map_or(QKD_RETRY_INITIAL, |b| (b * 2).min(QKD_RETRY_MAX));
        peer.qkd.backoff = Some(backoff);
        peer.timers.set(PeerTimer::QkdRetry, now + backoff);
    }

    fn qkd_fallback(&mut self, p: PeerId, why: &str) {
        self.peers[p].qkd.fallbacks += 1;
        self.events.push_back(Event::QkdFallback {
            peer: p,
            reason: why.to_string(),
        });
    }

    /// We offered a QKD key and the responder answered without it.
    pub(super) fn responder_skipped_qkd(
        &mut self,
        now: Instant,
        from: SocketAddr,
        p: PeerId,
        keys: &SessionKeys,
    ) {
        if self.qkd_policy == QkdPolicy::Require {
            return self.reject(now, Some(p), from, HandshakeError::QkdNotUsed);
        }
        self.qkd_fallback(p, "the peer answered without the QKD key");
        self.complete(now, from, p, keys);
    }

    /// Gives up requests the runtime never answered; under `require`, retries after backoff.
    pub(super) fn qkd_timers(&mut self, now: Instant, p: PeerId) {
        let expired = |q: &PendingQkd| now - q.since >= QKD_REQUEST_TIMEOUT;
        if let Some(pending) = self.peers[p].qkd_pending.take_if(|q| expired(q)) {
            // its key may still come: then it is kept, not thrown away
            self.peers[p].qkd.cancelled_enc_keys = Some(pending.id);
            self.qkd_key_missing(
                now,
                p,
                pending.wait,
                "the KME did not answer in time".into(),
            );
        }
        if self.peers[p].timers.is_expired(PeerTimer::StartYield, now) {
            self.peers[p].timers.stop(PeerTimer::StartYield);
            // only a confirmed session stands in for our own: an answered initiation may be
            // a forgery (message 1 proves X25519 alone)
            let peer = &self.peers[p];
            if peer.current.is_none() && peer.pending.is_none() {
                self.initiate(now, p, InitiationReason::Startup);
            }
        }
        if let Some(pending) = self.peers[p].qkd_answering.take_if(|q| expired(q)) {
            if let QkdWait::Response { received, .. } = &pending.wait {
                let key_id = String::from_utf8_lossy(&received.payload.qkd_key_id).into_owned();
                self.peers[p].qkd.abandoned_dec_keys = Some((pending.id, key_id, now));
            }
            self.qkd_key_missing(
                now,
                p,
                pending.wait,
                "the KME did not answer in time".into(),
            );
        }
    }
}
