//! The fleet: what runners sharing a control plane tell each other, so
//! that any runner's API answers for all of them. Two topics beside the
//! state topics carry it:
//!
//! - `<prefix>runners` (compacted, one partition): each runner's
//!   [`report::RunnerReport`] under its `runtime.runner_id`, written every
//!   `control.report_interval_ms` and removed when it stops: per
//!   deployment its state, partitions, schedule and counters. Status merges
//!   the live ones ([`report::merge`]).
//! - `<prefix>logs` (deleted after `control.fleet_log_retention_ms`, one
//!   partition): every guest line a runner keeps, keyed by deployment.
//!   Every runner adds the others' lines to its own log of the deployment,
//!   so the log reads fleet-wide on any runner.
//!
//! Both are best effort and never hold up records: a report or a line
//! Kafka refuses is logged and dropped (lines counted), and reports are
//! only as fresh as their interval.

pub mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::api::DeploymentStatus;
use crate::config::KafkaConfig;
use crate::supervisor::{Supervisor, View};
use crate::telemetry::LogLine;
use crate::telemetry::guest_log::{KEPT_LINES, LogMirror};
use report::{Here, Received, RunnerReport};

/// Guest lines waiting to be mirrored; more are dropped (and counted).
const MIRROR_QUEUE: usize = 10_000;
/// Lines of the logs topic a starting runner reads back: enough to fill
/// a deployment's log several times over.
const LOG_TAIL: i64 = 10 * KEPT_LINES as i64;

/// The fleet's topics and how often to report.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `<prefix>runners`.
    pub runners_topic: String,
    /// `<prefix>logs`.
    pub logs_topic: String,
    /// `control.report_interval_ms`.
    pub every: Duration,
    /// `control.fleet_log_retention_ms`.
    pub log_retention_ms: u64,
    /// Replication factor of the two topics when ingesta creates them.
    pub replication: Option<i32>,
}

