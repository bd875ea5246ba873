//! Probes for tests that run an endpoint for a long (simulated) time: how large each of its
//! tables and queues is ([`Endpoint::state_sizes`]), which sessions it holds
//! ([`Endpoint::session_probes`]), and one hook that moves a send counter forward
//! ([`Endpoint::skip_send_counter_to`]) so a key reaches its packet cap without sealing
//! 2^26 packets. Hidden from the docs: the daemon uses none of them.

use super::Endpoint;
use crate::proto::PeerId;
use crate::proto::session::Usage;

/// How large each table and queue of an endpoint is at one instant.
#[doc(hidden)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateSizes {
    /// Session indices held (all peers: sessions and handshakes in flight).
    pub indices: usize,
    /// Reassembly slots held (messages in progress and completed initiations kept).
    pub reassembly_slots: usize,
    /// Sources the handshake rate limiter tracks.
    pub limiter_sources: usize,
    /// Datagrams waiting for [`Endpoint::poll_transmit`].
    pub transmits_queued: usize,
    /// Events waiting for [`Endpoint::poll_event`].
    pub events_queued: usize,
    /// QKD requests waiting for [`Endpoint::poll_qkd_request`].
    pub qkd_requests_queued: usize,
    /// Each peer's, in config order.
    pub peers: Vec<PeerSizes>,
}

/// How large one peer's state is.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerSizes {
    /// Sessions held (previous, current, next).
    pub sessions: usize,
    /// Inner packets staged while no session can carry them.
    pub staged: usize,
    /// QKD requests the peer's handshakes wait for (ours, the peer's initiation's).
    pub qkd_requests_outstanding: usize,
    /// QKD keys and requests kept for later: a spare key, a late key, a cancelled
    /// `enc_keys` and an abandoned `dec_keys` request.
    pub qkd_kept: usize,
}

/// One session an endpoint holds.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionProbe {
    /// Its epoch (per peer).
    pub epoch: u64,
    /// True when we initiated its handshake.
    pub is_initiator: bool,
    /// The QKD key_ID mixed into it, if any.
    pub qkd_key_id: Option<String>,
    /// Its traffic counters.
    pub usage: Usage,
    /// Packets it may still seal before the cipher's cap.
    pub packets_left: u64,
}

impl Endpoint {
    /// The size of every table and queue now.
    #[doc(hidden)]
    pub fn state_sizes(&self) -> StateSizes {
        StateSizes {
            indices: self.indices.len(),
            reassembly_slots: self.reassembler.slots(),
            limiter_sources: self.limiter.sources(),
            transmits_queued: self.transmits.len(),
            events_queued: self.events.len(),
            qkd_requests_queued: self.qkd_requests.len(),
            peers: self
                .peers
                .values()
                .map(|p| PeerSizes {
                    sessions: [&p.previous, &p.current, &p.next]
                        .iter()
                        .filter(|s| s.is_some())
                        .count(),
                    staged: p.staged.len(),
                    qkd_requests_outstanding: usize::from(p.qkd_pending.is_some())
                        + usize::from(p.qkd_answering.is_some()),
                    qkd_kept: usize::from(p.qkd.spare_key.is_some())
                        + usize::from(p.qkd.late_key.is_some())
                        + usize::from(p.qkd.cancelled_enc_keys.is_some())
                        + usize::from(p.qkd.abandoned_dec_keys.is_some()),
                })
                .collect(),
        }
    }

    /// The sessions peer `peer` holds (previous, current, next, those present).
    #[doc(hidden)]
    pub fn session_probes(&self, peer: PeerId) -> Vec<SessionProbe> {
        let Some(p) = self.peers.get(peer) else {
            return Vec::new();
        };
        [&p.previous, &p.current, &p.next]
            .into_iter()
            .flatten()
            .map(|s| SessionProbe {
                epoch: s.epoch,
                is_initiator: s.is_initiator,
                qkd_key_id: s.qkd_key_id.clone(),
                usage: s.usage,
                packets_left: s.packets_left(),
            })
            .collect()
    }

    /// Moves the send counter of peer `peer`'s current session forward to `counter` (never
    /// back, so no counter value is used twice); false when there is no such session.
    #[doc(hidden)]
    pub fn skip_send_counter_to(&mut self, peer: PeerId, counter: u64) -> bool {
        if self.peers.get(peer).is_none() {
            return false;
        }
        match self.peers[peer].current.as_mut() {
            Some(s) => {
                s.skip_send_counter_to(counter);
                true
            }
            None => false,
        }
    }
}
