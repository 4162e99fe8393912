//! Driving the control API of a runner child process: a config with an
//! operator and two tenants, a blocking HTTP client, and the CLI.

use std::fmt::Write as _;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::message::{Headers, Message, OwnedMessage};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, StatusCode};

use crate::runner::{self, toml_str};
pub use ingesta_runtime::api::{DeploymentStatus, State};

/// The operator's token in these tests.
pub const OPERATOR_TOKEN: &str = "operator-token-for-tests";

/// A tenant of the test config.
pub struct Tenant {
    /// Its name in `[[control.tenant]]`; deployment keys are `<name>/...`.
    pub name: &'static str,
    /// Its bearer token in clear (the config holds only its SHA-256).
    pub token: &'static str,
    /// Prefix of every topic and group it is granted.
    pub prefix: &'static str,
}

/// Tenant A: may use topics and groups starting with `a-`.
pub const TENANT_A: Tenant = Tenant {
    name: "tenant-a",
    token: "token-of-tenant-a",
    prefix: "a-",
};
/// Tenant B: may use topics and groups starting with `b-`.
pub const TENANT_B: Tenant = Tenant {
    name: "tenant-b",
    token: "token-of-tenant-b",
    prefix: "b-",
};

/// A free loopback port (bound, then released for the runner to take).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a free port")?;
    Ok(l.local_addr()?.port())
}

/// A state-topic prefix of its own, so tests sharing the broker do not see
/// each other's deployments and modules.
pub fn state_prefix() -> String {
    format!("{}.", crate::kafka::unique("_ingesta-test"))
}

/// `[control]` on `port` keeping its state under `state_prefix`, with the
/// operator and both tenants; uploads are capped at `max_module_mib`.
pub fn control_table(port: u16, state_prefix: &str, max_module_mib: u64) -> String {
    let hash = ingesta_runtime::auth::hash_token;
    let mut t = format!(
        "[control]\nlisten = \"127.0.0.1:{port}\"\nstate_topic_prefix = {}\nmax_module_mib = {max_module_mib}\noperator_token_sha256 = \"{}\"\nreport_interval_ms = 500\n",
        toml_str(state_prefix),
        hash(OPERATOR_TOKEN)
    );
    for tenant in [&TENANT_A, &TENANT_B] {
        let p = toml_str(tenant.prefix);
        let _ = write!(
            t,
            "\n[[control.tenant]]\nname = {}\ntoken_sha256 = \"{}\"\nread_topics = [{p}]\nwrite_topics = [{p}]\ngroups = [{p}]\n",
            toml_str(tenant.name),
            hash(tenant.token)
        );
    }
    t
}

/// A runner config with only the control plane.
pub fn config_toml(port: u16, state_prefix: &str, max_module_mib: u64) -> String {
    format!(
        "{}\n{}",
        runner::kafka_table(),
        control_table(port, state_prefix, max_module_mib)
    )
}

/// A runner process with the control plane on a free port (fresh state
/// prefix, uploads up to `max_module_mib`, `extra` TOML appended), ready,
/// and a client for its API.
pub fn start_runner(
    max_module_mib: u64,
    extra: &str,
) -> Result<(crate::runner::RunnerProcess, Api)> {
    let port = free_port()?;
    let config = format!(
        "{}\n{extra}\n",
        config_toml(port, &state_prefix(), max_module_mib)
    );
    let mut ingesta = crate::runner::RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, Duration::from_secs(60))?;
    Ok((ingesta, api))
}

/// A blocking client for `http://127.0.0.1:<port>`.
pub struct Api {
    base: String,
    http: Client,
}

