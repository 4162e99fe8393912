//! The HTTP API: routes, authentication middleware, audit lines and the
//! OpenAPI document generated from these handlers.
//!
//! `/healthz`, `/readyz`, `/metrics` and `/v1/openapi.json` are open
//! (probes, Prometheus and tooling must reach them without a token);
//! everything else under `/v1` needs a bearer token, checked before a
//! request body is read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Json, Router};
use utoipa::OpenApi;

use super::auth::{Auth, Caller};
use super::deployments::{self, CreateDeployment, DeploymentRecord, PatchDeployment, Settings};
use super::modules::{ModuleInfo, ModuleRegistry};
use super::state::{StateLog, StateTopic};
use super::{ApiError, ErrorBody};
use crate::config::KafkaConfig;
use crate::supervisor::{DeploymentStatus, Supervisor};
use crate::telemetry::guest_log::{KEPT_LINES, LogLine};

/// What every handler shares.
pub struct ApiState {
    pub auth: Auth,
    pub modules: Arc<ModuleRegistry>,
    pub supervisor: Arc<Supervisor>,
    /// Where every change is written.
    pub state: Arc<StateLog>,
    /// For checking that topics exist.
    pub kafka: KafkaConfig,
    /// Whether deployments may set `limits.fuel`.
    pub fuel_metering: bool,
    /// Largest accepted upload.
    pub max_module_bytes: usize,
    /// Set once the runner has started what it was configured with.
    pub ready: AtomicBool,
    /// Turns true when the API shuts down, so followed logs end (a
    /// graceful shutdown waits for open responses).
    pub closing: tokio::sync::watch::Receiver<bool>,
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
        metrics,
        upload_module,
        list_modules,
        get_module,
        delete_module,
        create_deployment,
        list_deployments,
        get_deployment,
        patch_deployment,
        pause_deployment,
        resume_deployment,
        rollback_deployment,
        delete_deployment,
        deployment_logs,
        ingest_doc
    ),
    components(schemas(
        ModuleInfo,
        ErrorBody,
        CreateDeployment,
        PatchDeployment,
        DeploymentStatus,
        LogLine
    ))
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
        .layer(DefaultBodyLimit::max(limit))
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
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Until the runner has applied the state it found in Kafka, a change
/// would be checked against (and could overwrite) a state it has not read
/// yet: every request but a read answers 503 with `Retry-After`.
async fn writable(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let read = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if read || state.ready.load(Ordering::Acquire) {
        return next.run(request).await;
    }
    not_recovered()
}

/// Ingest publishes through deployments the runner starts while it
/// recovers: nothing until then.
async fn recovered(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    if state.ready.load(Ordering::Acquire) {
        return next.run(request).await;
    }
    not_recovered()
}

