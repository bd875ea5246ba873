//! `POST /kme/v1/relay`, both ends: the master's KME sends the first hop
//! ([`relay_out`]), each KME on the route serves a hop ([`relay_in`]) and sends the next.
//! The planning and masking are [`crate::kme::relay`]'s.

use crate::kme::config::RemoteSae;
use crate::kme::error::ApiError;
use crate::kme::metrics::{LinkCounter, PairCounter};
use crate::kme::neighbours::error_message;
use crate::kme::pools::Direction;
use crate::kme::pools::unix_ms;
use crate::kme::refusal::Shortage;
use crate::kme::relay::{
    RelayPath, RelayRequest, ShareTag, check_route, decode_keys, hop, request, send_dir, short,
};
use crate::kme::routes;
use crate::kme::routing::{self, RelayRecord};
use crate::kme::shares_in::Arrival;
use crate::kme::state::Shared;
use crate::kme::store::NewKey;
use crate::kme::store::{HopOutcome, Secret};
use crate::kme::tls::Caller;
use crate::kme::topology::shares;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use std::sync::Arc;
use zeroize::Zeroizing;

/// At the master's KME: relays `keys` to `slave` (hosted as `remote` says) over the path
/// the link state gives (or the configured route), whole over one path or in XOR shares
/// over node-disjoint ones; returns them once every path has delivered its part.
pub async fn relay_out(
    shared: &Arc<Shared>,
    master: &str,
    slave: &str,
    remote: &RemoteSae,
    keys: Vec<NewKey>,
) -> Result<Vec<NewKey>, ApiError> {
    let total: usize = keys.iter().map(|k| k.bytes.len()).sum();
    let paths = routing::choose_paths(shared, remote, 8 * total as u64).await?;
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    if let [route] = paths.as_slice() {
        let plain: Vec<Secret> = keys.iter().map(|k| k.bytes.clone()).collect();
        send_path(shared, master, slave, route, None, &ids, plain).await?;
    } else {
        let count = paths.len();
        let mut parts: Vec<Vec<Secret>> = vec![Vec::new(); count];
        for k in &keys {
            let split = shares::split(&k.bytes, count, |b| {
                aws_lc_rs::rand::fill(b).expect("system randomness")
            })
            .map_err(|e| ApiError::unavailable(Shortage::Internal, e.to_string()))?;
            for (i, p) in split.into_iter().enumerate() {
                parts[i].push(p);
            }
        }
        let mut sends = tokio::task::JoinSet::new();
        for (i, (route, plain)) in paths.iter().zip(parts).enumerate() {
            let tag = ShareTag {
                index: i as u8,
                count: count as u8,
            };
            let (shared, master, slave) = (shared.clone(), master.to_string(), slave.to_string());
            let (route, ids) = (route.clone(), ids.clone());
            sends.spawn(async move {
                send_path(&shared, &master, &slave, &route, Some(tag), &ids, plain).await
            });
        }
        let mut failed = None;
        while let Some(done) = sends.join_next().await {
            let result = done.unwrap_or_else(|e| {
                Err(ApiError::unavailable(
                    Shortage::RelayFailed,
                    format!("a share's relay stopped: {e}"),
                ))
            });
            if let Err(e) = result {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    shared.pools.mark_master_delivered(ids).await?;
    shared
        .metrics
        .pair_add(master, slave, PairCounter::KeysRelayed, keys.len() as u64);
    let me = &shared.cfg.id;
    let shown: Vec<String> = paths
        .iter()
        .map(|r| format!("{me} → {}", r.join(" → ")))
        .collect();
    tracing::info!(%master, %slave, keys = keys.len(), "relayed over {}", shown.join(" and "));
    Ok(keys)
}

/// Sends one relay over `route` (every KME after this one): the keys `plain` (whole, or
/// share `share` of them) masked with the first link's pad.
async fn send_path(
    shared: &Arc<Shared>,
    master: &str,
    slave: &str,
    route: &[String],
    share: Option<ShareTag>,
    ids: &[String],
    plain: Vec<Secret>,
) -> Result<(), ApiError> {
    let started_unix_ms = unix_ms();
    let first = &route[0];
    let dir = routing::first_hop_dir(shared, first)?;
    shared.refuse_if_alarm(first)?;
    let total: usize = plain.iter().map(|k| k.len()).sum();
    let pad = shared
        .pools
        .link(first)
        .take_pad(dir, total)
        .await
        .map_err(|e| short(shared, first, master, slave, e))?;
    shared
        .metrics
        .link_add(first, LinkCounter::ConsumedBits, 8 * total as u64);
    let masked = crate::kme::store::xor_split(&plain, &pad.bytes);
    let path = RelayPath {
        master,
        slave,
        passed: vec![shared.cfg.id.clone()],
        route,
        share,
    };
    let req = request(&path, pad.ranges, ids, &masked);
    send_hop(shared, first, &req).await?;
    let mut whole = path.passed;
    whole.extend_from_slice(route);
    shared.routing.record(RelayRecord {
        at_unix_ms: unix_ms(),
        started_unix_ms,
        master: master.to_string(),
        slave: slave.to_string(),
        path: whole,
        share,
        key_ids: ids.to_vec(),
    });
    Ok(())
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
            ApiError::unavailable(
                Shortage::RelayFailed,
                format!("relay hop '{peer}' unreachable"),
            )
        })?;
    if resp.status().is_success() {
        return Ok(());
    }
    let body = resp.bytes().await.unwrap_or_default();
    let msg = error_message(&body).unwrap_or_else(|| "relay failed".to_string());
    Err(ApiError::unavailable(
        Shortage::RelayFailed,
        format!("{msg} (at or beyond '{peer}')"),
    ))
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
        tracing::warn!(peer = %caller, master = %req.master, slave = %req.slave, route = ?req.route, "relay refused: {e}");
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
    let started_unix_ms = unix_ms();
    shared
        .metrics
        .link_add(caller, LinkCounter::RelaysReceived, 1);
    shared.refuse_if_alarm(caller)?;
    if let Some(next) = req.route.get(1) {
        shared.refuse_if_alarm(next)?;
    }
    let bytes: usize = masked.iter().map(|m| m.len()).sum();
    let mut whole = req.passed.clone();
    whole.extend_from_slice(&req.route);
    let arrival = req.share.map(|tag| Arrival {
        master: &req.master,
        slave: &req.slave,
        tag,
        path: &whole,
        ids,
    });
    if let (Some(arrival), None) = (&arrival, req.route.get(1)) {
        let lens: Vec<usize> = masked.iter().map(|m| m.len()).collect();
        let now = std::time::Instant::now();
        shared
            .shares_in
            .check(arrival, &lens, now)
            .map_err(|e| ApiError::bad(e.to_string()))?;
    }
    let outcome = hop(shared, caller, from_dir, req, masked, ids).await?;
    shared
        .metrics
        .link_add(caller, LinkCounter::ConsumedBits, 8 * bytes as u64);
    shared.routing.record(RelayRecord {
        at_unix_ms: unix_ms(),
        started_unix_ms,
        master: req.master.clone(),
        slave: req.slave.clone(),
        path: whole.clone(),
        share: req.share,
        key_ids: ids.to_vec(),
    });
    match outcome {
        HopOutcome::Forwarded((pads, masked)) => {
            let next = &req.route[1];
            shared
                .metrics
                .link_add(next, LinkCounter::ConsumedBits, 8 * bytes as u64);
            let mut passed = req.passed.clone();
            passed.push(shared.cfg.id.clone());
            let path = RelayPath {
                master: &req.master,
                slave: &req.slave,
                passed,
                route: &req.route[1..],
                share: req.share,
            };
            let out = request(&path, pads, ids, &masked);
            send_hop(shared, next, &out).await?;
        }
        HopOutcome::Delivered => {
            shared.metrics.pair_add(
                &req.master,
                &req.slave,
                PairCounter::KeysRelayed,
                ids.len() as u64,
            );
            tracing::debug!(master = %req.master, slave = %req.slave, keys = ids.len(), "relayed keys stored for the slave, over {}", whole.join(" → "));
        }
        HopOutcome::Unmasked(parts) => {
            let arrival = arrival.expect("only shares are unmasked");
            let joined = shared
                .shares_in
                .add(&arrival, parts, std::time::Instant::now())
                .map_err(|e| ApiError::bad(e.to_string()))?;
            if !joined.keys.is_empty() {
                let n = joined.keys.len() as u64;
                shared
                    .pools
                    .store_relayed(
                        &req.master,
                        &req.slave,
                        joined.keys,
                        shared.cfg.limits.max_key_count,
                        shared.expiry_deadline_ms(),
                    )
                    .await?;
                shared
                    .metrics
                    .pair_add(&req.master, &req.slave, PairCounter::KeysRelayed, n);
                let shown: Vec<String> = joined.paths.iter().map(|p| p.join(" → ")).collect();
                tracing::debug!(master = %req.master, slave = %req.slave, keys = n, "keys joined from their shares and stored for the slave; shares came over {}", shown.join(" and "));
            }
        }
    }
    Ok(Json(serde_json::json!({})))
}
