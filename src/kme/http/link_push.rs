//! `POST /kme/v1/link/keys`: the leader of a random-source link pushes key blocks to this
//! follower, which stores them in the link's pool. Owns the route's body limit. And
//! `POST /kme/v1/link/spent`: a neighbour's report of how far it has spent its direction.

use crate::kme::config::{LinkRole, SourceKind};
use crate::kme::error::ApiError;
use crate::kme::link::random::{self as links, LinkPush};
use crate::kme::metrics::LinkCounter;
use crate::kme::state::Shared;
use crate::kme::store::PadPosition;
use crate::kme::tls::Caller;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use std::sync::Arc;

/// JSON around each block of a link push besides its base64 key (`{"seq":N,"key":""},`
/// with N up to 20 digits is 38 bytes), rounded up.
const LINK_PUSH_BLOCK_OVERHEAD_BYTES: usize = 64;
/// JSON around the blocks of a link push (`{"blocks":[]}`), rounded up.
const LINK_PUSH_ENVELOPE_BYTES: usize = 64;
/// The body limit of `POST /kme/v1/link/keys`: the largest push a leader sends,
/// [`links::MAX_BLOCKS_PER_PUSH`] blocks of [`links::MAX_BLOCK_BYTES`] (a pair may give
/// one direction the whole block pulled from the source) in base64, with their JSON.
pub const LINK_PUSH_BODY_LIMIT_BYTES: usize =
    link_push_body_limit_bytes(links::MAX_BLOCKS_PER_PUSH, links::MAX_BLOCK_BYTES);

/// The largest body of a push of `blocks` blocks of at most `block_bytes` each.
const fn link_push_body_limit_bytes(blocks: usize, block_bytes: usize) -> usize {
    let base64_bytes = block_bytes.div_ceil(3) * 4;
    LINK_PUSH_ENVELOPE_BYTES + blocks * (base64_bytes + LINK_PUSH_BLOCK_OVERHEAD_BYTES)
}

/// `POST /kme/v1/link/keys`: the leader of a link pushes key blocks to this follower.
pub async fn link_keys(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A CV-QKD link never carries key material: both ends distill their own copy.
    let is_follower = shared.cfg.links.iter().any(|l| {
        l.peer == caller && l.role == LinkRole::Follower && l.source == SourceKind::Random
    });
    if !is_follower {
        return Err(ApiError::Unauthorized);
    }
    let push: LinkPush = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_detail("Bad request format", "body", e.to_string()))?;
    let blocks =
        links::decode_push(&push).ok_or_else(|| ApiError::bad("Bad request format: base64"))?;
    let stored = shared.pools.link(&caller).follower_store(blocks).await?;
    shared
        .metrics
        .link_add(&caller, LinkCounter::ReceivedBits, 8 * stored);
    Ok(Json(serde_json::json!({})))
}

/// `POST /kme/v1/link/spent`: a link neighbour says how far it has spent the direction it
/// sends (a [`PadPosition`]); this KME's copy before it is discarded once no relay that
/// spent it can still arrive (see [`crate::kme::passed_pads`]).
pub async fn link_spent(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !shared.cfg.links.iter().any(|l| l.peer == caller) {
        return Err(ApiError::Unauthorized);
    }
    let upto: PadPosition = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_detail("Bad request format", "body", e.to_string()))?;
    shared
        .passed_pads
        .note_position(&caller, upto, std::time::Instant::now());
    Ok(Json(serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;

    #[test]
    fn the_largest_link_push_fits_the_body_limit() {
        let push = LinkPush {
            blocks: (0..links::MAX_BLOCKS_PER_PUSH)
                .map(|i| links::WireBlock {
                    seq: u64::MAX - i as u64,
                    key: B64.encode(vec![0xa5; links::MAX_BLOCK_BYTES]),
                })
                .collect(),
        };
        let len = serde_json::to_vec(&push).unwrap().len();
        assert!(
            len <= LINK_PUSH_BODY_LIMIT_BYTES,
            "{len} > {LINK_PUSH_BODY_LIMIT_BYTES}"
        );
        // Not wildly above the need either (a body limit bounds memory).
        assert!(LINK_PUSH_BODY_LIMIT_BYTES < len + len / 50);
    }
}
