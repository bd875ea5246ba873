//! The ETSI GS QKD 014 V1.1.1 API (§5, §6): "Get status", "Get key" (`enc_keys`) and "Get
//! key with key IDs" (`dec_keys`), each in its GET and POST forms, with the spec's JSON and
//! error bodies. The caller is the Common Name of its client certificate ([`Caller`]);
//! nothing in the URL or body says who is calling.
//!
//! Status codes: 200; 400 with `{"message","details"}` (the spec's messages where it fixes
//! them); 401 with no body (the caller is not an SAE of this KME, or asks for keys another
//! SAE was named for), with `{"message"}` (the caller's certificate is a KME's, see
//! [`crate::kme::roles`]) or with `{"message","details"}` (no `[[sae_pair]]` allows the pair);
//! 503 with `{"message"}` (not enough key material, a `rate` or `volume` limit reached, a
//! hop of the relay unreachable, a store failure). Unknown URLs and methods are 400s: the
//! spec has no 404.

use super::relay;
use crate::kme::config::KeyLimits;
use crate::kme::config::RemoteSae;
use crate::kme::error::ApiError;
use crate::kme::metrics::PairCounter;
use crate::kme::pools::unix_ms;
use crate::kme::refusal::Shortage;
use crate::kme::routing;
use crate::kme::state::Shared;
use crate::kme::store::NewKey;
use crate::kme::tls::Caller;
use crate::qkd::etsi014::{ErrorBody, Key, KeyContainer, KeyIds, KeyRequest, Status, messages};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where the slave SAE of a request is.
pub enum Target<'a> {
    /// Attached to this KME.
    Local,
    /// Attached to another KME.
    Remote(&'a RemoteSae),
}

type ApiResult<T> = Result<T, ApiError>;

fn path_id(p: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    p.map(|Path(s)| s)
        .map_err(|e| ApiError::bad_detail("Bad request format", "url", e.body_text()))
}

/// The caller must be an SAE of this KME, name a known slave other than itself, and be
/// paired with it (`[[sae_pair]]`); returns where the slave is and the pair's index.
fn authorize_master<'a>(
    shared: &'a Shared,
    caller: &str,
    slave: &str,
) -> ApiResult<(Target<'a>, usize)> {
    let target = locate_slave(shared, caller, slave)?;
    match shared.cfg.pair(caller, slave) {
        Some((i, _)) => Ok((target, i)),
        None => {
            tracing::info!(master = caller, slave, "refused: SAE pair not configured");
            Err(ApiError::pair_not_allowed(caller, slave))
        }
    }
}

/// The caller must be an SAE of this KME and name a known slave other than itself.
fn locate_slave<'a>(shared: &'a Shared, caller: &str, slave: &str) -> ApiResult<Target<'a>> {
    if !shared.cfg.saes.iter().any(|s| s == caller) {
        return Err(ApiError::Unauthorized);
    }
    if slave == caller {
        return Err(ApiError::bad_detail(
            "Bad request format",
            "slave_SAE_ID",
            "is the caller itself",
        ));
    }
    if shared.cfg.saes.iter().any(|s| s == slave) {
        return Ok(Target::Local);
    }
    match shared.cfg.remote_saes.iter().find(|r| r.id == slave) {
        Some(r) => Ok(Target::Remote(r)),
        None => Err(ApiError::bad_detail(
            "Bad request format",
            "slave_SAE_ID",
            format!("'{slave}' is not an SAE this KME can reach"),
        )),
    }
}

