//! The handshake side of the endpoint: starting and retrying initiations, the DoS checks
//! on every handshake fragment, answering initiations (with the replay guard and the
//! simultaneous-initiation rule), completing our own handshakes, and cookie replies.

use super::Endpoint;
use super::peer::{CachedResponse, PendingHandshake};
use super::timer::PeerTimer;
use crate::constants::{
    COOKIE_VALID_FOR, HANDSHAKE_STALLED_AFTER, INITIATION_TIMESTAMP_AHEAD_MAX,
    MIN_INITIATION_INTERVAL, REKEY_ATTEMPT_TIME, REKEY_FAST_PHASE, REKEY_TIMEOUT_FAST_MAX,
    REKEY_TIMEOUT_INITIAL, REKEY_TIMEOUT_JITTER_MAX, REKEY_TIMEOUT_MAX,
};
use crate::crypto::kdf;
use crate::proto::PeerId;
use crate::proto::cookie::{append_macs, open_cookie_reply};
use crate::proto::events::{Event, InitiationReason, Role};
use crate::proto::fragment::Reassembled;
use crate::proto::handshake::{
    FreshEphemerals, HandshakeError, InitiationParams, QkdKey, ReceivedInitiation,
    consume_initiation, consume_response, create_initiation, create_response,
    response_receiver_index,
};
use crate::proto::qkd_flow::QkdPolicy;
use crate::proto::time::Instant;
use crate::proto::wire::{
    CookieReply, Fragment, TYPE_INITIATION, TYPE_RESPONSE, parse_fragment, split_message,
};
use std::net::SocketAddr;
use std::time::Duration;

impl Endpoint {
    /// Starts a handshake with peer `p` unless one is in flight or its endpoint is unknown.
    /// With a QKD policy, the QKD key is asked for first (the initiation waits for it).
    pub(super) fn initiate(&mut self, now: Instant, p: PeerId, reason: InitiationReason) {
        if self.peers[p].pending.is_some() || self.peers[p].endpoint.is_none() {
            return;
        }
        if self.start_yields(now, p, reason) {
            return;
        }
        if self.qkd_policy == QkdPolicy::Disable {
            self.send_initiation(now, p, reason, None);
        } else {
            self.request_initiation_key(now, p, reason);
        }
    }

    /// Builds and sends a new initiation carrying `qkd` (its key_ID) if given.
    pub(super) fn send_initiation(
        &mut self,
        now: Instant,
        p: PeerId,
        reason: InitiationReason,
        qkd: Option<QkdKey>,
    ) {
        if self.peers[p].pending.is_some() || self.peers[p].endpoint.is_none() {
            return;
        }
        let index = self.new_index(p);
        let params = InitiationParams {
            suite: self.suite,
            sender_index: index,
            timestamp_unix_ns: self.unix_ns(now),
            qkd,
            local_public: &self.public,
        };
        let (message, state) = match create_initiation(
            &self.identity,
            &self.peers[p].settings.public,
            params,
            &mut FreshEphemerals,
        ) {
            Ok(v) => v,
            Err(error) => {
                self.indices.remove(&index);
                return self.reject(
                    now,
                    Some(p),
                    self.peers[p].endpoint.expect("checked above"),
                    error,
                );
            }
        };
        let retry_at = now + self.retry_timeout(1, Duration::ZERO);
        let pending = PendingHandshake {
            state,
            message,
            first_sent: now,
            last_sent: now,
            attempts: 1,
            mac1s: Vec::new(),
            stall_reported: false,
        };
        self.peers[p].start_handshake(pending, retry_at);
        self.send_pending(now, p);
        self.events
            .push_back(Event::HandshakeStarted { peer: p, reason });
    }

    /// Retransmission timeout after attempt `n` (1-based) of a handshake started `elapsed`
    /// ago: doubling from the initial value, capped at [`REKEY_TIMEOUT_FAST_MAX`] during the
    /// first [`REKEY_FAST_PHASE`] (a lossy path: each retransmission brings fragments the
    /// earlier ones lacked) and at [`REKEY_TIMEOUT_MAX`] after it (a peer that is down),
    /// plus random jitter of up to a third of that, at most [`REKEY_TIMEOUT_JITTER_MAX`].
    fn retry_timeout(&mut self, attempt: u32, elapsed: Duration) -> Duration {
        let cap = if elapsed < REKEY_FAST_PHASE {
            REKEY_TIMEOUT_FAST_MAX
        } else {
            REKEY_TIMEOUT_MAX
        };
        let base = REKEY_TIMEOUT_INITIAL
            .saturating_mul(1 << attempt.saturating_sub(1).min(8))
            .min(cap);
        let jitter_max = (base / 3).min(REKEY_TIMEOUT_JITTER_MAX).as_millis() as u64;
        base + Duration::from_millis(u64::from(self.rng.next_u32()) % (jitter_max + 1))
    }

