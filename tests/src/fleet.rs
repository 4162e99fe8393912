//! Several runner processes sharing one control plane's state topics (and
//! so its deployments), as a fleet does: each joins the deployments'
//! consumer groups, so starting or stopping one is a rebalance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

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

/// Records produced at a steady rate on a thread of its own until
/// stopped, numbered `n-<i>` (key and value) and spread round-robin over
/// the topic's partitions: the load a chaos scenario runs under.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<usize>>>,
}

impl Load {
    /// Start producing `per_second` records a second to `topic` (with
    /// `partitions` partitions), in batches every 100 ms.
    pub fn start(topic: &str, partitions: i32, per_second: usize) -> Load {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (topic, flag) = (topic.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || -> Result<usize> {
            use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
            // One producer for the whole run: while the broker is away its
            // records wait in librdkafka's queue and go out once it is back.
            let producer: ThreadedProducer<crate::kafka::Acks> = crate::kafka::client_config()
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "5")
                .create_with_context(crate::kafka::Acks::default())
                .context("cannot create the load's producer")?;
            let per_batch = (per_second / 10).max(1);
            let mut sent = 0usize;
            let mut next = Instant::now();
            while !flag.load(Ordering::Acquire) {
                for i in sent..sent + per_batch {
                    let value = format!("n-{i}");
                    let record = BaseRecord::to(&topic)
                        .key(&value)
                        .payload(&value)
                        .partition(i as i32 % partitions);
                    let queued = crate::kafka::send_when_room(
                        &producer,
                        record,
                        Duration::from_millis(5),
                        || false,
                    )?;
                    ensure!(queued, "record {i} was not queued");
                }
                sent += per_batch;
                next += Duration::from_millis(100);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            producer
                .flush(Duration::from_secs(120))
                .context("the load's records were not all delivered")?;
            let acks = producer.context();
            let ok = acks.ok.load(Ordering::Acquire) as usize;
            let failed = acks.failed.load(Ordering::Acquire);
            ensure!(
                ok == sent && failed == 0,
                "of {sent} load records {ok} were delivered and {failed} failed"
            );
            Ok(sent)
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    /// Stop; how many records were produced (`n-0` up to this, exclusive).
    pub fn stop(mut self) -> Result<usize> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let thread = self.thread.take().context("stopped twice")?;
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the load thread panicked"))?
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Every `n-<i>` for `i < sent` must be among `output`'s values (read to
/// its end): fails naming the missing ones; returns how many arrived more
/// than once (at-least-once redelivery after a rebalance or a crash).
pub fn check_outputs(output: &str, sent: usize, timeout: Duration) -> Result<usize> {
    let messages = crate::kafka::read_to_end(output, timeout)?;
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for m in &messages {
        let v = crate::kafka::value_str(m)?;
        if let Some(i) = v.strip_prefix("n-").and_then(|n| n.parse().ok()) {
            *seen.entry(i).or_default() += 1;
        }
    }
    let missing: Vec<usize> = (0..sent).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() {
        bail!(
            "{} of {sent} inputs have no output, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
    }
    Ok(seen.values().map(|n| n - 1).sum())
}

/// Samples a group's commits on a topic under load on a thread of its
/// own: per partition, the longest time its committed offset stood still
/// while it had records waiting.
pub struct PauseWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<BTreeMap<i32, Duration>>>>,
}

impl PauseWatch {
    /// Start sampling every 100 ms.
    pub fn start(group: &str, topic: &str) -> Result<PauseWatch> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let watcher = Watcher::new(topic, Some(group))?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last: BTreeMap<i32, (Option<i64>, Instant)> = BTreeMap::new();
            let mut longest: BTreeMap<i32, Duration> = BTreeMap::new();
            while !flag.load(Ordering::Acquire) {
                let ends = watcher.high_watermarks()?;
                let committed = watcher.committed()?;
                let now = Instant::now();
                for (&p, &end) in &ends {
                    let c = committed.get(&p).copied().flatten();
                    let entry = last.entry(p).or_insert((c, now));
                    if c != entry.0 || c.unwrap_or(0) >= end {
                        *entry = (c, now);
                    }
                    let worst = longest.entry(p).or_default();
                    *worst = (*worst).max(now - entry.1);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(longest)
        });
        Ok(PauseWatch {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop; the longest pause per partition.
    pub fn stop(mut self) -> Result<BTreeMap<i32, Duration>> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let thread = self.thread.take().context("stopped twice")?;
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the pause watcher panicked"))?
    }
}

impl Drop for PauseWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
    }
}
