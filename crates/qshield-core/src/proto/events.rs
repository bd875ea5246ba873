//! What the core tells the runtime: events worth a log line and datagrams to send (the
//! status snapshot behind `qshield status` is in [`super::status`]).

use super::handshake::HandshakeError;
use super::peer_id::PeerId;
use super::session::{ExpiryReason, RekeyReason};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// A datagram the core wants sent (handshake, cookie reply, keepalive, staged data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Underlay destination.
    pub to: SocketAddr,
    /// The datagram.
    pub payload: Vec<u8>,
}

/// Which side of a handshake this site played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// We sent the initiation.
    Initiator,
    /// We answered it.
    Responder,
}

/// Why a handshake was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiationReason {
    /// The daemon started and the peer has an endpoint.
    Startup,
    /// Traffic is waiting and no session can carry it.
    Traffic,
    /// The current key passed a soft budget.
    Rekey(RekeyReason),
    /// Data was sent but nothing came back for too long.
    DeadPeer,
}

/// Something the runtime should log or count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// We sent an initiation.
    HandshakeStarted {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: InitiationReason,
    },
    /// A new session exists. The initiator uses it at once; the responder after the first
    /// packet under it ([`Event::SessionConfirmed`]).
    SessionEstablished {
        /// The peer.
        peer: PeerId,
        /// Session sequence number.
        epoch: u64,
        /// Our role.
        role: Role,
        /// A QKD key was mixed in.
        qkd: bool,
        /// Initiation to response (initiator only).
        round_trip: Option<Duration>,
        /// Our index of the session (the peer's data to us carries it).
        local_index: u32,
        /// The peer's index of the session (our data to it carries it).
        remote_index: u32,
    },
    /// The responder saw the first packet under its new session and switched to it.
    SessionConfirmed {
        /// The peer.
        peer: PeerId,
        /// Session sequence number.
        epoch: u64,
    },
    /// A handshake message was refused.
    HandshakeRejected {
        /// The peer, when known.
        peer: Option<PeerId>,
        /// Underlay source.
        from: SocketAddr,
        /// Why.
        error: HandshakeError,
    },
    /// An initiation was dropped by policy (replay, rate, collision).
    InitiationIgnored {
        /// The peer.
        peer: PeerId,
        /// Why.
        why: &'static str,
    },
    /// A handshake datagram failed mac1: the sender lacks our public key.
    BadMac1 {
        /// Underlay source.
        from: SocketAddr,
    },
    /// Our handshake is still unanswered [`HANDSHAKE_STALLED_AFTER`] after its first
    /// initiation (reported once per handshake; retransmissions go on).
    ///
    /// [`HANDSHAKE_STALLED_AFTER`]: crate::constants::HANDSHAKE_STALLED_AFTER
    HandshakeStalled {
        /// The peer.
        peer: PeerId,
        /// Initiations sent so far.
        attempts: u32,
        /// Time since the first one.
        waited: Duration,
    },
    /// We gave up a handshake after retrying for the attempt time.
    HandshakeTimedOut {
        /// The peer.
        peer: PeerId,
        /// Initiations sent.
        attempts: u32,
    },
    /// A key passed a hard budget and was dropped.
    SessionExpired {
        /// The peer.
        peer: PeerId,
        /// Session sequence number.
        epoch: u64,
        /// Which budget.
        reason: ExpiryReason,
    },
    /// The peer's underlay address changed (roaming), learned from an authenticated packet.
    EndpointChanged {
        /// The peer.
        peer: PeerId,
        /// New address.
        to: SocketAddr,
    },
    /// Policy `require`: no QKD key, so no new session (the current key, if any, carries
    /// traffic until its hard limit); the request is retried.
    QkdUnavailable {
        /// The peer.
        peer: PeerId,
        /// What the KME (or the wait for it) said.
        error: String,
    },
    /// Policy `allow`: a session without a QKD key, on the hybrid handshake alone.
    QkdFallback {
        /// The peer.
        peer: PeerId,
        /// Why there was no QKD key.
        reason: String,
    },
    /// Under load: a cookie reply was sent instead of doing handshake work.
    CookieSent {
        /// Underlay destination.
        to: SocketAddr,
    },
}

impl Event {
    /// The peer the event is about, if it is about one.
    pub fn peer(&self) -> Option<PeerId> {
        match self {
            Self::HandshakeStarted { peer, .. }
            | Self::SessionEstablished { peer, .. }
            | Self::SessionConfirmed { peer, .. }
            | Self::InitiationIgnored { peer, .. }
            | Self::HandshakeStalled { peer, .. }
            | Self::HandshakeTimedOut { peer, .. }
            | Self::SessionExpired { peer, .. }
            | Self::EndpointChanged { peer, .. }
            | Self::QkdUnavailable { peer, .. }
            | Self::QkdFallback { peer, .. } => Some(*peer),
            Self::HandshakeRejected { peer, .. } => *peer,
            Self::BadMac1 { .. } | Self::CookieSent { .. } => None,
        }
    }
}
