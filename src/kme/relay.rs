//! Trusted-node relay: an end-to-end key K travels hop by hop, one-time-padded on each
//! link with that link's keys (`K ⊕ L_i`), over `POST /kme/v1/relay` (mutual TLS,
//! synchronous; sent and served by [`super::http::relay`]). Each hop spends |K| bits of
//! its incoming link (to unmask) and |K| of its outgoing link (to re-mask) in one store
//! commit; the last KME stores K for its slave. The master gets its keys only when the
//! whole path answered 200. A short pool anywhere is a 503 and no key is delivered; pad
//! already spent on earlier hops stays spent (a one-time pad is never reused).
//!
//! This module owns the hop planning and masking: the body of a hop, the route check, the
//! pad directions, the store's hop. No HTTP in it.

use super::config::KmeConfig;
use super::error::ApiError;
use super::metrics::LinkCounter;
use super::pools::Direction;
use super::state::Shared;
use super::store::{HopAction, Masked, NewKey, PadRange, Secret, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zeroize::Zeroizing;

/// One masked key of a relay hop.
#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct RelayKey {
    /// The end-to-end key ID.
    pub key_ID: String,
    /// K ⊕ L_i, base64.
    pub masked: String,
}

/// `POST /kme/v1/relay` body.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayRequest {
    /// Master SAE.
    pub master: String,
    /// Slave SAE.
    pub slave: String,
    /// The remaining path: the receiving KME first, the slave's KME last.
    pub route: Vec<String>,
    /// Where the pad bytes sit in the sender's link pool, in order.
    pub pads: Vec<PadRange>,
    /// The masked keys.
    pub keys: Vec<RelayKey>,
}

/// The direction this KME spends when sending over the link to `peer`.
pub fn send_dir(shared: &Shared, peer: &str) -> Option<Direction> {
    let link = shared.cfg.links.iter().find(|l| l.peer == peer)?;
    Some(Direction::sent_by(link.role))
}

/// Unspent bits this KME may send over the link to `peer`.
pub async fn send_pool_bits(shared: &Arc<Shared>, peer: &str) -> Result<u64, ApiError> {
    let dir = send_dir(shared, peer).ok_or_else(|| ApiError::unavailable("no link"))?;
    let levels = shared.pools.link(peer).levels().await?;
    Ok(8 * match dir {
        Direction::LeaderSends => levels.leader_sends_bytes,
        Direction::FollowerSends => levels.follower_sends_bytes,
    })
}

pub fn short(shared: &Shared, peer: &str, master: &str, slave: &str, e: StoreError) -> ApiError {
    if matches!(e, StoreError::Short { .. }) {
        shared.metrics.link_add(peer, LinkCounter::Errors503, 1);
        tracing::info!(peer, master, slave, "relay refused: {e}");
    }
    e.into()
}

pub fn request(
    master: &str,
    slave: &str,
    route: &[String],
    pads: Vec<PadRange>,
    keys: &[NewKey],
    masked: &[Zeroizing<Vec<u8>>],
) -> RelayRequest {
    RelayRequest {
        master: master.to_string(),
        slave: slave.to_string(),
        route: route.to_vec(),
        pads,
        keys: keys
            .iter()
            .zip(masked)
            .map(|(k, m)| RelayKey {
                key_ID: k.id.clone(),
                masked: B64.encode(m),
            })
            .collect(),
    }
}

/// A relay from neighbour `caller` must be for a configured pair and follow this KME's
/// configuration at both ends: no KME twice (the sender included), the sender is this KME's
/// first hop towards the master's KME, and the rest of the route is this KME's configured
/// route to the slave (empty if the slave is attached here). Checked before any pad is
/// spent.
pub fn check_route(cfg: &KmeConfig, caller: &str, req: &RelayRequest) -> Result<(), ApiError> {
    let refuse = |why: String| ApiError::bad(format!("relay route refused: {why}"));
    let mut seen: Vec<&str> = vec![caller];
    for hop in &req.route {
        if seen.contains(&hop.as_str()) {
            return Err(refuse(format!("it visits '{hop}' twice")));
        }
        seen.push(hop);
    }
    if cfg.pair(&req.master, &req.slave).is_none() {
        return Err(ApiError::pair_not_allowed(&req.master, &req.slave));
    }
    let (master, slave) = (&req.master, &req.slave);
    match cfg.sae_route(master) {
        Some(Some(back)) if back.first().map(String::as_str) == Some(caller) => {}
        Some(Some(back)) => {
            let first = back.first().map_or("", String::as_str);
            return Err(refuse(format!(
                "keys of master '{master}' come from '{caller}', but this KME's route to '{master}' starts at '{first}'"
            )));
        }
        Some(None) => {
            return Err(refuse(format!(
                "master '{master}' is attached to this KME, keys for it come from no neighbour"
            )));
        }
        None => return Err(refuse(format!("master '{master}' is unknown here"))),
    }
    let rest = &req.route[1..];
    match cfg.sae_route(slave) {
        Some(None) if rest.is_empty() => Ok(()),
        Some(Some(route)) if route == rest => Ok(()),
        Some(expected) => {
            let expected = expected.map_or_else(Vec::new, <[String]>::to_vec);
            Err(refuse(format!(
                "{rest:?} after this KME is not the configured route to slave '{slave}' ({expected:?})"
            )))
        }
        None => Err(refuse(format!("slave '{slave}' is unknown here"))),
    }
}

pub type Forwarded = Option<Masked>;

pub async fn hop(
    shared: &Arc<Shared>,
    caller: &str,
    from_dir: Direction,
    req: &RelayRequest,
    masked: Vec<Zeroizing<Vec<u8>>>,
    ids: &[String],
) -> Result<Forwarded, ApiError> {
    let next = match req.route.get(1) {
        Some(n) => Some((
            n.clone(),
            send_dir(shared, n).ok_or_else(|| ApiError::bad("no link to the next hop"))?,
        )),
        None if shared.cfg.saes.contains(&req.slave) => None,
        None => return Err(ApiError::bad("the slave SAE is not attached to this KME")),
    };
    let next_peer = next.as_ref().map(|n| n.0.clone());
    let max_pending = shared.cfg.limits.max_key_count;
    let deadline_ms = shared.expiry_deadline_ms();
    let action = match next {
        Some((peer, dir)) => HopAction::Forward { peer, dir },
        None => HopAction::Deliver {
            master: req.master.clone(),
            slave: req.slave.clone(),
            ids: ids.to_vec(),
            max_pending,
            deadline_ms,
        },
    };
    shared
        .pools
        .relay_hop(caller, from_dir, req.pads.clone(), masked, action)
        .await
        .map_err(|e| match &next_peer {
            Some(p) => short(shared, p, &req.master, &req.slave, e),
            None => e.into(),
        })
}

pub fn decode_keys(req: &RelayRequest) -> Result<(Vec<Secret>, Vec<String>), ApiError> {
    let mut masked = Vec::with_capacity(req.keys.len());
    for k in &req.keys {
        let m = B64
            .decode(&k.masked)
            .map_err(|_| ApiError::bad("Bad request format: base64"))?;
        masked.push(Zeroizing::new(m));
    }
    let total: usize = masked.iter().map(|m| m.len()).sum();
    let pad_total: usize = req.pads.iter().map(|p| p.len as usize).sum();
    if total != pad_total || masked.is_empty() {
        return Err(ApiError::bad(
            "Bad request format: pad and key lengths differ",
        ));
    }
    Ok((masked, req.keys.iter().map(|k| k.key_ID.clone()).collect()))
}
