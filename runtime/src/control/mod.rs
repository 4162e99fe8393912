//! The control plane: the HTTP API (`/v1`), who may call it, and the
//! modules it stores.
//!
//! | module | owns |
//! |---|---|
//! | [`auth`] | bearer tokens (stored hashed), tenants, topic and group grants |
//! | [`modules`] | the content-addressed module registry: validation, storage, ownership |
//! | [`deployments`] | deployment specs and records: validation against grants, revisions, rollback |
//! | [`state`] | the state in Kafka: compacted topics every runner tails and applies |
//! | [`api`] | the axum routes, request/response types, the OpenAPI document, audit lines |
//! | [`ingest`] | `/v1/ingest/<deployment>`: who may call it, the body limit, HTTP in and out of a producer deployment |
//!
//! Every object lookup is scoped to the caller's tenant: another tenant's
//! object answers 404, exactly like a missing one, so nothing leaks.

pub mod api;
pub mod auth;
pub mod deployments;
pub mod ingest;
pub mod modules;
pub mod state;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// What a request can fail with; each maps to one status code and a JSON
/// body `{"error": "..."}` whose message names the object and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown bearer token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// Temporarily out of capacity (429): retry after a moment.
    #[error("{0}")]
    Busy(String),
    /// Kafka or the deployment is not available now (503): retry later.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the object.
    pub error: String,
}

/// What `Retry-After` says on a 429 or 503.
pub const RETRY_AFTER_SECONDS: &str = "1";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body_unread = matches!(self, ApiError::Unauthorized | ApiError::TooLarge(_));
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        // Both mean "not now": say when to come back (seconds).
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            headers.insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        // These are answered without reading the request body, after which
        // the server cannot reuse the connection; say so, or a pooling
        // client may send its next request into a closing socket.
        if body_unread {
            headers.insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
