//! Running the real `ingesta` binary as a child process.
//!
//! Tests exercise the runner exactly as operators do: a TOML config file and
//! `ingesta serve --config FILE`, with its exit status and log as the
//! observable outcome. Build the binary with `make build` (or
//! `cargo build --release -p ingesta`) and the guests with `make guests`
//! first; the helpers here fail with that advice when something is missing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_owned()
}

/// Cargo's target folder: `CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if Path::new(&d).is_absolute() => PathBuf::from(d),
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target"),
    }
}

/// The `ingesta` binary: `INGESTA_BIN`, else `target/release/ingesta`, else
/// `target/debug/ingesta`.
pub fn ingesta_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("INGESTA_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("INGESTA_BIN={} does not exist", p.display());
        }
        return Ok(p);
    }
    let candidates = [
        target_dir().join("release").join("ingesta"),
        target_dir().join("debug").join("ingesta"),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "the ingesta binary is missing (looked for {} and {}); build it with `make build` \
             (cargo build --release -p ingesta) or point INGESTA_BIN at it",
                candidates[0].display(),
                candidates[1].display()
            )
        })
}

/// The compiled guest example `name` (a crate under `guest-examples/rust/`,
/// e.g. `activity-stats`): `target/wasm32-wasip2/guest/activity_stats.wasm`.
pub fn guest_wasm(name: &str) -> Result<PathBuf> {
    let file = format!("{}.wasm", name.replace('-', "_"));
    wasm_in_guest_dir(&file, || {
        format!("run `make guests` (cargo build --target wasm32-wasip2 --profile guest -p {name})")
    })
}

/// A Go or Python guest built by `ingesta build` (`make guests` builds them
/// all): `target/wasm32-wasip2/guest/<lang>/<name>.wasm`.
pub fn built_wasm(lang: &str, name: &str) -> Result<PathBuf> {
    wasm_in_guest_dir(&format!("{lang}/{name}.wasm"), || {
        format!("run `make guests` (it runs `ingesta build` for every {lang} project)")
    })
}

/// A compiled test fixture under `tests/fixtures/` (a bin crate, so the file
/// keeps the dash): `target/wasm32-wasip2/guest/not-a-consumer.wasm`.
pub fn fixture_wasm(name: &str) -> Result<PathBuf> {
    wasm_in_guest_dir(&format!("{name}.wasm"), || {
        format!("run `make guests` (cargo build --target wasm32-wasip2 --profile guest -p {name})")
    })
}

fn wasm_in_guest_dir(file: &str, advice: impl FnOnce() -> String) -> Result<PathBuf> {
    let p = target_dir().join("wasm32-wasip2").join("guest").join(file);
    if !p.is_file() {
        bail!("{} is missing; {}", p.display(), advice());
    }
    Ok(p)
}

/// Quote `s` as a TOML basic string.
pub fn toml_str(s: &str) -> String {
    // JSON string escapes are a subset of TOML basic-string escapes.
    serde_json::to_string(s).expect("strings always serialize")
}

/// A `[[deployment]]` table, rendered by [`Deployment::to_toml`]. Fields
/// left at their defaults are not written, so the runner's defaults apply.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Deployment name, unique in the config; also its metrics label.
    pub name: String,
    /// The `.wasm` component file it runs.
    pub module: PathBuf,
    /// Topics it consumes.
    pub inputs: Vec<String>,
    /// Its consumer group (always given explicitly, never derived).
    pub group: String,
    /// Topics the module may emit to; the runner refuses any other.
    pub outputs: Vec<String>,
    /// `start`; `None` keeps the default (`earliest`).
    pub start: Option<String>,
    /// `batch.max_records`: most records per handler call; `None` keeps
    /// the runner's default.
    pub max_records: Option<usize>,
    /// `batch.max_wait_ms`: how long, in ms, a partial batch waits for more
    /// records before it is handed over; `None` keeps the runner's default.
    pub max_wait_ms: Option<u64>,
    /// `[deployment.config]` entries, written as TOML strings.
    pub config: Vec<(String, String)>,
    /// Other `[deployment.<table>]` entries, values written as raw TOML.
    pub settings: Vec<(String, String, String)>,
}

