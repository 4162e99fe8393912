//! The module registry: uploaded components, checked before they are
//! accepted, stored content-addressed and owned by the tenants that
//! uploaded them.
//!
//! The bytes and metadata live in the modules state topic ([`super::state`]);
//! this registry is the runner's in-memory view of it, built by applying
//! that topic's records in order. The same bytes uploaded twice are one
//! module; a second tenant uploading them becomes a co-owner, and the bytes
//! go when the last owner deletes them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use wasmtime::Engine;

use super::ApiError;
use super::auth::Caller;
use super::state::{StateLog, StateTopic};
use crate::wasm::{LoadedModule, ModuleError, World};

/// Bytes per chunk record: well under the broker's default 1 MiB limit.
const CHUNK_BYTES: usize = 512 << 10;

/// What the API says about a stored module.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleInfo {
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// The ingesta world it implements (`consumer` or `producer`).
    pub world: String,
    /// Size in bytes.
    pub size: usize,
    /// Tenants that uploaded these bytes.
    pub owners: BTreeSet<String>,
    /// When it was first uploaded (ms since the Unix epoch).
    pub created_ms: u64,
}

/// The `<digest>/meta` record.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    info: ModuleInfo,
    chunks: u32,
}

#[derive(Default)]
struct Entry {
    meta: Option<Meta>,
    chunks: BTreeMap<u32, Arc<Vec<u8>>>,
}

impl Entry {
    fn complete(&self) -> Option<&Meta> {
        self.meta
            .as_ref()
            .filter(|m| (0..m.chunks).all(|i| self.chunks.contains_key(&i)))
    }
}

/// A module that passed the checks, ready to store.
pub struct Checked {
    digest: String,
    world: World,
    size: usize,
}

/// The registry of one runner.
pub struct ModuleRegistry {
    /// Checks uploads and compiles stored modules (through the cache).
    engine: Engine,
    compile_cache: PathBuf,
    modules: RwLock<BTreeMap<String, Entry>>,
}

impl ModuleRegistry {
    /// An empty registry; fill it with [`ModuleRegistry::apply`].
    pub fn new(engine: Engine, compile_cache: PathBuf) -> Self {
        Self {
            engine,
            compile_cache,
            modules: RwLock::default(),
        }
    }

    /// Apply one record of the modules topic. Returns the digest of a
    /// module this record completed, so deployments waiting for it can go.
    pub fn apply(&self, key: &str, value: Option<&[u8]>) -> Option<String> {
        let (digest, part) = key.split_once('/')?;
        let mut modules = self.modules.write().unwrap_or_else(|e| e.into_inner());
        let entry = modules.entry(digest.to_owned()).or_default();
        let was_complete = entry.complete().is_some();
        match (part, value) {
            ("meta", Some(v)) => match serde_json::from_slice::<Meta>(v) {
                Ok(meta) => entry.meta = Some(meta),
                Err(e) => {
                    tracing::warn!(key, error = %e, "ignoring a corrupt module record");
                    return None;
                }
            },
            ("meta", None) => entry.meta = None,
            (chunk, v) => {
                let n = chunk.strip_prefix("chunk/")?.parse::<u32>().ok()?;
                match v {
                    Some(v) => entry.chunks.insert(n, Arc::new(v.to_vec())),
                    None => entry.chunks.remove(&n),
                };
            }
        }
        let complete = entry.complete().is_some();
        if entry.meta.is_none() && entry.chunks.is_empty() {
            modules.remove(digest);
        }
        (complete && !was_complete).then(|| digest.to_owned())
    }

    /// Checks `bytes`: a component of a known world, imports within our
    /// WIT, compiles. CPU-heavy: call from a blocking task.
    pub fn check(&self, bytes: &[u8]) -> Result<Checked, ApiError> {
        let loaded = LoadedModule::from_bytes(&self.engine, "upload", bytes, &self.compile_cache)
            .map_err(|e| match e {
            ModuleError::Read { .. } => ApiError::Internal(e.to_string()),
            other => ApiError::BadRequest(other.to_string()),
        })?;
        Ok(Checked {
            digest: loaded.digest,
            world: loaded.world,
            size: loaded.size,
        })
    }

    /// Store a checked module for `caller`. Returns the module and whether
    /// this call created it (for this caller).
    pub async fn store(
        &self,
        state: &StateLog,
        caller: &Caller,
        bytes: &[u8],
        checked: Checked,
    ) -> Result<(ModuleInfo, bool), ApiError> {
        let owner = caller.name().to_owned();
        let existing = self.meta(&checked.digest);
        let meta = match existing {
            Some(mut meta) => {
                if !meta.info.owners.insert(owner) {
                    return Ok((meta.info, false));
                }
                meta
            }
            None => {
                let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
                for (i, chunk) in chunks.iter().enumerate() {
                    let key = format!("{}/chunk/{i}", checked.digest);
                    state.put(StateTopic::Modules, &key, Some(chunk)).await?;
                }
                Meta {
                    info: ModuleInfo {
                        digest: checked.digest.clone(),
                        world: world_name(checked.world).to_owned(),
                        size: checked.size,
                        owners: BTreeSet::from([owner]),
                        created_ms: now_ms(),
                    },
                    chunks: chunks.len() as u32,
                }
            }
        };
        self.put_meta(state, &meta).await?;
        Ok((meta.info, true))
    }

