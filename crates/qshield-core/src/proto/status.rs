//! The status snapshot behind `qshield status`: per-peer keys, counters and QKD use, and
//! the drops counted for each peer and for the interface. Built by
//! [`Endpoint::status`](super::endpoint::Endpoint::status); serialized as the status JSON.

use super::events::Role;
use serde::Serialize;
use std::net::SocketAddr;

/// Drops counted for one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PeerDrops {
    /// Data packets whose tag failed.
    pub bad_tag: u64,
    /// Replayed or too-old data packets.
    pub replay: u64,
    /// Data under a key past its hard budget.
    pub key_expired: u64,
    /// Inner packets whose source is not in the peer's allowed IPs, or not IP.
    pub disallowed_source: u64,
    /// Inner packets dropped because no session existed and the staging queue was full.
    pub no_session: u64,
}

/// Drops that cannot be charged to a peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct InterfaceDrops {
    /// Datagrams that do not parse.
    pub malformed: u64,
    /// Data packets for a session index we do not have (a session already dropped, or one
    /// the peer holds and we lost in a restart).
    pub unknown_index: u64,
    /// Handshake responses and cookie replies that answer no handshake of ours in
    /// progress: a late or repeated copy (our retransmission crossed the answer, which the
    /// peer then sent again), a replay, or a forgery with a valid mac1. Harmless; no data.
    pub stale_reply: u64,
    /// Handshake datagrams with a wrong mac1.
    pub bad_mac1: u64,
    /// Handshake datagrams without a valid mac2 while under load: answered with a cookie
    /// reply, not processed (they never reach the per-source limiter or the reassembler).
    pub cookie_required: u64,
    /// Of those, left unanswered: their source, or all sources together, were over the
    /// cookie reply rate.
    pub cookie_reply_limited: u64,
    /// Handshake datagrams over the per-source rate (enforced only under load).
    pub rate_limited: u64,
    /// Handshake messages refused (see the log for each reason).
    pub handshake_rejected: u64,
    /// Inner packets to an address no peer's allowed IPs cover.
    pub no_route: u64,
}

/// One peer in `qshield status`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// Peer name.
    pub name: String,
    /// Current underlay address.
    pub endpoint: Option<SocketAddr>,
    /// Seconds since the last completed handshake.
    pub last_handshake_seconds_ago: Option<f64>,
    /// Data cipher.
    pub cipher: &'static str,
    /// The current key, if any.
    pub current_key: Option<KeyStatus>,
    /// Sessions that replaced an earlier one.
    pub rotations: u64,
    /// Handshakes completed (both roles).
    pub handshakes: u64,
    /// A handshake we started is awaiting its response.
    pub handshake_in_progress: bool,
    /// Inner bytes sent and received, all keys.
    pub total_bytes_sent: u64,
    /// See `total_bytes_sent`.
    pub total_bytes_received: u64,
    /// Data packets sent (keepalives included), all keys.
    pub total_packets_sent: u64,
    /// Data packets received and accepted (keepalives included), all keys.
    pub total_packets_received: u64,
    /// Drops by reason.
    pub drops: PeerDrops,
    /// QKD keys for this peer.
    pub qkd: QkdStatus,
}

/// QKD key use for one peer.
#[derive(Debug, Clone, Serialize)]
pub struct QkdStatus {
    /// `disable`, `allow` or `require`.
    pub policy: &'static str,
    /// QKD keys received from the KME and mixed into sessions (one per handshake).
    pub keys_consumed: u64,
    /// Requests the KME failed (down, slow, out of keys, nonsense).
    pub failures: u64,
    /// Sessions made without a QKD key under `allow`.
    pub fallbacks: u64,
    /// A request to the KME is outstanding.
    pub waiting_for_kme: bool,
    /// The last failure, if any since the last key.
    pub last_error: Option<String>,
    /// Under `require` after a failure: seconds until the next request.
    pub retry_in_seconds: Option<f64>,
}

/// The key in use for a peer.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// Session sequence number.
    pub epoch: u64,
    /// Our role in its handshake.
    pub role: Role,
    /// Seconds since it was established.
    pub age_seconds: f64,
    /// Inner bytes sent under it.
    pub bytes_sent: u64,
    /// Inner bytes received under it.
    pub bytes_received: u64,
    /// Packets sent under it.
    pub packets_sent: u64,
    /// Packets received under it.
    pub packets_received: u64,
    /// Bytes left before the soft budget starts a rotation (0 when due).
    pub rekey_in_bytes: u64,
    /// Seconds left before the soft budget starts a rotation (0 when due).
    pub rekey_in_seconds: f64,
    /// Bytes left before the hard budget refuses the key.
    pub reject_in_bytes: u64,
    /// Seconds left before the hard budget refuses the key.
    pub reject_in_seconds: f64,
    /// Packets left under the cipher's usage limit.
    pub packets_left: u64,
    /// Key sources mixed into it.
    pub sources: Vec<&'static str>,
    /// The QKD key's ETSI `key_ID`, when one was mixed in.
    pub qkd_key_id: Option<String>,
}

/// The whole interface in `qshield status`.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    /// Peers, in config order.
    pub peers: Vec<PeerStatus>,
    /// Drops not charged to a peer.
    pub drops: InterfaceDrops,
}