impl Api {
    /// A client for the API on `port`; every request times out after 60 s.
    pub fn new(port: u16) -> Result<Self> {
        Ok(Self {
            base: format!("http://127.0.0.1:{port}"),
            http: Client::builder().timeout(Duration::from_secs(60)).build()?,
        })
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path`, with `token` if given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and returns the status and the body parsed as JSON (`Null` if
    /// it is not JSON).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, serde_json::Value)> {
        let mut r = self.request(method.clone(), path, token);
        if let Some(b) = body {
            r = r.body(b);
        }
        answer(r, &method, path)
    }

    /// Sends `body` as JSON; returns the status and the JSON answer.
    pub fn json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, serde_json::Value)> {
        let r = self.request(method.clone(), path, token).json(body);
        answer(r, &method, path)
    }

    /// `GET /v1/deployments/{name}` as `token`, typed; an error carries the
    /// status and the API's message.
    pub fn status(&self, token: &str, name: &str) -> Result<DeploymentStatus> {
        let path = format!("/v1/deployments/{name}");
        let response = self
            .request(Method::GET, &path, Some(token))
            .send()
            .with_context(|| format!("GET {path}: no response"))?;
        let status = response.status();
        let text = response.text()?;
        ensure!(status == StatusCode::OK, "GET {path}: {status} {text}");
        serde_json::from_str(&text).with_context(|| format!("GET {path}: unexpected body {text}"))
    }

    /// Waits until `/readyz` answers 200: the runner has applied the state
    /// it found in Kafka.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        self.wait_for("/readyz", "ready", timeout)
    }

    /// Waits until `/healthz` answers.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        self.wait_for("/healthz", "up", timeout)
    }

    /// Whether `/readyz` answers 200 right now.
    pub fn is_ready(&self) -> bool {
        self.request(Method::GET, "/readyz", None)
            .send()
            .is_ok_and(|r| r.status().is_success())
    }

    fn wait_for(&self, path: &str, what: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = self.request(Method::GET, path, None).send()
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the runner at {} was not {what} within {timeout:?}",
                    self.base
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `wasm` with a custom section appended: the same behaviour under another
/// digest, i.e. a second version of the module.
pub fn second_version(mut wasm: Vec<u8>) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"ingesta-test-version";
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(b"2");
    wasm.push(0);
    leb(content.len(), &mut wasm);
    wasm.extend(content);
    wasm
}

/// The `tag` header the hostile fixture adds (see its `tag` config key).
pub fn tag_of(m: &OwnedMessage) -> Option<String> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == "tag")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Uploads a module as `token`; returns its digest.
pub fn upload(api: &Api, token: &str, wasm: Vec<u8>) -> Result<String> {
    let (status, body) = api.call(Method::POST, "/v1/modules", Some(token), Some(wasm))?;
    ensure!(status.is_success(), "upload: {status} {body}");
    Ok(body["digest"].as_str().context("no digest")?.to_owned())
}

/// Uploads the component at `wasm` as `token` and creates a deployment of
/// it from `body` (its `module` filled in); fails unless the API answers
/// 201. Returns the created deployment's status.
pub fn deploy_module(
    api: &Api,
    token: &str,
    wasm: &std::path::Path,
    body: serde_json::Value,
) -> Result<DeploymentStatus> {
    let read = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    deploy_bytes(api, token, read, body)
}

/// [`deploy_module`] for a component already in memory.
pub fn deploy_bytes(
    api: &Api,
    token: &str,
    wasm: Vec<u8>,
    mut body: serde_json::Value,
) -> Result<DeploymentStatus> {
    body["module"] = upload(api, token, wasm)?.into();
    let answer = create(api, token, &body)?;
    serde_json::from_value(answer.clone())
        .with_context(|| format!("create answered an unexpected body: {answer}"))
}

/// `POST /v1/deployments` with `body` as `token`; fails unless the API
/// answers 201, naming the deployment. Returns the answer.
pub fn create(api: &Api, token: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
    let (status, answer) = api.json(Method::POST, "/v1/deployments", Some(token), body)?;
    ensure!(
        status == StatusCode::CREATED,
        "create {} answered {status}: {answer}",
        body["name"]
    );
    Ok(answer)
}

/// Polls `GET /v1/deployments/{name}` as `token` until `done` holds for
/// the answer; fails after `timeout` with `what` and the last answer.
pub fn wait_status(
    api: &Api,
    token: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&DeploymentStatus) -> bool,
) -> Result<DeploymentStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = api.status(token, name);
        if let Ok(s) = &last
            && done(s)
        {
            return last;
        }
        if Instant::now() > deadline {
            bail!("deployment {name}: not {what} within {timeout:?}: {last:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many of `token`'s deployments are in one of `states`.
pub fn count_in(api: &Api, token: &str, states: &[&str]) -> Result<usize> {
    let (status, list) = api.call(Method::GET, "/v1/deployments", Some(token), None)?;
    ensure!(status.is_success(), "list deployments: {status} {list}");
    Ok(list.as_array().map_or(0, |l| {
        l.iter()
            .filter(|d| states.iter().any(|s| d["state"] == *s))
            .count()
    }))
}

/// Polls until `n` of `token`'s deployments are in one of `states`; fails
/// after `timeout` saying how many were.
pub fn wait_count(
    api: &Api,
    token: &str,
    states: &[&str],
    n: usize,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = count_in(api, token, states)?;
        if found >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{found} of {n} deployments {states:?} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends `r`; returns the status and the body parsed as JSON (`Null` if
/// it is not JSON).
fn answer(
    r: RequestBuilder,
    method: &Method,
    path: &str,
) -> Result<(StatusCode, serde_json::Value)> {
    let response = r
        .send()
        .with_context(|| format!("{method} {path}: no response"))?;
    let status = response.status();
    let text = response.text()?;
    Ok((status, serde_json::from_str(&text).unwrap_or_default()))
}

/// The message of an error response (`""` if there is none).
pub fn error_of(body: &serde_json::Value) -> &str {
    body.get("error").and_then(|e| e.as_str()).unwrap_or("")
}

/// Runs `ingesta <args>` against the API at `base` with `token`.
pub fn cli(base: &str, token: Option<&str>, args: &[&str]) -> Result<Output> {
    let mut c = Command::new(runner::ingesta_bin()?);
    c.args(args)
        .env("INGESTA_API", base)
        .env_remove("INGESTA_TOKEN");
    if let Some(t) = token {
        c.env("INGESTA_TOKEN", t);
    }
    c.output().context("cannot run the ingesta CLI")
}
