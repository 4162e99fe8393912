//! `ingesta deploy`, `update`, `ls`, `status`, `pause`, `resume`,
//! `rollback`, `rm`, `logs` and `top`: deployments through the API. The
//! flags map onto the spec's written form ([`crate::deployment::Fields`]);
//! a spec file (`--file`) gives any of them, and flags win.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use super::{ApiArgs, DeployArgs, SpecFlags, api_client, print};
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

/// A `--set` value: JSON when it parses as JSON (numbers, booleans,
/// arrays, quoted strings), else the text as a string.
fn flag_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::from(text))
}

/// Sets the field at `path` (`section.key`, or a top-level `key`) in a
/// spec's written form, creating the section if the spec has none yet.
fn set_path(spec: &mut Map<String, Value>, path: &str, value: Value) -> Result<()> {
    let (section, key) = match path.split_once('.') {
        Some((section, key)) if !key.is_empty() && !key.contains('.') => (Some(section), key),
        None if !path.is_empty() => (None, path),
        _ => anyhow::bail!(
            "--set {path:?}: expected a field such as limits.deadline_ms or failure.dead_letter_topic"
        ),
    };
    let Some(section) = section else {
        spec.insert(key.to_owned(), value);
        return Ok(());
    };
    let table = spec
        .entry(section)
        .or_insert_with(|| Value::Object(Map::new()));
    if table.is_null() {
        *table = Value::Object(Map::new());
    }
    table
        .as_object_mut()
        .with_context(|| format!("--set {path:?}: {section} is not a section of the spec"))?
        .insert(key.to_owned(), value);
    Ok(())
}

impl SpecFlags {
    /// Writes every field given into `spec`, keeping the rest of each
    /// section.
    fn apply(&self, spec: &mut Map<String, Value>) -> Result<()> {
        let named: [(&str, Option<Value>); 8] = [
            (
                "failure.dead_letter_topic",
                self.dead_letter.clone().map(Value::from),
            ),
            ("failure.max_attempts", self.max_attempts.map(Value::from)),
            ("limits.deadline_ms", self.deadline_ms.map(Value::from)),
            ("limits.memory_mib", self.memory_mib.map(Value::from)),
            ("batch.max_records", self.batch_max_records.map(Value::from)),
            ("batch.max_wait_ms", self.batch_max_wait_ms.map(Value::from)),
            ("schedule.interval_ms", self.schedule_ms.map(Value::from)),
            (
                "ingest.key_sha256",
                self.ingest_key_sha256.clone().map(Value::from),
            ),
        ];
        for (path, value) in named {
            if let Some(v) = value {
                set_path(spec, path, v)?;
            }
        }
        for pair in &self.set {
            let (path, text) = pair
                .split_once('=')
                .with_context(|| format!("--set {pair:?}: expected PATH=VALUE"))?;
            set_path(spec, path, flag_value(text))?;
        }
        Ok(())
    }
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
    if let Some(s) = &spec.start {
        body.insert("start".into(), start_value(s)?);
    }
    if !spec.config.is_empty() {
        body.insert("config".into(), config_map(&spec.config)?);
    }
    if spec.paused {
        body.insert("paused".into(), true.into());
    }
    spec.fields.apply(&mut body)?;
    let status = client.create_deployment(&Value::Object(body), api.tenant.as_deref())?;
    print::status(&status);
    Ok(())
}

/// What `ingesta update` changes besides a replay.
pub(super) struct Edits {
    pub module: Option<String>,
    pub outputs: Vec<String>,
    pub config: Vec<String>,
    pub inputs: Vec<String>,
    pub group: Option<String>,
    pub fields: SpecFlags,
}

/// `ingesta update`: reads the current spec, changes the fields named,
/// and sends the sections that changed, whole (the API replaces a
/// section it is given, so a flag must not reset its neighbours).
pub(super) fn update(
    api: &ApiArgs,
    name: &str,
    edits: Edits,
    replay: Option<String>,
) -> Result<()> {
    let client = api_client(api)?;
    let tenant = api.tenant.as_deref();
    let current = client.deployment(name, tenant)?;
    let before = current
        .settings
        .with_context(|| {
            format!("deployment {name} is defined in the runner's config file; change it there")
        })?
        .to_json();
    let mut after = before.clone();
    if let Some(m) = edits.module {
        after.insert("module".into(), module_ref(&client, &m)?.into());
    }
    if !edits.outputs.is_empty() {
        after.insert("outputs".into(), json!(edits.outputs));
    }
    if !edits.config.is_empty() {
        after.insert("config".into(), config_map(&edits.config)?);
    }
    if !edits.inputs.is_empty() {
        after.insert("inputs".into(), json!(edits.inputs));
    }
    if let Some(g) = edits.group {
        after.insert("group".into(), g.into());
    }
    edits.fields.apply(&mut after)?;
    let mut body: Map<String, Value> = after
        .into_iter()
        .filter(|(k, v)| before.get(k) != Some(v))
        .collect();
    if let Some(r) = replay {
        body.insert("start".into(), start_value(&r)?);
    }
    if body.is_empty() {
        anyhow::bail!(
            "nothing to change: the flags given are what deployment {name} has (see ingesta update --help)"
        );
    }
    // The change applies to the version read above, or not at all (409:
    // someone changed it meanwhile; run the command again).
    let status =
        client.update_deployment(name, &Value::Object(body), tenant, Some(current.version))?;
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
