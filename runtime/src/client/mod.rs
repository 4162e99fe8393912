//! A small blocking client for the control API, typed with the API's own
//! bodies ([`crate::api`]), used by the CLI (`ingesta module push`, ...)
//! and its live view ([`top`]). Errors carry the API's own message.

pub mod top;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{
    AlterTopic, CreateTopic, DeadLetterCursor, DeadLetterPage, DeploymentStatus, LogLine,
    ModuleInfo, RedriveReport, RedriveRequest, TopicInfo,
};

/// Attempts of a read (GET) that found no API or a busy one.
const READ_ATTEMPTS: u32 = 3;

/// Sending a request the way the CLI does: a read (GET) that found no API
/// (connection refused or reset, timed out) or got 502, 503 or 504 (a
/// runner restarting or still recovering its state, a proxy moving) is
/// sent again, three times in all, 0.5 s then 1 s apart. A write is sent
/// once: it may have been applied even if its answer was lost, and
/// repeating it could apply it twice (read again and decide instead).
trait Dispatch {
    fn dispatch(self) -> reqwest::Result<Response>;
}

impl Dispatch for RequestBuilder {
    fn dispatch(self) -> reqwest::Result<Response> {
        let (client, request) = self.build_split();
        let request = request?;
        if request.method() != reqwest::Method::GET {
            return client.execute(request);
        }
        let mut pause = Duration::from_millis(500);
        for _ in 1..READ_ATTEMPTS {
            let Some(attempt) = request.try_clone() else {
                break;
            };
            match client.execute(attempt) {
                Ok(r) if !matches!(r.status().as_u16(), 502..=504) => return Ok(r),
                Err(e) if !(e.is_connect() || e.is_timeout()) => return Err(e),
                _ => std::thread::sleep(pause),
            }
            pause *= 2;
        }
        client.execute(request)
    }
}

/// The default API address (`[control] listen` in the demo config).
pub const DEFAULT_API: &str = "http://127.0.0.1:8480";

/// Where the API is and who we are.
pub struct ApiClient {
    /// The API's base URL without a trailing `/` (e.g.
    /// `http://127.0.0.1:8480`); request paths such as `/v1/modules` are
    /// appended to it.
    pub base: String,
    token: Option<String>,
    http: Client,
}