/// `GET /api/v1/keys/{slave_SAE_ID}/status`.
pub async fn status(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    slave: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Status>> {
    let slave = path_id(slave)?;
    let (target, _) = authorize_master(&shared, &caller, &slave)?;
    let l = shared.cfg.limits;
    let (target_kme, stored) = match target {
        Target::Local => {
            let pending = shared.pools.pending_count(&caller, &slave).await?;
            (
                shared.cfg.id.clone(),
                l.max_key_count.saturating_sub(pending),
            )
        }
        Target::Remote(remote) => {
            let n = routing::keys_available(&shared, remote, u64::from(l.default_key_size)).await;
            (remote.kme.clone(), n.min(l.max_key_count))
        }
    };
    Ok(Json(Status {
        source_KME_ID: shared.cfg.id.clone(),
        target_KME_ID: target_kme,
        master_SAE_ID: caller,
        slave_SAE_ID: slave,
        key_size: l.default_key_size,
        stored_key_count: stored,
        max_key_count: l.max_key_count,
        max_key_per_request: l.max_key_per_request,
        max_key_size: l.max_key_size,
        min_key_size: l.min_key_size,
        max_SAE_ID_count: 0,
        status_extension: None,
    }))
}

/// The URI parameters `enc_keys` accepts in its GET form (§6.2).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncQuery {
    number: Option<u32>,
    size: Option<u32>,
}

/// `GET /api/v1/keys/{slave_SAE_ID}/enc_keys[?number=N&size=S]`.
pub async fn enc_keys_get(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    slave: Result<Path<String>, PathRejection>,
    query: Result<Query<EncQuery>, QueryRejection>,
) -> ApiResult<Json<KeyContainer>> {
    let slave = path_id(slave)?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_detail("Bad request format", "query", e.body_text()))?;
    let req = KeyRequest {
        number: q.number,
        size: q.size,
        ..Default::default()
    };
    enc_keys(shared, caller, slave, req).await
}

