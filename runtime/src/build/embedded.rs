//! What the `ingesta` binary carries so that building and scaffolding work
//! outside a checkout: the WIT, the three SDKs and the project templates.
//!
//! SDKs are unpacked on first use into `<cache>/sdk/<version>-<digest>/`,
//! laid out like the repository (`wit/`, `sdk/rust`, `sdk/abi`, `sdk/go`,
//! `sdk/python`) so the relative paths inside them hold, plus a workspace
//! manifest that gives the Rust SDK the settings it inherits.

use std::fs;
use std::path::{Path, PathBuf};

use include_dir::{Dir, DirEntry, include_dir};
use sha2::{Digest, Sha256};

use super::BuildError;

static WIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../wit");
static SDK_RUST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../sdk/rust");
static SDK_ABI: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../sdk/abi");
static SDK_GO: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../sdk/go");
static SDK_PYTHON: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../sdk/python");
/// Project templates of `ingesta new`, one directory per language.
pub static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/src/build/templates");
static WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// The embedded trees, by their place in the unpacked layout.
fn trees() -> [(&'static str, &'static Dir<'static>); 5] {
    [
        ("wit", &WIT),
        ("sdk/rust", &SDK_RUST),
        ("sdk/abi", &SDK_ABI),
        ("sdk/go", &SDK_GO),
        ("sdk/python", &SDK_PYTHON),
    ]
}

/// Build leftovers that may sit in a developer's SDK directories when the
/// binary is compiled; never unpacked.
fn skipped(path: &Path) -> bool {
    path.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        c == "__pycache__" || c.ends_with(".egg-info") || c == "build" || c == "dist"
    }) || path.extension().is_some_and(|e| e == "pyc")
}

fn files<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => files(d, out),
            DirEntry::File(f) if !skipped(f.path()) => out.push(f),
            DirEntry::File(_) => {}
        }
    }
}

/// The WIT files, by name, for tools that read a directory.
pub fn wit_files() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for f in WIT.files() {
        if let (Some(name), Some(text)) = (
            f.path().file_name().and_then(|n| n.to_str()),
            f.contents_utf8(),
        ) {
            out.push((name, text));
        }
    }
    out
}

/// Writes the WIT into `dir` (for componentize-py, which reads a directory).
pub fn write_wit(dir: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    for (name, text) in wit_files() {
        let p = dir.join(name);
        fs::write(&p, text).map_err(|e| BuildError::io(&p, e))?;
    }
    Ok(())
}

/// The root of the unpacked SDKs: `INGESTA_SDK_DIR` if set (a checkout's
/// root, used by the repository's own builds), else the embedded copy
/// unpacked under `cache`.
pub fn sdk_root(cache: &Path) -> Result<PathBuf, BuildError> {
    if let Some(dir) = std::env::var_os("INGESTA_SDK_DIR") {
        return Ok(PathBuf::from(dir));
    }
    // The generated workspace manifest is part of what is unpacked, so it
    // is part of the cache key: a runner whose manifest differs (new
    // workspace settings) must not reuse an older unpacked tree.
    let workspace_manifest = sdk_workspace_manifest()?;
    let mut h = Sha256::new();
    h.update(workspace_manifest.as_bytes());
    for (place, tree) in trees() {
        let mut fs_ = Vec::new();
        files(tree, &mut fs_);
        for f in fs_ {
            h.update(place.as_bytes());
            h.update(f.path().to_string_lossy().as_bytes());
            h.update((f.contents().len() as u64).to_le_bytes());
            h.update(f.contents());
        }
    }
    let digest = hex::encode(h.finalize());
    let root = cache
        .join("sdk")
        .join(format!("{}-{}", env!("CARGO_PKG_VERSION"), &digest[..12]));
    if root.join(".complete").is_file() {
        return Ok(root);
    }
    // Unpack next to the final place and rename, so a concurrent or
    // interrupted unpack never leaves a half-written tree in use.
    fs::create_dir_all(cache.join("sdk")).map_err(|e| BuildError::io(cache, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(cache.join("sdk"))
        .map_err(|e| BuildError::io(cache, e))?;
    for (place, tree) in trees() {
        let mut fs_ = Vec::new();
        files(tree, &mut fs_);
        for f in fs_ {
            let p = staging.path().join(place).join(f.path());
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
            }
            fs::write(&p, f.contents()).map_err(|e| BuildError::io(&p, e))?;
        }
    }
    let manifest = staging.path().join("Cargo.toml");
    fs::write(&manifest, workspace_manifest).map_err(|e| BuildError::io(&manifest, e))?;
    let done = staging.path().join(".complete");
    fs::write(&done, b"").map_err(|e| BuildError::io(&done, e))?;
    let staged = staging.keep();
    if fs::rename(&staged, &root).is_err() {
        // Someone else finished first; theirs is identical.
        let _ = fs::remove_dir_all(&staged);
    }
    Ok(root)
}

/// A workspace manifest for the unpacked Rust SDK: the repository's
/// `[workspace.package]`, `[workspace.dependencies]` and `[workspace.lints]`, with only the SDK
/// crates as members, so `version.workspace = true` and friends resolve.
fn sdk_workspace_manifest() -> Result<String, BuildError> {
    let full: toml::Table = WORKSPACE_MANIFEST
        .parse()
        .map_err(|e| BuildError::Embedded(format!("workspace manifest: {e}")))?;
    let workspace = full
        .get("workspace")
        .and_then(toml::Value::as_table)
        .ok_or_else(|| BuildError::Embedded("workspace manifest has no [workspace]".into()))?;
    let mut ws = toml::Table::new();
    ws.insert("resolver".into(), "3".into());
    ws.insert(
        "members".into(),
        toml::Value::Array(vec!["sdk/rust".into(), "sdk/abi".into()]),
    );
    for key in ["package", "dependencies", "lints"] {
        if let Some(v) = workspace.get(key) {
            ws.insert(key.into(), v.clone());
        }
    }
    let mut out = toml::Table::new();
    out.insert("workspace".into(), toml::Value::Table(ws));
    Ok(format!(
        "# Written by ingesta: the workspace settings the Rust SDK inherits.\n{}",
        toml::to_string(&out).map_err(|e| BuildError::Embedded(e.to_string()))?
    ))
}
