//! `/v1/deployments`: create, list, inspect, change, pause, resume, roll
//! back and delete deployments.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Map, Value};

use super::{AppState, TenantQuery, json_body};
use crate::api::{
    CreateDeployment, DeadLetterCursor, DeadLetterPage, DeploymentStatus, ErrorBody, RedriveReport,
    RedriveRequest,
};
use crate::auth::Caller;
use crate::control::Error;
use crate::control::service::audit;

/// Create a deployment: check it (spec, module, grants, topics), store it
/// in the state topic, start it. The operator creates on behalf of a
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
pub(super) async fn create_deployment(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Query(q): Query<TenantQuery>,
    body: Result<Json<CreateDeployment>, JsonRejection>,
) -> Result<(StatusCode, Json<DeploymentStatus>), Error> {
    let body = json_body(body).inspect_err(|e| {
        audit::<()>(&caller, "deployment.create", "-", &Err(e.clone()));
    })?;
    let status = state.service.create(&caller, q.tenant, body).await?;
    Ok((StatusCode::CREATED, Json(status)))
}

/// `GET /v1/deployments` options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct ListQuery {
    /// Also read every deployment's per-partition offsets and lag (one
    /// look-up for all, at most 5 s; `ingesta top` uses it).
    #[serde(default)]
    lag: bool,
}

/// The caller's deployments (every tenant's and the config file's, for the
/// operator).
#[utoipa::path(get, path = "/v1/deployments", tag = "deployments",
    params(ListQuery),
    responses((status = 200, body = Vec<DeploymentStatus>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_deployments(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> Json<Vec<DeploymentStatus>> {
    Json(state.service.deployments(&caller, q.lag).await)
}

/// One deployment: state, revision, counters, notes, and per input
/// partition the committed offset, high watermark and lag.
#[utoipa::path(get, path = "/v1/deployments/{name}", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get_deployment(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Result<
    (
        [(axum::http::HeaderName, String); 1],
        Json<DeploymentStatus>,
    ),
    Error,
> {
    let status = state
        .service
        .deployment(&caller, &name, q.tenant.as_deref())
        .await?;
    let etag = format!("\"{}\"", status.version);
    Ok(([(axum::http::header::ETAG, etag)], Json(status)))
}

/// The version an `If-Match` header names (`"7"` or `7`); `None` without
/// one; 400 for anything else (`*` included: name the version read).
fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<u64>, Error> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::Invalid(
                "If-Match must name the deployment's version as read (its ETag, e.g. \"7\")".into(),
            )
        })
}

/// Change a deployment: any spec field given replaces its value (a table
/// whole); `null` leaves it. A new `module`, `outputs`, `limits`,
/// `failure`, `config`, `ingest` or `schedule` is swapped in at each
/// partition's next batch (a producer's next request or tick); new
/// `inputs`, `group` or `batch` restart it; `start` replays from there.
#[utoipa::path(patch, path = "/v1/deployments/{name}", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    request_body(content = Object, description = "any of the creation fields (without `name` and `paused`)"),
    responses((status = 200, body = DeploymentStatus), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "changed since the version named in If-Match, or by a write racing this one", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn patch_deployment(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
    headers: axum::http::HeaderMap,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> Result<Json<DeploymentStatus>, Error> {
    let patch = json_body(body).inspect_err(|e| {
        audit::<()>(&caller, "deployment.update", &name, &Err(e.clone()));
    })?;
    let status = state
        .service
        .patch(
            &caller,
            &name,
            q.tenant.as_deref(),
            patch,
            if_match(&headers)?,
        )
        .await?;
    Ok(Json(status))
}

/// Stop consuming (what was handled is committed); the deployment keeps
/// its settings and offsets.
#[utoipa::path(post, path = "/v1/deployments/{name}/pause", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn pause_deployment(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Json<DeploymentStatus>, Error> {
    let service = &state.service;
    Ok(Json(
        service
            .set_paused(
                &caller,
                &name,
                q.tenant.as_deref(),
                true,
                if_match(&headers)?,
            )
            .await?,
    ))
}

/// Consume again from the committed offsets; also restarts a failed
/// deployment.
#[utoipa::path(post, path = "/v1/deployments/{name}/resume", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn resume_deployment(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Json<DeploymentStatus>, Error> {
    let service = &state.service;
    Ok(Json(
        service
            .set_paused(
                &caller,
                &name,
                q.tenant.as_deref(),
                false,
                if_match(&headers)?,
            )
            .await?,
    ))
}

