//! The protocol's constants, each with its unit in its name or doc: wire sizes, handshake
//! timers, QKD key flow, DoS protection, the data plane and the key budgets (and, for now,
//! the KME's CV-QKD link defaults). Constants of one component's implementation live next to
//! it instead: config defaults in `qshield::config`, socket, TUN and batch sizes in
//! `qshield::net`. Timer values follow WireGuard's unless a comment says why not.

use std::time::Duration;

// ---------------------------------------------------------------- wire sizes (bytes)

/// Largest UDP payload any handshake or cookie datagram may have, so that the handshake
/// never depends on IP fragmentation (IPv6 minimum MTU 1280 − 40 IPv6 − 8 UDP > 1200).
pub const MAX_HANDSHAKE_DATAGRAM_BYTES: usize = 1200;
/// Data message header: type(1) reserved(3) receiver_index(4) counter(8).
pub const DATA_HEADER_BYTES: usize = 16;
/// AEAD tag length for both cipher suites.
pub const AEAD_TAG_BYTES: usize = 16;
/// Bytes a data message adds around an inner packet.
pub const DATA_OVERHEAD_BYTES: usize = DATA_HEADER_BYTES + AEAD_TAG_BYTES;
/// IPv6 header (the larger underlay header) plus UDP header.
pub const UNDERLAY_HEADERS_MAX_BYTES: usize = 40 + 8;
/// Default tunnel MTU: a 1500-byte underlay minus IPv6+UDP and the data overhead.
pub const DEFAULT_TUNNEL_MTU_BYTES: u16 =
    (1500 - UNDERLAY_HEADERS_MAX_BYTES - DATA_OVERHEAD_BYTES) as u16;
/// Smallest tunnel MTU accepted (IPv6 requires 1280 inside the tunnel).
pub const MIN_TUNNEL_MTU_BYTES: u16 = 1280;
/// Largest tunnel MTU accepted (jumbo underlay 9000 minus headers and overhead).
pub const MAX_TUNNEL_MTU_BYTES: u16 =
    (9000 - UNDERLAY_HEADERS_MAX_BYTES - DATA_OVERHEAD_BYTES) as u16;
/// Inner packets are padded to a multiple of this many bytes before encryption (WireGuard's).
pub const PADDING_MULTIPLE_BYTES: usize = 16;

// ---------------------------------------------------------------- handshake timers

/// First handshake retransmission timeout; doubles per retry up to [`REKEY_TIMEOUT_FAST_MAX`]
/// during the [`REKEY_FAST_PHASE`], then up to [`REKEY_TIMEOUT_MAX`]. A handshake is five
/// datagrams: at 30 % loss each way, retransmissions this fast complete nine handshakes in
/// ten within 5 s (tests/core_handshake_loss.rs).
pub const REKEY_TIMEOUT_INITIAL: Duration = Duration::from_millis(250);
/// Cap of the retransmission timeout during the first [`REKEY_FAST_PHASE`] of a handshake.
pub const REKEY_TIMEOUT_FAST_MAX: Duration = Duration::from_secs(1);
/// How long a handshake retransmits fast; after it, a peer that has not answered is likely
/// down rather than behind a lossy path, and retransmissions back off to [`REKEY_TIMEOUT_MAX`].
pub const REKEY_FAST_PHASE: Duration = Duration::from_secs(5);
/// Cap of the retransmission timeout (WireGuard's fixed REKEY_TIMEOUT).
pub const REKEY_TIMEOUT_MAX: Duration = Duration::from_secs(5);
/// A handshake still unanswered this long after its first initiation is reported (once).
pub const HANDSHAKE_STALLED_AFTER: Duration = Duration::from_secs(5);
/// Random jitter added to every retransmission timeout, at most this much.
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(334);
/// An initiator rekeys by time up to `rekey_after / REKEY_SPREAD_DIVISOR` early, a random
/// part chosen per session (as strongSwan's `rand_time`), so that sessions established
/// together (a hub's peers after a restart) do not all rekey in the same second; the
/// budget stays a maximum (`benches/hub.rs` measures the spread).
pub const REKEY_SPREAD_DIVISOR: u32 = 10;
/// Give up a handshake attempt series after this long (then wait for new traffic).
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Send a keepalive this long after receiving data if nothing was sent meanwhile.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Minimum spacing of initiations accepted from one peer (500 per second). WireGuard uses
/// 20 ms; byte budgets of a few MiB at multi-gigabit rates rotate faster than that.
pub const MIN_INITIATION_INTERVAL: Duration = Duration::from_millis(2);
/// An initiation whose timestamp is more than this far ahead of the responder's wall clock
/// is refused: a timestamp far in the future would otherwise, once kept as the replay
/// guard, refuse every genuine initiation until the clock caught up.
pub const INITIATION_TIMESTAMP_AHEAD_MAX: Duration = Duration::from_secs(300);
/// A handshake message in reassembly is discarded when no fragment of it arrived for this
/// long: more than two of the longest retransmission intervals ([`REKEY_TIMEOUT_MAX`] plus
/// jitter), so fragments of retransmissions combine even when one whole retransmission is
/// lost.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(12);
/// At most this many handshake messages are being reassembled at once (all sources).
pub const REASSEMBLY_SLOTS_MAX: usize = 64;
/// At most this many of those slots belong to one source address.
pub const REASSEMBLY_SLOTS_PER_SOURCE_MAX: usize = 4;
/// Packets staged per peer while no session can carry them.
pub const STAGED_PACKETS_MAX: usize = 128;

