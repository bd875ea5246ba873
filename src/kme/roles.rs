//! Roles: each certificate is used only in the role its Common Name has in this KME's config
//! ([`super::config::KmeConfig::role_of`]; an SAE ID never equals a KME ID). Two route
//! layers, one per group of endpoints, set up in the router:
//!
//! - [`etsi_endpoints`] on the ETSI GS QKD 014 API (`/api/v1/keys/…`): a KME's certificate
//!   (this KME's, a link peer's, a KME on a route) gets 401 with an ETSI error body naming
//!   the role. Anyone else goes on to the handlers, which serve only this KME's SAEs (an
//!   unknown caller gets the plain 401 of ETSI 014).
//! - [`kme_endpoints`] on the KME-to-KME endpoints (`/kme/v1/relay`, the link push, the
//!   CV-QKD link messages): an SAE's certificate gets 401 naming the role, and any other
//!   caller that is not the peer of one of this KME's links gets 401 too. The handlers then
//!   check that the link the neighbour speaks for is its own, of the right kind and side.

use super::config::Role;
use super::error::ApiError;
use super::state::Shared;
use super::tls::Caller;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The caller's ID (set by the accept loop for every request).
fn caller(req: &Request) -> Option<String> {
    req.extensions().get::<Caller>().map(|c| c.0.clone())
}

/// Layer of the ETSI 014 routes: refuses a KME's certificate.
pub async fn etsi_endpoints(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(caller) = caller(&req) else {
        return ApiError::Unauthorized.into_response();
    };
    if shared.cfg.role_of(&caller) == Some(Role::Kme) {
        tracing::info!(%caller, path = %req.uri().path(), "refused: a KME certificate on the ETSI 014 API");
        return ApiError::role_refused(format!(
            "certificate '{caller}' is a {} certificate: the ETSI GS QKD 014 key API serves only the {} IDs of this KME",
            Role::Kme,
            Role::Sae
        ))
        .into_response();
    }
    next.run(req).await
}

/// Layer of the KME-to-KME routes: refuses an SAE's certificate and any caller that is not
/// a link neighbour.
pub async fn kme_endpoints(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(caller) = caller(&req) else {
        return ApiError::Unauthorized.into_response();
    };
    let problem = if shared.cfg.role_of(&caller) == Some(Role::Sae) {
        format!(
            "certificate '{caller}' is an {} certificate: the KME-to-KME endpoints serve only this KME's link neighbours",
            Role::Sae
        )
    } else if !shared.cfg.is_neighbour(&caller) {
        format!(
            "certificate '{caller}' is not a link neighbour of this KME: the KME-to-KME endpoints serve only its link neighbours"
        )
    } else {
        return next.run(req).await;
    };
    tracing::warn!(%caller, path = %req.uri().path(), "refused: {problem}");
    ApiError::role_refused(problem).into_response()
}
