//! The module registry: the runner's view of the components tenants
//! uploaded, content-addressed by digest, built by applying the modules
//! state topic's records in order (`<digest>/meta`, `<digest>/chunk/<n>`).
//!
//! It checks uploads and compiles stored modules (through the compile
//! cache); who may see or change what is the control plane's business
//! ([`crate::control::service`]), which also writes the records.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use wasmtime::Engine;

use crate::api::ModuleInfo;
use crate::deployment::Digest;
use crate::wasm::{LoadedModule, ModuleError};

/// Bytes per chunk record: well under the broker's default 1 MiB limit.
pub const CHUNK_BYTES: usize = 512 << 10;

/// The `<digest>/meta` record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// What the API shows about the module (digest, world, size, owners,
    /// upload time).
    pub info: ModuleInfo,
    /// How many `<digest>/chunk/<n>` records (`n` from 0) hold its bytes,
    /// each at most [`CHUNK_BYTES`]; the module is complete, and usable,
    /// once all of them and this record are applied.
    pub chunks: u32,
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

/// The state-topic key of a module's meta record.
pub fn meta_key(digest: &Digest) -> String {
    format!("{digest}/meta")
}

/// The state-topic key of a module's chunk `n`.
pub fn chunk_key(digest: &Digest, n: u32) -> String {
    format!("{digest}/chunk/{n}")
}

/// The registry of one runner.
pub struct ModuleRegistry {
    /// Checks uploads and compiles stored modules (through the cache).
    engine: Engine,
    compile_cache: PathBuf,
    modules: RwLock<BTreeMap<String, Entry>>,
    /// Complete modules compiled once, by digest, shared by every
    /// deployment running them: one copy of the code however many
    /// deployments (and a deployment started after the first costs no
    /// hashing or loading).
    loaded: std::sync::Mutex<BTreeMap<String, LoadedModule>>,
}

impl ModuleRegistry {
    /// An empty registry; fill it with [`ModuleRegistry::apply`].
    pub fn new(engine: Engine, compile_cache: PathBuf) -> Self {
        Self {
            engine,
            compile_cache,
            modules: RwLock::default(),
            loaded: std::sync::Mutex::default(),
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
        if !complete {
            self.loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(digest);
        }
        if entry.meta.is_none() && entry.chunks.is_empty() {
            modules.remove(digest);
            // Deleted: its compiled artifact goes too.
            crate::wasm::remove_cached(&self.engine, digest, &self.compile_cache);
        }
        (complete && !was_complete).then(|| digest.to_owned())
    }

    /// Checks `bytes`: a component of a known world, imports within our
    /// WIT, compiles. CPU-heavy: call from a blocking task.
    pub fn check(&self, bytes: &[u8]) -> Result<LoadedModule, ModuleError> {
        LoadedModule::from_bytes(&self.engine, "upload", bytes, &self.compile_cache)
    }

    /// The stored module `digest`, if it is all here.
    pub fn meta(&self, digest: &str) -> Option<Meta> {
        let modules = self.modules.read().unwrap_or_else(|e| e.into_inner());
        modules.get(digest)?.complete().cloned()
    }

    /// Every complete module.
    pub fn all(&self) -> Vec<ModuleInfo> {
        let modules = self.modules.read().unwrap_or_else(|e| e.into_inner());
        modules
            .values()
            .filter_map(Entry::complete)
            .map(|m| m.info.clone())
            .collect()
    }

    /// The complete module `digest`, compiled (from the cache when it was
    /// compiled before); `None` if it is not (yet) all here. CPU-heavy:
    /// call from a blocking task.
    pub fn load(&self, digest: &Digest) -> Option<Result<LoadedModule, ModuleError>> {
        let shared = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = shared.get(digest.as_str()) {
            return Some(Ok(m.clone()));
        }
        drop(shared);
        let bytes = self.bytes(digest.as_str())?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Some(Err(ModuleError::DigestMismatch {
                filed: digest.to_string(),
                actual: actual.to_string(),
            }));
        }
        let loaded =
            LoadedModule::from_bytes(&self.engine, digest.as_str(), &bytes, &self.compile_cache);
        if let Ok(m) = &loaded {
            // Under the registry's lock, so a deletion applied meanwhile
            // (which empties `loaded` under the write lock) is seen.
            let modules = self.modules.read().unwrap_or_else(|e| e.into_inner());
            if modules
                .get(digest.as_str())
                .and_then(Entry::complete)
                .is_some()
            {
                self.loaded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(digest.to_string(), m.clone());
            }
        }
        Some(loaded)
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
}

/// A new module's meta record.
pub fn new_meta(loaded: &LoadedModule, owner: &str, chunks: u32) -> Meta {
    Meta {
        info: ModuleInfo {
            digest: loaded.digest.to_string(),
            world: loaded.world,
            size: loaded.size,
            owners: BTreeSet::from([owner.to_owned()]),
            created_ms: crate::deployment::now_ms(),
        },
        chunks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasm::World;

    fn meta(digest: &str, chunks: u32) -> Vec<u8> {
        serde_json::to_vec(&Meta {
            info: ModuleInfo {
                digest: digest.into(),
                world: World::Consumer,
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
        assert_eq!(r.all().len(), 1);
        r.apply("sha256:x/meta", None);
        assert!(r.bytes("sha256:x").is_none());
        assert!(r.all().is_empty());
    }

    #[test]
    fn meta_records_of_the_previous_release_load() {
        // As the 0.1 release wrote it (world as a string).
        let written = br#"{"info":{"digest":"sha256:x","world":"producer","size":3,"owners":["shop"],"created_ms":5},"chunks":1}"#;
        let r = ModuleRegistry::new(Engine::default(), std::env::temp_dir());
        r.apply("sha256:x/chunk/0", Some(b"abc"));
        assert_eq!(
            r.apply("sha256:x/meta", Some(written)).as_deref(),
            Some("sha256:x")
        );
        assert_eq!(r.meta("sha256:x").unwrap().info.world, World::Producer);
    }

    #[test]
    fn bytes_that_do_not_hash_to_their_digest_are_refused() {
        let r = ModuleRegistry::new(Engine::default(), std::env::temp_dir());
        let filed = Digest::of(b"the real module");
        let key = filed.to_string();
        r.apply(&format!("{key}/chunk/0"), Some(b"something else"));
        r.apply(&format!("{key}/meta"), Some(&meta(&key, 1)));
        let err = r.load(&filed).unwrap().err().unwrap().to_string();
        assert!(
            err.contains(&key) && err.contains(Digest::of(b"something else").as_str()),
            "{err}"
        );
    }
}