/// This runner's membership in the fleet.
pub struct Fleet {
    runner: Arc<str>,
    config: FleetConfig,
    /// The other runners' latest reports, by runner.
    others: Arc<Mutex<BTreeMap<String, Received>>>,
    producer: FutureProducer,
    /// Guest lines not mirrored (queue full or Kafka refused).
    dropped: prometheus::IntCounter,
    stop: Arc<AtomicBool>,
    publisher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Fleet {
    /// Create the fleet's topics if missing, read the others' reports and
    /// lines, and start reporting `supervisor`'s deployments and mirroring
    /// their guest lines as runner `runner`.
    pub async fn join(
        kafka: &KafkaConfig,
        config: FleetConfig,
        runner: &str,
        supervisor: Arc<Supervisor>,
        dropped: prometheus::IntCounter,
    ) -> Result<Arc<Fleet>> {
        let retention = config.log_retention_ms.to_string();
        crate::kafka::topics::ensure_own(
            kafka,
            &[
                (&config.runners_topic, &[("cleanup.policy", "compact")]),
                (
                    &config.logs_topic,
                    &[("cleanup.policy", "delete"), ("retention.ms", &retention)],
                ),
            ],
            config.replication,
        )
        .await?;
        let producer: FutureProducer = crate::kafka::producer_config(kafka)
            .set("client.id", "ingesta-fleet")
            // Reports and log copies are best effort: one broker's word
            // is enough, and lines travel in batches.
            .set("acks", "1")
            .set("enable.idempotence", "false")
            .set("linger.ms", "50")
            .set("compression.type", "lz4")
            .create()
            .context("invalid Kafka producer settings for the fleet's topics")?;
        let runner: Arc<str> = runner.into();
        let (lines, queued) = mpsc::channel(MIRROR_QUEUE);
        let fleet = Arc::new(Fleet {
            runner: runner.clone(),
            config,
            others: Arc::default(),
            producer,
            dropped: dropped.clone(),
            stop: Arc::default(),
            publisher: Mutex::new(None),
        });
        fleet.start_reader(kafka, supervisor.clone())?;
        supervisor.mirror_logs(LogMirror {
            runner,
            lines,
            dropped,
        });
        let publisher = tokio::spawn(publish(fleet.clone(), supervisor, queued));
        *fleet.publisher.lock().unwrap() = Some(publisher);
        tracing::info!(runner = %fleet.runner, runners = %fleet.config.runners_topic,
            logs = %fleet.config.logs_topic, every_ms = fleet.config.every.as_millis() as u64,
            "joined the fleet");
        Ok(fleet)
    }

    /// This runner's id.
    pub fn runner(&self) -> &str {
        &self.runner
    }

    /// Fill `status` (of deployment `view`) with every live runner's view
    /// of it (see [`report::merge`]).
    pub fn merge(&self, view: &View, status: &mut DeploymentStatus) {
        let now = now_ms();
        let others = self.others.lock().unwrap();
        let live = others
            .values()
            .filter(|r| r.is_live(now))
            .map(|r| &r.report);
        report::merge(status, &view.key, &self.runner, Here::of(view), live);
    }

    /// How often runners report.
    pub fn every(&self) -> Duration {
        self.config.every
    }

    /// Whether `runner` is this one or reported within its last three
    /// intervals.
    pub fn is_live(&self, runner: &str) -> bool {
        let now = now_ms();
        runner == &*self.runner
            || self
                .others
                .lock()
                .unwrap()
                .get(runner)
                .is_some_and(|r| r.is_live(now))
    }

    /// The live runners (this one included) on which deployment `key`
    /// is `starting`, as their reports say (this one: as `starting_here`
    /// says), sorted by id.
    pub fn starting(&self, key: &str, starting_here: bool) -> Vec<String> {
        let now = now_ms();
        let others = self.others.lock().unwrap();
        let mut ids: Vec<String> = others
            .values()
            .filter(|r| r.is_live(now))
            .filter(|r| {
                r.report
                    .deployments
                    .get(key)
                    .is_some_and(|h| h.state == crate::deployment::State::Starting)
            })
            .map(|r| r.report.runner.clone())
            .collect();
        if starting_here {
            ids.push(self.runner.to_string());
        }
        ids.sort();
        ids
    }

    /// Stop reporting and remove this runner's report, so the others stop
    /// listing it at once. Call once its deployments have stopped.
    pub async fn leave(&self) {
        self.stop.store(true, Ordering::Release);
        let publisher = self.publisher.lock().unwrap().take();
        if let Some(p) = publisher {
            p.abort();
            let _ = p.await;
        }
        let record = FutureRecord::<str, [u8]>::to(&self.config.runners_topic).key(&*self.runner);
        if let Err((e, _)) = self.producer.send(record, Duration::from_secs(5)).await {
            tracing::warn!(runner = %self.runner, error = %e,
                "cannot remove this runner's fleet report; the others stop listing it after three report intervals");
        }
        let _ = self.producer.flush(Duration::from_secs(5));
    }

    /// Tail both topics on a thread of its own.
    fn start_reader(&self, kafka: &KafkaConfig, supervisor: Arc<Supervisor>) -> Result<()> {
        // Reads by assignment: the group id is never joined or committed.
        let reader: BaseConsumer = crate::kafka::group_admin_config(kafka, "ingesta-fleet-reader")
            .set("client.id", "ingesta-fleet-reader")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "500")
            .create()
            .context("invalid Kafka consumer settings for the fleet's topics")?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.config.runners_topic, 0, Offset::Beginning)?;
        tpl.add_partition_offset(&self.config.logs_topic, 0, Offset::OffsetTail(LOG_TAIL))?;
        reader
            .assign(&tpl)
            .context("cannot read the fleet's topics")?;
        let reading = Reading {
            runner: self.runner.clone(),
            runners_topic: self.config.runners_topic.clone(),
            others: self.others.clone(),
            supervisor,
            since_ms: now_ms(),
        };
        let stop = self.stop.clone();
        std::thread::Builder::new()
            .name("fleet-reader".into())
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match reader.poll(Duration::from_millis(200)) {
                        None => {}
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "cannot read the fleet's topics; retrying");
                        }
                        Some(Ok(m)) => reading.take(&m),
                    }
                }
            })
            .context("cannot start the fleet reader thread")?;
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// What the reader thread applies records to.
struct Reading {
    runner: Arc<str>,
    runners_topic: String,
    others: Arc<Mutex<BTreeMap<String, Received>>>,
    supervisor: Arc<Supervisor>,
    /// When this runner started reading: its own lines from before (an
    /// earlier process with the same id) are the others' to it now.
    since_ms: u64,
}