/// Go back to the previous revision (module and settings); rolling back
/// again goes forward.
#[utoipa::path(post, path = "/v1/deployments/{name}/rollback", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 200, body = DeploymentStatus), (status = 404, body = ErrorBody),
        (status = 409, description = "no previous revision", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn rollback_deployment(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Json<DeploymentStatus>, Error> {
    Ok(Json(
        state
            .service
            .rollback(&caller, &name, q.tenant.as_deref(), if_match(&headers)?)
            .await?,
    ))
}

/// Stop the deployment (committing what it handled) and forget it. The
/// consumer group and its offsets stay in Kafka.
#[utoipa::path(delete, path = "/v1/deployments/{name}", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn delete_deployment(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, Error> {
    state
        .service
        .delete(&caller, &name, q.tenant.as_deref(), if_match(&headers)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/deployments/{name}/dead-letters` options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct DeadLettersQuery {
    /// Start at this partition of the dead-letter topic (default 0; the
    /// `next` of the previous page).
    #[serde(default)]
    partition: i32,
    /// Start at this offset in `partition` (default: its first).
    #[serde(default)]
    offset: i64,
    /// At most this many dead letters (default 100, at most 1000).
    limit: Option<usize>,
    /// The tenant to act for (operator only).
    tenant: Option<String>,
}

/// The deployment's dead letters: each input record it set aside, as it
/// was, with where it came from and why (the `ingesta.*` headers decoded),
/// by partition and offset of its dead-letter topic. A tenant reads its
/// own deployments' dead letters whatever its topic read grants.
#[utoipa::path(get, path = "/v1/deployments/{name}/dead-letters", tag = "deployments",
    params(("name" = String, Path), DeadLettersQuery),
    responses((status = 200, body = DeadLetterPage),
        (status = 404, description = "no such deployment, or it has no dead-letter topic", body = ErrorBody),
        (status = 429, description = "two pages are being read on this runner already", body = ErrorBody),
        (status = 503, description = "Kafka did not answer in time", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn deployment_dead_letters(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<DeadLettersQuery>,
) -> Result<Json<DeadLetterPage>, Error> {
    let from = DeadLetterCursor {
        partition: q.partition.max(0),
        offset: q.offset.max(0),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = state
        .service
        .dead_letters(&caller, &name, q.tenant.as_deref(), from, limit)
        .await?;
    Ok(Json(page))
}

/// Hand chosen dead letters to the deployment again: copies of them (key,
/// value, headers, timestamp, plus `ingesta.redrive.of` naming the dead
/// letter) go to the deployment's own redrive topic, which it reads beside
/// its inputs, so no other group reading the inputs sees them. A source
/// partition's copies keep its order. A dead letter redriven before is
/// skipped, so sending the same request twice redrives nothing twice.
#[utoipa::path(post, path = "/v1/deployments/{name}/dead-letters/redrive", tag = "deployments",
    params(("name" = String, Path), TenantQuery),
    request_body = RedriveRequest,
    responses((status = 200, body = RedriveReport),
        (status = 400, description = "the request selects nothing, or the deployment is a producer", body = ErrorBody),
        (status = 404, description = "no such deployment, or it has no dead-letter topic", body = ErrorBody),
        (status = 429, description = "dead-letter reads are under way on this runner", body = ErrorBody),
        (status = 503, description = "Kafka did not answer in time; what was copied is kept", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn redrive_dead_letters(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
    body: Result<Json<RedriveRequest>, JsonRejection>,
) -> Result<Json<RedriveReport>, Error> {
    let request = json_body(body).inspect_err(|e| {
        audit::<()>(&caller, "deployment.redrive", &name, &Err(e.clone()));
    })?;
    let report = state
        .service
        .redrive(&caller, &name, q.tenant.as_deref(), request)
        .await?;
    Ok(Json(report))
}