    /// (Re)sends our pending initiation's fragments, with mac2 when we hold a fresh cookie.
    fn send_pending(&mut self, now: Instant, p: PeerId) {
        let peer = &mut self.peers[p];
        let (Some(to), Some(pending)) = (peer.endpoint, peer.pending.as_mut()) else {
            return;
        };
        let cookie = fresh_cookie(peer.cookie, now);
        pending.mac1s.clear();
        for mut fragment in split_message(
            TYPE_INITIATION,
            pending.state.sender_index,
            &pending.message,
        ) {
            pending
                .mac1s
                .push(append_macs(&mut fragment, &peer.mac1_key, cookie.as_ref()));
            self.transmits.push_back(crate::proto::events::Transmit {
                to,
                payload: fragment,
            });
        }
        pending.last_sent = now;
    }

    /// Retransmits or abandons our pending initiation when its timer fires.
    pub(super) fn retry_handshake(&mut self, now: Instant, p: PeerId) {
        let peer = &self.peers[p];
        let Some(pending) = peer.pending.as_ref() else {
            return;
        };
        if !peer.timers.is_expired(PeerTimer::HandshakeRetry, now) {
            return;
        }
        let waited = now - pending.first_sent;
        if waited >= REKEY_ATTEMPT_TIME {
            return self.give_up(p);
        }
        let attempts = pending.attempts + 1;
        let retry_at = now + self.retry_timeout(attempts, waited);
        let peer = &mut self.peers[p];
        let Some(pending) = peer.pending.as_mut() else {
            return;
        };
        pending.attempts = attempts;
        peer.timers.set(PeerTimer::HandshakeRetry, retry_at);
        if waited >= HANDSHAKE_STALLED_AFTER && !pending.stall_reported {
            pending.stall_reported = true;
            self.events.push_back(Event::HandshakeStalled {
                peer: p,
                attempts: attempts - 1,
                waited,
            });
        }
        self.send_pending(now, p);
    }

    fn give_up(&mut self, p: PeerId) {
        let peer = &mut self.peers[p];
        let Some(pending) = peer.take_pending() else {
            return;
        };
        self.indices.remove(&pending.state.sender_index);
        peer.drops.no_session += peer.staged.len() as u64;
        peer.staged.clear();
        self.events.push_back(Event::HandshakeTimedOut {
            peer: p,
            attempts: pending.attempts,
        });
    }

    /// Counts a refused handshake message; reports at most one per second (the counter
    /// has them all), so a flood cannot flood the log.
    pub(super) fn reject(
        &mut self,
        now: Instant,
        p: Option<PeerId>,
        from: SocketAddr,
        error: HandshakeError,
    ) {
        self.drops.handshake_rejected += 1;
        if self
            .last_rejected_event
            .is_some_and(|t| now - t < Duration::from_secs(1))
        {
            return;
        }
        self.last_rejected_event = Some(now);
        self.events.push_back(Event::HandshakeRejected {
            peer: p,
            from,
            error,
        });
    }

    // ------------------------------------------------------------ incoming fragments

