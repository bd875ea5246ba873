//! Denial-of-service defences for handshakes, after WireGuard's: a mac1 on every fragment
//! keyed by the receiver's public key (checked before any other work), a mac2 keyed by a
//! cookie that the responder hands out under load (binding the source address), a cookie
//! reply sealed to the sender of the fragment that lacked mac2 (initiator or responder), at a
//! bounded rate per source and in all, and per-source token buckets.

use super::time::Instant;
use super::wire::{CookieReply, Fragment};
use crate::constants::{
    COOKIE_REPLIES_PER_SECOND_MAX, COOKIE_REPLIES_PER_SOURCE_BURST,
    COOKIE_REPLIES_PER_SOURCE_PER_SECOND, COOKIE_SECRET_MAX_AGE,
    HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST, HANDSHAKE_DATAGRAMS_PER_SOURCE_PER_SECOND,
    RATE_LIMITER_EVICT_BATCH, RATE_LIMITER_SOURCES_MAX, UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND,
    UNDER_LOAD_HOLD,
};
use crate::crypto::dh::DhPublic;
use crate::crypto::random::Rng;
use crate::crypto::{CipherSuite, PacketKey, Secret, kdf, labels};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A 16-byte MAC: HMAC-SHA-256 truncated.
pub fn mac16(key: &[u8], data: &[u8]) -> [u8; 16] {
    kdf::hmac(key, &[data])[..16].try_into().expect("16 bytes")
}

/// The mac1 key of messages addressed to the holder of `receiver`.
pub fn mac1_key(receiver: &DhPublic) -> [u8; 32] {
    kdf::hash(&[labels::MAC1, &receiver.0])
}

/// The key that seals cookie replies from the holder of `responder`.
fn cookie_seal_key(responder: &DhPublic) -> Secret<32> {
    Secret::new(kdf::hash(&[labels::COOKIE_KEY, &responder.0]))
}

/// Appends mac1 and mac2 to a fragment (`header ‖ payload`); returns the mac1.
pub fn append_macs(
    fragment: &mut Vec<u8>,
    receiver_mac1_key: &[u8; 32],
    cookie: Option<&[u8; 16]>,
) -> [u8; 16] {
    let mac1 = mac16(receiver_mac1_key, fragment);
    fragment.extend_from_slice(&mac1);
    let mac2 = cookie.map_or([0u8; 16], |c| mac16(c, fragment));
    fragment.extend_from_slice(&mac2);
    mac1
}

/// True when the fragment's mac1 is right for our key (constant time).
pub fn mac1_valid(our_mac1_key: &[u8; 32], frag: &Fragment<'_>) -> bool {
    let expect = mac16(our_mac1_key, frag.mac1_input);
    aws_lc_rs::constant_time::verify_slices_are_equal(&expect, frag.mac1).is_ok()
}

/// Opens a cookie reply from the holder of `responder`, matching one of the mac1 values we
/// sent; returns the cookie.
pub fn open_cookie_reply(
    responder: &DhPublic,
    reply: &CookieReply,
    mac1s_sent: &[[u8; 16]],
) -> Option<[u8; 16]> {
    let key = PacketKey::new(CipherSuite::ChaCha20Poly1305, &cookie_seal_key(responder));
    mac1s_sent.iter().find_map(|mac1| {
        let nonce = u64::from_le_bytes(reply.nonce[4..].try_into().ok()?);
        let aad = [&reply.nonce[..4], &mac1[..]].concat();
        let opened = key.open_to_vec(nonce, &aad, &reply.sealed_cookie).ok()?;
        opened.try_into().ok()
    })
}

/// The responder's side: rotating cookie secret, load meter, cookie replies and their limits.
pub struct CookieChecker {
    our_mac1_key: [u8; 32],
    /// The same key, prepared for the mac1 check of every fragment.
    our_mac1_hmac: kdf::HmacKey,
    /// Cookie replies per source address…
    replies_per_source: RateLimiter,
    /// …and in all: [`COOKIE_REPLIES_PER_SECOND_MAX`].
    replies: TokenBucket,
    seal_key: PacketKey,
    secret: Secret<32>,
    secret_born: Option<Instant>,
    window_start: Instant,
    datagrams_in_window: u32,
    under_load_until: Option<Instant>,
}

impl CookieChecker {
    /// A checker for the holder of `our_public`.
    pub fn new(our_public: &DhPublic) -> Self {
        let our_mac1_key = mac1_key(our_public);
        Self {
            our_mac1_key,
            our_mac1_hmac: kdf::HmacKey::new(&our_mac1_key),
            replies_per_source: RateLimiter::new(
                COOKIE_REPLIES_PER_SOURCE_PER_SECOND,
                COOKIE_REPLIES_PER_SOURCE_BURST,
            ),
            replies: TokenBucket::full(
                COOKIE_REPLIES_PER_SECOND_MAX,
                COOKIE_REPLIES_PER_SECOND_MAX,
            ),
            seal_key: PacketKey::new(CipherSuite::ChaCha20Poly1305, &cookie_seal_key(our_public)),
            secret: Secret::zero(),
            secret_born: None,
            window_start: Instant::ZERO,
            datagrams_in_window: 0,
            under_load_until: None,
        }
    }

