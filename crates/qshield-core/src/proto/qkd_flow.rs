//! QKD keys in the handshake, under the peer's policy (FortiGate's names):
//! `require` (no QKD key, no new session: the current key carries traffic until its hard
//! limit, then traffic stops — fail closed — and resumes when keys return), `allow` (fall back
//! to the hybrid handshake alone, loudly: an event and a counter), `disable`.
//!
//! The core never talks to a KME. It asks for a key with a [`QkdRequest`] (drained by the
//! runtime with [`Endpoint::poll_qkd_request`]) and is handed the answer with
//! [`Endpoint::handle_qkd_key`]. The initiator asks for a new key (ETSI `enc_keys`) before
//! its initiation; the responder asks for the key the initiation names (`dec_keys`) before its
//! response. Nothing on the data path waits for a KME.
//!
//! This module holds the policy and the request the runtime sees; the endpoint's side of
//! the flow (what waits for which key, retries, late keys) is in `endpoint/qkd.rs`.

#[cfg(doc)]
use super::endpoint::Endpoint;
use super::peer_id::PeerId;
use super::time::Instant;

/// How a site uses QKD keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QkdPolicy {
    /// Never ask for QKD keys.
    #[default]
    Disable,
    /// Use QKD keys when they come; fall back to the hybrid handshake, loudly.
    Allow,
    /// No QKD key, no new session.
    Require,
}

impl QkdPolicy {
    /// The config and status name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Require => "require",
        }
    }
}

/// A key the core needs from the KME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QkdRequest {
    /// Answer with this ID in [`Endpoint::handle_qkd_key`].
    pub id: u64,
    /// The peer the key is shared with.
    pub peer: PeerId,
    /// `None`: a new key (`enc_keys`, we are the master SAE); `Some`: the key with this ID
    /// (`dec_keys`, the peer is the master SAE).
    pub key_id: Option<String>,
    /// The core stops waiting for the answer then: a request not yet sent to the KME by this
    /// time must not be (see also [`Endpoint::qkd_request_wanted`]).
    pub deadline: Instant,
}