fn not_recovered() -> Response {
    let mut response = ApiError::Unavailable(
        "the runner is still recovering the control plane's state from Kafka; retry in a moment"
            .into(),
    )
    .into_response();
    // Answered without reading the body: the connection cannot be reused.
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
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
        let (modules, body) = (state.modules.clone(), bytes.clone());
        let checked = tokio::task::spawn_blocking(move || modules.check(&body))
            .await
            .map_err(|e| ApiError::Internal(format!("module check panicked: {e}")))??;
        state
            .modules
            .store(&state.state, &caller, &bytes, checked)
            .await
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

/// Delete the caller's module (every owner's, for the operator). Refused
/// (409) while one of the caller's deployments runs it or keeps it for
/// rollback.
#[utoipa::path(delete, path = "/v1/modules/{digest}", tag = "modules",
    params(("digest" = String, Path, description = "`sha256:<hex>`")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_module(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(digest): Path<String>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        state.modules.get(&caller, &digest)?;
        if let Some(user) = state.supervisor.user_of(&caller, &digest) {
            return Err(ApiError::Conflict(format!(
                "module {digest:?} is used by deployment {user:?} (now or for rollback); delete or update that deployment first"
            )));
        }
        state.modules.remove(&state.state, &caller, &digest).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    audit(&caller, "module.delete", &digest, result.as_ref().copied());
    result
}

/// `?tenant=`: the operator acting on a tenant's deployment.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
struct TenantQuery {
    /// The tenant to act for (operator only).
    tenant: Option<String>,
}

/// A deployment name as the caller means it: tenants name their own; the
/// operator names `<tenant>/<name>`, a name unique across tenants, or a
/// config-file deployment.
enum Target {
    Api(Box<DeploymentRecord>),
    Config(String),
}

fn find(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    q: &TenantQuery,
) -> Result<Target, ApiError> {
    let lookup = match (&q.tenant, caller) {
        (Some(t), Caller::Operator) => deployments::key(t, name),
        _ => name.to_owned(),
    };
    if let Some(r) = state.supervisor.record(caller, &lookup) {
        return Ok(Target::Api(Box::new(r)));
    }
    if matches!(caller, Caller::Operator) && state.supervisor.is_static(name) {
        return Ok(Target::Config(name.to_owned()));
    }
    Err(ApiError::NotFound(format!("deployment {name:?}")))
}

fn api_record(target: Target) -> Result<DeploymentRecord, ApiError> {
    match target {
        Target::Api(r) => Ok(*r),
        Target::Config(name) => Err(ApiError::Conflict(format!(
            "deployment {name:?} is defined in the runner's config file; change it there"
        ))),
    }
}

/// Checks settings as the caller may ask for them, that the module is one
/// the caller can see, and that every topic exists.
async fn check_settings(
    state: &ApiState,
    caller: &Caller,
    key: &str,
    name: &str,
    settings: &Settings,
) -> Result<(), ApiError> {
    settings.check(name, caller, state.fuel_metering)?;
    let Ok(module) = state.modules.get(caller, &settings.module) else {
        return Err(ApiError::BadRequest(format!(
            "deployment {name:?}: module {:?} not found; upload it first (POST /v1/modules) and use the digest it returns",
            settings.module
        )));
    };
    let world = match module.world.as_str() {
        "producer" => crate::wasm::World::Producer,
        _ => crate::wasm::World::Consumer,
    };
    if let Some(hash) = &settings.ingest.key_sha256 {
        // A key picks its deployment on its own (tenants' deployments may
        // share a name), so no two deployments may share one.
        let taken = state
            .supervisor
            .ingest_key_users(hash)
            .iter()
            .any(|k| k != key);
        if taken {
            return Err(ApiError::Conflict(format!(
                "deployment {name:?}: ingest.key_sha256 is already used by another deployment; every deployment needs a key of its own (generate a new one)"
            )));
        }
    }
    crate::supervisor::check_world(&settings.to_config(name), world).map_err(|e| {
        ApiError::BadRequest(format!(
            "deployment {name:?}: module {:?} {e}",
            settings.module
        ))
    })?;
    let (kafka, config) = (state.kafka.clone(), settings.to_config(name));
    tokio::task::spawn_blocking(move || crate::pipeline::check_topics_exist(&kafka, &config))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(format!("{e:#}")))
}

/// Write the record (`None`: delete it) and wait until this runner has
/// applied it.
async fn write(
    state: &ApiState,
    key: &str,
    record: Option<&DeploymentRecord>,
) -> Result<(), ApiError> {
    let value = record
        .map(serde_json::to_vec)
        .transpose()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let offset = state
        .state
        .put(StateTopic::Deployments, key, value.as_deref())
        .await?;
    state
        .state
        .wait_applied(StateTopic::Deployments, offset)
        .await
}

/// The status after a change: from memory, without the per-partition
/// offsets (which take broker round trips; `GET` has them).
fn brief_status_of(state: &ApiState, key: &str, name: &str) -> Result<DeploymentStatus, ApiError> {
    state
        .supervisor
        .brief_status(key)
        .ok_or_else(|| ApiError::NotFound(format!("deployment {name:?}")))
}

async fn status_of(state: &ApiState, key: &str, name: &str) -> Result<DeploymentStatus, ApiError> {
    match state.supervisor.status(key).await {
        Some(Ok(s)) => Ok(s),
        Some(Err(e)) => Err(ApiError::Unavailable(format!(
            "deployment {name:?}: cannot read its offsets from Kafka: {e:#}"
        ))),
        None => Err(ApiError::NotFound(format!("deployment {name:?}"))),
    }
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::BadRequest(format!("invalid request body: {}", e.body_text())))
}

/// Create a deployment: check it (settings, module, grants, topics), store
/// it in the state topic, start it. The operator creates on behalf of a
/// tenant (`?tenant=`).
#[utoipa::path(post, path = "/v1/deployments", tag = "deployments",
    params(TenantQuery),
    request_body = CreateDeployment,
    responses(
        (status = 201, body = DeploymentStatus),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "topic, group or limit outside the grants", body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_deployment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<TenantQuery>,
    body: Result<Json<CreateDeployment>, JsonRejection>,
) -> Result<(StatusCode, Json<DeploymentStatus>), ApiError> {
    let mut object = String::from("-");
    let result = async {
        let CreateDeployment {
            name,
            settings,
            paused,
        } = json_body(body)?;
        object = name.clone();
        let tenant = match (&caller, q.tenant) {
            (Caller::Tenant(t), _) => t.name.clone(),
            (Caller::Operator, Some(t)) => t,
            (Caller::Operator, None) => {
                return Err(ApiError::BadRequest(
                    "the operator creates deployments on behalf of a tenant: add ?tenant=NAME"
                        .into(),
                ));
            }
        };
        let key = deployments::key(&tenant, &name);
        object = key.clone();
        check_settings(&state, &caller, &key, &name, &settings).await?;
        if state.supervisor.record(&Caller::Operator, &key).is_some() {
            return Err(ApiError::Conflict(format!(
                "deployment {name:?} already exists; change it with PATCH /v1/deployments/{name}"
            )));
        }
        if let Caller::Tenant(t) = &caller
            && let Some(max) = t.max_deployments
            && state.supervisor.count_for(&tenant) >= max
        {
            return Err(ApiError::Forbidden(format!(
                "tenant {tenant:?} already has its maximum of {max} deployments"
            )));
        }
        let record = DeploymentRecord::create(&tenant, name.clone(), settings, paused, &caller);
        write(&state, &key, Some(&record)).await?;
        brief_status_of(&state, &key, &name)
    }
    .await;
    audit(
        &caller,
        "deployment.create",
        &object,
        result.as_ref().map(|_| StatusCode::CREATED),
    );
    result.map(|s| (StatusCode::CREATED, Json(s)))
}

