//! Loading a user's component: check it, identify its world, compile it once.
//!
//! Every rejection says which file and what is wrong with it, because the
//! person reading it is a tenant developer who just built a module. Compiled
//! artifacts are cached on disk by content digest and engine fingerprint;
//! only artifacts this runner wrote itself are ever deserialized.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The WIT package version this runner implements.
pub(super) const WIT_VERSION: &str = "0.1.0";
const CONSUMER_EXPORT: &str = "ingesta:runtime/handler@0.1.0";
const PRODUCER_EXPORT: &str = "ingesta:runtime/source@0.1.0";

pub use crate::deployment::World;

/// Why a module was refused. Every variant's `source_name` names the file
/// or upload (a path, `upload`, or the stored module's digest), so the
/// message says which module it is about.
#[derive(Debug, Error)]
pub enum ModuleError {
    /// A module's bytes in the state topic do not hash to the digest they
    /// are filed under.
    #[error(
        "module {filed} in the state topic does not match its bytes (they hash to {actual}); refusing to run it: the state topic was written by something other than ingesta"
    )]
    DigestMismatch {
        /// The digest the chunks are filed under.
        filed: String,
        /// The digest of the bytes found.
        actual: String,
    },
    /// The module file could not be read: a problem of the runner's host,
    /// not of the module (the API answers it as an internal error).
    #[error("cannot read module {source_name}: {error}")]
    Read {
        /// The file's path.
        source_name: String,
        /// Why reading failed.
        error: std::io::Error,
    },
    /// The bytes do not start with the WebAssembly magic `\0asm`.
    #[error(
        "module {source_name} is not a WebAssembly binary (it does not start with the \\0asm magic bytes); build it for the wasm32-wasip2 target"
    )]
    NotWasm {
        /// The file or upload.
        source_name: String,
    },
    /// A core module, not a component: built for the wrong target.
    #[error(
        "module {source_name} is a core WebAssembly module, not a component; build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`) so it implements the ingesta:runtime world"
    )]
    CoreModule {
        /// The file or upload.
        source_name: String,
    },
    /// wasmtime refused to compile the component, or it exports both
    /// ingesta worlds.
    #[error("module {source_name} is not a valid WebAssembly component: {error}")]
    Invalid {
        /// The file or upload.
        source_name: String,
        /// wasmtime's error chain, or what is wrong.
        error: String,
    },
    /// The component's shape is past a structural limit (see
    /// [`super::shape`]); nothing was compiled.
    #[error("module {source_name} is refused before compiling: {error}")]
    TooComplex {
        /// The file or upload.
        source_name: String,
        /// The limit it passes, and by how much.
        error: String,
    },
    /// The component exports neither `handler` nor `source` of
    /// `ingesta:runtime` (in any version).
    #[error(
        "module {source_name} does not implement an ingesta world: it exports [{exports}] but a consumer must export `{CONSUMER_EXPORT}` and a producer `{PRODUCER_EXPORT}` (use the SDK's export_handler! or export_producer! macro)"
    )]
    UnknownWorld {
        /// The file or upload.
        source_name: String,
        /// Its export names, comma-separated.
        exports: String,
    },
    /// The component imports or exports `ingesta:runtime` interfaces of
    /// another version than the one this runner implements (`WIT_VERSION`).
    #[error(
        "module {source_name} was built against `{found}`, but this runner implements ingesta:runtime@{WIT_VERSION}; rebuild it with a matching SDK"
    )]
    VersionMismatch {
        /// The file or upload.
        source_name: String,
        /// The first mismatching interface, with its version.
        found: String,
    },
    /// The component imports something other than `ingesta:runtime`
    /// interfaces and WASI: a host capability ingesta does not grant.
    #[error(
        "module {source_name} imports `{import}`, which ingesta does not provide; modules may import only ingesta:runtime@{WIT_VERSION} interfaces and WASI 0.2"
    )]
    ForbiddenImport {
        /// The file or upload.
        source_name: String,
        /// The first such import's name.
        import: String,
    },
}

/// A checked, compiled component.
#[derive(Clone)]
pub struct LoadedModule {
    /// `sha256:<hex>` of the uploaded bytes.
    pub digest: crate::deployment::Digest,
    /// The world it exports: which kind of deployment may run it.
    pub world: World,
    /// Size of the uploaded bytes.
    pub size: usize,
    /// The compiled component, for the engine it was loaded with; cheap to
    /// clone (shared).
    pub component: Component,
}

