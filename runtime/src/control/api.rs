//! The HTTP API: routes, authentication middleware, audit lines and the
//! OpenAPI document generated from these handlers.
//!
//! `/healthz`, `/readyz` and `/v1/openapi.json` are open (probes and
//! tooling must reach them without a token); everything else under `/v1`
//! needs a bearer token, checked before a request body is read.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use utoipa::OpenApi;

use super::auth::{Auth, Caller};
use super::modules::{ModuleInfo, ModuleRegistry};
use super::{ApiError, ErrorBody};

/// What every handler shares.
pub struct ApiState {
    pub auth: Auth,
    pub modules: ModuleRegistry,
    /// For checking and compiling uploads.
    pub engine: wasmtime::Engine,
    pub compile_cache: PathBuf,
    /// Largest accepted upload.
    pub max_module_bytes: usize,
    /// Set once the runner has started what it was configured with.
    pub ready: AtomicBool,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ingesta control plane",
        description = "Upload WebAssembly components and manage deployments. Send `Authorization: Bearer <token>`."
    ),
    paths(
        healthz,
        readyz,
        upload_module,
        list_modules,
        get_module,
        delete_module
    ),
    components(schemas(ModuleInfo, ErrorBody))
)]
struct ApiDoc;

/// The OpenAPI document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The router, with authentication on every `/v1` route but the document.
pub fn router(state: Arc<ApiState>) -> Router {
    let limit = state.max_module_bytes;
    let v1 = Router::new()
        .route("/modules", get(list_modules).post(upload_module))
        .route("/modules/{digest}", get(get_module).delete(delete_module))
        .layer(DefaultBodyLimit::max(limit))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/openapi.json", get(|| async { Json(openapi()) }))
        .nest("/v1", v1)
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.auth.authenticate(header) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => {
            tracing::info!(target: "ingesta::audit", who = "anonymous",
                method = %request.method(), path = %request.uri().path(), result = 401,
                "request refused: no valid token");
            e.into_response()
        }
    }
}

/// One structured line per mutation: who, tenant, action, object, result.
fn audit(caller: &Caller, action: &str, object: &str, outcome: Result<StatusCode, &ApiError>) {
    let (status, error) = match outcome {
        Ok(s) => (s.as_u16(), String::new()),
        Err(e) => (e.status().as_u16(), e.to_string()),
    };
    let who = match caller {
        Caller::Operator => "operator",
        Caller::Tenant(_) => "tenant",
    };
    tracing::info!(target: "ingesta::audit", who, tenant = caller.name(), action, object,
        result = status, error, "control-plane mutation");
}

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the runner started what its config names.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "still starting")))]
async fn readyz(State(state): State<Arc<ApiState>>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// Upload a component. It is checked before it is accepted: a WebAssembly
/// component (not a core module), implementing a known ingesta world,
/// importing only our WIT and WASI, and compiling. The same bytes twice are
/// the same module.
#[utoipa::path(post, path = "/v1/modules", tag = "modules",
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 201, description = "stored", body = ModuleInfo),
        (status = 200, description = "already stored for this tenant", body = ModuleInfo),
        (status = 400, description = "not an acceptable component", body = ErrorBody),
        (status = 401, description = "no valid token", body = ErrorBody),
        (status = 413, description = "larger than the upload limit", body = ErrorBody)),
    security(("bearer" = [])))]
async fn upload_module(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModuleInfo>), ApiError> {
    let result = async {
        let bytes = body.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(state.max_module_bytes)
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {e}"))
            }
        })?;
        let (worker_state, worker_caller) = (state.clone(), caller.clone());
        tokio::task::spawn_blocking(move || {
            worker_state.modules.add(
                &worker_caller,
                &bytes,
                &worker_state.engine,
                &worker_state.compile_cache,
            )
        })
        .await
        .map_err(|e| ApiError::Internal(format!("module check panicked: {e}")))?
    }
    .await;
    match result {
        Ok((info, created)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            audit(&caller, "module.upload", &info.digest, Ok(status));
            Ok((status, Json(info)))
        }
        Err(e) => {
            audit(&caller, "module.upload", "-", Err(&e));
            Err(e)
        }
    }
}

/// The caller's modules (every module for the operator).
#[utoipa::path(get, path = "/v1/modules", tag = "modules",
    responses((status = 200, body = Vec<ModuleInfo>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_modules(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<ModuleInfo>> {
    Json(state.modules.list(&caller))
}

/// One module by digest (`sha256:<hex>`).
#[utoipa::path(get, path = "/v1/modules/{digest}", tag = "modules",
    params(("digest" = String, Path, description = "`sha256:<hex>`")),
    responses((status = 200, body = ModuleInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_module(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(digest): Path<String>,
) -> Result<Json<ModuleInfo>, ApiError> {
    state.modules.get(&caller, &digest).map(Json)
}

/// Delete the caller's module (every owner's, for the operator).
#[utoipa::path(delete, path = "/v1/modules/{digest}", tag = "modules",
    params(("digest" = String, Path, description = "`sha256:<hex>`")),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_module(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(digest): Path<String>,
) -> Result<StatusCode, ApiError> {
    let result = state
        .modules
        .remove(&caller, &digest)
        .map(|()| StatusCode::NO_CONTENT);
    audit(&caller, "module.delete", &digest, result.as_ref().copied());
    result
}