/// The caller's deployments (every tenant's and the config file's, for the
/// operator).
#[utoipa::path(get, path = "/v1/deployments", tag = "deployments",
    params(ListQuery),
    responses((status = 200, body = Vec<DeploymentStatus>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
async fn list_deployments(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Json<Vec<DeploymentStatus>> {
    Json(state.supervisor.list(&caller, q.lag).await)
}

/// `GET /v1/deployments` options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// Also read every deployment's per-partition offsets and lag from
    /// Kafka (in parallel, at most 5 s; `ingesta top` uses it).
    #[serde(default)]
    lag: bool,
}

/// `GET /v1/deployments/{name}/logs` options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
struct LogsQuery {
    /// Keep the response open and stream lines as they are logged.
    #[serde(default)]
    follow: bool,
    /// Only lines numbered (`seq`) above this.
    #[serde(default)]
    after: u64,
    /// At most this many of the latest lines first (default 100, at most
    /// 1000).
    limit: Option<usize>,
    /// The tenant to act for (operator only).
    tenant: Option<String>,
}

/// How often a followed log with nothing new sends a blank line, so a
/// client that went away is noticed.
const LOG_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

fn ndjson(lines: &[LogLine]) -> Bytes {
    let mut out = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut out, l).expect("a log line serializes");
        out.push(b'\n');
    }
    out.into()
}

