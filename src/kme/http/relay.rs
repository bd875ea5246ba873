//! `POST /kme/v1/relay`, both ends: the master's KME sends the first hop
//! ([`relay_out`]), each KME on the route serves a hop ([`relay_in`]) and sends the next.
//! The planning and masking are [`crate::kme::relay`]'s.

use crate::kme::error::ApiError;
use crate::kme::metrics::{LinkCounter, PairCounter};
use crate::kme::neighbours::error_message;
use crate::kme::pools::Direction;
use crate::kme::relay::{RelayRequest, check_route, decode_keys, hop, request, send_dir, short};
use crate::kme::routes;
use crate::kme::state::Shared;
use crate::kme::store::NewKey;
use crate::kme::tls::Caller;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use std::sync::Arc;
use zeroize::Zeroizing;

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
    let masked = crate::kme::store::xor_split(&plain, &pad.bytes);
    let req = request(master, slave, route, pad.ranges, &keys, &masked);
    send_hop(shared, first, &req).await?;
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    shared.pools.mark_master_delivered(ids).await?;
    shared
        .metrics
        .pair_add(master, slave, PairCounter::KeysRelayed, keys.len() as u64);
    Ok(keys)
}

async fn send_hop(shared: &Arc<Shared>, peer: &str, req: &RelayRequest) -> Result<(), ApiError> {
    shared.metrics.link_add(peer, LinkCounter::RelaysSent, 1);
    let resp = shared
        .neighbours
        .to(peer)
        .post(routes::RELAY)
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
    let body = resp.bytes().await.unwrap_or_default();
    let msg = error_message(&body).unwrap_or_else(|| "relay failed".to_string());
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
    // whatever becomes of this relay, its sender has spent its pad up to the ranges' end
    shared
        .passed_pads
        .note(&caller, from_dir, &req.pads, std::time::Instant::now());
    let (masked, ids) = decode_keys(&req)?;
    if req.route.first() != Some(&shared.cfg.id) {
        return Err(ApiError::bad("relay route does not start at this KME"));
    }
    if let Err(e) = check_route(&shared.cfg, &caller, &req) {
        tracing::warn!(peer = %caller, master = %req.master, slave = %req.slave, route = ?req.route, "relay refused: {e:?}");
        return Err(e);
    }
    // A relay of a configured route refused from here on (an alarm, a short pool further
    // on): no relay can use the pad it names (its sender spent it), so this copy goes now
    // rather than with the orphan sweep. (A hop that failed after spending it here leaves
    // nothing to discard; a relay refused above spends nothing, as a forged one must not.)
    let served = serve(&shared, &caller, from_dir, &req, masked, &ids).await;
    if served.is_err() {
        let link = shared.pools.link(&caller);
        match link.discard_ranges(from_dir, req.pads.clone()).await {
            Ok(0) => {}
            Ok(bytes) => {
                tracing::debug!(peer = %caller, bits = 8 * bytes, "discarded the pad of a refused relay")
            }
            Err(e) => tracing::warn!(peer = %caller, "discarding the pad of a refused relay: {e}"),
        }
    }
    served
}

/// One relay hop from `caller` whose route was checked; its request names pad of
/// `from_dir`, and `masked` carries its keys (IDs `ids`).
async fn serve(
    shared: &Arc<Shared>,
    caller: &str,
    from_dir: Direction,
    req: &RelayRequest,
    masked: Vec<Zeroizing<Vec<u8>>>,
    ids: &[String],
) -> Result<Json<serde_json::Value>, ApiError> {
    shared
        .metrics
        .link_add(caller, LinkCounter::RelaysReceived, 1);
    shared.refuse_if_alarm(caller)?;
    if let Some(next) = req.route.get(1) {
        shared.refuse_if_alarm(next)?;
    }
    let bytes: usize = masked.iter().map(|m| m.len()).sum();
    let next = req.route.get(1).cloned();
    let forwarded = hop(shared, caller, from_dir, req, masked, ids).await?;
    shared
        .metrics
        .link_add(caller, LinkCounter::ConsumedBits, 8 * bytes as u64);
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
        send_hop(shared, &next, &out).await?;
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
