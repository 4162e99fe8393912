//! `/v1/modules`: upload, list, inspect and delete components.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::AppState;
use crate::api::{ErrorBody, ModuleInfo};
use crate::auth::Caller;
use crate::control::Error;
use crate::control::service::audit;

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
        (status = 408, description = "the body took longer than control.body_read_timeout_ms", body = ErrorBody),
        (status = 413, description = "larger than the upload limit", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn upload_module(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<(StatusCode, Json<ModuleInfo>), Error> {
    let bytes = state
        .read_body(body, state.service.max_module_bytes)
        .await
        .inspect_err(|e| audit::<()>(&caller, "module.upload", "-", &Err(e.clone())))?;
    let (info, created) = state.service.upload(&caller, bytes.to_vec()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)))
}

/// The caller's modules (every module for the operator).
#[utoipa::path(get, path = "/v1/modules", tag = "modules",
    responses((status = 200, body = Vec<ModuleInfo>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_modules(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
) -> Json<Vec<ModuleInfo>> {
    Json(state.service.modules(&caller))
}

/// One module by digest (`sha256:<hex>`).
#[utoipa::path(get, path = "/v1/modules/{digest}", tag = "modules",
    params(("digest" = String, Path, description = "`sha256:<hex>`")),
    responses((status = 200, body = ModuleInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get_module(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(digest): Path<String>,
) -> Result<Json<ModuleInfo>, Error> {
    state.service.module(&caller, &digest).map(Json)
}

/// Delete the caller's module (every owner's, for the operator). Refused
/// (409) while one of the caller's deployments runs it or keeps it for
/// rollback.
#[utoipa::path(delete, path = "/v1/modules/{digest}", tag = "modules",
    params(("digest" = String, Path, description = "`sha256:<hex>`")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn delete_module(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(digest): Path<String>,
) -> Result<StatusCode, Error> {
    state.service.delete_module(&caller, &digest).await?;
    Ok(StatusCode::NO_CONTENT)
}