/// `POST /api/v1/keys/{slave_SAE_ID}/enc_keys` with a Key request (or an empty body).
pub async fn enc_keys_post(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    slave: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> ApiResult<Json<KeyContainer>> {
    let slave = path_id(slave)?;
    let req = parse_key_request(&body)?;
    enc_keys(shared, caller, slave, req).await
}

/// Parses a Key request. Fields the spec does not define are refused (400) unless they
/// carry nothing (null, `[]`, `{}`): one published client sends `"additional_target_sae_ids": []`.
pub fn parse_key_request(body: &[u8]) -> ApiResult<KeyRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(KeyRequest::default());
    }
    let bad =
        |e: serde_json::Error| ApiError::bad_detail("Bad request format", "body", e.to_string());
    let mut v: Map<String, Value> = serde_json::from_slice(body).map_err(bad)?;
    const KNOWN: [&str; 5] = [
        "number",
        "size",
        "additional_slave_SAE_IDs",
        "extension_mandatory",
        "extension_optional",
    ];
    let unknown: Vec<String> = v
        .keys()
        .filter(|k| !KNOWN.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in unknown {
        let empty = match &v[&k] {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty {
            return Err(ApiError::bad_detail(
                "Bad request format",
                "body",
                format!("unknown field '{k}'"),
            ));
        }
        v.remove(&k);
    }
    serde_json::from_value(Value::Object(v)).map_err(bad)
}

/// Checks a Key request against the limits; returns (number, size in bits).
pub fn check_request(l: &KeyLimits, req: &KeyRequest) -> ApiResult<(u32, u32)> {
    let size = req.size.unwrap_or(l.default_key_size);
    let number = req.number.unwrap_or(1);
    if !size.is_multiple_of(8) {
        return Err(ApiError::bad(messages::SIZE_NOT_MULTIPLE_OF_8));
    }
    if !(l.min_key_size..=l.max_key_size).contains(&size) {
        return Err(ApiError::bad_detail(
            "size is out of range",
            "size",
            format!(
                "{size} is not within min_key_size..=max_key_size ({}..={})",
                l.min_key_size, l.max_key_size
            ),
        ));
    }
    if !(1..=l.max_key_per_request).contains(&number) {
        return Err(ApiError::bad_detail(
            "number is out of range",
            "number",
            format!(
                "{number} is not within 1..=max_key_per_request ({})",
                l.max_key_per_request
            ),
        ));
    }
    check_extensions(req)?;
    Ok((number, size))
}

fn check_extensions(req: &KeyRequest) -> ApiResult<()> {
    if req
        .additional_slave_SAE_IDs
        .as_ref()
        .is_some_and(|a| !a.is_empty())
    {
        return Err(ApiError::bad_detail(
            "additional_slave_SAE_IDs is not supported",
            "additional_slave_SAE_IDs",
            "key multicast is not supported (max_SAE_ID_count is 0)",
        ));
    }
    let names: Vec<String> = req
        .extension_mandatory
        .iter()
        .flatten()
        .flat_map(|m| m.keys().cloned())
        .collect();
    if let Some(_first) = names.first() {
        let details = names
            .iter()
            .map(|n| {
                let mut m = Map::new();
                m.insert(
                    "extension_mandatory_unsupported".into(),
                    Value::String(format!("{n} is not supported")),
                );
                m
            })
            .collect();
        return Err(ApiError::BadRequest(ErrorBody {
            message: messages::MANDATORY_EXTENSION_UNSUPPORTED.to_string(),
            details: Some(details),
        }));
    }
    Ok(())
}

/// Fresh random keys with new UUIDs.
fn fresh_keys(number: u32, size_bits: u32) -> Vec<NewKey> {
    (0..number)
        .map(|_| {
            let mut bytes = Zeroizing::new(vec![0u8; size_bits as usize / 8]);
            aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
            NewKey {
                id: uuid::Uuid::new_v4().to_string(),
                bytes,
            }
        })
        .collect()
}

async fn enc_keys(
    shared: Arc<Shared>,
    caller: String,
    slave: String,
    req: KeyRequest,
) -> ApiResult<Json<KeyContainer>> {
    let (target, pair) = authorize_master(&shared, &caller, &slave)?;
    let served = serve_enc_keys(&shared, &caller, &slave, target, pair, &req).await;
    count_refusal(&shared, &caller, &slave, &served);
    served
}

/// Counts a refusal of a request of the authorized pair `master` > `slave` by its code and
/// reason (the pair's `refusals` in the status document).
fn count_refusal<T>(shared: &Shared, master: &str, slave: &str, served: &ApiResult<T>) {
    if let Some(r) = served.as_ref().err().and_then(ApiError::refusal) {
        shared
            .metrics
            .pair_add(master, slave, PairCounter::Refused(r), 1);
    }
}

async fn serve_enc_keys(
    shared: &Arc<Shared>,
    caller: &str,
    slave: &str,
    target: Target<'_>,
    pair: usize,
    req: &KeyRequest,
) -> ApiResult<Json<KeyContainer>> {
    let (number, size) = check_request(&shared.cfg.limits, req)?;
    let bits = u64::from(number) * u64::from(size);
    if let Err(e) = shared.quotas.admit(
        &shared.cfg,
        std::time::Instant::now(),
        caller,
        pair,
        u64::from(number),
        bits,
    ) {
        tracing::info!(master = %caller, %slave, "refused: {e}");
        return Err(ApiError::unavailable(Shortage::Quota, e.to_string()));
    }
    let keys = fresh_keys(number, size);
    let keys = match target {
        Target::Local => store_local(shared, caller, slave, keys).await?,
        Target::Remote(remote) => relay::relay_out(shared, caller, slave, remote, keys).await?,
    };
    let m = &shared.metrics;
    m.pair_add(caller, slave, PairCounter::KeysToMaster, keys.len() as u64);
    m.pair_add(caller, slave, PairCounter::BitsDelivered, bits);
    Ok(Json(container(&keys)))
}

async fn store_local(
    shared: &Arc<Shared>,
    master: &str,
    slave: &str,
    keys: Vec<NewKey>,
) -> ApiResult<Vec<NewKey>> {
    let max = shared.cfg.limits.max_key_count;
    let deadline = shared.expiry_deadline_ms();
    let keys = shared
        .pools
        .enc_local(master, slave, keys, max, deadline)
        .await?;
    Ok(keys)
}

fn container(keys: &[NewKey]) -> KeyContainer {
    KeyContainer {
        keys: keys
            .iter()
            .map(|k| Key {
                key_ID: k.id.clone(),
                key_ID_extension: None,
                key: B64.encode(&k.bytes),
                key_extension: None,
            })
            .collect(),
        key_container_extension: None,
    }
}

/// The URI parameter of `dec_keys` in its GET form (§6.4).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct DecQuery {
    key_ID: String,
}

