//! Trusted-node relay (research/qkd-kms.md §6): an end-to-end key K travels hop by hop,
//! one-time-padded on each link with that link's keys (`K ⊕ L_i`), over
//! `POST /kme/v1/relay` (mutual TLS, synchronous). Each hop spends |K| bits of its incoming
//! link (to unmask) and |K| of its outgoing link (to re-mask) in one store commit; the last
//! KME stores K for its slave. The master gets its keys only when the whole path answered
//! 200. A short pool anywhere is a 503 and no key is delivered; pad already spent on earlier
//! hops stays spent (a one-time pad is never reused).

use super::api::ApiError;
use super::config::KmeConfig;
use super::metrics::{LinkCounter, PairCounter};
use super::pools::Direction;
use super::server::Shared;
use super::store::{HopAction, Masked, NewKey, PadRange, Secret, StoreError};
use super::tls::Caller;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
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
fn send_dir(shared: &Shared, peer: &str) -> Option<Direction> {
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

fn short(shared: &Shared, peer: &str, master: &str, slave: &str, e: StoreError) -> ApiError {
    if matches!(e, StoreError::Short { .. }) {
        shared.metrics.link_add(peer, LinkCounter::Errors503, 1);
        tracing::info!(peer, master, slave, "relay refused: {e}");
    }
    e.into()
}

/// At the master's KME: relays `keys` to `slave` along `route`; returns them once the
/// whole path has stored them.
pub async fn relay_out(
    shared: &Arc<Shared>,
    master: &str,
    slave: &str,
    route: &[String],
    keys: Vec<NewKey>,
) -> Result<Vec<NewKey>, ApiError> {
    let first = &route[0];
    let dir = send_dir(shared, first).ok_or_else(|| ApiError::unavailable("no link"))?;
    shared.refuse_if_alarm(first)?;
    let total: usize = keys.iter().map(|k| k.bytes.len()).sum();
    let pad = shared
        .pools
        .link(first)
        .take_pad(dir, total)
        .await
        .map_err(|e| short(shared, first, master, slave, e))?;
    shared
        .metrics
        .link_add(first, LinkCounter::ConsumedBits, 8 * total as u64);
    let plain: Vec<Zeroizing<Vec<u8>>> = keys.iter().map(|k| k.bytes.clone()).collect();
    let masked = super::store::xor_split(&plain, &pad.bytes);
    let req = request(master, slave, route, pad.ranges, &keys, &masked);
    send_hop(shared, first, &req).await?;
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    shared.pools.mark_master_delivered(ids).await?;
    shared
        .metrics
        .pair_add(master, slave, PairCounter::KeysRelayed, keys.len() as u64);
    Ok(keys)
}

fn request(
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

async fn send_hop(shared: &Arc<Shared>, peer: &str, req: &RelayRequest) -> Result<(), ApiError> {
    let link = shared.cfg.links.iter().find(|l| l.peer == peer);
    let port = link.map_or(0, |l| l.addr.port());
    let url = format!("https://{peer}:{port}/kme/v1/relay");
    shared.metrics.link_add(peer, LinkCounter::RelaysSent, 1);
    let resp = shared
        .peers
        .post(&url)
        .json(req)
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(peer, "relay hop unreachable: {e}");
            ApiError::unavailable(format!("relay hop '{peer}' unreachable"))
        })?;
    if resp.status().is_success() {
        return Ok(());
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let msg = body["message"]
        .as_str()
        .unwrap_or("relay failed")
        .to_string();
    Err(ApiError::unavailable(format!(
        "{msg} (at or beyond '{peer}')"
    )))
}

/// `POST /kme/v1/relay` from a neighbour KME: unmask with the incoming link, then re-mask
/// and forward, or store for the local slave.
pub async fn relay_in(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(my_dir) = send_dir(&shared, &caller) else {
        return Err(ApiError::Unauthorized);
    };
    let from_dir = my_dir.opposite();
    let req: RelayRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_detail("Bad request format", "body", e.to_string()))?;
    let (masked, ids) = decode_keys(&req)?;
    if req.route.first() != Some(&shared.cfg.id) {
        return Err(ApiError::bad("relay route does not start at this KME"));
    }
    if let Err(e) = check_route(&shared.cfg, &caller, &req) {
        tracing::warn!(peer = %caller, master = %req.master, slave = %req.slave, route = ?req.route, "relay refused: {e:?}");
        return Err(e);
    }
    shared
        .metrics
        .link_add(&caller, LinkCounter::RelaysReceived, 1);
    shared.refuse_if_alarm(&caller)?;
    if let Some(next) = req.route.get(1) {
        shared.refuse_if_alarm(next)?;
    }
    let bytes: usize = masked.iter().map(|m| m.len()).sum();
    let next = req.route.get(1).cloned();
    let forwarded = hop(&shared, &caller, from_dir, &req, masked, &ids).await?;
    shared
        .metrics
        .link_add(&caller, LinkCounter::ConsumedBits, 8 * bytes as u64);
    if let (Some(next), Some((pads, masked))) = (next, forwarded) {
        shared
            .metrics
            .link_add(&next, LinkCounter::ConsumedBits, 8 * bytes as u64);
        let keys: Vec<NewKey> = ids
            .iter()
            .map(|id| NewKey {
                id: id.clone(),
                bytes: Zeroizing::new(Vec::new()),
            })
            .collect();
        let out = request(
            &req.master,
            &req.slave,
            &req.route[1..],
            pads,
            &keys,
            &masked,
        );
        send_hop(&shared, &next, &out).await?;
    } else {
        shared.metrics.pair_add(
            &req.master,
            &req.slave,
            PairCounter::KeysRelayed,
            ids.len() as u64,
        );
    }
    Ok(Json(serde_json::json!({})))
}

/// A relay from neighbour `caller` must be for a configured pair and follow this KME's
/// configuration at both ends: no KME twice (the sender included), the sender is this KME's
/// first hop towards the master's KME, and the rest of the route is this KME's configured
/// route to the slave (empty if the slave is attached here). Checked before any pad is
/// spent.
fn check_route(cfg: &KmeConfig, caller: &str, req: &RelayRequest) -> Result<(), ApiError> {
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

type Forwarded = Option<Masked>;

async fn hop(
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
    let deadline_ms = super::api::expiry_deadline_ms(shared);
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

fn decode_keys(req: &RelayRequest) -> Result<(Vec<Secret>, Vec<String>), ApiError> {
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
