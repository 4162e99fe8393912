//! Rust: the SDK's bindings make `cargo build --target wasm32-wasip2` emit
//! a component directly; this finds it among cargo's artifacts.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::{BuildError, Language, on_path};

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    manifest_path: Option<String>,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    filenames: Vec<String>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

pub(super) fn build(dir: &Path) -> Result<(String, Vec<u8>), BuildError> {
    let cargo = on_path("cargo").ok_or_else(|| BuildError::MissingTool {
        tool: "cargo",
        lang: Language::Rust,
        advice: "install Rust with rustup (https://rustup.rs), then \
                 `rustup target add wasm32-wasip2`"
            .into(),
    })?;
    let manifest = dir.join("Cargo.toml");
    let mut child = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| BuildError::io(&manifest, e))?;
    let mut found = None;
    let stdout = child.stdout.take().expect("piped");
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.map_err(|e| BuildError::io(&manifest, e))?;
        let Ok(m) = serde_json::from_str::<Message>(&line) else {
            continue;
        };
        let ours = m
            .manifest_path
            .as_deref()
            .is_some_and(|p| Path::new(p) == manifest);
        if m.reason == "compiler-artifact"
            && ours
            && let Some(t) = m.target
            && t.kind.iter().any(|k| k == "cdylib")
            && let Some(wasm) = m.filenames.iter().find(|f| f.ends_with(".wasm"))
        {
            found = Some((t.name, wasm.clone()));
        }
    }
    let status = child.wait().map_err(|e| BuildError::io(&manifest, e))?;
    if !status.success() {
        return Err(BuildError::Toolchain {
            command: format!(
                "cargo build --release --target wasm32-wasip2 ({})",
                dir.display()
            ),
            status: status.to_string(),
            hint: "; if the target is missing: rustup target add wasm32-wasip2".into(),
        });
    }
    let (name, wasm) = found.ok_or_else(|| BuildError::Project {
        dir: dir.to_owned(),
        message: "cargo built no cdylib; a handler crate needs `[lib] crate-type = [\"cdylib\"]`"
            .into(),
    })?;
    let bytes = std::fs::read(&wasm).map_err(|e| BuildError::io(Path::new(&wasm), e))?;
    Ok((name.replace('_', "-"), bytes))
}
