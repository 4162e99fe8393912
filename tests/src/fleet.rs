//! Several runner processes sharing one control plane's state topics (and
//! so its deployments), as a fleet does: each joins the deployments'
//! consumer groups, so starting or stopping one is a rebalance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::control::{self, Api};
use crate::kafka::Watcher;
use crate::runner::RunnerProcess;

/// One runner of the fleet: its process and its API.
pub struct Member {
    /// The runner child process (its log, signals, exit).
    pub process: RunnerProcess,
    /// A client for its control API.
    pub api: Api,
    /// The loopback port its control API listens on.
    pub port: u16,
}

impl Member {
    /// Start a runner on a free port sharing `state_prefix`, with `extra`
    /// TOML appended to its config (e.g. `[runtime]` settings), and wait
    /// until it has applied the state it found.
    pub fn start(state_prefix: &str, extra: &str, timeout: Duration) -> Result<Member> {
        let port = control::free_port()?;
        let config = format!(
            "{}\n{extra}\n",
            control::config_toml(port, state_prefix, 32)
        );
        let mut process = RunnerProcess::spawn(&config)?;
        let api = Api::new(port)?;
        process.wait_ready(&api, timeout)?;
        Ok(Member { process, api, port })
    }

    /// SIGTERM and wait for a clean exit (drained, committed, left the
    /// group); fails with the log otherwise.
    pub fn stop(mut self, timeout: Duration) -> Result<String> {
        self.process.sigterm()?;
        let (status, log) = self.process.wait(timeout)?;
        if !status.success() {
            bail!(
                "runner on port {} exited with {status}; log:\n{log}",
                self.port
            );
        }
        Ok(log)
    }
}

/// How a group's commits moved on each partition of a topic, sampled
/// until every partition reached the end the topic had when watching
/// began.
#[derive(Debug, Default)]
pub struct Progress {
    /// Per partition: the longest time the committed offset stood still
    /// while the partition still had records to handle.
    pub longest_pause: BTreeMap<i32, Duration>,
    /// Per partition: the committed offset at the end.
    pub committed: BTreeMap<i32, Option<i64>>,
}

impl Progress {
    /// The longest pause over every partition.
    pub fn worst(&self) -> Duration {
        self.longest_pause
            .values()
            .copied()
            .max()
            .unwrap_or_default()
    }
}

/// Samples `group`'s committed offsets on `topic` every `every` until
/// every partition has committed its end (as of the call), `timeout`
/// passes (an error with what was seen), or `check` fails. Between
/// samples, `tick` runs (a test's scripted events).
pub fn watch_progress(
    group: &str,
    topic: &str,
    every: Duration,
    timeout: Duration,
    mut tick: impl FnMut() -> Result<()>,
) -> Result<Progress> {
    let watcher = Watcher::new(topic, Some(group))?;
    let ends = watcher.high_watermarks()?;
    let started = Instant::now();
    let mut last: BTreeMap<i32, (Option<i64>, Instant)> = BTreeMap::new();
    let mut progress = Progress::default();
    loop {
        let now = Instant::now();
        let committed = watcher.committed()?;
        let mut done = true;
        for (&p, &end) in &ends {
            let c = committed.get(&p).copied().flatten();
            let entry = last.entry(p).or_insert((c, now));
            if c != entry.0 {
                *entry = (c, now);
            }
            if c.unwrap_or(0) < end {
                done = false;
                let paused = now - entry.1;
                let worst = progress.longest_pause.entry(p).or_default();
                *worst = (*worst).max(paused);
            }
        }
        progress.committed = committed;
        if done {
            return Ok(progress);
        }
        if started.elapsed() > timeout {
            bail!(
                "group {group:?} did not commit to the end of {topic:?} within {timeout:?}: committed {:?}, end {ends:?}, longest pause per partition {:?}",
                progress.committed,
                progress.longest_pause
            );
        }
        tick().context("a scripted step failed while watching progress")?;
        std::thread::sleep(every);
    }
}