/// `GET /api/v1/keys/{master_SAE_ID}/dec_keys?key_ID=ID`.
pub async fn dec_keys_get(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    master: Result<Path<String>, PathRejection>,
    query: Result<Query<DecQuery>, QueryRejection>,
) -> ApiResult<Json<KeyContainer>> {
    let master = path_id(master)?;
    let Query(q) =
        query.map_err(|e| ApiError::bad_detail("Bad request format", "query", e.body_text()))?;
    dec_keys(shared, caller, master, vec![q.key_ID]).await
}

/// `POST /api/v1/keys/{master_SAE_ID}/dec_keys` with a Key IDs body.
pub async fn dec_keys_post(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    master: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> ApiResult<Json<KeyContainer>> {
    let master = path_id(master)?;
    let ids: KeyIds = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_detail("Bad request format", "body", e.to_string()))?;
    let ids = ids.key_IDs.into_iter().map(|k| k.key_ID).collect();
    dec_keys(shared, caller, master, ids).await
}

async fn dec_keys(
    shared: Arc<Shared>,
    caller: String,
    master: String,
    ids: Vec<String>,
) -> ApiResult<Json<KeyContainer>> {
    if !shared.cfg.saes.contains(&caller) {
        return Err(ApiError::Unauthorized);
    }
    if shared.cfg.pair(&master, &caller).is_none() {
        tracing::info!(%master, slave = %caller, "dec_keys refused: SAE pair not configured");
        return Err(ApiError::pair_not_allowed(&master, &caller));
    }
    let served = serve_dec_keys(&shared, &caller, &master, ids).await;
    count_refusal(&shared, &master, &caller, &served);
    served
}

async fn serve_dec_keys(
    shared: &Shared,
    caller: &str,
    master: &str,
    ids: Vec<String>,
) -> ApiResult<Json<KeyContainer>> {
    let max = shared.cfg.limits.max_key_per_request as usize;
    if ids.is_empty() || ids.len() > max {
        return Err(ApiError::bad_detail(
            "Bad request format",
            "key_IDs",
            format!("{} key IDs; 1..={max} are accepted", ids.len()),
        ));
    }
    let now = unix_ms();
    let keys = shared.pools.dec_keys(caller, master, ids, now).await?;
    let bits: usize = keys.iter().map(|k| k.bytes.len() * 8).sum();
    shared
        .metrics
        .pair_add(master, caller, PairCounter::KeysToSlave, keys.len() as u64);
    shared
        .metrics
        .pair_add(master, caller, PairCounter::BitsDelivered, bits as u64);
    Ok(Json(container(&keys)))
}

/// Any other URL or method.
pub async fn fallback() -> ApiError {
    ApiError::bad("Bad request format: no such method")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_requests_parse_as_the_spec_says() {
        assert_eq!(parse_key_request(b"").unwrap(), KeyRequest::default());
        let r = parse_key_request(br#"{"number":2,"size":512}"#).unwrap();
        assert_eq!((r.number, r.size), (Some(2), Some(512)));
        let r = parse_key_request(br#"{"number":1,"additional_target_sae_ids":[]}"#).unwrap();
        assert_eq!(r.number, Some(1));
        assert!(parse_key_request(br#"{"nubmer":3}"#).is_err());
        assert!(parse_key_request(b"{").is_err());
        assert!(parse_key_request(br#"{"number":"x"}"#).is_err());
    }
}