    /// Our mac1 key (fragments addressed to us).
    pub fn mac1_key(&self) -> &[u8; 32] {
        &self.our_mac1_key
    }

    /// True when the fragment's mac1 is right for our key (constant time); the same as
    /// [`mac1_valid`] with [`Self::mac1_key`], with the key prepared once.
    pub fn mac1_valid(&self, frag: &Fragment<'_>) -> bool {
        let expect = self.our_mac1_hmac.mac(&[frag.mac1_input]);
        aws_lc_rs::constant_time::verify_slices_are_equal(&expect[..16], frag.mac1).is_ok()
    }

    /// Whether a cookie reply may go to `source` (not a peer's known endpoint) now: at most
    /// [`COOKIE_REPLIES_PER_SOURCE_PER_SECOND`] per source address (burst
    /// [`COOKIE_REPLIES_PER_SOURCE_BURST`]) and [`COOKIE_REPLIES_PER_SECOND_MAX`] in all. A
    /// genuine sender needs one per message it retransmits; a spoofing flood gets no more
    /// of the responder's time for replies than that.
    pub fn may_reply(&mut self, now: Instant, source: IpAddr) -> bool {
        self.replies_per_source.allow(now, source) && self.replies.take(now)
    }

    /// Counts one handshake datagram; true when the responder is under load: more than
    /// [`UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND`] in the current one-second window, or
    /// within [`UNDER_LOAD_HOLD`] of the last time that was so (as WireGuard), so a lasting
    /// flood does not get the first datagrams of every new window through without mac2.
    pub fn note_datagram(&mut self, now: Instant) -> bool {
        if now - self.window_start >= Duration::from_secs(1) {
            self.window_start = now;
            self.datagrams_in_window = 0;
        }
        self.datagrams_in_window = self.datagrams_in_window.saturating_add(1);
        if self.datagrams_in_window > UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND {
            self.under_load_until = Some(now + UNDER_LOAD_HOLD);
        }
        self.under_load_until.is_some_and(|until| now < until)
    }

    /// True when the fragment's mac2 is the MAC under the cookie for `source`.
    pub fn mac2_valid(
        &mut self,
        now: Instant,
        source: SocketAddr,
        frag: &Fragment<'_>,
        rng: &mut dyn Rng,
    ) -> bool {
        let cookie = self.cookie_for(now, source, rng);
        let expect = mac16(&cookie, frag.mac2_input);
        aws_lc_rs::constant_time::verify_slices_are_equal(&expect, frag.mac2).is_ok()
    }

    /// A cookie reply for `source`, answering a fragment with this mac1 and sender index.
    pub fn reply(
        &mut self,
        now: Instant,
        source: SocketAddr,
        frag: &Fragment<'_>,
        rng: &mut dyn Rng,
    ) -> Vec<u8> {
        let cookie = self.cookie_for(now, source, rng);
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce);
        let counter = u64::from_le_bytes(nonce[4..].try_into().expect("8 bytes"));
        let aad = [&nonce[..4], &frag.mac1[..]].concat();
        let sealed = self.seal_key.seal_to_vec(counter, &aad, &cookie);
        CookieReply {
            receiver_index: frag.header.sender_index,
            nonce,
            sealed_cookie: sealed.try_into().expect("16 + 16 bytes"),
        }
        .encode()
    }

    fn cookie_for(&mut self, now: Instant, source: SocketAddr, rng: &mut dyn Rng) -> [u8; 16] {
        let stale = self
            .secret_born
            .is_none_or(|born| now - born >= COOKIE_SECRET_MAX_AGE);
        if stale {
            let mut s = [0u8; 32];
            rng.fill(&mut s);
            self.secret = Secret::new(s);
            self.secret_born = Some(now);
        }
        let addr = address_bytes(source);
        mac16(
            self.secret.expose(),
            &[labels::COOKIE_VALUE, &addr].concat(),
        )
    }
}

fn address_bytes(a: SocketAddr) -> Vec<u8> {
    let mut v = match a.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    v.extend_from_slice(&a.port().to_le_bytes());
    v
}

/// Token buckets per source IP, with bounded memory ([`RATE_LIMITER_SOURCES_MAX`] sources;
/// the fullest buckets are evicted beyond that). The default is the handshake datagram
/// limit ([`HANDSHAKE_DATAGRAMS_PER_SOURCE_PER_SECOND`], burst
/// [`HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST`]).
pub struct RateLimiter {
    buckets: HashMap<IpAddr, (f64, Instant)>,
    per_second: f64,
    burst: f64,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(
            HANDSHAKE_DATAGRAMS_PER_SOURCE_PER_SECOND,
            HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST,
        )
    }
}