impl Reading {
    fn take(&self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default());
        if m.topic() == self.runners_topic {
            self.report(&key, m.payload());
        } else {
            self.line(&key, m.payload());
        }
    }

    fn report(&self, runner: &str, payload: Option<&[u8]>) {
        if runner == &*self.runner {
            return;
        }
        let mut others = self.others.lock().unwrap();
        let Some(payload) = payload else {
            others.remove(runner);
            return;
        };
        match serde_json::from_slice::<RunnerReport>(payload) {
            Ok(report) if report.runner == runner => {
                others.insert(
                    runner.to_owned(),
                    Received {
                        report,
                        at: Instant::now(),
                    },
                );
            }
            Ok(_) => tracing::debug!(runner, "a fleet report under another runner's key; ignored"),
            Err(e) => tracing::debug!(runner, error = %e, "unreadable fleet report; ignored"),
        }
    }

    fn line(&self, deployment: &str, payload: Option<&[u8]>) {
        let Some(line) = payload.and_then(|p| serde_json::from_slice::<LogLine>(p).ok()) else {
            return;
        };
        let mine = line.runner.as_deref() == Some(&*self.runner);
        if mine && line.time_ms >= self.since_ms {
            return;
        }
        if let Some(v) = self.supervisor.view(deployment) {
            v.telemetry.log.add_remote(line);
        }
    }
}

/// Report every interval and mirror guest lines as they come, until
/// aborted.
async fn publish(
    fleet: Arc<Fleet>,
    supervisor: Arc<Supervisor>,
    mut lines: mpsc::Receiver<(Arc<str>, LogLine)>,
) {
    let mut tick = tokio::time::interval(fleet.config.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => fleet.report(&supervisor),
            line = lines.recv() => match line {
                Some((key, line)) => fleet.mirror(&key, &line),
                None => return,
            },
        }
    }
}

impl Fleet {
    fn report(&self, supervisor: &Supervisor) {
        let report = RunnerReport {
            runner: self.runner.to_string(),
            at_ms: now_ms(),
            every_ms: self.config.every.as_millis() as u64,
            deployments: supervisor
                .snapshot()
                .iter()
                .map(|v| (v.key.clone(), Here::of(v)))
                .collect(),
        };
        let value = serde_json::to_vec(&report).expect("a report serializes");
        let record = FutureRecord::to(&self.config.runners_topic)
            .key(&*self.runner)
            .payload(&value);
        if let Err((e, _)) = self.producer.send_result(record) {
            tracing::warn!(runner = %self.runner, error = %e, "cannot send this runner's fleet report; trying again next interval");
        }
    }

    fn mirror(&self, deployment: &str, line: &LogLine) {
        let value = serde_json::to_vec(line).expect("a log line serializes");
        let record = FutureRecord::to(&self.config.logs_topic)
            .key(deployment)
            .payload(&value);
        if let Err((e, _)) = self.producer.send_result(record) {
            self.dropped.inc();
            tracing::debug!(deployment, error = %e, "cannot mirror a guest line to the fleet");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
