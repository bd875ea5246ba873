//! The refusals of the KME's HTTP handlers ([`ApiError`]): the ETSI GS QKD 014 error
//! bodies and status codes, and how a store failure becomes one. Imports only the store's
//! error, the ETSI 014 body types and the refusal reasons.

use super::refusal::{Refusal, Shortage};
use super::store::StoreError;
use crate::qkd::etsi014::{ErrorBody, messages};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// An API refusal.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with an error body.
    BadRequest(ErrorBody),
    /// 401, no body.
    Unauthorized,
    /// 401 with an error body: the caller is an SAE of this KME but no `[[sae_pair]]` lets
    /// it get keys with the SAE it names.
    PairNotAllowed(ErrorBody),
    /// 401 with an error body: the caller's certificate is of the other role (a KME on the
    /// ETSI 014 API, an SAE on a KME-to-KME endpoint) or not a link neighbour
    /// ([`super::roles`]).
    RoleRefused(ErrorBody),
    /// 503 with an error body, and why (for the refusal counters).
    Unavailable(ErrorBody, Shortage),
}

impl ApiError {
    /// A 400 with `message` and no details.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(ErrorBody {
            message: message.into(),
            details: None,
        })
    }

    /// A 400 with `message` and one `{name: value}` detail.
    pub fn bad_detail(message: &str, name: &str, value: impl Into<String>) -> Self {
        let mut m = Map::new();
        m.insert(name.to_string(), Value::String(value.into()));
        Self::BadRequest(ErrorBody {
            message: message.to_string(),
            details: Some(vec![m]),
        })
    }

    /// A 401 with a message and the pair's two SAEs as details.
    pub fn pair_not_allowed(master: &str, slave: &str) -> Self {
        let mut m = Map::new();
        m.insert("master_SAE_ID".into(), Value::String(master.to_string()));
        m.insert("slave_SAE_ID".into(), Value::String(slave.to_string()));
        Self::PairNotAllowed(ErrorBody {
            message: format!(
                "SAE pair not authorized: no [[sae_pair]] of this KME lets '{master}' get keys for '{slave}'"
            ),
            details: Some(vec![m]),
        })
    }

    /// A 401 with `message`, for a certificate used in the wrong role.
    pub fn role_refused(message: impl Into<String>) -> Self {
        Self::RoleRefused(ErrorBody {
            message: message.into(),
            details: None,
        })
    }

    /// A 503 with `message`, for `why`.
    pub fn unavailable(why: Shortage, message: impl Into<String>) -> Self {
        Self::Unavailable(
            ErrorBody {
                message: message.into(),
                details: None,
            },
            why,
        )
    }

    /// What this refusal counts as for an SAE pair: none for a 401 (the caller may name
    /// any pair, so no pair is charged).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::BadRequest(_) => Some(Refusal::BadRequest),
            Self::Unavailable(_, why) => Some(Refusal::Unavailable(*why)),
            Self::Unauthorized | Self::PairNotAllowed(_) | Self::RoleRefused(_) => None,
        }
    }
}

/// The refusal as a person reads it in a log: its status and message.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadRequest(b) => write!(f, "400: {}", b.message),
            Self::Unauthorized => f.write_str("401: not an SAE of this KME"),
            Self::PairNotAllowed(b) | Self::RoleRefused(b) => write!(f, "401: {}", b.message),
            Self::Unavailable(b, _) => write!(f, "503: {}", b.message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(b) => (StatusCode::BAD_REQUEST, Json(b)).into_response(),
            Self::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
            Self::PairNotAllowed(b) | Self::RoleRefused(b) => {
                (StatusCode::UNAUTHORIZED, Json(b)).into_response()
            }
            Self::Unavailable(b, _) => (StatusCode::SERVICE_UNAVAILABLE, Json(b)).into_response(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::bad(messages::KEYS_NOT_FOUND),
            StoreError::Unauthorized => Self::Unauthorized,
            StoreError::Reused(id) => Self::bad_detail(
                "Bad request format",
                "key_ID",
                format!("'{id}' was used before"),
            ),
            StoreError::Short { .. } => {
                Self::unavailable(Shortage::NoKeyMaterial, "not enough key material")
            }
            StoreError::Full { pending } => Self::unavailable(
                Shortage::StoreFull,
                format!(
                    "key store full: {pending} keys are waiting for the slave SAE (max_key_count)"
                ),
            ),
            StoreError::Db(_)
            | StoreError::Corrupt(_)
            | StoreError::PadMissing { .. }
            | StoreError::Access(_) => {
                tracing::error!("{e}");
                Self::unavailable(Shortage::Internal, "key data access error")
            }
        }
    }
}
