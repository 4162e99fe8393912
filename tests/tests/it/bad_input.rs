//! Bad modules, bad config and missing topics are refused before anything
//! is consumed, with an error that names the culprit.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, Deployment};

/// Refusals happen at startup; this only bounds a hang.
const TIMEOUT: Duration = Duration::from_secs(60);

/// An input topic holding a few records, and a fresh group.
struct Setup {
    input: String,
    output: String,
    group: String,
}

impl Setup {
    fn new() -> Result<Setup> {
        let s = Setup {
            input: kafka::unique("bad-in"),
            output: kafka::unique("bad-out"),
            group: kafka::unique("grp"),
        };
        kafka::create_topic(&s.input, 1)?;
        kafka::create_topic(&s.output, 1)?;
        kafka::produce(
            &s.input,
            (0..3).map(|i| (format!("k{i}"), format!("v{i}"), None)),
        )?;
        Ok(s)
    }

    fn deployment(&self, module: &Path) -> Deployment {
        Deployment::new("bad-input", module, &self.input, &self.group)
            .output(&self.output)
            .config("output_topic", &self.output)
    }

    /// Run `ingesta serve` with `module`; it must exit non-zero with a log
    /// containing every one of `needles`, having consumed nothing.
    fn refused(&self, module: &Path, needles: &[&str]) -> Result<()> {
        let config = runner::config_toml(&[self.deployment(module)]);
        let (status, log) = runner::serve_until_exit(&config, TIMEOUT)?;
        ensure!(
            !status.success(),
            "ingesta accepted {}:\n{log}",
            module.display()
        );
        for needle in needles {
            ensure!(
                log.contains(needle),
                "the error should mention {needle:?}:\n{log}"
            );
        }
        ensure!(log.contains("error: "), "no `error: ` line:\n{log}");
        self.consumed_nothing()
    }

    fn consumed_nothing(&self) -> Result<()> {
        let committed = kafka::committed(&self.group, &self.input)?;
        ensure!(
            committed.values().all(Option::is_none),
            "group {} committed {committed:?} although the runner was refused",
            self.group
        );
        kafka::delete_topics(&[&self.input, &self.output]);
        Ok(())
    }
}

fn write_module(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> Result<std::path::PathBuf> {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[test]
fn non_wasm_module_is_refused_naming_the_file() -> Result<()> {
    let setup = Setup::new()?;
    let dir = tempfile::tempdir()?;
    let module = write_module(&dir, "handler.wasm", b"fn main() { println!(\"hi\") }\n")?;
    setup.refused(
        &module,
        &[&module.display().to_string(), "not a WebAssembly binary"],
    )
}

#[test]
fn core_module_is_refused() -> Result<()> {
    let setup = Setup::new()?;
    let dir = tempfile::tempdir()?;
    // The smallest valid core module: magic and version, no sections.
    let module = write_module(&dir, "core.wasm", b"\0asm\x01\0\0\0")?;
    setup.refused(
        &module,
        &[&module.display().to_string(), "core WebAssembly module"],
    )
}

#[test]
fn component_of_the_wrong_world_is_refused() -> Result<()> {
    let setup = Setup::new()?;
    let module = runner::fixture_wasm("not-a-consumer")?;
    setup.refused(
        &module,
        &[
            &module.display().to_string(),
            "does not implement an ingesta world",
        ],
    )
}

#[test]
fn missing_module_file_is_named() -> Result<()> {
    let setup = Setup::new()?;
    let dir = tempfile::tempdir()?;
    let module = dir.path().join("nowhere.wasm");
    setup.refused(&module, &[&module.display().to_string()])
}

#[test]
fn unknown_config_key_is_named() -> Result<()> {
    let setup = Setup::new()?;
    let module = Path::new("/nonexistent/noop.wasm");
    let good = runner::config_toml(&[setup.deployment(module)]);

    let typo = good.replace("group = ", "grop = ");
    ensure!(typo != good);
    let (status, log) = runner::serve_until_exit(&typo, TIMEOUT)?;
    ensure!(!status.success(), "ingesta accepted `grop`:\n{log}");
    ensure!(log.contains("grop"), "the error should name `grop`:\n{log}");

    let mistyped = good.replace(
        &format!("inputs = [\"{}\"]", setup.input),
        &format!("inputs = \"{}\"", setup.input),
    );
    ensure!(mistyped != good);
    let (status, log) = runner::serve_until_exit(&mistyped, TIMEOUT)?;
    ensure!(
        !status.success(),
        "ingesta accepted a string for `inputs`:\n{log}"
    );
    ensure!(
        log.contains("inputs"),
        "the error should name `inputs`:\n{log}"
    );

    // `check` reports the same without running anything.
    let (status, log) = runner::check(&typo, TIMEOUT)?;
    ensure!(
        !status.success() && log.contains("grop"),
        "check: {status}\n{log}"
    );
    setup.consumed_nothing()
}

#[test]
fn missing_topic_is_named() -> Result<()> {
    let setup = Setup::new()?;
    let module = runner::guest_wasm("identity")?;
    let absent = kafka::unique("absent");

    let mut d = setup.deployment(&module);
    d.outputs = vec![absent.clone()];
    let (status, log) = runner::serve_until_exit(&runner::config_toml(&[d]), TIMEOUT)?;
    ensure!(
        !status.success(),
        "ingesta accepted a missing output topic:\n{log}"
    );
    ensure!(
        log.contains(&absent) && log.contains("does not exist"),
        "the error should name the missing output topic {absent}:\n{log}"
    );

    let mut d = setup.deployment(&module);
    d.inputs = vec![absent.clone()];
    let (status, log) = runner::serve_until_exit(&runner::config_toml(&[d]), TIMEOUT)?;
    ensure!(
        !status.success(),
        "ingesta accepted a missing input topic:\n{log}"
    );
    ensure!(
        log.contains(&absent) && log.contains("does not exist"),
        "the error should name the missing input topic {absent}:\n{log}"
    );
    setup.consumed_nothing()
}
