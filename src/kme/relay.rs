//! Trusted-node relay: an end-to-end key K travels hop by hop, one-time-padded on each
//! link with that link's keys (`K ⊕ L_i`), over `POST /kme/v1/relay` (mutual TLS,
//! synchronous; sent and served by [`super::http::relay`]). Each hop spends |K| bits of
//! its incoming link (to unmask) and |K| of its outgoing link (to re-mask) in one store
//! commit; the last KME stores K for its slave. The master gets its keys only when the
//! whole path answered 200. A short pool anywhere is a 503 and no key is delivered; pad
//! already spent on earlier hops stays spent (a one-time pad is never reused).
//!
//! A key relayed in shares (`relay = "multipath"`) is one such relay per share, each over
//! its own path and tagged with a [`ShareTag`]; the slave's KME stores the key only when
//! every share has arrived ([`super::shares_in`]).
//!
//! This module owns the hop planning and masking: the body of a hop, the route check, the
//! pad directions, the store's hop. No HTTP in it.

use super::config::{KmeConfig, MULTIPATH_PATHS_MAX, SaeHome};
use super::error::ApiError;
use super::metrics::LinkCounter;
use super::pools::Direction;
use super::refusal::Shortage;
use super::state::Shared;
use super::store::{HopAction, HopOutcome, PadRange, Secret, StoreError};
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

/// Which share of its keys a relay carries (`relay = "multipath"`): the keys are the XOR of
/// `count` shares, this relay's are share `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareTag {
    /// This share, from 0.
    pub index: u8,
    /// Shares in all (2 to [`MULTIPATH_PATHS_MAX`]).
    pub count: u8,
}

/// `POST /kme/v1/relay` body.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayRequest {
    /// Master SAE.
    pub master: String,
    /// Slave SAE.
    pub slave: String,
    /// The KMEs the relay has passed: the master's KME first, the sender last.
    pub passed: Vec<String>,
    /// The remaining path: the receiving KME first, the slave's KME last.
    pub route: Vec<String>,
    /// Set when the keys travel in shares: which one this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<ShareTag>,
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
    let dir =
        send_dir(shared, peer).ok_or_else(|| ApiError::unavailable(Shortage::NoPath, "no link"))?;
    let levels = shared.pools.link(peer).levels().await?;
    Ok(8 * match dir {
        Direction::LeaderSends => levels.leader_sends_bytes,
        Direction::FollowerSends => levels.follower_sends_bytes,
    })
}

pub fn short(shared: &Shared, peer: &str, master: &str, slave: &str, e: StoreError) -> ApiError {
    if matches!(e, StoreError::Short { .. }) {
        shared
            .metrics
            .link_add(peer, LinkCounter::Refused(Shortage::NoKeyMaterial), 1);
        tracing::info!(peer, master, slave, "relay refused: {e}");
    }
    e.into()
}

/// Where a relay goes: its pair, the KMEs passed (this one last) and the rest of its path.
pub struct RelayPath<'a> {
    /// Master SAE.
    pub master: &'a str,
    /// Slave SAE.
    pub slave: &'a str,
    /// KMEs passed, this KME last.
    pub passed: Vec<String>,
    /// The rest of the path, the next KME first.
    pub route: &'a [String],
    /// The share carried, if any.
    pub share: Option<ShareTag>,
}

pub fn request(
    path: &RelayPath<'_>,
    pads: Vec<PadRange>,
    ids: &[String],
    masked: &[Zeroizing<Vec<u8>>],
) -> RelayRequest {
    RelayRequest {
        master: path.master.to_string(),
        slave: path.slave.to_string(),
        passed: path.passed.clone(),
        route: path.route.to_vec(),
        share: path.share,
        pads,
        keys: ids
            .iter()
            .zip(masked)
            .map(|(id, m)| RelayKey {
                key_ID: id.clone(),
                masked: B64.encode(m),
            })
            .collect(),
    }
}