/// The deployment's guest log on this runner: its `log` calls and
/// stdout/stderr lines as kept after the rate limit, oldest first, as
/// newline-delimited JSON; with `follow`, new lines as they come.
#[utoipa::path(get, path = "/v1/deployments/{name}/logs", tag = "deployments",
    params(("name" = String, Path), LogsQuery),
    responses((status = 200, description = "One JSON object per line (blank lines are heartbeats)",
        content_type = "application/x-ndjson", body = LogLine),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn deployment_logs(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let tenant = TenantQuery {
        tenant: q.tenant.clone(),
    };
    let key = match find(&state, &caller, &name, &tenant)? {
        Target::Api(r) => r.key(),
        Target::Config(n) => n,
    };
    let telemetry = state
        .supervisor
        .telemetry(&key)
        .ok_or_else(|| ApiError::NotFound(format!("deployment {name:?}")))?;
    let first = telemetry
        .log
        .lines_after(q.after, q.limit.unwrap_or(100).clamp(1, KEPT_LINES));
    let content_type = [(header::CONTENT_TYPE, "application/x-ndjson")];
    if !q.follow {
        return Ok((content_type, ndjson(&first)).into_response());
    }
    let follow = Follow {
        after: first.last().map_or(q.after, |l| l.seq),
        telemetry,
        supervisor: state.supervisor.clone(),
        key,
        closing: state.closing.clone(),
    };
    use futures_util::StreamExt;
    let stream = futures_util::stream::once(std::future::ready(ndjson(&first)))
        .chain(futures_util::stream::unfold(follow, Follow::next))
        .map(Ok::<_, std::convert::Infallible>);
    Ok((content_type, axum::body::Body::from_stream(stream)).into_response())
}

/// A followed guest log: the lines after `after`, as they come.
struct Follow {
    after: u64,
    telemetry: Arc<crate::telemetry::DeploymentTelemetry>,
    supervisor: Arc<Supervisor>,
    key: String,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Follow {
    /// The next chunk: new lines, or a blank heartbeat line after
    /// [`LOG_HEARTBEAT`] without any; `None` once the API shuts down or the
    /// deployment is gone.
    async fn next(mut self) -> Option<(Bytes, Self)> {
        let telemetry = self.telemetry.clone();
        loop {
            let appended = telemetry.log.appended();
            let lines = telemetry.log.lines_after(self.after, KEPT_LINES);
            if let Some(last) = lines.last() {
                self.after = last.seq;
                return Some((ndjson(&lines), self));
            }
            let quiet = tokio::select! {
                _ = appended => false,
                _ = self.closing.wait_for(|c| *c) => return None,
                _ = tokio::time::sleep(LOG_HEARTBEAT) => true,
            };
            if quiet {
                // Removed (or removed and created again): end.
                let current = self.supervisor.telemetry(&self.key);
                if !current.is_some_and(|t| Arc::ptr_eq(&t, &telemetry)) {
                    return None;
                }
                return Some((Bytes::from_static(b"\n"), self));
            }
        }
    }
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

/// Prometheus metrics of this runner and its deployments (text format).
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let text = state.supervisor.metrics_text().await;
    (
        [(
            header::CONTENT_TYPE,
            crate::telemetry::metrics::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}

/// One deployment: state, revision, counters, and per input partition the
/// committed offset, high watermark and lag.
#[utoipa::path(get, path = "/v1/deployments/{name}", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_deployment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<DeploymentStatus>, ApiError> {
    let key = match find(&state, &caller, &name, &q)? {
        Target::Api(r) => r.key(),
        Target::Config(n) => n,
    };
    status_of(&state, &key, &name).await.map(Json)
}

/// Change a deployment (see [`PatchDeployment`] for what swaps at a batch
/// boundary, what restarts, and `start` for replays).
#[utoipa::path(patch, path = "/v1/deployments/{name}", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    request_body = PatchDeployment,
    responses((status = 200, body = DeploymentStatus), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn patch_deployment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
    body: Result<Json<PatchDeployment>, JsonRejection>,
) -> Result<Json<DeploymentStatus>, ApiError> {
    let result = async {
        let record = api_record(find(&state, &caller, &name, &q)?)?;
        let patch = json_body(body)?;
        let key = record.key();
        if let Some(next) = record.patched(patch, &caller) {
            if next.settings != record.settings {
                check_settings(&state, &caller, &key, &record.name, &next.settings).await?;
            }
            write(&state, &key, Some(&next)).await?;
        }
        brief_status_of(&state, &key, &name)
    }
    .await;
    audit(
        &caller,
        "deployment.update",
        &name,
        result.as_ref().map(|_| StatusCode::OK),
    );
    result.map(Json)
}

/// Apply `change` to the deployment's record and answer its new status.
async fn transition(
    state: &ApiState,
    caller: &Caller,
    name: &str,
    q: &TenantQuery,
    action: &str,
    change: impl FnOnce(&DeploymentRecord) -> Result<DeploymentRecord, ApiError>,
) -> Result<Json<DeploymentStatus>, ApiError> {
    let result = async {
        let record = api_record(find(state, caller, name, q)?)?;
        let next = change(&record)?;
        let key = record.key();
        if next != record {
            write(state, &key, Some(&next)).await?;
        }
        brief_status_of(state, &key, name)
    }
    .await;
    audit(
        caller,
        action,
        name,
        result.as_ref().map(|_| StatusCode::OK),
    );
    result.map(Json)
}

/// Stop consuming (what was handled is committed); the deployment keeps
/// its settings and offsets.
#[utoipa::path(post, path = "/v1/deployments/{name}/pause", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn pause_deployment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<DeploymentStatus>, ApiError> {
    transition(&state, &caller, &name, &q, "deployment.pause", |r| {
        Ok(r.with_paused(true, &caller))
    })
    .await
}

/// Consume again from the committed offsets; also restarts a failed
/// deployment.
#[utoipa::path(post, path = "/v1/deployments/{name}/resume", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn resume_deployment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<DeploymentStatus>, ApiError> {
    transition(&state, &caller, &name, &q, "deployment.resume", |r| {
        Ok(r.with_paused(false, &caller))
    })
    .await
}

/// Go back to the previous revision (module and settings); rolling back
/// again goes forward.
#[utoipa::path(post, path = "/v1/deployments/{name}/rollback", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody),
        (status = 409, description = "no previous revision", body = ErrorBody)),
    security(("bearer" = [])))]
async fn rollback_deployment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<Json<DeploymentStatus>, ApiError> {
    transition(&state, &caller, &name, &q, "deployment.rollback", |r| {
        r.rolled_back(&caller)
    })
    .await
}

/// Stop the deployment (committing what it handled) and forget it. The
/// consumer group and its offsets stay in Kafka.
#[utoipa::path(delete, path = "/v1/deployments/{name}", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_deployment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        let record = api_record(find(&state, &caller, &name, &q)?)?;
        write(&state, &record.key(), None).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    audit(
        &caller,
        "deployment.delete",
        &name,
        result.as_ref().copied(),
    );
    result
}
