//! `/v1/ingest/<deployment>[/<path>]`: HTTP requests into a producer
//! deployment's module, answered once Kafka has acknowledged what it
//! emitted.
//!
//! Who may call: the deployment's tenant (its bearer token) or whoever
//! holds the deployment's ingest key (`ingest.key_sha256`), which is what a
//! webhook sender or a browser beacon should get instead of a token that
//! can manage deployments. The caller is checked before the body is read,
//! and the body is read only up to `ingest.max_body_bytes`.
//!
//! | outcome | status |
//! |---|---|
//! | the module's response, records acknowledged | the module's (2xx/3xx) |
//! | the module's response with status ≥ 400 | that status; nothing published |
//! | the module's `permanent` error | 400 `{"error": message}`; nothing published |
//! | the module's `retryable` error | 503 + `Retry-After`; nothing published |
//! | `ingest.max_concurrency` requests in flight | 429 + `Retry-After` |
//! | Kafka slow or away (`ingest.ack_timeout_ms`), deployment paused or stopping | 503 + `Retry-After` |
//! | the module crashed (panic, deadline, memory) | 500; the instance is replaced |
//! | the body did not arrive within `control.body_read_timeout_ms` | 408 |

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Error;
use super::http::HttpState;
use super::service::Target;
use crate::auth::{Caller, hash_token};
use crate::producer::{IngestError, IngestReply};
use crate::wasm::bindings::ErrorClass;
use crate::wasm::bindings::producer::Request;

/// `/v1/ingest/{name}`.
pub async fn ingest_root(
    State(state): State<Arc<HttpState>>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest(&state, &name, "/".into(), method, uri, headers, body).await
}

/// `/v1/ingest/{name}/{*path}`.
pub async fn ingest_path(
    State(state): State<Arc<HttpState>>,
    Path((name, path)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest(
        &state,
        &name,
        format!("/{path}"),
        method,
        uri,
        headers,
        body,
    )
    .await
}

async fn ingest(
    state: &HttpState,
    name: &str,
    path: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let key = match authorize(state, name, &headers) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let request = RawRequest {
        path,
        method,
        uri,
        headers,
        body,
    };
    let response = match handle(state, &key, name, request).await {
        Ok(reply) => respond(reply),
        Err(e) => e.into_response(),
    };
    if let Some(v) = state.service.supervisor.view(&key) {
        let class = format!("{}xx", response.status().as_u16() / 100);
        v.telemetry
            .metrics
            .ingest_requests
            .with_label_values(&[&class])
            .inc();
    }
    response
}

/// The request as axum hands it over, body unread.
struct RawRequest {
    path: String,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
}

/// Read the body (bounded) and run the request through the deployment.
async fn handle(
    state: &HttpState,
    key: &str,
    name: &str,
    raw: RawRequest,
) -> Result<IngestReply, Error> {
    let deployment = state.service.producer(key, name)?;
    // The permit first, so only admitted requests' bodies are in memory.
    let admission = deployment.admit().map_err(to_api_error)?;
    let max = admission.max_body_bytes();
    let declared = raw
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(Error::TooLarge(max));
    }
    let body = state.read_body(raw.body, max).await?;
    let request = Request {
        method: raw.method.as_str().to_owned(),
        path: raw.path,
        query: raw.uri.query().unwrap_or_default().to_owned(),
        headers: raw
            .headers
            .iter()
            .filter(|(n, _)| *n != header::AUTHORIZATION)
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: Vec::from(body),
    };
    deployment
        .ingest(admission, request)
        .await
        .map_err(to_api_error)
}

/// The deployment's state-topic key, if the caller may ingest into `name`.
fn authorize(state: &HttpState, name: &str, headers: &HeaderMap) -> Result<String, Error> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.service.auth.authenticate(authorization) {
        Ok(caller @ Caller::Tenant(_)) => match state.service.find(&caller, name, None)? {
            Target::Api(r) => Ok(r.key()),
            Target::Config(_) => Err(Error::NotFound(format!("deployment {name:?}"))),
        },
        Ok(Caller::Operator) => Err(Error::Forbidden(
            "the operator does not ingest: use the tenant's token or the deployment's ingest key"
                .into(),
        )),
        Err(_) => {
            let key = authorization
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .ok_or(Error::Unauthenticated)?;
            // The key alone picks the deployment; the name must agree.
            let users = state.service.ingest_key_users(&hash_token(key));
            match users.as_slice() {
                [only] if only.rsplit('/').next() == Some(name) => Ok(only.clone()),
                [_, _, ..] => {
                    tracing::warn!(target: "ingesta::audit", deployments = ?users,
                        "an ingest key is set on several deployments; refusing it for all");
                    Err(Error::Unauthenticated)
                }
                _ => Err(Error::Unauthenticated),
            }
        }
    }
}

fn to_api_error(e: IngestError) -> Error {
    match e {
        IngestError::Busy { .. } => Error::Busy(e.to_string()),
        IngestError::Unavailable(m) => Error::Unavailable(m),
        IngestError::Refused {
            class: ErrorClass::Permanent,
            message,
        } => Error::Invalid(message),
        IngestError::Refused {
            class: ErrorClass::Retryable,
            message,
        } => Error::Unavailable(message),
        IngestError::Trapped { .. } | IngestError::Internal { .. } | IngestError::Rejected(_) => {
            Error::Internal(e.to_string())
        }
    }
}

/// The module's response as HTTP. Headers it may not set (framing,
/// hop-by-hop) or that are not valid HTTP are left out.
fn respond(reply: IngestReply) -> Response {
    let r = reply.response;
    let Ok(status) = StatusCode::from_u16(r.status) else {
        return Error::Internal(format!(
            "the module answered with status {}, which is not an HTTP status",
            r.status
        ))
        .into_response();
    };
    let mut response = (status, r.body).into_response();
    let headers = response.headers_mut();
    for (name, value) in r.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            continue;
        };
        let framing = [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ];
        if !framing.contains(&name) {
            headers.append(name, value);
        }
    }
    headers.insert(
        "ingesta-published",
        HeaderValue::from(reply.published as u64),
    );
    response
}