impl LoadedModule {
    /// Read a module file and load it.
    pub fn from_file(
        engine: &Engine,
        path: &Path,
        cache_dir: &Path,
    ) -> Result<LoadedModule, ModuleError> {
        let source_name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| ModuleError::Read {
            source_name: source_name.clone(),
            error,
        })?;
        Self::from_bytes(engine, &source_name, &bytes, cache_dir)
    }

    /// Check and compile `bytes` (reusing the disk cache when possible).
    pub fn from_bytes(
        engine: &Engine,
        source_name: &str,
        bytes: &[u8],
        cache_dir: &Path,
    ) -> Result<LoadedModule, ModuleError> {
        let source_name = source_name.to_owned();
        if !bytes.starts_with(b"\0asm") {
            return Err(ModuleError::NotWasm { source_name });
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(ModuleError::CoreModule { source_name });
        }
        let digest = crate::deployment::Digest::of(bytes);
        let path = cache_path(engine, digest.as_str(), cache_dir);
        // A module compiled (and cached) before passed this already.
        if !path.is_file() {
            super::shape::check(bytes, &super::shape::LIMITS).map_err(|error| {
                ModuleError::TooComplex {
                    source_name: source_name.clone(),
                    error,
                }
            })?;
        }
        let (component, fresh) =
            compile_cached(engine, &source_name, bytes, digest.as_str(), &path)?;
        let world = identify_world(engine, &source_name, &component)?;
        // Cached only once every check passed: a refused upload leaves
        // nothing on disk.
        if fresh && let Err(e) = write_cache(&component, &path) {
            tracing::warn!(path = %path.display(), error = %e,
                "could not cache compiled module; it will be compiled again next start");
        }
        Ok(LoadedModule {
            digest,
            world,
            size: bytes.len(),
            component,
        })
    }
}

fn identify_world(
    engine: &Engine,
    source_name: &str,
    component: &Component,
) -> Result<World, ModuleError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let ours = name.starts_with("ingesta:runtime/");
        if ours && !name.ends_with(&format!("@{WIT_VERSION}")) {
            return Err(ModuleError::VersionMismatch {
                source_name: source_name.to_owned(),
                found: name.to_owned(),
            });
        }
        if !ours && !name.starts_with("wasi:") {
            return Err(ModuleError::ForbiddenImport {
                source_name: source_name.to_owned(),
                import: name.to_owned(),
            });
        }
    }
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    match (
        exports.contains(&CONSUMER_EXPORT),
        exports.contains(&PRODUCER_EXPORT),
    ) {
        (true, false) => return Ok(World::Consumer),
        (false, true) => return Ok(World::Producer),
        (true, true) => {
            return Err(ModuleError::Invalid {
                source_name: source_name.to_owned(),
                error: format!(
                    "it exports both `{CONSUMER_EXPORT}` and `{PRODUCER_EXPORT}`; a module is either a consumer or a producer"
                ),
            });
        }
        (false, false) => {}
    }
    if let Some(other) = exports.iter().find(|e| {
        e.starts_with("ingesta:runtime/handler@") || e.starts_with("ingesta:runtime/source@")
    }) {
        return Err(ModuleError::VersionMismatch {
            source_name: source_name.to_owned(),
            found: (*other).to_owned(),
        });
    }
    Err(ModuleError::UnknownWorld {
        source_name: source_name.to_owned(),
        exports: exports.join(", "),
    })
}

/// The component from the cache at `path`, or compiled (`true`: not
/// cached yet; the caller writes it once the component passed its checks).
fn compile_cached(
    engine: &Engine,
    source_name: &str,
    bytes: &[u8],
    digest: &str,
    path: &Path,
) -> Result<(Component, bool), ModuleError> {
    if path.is_file() {
        // SAFETY: the cache directory holds only artifacts this runner
        // serialized itself from validated components (named by the digest of
        // their source and the engine's fingerprint); uploads are never
        // deserialized.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(c) => return Ok((c, false)),
            Err(e) => tracing::warn!(path = %path.display(), error = %e,
                "ignoring unreadable compiled-module cache entry"),
        }
    }
    let started = Instant::now();
    let component = Component::from_binary(engine, bytes).map_err(|e| ModuleError::Invalid {
        source_name: source_name.to_owned(),
        error: format!("{e:#}"),
    })?;
    tracing::info!(
        module = source_name,
        digest,
        elapsed_ms = started.elapsed().as_millis() as u64,
        size = bytes.len(),
        "compiled module"
    );
    Ok((component, true))
}

