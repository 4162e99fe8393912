//! `ingesta deploy`, `update`, `ls`, `status`, `pause`, `resume`,
//! `rollback`, `rm`, `logs` and `top`: deployments through the API. The
//! flags map onto the spec's written form ([`crate::deployment::Fields`]);
//! a spec file (`--file`) gives any of them, and flags win.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use super::{ApiArgs, DeployArgs, api_client, print};
use crate::client::{self, ApiClient};

/// A module flag: a digest as is, or a file uploaded first.
fn module_ref(client: &ApiClient, module: &str) -> Result<String> {
    let path = std::path::Path::new(module);
    if module.starts_with("sha256:") || !path.exists() {
        return Ok(module.to_owned());
    }
    let m = client.push_module(path)?;
    eprintln!("uploaded {} as {}", path.display(), m.digest);
    Ok(m.digest)
}

fn start_value(s: &str) -> Result<Value> {
    Ok(match s {
        "earliest" | "latest" => Value::from(s),
        ms => json!({ "timestamp": ms.parse::<i64>().with_context(|| {
            format!("start {ms:?}: expected earliest, latest or a timestamp in ms since the epoch")
        })? }),
    })
}

fn config_map(pairs: &[String]) -> Result<Value> {
    let mut map = Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("config {p:?}: expected KEY=VALUE"))?;
        map.insert(k.to_owned(), Value::from(v));
    }
    Ok(Value::Object(map))
}

/// The spec file's fields (JSON, or TOML by its extension).
fn spec_file(file: &std::path::Path) -> Result<Map<String, Value>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: Value = if file.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).with_context(|| format!("invalid TOML in {}", file.display()))?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("invalid JSON in {}", file.display()))?
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => anyhow::bail!("{}: the spec file must hold an object", file.display()),
    }
}

/// `ingesta deploy`.
pub(super) fn deploy(api: &ApiArgs, spec: DeployArgs) -> Result<()> {
    let client = api_client(api)?;
    let mut body = match &spec.file {
        Some(f) => spec_file(f)?,
        None => Map::new(),
    };
    if let Some(n) = spec.name {
        body.insert("name".into(), n.into());
    }
    let module = spec.module.clone().or_else(|| {
        body.get("module")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    if let Some(m) = module {
        body.insert("module".into(), module_ref(&client, &m)?.into());
    }
    if !spec.inputs.is_empty() {
        body.insert("inputs".into(), json!(spec.inputs));
    }
    if let Some(g) = spec.group {
        body.insert("group".into(), g.into());
    }
    if !spec.outputs.is_empty() {
        body.insert("outputs".into(), json!(spec.outputs));
    }
    if let Some(t) = spec.dead_letter {
        body.insert("failure".into(), json!({ "dead_letter_topic": t }));
    }
    if let Some(s) = &spec.start {
        body.insert("start".into(), start_value(s)?);
    }
    if !spec.config.is_empty() {
        body.insert("config".into(), config_map(&spec.config)?);
    }
    if spec.paused {
        body.insert("paused".into(), true.into());
    }
    if let Some(ms) = spec.schedule_ms {
        body.insert("schedule".into(), json!({ "interval_ms": ms }));
    }
    if let Some(h) = spec.ingest_key_sha256 {
        let ingest = body.entry("ingest").or_insert_with(|| json!({}));
        ingest
            .as_object_mut()
            .context("`ingest` in the spec file must be a table")?
            .insert("key_sha256".into(), h.into());
    }
    let status = client.create_deployment(&Value::Object(body), api.tenant.as_deref())?;
    print::status(&status);
    Ok(())
}

/// `ingesta update`.
pub(super) fn update(
    api: &ApiArgs,
    name: &str,
    module: Option<String>,
    outputs: Vec<String>,
    config: Vec<String>,
    replay: Option<String>,
) -> Result<()> {
    let client = api_client(api)?;
    let mut body = Map::new();
    if let Some(m) = module {
        body.insert("module".into(), module_ref(&client, &m)?.into());
    }
    if !outputs.is_empty() {
        body.insert("outputs".into(), json!(outputs));
    }
    if !config.is_empty() {
        body.insert("config".into(), config_map(&config)?);
    }
    if let Some(r) = replay {
        body.insert("start".into(), start_value(&r)?);
    }
    if body.is_empty() {
        anyhow::bail!("nothing to change: give --module, --output, --config or --replay");
    }
    let status = client.update_deployment(name, &Value::Object(body), api.tenant.as_deref())?;
    print::status(&status);
    Ok(())
}

/// `ingesta ls`.
pub(super) fn ls(api: &ApiArgs) -> Result<()> {
    print::list(&api_client(api)?.list_deployments(false)?);
    Ok(())
}

/// `ingesta status`.
pub(super) fn status(api: &ApiArgs, name: &str) -> Result<()> {
    print::status(&api_client(api)?.deployment(name, api.tenant.as_deref())?);
    Ok(())
}

/// `pause`, `resume` or `rollback`, then the new status.
pub(super) fn action(api: &ApiArgs, name: &str, action: &str) -> Result<()> {
    let status = api_client(api)?.deployment_action(name, action, api.tenant.as_deref())?;
    print::status(&status);
    Ok(())
}

/// `ingesta rm`.
pub(super) fn rm(api: &ApiArgs, name: &str) -> Result<()> {
    api_client(api)?.delete_deployment(name, api.tenant.as_deref())?;
    println!("deleted deployment {name}");
    Ok(())
}

/// `ingesta logs`.
pub(super) fn logs(api: &ApiArgs, name: &str, follow: bool, tail: usize) -> Result<()> {
    let mut stdout = std::io::stdout();
    api_client(api)?.logs(name, api.tenant.as_deref(), tail, follow, |line| {
        use std::io::Write;
        writeln!(stdout, "{}", print::log_line(&line))?;
        stdout.flush()?;
        Ok(())
    })
}

/// `ingesta top`.
pub(super) fn top(api: &ApiArgs, interval: f64, frames: Option<u32>) -> Result<()> {
    if !(interval.is_finite() && interval > 0.0) {
        anyhow::bail!("--interval must be a positive number of seconds");
    }
    client::top::run(&api_client(api)?, Duration::from_secs_f64(interval), frames)
}
