//! `/v1/deployments/{name}/logs`: a deployment's guest log, as
//! newline-delimited JSON, followed if asked.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use super::AppState;
use crate::api::{ErrorBody, LogLine};
use crate::auth::Caller;
use crate::control::Error;
use crate::control::service::{FollowerSlot, Service};
use crate::telemetry::DeploymentTelemetry;
use crate::telemetry::guest_log::KEPT_LINES;

/// `GET /v1/deployments/{name}/logs` options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub(super) struct LogsQuery {
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
pub(super) async fn deployment_logs(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, Error> {
    let (key, telemetry) = state
        .service
        .telemetry(&caller, &name, q.tenant.as_deref())?;
    let first = telemetry
        .log
        .lines_after(q.after, q.limit.unwrap_or(100).clamp(1, KEPT_LINES));
    let content_type = [(header::CONTENT_TYPE, "application/x-ndjson")];
    if !q.follow {
        return Ok((content_type, ndjson(&first)).into_response());
    }
    let slot = state.service.follow_slot(&caller)?;
    let follow = Follow {
        _slot: slot,
        after: first.last().map_or(q.after, |l| l.seq),
        telemetry,
        service: state.service.clone(),
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
    /// Counts this follower against its caller's cap until it ends.
    _slot: FollowerSlot,
    after: u64,
    telemetry: Arc<DeploymentTelemetry>,
    service: Arc<Service>,
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
                let current = self.service.supervisor.view(&self.key);
                if !current.is_some_and(|v| Arc::ptr_eq(&v.telemetry, &telemetry)) {
                    return None;
                }
                return Some((Bytes::from_static(b"\n"), self));
            }
        }
    }
}
