//! Go: `go build` for `wasip1` as a reactor (`-buildmode=c-shared`), then
//! the core module becomes a component of the world its exports implement.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use super::{BuildError, Language, component, on_path, run};

/// The Go release the bindings' runtime package (`go.bytecodealliance.org/pkg`)
/// requires; the go command fetches it when the machine's Go is older.
pub(super) const GO_TOOLCHAIN: &str = "go1.27.3";
/// Served from the cache when the public module proxy does not have it
/// (`sdk/go/tools/goproxy.sh` fills the cache).
const BINDINGS_RUNTIME: &str = "go.bytecodealliance.org";

pub(super) fn build(dir: &Path, cache: &Path) -> Result<(String, Vec<u8>), BuildError> {
    let go = on_path("go").ok_or_else(|| BuildError::MissingTool {
        tool: "go",
        lang: Language::Go,
        advice: "install Go 1.26 or newer (https://go.dev/dl) and put `go` on PATH".into(),
    })?;
    let name = module_name(dir)?;
    ensure_proxy(cache);
    let scratch = tempfile::tempdir().map_err(|e| BuildError::io(dir, e))?;
    let core = scratch.path().join("core.wasm");
    let mut cmd = Command::new(go);
    cmd.current_dir(dir)
        .args(["build", "-buildmode=c-shared", "-trimpath"])
        // The bindings' runtime reaches `runtime.sbrk` for allocations made
        // before the Go runtime is up; the linker refuses that by default.
        .arg("-ldflags=-checklinkname=0")
        .arg("-o")
        .arg(&core)
        .arg(".");
    for (k, v) in go_env(cache) {
        cmd.env(k, v);
    }
    run(
        cmd,
        &format!(
            "if {BINDINGS_RUNTIME}/pkg could not be downloaded, run sdk/go/tools/goproxy.sh \
             (`make setup` does) to serve it from {}",
            cache.join("goproxy").display()
        ),
    )?;
    let core = std::fs::read(&core).map_err(|e| BuildError::io(&core, e))?;
    let source = format!("{} (Go)", dir.display());
    let world = component::core_world(&source, &core)?;
    Ok((name, component::componentize(&source, &core, world)?))
}

/// Fills the cached module proxy for the bindings' runtime package if it
/// is not there yet, with the SDK's own script. Best effort: where the
/// public proxy serves the package, the build works without it, and where
/// neither does, the go command's error names the package.
pub(super) fn ensure_proxy(cache: &Path) {
    if cache.join("goproxy").is_dir() {
        return;
    }
    let Ok(root) = super::embedded::sdk_root(cache) else {
        return;
    };
    let script = root.join("sdk/go/tools/goproxy.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env("INGESTA_CACHE", cache)
        .stdout(std::process::Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        tracing::warn!(script = %script.display(), "could not prepare the Go module proxy for {BINDINGS_RUNTIME}/pkg");
    }
}

/// The environment of every go command ingesta runs: the wasm target, the
/// toolchain the bindings need, and the cached module proxy first.
pub(super) fn go_env(cache: &Path) -> Vec<(&'static str, OsString)> {
    let mut env = vec![("GOOS", "wasip1".into()), ("GOARCH", "wasm".into())];
    if std::env::var_os("GOTOOLCHAIN").is_none() {
        env.push(("GOTOOLCHAIN", GO_TOOLCHAIN.into()));
    }
    let proxy_dir = cache.join("goproxy");
    if proxy_dir.is_dir() {
        let upstream = std::env::var("GOPROXY")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "https://proxy.golang.org,direct".into());
        env.push((
            "GOPROXY",
            format!("file://{},{upstream}", proxy_dir.display()).into(),
        ));
        let nosumdb = match std::env::var("GONOSUMDB") {
            Ok(v) if !v.is_empty() => format!("{v},{BINDINGS_RUNTIME}"),
            _ => BINDINGS_RUNTIME.to_owned(),
        };
        env.push(("GONOSUMDB", nosumdb.into()));
    }
    env
}

/// The last element of the `module` path in `go.mod`.
fn module_name(dir: &Path) -> Result<String, BuildError> {
    let path = dir.join("go.mod");
    let text = std::fs::read_to_string(&path).map_err(|e| BuildError::io(&path, e))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("module "))
        .map(|m| m.trim().trim_matches('"'))
        .and_then(|m| m.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| BuildError::Project {
            dir: dir.to_owned(),
            message: "go.mod has no module line".into(),
        })
}