impl ApiClient {
    /// A client for `base` (e.g. `http://127.0.0.1:8480`) presenting `token`.
    pub fn new(base: &str, token: Option<String>) -> Result<Self> {
        let http = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Upload a component file.
    pub fn push_module(&self, file: &Path) -> Result<ModuleInfo> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let response = self
            .request(reqwest::Method::POST, "/v1/modules")
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes)
            .dispatch();
        json(response, &format!("upload of {}", file.display()))
    }

    /// The modules the token may see.
    pub fn list_modules(&self) -> Result<Vec<ModuleInfo>> {
        json(
            self.request(reqwest::Method::GET, "/v1/modules").dispatch(),
            "listing modules",
        )
    }

    /// Create a deployment from a `POST /v1/deployments` body.
    pub fn create_deployment(
        &self,
        body: &Value,
        tenant: Option<&str>,
    ) -> Result<DeploymentStatus> {
        let path = with_tenant("/v1/deployments", tenant);
        json(
            self.request(reqwest::Method::POST, &path)
                .json(body)
                .dispatch(),
            "creating the deployment",
        )
    }

    /// The deployments the token may see; with `lag`, each with its
    /// per-partition offsets and lag.
    pub fn list_deployments(&self, lag: bool) -> Result<Vec<DeploymentStatus>> {
        json(
            self.request(reqwest::Method::GET, "/v1/deployments")
                .query(&[("lag", lag)])
                .dispatch(),
            "listing deployments",
        )
    }

    /// One deployment's status, with per-partition lag.
    pub fn deployment(&self, name: &str, tenant: Option<&str>) -> Result<DeploymentStatus> {
        let path = with_tenant(&format!("/v1/deployments/{name}"), tenant);
        json(
            self.request(reqwest::Method::GET, &path).dispatch(),
            &format!("reading deployment {name:?}"),
        )
    }

    /// Change a deployment with a `PATCH` body.
    /// With `version`, the change applies only if the deployment is still
    /// at that version (`If-Match`); otherwise it fails with 409. A write
    /// is never retried here: it may have been applied.
    pub fn update_deployment(
        &self,
        name: &str,
        body: &Value,
        tenant: Option<&str>,
        version: Option<u64>,
    ) -> Result<DeploymentStatus> {
        let path = with_tenant(&format!("/v1/deployments/{name}"), tenant);
        let mut request = self.request(reqwest::Method::PATCH, &path).json(body);
        if let Some(v) = version.filter(|v| *v > 0) {
            request = request.header(reqwest::header::IF_MATCH, format!("\"{v}\""));
        }
        json(request.dispatch(), &format!("updating deployment {name:?}"))
    }

    /// `pause`, `resume` or `rollback`.
    pub fn deployment_action(
        &self,
        name: &str,
        action: &str,
        tenant: Option<&str>,
    ) -> Result<DeploymentStatus> {
        let path = with_tenant(&format!("/v1/deployments/{name}/{action}"), tenant);
        json(
            self.request(reqwest::Method::POST, &path).dispatch(),
            &format!("{action} of deployment {name:?}"),
        )
    }

    /// Delete a deployment.
    pub fn delete_deployment(&self, name: &str, tenant: Option<&str>) -> Result<()> {
        let path = with_tenant(&format!("/v1/deployments/{name}"), tenant);
        checked(
            self.request(reqwest::Method::DELETE, &path).dispatch(),
            &format!("deleting deployment {name:?}"),
        )
        .map(drop)
    }

    /// The deployment's guest log: the latest `tail` lines, then, with
    /// `follow`, new ones until the connection ends. Calls `line` for each.
    pub fn logs(
        &self,
        name: &str,
        tenant: Option<&str>,
        tail: usize,
        follow: bool,
        mut line: impl FnMut(LogLine) -> Result<()>,
    ) -> Result<()> {
        use std::io::BufRead;
        let mut query = vec![("limit", tail.to_string()), ("follow", follow.to_string())];
        if let Some(t) = tenant {
            query.push(("tenant", t.to_owned()));
        }
        let mut request = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/deployments/{name}/logs"),
            )
            .query(&query);
        if follow {
            // A followed log stays open for as long as the user watches.
            request = request.timeout(Duration::from_secs(100 * 365 * 24 * 3600));
        }
        let what = format!("reading the logs of deployment {name:?}");
        let response = checked(request.dispatch(), &what)?;
        for text in std::io::BufReader::new(response).lines() {
            let text = text.with_context(|| format!("{what}: connection lost"))?;
            // Blank lines are the server's heartbeats.
            if text.trim().is_empty() {
                continue;
            }
            let value = serde_json::from_str(&text)
                .with_context(|| format!("{what}: unexpected line {text:?}"))?;
            line(value)?;
        }
        Ok(())
    }

    /// A page of the deployment's dead letters, from `from`.
    pub fn dead_letters(
        &self,
        name: &str,
        tenant: Option<&str>,
        from: DeadLetterCursor,
        limit: usize,
    ) -> Result<DeadLetterPage> {
        let mut query = vec![
            ("partition", from.partition.to_string()),
            ("offset", from.offset.to_string()),
            ("limit", limit.to_string()),
        ];
        if let Some(t) = tenant {
            query.push(("tenant", t.to_owned()));
        }
        json(
            self.request(
                reqwest::Method::GET,
                &format!("/v1/deployments/{name}/dead-letters"),
            )
            .query(&query)
            .dispatch(),
            &format!("reading the dead letters of deployment {name:?}"),
        )
    }

    /// Redrive the dead letters `request` selects.
    pub fn redrive(
        &self,
        name: &str,
        tenant: Option<&str>,
        request: &RedriveRequest,
    ) -> Result<RedriveReport> {
        let path = with_tenant(
            &format!("/v1/deployments/{name}/dead-letters/redrive"),
            tenant,
        );
        json(
            self.request(reqwest::Method::POST, &path)
                .json(request)
                .dispatch(),
            &format!("redriving dead letters of deployment {name:?}"),
        )
    }

    /// Create a topic; `Ok(None)` when it exists already.
    pub fn create_topic(&self, body: &CreateTopic) -> Result<Option<TopicInfo>> {
        let what = format!("creating topic {:?}", body.name);
        let response = self
            .request(reqwest::Method::POST, "/v1/topics")
            .json(body)
            .dispatch();
        if let Ok(r) = &response
            && r.status() == reqwest::StatusCode::CONFLICT
        {
            return Ok(None);
        }
        json(response, &what).map(Some)
    }

    /// The topics the token may see.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        json(
            self.request(reqwest::Method::GET, "/v1/topics").dispatch(),
            "listing topics",
        )
    }

    /// One topic.
    pub fn topic(&self, name: &str) -> Result<TopicInfo> {
        json(
            self.request(reqwest::Method::GET, &format!("/v1/topics/{name}"))
                .dispatch(),
            &format!("describing topic {name:?}"),
        )
    }

    /// Change a topic.
    pub fn alter_topic(&self, name: &str, change: &AlterTopic) -> Result<TopicInfo> {
        json(
            self.request(reqwest::Method::PATCH, &format!("/v1/topics/{name}"))
                .json(change)
                .dispatch(),
            &format!("altering topic {name:?}"),
        )
    }

    /// Delete a topic.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let response = self
            .request(reqwest::Method::DELETE, &format!("/v1/topics/{name}"))
            .dispatch();
        checked(response, &format!("deleting topic {name:?}")).map(drop)
    }

    /// Delete a module by digest.
    pub fn delete_module(&self, digest: &str) -> Result<()> {
        let response = self
            .request(reqwest::Method::DELETE, &format!("/v1/modules/{digest}"))
            .dispatch();
        checked(response, &format!("deleting module {digest}")).map(drop)
    }
}