    /// Checks a handshake fragment (mac1, load and cookie, rate) and reassembles it.
    pub(super) fn receive_fragment(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Ok(frag) = parse_fragment(datagram) else {
            self.drops.malformed += 1;
            return;
        };
        if !self.cookies.mac1_valid(&frag) {
            return self.bad_mac1(now, from);
        }
        // As WireGuard: only under load is a source made to prove its address (cookie) and
        // held to a per-source rate. Rate-limiting always would throttle a legitimate peer
        // whose small byte budget makes it rotate tens of times a second, and a dropped
        // rekey fragment then stalls the tunnel for a retransmission timeout. Under load
        // every fragment, initiation or response, needs its mac2 before it may spend its
        // source's tokens or a reassembly slot: mac1 alone is no proof (anyone with our
        // public key computes it), and a spoofer could spend a peer's bucket.
        if self.cookies.note_datagram(now) {
            if !self.cookies.mac2_valid(now, from, &frag, &mut *self.rng) {
                return self.require_cookie(now, from, &frag);
            }
            if !self.limiter.allow(now, from.ip()) {
                self.drops.rate_limited += 1;
                return;
            }
        }
        let msg_type = frag.header.msg_type;
        match self.reassembler.insert(now, from, &frag) {
            Some(Reassembled::Complete(message)) if msg_type == TYPE_RESPONSE => {
                self.on_response(now, from, &message)
            }
            Some(Reassembled::Complete(message)) => self.on_initiation(now, from, &message),
            // the initiator lacks our answer: resend it if we gave one (no crypto here)
            Some(Reassembled::Repeat(digest)) => {
                self.resend_cached_response(now, from, &digest);
            }
            None => {}
        }
    }

    /// Under load, a fragment without a valid mac2 is not processed: counted, and answered
    /// with a cookie reply for its source (which the sender uses on its next attempt). A
    /// source that is a peer's known endpoint always gets its reply (a spoofer of exactly
    /// that address only makes us answer the peer, and must not spend the peer's share);
    /// other sources as far as the reply limits allow (`cookie_reply_limited` counts the
    /// rest), so a flood from spoofed sources costs few replies.
    fn require_cookie(&mut self, now: Instant, from: SocketAddr, frag: &Fragment<'_>) {
        self.drops.cookie_required += 1;
        let known = self
            .peers
            .position(|peer| peer.endpoint == Some(from))
            .is_some();
        if !known && !self.cookies.may_reply(now, from.ip()) {
            self.drops.cookie_reply_limited += 1;
            return;
        }
        let reply = self.cookies.reply(now, from, frag, &mut *self.rng);
        self.transmits.push_back(crate::proto::events::Transmit {
            to: from,
            payload: reply,
        });
        self.events.push_back(Event::CookieSent { to: from });
    }

    fn bad_mac1(&mut self, now: Instant, from: SocketAddr) {
        self.drops.bad_mac1 += 1;
        if self
            .last_bad_mac1_event
            .is_none_or(|t| now - t >= Duration::from_secs(1))
        {
            self.last_bad_mac1_event = Some(now);
            self.events.push_back(Event::BadMac1 { from });
        }
    }

    fn on_initiation(&mut self, now: Instant, from: SocketAddr, message: &[u8]) {
        let digest = kdf::hash(&[message]);
        if self.resend_cached_response(now, from, &digest) || self.awaiting_key_for(&digest) {
            return;
        }
        let by_static = &self.by_static;
        let peers = &self.peers;
        let lookup = |k: &_| {
            by_static
                .get(k)
                .map(|&p| (p, peers[p].settings.public.clone()))
        };
        match consume_initiation(&self.identity, &self.public, self.suite, message, lookup) {
            Ok(received) => self.answer(now, from, received, digest),
            Err(error) => self.reject(now, None, from, error),
        }
    }