// ---------------------------------------------------------------- QKD keys

/// The core gives up waiting for a QKD key after this long (the KME client's own timeout is
/// shorter; this is the backstop).
pub const QKD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed QKD request under `require`, wait this long before asking again…
pub const QKD_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// …doubling up to this.
pub const QKD_RETRY_MAX: Duration = Duration::from_secs(10);
/// `dec_keys` calls one peer may cause before it proves both its static keys (token
/// bucket per peer: this many at once, one more per
/// [`QKD_UNCONFIRMED_DEC_KEYS_REFILL_INTERVAL`]; full again when a session with the peer is
/// confirmed). Message 1 proves only the initiator's X25519 key, so whoever holds that key
/// alone can make the responder ask its KME for the key_ID they name.
pub const QKD_UNCONFIRMED_DEC_KEYS_BURST: u32 = 3;
/// See [`QKD_UNCONFIRMED_DEC_KEYS_BURST`]: one call more per this interval. A retransmitted
/// initiation causes no call while one for it is in flight or answered; it needs one only
/// after the KME failed, and the key is then retried at most this often.
pub const QKD_UNCONFIRMED_DEC_KEYS_REFILL_INTERVAL: Duration = Duration::from_secs(1);
/// At start, under a QKD policy, the site with the higher static key (the one whose
/// initiation would lose to a simultaneous one) waits this long for the peer's initiation
/// before it fetches a key for its own, so two sites starting at once fetch one key.
pub const QKD_SIMULTANEOUS_START_YIELD: Duration = Duration::from_secs(1);
/// A key fetched for an initiation that became unnecessary (the peer's won meanwhile) is kept
/// for our next initiation at most this long; older, it is dropped unused.
pub const QKD_SPARE_KEY_MAX_AGE: Duration = Duration::from_secs(60);
/// Requests of one peer waiting for the daemon's QKD worker; beyond this the oldest is
/// dropped (the core's newer requests supersede it, and it has at most two live ones).
pub const QKD_QUEUE_PER_PEER_MAX: usize = 4;
/// Default QKD key size requested from the KME, in bits.
pub const DEFAULT_QKD_KEY_BITS: u32 = 256;
/// HTTP timeout of one ETSI 014 call (connect and answer).
pub const KME_CALL_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------- DoS protection

/// The cookie secret is replaced this often.
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);
/// An initiator uses a received cookie for this long (max age minus latency allowance).
pub const COOKIE_VALID_FOR: Duration = Duration::from_secs(115);
/// Above this many handshake datagrams per second the responder is "under load" and
/// demands a valid mac2 (a cookie round trip) before doing any public-key work. Set above
/// what one peer rotating at the fastest accepted rate sends (see the per-source rate).
pub const UNDER_LOAD_HANDSHAKE_DATAGRAMS_PER_SECOND: u32 = 4000;
/// Once over that threshold, the responder stays under load until this long after the last
/// datagram that found it over (WireGuard's one second), so a lasting flood cannot slip the
/// first datagrams of each new one-second window past the mac2 check.
pub const UNDER_LOAD_HOLD: Duration = Duration::from_secs(1);
/// Token bucket per source address, applied only under load (after the cookie round trip
/// has proven the source, as WireGuard does): sustained handshake datagrams per second. One
/// peer may start an initiation every [`MIN_INITIATION_INTERVAL`] (500/s, 3 datagrams
/// each), which small byte budgets at multi-gigabit rates need; at ~0.15 ms of public-key
/// work per initiation that bounds one source to under a tenth of a core.
pub const HANDSHAKE_DATAGRAMS_PER_SOURCE_PER_SECOND: u32 = 1500;
/// Cookie replies per second to one source address under load (after a burst of
/// [`COOKIE_REPLIES_PER_SOURCE_BURST`]): a genuine sender needs one per message it
/// retransmits (its cookie then serves for [`COOKIE_VALID_FOR`]).
pub const COOKIE_REPLIES_PER_SOURCE_PER_SECOND: u32 = 4;
/// Burst of [`COOKIE_REPLIES_PER_SOURCE_PER_SECOND`]: one per fragment of a whole initiation
/// and a response, with room for a retransmission.
pub const COOKIE_REPLIES_PER_SOURCE_BURST: u32 = 8;
/// Cookie replies per second in all (also the burst): a flood from more sources than the
/// per-source table holds gets no more than this.
pub const COOKIE_REPLIES_PER_SECOND_MAX: u32 = 20_000;
/// Token bucket per source address: burst size (a few full exchanges plus retries).
pub const HANDSHAKE_DATAGRAMS_PER_SOURCE_BURST: u32 = 60;
/// Sources tracked by the rate limiter. When a new source finds the table full, the buckets
/// that have refilled are forgotten (that changes nothing), then, if it is still full, the
/// [`RATE_LIMITER_EVICT_BATCH`] fullest buckets (the longest idle): a source held at its rate
/// stays held however many other sources appear.
pub const RATE_LIMITER_SOURCES_MAX: usize = 4096;
/// Buckets evicted at once when the rate limiter's table is full (an eighth of it, so the
/// search for the fullest runs once per this many new sources).
pub const RATE_LIMITER_EVICT_BATCH: usize = RATE_LIMITER_SOURCES_MAX / 8;