impl Deployment {
    /// A deployment of `module` consuming `input` under `group`.
    pub fn new(name: &str, module: &Path, input: &str, group: &str) -> Self {
        Self {
            name: name.to_owned(),
            module: module.to_owned(),
            inputs: vec![input.to_owned()],
            group: group.to_owned(),
            outputs: Vec::new(),
            start: None,
            max_records: None,
            max_wait_ms: None,
            config: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// Dead-letter to `topic` after `max_attempts`, retrying with a 1 ms
    /// initial backoff (tests should not wait on backoff).
    pub fn dead_letter(self, topic: &str, max_attempts: u32) -> Self {
        self.set("failure", "dead_letter_topic", toml_str(topic))
            .set("failure", "max_attempts", max_attempts)
            .set("failure", "backoff_initial_ms", 1)
    }

    /// Set `key = raw_toml` in `[deployment.<table>]` (e.g. `limits`,
    /// `failure`).
    pub fn set(mut self, table: &str, key: &str, raw_toml: impl ToString) -> Self {
        self.settings
            .push((table.to_owned(), key.to_owned(), raw_toml.to_string()));
        self
    }

    /// Add an output topic.
    pub fn output(mut self, topic: &str) -> Self {
        self.outputs.push(topic.to_owned());
        self
    }

    /// Set `batch.max_records` and `batch.max_wait_ms`.
    pub fn batch(mut self, max_records: usize, max_wait_ms: u64) -> Self {
        self.max_records = Some(max_records);
        self.max_wait_ms = Some(max_wait_ms);
        self
    }

    /// Add a `[deployment.config]` entry.
    pub fn config(mut self, key: &str, value: impl ToString) -> Self {
        self.config.push((key.to_owned(), value.to_string()));
        self
    }

    /// The `[[deployment]]` table.
    pub fn to_toml(&self) -> String {
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
            format!("[{}]", items.join(", "))
        };
        let mut t = String::from("[[deployment]]\n");
        let _ = writeln!(t, "name = {}", toml_str(&self.name));
        let _ = writeln!(t, "module = {}", toml_str(&self.module.to_string_lossy()));
        let _ = writeln!(t, "inputs = {}", list(&self.inputs));
        let _ = writeln!(t, "group = {}", toml_str(&self.group));
        let _ = writeln!(t, "outputs = {}", list(&self.outputs));
        if let Some(s) = &self.start {
            let _ = writeln!(t, "start = {}", toml_str(s));
        }
        if self.max_records.is_some() || self.max_wait_ms.is_some() {
            t.push_str("[deployment.batch]\n");
            if let Some(n) = self.max_records {
                let _ = writeln!(t, "max_records = {n}");
            }
            if let Some(ms) = self.max_wait_ms {
                let _ = writeln!(t, "max_wait_ms = {ms}");
            }
        }
        let mut tables: Vec<&str> = self.settings.iter().map(|(t, _, _)| t.as_str()).collect();
        tables.sort_unstable();
        tables.dedup();
        for table in tables {
            let _ = writeln!(t, "[deployment.{table}]");
            for (_, k, v) in self.settings.iter().filter(|(tt, _, _)| tt == table) {
                let _ = writeln!(t, "{k} = {v}");
            }
        }
        if !self.config.is_empty() {
            t.push_str("[deployment.config]\n");
            for (k, v) in &self.config {
                let _ = writeln!(t, "{} = {}", toml_str(k), toml_str(v));
            }
        }
        t
    }
}

/// A whole config file for the test broker with `deployments`.
pub fn config_toml(deployments: &[Deployment]) -> String {
    config_toml_with_consumer(&[], deployments)
}

/// Like [`config_toml`], adding librdkafka properties for every
/// deployment's consumer (`[kafka.consumer]`).
pub fn config_toml_with_consumer(consumer: &[(&str, &str)], deployments: &[Deployment]) -> String {
    let mut t = kafka_table();
    if !consumer.is_empty() {
        t.push_str("[kafka.consumer]\n");
        for (k, v) in consumer {
            let _ = writeln!(t, "{} = {}", toml_str(k), toml_str(v));
        }
    }
    for d in deployments {
        t.push('\n');
        t.push_str(&d.to_toml());
    }
    t
}

/// The `[kafka]` table pointing at the test broker.
pub fn kafka_table() -> String {
    format!(
        "[kafka]\nbootstrap_servers = {}\n",
        toml_str(&crate::kafka::bootstrap())
    )
}

/// `ingesta serve` running as a child process with its own temp folder
/// (config file and log). The child is killed when this is dropped.
pub struct RunnerProcess {
    child: Child,
    status: Option<ExitStatus>,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
}

impl RunnerProcess {
    /// Write `config_toml` to a temp folder and start `ingesta serve` on it.
    pub fn spawn(config_toml: &str) -> Result<RunnerProcess> {
        Self::spawn_command("serve", config_toml)
    }