fn with_tenant(path: &str, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("{path}?tenant={t}"),
        None => path.to_owned(),
    }
}

fn checked(response: reqwest::Result<Response>, what: &str) -> Result<Response> {
    let response = response.with_context(|| format!("{what}: cannot reach the control API"))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
        .unwrap_or(body);
    bail!("{what} failed ({status}): {message}")
}

fn json<T: DeserializeOwned>(response: reqwest::Result<Response>, what: &str) -> Result<T> {
    checked(response, what)?
        .json()
        .with_context(|| format!("{what}: unexpected response from the control API"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An API on loopback answering 503 to the first `busy` requests and
    /// 200 `[]` after; counts the requests.
    fn api(busy: usize) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let n = count.fetch_add(1, Ordering::SeqCst);
                let answer = if n < busy {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n[]"
                };
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (base, seen)
    }

    #[test]
    fn reads_are_sent_again_while_the_api_is_busy_and_writes_once() {
        let (base, seen) = api(2);
        let client = ApiClient::new(&base, None).unwrap();
        assert!(client.list_modules().unwrap().is_empty());
        assert_eq!(seen.load(Ordering::SeqCst), 3, "two 503s, then the answer");

        let (base, seen) = api(1);
        let client = ApiClient::new(&base, None).unwrap();
        let err = client
            .create_deployment(&serde_json::json!({}), None)
            .unwrap_err();
        assert!(format!("{err:#}").contains("503"), "{err:#}");
        assert_eq!(seen.load(Ordering::SeqCst), 1, "a write is sent once");

        let (base, seen) = api(5);
        let client = ApiClient::new(&base, None).unwrap();
        assert!(client.list_modules().is_err());
        assert_eq!(
            seen.load(Ordering::SeqCst),
            READ_ATTEMPTS as usize,
            "a read gives up after its attempts"
        );
    }
}