    /// A retransmitted initiation we already answered gets the same response again.
    fn resend_cached_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        digest: &[u8; 32],
    ) -> bool {
        let Some(p) = self.peers.position(|peer| {
            peer.cached_response
                .as_ref()
                .is_some_and(|c| &c.initiation_digest == digest)
        }) else {
            return false;
        };
        let cached = self.peers[p].cached_response.as_mut().expect("found above");
        if now - cached.sent_at >= MIN_INITIATION_INTERVAL {
            cached.sent_at = now;
            let (index, response) = (cached.sender_index, cached.response.clone());
            self.send_response(now, p, from, index, &response);
        }
        true
    }

    /// Applies the replay guard and the simultaneous-initiation rule, then responds.
    fn answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        received: ReceivedInitiation<PeerId>,
        digest: [u8; 32],
    ) {
        let p = received.peer;
        if let Some(why) = self.initiation_refusal(now, p, received.payload.timestamp_unix_ns) {
            self.events
                .push_back(Event::InitiationIgnored { peer: p, why });
            return;
        }
        // Message 1 proves only the initiator's X25519 key: nothing that outlives this
        // answer is committed until the initiator proves its ML-KEM key too (its first
        // data packet on the new session, see `initiator_confirmed`). Our own pending
        // handshake, the replay timestamp and the peer's endpoint stay as they are.
        self.peers[p].last_answered_at = Some(now);
        self.answer_with_policy(now, from, received, digest);
    }

    /// The peer sent its first authenticated data packet on the session we answered (local
    /// index `index`): it holds both its static keys. Now the initiation's timestamp becomes
    /// the replay guard, our own pending handshake (if any) is superseded, and the peer may
    /// cause `dec_keys` calls again.
    pub(super) fn initiator_confirmed(&mut self, now: Instant, p: PeerId, index: u32) {
        let peer = &mut self.peers[p];
        if let Some((_, ts)) = peer.next_initiation.take_if(|(i, _)| *i == index) {
            let newest = peer.last_initiation.map_or(ts, |(last, _)| last.max(ts));
            peer.last_initiation = Some((newest, now));
        }
        peer.qkd.unconfirmed_dec_keys.refill();
        peer.qkd.late_key = None;
        peer.timers.stop(PeerTimer::StartYield);
        if let Some(ours) = peer.take_pending() {
            self.indices.remove(&ours.state.sender_index);
        }
        self.cancel_initiation_key(p);
    }

    /// Sends the response to `received`, mixing `qkd` if given.
    pub(super) fn respond(
        &mut self,
        now: Instant,
        from: SocketAddr,
        received: ReceivedInitiation<PeerId>,
        digest: [u8; 32],
        qkd: Option<&QkdKey>,
    ) {
        let p = received.peer;
        let index = self.new_index(p);
        let remote = self.peers[p].settings.public.clone();
        let timestamp = received.payload.timestamp_unix_ns;
        match create_response(received, &remote, index, qkd, &mut FreshEphemerals) {
            Ok((response, keys)) => {
                let session = self.new_session(p, &keys, now);
                let freed = self.peers[p].install_responded(session);
                self.forget_indices(freed);
                // the endpoint moves only with the initiator's first data packet
                self.peers[p].next_initiation = Some((index, timestamp));
                self.peers[p].cached_response = Some(CachedResponse {
                    initiation_digest: digest,
                    response: response.clone(),
                    sender_index: index,
                    sent_at: now,
                });
                self.send_response(now, p, from, index, &response);
                self.established(p, Role::Responder, &keys, None);
            }
            Err(error) => {
                self.indices.remove(&index);
                self.reject(now, Some(p), from, error);
            }
        }
    }

    /// Why an authenticated initiation from `p` must be ignored, if it must.
    fn initiation_refusal(&self, now: Instant, p: PeerId, timestamp: u64) -> Option<&'static str> {
        let peer = &self.peers[p];
        let ahead_max = INITIATION_TIMESTAMP_AHEAD_MAX.as_nanos() as u64;
        if timestamp > self.unix_ns(now).saturating_add(ahead_max) {
            return Some(
                "initiation timestamp too far ahead of this site's clock (beyond the allowed skew; check both sites' clocks)",
            );
        }
        if peer
            .last_initiation
            .is_some_and(|(last_ts, _)| timestamp <= last_ts)
        {
            return Some("replayed initiation (timestamp not newer than the last one)");
        }
        if peer
            .last_answered_at
            .is_some_and(|at| now - at < MIN_INITIATION_INTERVAL)
        {
            return Some("initiation flood (more than 500 per second)");
        }
        // Ours proceeds only on its first attempt: once its first retransmission timeout
        // passed unanswered, ours (or its answer) was lost, and the peer's is answered, so
        // loss on one direction cannot keep both handshakes from completing.
        let ours_in_flight = peer.pending.as_ref().is_some_and(|h| h.attempts == 1)
            || self.fetching_initiation_key(p);
        if ours_in_flight && self.public.dh.0 < peer.settings.public.dh.0 {
            return Some(
                "simultaneous initiation: ours proceeds (this site has the lower static key and has not retransmitted yet)",
            );
        }
        None
    }

    /// Sends a response's fragments, with mac2 when we hold a fresh cookie from the peer (it
    /// is under load); keeps their mac1 values to open a cookie reply to them.
    fn send_response(
        &mut self,
        now: Instant,
        p: PeerId,
        to: SocketAddr,
        sender_index: u32,
        response: &[u8],
    ) {
        let peer = &mut self.peers[p];
        let cookie = fresh_cookie(peer.cookie, now);
        let mut mac1s = Vec::new();
        for mut fragment in split_message(TYPE_RESPONSE, sender_index, response) {
            mac1s.push(append_macs(&mut fragment, &peer.mac1_key, cookie.as_ref()));
            self.transmits.push_back(crate::proto::events::Transmit {
                to,
                payload: fragment,
            });
        }
        peer.response_mac1s = Some((sender_index, mac1s));
    }

    fn on_response(&mut self, now: Instant, from: SocketAddr, message: &[u8]) {
        let Ok(index) = response_receiver_index(message) else {
            self.drops.malformed += 1;
            return;
        };
        let Some(&p) = self.indices.get(&index) else {
            self.drops.stale_reply += 1;
            return;
        };
        let Some(pending) = self.peers[p]
            .pending
            .as_ref()
            .filter(|h| h.state.sender_index == index)
        else {
            self.drops.stale_reply += 1;
            return;
        };
        let offered_qkd = pending.state.qkd.is_some();
        match consume_response(&self.identity, &pending.state, message) {
            Ok(keys) if offered_qkd && !keys.qkd_mixed() => {
                self.responder_skipped_qkd(now, from, p, &keys)
            }
            Ok(keys) => self.complete(now, from, p, &keys),
            Err(error) => self.reject(now, Some(p), from, error),
        }
    }

    /// Our handshake completed: the new session becomes current; confirm it at once.
    pub(super) fn complete(
        &mut self,
        now: Instant,
        from: SocketAddr,
        p: PeerId,
        keys: &crate::proto::handshake::SessionKeys,
    ) {
        let pending = self.peers[p].take_pending().expect("checked by the caller");
        // the responder proved both its static keys
        self.peers[p].qkd.unconfirmed_dec_keys.refill();
        let session = self.new_session(p, keys, now);
        let freed = self.peers[p].install_initiated(session);
        self.forget_indices(freed);
        if self.peers[p].endpoint != Some(from) {
            self.peers[p].endpoint = Some(from);
            self.endpoints_generation += 1;
        }
        self.established(p, Role::Initiator, keys, Some(now - pending.last_sent));
        if self.flush_staged(now, p) == 0 {
            self.send_single(now, p, &[]);
        }
    }

    fn established(
        &mut self,
        p: PeerId,
        role: Role,
        keys: &crate::proto::handshake::SessionKeys,
        round_trip: Option<Duration>,
    ) {
        let peer = &self.peers[p];
        self.events.push_back(Event::SessionEstablished {
            peer: p,
            epoch: peer.epoch,
            role,
            qkd: keys.qkd_mixed(),
            round_trip,
            local_index: keys.local_index,
            remote_index: keys.remote_index,
        });
    }

    /// A cookie reply to our pending initiation or to the last response we sent: the peer
    /// is under load. Keep the cookie for mac2; the initiation is resent on its retry timer
    /// (and the response with it), never at once, and only one reply per message sent is
    /// accepted, so a replayed reply (mac1 is deterministic) makes us send nothing.
    pub(super) fn receive_cookie_reply(&mut self, now: Instant, datagram: &[u8]) {
        let Ok(reply) = CookieReply::decode(datagram) else {
            self.drops.malformed += 1;
            return;
        };
        let Some(&p) = self.indices.get(&reply.receiver_index) else {
            self.drops.stale_reply += 1;
            return;
        };
        let peer = &mut self.peers[p];
        let index = reply.receiver_index;
        let mac1s = match (peer.pending.as_mut(), peer.response_mac1s.as_mut()) {
            (Some(pending), _) if pending.state.sender_index == index => &mut pending.mac1s,
            (_, Some((sent, mac1s))) if *sent == index => mac1s,
            _ => {
                self.drops.stale_reply += 1;
                return;
            }
        };
        if mac1s.is_empty() {
            // a reply to this message was accepted already: a duplicate or a replay
            self.drops.stale_reply += 1;
            return;
        }
        match open_cookie_reply(&peer.settings.public.dh, &reply, mac1s) {
            Some(cookie) => {
                mac1s.clear();
                peer.cookie = Some((cookie, now));
            }
            None => self.drops.malformed += 1,
        }
    }
}

/// The cookie to send mac2 with, if we hold one young enough.
fn fresh_cookie(cookie: Option<([u8; 16], Instant)>, now: Instant) -> Option<[u8; 16]> {
    cookie
        .filter(|(_, at)| now - *at < COOKIE_VALID_FOR)
        .map(|(c, _)| c)
}
