//! `ingesta build` and `ingesta new`: turning a handler project written in
//! Rust, Go or Python into a deployable component with one command, and
//! scaffolding such a project.
//!
//! | module | owns |
//! |---|---|
//! | [`embedded`] | the WIT, SDKs and templates carried in the binary, unpacked on demand |
//! | [`component`] | core module → component (world detection, WIT embedding, WASI adapter) |
//! | `rust`, `go`, `python` | each language's toolchain steps |
//! | [`scaffold`] | `ingesta new` |
//!
//! The user never runs a binding generator or a component tool: the
//! language's own compiler runs with the right flags and this module does
//! the rest, refusing with a message that names the missing tool or setting.

pub mod component;
pub mod embedded;
mod go;
mod python;
mod rust;
pub mod scaffold;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::wasm::World;

/// The languages ingesta has SDKs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// A cdylib crate (`Cargo.toml`), built with cargo for `wasm32-wasip2`.
    Rust,
    /// A Go module (`go.mod`), built with `go build` for `wasip1`.
    Go,
    /// A `pyproject.toml` project, bundled with CPython by componentize-py.
    Python,
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::Rust => "rust",
            Language::Go => "go",
            Language::Python => "python",
        })
    }
}

impl Language {
    /// The language of the project in `dir`, from its manifest.
    pub fn detect(dir: &Path) -> Result<Self, BuildError> {
        let found: Vec<Language> = [
            ("Cargo.toml", Language::Rust),
            ("go.mod", Language::Go),
            ("pyproject.toml", Language::Python),
        ]
        .into_iter()
        .filter(|(file, _)| dir.join(file).is_file())
        .map(|(_, lang)| lang)
        .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(BuildError::Project {
                dir: dir.to_owned(),
                message: "found no Cargo.toml, go.mod or pyproject.toml; run ingesta build in a \
                          handler project (ingesta new creates one) or pass --lang"
                    .into(),
            }),
            several => Err(BuildError::Project {
                dir: dir.to_owned(),
                message: format!(
                    "it looks like several languages ({}); pass --lang",
                    several
                        .iter()
                        .map(Language::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }
}

/// Why a build failed. Each names the project, file or tool involved and
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The project itself is wrong or incomplete (no or several manifests,
    /// a manifest missing a required entry, an unusable project name).
    #[error("project {dir}: {message}")]
    Project {
        /// The project directory (for `ingesta new`, the one to be created).
        dir: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A toolchain program the language needs is not installed.
    #[error("{tool} is needed to build {lang} handlers but was not found: {advice}")]
    MissingTool {
        /// Program name as looked up on `PATH` (`cargo`, `go`,
        /// `componentize-py`).
        tool: &'static str,
        /// The language being built or scaffolded.
        lang: Language,
        /// How to install it.
        advice: String,
    },
    /// A toolchain command could not start or exited unsuccessfully; its
    /// own output has already gone to the terminal.
    #[error("{command} failed ({status}){hint}")]
    Toolchain {
        /// The command line, as shown to the user.
        command: String,
        /// Its exit status, or why it could not be started.
        status: String,
        /// Advice for the likely cause, starting with `"; "`, or empty.
        hint: String,
    },
    /// The toolchain's output is not a usable ingesta component (not valid
    /// WebAssembly, no or both ingesta worlds exported, WIT embedding or
    /// adapting failed).
    #[error("{source_name} cannot become a component: {message}")]
    Componentize {
        /// The project or file the module came from.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The WIT, SDKs or templates compiled into this binary are unusable: a
    /// defect of the ingesta build, not of the user's project. Carries
    /// what failed.
    #[error("embedded files of this ingesta binary are broken ({0}); rebuild ingesta")]
    Embedded(String),
}

impl BuildError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        BuildError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// What `ingesta build` was asked to do.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The project directory.
    pub dir: PathBuf,
    /// Where to write the component; default `<dir>/<project>.wasm`.
    pub out: Option<PathBuf>,
    /// Overrides detection.
    pub lang: Option<Language>,
    /// Where tools and unpacked SDKs are cached.
    pub cache: PathBuf,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The language built, given or detected.
    pub lang: Language,
    /// The ingesta world the component exports, checked as an upload is.
    pub world: World,
    /// Where the component was written.
    pub path: PathBuf,
    /// Size of the component in bytes.
    pub size: usize,
    /// Wall-clock time of the whole build, in seconds.
    pub seconds: f64,
}

/// The cache root: `INGESTA_CACHE`, else `$XDG_CACHE_HOME/ingesta`, else
/// `~/.cache/ingesta` (shared with `deploy/` scripts).
pub fn default_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("INGESTA_CACHE") {
        return PathBuf::from(dir);
    }
    crate::runner::xdg_dir("XDG_CACHE_HOME", ".cache")
}

/// Builds the project in `opts.dir` into a component.
pub fn build(opts: &BuildOptions) -> Result<Built, BuildError> {
    let started = Instant::now();
    let dir = opts
        .dir
        .canonicalize()
        .map_err(|e| BuildError::io(&opts.dir, e))?;
    let lang = match opts.lang {
        Some(lang) => lang,
        None => Language::detect(&dir)?,
    };
    let (name, component) = match lang {
        Language::Rust => rust::build(&dir)?,
        Language::Go => go::build(&dir, &opts.cache)?,
        Language::Python => python::build(&dir, &opts.cache)?,
    };
    let world = component_world(&name, &component)?;
    let out = match &opts.out {
        Some(out) => out.clone(),
        None => dir.join(format!("{name}.wasm")),
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
    }
    std::fs::write(&out, &component).map_err(|e| BuildError::io(&out, e))?;
    Ok(Built {
        lang,
        world,
        path: out,
        size: component.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The world a finished component exports, checked the way an upload is:
/// it must export exactly one of ours.
fn component_world(name: &str, component: &[u8]) -> Result<World, BuildError> {
    let mut consumer = false;
    let mut producer = false;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|e| BuildError::Componentize {
            source_name: name.to_owned(),
            message: format!("the result is not valid WebAssembly: {e}"),
        })?;
        if let wasmparser::Payload::ComponentExportSection(exports) = payload {
            for export in exports.into_iter().flatten() {
                consumer |= export.name.name.starts_with("ingesta:runtime/handler@");
                producer |= export.name.name.starts_with("ingesta:runtime/source@");
            }
        }
    }
    match (consumer, producer) {
        (true, false) => Ok(World::Consumer),
        (false, true) => Ok(World::Producer),
        _ => Err(BuildError::Componentize {
            source_name: name.to_owned(),
            message: "the result must export exactly one of ingesta's handler or source \
                      interfaces; check that the project uses the ingesta SDK's export"
                .into(),
        }),
    }
}

/// Runs `cmd`, passing its output through, and fails with `hint` appended
/// when it exits unsuccessfully.
fn run(mut cmd: Command, hint: &str) -> Result<(), BuildError> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().map_err(|e| BuildError::Toolchain {
        command: shown.clone(),
        status: e.to_string(),
        hint: String::new(),
    })?;
    if status.success() {
        return Ok(());
    }
    Err(BuildError::Toolchain {
        command: shown,
        status: status.to_string(),
        hint: if hint.is_empty() {
            String::new()
        } else {
            format!("; {hint}")
        },
    })
}

/// `name` on `PATH`, if it is there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
