//! The HTTP API: routes, authentication, the OpenAPI document generated
//! from these handlers, and the status code of every [`Error`]. Handlers
//! only translate: the rules are the service's ([`super::service`]).
//!
//! `/healthz`, `/readyz`, `/metrics` and `/v1/openapi.json` are open
//! (probes, Prometheus and tooling must reach them without a token);
//! everything else under `/v1` needs a bearer token, checked before a
//! request body is read.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use utoipa::OpenApi;

use super::service::Service;
use super::{Error, RETRY_AFTER_SECONDS};
use crate::api::{CreateDeployment, DeploymentStatus, ErrorBody, LogLine, ModuleInfo};

/// What every handler shares.
pub struct HttpState {
    /// The control plane's rules; handlers translate each request into
    /// one of its calls.
    pub service: Arc<Service>,
    /// Turns true when the API shuts down, so followed logs end (a
    /// graceful shutdown waits for open responses).
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// How long a large body (an upload, an ingest request) may take to
    /// arrive in full (`control.body_read_timeout_ms`).
    pub body_read_timeout: std::time::Duration,
}

impl HttpState {
    /// Read `body` in full, refusing more than `limit` bytes or a body that
    /// takes longer than the body read timeout: a client trickling a body
    /// would otherwise hold its connection (and, for ingestion, a request
    /// permit and an instance's worth of memory) for as long as it likes.
    pub async fn read_body(
        &self,
        body: axum::body::Body,
        limit: usize,
    ) -> Result<axum::body::Bytes, Error> {
        match tokio::time::timeout(self.body_read_timeout, axum::body::to_bytes(body, limit)).await
        {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(_)) => Err(Error::TooLarge(limit)),
            Err(_) => Err(Error::BodyTimeout(self.body_read_timeout.as_millis())),
        }
    }
}

type AppState = State<Arc<HttpState>>;

pub mod accept;
mod deployments;
mod logs;
mod modules;
mod topics;

use deployments::{
    create_deployment, delete_deployment, get_deployment, list_deployments, patch_deployment,
    pause_deployment, resume_deployment, rollback_deployment,
};
use logs::deployment_logs;
use modules::{delete_module, get_module, list_modules, upload_module};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ingesta control plane",
        description = "Upload WebAssembly components and manage deployments. Send `Authorization: Bearer <token>`."
    ),
    paths(
        healthz,
        readyz,
        metrics,
        modules::upload_module,
        modules::list_modules,
        modules::get_module,
        modules::delete_module,
        deployments::create_deployment,
        deployments::list_deployments,
        deployments::get_deployment,
        deployments::patch_deployment,
        deployments::pause_deployment,
        deployments::resume_deployment,
        deployments::rollback_deployment,
        deployments::delete_deployment,
        logs::deployment_logs,
        deployments::deployment_dead_letters,
        deployments::redrive_dead_letters,
        topics::create_topic,
        topics::list_topics,
        topics::get_topic,
        topics::alter_topic,
        topics::delete_topic,
        ingest_doc
    ),
    components(schemas(
        ModuleInfo,
        ErrorBody,
        CreateDeployment,
        crate::deployment::Fields,
        DeploymentStatus,
        LogLine,
        crate::api::DeadLetterPage,
        crate::api::RedriveRequest,
        crate::api::RedriveReport,
        crate::api::TopicInfo,
        crate::api::CreateTopic,
        crate::api::AlterTopic
    ))
)]
struct ApiDoc;

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let body_unread = matches!(
            self,
            Error::Unauthenticated | Error::TooLarge(_) | Error::BodyTimeout(_)
        );
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Both mean "not now": say when to come back (seconds).
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        // These are answered without reading the request body, after which
        // the server cannot reuse the connection; say so, or a pooling
        // client may send its next request into a closing socket.
        if body_unread {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The router, with authentication on every `/v1` route but the document.
pub fn router(state: Arc<HttpState>) -> Router {
    // Only an upload may be as large as a module; every JSON body is small.
    let uploads = Router::new()
        .route("/modules", get(list_modules).post(upload_module))
        .layer(DefaultBodyLimit::max(state.service.max_module_bytes));
    let json = Router::new()
        .route("/modules/{digest}", get(get_module).delete(delete_module))
        .route(
            "/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route(
            "/deployments/{name}",
            get(get_deployment)
                .patch(patch_deployment)
                .delete(delete_deployment),
        )
        .route("/deployments/{name}/pause", post(pause_deployment))
        .route("/deployments/{name}/resume", post(resume_deployment))
        .route("/deployments/{name}/rollback", post(rollback_deployment))
        .route("/deployments/{name}/logs", get(deployment_logs))
        .route(
            "/deployments/{name}/dead-letters",
            get(deployments::deployment_dead_letters),
        )
        .route(
            "/topics",
            get(topics::list_topics).post(topics::create_topic),
        )
        .route(
            "/topics/{name}",
            get(topics::get_topic)
                .patch(topics::alter_topic)
                .delete(topics::delete_topic),
        )
        .route(
            "/deployments/{name}/dead-letters/redrive",
            post(deployments::redrive_dead_letters),
        )
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT));
    let v1 = uploads
        .merge(json)
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), writable));
    // Ingest checks its callers itself (a tenant token or the deployment's
    // ingest key) and bounds the body by the deployment's own limit.
    let ingest = Router::new()
        .route("/{name}", any(super::ingest::ingest_root))
        .route("/{name}/{*path}", any(super::ingest::ingest_path))
        .layer(DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn_with_state(state.clone(), recovered));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(|| async { Json(openapi()) }))
        .nest("/v1/ingest", ingest)
        .nest("/v1", v1)
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    limits: accept::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    accept::serve(listener, router(state), limits, shutdown).await
}