    /// Like [`RunnerProcess::spawn`] with another subcommand taking
    /// `--config` (e.g. `check`).
    pub fn spawn_command(subcommand: &str, config_toml: &str) -> Result<RunnerProcess> {
        Self::spawn_with(subcommand, config_toml, &[])
    }

    /// Like [`RunnerProcess::spawn_command`] with extra arguments after the
    /// subcommand (e.g. `--log-format json`).
    pub fn spawn_with(subcommand: &str, config_toml: &str, args: &[&str]) -> Result<RunnerProcess> {
        let bin = ingesta_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("ingesta-test-")
            .tempdir()
            .context("cannot create a temp folder")?;
        let config_path = dir.path().join("ingesta.toml");
        std::fs::write(&config_path, config_toml)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let log_path = dir.path().join("ingesta.log");
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let child = Command::new(&bin)
            .arg(subcommand)
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("INGESTA_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(RunnerProcess {
            child,
            status: None,
            dir,
            config_path,
            log_path,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file the child was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The child's temp folder (config and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the child wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn signal(&mut self, sig: libc::c_int) -> Result<()> {
        if self.try_status()?.is_some() {
            bail!("ingesta already exited; log:\n{}", self.log());
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child, which has not been reaped (try_status saw it running).
        if unsafe { libc::kill(pid, sig) } != 0 {
            bail!(
                "kill({pid}, {sig}) failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    /// Ask the runner to drain and stop (SIGTERM).
    pub fn sigterm(&mut self) -> Result<()> {
        self.signal(libc::SIGTERM)
    }

    /// Kill the runner without warning (SIGKILL).
    pub fn sigkill(&mut self) -> Result<()> {
        self.signal(libc::SIGKILL)
    }

    /// The exit status if the child has exited.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait().context("waiting for ingesta")?;
        }
        Ok(self.status)
    }

    /// Wait up to `timeout` for the child to exit; returns its status and
    /// log. On timeout the child is killed and an error carries the log.
    pub fn wait(&mut self, timeout: Duration) -> Result<(ExitStatus, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                return Ok((status, self.log()));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "ingesta did not exit within {timeout:?} (killed it); log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait up to `timeout`: fails with the log unless it
    /// drains and exits 0. Returns the log.
    pub fn stop_cleanly(&mut self, timeout: Duration) -> Result<String> {
        self.sigterm()?;
        let (exit, log) = self.wait(timeout)?;
        if !exit.success() {
            bail!("the runner did not stop cleanly: {exit}\n{log}");
        }
        Ok(log)
    }

    /// Wait until `group` has committed the end of every partition of
    /// `topic` (as of the call). Fails early, with the log, if the runner
    /// exits meanwhile.
    pub fn wait_until_committed_to_end(
        &mut self,
        group: &str,
        topic: &str,
        timeout: Duration,
    ) -> Result<BTreeMap<i32, Option<i64>>> {
        let result = crate::kafka::wait_until_committed_to_end_while(group, topic, timeout, || {
            match self.try_status()? {
                None => Ok(()),
                Some(status) => bail!("ingesta exited ({status}); log:\n{}", self.log()),
            }
        });
        result.map_err(|e| {
            if e.to_string().contains("ingesta exited") {
                e
            } else {
                e.context(format!("ingesta log so far:\n{}", self.log()))
            }
        })
    }

    /// Wait up to `timeout` until the runner's control API at `api` is
    /// ready. Fails at once, with the log, if the runner exits first (a
    /// port taken meanwhile, a broken config), and with the log on timeout.
    pub fn wait_ready(&mut self, api: &crate::control::Api, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if api.is_ready() {
                return Ok(());
            }
            if let Some(status) = self.try_status()? {
                bail!(
                    "ingesta exited ({status}) before it was ready; log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the runner at {} was not ready within {timeout:?}; log:\n{}",
                    api.base(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait up to `timeout` until the log contains `needle`. Fails if the
    /// child exits first or the time runs out, showing the log.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.try_status()? {
                bail!(
                    "ingesta exited ({status}) before logging {needle:?}; log:\n{}",
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "ingesta did not log {needle:?} within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        if matches!(self.try_status(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run `ingesta serve` on `config_toml` and wait for it to exit on its own
/// (used for configs and modules that must be refused).
pub fn serve_until_exit(config_toml: &str, timeout: Duration) -> Result<(ExitStatus, String)> {
    RunnerProcess::spawn(config_toml)?.wait(timeout)
}

/// Run `ingesta check` on `config_toml`.
pub fn check(config_toml: &str, timeout: Duration) -> Result<(ExitStatus, String)> {
    RunnerProcess::spawn_command("check", config_toml)?.wait(timeout)
}
