//! `GET /kme/v1/status`: the status document ([`crate::kme::status`]), for neighbour
//! KMEs and this KME's SAEs.

use crate::kme::error::ApiError;
use crate::kme::state::Shared;
use crate::kme::status::{self as document, KmeStatus};
use crate::kme::tls::Caller;
use axum::Json;
use axum::extract::{Extension, State};
use std::sync::Arc;

/// `GET /kme/v1/status`: for neighbour KMEs and this KME's SAEs.
pub async fn kme_status(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
) -> Result<Json<KmeStatus>, ApiError> {
    let known =
        shared.cfg.saes.contains(&caller) || shared.cfg.links.iter().any(|l| l.peer == caller);
    if !known {
        return Err(ApiError::Unauthorized);
    }
    Ok(Json(document::document(&shared).await))
}