/// Remove the compiled artifact of `digest` (a deleted module) from
/// `cache_dir`; a missing one is fine.
pub fn remove_cached(engine: &Engine, digest: &str, cache_dir: &Path) {
    let path = cache_path(engine, digest, cache_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::debug!(path = %path.display(), "removed a deleted module's compiled artifact")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e,
            "cannot remove a deleted module's compiled artifact"),
    }
}

/// Make sure `dir` is a compile cache only this runner's user can write:
/// created (mode 0700) if missing; refused if another user owns it or
/// others may write to it, since its files are deserialized as trusted
/// machine code.
pub fn prepare_cache_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create the compile cache {}: {e}", dir.display()))?;
    }
    let meta = std::fs::metadata(dir)
        .map_err(|e| format!("cannot read the compile cache {}: {e}", dir.display()))?;
    // The owner of a directory we just created (or of our home's cache)
    // is our effective user; compare with a file we create ourselves.
    let probe = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("the compile cache {} is not writable: {e}", dir.display()))?;
    let me = probe
        .as_file()
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", probe.path().display()))?
        .uid();
    if !meta.is_dir() || meta.uid() != me {
        return Err(format!(
            "the compile cache {} must be a directory owned by the runner's user (uid {me}); its compiled modules are loaded as trusted code. Set runtime.compile_cache_dir to a directory of the runner's own",
            dir.display()
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "the compile cache {} is writable by other users (mode {:o}); its compiled modules are loaded as trusted code. Run chmod go-w on it, or set runtime.compile_cache_dir",
            dir.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

fn cache_path(engine: &Engine, digest: &str, cache_dir: &Path) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let hex = digest.trim_start_matches("sha256:");
    cache_dir.join(format!("{hex}-{:016x}.cwasm", h.finish()))
}

fn write_cache(component: &Component, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize()?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut c = wasmtime::Config::new();
        c.wasm_component_model(true);
        Engine::new(&c).unwrap()
    }

    fn load(bytes: &[u8]) -> Result<LoadedModule, ModuleError> {
        let dir = tempfile::tempdir().unwrap();
        LoadedModule::from_bytes(&engine(), "upload.wasm", bytes, dir.path())
    }

    #[test]
    fn text_is_not_wasm() {
        let err = load(b"hello world").err().unwrap().to_string();
        assert!(err.contains("upload.wasm"), "{err}");
        assert!(err.contains("not a WebAssembly binary"), "{err}");
    }

    #[test]
    fn core_module_is_named_as_such() {
        let err = load(b"\0asm\x01\0\0\0").err().unwrap().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
    }

    #[test]
    fn truncated_component_is_invalid() {
        // A component header followed by a section that claims more bytes
        // than there are.
        let err = load(b"\0asm\x0d\0\x01\0\x01\xff\x01")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a valid WebAssembly component"), "{err}");
    }

    #[test]
    fn empty_component_implements_no_world() {
        let err = load(b"\0asm\x0d\0\x01\0").err().unwrap().to_string();
        assert!(err.contains("does not implement an ingesta world"), "{err}");
    }

    #[test]
    fn a_refused_module_leaves_no_artifact_and_a_deleted_ones_goes() {
        let engine = engine();
        let dir = tempfile::tempdir().unwrap();
        // Compiles, but implements no world: refused after compiling.
        let bytes = b"\0asm\x0d\0\x01\0";
        assert!(LoadedModule::from_bytes(&engine, "upload.wasm", bytes, dir.path()).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing cached"
        );
        // An artifact of a module that is then deleted is removed.
        let digest = crate::deployment::Digest::of(bytes);
        let path = cache_path(&engine, digest.as_str(), dir.path());
        std::fs::write(&path, b"artifact").unwrap();
        remove_cached(&engine, digest.as_str(), dir.path());
        assert!(!path.exists());
        remove_cached(&engine, digest.as_str(), dir.path()); // already gone: fine
    }

    #[test]
    fn the_compile_cache_must_be_the_runners_own() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b/compiled");
        prepare_cache_dir(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "created private");
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare_cache_dir(&shared).unwrap_err();
        assert!(
            err.contains("writable by other users") && err.contains("compile_cache_dir"),
            "{err}"
        );
        let file = root.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(prepare_cache_dir(&file).is_err());
    }
}