/// Until the runner has applied the state it found in Kafka, every
/// request but a read answers 503 with `Retry-After`, before its body is
/// read (the service refuses such changes too).
async fn writable(State(state): AppState, request: Request, next: Next) -> Response {
    let read = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if read {
        return next.run(request).await;
    }
    recovered(State(state), request, next).await
}

/// Ingest publishes through deployments the runner starts while it
/// recovers: nothing until then.
async fn recovered(State(state): AppState, request: Request, next: Next) -> Response {
    match state.service.check_ready() {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let mut response = e.into_response();
            // Answered without reading the body: the connection cannot be
            // reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn authenticate(State(state): AppState, mut request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.service.auth.authenticate(header) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => {
            let e = Error::from(e);
            tracing::info!(target: "ingesta::audit", who = "anonymous",
                method = %request.method(), path = %request.uri().path(), outcome = e.kind(),
                "request refused: no valid token");
            e.into_response()
        }
    }
}

pub(super) fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, Error> {
    body.map(|Json(b)| b).map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::TooLarge(JSON_BODY_LIMIT)
        } else {
            Error::Invalid(format!("invalid request body: {}", e.body_text()))
        }
    })
}

/// The largest JSON body any route takes (a deployment spec with its
/// config map is a few KiB); uploads have their own limit
/// (`control.max_module_mib`).
pub const JSON_BODY_LIMIT: usize = 1 << 20;

/// `?tenant=`: the operator acting on a tenant's deployment.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct TenantQuery {
    /// The tenant to act for (operator only).
    pub(super) tenant: Option<String>,
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the runner applied the state it found in Kafka.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "still starting")))]
async fn readyz(State(state): AppState) -> (StatusCode, &'static str) {
    if state.service.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// Prometheus metrics of this runner and its deployments (text format).
/// Open unless `control.metrics_token_sha256` is set; then the scrape
/// token or the operator's reads every series, a tenant's token only its
/// own deployments' series.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain"),
        (status = 401, description = "a scrape token is configured and none valid was sent", body = ErrorBody)))]
async fn metrics(State(state): AppState, headers: axum::http::HeaderMap) -> Response {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let scope = match state.service.auth.scrape(header) {
        Ok(scope) => scope,
        Err(e) => return Error::from(e).into_response(),
    };
    let text = state.service.metrics_text(&scope).await;
    (
        [(
            header::CONTENT_TYPE,
            crate::telemetry::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}

/// Send an HTTP request to a producer deployment's module (any method; a
/// path after the name is passed on). Authenticate with the tenant's token
/// or the deployment's ingest key. Answered with the module's response once
/// Kafka acknowledged every record it emitted.
#[utoipa::path(post, path = "/v1/ingest/{name}", tag = "ingest",
    params(("name" = String, Path, description = "the producer deployment")),
    request_body(content = Vec<u8>, description = "passed to the module as is"),
    responses(
        (status = 200, description = "the module's response (any 2xx/3xx), records acknowledged; header `ingesta-published` counts them"),
        (status = 400, description = "the module refused the request (a permanent error, or its own 4xx); nothing published", body = ErrorBody),
        (status = 401, description = "no valid token or ingest key", body = ErrorBody),
        (status = 404, description = "no such producer deployment for this caller", body = ErrorBody),
        (status = 413, description = "body over ingest.max_body_bytes", body = ErrorBody),
        (status = 429, description = "ingest.max_concurrency requests in flight; see Retry-After", body = ErrorBody),
        (status = 500, description = "the module crashed; its instance was replaced", body = ErrorBody),
        (status = 503, description = "Kafka did not acknowledge in time, the module asked for a retry, or the deployment is paused; see Retry-After", body = ErrorBody)),
    security(("bearer" = [])))]
#[allow(
    dead_code,
    reason = "documents the ingest routes, which are served by control::ingest"
)]
async fn ingest_doc() {}