impl RateLimiter {
    /// Buckets of `burst` tokens refilled at `per_second`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            buckets: HashMap::new(),
            per_second: f64::from(per_second),
            burst: f64::from(burst),
        }
    }

    /// Takes one token for `ip`; false when the source is over its rate.
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.buckets.len() >= RATE_LIMITER_SOURCES_MAX && !self.buckets.contains_key(&ip) {
            self.make_room(now);
        }
        let (burst, rate) = (self.burst, self.per_second);
        let (tokens, last) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = refilled(*tokens, *last, now, rate, burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Sources tracked now (at most [`RATE_LIMITER_SOURCES_MAX`]).
    pub fn sources(&self) -> usize {
        self.buckets.len()
    }

    /// Forgets the buckets that have refilled (a new bucket would be the same); if the table
    /// is still full, evicts the [`RATE_LIMITER_EVICT_BATCH`] fullest (the longest idle
    /// first among equals). A drained bucket, a source held at its rate, is the last to go,
    /// so new sources cannot buy a flooder a fresh burst.
    fn make_room(&mut self, now: Instant) {
        let (burst, rate) = (self.burst, self.per_second);
        self.buckets
            .retain(|_, (tokens, last)| refilled(*tokens, *last, now, rate, burst) < burst);
        if self.buckets.len() < RATE_LIMITER_SOURCES_MAX {
            return;
        }
        let mut fill: Vec<(f64, Instant, IpAddr)> = self
            .buckets
            .iter()
            .map(|(ip, (tokens, last))| (refilled(*tokens, *last, now, rate, burst), *last, *ip))
            .collect();
        let n = RATE_LIMITER_EVICT_BATCH.clamp(1, fill.len());
        fill.select_nth_unstable_by(n - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, ip) in &fill[..n] {
            self.buckets.remove(ip);
        }
    }
}

/// A bucket's tokens at `now`, `tokens` having been left at `last`.
fn refilled(tokens: f64, last: Instant, now: Instant, per_second: f64, burst: f64) -> f64 {
    (tokens + now.saturating_since(last).as_secs_f64() * per_second).min(burst)
}

/// One token bucket.
struct TokenBucket {
    tokens: f64,
    last: Instant,
    per_second: f64,
    burst: f64,
}

impl TokenBucket {
    fn full(per_second: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            last: Instant::ZERO,
            per_second: f64::from(per_second),
            burst: f64::from(burst),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        self.tokens = refilled(self.tokens, self.last, now, self.per_second, self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::dh::DhSecret;
    use crate::crypto::random::SeededRng;
    use crate::proto::wire::{TYPE_INITIATION, parse_fragment, split_message};

    #[test]
    fn cookie_round_trip_makes_mac2_valid() {
        let responder = DhSecret::generate().unwrap().public();
        let mut checker = CookieChecker::new(&responder);
        let mut rng = SeededRng::new(1);
        let src: SocketAddr = "198.18.0.1:5000".parse().unwrap();
        let mut frag = split_message(TYPE_INITIATION, 9, &[7u8; 100]).remove(0);
        let mut plain = frag.clone();
        let mac1 = append_macs(&mut plain, &mac1_key(&responder), None);
        let parsed = parse_fragment(&plain).unwrap();
        assert!(mac1_valid(checker.mac1_key(), &parsed));
        assert!(!checker.mac2_valid(Instant::ZERO, src, &parsed, &mut rng));
        let reply =
            CookieReply::decode(&checker.reply(Instant::ZERO, src, &parsed, &mut rng)).unwrap();
        let cookie = open_cookie_reply(&responder, &reply, &[mac1]).expect("cookie opens");
        append_macs(&mut frag, &mac1_key(&responder), Some(&cookie));
        let parsed = parse_fragment(&frag).unwrap();
        assert!(checker.mac2_valid(Instant::ZERO, src, &parsed, &mut rng));
        let other: SocketAddr = "198.18.0.2:5000".parse().unwrap();
        assert!(
            !checker.mac2_valid(Instant::ZERO, other, &parsed, &mut rng),
            "cookie is bound to the source"
        );
    }

    #[test]
    fn wrong_receiver_key_fails_mac1() {
        let a = DhSecret::generate().unwrap().public();
        let b = DhSecret::generate().unwrap().public();
        let mut frag = split_message(TYPE_INITIATION, 9, &[7u8; 100]).remove(0);
        append_macs(&mut frag, &mac1_key(&a), None);
        assert!(!mac1_valid(&mac1_key(&b), &parse_fragment(&frag).unwrap()));
    }

    #[test]
    fn rate_limiter_allows_burst_then_refills() {
        let mut r = RateLimiter::default();
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let burst = HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST as usize;
        assert_eq!(
            (0..burst * 2)
                .filter(|_| r.allow(Instant::ZERO, ip))
                .count(),
            burst
        );
        assert!(r.allow(Instant::ZERO + Duration::from_millis(100), ip));
    }
}
