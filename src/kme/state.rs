//! The state every HTTP handler shares ([`Shared`]): the config, the pools, the counters,
//! the neighbour client, the CV-QKD board and Bob's ends, the quotas, the link state. It builds a link
//! task's [`LinkContext`] (only what one link uses). Imports no handler and no wiring.

use super::config::{KmeConfig, LinkConfig};
use super::error::ApiError;
use super::link::LinkContext;
use super::link::cvqkd::board::Board;
use super::link::cvqkd::follower::FollowerLink;
use super::metrics::{LinkCounter, Metrics};
use super::neighbours::Neighbours;
use super::passed_pads::PassedPads;
use super::pools::{Pools, unix_ms};
use super::quota::Quotas;
use super::refusal::Shortage;
use super::routing::Routing;
use super::shares_in::SharesIn;
use super::tls::NEIGHBOUR_CALL_TIMEOUT;
use std::collections::BTreeMap;
use std::sync::Arc;

/// State shared by every handler.
pub struct Shared {
    /// The configuration.
    pub cfg: KmeConfig,
    /// The durable store, behind its async facade.
    pub pools: Pools,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The client for calls to neighbour KMEs (this KME's certificate).
    pub neighbours: Neighbours,
    /// Figures and alarms of the CV-QKD links.
    pub cvqkd: Arc<Board>,
    /// Bob's end of each CV-QKD link this KME follows, by the leader's ID.
    pub followers: BTreeMap<String, Arc<FollowerLink>>,
    /// The rate and volume buckets of `[[sae]]` and `[[sae_pair]]` limits.
    pub quotas: Quotas,
    /// Pad the neighbours showed spent, to discard when their relays never arrive.
    pub passed_pads: PassedPads,
    /// The key network's link state, as adverts tell it, and the recent relays.
    pub routing: Routing,
    /// Shares of keys relayed in parts, waiting for the rest (at the slave's KME).
    pub shares_in: SharesIn,
}

impl Shared {
    /// The alarm of the link to `peer` (or its being out of service), as a 503 to refuse a
    /// relay over it.
    pub fn refuse_if_alarm(&self, peer: &str) -> Result<(), ApiError> {
        let alarm = self.cvqkd.alarm(peer).or_else(|| {
            self.routing
                .out_of_service(peer)
                .then(|| "taken out of service".to_string())
        });
        match alarm {
            None => Ok(()),
            Some(why) => {
                self.metrics
                    .link_add(peer, LinkCounter::Refused(Shortage::LinkAlarm), 1);
                Err(ApiError::unavailable(
                    Shortage::LinkAlarm,
                    format!(
                        "QKD link to '{peer}' is under alarm ({why}); nothing is relayed over it"
                    ),
                ))
            }
        }
    }

    /// When a key stored now for a slave expires (`pending_key_expiry`), Unix ms.
    pub fn expiry_deadline_ms(&self) -> u64 {
        unix_ms().saturating_add(self.cfg.pending_key_expiry.as_millis() as u64)
    }

    /// How long a delivery record is kept, ms: while its key may still wait for its slave
    /// (`pending_key_expiry`) and a relay naming its ID may still be on its way
    /// ([`NEIGHBOUR_CALL_TIMEOUT`]). After that no request can name the ID to any effect.
    pub fn delivered_kept_ms(&self) -> u64 {
        (self.cfg.pending_key_expiry + NEIGHBOUR_CALL_TIMEOUT).as_millis() as u64
    }

    /// What a task of `link` is given: its pool, counters, neighbour and board.
    pub fn link_context(&self, link: &LinkConfig) -> LinkContext {
        LinkContext {
            link: link.clone(),
            pool: self.pools.link(&link.peer),
            metrics: self.metrics.link(&link.peer),
            neighbour: self.neighbours.to(&link.peer),
            board: self.cvqkd.clone(),
        }
    }
}
