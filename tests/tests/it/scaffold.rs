//! `ingesta new` and `ingesta build`, as a new user runs them: a project
//! created in each language builds into a component that does what its
//! README says (upper-case each value into `output_topic`, key and headers
//! kept), using the SDK the binary carries; and `ingesta build` refuses
//! broken projects with a message naming the problem.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ingesta_abi::{HeaderEntry, OutgoingEntry, RecordEntry, Span, Timestamp};
use ingesta_runtime::deployment::LimitsConfig;
use ingesta_runtime::wasm::bindings::Batch;
use ingesta_runtime::wasm::{CallOutcome, ConsumerInstance, WasmEngine, WasmEngineConfig};
use ingesta_tests::inproc;
use ingesta_tests::runner::{self, target_dir};

fn ingesta(args: &[&str], dir: &Path) -> Result<Output> {
    let mut c = Command::new(runner::ingesta_bin()?);
    c.args(args).current_dir(dir);
    // The user's view: the SDK the binary carries, not this checkout's.
    c.env_remove("INGESTA_SDK_DIR");
    // Rust scaffolds share one target dir, so a second run is quick.
    c.env("CARGO_TARGET_DIR", target_dir().join("scaffold"));
    c.output().context("cannot run ingesta")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Two records: keyed with a header, and keyless with non-ASCII text.
fn batch() -> Batch {
    let (mut data, mut records, mut headers) = (Vec::new(), Vec::new(), Vec::new());
    HeaderEntry {
        name: Span::append(&mut data, b"trace"),
        value: Some(Span::append(&mut data, b"t-1")),
    }
    .encode(&mut headers);
    for (offset, (key, value, header_count)) in [(Some("k1"), "hello", 1), (None, "wörld", 0)]
        .into_iter()
        .enumerate()
    {
        RecordEntry {
            offset: offset as i64,
            timestamp: Timestamp::CreateTime(1_732_460_000_000),
            key: key.map(|k| Span::append(&mut data, k.as_bytes())),
            value: Some(Span::append(&mut data, value.as_bytes())),
            header_start: 0,
            header_count,
        }
        .encode(&mut records);
    }
    Batch {
        topic: "in".into(),
        partition: 0,
        data,
        records,
        headers,
    }
}

/// Runs the component at `wasm` on [`batch`] and returns what it emitted:
/// (topic, key, value, headers).
type Emitted = (
    String,
    Option<String>,
    Option<String>,
    Vec<(String, Option<String>)>,
);

fn run_component(wasm: &Path) -> Result<Vec<Emitted>> {
    inproc::block_on(async {
        let cache = tempfile::tempdir()?;
        let engine = WasmEngine::new(WasmEngineConfig::new(
            Duration::from_millis(10),
            cache.path().to_owned(),
        ))?;
        let template = inproc::consumer(
            &engine,
            cache.path(),
            wasm,
            "scaffold",
            &LimitsConfig::default(),
            &["shouty"],
            &[("output_topic", "shouty")],
        )?;
        let mut instance = ConsumerInstance::new(&template).await?;
        let outboxes = match instance.handle(&batch()).await {
            CallOutcome::Ok((), outboxes) => outboxes,
            CallOutcome::Failed(e) => anyhow::bail!("the handler failed: {}", e.message),
            CallOutcome::Trapped { message, .. } => anyhow::bail!("the handler trapped: {message}"),
        };
        let mut out = Vec::new();
        for o in &outboxes {
            let s = |span: Option<Span>| {
                span.and_then(|s| s.get(&o.data))
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            for i in 0..OutgoingEntry::count(&o.records) {
                let r = OutgoingEntry::read(&o.records, i).context("bad outbox entry")?;
                let headers = (r.header_start..r.header_start + r.header_count)
                    .filter_map(|h| HeaderEntry::read(&o.headers, h as usize))
                    .map(|h| (s(Some(h.name)).unwrap_or_default(), s(h.value)))
                    .collect();
                out.push((
                    o.topics[r.topic as usize].clone(),
                    s(r.key),
                    s(r.value),
                    headers,
                ));
            }
        }
        Ok(out)
    })
}

#[test]
fn new_projects_in_every_language_build_and_upper_case_records() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let want: Vec<Emitted> = vec![
        (
            "shouty".into(),
            Some("k1".into()),
            Some("HELLO".into()),
            vec![("trace".into(), Some("t-1".into()))],
        ),
        ("shouty".into(), None, Some("WÖRLD".into()), vec![]),
    ];
    for lang in ["rust", "go", "python"] {
        let name = format!("shouty-{lang}");
        let created = ingesta(&["new", "--lang", lang, &name], dir.path())?;
        ensure!(
            created.status.success(),
            "ingesta new --lang {lang}: {}",
            text(&created)
        );
        let project = dir.path().join(&name);
        ensure!(project.join("README.md").is_file(), "{lang}: no README.md");

        let built = ingesta(&["build"], &project)?;
        ensure!(
            built.status.success(),
            "ingesta build ({lang}): {}",
            text(&built)
        );
        let said = text(&built);
        ensure!(
            said.contains(&format!("({lang} consumer,")),
            "ingesta build ({lang}) said: {said}"
        );
        let wasm = project.join(format!("{name}.wasm"));
        let got = run_component(&wasm).with_context(|| format!("running the {lang} scaffold"))?;
        ensure!(got == want, "the {lang} scaffold emitted {got:?}");
    }
    Ok(())
}

#[test]
fn build_refuses_broken_projects_naming_the_problem() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let refused = |project: &Path, needle: &str| -> Result<()> {
        let o = ingesta(&["build"], project)?;
        let said = text(&o);
        ensure!(!o.status.success(), "{} built: {said}", project.display());
        ensure!(
            said.contains(needle),
            "{} failed without {needle:?}: {said}",
            project.display()
        );
        Ok(())
    };

    let empty = root.join("empty");
    std::fs::create_dir(&empty)?;
    refused(&empty, "found no Cargo.toml, go.mod or pyproject.toml")?;

    // Python: no [tool.ingesta]; a handler that is not `module:Class`; a
    // module that fails at import (componentize-py imports it while building).
    let py = root.join("py");
    std::fs::create_dir(&py)?;
    std::fs::write(py.join("pyproject.toml"), "[project]\nname = \"py\"\n")?;
    refused(&py, "[tool.ingesta]")?;
    std::fs::write(
        py.join("pyproject.toml"),
        "[project]\nname = \"py\"\n[tool.ingesta]\nhandler = \"app\"\n",
    )?;
    refused(&py, "must be `module:Class`")?;
    std::fs::write(
        py.join("pyproject.toml"),
        "[project]\nname = \"py\"\n[tool.ingesta]\nhandler = \"app:App\"\nworld = \"sink\"\n",
    )?;
    refused(&py, "expected \"consumer\" or \"producer\"")?;
    std::fs::write(
        py.join("pyproject.toml"),
        "[project]\nname = \"py\"\n[tool.ingesta]\nhandler = \"app:App\"\n",
    )?;
    std::fs::write(
        py.join("app.py"),
        "raise RuntimeError('broken at import')\n",
    )?;
    refused(&py, "componentize-py imports app at build time")?;

    // Go: a program that links neither SDK export has no world, one that
    // links both has two.
    let created = ingesta(&["new", "--lang", "go", "gone"], root)?;
    ensure!(created.status.success(), "ingesta new: {}", text(&created));
    let go = root.join("gone");
    std::fs::write(go.join("main_test.go"), "package main\n")?;
    std::fs::write(go.join("main.go"), "package main\n\nfunc main() {}\n")?;
    refused(&go, "exports no ingesta handler or producer")?;
    std::fs::write(
        go.join("main.go"),
        "package main\n\nimport (\n\t_ \"example.invalid/ingesta/sdk/go/consumer\"\n\t\
         _ \"example.invalid/ingesta/sdk/go/producer\"\n)\n\nfunc main() {}\n",
    )?;
    refused(&go, "exports both a handler and a producer source")?;

    // Names and existing directories.
    let o = ingesta(&["new", "--lang", "rust", "Bad_Name"], root)?;
    ensure!(
        !o.status.success() && text(&o).contains("not a usable project name"),
        "{}",
        text(&o)
    );
    let o = ingesta(&["new", "--lang", "go", "gone"], root)?;
    ensure!(
        !o.status.success() && text(&o).contains("already exists"),
        "{}",
        text(&o)
    );
    Ok(())
}