// ---------------------------------------------------------------- data plane

/// Anti-replay window, in packets (RFC 6479 ring of 64-bit words).
pub const REPLAY_WINDOW_BITS: u64 = 8192;
/// Packets accepted below the highest counter seen (one word is kept as slack).
pub const REPLAY_WINDOW_PACKETS: u64 = REPLAY_WINDOW_BITS - 64;

// ---------------------------------------------------------------- key budgets

/// Default soft byte budget per key (plaintext bytes sent under it).
pub const DEFAULT_REKEY_AFTER_BYTES: u64 = 8 << 30;
/// Default soft time budget per key.
pub const DEFAULT_REKEY_AFTER: Duration = Duration::from_secs(120);
/// Default hard budgets are this many times the soft ones (bytes: ×5/4, time: ×3/2).
pub const DEFAULT_REJECT_BYTES_NUMERATOR: u64 = 5;
/// See [`DEFAULT_REJECT_BYTES_NUMERATOR`].
pub const DEFAULT_REJECT_BYTES_DENOMINATOR: u64 = 4;
/// See [`DEFAULT_REJECT_BYTES_NUMERATOR`]; time: ×3/2 as WireGuard's 120 s / 180 s.
pub const DEFAULT_REJECT_TIME_NUMERATOR: u32 = 3;
/// See [`DEFAULT_REJECT_TIME_NUMERATOR`].
pub const DEFAULT_REJECT_TIME_DENOMINATOR: u32 = 2;
/// The default hard byte budget is at least this far above the soft one, so a small soft
/// budget at multi-gigabit rates still leaves the rekey handshake time to finish (64 MiB is
/// 50 ms at 10 Gbit/s).
pub const DEFAULT_REJECT_MIN_MARGIN_BYTES: u64 = 64 << 20;
/// Smallest soft byte budget accepted.
pub const MIN_REKEY_AFTER_BYTES: u64 = 1 << 20;
/// Smallest soft time budget accepted.
pub const MIN_REKEY_AFTER: Duration = Duration::from_secs(1);
/// Largest time budget accepted (FortiGate's keylifeseconds maximum, 48 h).
pub const MAX_REKEY_AFTER: Duration = Duration::from_secs(172_800);

/// AES-256-GCM confidentiality limit, in packets per key. draft-irtf-cfrg-aead-limits:
/// q·(L+1) ≤ 2^((129−57)/2) = 2^36 blocks for an advantage of 2^-57; a data packet of at most
/// 9000 bytes is L+1 ≤ 2^9.2 blocks, so q ≤ 2^26.8: we use 2^26 (about 67 million packets).
pub const AES_GCM_MAX_PACKETS_PER_KEY: u64 = 1 << 26;
/// AES-256-GCM integrity limit: failed decryptions tolerated per key (RFC 9001 §6.6: 2^52).
pub const AES_GCM_MAX_FORGERIES_PER_KEY: u64 = 1 << 52;
/// ChaCha20-Poly1305 packets per key: the counter space WireGuard allows (REKEY_AFTER_MESSAGES).
pub const CHACHA_MAX_PACKETS_PER_KEY: u64 = 1 << 60;
/// ChaCha20-Poly1305 integrity limit: failed decryptions tolerated per key (RFC 9001: 2^36).
pub const CHACHA_MAX_FORGERIES_PER_KEY: u64 = 1 << 36;
/// The packet cap's soft point: a new handshake starts when this fraction (7/8) is used.
pub const PACKET_CAP_SOFT_NUMERATOR: u64 = 7;
/// See [`PACKET_CAP_SOFT_NUMERATOR`].
pub const PACKET_CAP_SOFT_DENOMINATOR: u64 = 8;
