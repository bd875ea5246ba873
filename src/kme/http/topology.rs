//! `POST /kme/v1/topology`: a link neighbour's link-state adverts (its own and those it
//! holds), taken into this KME's database ([`crate::kme::routing`]). The role layer admits
//! only link neighbours.

use crate::kme::error::ApiError;
use crate::kme::routing::AdvertBatch;
use crate::kme::state::Shared;
use crate::kme::tls::Caller;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use std::sync::Arc;

/// Takes a neighbour's adverts; answers how many were newer than those held.
pub async fn adverts(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let batch: AdvertBatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_detail("Bad request format", "body", e.to_string()))?;
    let installed = shared.routing.receive(&caller, batch.adverts)?;
    Ok(Json(serde_json::json!({ "installed": installed })))
}