/// A relay from neighbour `caller` must be for a configured pair and go from the master's
/// KME to the slave's without a loop: the KMEs it passed start at the KME that hosts the
/// master (by this KME's config) and end at `caller`; no KME appears twice on the whole
/// path; its route ends at the slave's KME (here, if the slave is attached here). Whether
/// the next hop is a link of this KME is the hop's check. Checked before any pad is spent.
pub fn check_route(cfg: &KmeConfig, caller: &str, req: &RelayRequest) -> Result<(), ApiError> {
    let refuse = |why: String| ApiError::bad(format!("relay route refused: {why}"));
    if req.passed.last().map(String::as_str) != Some(caller) {
        return Err(refuse(format!(
            "the KMEs it passed ({:?}) do not end at its sender '{caller}'",
            req.passed
        )));
    }
    let mut seen: Vec<&str> = Vec::new();
    for hop in req.passed.iter().chain(&req.route) {
        if seen.contains(&hop.as_str()) {
            return Err(refuse(format!("it visits '{hop}' twice")));
        }
        seen.push(hop);
    }
    if let Some(ShareTag { index, count }) = req.share
        && (!(2..=MULTIPATH_PATHS_MAX).contains(&usize::from(count)) || index >= count)
    {
        return Err(refuse(format!(
            "share {index} of {count}: a key is split into 2 to {MULTIPATH_PATHS_MAX} shares"
        )));
    }
    if cfg.pair(&req.master, &req.slave).is_none() {
        return Err(ApiError::pair_not_allowed(&req.master, &req.slave));
    }
    let (master, slave, origin) = (&req.master, &req.slave, &req.passed[0]);
    match cfg.sae_home(master) {
        Some(SaeHome::Remote(r)) if r.kme == *origin => {}
        Some(SaeHome::Remote(r)) => {
            return Err(refuse(format!(
                "keys of master '{master}' come from '{origin}', but '{master}' is at '{}'",
                r.kme
            )));
        }
        Some(SaeHome::Local) => {
            return Err(refuse(format!(
                "master '{master}' is attached to this KME, keys for it come from no neighbour"
            )));
        }
        None => return Err(refuse(format!("master '{master}' is unknown here"))),
    }
    if let Some(next) = req.route.get(1)
        && !cfg.is_neighbour(next)
    {
        return Err(refuse(format!(
            "the next hop '{next}' is not a link of '{}'",
            cfg.id
        )));
    }
    let last = req.route.last().map_or("", String::as_str);
    match cfg.sae_home(slave) {
        Some(SaeHome::Local) if req.route.len() == 1 => Ok(()),
        Some(SaeHome::Remote(r)) if req.route.len() > 1 && last == r.kme => Ok(()),
        Some(SaeHome::Local) => Err(refuse(format!(
            "slave '{slave}' is attached to this KME, but the route goes on to '{last}'"
        ))),
        Some(SaeHome::Remote(r)) => Err(refuse(format!(
            "the route ends at '{last}', but slave '{slave}' is at '{}'",
            r.kme
        ))),
        None => Err(refuse(format!("slave '{slave}' is unknown here"))),
    }
}

/// One hop at this KME: spends the incoming pad and forwards the keys re-masked, stores
/// them for the local slave, or (a share at its last KME) gives them back unmasked.
pub async fn hop(
    shared: &Arc<Shared>,
    caller: &str,
    from_dir: Direction,
    req: &RelayRequest,
    masked: Vec<Zeroizing<Vec<u8>>>,
    ids: &[String],
) -> Result<HopOutcome, ApiError> {
    let next = match req.route.get(1) {
        Some(n) => Some((
            n.clone(),
            send_dir(shared, n).ok_or_else(|| {
                ApiError::bad(format!(
                    "relay route refused: the next hop '{n}' is not a link of '{}'",
                    shared.cfg.id
                ))
            })?,
        )),
        None if shared.cfg.saes.contains(&req.slave) => None,
        None => return Err(ApiError::bad("the slave SAE is not attached to this KME")),
    };
    let next_peer = next.as_ref().map(|n| n.0.clone());
    let max_pending = shared.cfg.limits.max_key_count;
    let deadline_ms = shared.expiry_deadline_ms();
    let action = match next {
        Some((peer, dir)) => HopAction::Forward { peer, dir },
        None if req.share.is_some() => HopAction::Unmask,
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