    async fn put_meta(&self, state: &StateLog, meta: &Meta) -> Result<(), ApiError> {
        let json = serde_json::to_vec(meta).map_err(|e| ApiError::Internal(e.to_string()))?;
        let key = format!("{}/meta", meta.info.digest);
        let offset = state.put(StateTopic::Modules, &key, Some(&json)).await?;
        state.wait_applied(StateTopic::Modules, offset).await
    }

    fn meta(&self, digest: &str) -> Option<Meta> {
        let modules = self.modules.read().unwrap_or_else(|e| e.into_inner());
        modules.get(digest)?.complete().cloned()
    }

    /// The complete module `digest`, compiled (from the cache when it was
    /// compiled before); `None` if it is not (yet) all here. CPU-heavy:
    /// call from a blocking task.
    pub fn load(&self, digest: &str) -> Option<Result<LoadedModule, ModuleError>> {
        let bytes = self.bytes(digest)?;
        Some(LoadedModule::from_bytes(
            &self.engine,
            digest,
            &bytes,
            &self.compile_cache,
        ))
    }

    /// The bytes of a complete module.
    fn bytes(&self, digest: &str) -> Option<Vec<u8>> {
        let modules = self.modules.read().unwrap_or_else(|e| e.into_inner());
        let entry = modules.get(digest)?;
        let meta = entry.complete()?;
        let mut out = Vec::with_capacity(meta.info.size);
        for i in 0..meta.chunks {
            out.extend_from_slice(&entry.chunks[&i]);
        }
        Some(out)
    }

    /// Every module the caller may see.
    pub fn list(&self, caller: &Caller) -> Vec<ModuleInfo> {
        let modules = self.modules.read().unwrap_or_else(|e| e.into_inner());
        modules
            .values()
            .filter_map(Entry::complete)
            .filter(|m| m.info.owners.iter().any(|o| caller.sees(o)))
            .map(|m| visible(caller, &m.info))
            .collect()
    }

    /// The module `digest`, if the caller may see it (else 404).
    pub fn get(&self, caller: &Caller, digest: &str) -> Result<ModuleInfo, ApiError> {
        self.meta(digest)
            .filter(|m| m.info.owners.iter().any(|o| caller.sees(o)))
            .map(|m| visible(caller, &m.info))
            .ok_or_else(|| ApiError::NotFound(format!("module {digest:?}")))
    }

    /// Drops the caller's ownership of `digest` (all owners for the
    /// operator); the bytes go with the last owner.
    pub async fn remove(
        &self,
        state: &StateLog,
        caller: &Caller,
        digest: &str,
    ) -> Result<(), ApiError> {
        let Some(mut meta) = self
            .meta(digest)
            .filter(|m| m.info.owners.iter().any(|o| caller.sees(o)))
        else {
            return Err(ApiError::NotFound(format!("module {digest:?}")));
        };
        meta.info.owners.retain(|o| !caller.sees(o));
        if !meta.info.owners.is_empty() {
            return self.put_meta(state, &meta).await;
        }
        let offset = state
            .put(StateTopic::Modules, &format!("{digest}/meta"), None)
            .await?;
        for i in 0..meta.chunks {
            state
                .put(StateTopic::Modules, &format!("{digest}/chunk/{i}"), None)
                .await?;
        }
        state.wait_applied(StateTopic::Modules, offset).await
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
        World::Producer => "producer",
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(digest: &str, chunks: u32) -> Vec<u8> {
        serde_json::to_vec(&Meta {
            info: ModuleInfo {
                digest: digest.into(),
                world: "consumer".into(),
                size: 6,
                owners: BTreeSet::from(["a".to_owned()]),
                created_ms: 1,
            },
            chunks,
        })
        .unwrap()
    }

    #[test]
    fn a_module_is_complete_once_meta_and_every_chunk_arrived() {
        let r = ModuleRegistry::new(Engine::default(), std::env::temp_dir());
        assert_eq!(r.apply("sha256:x/chunk/1", Some(b"def")), None);
        assert_eq!(r.apply("sha256:x/meta", Some(&meta("sha256:x", 2))), None);
        assert!(r.bytes("sha256:x").is_none());
        assert_eq!(
            r.apply("sha256:x/chunk/0", Some(b"abc")).as_deref(),
            Some("sha256:x")
        );
        assert_eq!(r.bytes("sha256:x").unwrap(), b"abcdef");
        assert_eq!(r.list(&Caller::Operator).len(), 1);
        r.apply("sha256:x/meta", None);
        assert!(r.bytes("sha256:x").is_none());
        assert!(r.list(&Caller::Operator).is_empty());
    }
}
