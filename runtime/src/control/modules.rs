//! The module registry: uploaded components, checked before they are
//! accepted, stored content-addressed and owned by the tenants that
//! uploaded them.
//!
//! Files live in `<dir>/<hex>.wasm` with their metadata in
//! `<hex>.json`, written atomically (temp file + rename), so a runner
//! restarted on the same directory finds every module again. The same
//! bytes uploaded twice are one module; a second tenant uploading them
//! becomes a co-owner, and the file goes when its last owner deletes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use wasmtime::Engine;

use super::ApiError;
use super::auth::Caller;
use crate::wasm::{LoadedModule, ModuleError, World};

/// What the API says about a stored module.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleInfo {
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// The ingesta world it implements (`consumer`).
    pub world: String,
    /// Size in bytes.
    pub size: usize,
    /// Tenants that uploaded these bytes.
    pub owners: BTreeSet<String>,
    /// When it was first uploaded (ms since the Unix epoch).
    pub created_ms: u64,
}

/// The registry of one runner.
pub struct ModuleRegistry {
    dir: PathBuf,
    modules: RwLock<BTreeMap<String, ModuleInfo>>,
}

impl ModuleRegistry {
    /// Opens (creating if needed) the registry in `dir` and loads the
    /// metadata of every module already there.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the module directory {}", dir.display()))?;
        let mut modules = BTreeMap::new();
        for entry in std::fs::read_dir(dir)
            .with_context(|| format!("cannot list the module directory {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let info: ModuleInfo = serde_json::from_str(&text)
                    .with_context(|| format!("corrupt module metadata {}", path.display()))?;
                if dir.join(file_name(&info.digest, "wasm")).exists() {
                    modules.insert(info.digest.clone(), info);
                }
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            modules: RwLock::new(modules),
        })
    }

    /// Where the bytes of `digest` are stored.
    pub fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(file_name(digest, "wasm"))
    }

    /// Checks `bytes` (a component of a known world, imports within our
    /// WIT, compiles), then stores it for `caller`. Returns the module and
    /// whether this call created it. CPU-heavy: call from a blocking task.
    pub fn add(
        &self,
        caller: &Caller,
        bytes: &[u8],
        engine: &Engine,
        compile_cache: &Path,
    ) -> Result<(ModuleInfo, bool), ApiError> {
        let loaded = LoadedModule::from_bytes(engine, "upload", bytes, compile_cache).map_err(
            |e| match e {
                ModuleError::Read { .. } => ApiError::Internal(e.to_string()),
                other => ApiError::BadRequest(other.to_string()),
            },
        )?;
        let owner = caller.name().to_owned();
        let mut modules = self.modules.write().unwrap_or_else(|e| e.into_inner());
        let (info, created) = match modules.get(&loaded.digest) {
            Some(existing) => {
                let mut info = existing.clone();
                let created = info.owners.insert(owner);
                (info, created)
            }
            None => {
                let path = self.path(&loaded.digest);
                write_atomically(&path, bytes).map_err(ApiError::Internal)?;
                let info = ModuleInfo {
                    digest: loaded.digest.clone(),
                    world: world_name(loaded.world).to_owned(),
                    size: loaded.size,
                    owners: BTreeSet::from([owner]),
                    created_ms: now_ms(),
                };
                (info, true)
            }
        };
        if created {
            self.save(&info)?;
            modules.insert(info.digest.clone(), info.clone());
        }
        Ok((info, created))
    }

    /// Every module the caller may see.
    pub fn list(&self, caller: &Caller) -> Vec<ModuleInfo> {
        let modules = self.modules.read().unwrap_or_else(|e| e.into_inner());
        modules
            .values()
            .filter(|m| m.owners.iter().any(|o| caller.sees(o)))
            .map(|m| visible(caller, m))
            .collect()
    }

    /// The module `digest`, if the caller may see it (else 404).
    pub fn get(&self, caller: &Caller, digest: &str) -> Result<ModuleInfo, ApiError> {
        let modules = self.modules.read().unwrap_or_else(|e| e.into_inner());
        modules
            .get(digest)
            .filter(|m| m.owners.iter().any(|o| caller.sees(o)))
            .map(|m| visible(caller, m))
            .ok_or_else(|| ApiError::NotFound(format!("module {digest:?}")))
    }

    /// Drops the caller's ownership of `digest` (all owners for the
    /// operator); the bytes go with the last owner.
    pub fn remove(&self, caller: &Caller, digest: &str) -> Result<(), ApiError> {
        let mut modules = self.modules.write().unwrap_or_else(|e| e.into_inner());
        let Some(info) = modules
            .get(digest)
            .filter(|m| m.owners.iter().any(|o| caller.sees(o)))
        else {
            return Err(ApiError::NotFound(format!("module {digest:?}")));
        };
        let mut info = info.clone();
        info.owners.retain(|o| !caller.sees(o));
        if info.owners.is_empty() {
            let _ = std::fs::remove_file(self.dir.join(file_name(digest, "json")));
            let _ = std::fs::remove_file(self.path(digest));
            modules.remove(digest);
        } else {
            self.save(&info)?;
            modules.insert(digest.to_owned(), info);
        }
        Ok(())
    }

    fn save(&self, info: &ModuleInfo) -> Result<(), ApiError> {
        let json =
            serde_json::to_vec_pretty(info).map_err(|e| ApiError::Internal(e.to_string()))?;
        write_atomically(&self.dir.join(file_name(&info.digest, "json")), &json)
            .map_err(ApiError::Internal)
    }
}

/// A tenant sees only itself among the owners: who else uploaded the same
/// bytes is none of its business.
fn visible(caller: &Caller, m: &ModuleInfo) -> ModuleInfo {
    let mut m = m.clone();
    m.owners.retain(|o| caller.sees(o));
    m
}

fn world_name(world: World) -> &'static str {
    match world {
        World::Consumer => "consumer",
    }
}

/// `sha256:<hex>` → `<hex>.<ext>`; digests come from our own hashing, so
/// they are hex and safe as file names.
fn file_name(digest: &str, ext: &str) -> String {
    format!("{}.{ext}", digest.trim_start_matches("sha256:"))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
