//! `POST /kme/v1/link/cvqkd`: the leader of a CV-QKD link drives a block; Bob's end
//! ([`crate::kme::link::cvqkd::follower`]) answers.

use crate::kme::error::ApiError;
use crate::kme::link::cvqkd::follower;
use crate::kme::link::cvqkd::wire::{self, LinkRequest};
use crate::kme::state::Shared;
use crate::kme::tls::Caller;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The handler: only the leader of a link this KME follows is answered.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(Caller(caller)): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(link) = shared.followers.get(&caller).cloned() else {
        return Err(ApiError::Unauthorized);
    };
    let Some(cfg) = shared.cfg.links.iter().find(|l| l.peer == caller) else {
        return Err(ApiError::Unauthorized);
    };
    let req: LinkRequest =
        wire::decode(&body).map_err(|e| ApiError::bad_detail("Bad request format", "body", e))?;
    let reply = follower::answer(&shared.link_context(cfg), &link, req).await?;
    let headers = [(axum::http::header::CONTENT_TYPE, wire::CONTENT_TYPE)];
    Ok((headers, wire::encode(&reply)).into_response())
}
