//! `/v1/topics`: create, list, describe, alter and delete Kafka topics
//! within the caller's `create_topics` grants and maxima.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::{AppState, json_body};
use crate::api::{AlterTopic, CreateTopic, ErrorBody, TopicInfo};
use crate::auth::Caller;
use crate::control::Error;
use crate::control::service::audit;

/// Create a topic: partitions, replication factor and settings, checked
/// against the caller's `create_topics` grants and maxima, the cluster's
/// broker count and `min.insync.replicas` first.
#[utoipa::path(post, path = "/v1/topics", tag = "topics",
    request_body = CreateTopic,
    responses((status = 201, body = TopicInfo),
        (status = 400, description = "a bad name, setting, partition count or replication factor (both numbers named)", body = ErrorBody),
        (status = 403, description = "outside the create_topics grants, reserved, or over a maximum", body = ErrorBody),
        (status = 409, description = "the topic exists", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create_topic(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    body: Result<Json<CreateTopic>, JsonRejection>,
) -> Result<(StatusCode, Json<TopicInfo>), Error> {
    let body = json_body(body)
        .inspect_err(|e| audit::<()>(&caller, "topic.create", "-", &Err(e.clone())))?;
    let topic = state.service.create_topic(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(topic)))
}

/// The topics the caller may read, write or create (all but Kafka's
/// internal ones for the operator), with their partitions, replication
/// and managed settings.
#[utoipa::path(get, path = "/v1/topics", tag = "topics",
    responses((status = 200, body = Vec<TopicInfo>)),
    security(("bearer" = [])))]
pub(super) async fn list_topics(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TopicInfo>>, Error> {
    Ok(Json(state.service.topics(&caller).await?))
}

/// One topic the caller may see.
#[utoipa::path(get, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = String, Path)),
    responses((status = 200, body = TopicInfo),
        (status = 404, description = "no such topic the caller may see", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get_topic(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<TopicInfo>, Error> {
    Ok(Json(state.service.topic(&caller, &name).await?))
}

/// Change only what is named (Kafka's incremental alter): more
/// partitions; settings set, or returned to the broker's default with
/// `null`.
#[utoipa::path(patch, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = String, Path)),
    request_body = AlterTopic,
    responses((status = 200, body = TopicInfo),
        (status = 400, description = "a bad setting, or fewer partitions", body = ErrorBody),
        (status = 403, description = "outside the create_topics grants or over a maximum", body = ErrorBody),
        (status = 404, description = "no such topic", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn alter_topic(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Result<Json<AlterTopic>, JsonRejection>,
) -> Result<Json<TopicInfo>, Error> {
    let body = json_body(body)
        .inspect_err(|e| audit::<()>(&caller, "topic.alter", &name, &Err(e.clone())))?;
    Ok(Json(state.service.alter_topic(&caller, &name, body).await?))
}

/// Delete a topic no deployment reads or writes.
#[utoipa::path(delete, path = "/v1/topics/{name}", tag = "topics",
    params(("name" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 403, description = "outside the create_topics grants", body = ErrorBody),
        (status = 404, description = "no such topic", body = ErrorBody),
        (status = 409, description = "a deployment uses it (named)", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn delete_topic(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    state.service.delete_topic(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
