//! Python: `componentize-py` bundles the project, the SDK and CPython into a
//! component of the world named in `pyproject.toml`'s `[tool.ingesta]`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use super::{BuildError, Language, embedded, on_path, run};
use crate::wasm::World;

/// The componentize-py release the SDK is tested with.
pub(super) const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

#[derive(Deserialize)]
struct PyProject {
    project: Option<ProjectTable>,
    tool: Option<ToolTable>,
}

#[derive(Deserialize)]
struct ProjectTable {
    name: Option<String>,
}

#[derive(Deserialize)]
struct ToolTable {
    ingesta: Option<IngestaTable>,
}

/// `[tool.ingesta]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestaTable {
    /// `module:Class` of the handler or producer.
    handler: String,
    /// `consumer` (default) or `producer`.
    world: Option<String>,
    /// Extra directories to bundle (vendored pure-Python dependencies),
    /// relative to the project.
    #[serde(default)]
    python_path: Vec<PathBuf>,
}

/// `pyproject.toml`, read and checked: what a build needs from it.
struct Project {
    /// `[project] name`; the component is written as `<name>.wasm`.
    name: String,
    /// Dotted module path of `[tool.ingesta] handler` (before the `:`).
    module: String,
    /// Class name of `[tool.ingesta] handler` (after the `:`).
    class: String,
    /// `[tool.ingesta] world`, consumer unless it says `producer`.
    world: World,
    /// `[tool.ingesta] python_path`, relative to the project directory.
    python_path: Vec<PathBuf>,
}

impl Project {
    /// Reads `dir/pyproject.toml`, refusing with a message naming the
    /// missing or malformed entry.
    fn read(dir: &Path) -> Result<Self, BuildError> {
        let project_err = |message: String| BuildError::Project {
            dir: dir.to_owned(),
            message,
        };
        let manifest = dir.join("pyproject.toml");
        let text = std::fs::read_to_string(&manifest).map_err(|e| BuildError::io(&manifest, e))?;
        let py: PyProject = toml::from_str(&text)
            .map_err(|e| project_err(format!("pyproject.toml: {}", e.message())))?;
        let name = py
            .project
            .and_then(|p| p.name)
            .ok_or_else(|| project_err("pyproject.toml has no [project] name".into()))?;
        let ingesta = py.tool.and_then(|t| t.ingesta).ok_or_else(|| {
            project_err(
                "pyproject.toml has no [tool.ingesta] table; add `handler = \"module:Class\"` \
                 (and `world = \"producer\"` for a producer)"
                    .into(),
            )
        })?;
        let (module, class) = ingesta
            .handler
            .split_once(':')
            .filter(|(m, c)| {
                m.split('.').all(is_identifier) && is_identifier(c)
            })
            .ok_or_else(|| {
                project_err(format!(
                    "[tool.ingesta] handler = {:?} must be `module:Class`, e.g. \"stats:ActivityStats\"",
                    ingesta.handler
                ))
            })?;
        let world = match ingesta.world.as_deref() {
            None | Some("consumer") => World::Consumer,
            Some("producer") => World::Producer,
            Some(other) => {
                return Err(project_err(format!(
                    "[tool.ingesta] world = {other:?}: expected \"consumer\" or \"producer\""
                )));
            }
        };
        Ok(Self {
            name,
            module: module.to_owned(),
            class: class.to_owned(),
            world,
            python_path: ingesta.python_path,
        })
    }
}

/// Bundles the project in `dir` with componentize-py; returns the
/// `[project] name` and the component's bytes.
pub(super) fn build(dir: &Path, cache: &Path) -> Result<(String, Vec<u8>), BuildError> {
    let project = Project::read(dir)?;
    let tool = componentize_py(cache)?;
    let sdk = embedded::sdk_root(cache)?.join("sdk").join("python");

    let scratch = tempfile::tempdir().map_err(|e| BuildError::io(dir, e))?;
    let wit = scratch.path().join("wit");
    embedded::write_wit(&wit)?;
    let entry = scratch.path().join("entry");
    write_entry(&entry, &project)?;

    let out = scratch.path().join("out.wasm");
    let mut cmd = Command::new(tool);
    cmd.arg("-d")
        .arg(&wit)
        .arg("-w")
        .arg(project.world.to_string())
        .arg("componentize")
        .arg("-p")
        .arg(dir);
    if dir.join("src").is_dir() {
        cmd.arg("-p").arg(dir.join("src"));
    }
    for extra in &project.python_path {
        cmd.arg("-p").arg(dir.join(extra));
    }
    cmd.arg("-p")
        .arg(&entry)
        .arg("-p")
        .arg(&sdk)
        .arg("ingesta_main")
        .arg("-o")
        .arg(&out);
    let module = &project.module;
    run(
        cmd,
        &format!("componentize-py imports {module} at build time: check that it imports cleanly"),
    )?;
    let bytes = std::fs::read(&out).map_err(|e| BuildError::io(&out, e))?;
    Ok((project.name, bytes))
}

/// Writes `entry/ingesta_main.py`, the module componentize-py starts from:
/// it wraps the project's class in the SDK's export for the world.
fn write_entry(entry: &Path, project: &Project) -> Result<(), BuildError> {
    std::fs::create_dir_all(entry).map_err(|e| BuildError::io(entry, e))?;
    let main = entry.join("ingesta_main.py");
    let Project {
        world,
        module,
        class,
        ..
    } = project;
    let (export, export_class) = match world {
        World::Consumer => ("export_consumer", "Handler"),
        World::Producer => ("export_producer", "Source"),
    };
    std::fs::write(
        &main,
        format!(
            "# Written by `ingesta build`: binds the project's {world} to the component's export.\n\
             from ingesta._component import {export}\n\
             from {module} import {class} as _User\n\
             {export_class} = {export}(_User)\n"
        ),
    )
    .map_err(|e| BuildError::io(&main, e))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// `INGESTA_COMPONENTIZE_PY`, else `componentize-py` on `PATH`, else the
/// one `make setup` installs into `<cache>/python/venv`.
fn componentize_py(cache: &Path) -> Result<PathBuf, BuildError> {
    if let Some(p) = std::env::var_os("INGESTA_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = on_path("componentize-py") {
        return Ok(p);
    }
    let venv = cache.join("python/venv/bin/componentize-py");
    if venv.is_file() {
        return Ok(venv);
    }
    Err(BuildError::MissingTool {
        tool: "componentize-py",
        lang: Language::Python,
        advice: format!(
            "`pip install {COMPONENTIZE_PY}` (or `make setup`, which installs it into {})",
            cache.join("python/venv").display()
        ),
    })
}
