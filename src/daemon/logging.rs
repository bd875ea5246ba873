//! Turns core events into log lines. Secrets never appear: events carry peer IDs (logged by
//! name), epochs, addresses and reasons only.

use crate::proto::events::{Event, InitiationReason};
use crate::proto::handshake::HandshakeError;

/// Logs one event at the level its consequence deserves; `peer_name` is the name of the
/// event's peer (see [`Event::peer`]), `None` when it has none or it is not known.
pub fn log_event(interface: &str, event: &Event, peer_name: Option<&str>) {
    let peer = peer_name.unwrap_or("unknown");
    match event {
        Event::HandshakeStarted { reason, .. } => log_started(interface, peer, *reason),
        Event::SessionEstablished {
            epoch,
            role,
            qkd,
            round_trip,
            local_index,
            remote_index,
            ..
        } => tracing::info!(
            interface, peer = %peer, epoch, role = ?role, qkd,
            round_trip_ms = round_trip.map(|d| d.as_secs_f64() * 1e3),
            local_index = %format_args!("{local_index:#010x}"),
            remote_index = %format_args!("{remote_index:#010x}"),
            "session established"
        ),
        Event::SessionConfirmed { epoch, .. } => {
            tracing::debug!(interface, peer = %peer, epoch, "peer switched to the new session")
        }
        Event::HandshakeRejected { from, error, .. } => log_rejected(interface, peer, *from, error),
        Event::InitiationIgnored { why, .. } => {
            tracing::debug!(interface, peer = %peer, why, "initiation ignored")
        }
        Event::BadMac1 { from } => tracing::warn!(
            interface, %from,
            "dropped handshake datagrams with an invalid mac1: the sender does not have this site's public key (check the peer's config)"
        ),
        Event::HandshakeStalled {
            attempts, waited, ..
        } => tracing::warn!(
            interface, peer = %peer, attempts, waited_s = waited.as_secs_f64(),
            gives_up_after_s = crate::constants::REKEY_ATTEMPT_TIME.as_secs(),
            "handshake not answered yet: no complete response from the peer (datagrams lost on the path, the peer down or unreachable, or it lacks this site's public key); still retrying"
        ),
        Event::HandshakeTimedOut { attempts, .. } => tracing::warn!(
            interface, peer = %peer, attempts,
            "no handshake response from the peer: check that it is running, that its endpoint is reachable, and that it has this site's public key"
        ),
        Event::SessionExpired { epoch, reason, .. } => {
            tracing::warn!(interface, peer = %peer, epoch, reason = ?reason, "key reached its hard limit and was dropped")
        }
        Event::EndpointChanged { to, .. } => {
            tracing::info!(interface, peer = %peer, endpoint = %to, "peer endpoint changed")
        }
        Event::QkdUnavailable { error, .. } => tracing::warn!(
            interface, peer = %peer, %error,
            "no QKD key and the QKD policy is \"require\": no new session (the current key carries traffic until its hard limit); retrying"
        ),
        Event::QkdFallback { reason, .. } => tracing::warn!(
            interface, peer = %peer, %reason,
            "QKD FALLBACK: this session rests on X25519 + ML-KEM-768 only (QKD policy \"allow\")"
        ),
        Event::CookieSent { to } => {
            tracing::debug!(interface, %to, "under load: sent a cookie reply")
        }
    }
}

fn log_started(interface: &str, peer: &str, reason: InitiationReason) {
    match reason {
        InitiationReason::Rekey(why) => {
            tracing::debug!(interface, peer, reason = ?why, "rotating key")
        }
        other => tracing::info!(interface, peer, reason = ?other, "starting handshake"),
    }
}

fn log_rejected(interface: &str, peer: &str, from: std::net::SocketAddr, error: &HandshakeError) {
    match error {
        HandshakeError::Wire(_) => {
            tracing::debug!(interface, peer, %from, %error, "handshake message refused")
        }
        _ => tracing::warn!(interface, peer, %from, %error, "handshake failed"),
    }
}
