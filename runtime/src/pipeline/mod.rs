//! A running deployment: poll → batch → instance → outputs → ack → commit.
//!
//! Guarantee (at-least-once): an input offset is stored for commit only after
//! the handler returned success for its batch *and* Kafka acknowledged every
//! record the call emitted. Offsets of one partition are stored in order, so
//! a committed offset never passes a record that was not fully handled. After
//! a crash, records after the last commit are handled again, so outputs may be
//! duplicated but never missing.
//!
//! Threads and tasks:
//! - one poll thread per deployment ([`poller`]) owns the consumer's poll
//!   loop, cuts per-partition batches, applies back-pressure by pausing
//!   partitions whose lane is busy, notices records Kafka no longer has
//!   and runs the stall watchdog;
//! - one async task per assigned partition ([`lane`]) calls the instance in
//!   offset order, publishes outputs and stores offsets; partitions run in
//!   parallel on the shared executor;
//! - the consumer's group callbacks ([`rebalance`]) run on the poll thread:
//!   where assigned partitions begin, and draining and committing before
//!   partitions are given up;
//! - [`partitions`] is what they share about each assigned partition
//!   (progress, stalls, gaps, degraded outputs), and what status reads.
//!
//! On revocation (rebalance) and shutdown, lanes finish the batches they
//! hold, together under one deadline, and offsets are committed before the
//! partitions are given up.

pub(crate) mod failure;
mod lane;
pub mod partitions;
mod poller;
mod rebalance;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use tokio::sync::watch;

use crate::config::KafkaConfig;
use crate::deployment::{Definition, Linked, RunState};
use crate::kafka::{self, OutputProducer};
use crate::telemetry::{DeploymentMetrics, DeploymentTelemetry};
use crate::wasm::ConsumerTemplate;

pub use crate::deployment::Notes;
use partitions::{PartitionKey, Partitions};
pub use rebalance::DeploymentContext;

/// State shared by the poll thread, the lanes and the runner.
pub struct Shared {
    /// Deployment name (for logs and errors).
    pub name: Arc<str>,
    /// Set to ask the deployment to drain and stop.
    stop: AtomicBool,
    /// Set once when a lane fails; the poll loop then stops the deployment.
    failure: Mutex<Option<String>>,
    failed: AtomicBool,
    /// Lanes of currently assigned partitions.
    lanes: Mutex<HashMap<PartitionKey, lane::LaneHandle>>,
    /// The assigned partitions: progress, stalls, gaps, degraded outputs.
    partitions: Partitions,
    /// Bumped on every revocation so the poll loop drops batches it was
    /// building for partitions it no longer owns.
    revocations: AtomicU64,
    revoked: Mutex<Vec<PartitionKey>>,
    /// How long revocation and shutdown wait for lanes to finish.
    drain_timeout: Duration,
    /// How long an assigned partition with records waiting may make no
    /// progress before it is reported as stalled.
    stall_timeout: Duration,
    /// Metrics and guest log, owned by the supervisor (they outlive this
    /// run of the deployment).
    pub telemetry: Arc<DeploymentTelemetry>,
    state: watch::Sender<RunState>,
    /// Where it stands while caught up, and since when (the watchdog's
    /// checks write it; the supervisor reads it to put it to sleep).
    quiet: Mutex<Option<partitions::Quiet>>,
    /// Set by the first assignment (empty or not): until then it has not
    /// joined its group, and holding nothing says nothing about being
    /// caught up.
    joined: AtomicBool,
}

impl Shared {
    fn fail(&self, reason: String) {
        let mut f = self.failure.lock().unwrap();
        if f.is_none() {
            tracing::error!(deployment = &*self.name, reason = %reason,
                "deployment failed; it stops consuming and commits only fully handled records");
            *f = Some(reason);
            self.failed.store(true, Ordering::Release);
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.failed.load(Ordering::Acquire)
    }

    /// Take the lanes of `parts` (every lane if `None`) out of the map.
    fn take_lanes(&self, parts: Option<&[PartitionKey]>) -> Vec<lane::LaneHandle> {
        let mut lanes = self.lanes.lock().unwrap();
        match parts {
            None => lanes.drain().map(|(_, h)| h).collect(),
            Some(parts) => parts.iter().filter_map(|p| lanes.remove(p)).collect(),
        }
    }
}

/// How a started deployment runs: the runner-wide timeouts it obeys.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// How long revocation and shutdown wait for lanes to finish.
    pub drain: Duration,
    /// How long a partition with records waiting may stand still before
    /// it is reported as stalled.
    pub stall: Duration,
}

/// What the lanes run, from a linked consumer; made as it takes effect
/// (start or swap), which is also when its guest-log budget applies.
fn program(linked: Linked<ConsumerTemplate>) -> lane::Program {
    let spec = &linked.def.spec;
    let limits = &spec.limits;
    linked
        .template
        .grants()
        .telemetry
        .log
        .set_rate(limits.log_lines_per_second, limits.log_burst_lines);
    lane::Program {
        policy: failure::Policy::from(&spec.failure),
        template: linked.template,
    }
}

/// A started deployment.
pub struct Deployment {
    shared: Arc<Shared>,
    lane_ctx: Arc<lane::LaneCtx>,
    consumer: Arc<rebalance::DeploymentConsumer>,
    def: Mutex<Definition>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    state: watch::Receiver<RunState>,
}

impl Deployment {
    /// Create the consumer, check the topics exist and start the poll thread.
    pub fn start(
        linked: Linked<ConsumerTemplate>,
        kafka_config: &KafkaConfig,
        producer: Arc<OutputProducer>,
        timeouts: Timeouts,
    ) -> Result<Deployment> {
        let def = linked.def.clone();
        let name: Arc<str> = def.name.as_str().into();
        let Some(settings) = def.spec.kind.consumer().cloned() else {
            anyhow::bail!("deployment {name:?} is not a consumer");
        };
        let (state_tx, state_rx) = watch::channel(RunState::Starting);
        let telemetry = linked.template.grants().telemetry.clone();
        let shared = Arc::new(Shared {
            name: name.clone(),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            lanes: Mutex::new(HashMap::new()),
            partitions: Partitions::new(name.clone(), telemetry.clone()),
            revocations: AtomicU64::new(0),
            revoked: Mutex::new(Vec::new()),
            drain_timeout: timeouts.drain,
            stall_timeout: timeouts.stall,
            telemetry,
            state: state_tx,
            quiet: Mutex::new(None),
            joined: AtomicBool::new(false),
        });
        let consumer: rebalance::DeploymentConsumer =
            kafka::consumer_config(kafka_config, &def.name, &settings.group, &def.kafka)
                .create_with_context(DeploymentContext::new(shared.clone()))
                .with_context(|| format!("deployment {name:?}: invalid Kafka consumer settings"))?;
        check_topics(&consumer, &def)?;
        let consumer = Arc::new(consumer);
        let inputs: Vec<&str> = settings
            .inputs
            .iter()
            .chain(&def.redrive_topic)
            .map(String::as_str)
            .collect();
        consumer
            .subscribe(&inputs)
            .with_context(|| format!("deployment {name:?}: cannot subscribe to {inputs:?}"))?;

        let lane_ctx = Arc::new(lane::LaneCtx::new(
            shared.clone(),
            consumer.clone(),
            producer,
            program(linked),
        ));
        let batch = settings.batch.clone();
        let thread = std::thread::Builder::new()
            .name(format!("poll-{name}"))
            .spawn({
                let (shared, lane_ctx, consumer) =
                    (shared.clone(), lane_ctx.clone(), consumer.clone());
                move || poller::run(shared, consumer, lane_ctx, batch)
            })
            .context("failed to start the poll thread")?;
        shared.state.send_replace(RunState::Running);
        tracing::info!(deployment = &*name, group = %settings.group,
            inputs = ?settings.inputs, redrive_topic = ?def.redrive_topic,
            outputs = ?def.spec.outputs, "deployment started");
        Ok(Deployment {
            shared,
            lane_ctx,
            consumer,
            def: Mutex::new(def),
            thread: Mutex::new(Some(thread)),
            state: state_rx,
        })
    }

    /// Hot swap: run `spec`'s module, grants and failure policy from each
    /// partition's next batch on. The batch in progress finishes under the
    /// old program, so no record is lost or handled twice by the switch.
    /// Inputs, group and batching must be unchanged (they need a restart).
    pub fn swap(&self, linked: Linked<ConsumerTemplate>) -> Result<()> {
        check_topics(&self.consumer, &linked.def)?;
        tracing::info!(deployment = self.name(), module = %linked.template.grants().module_digest,
            outputs = ?linked.def.spec.outputs, "swapping the deployment's program");
        *self.def.lock().unwrap() = linked.def.clone();
        self.lane_ctx.swap(program(linked));
        Ok(())
    }

    /// The definition it runs.
    pub fn def(&self) -> Definition {
        self.def.lock().unwrap().clone()
    }

    /// The deployment's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The current state.
    pub fn state(&self) -> RunState {
        let state = self.state.borrow().clone();
        if state == RunState::Running
            && let Some(reason) = self.shared.partitions.degraded_reason()
        {
            return RunState::Degraded(reason);
        }
        state
    }

    /// What is noted about its partitions: stalls, skipped records,
    /// degraded outputs.
    pub fn notes(&self) -> Notes {
        self.shared.partitions.notes()
    }

    /// The input partitions it has assigned now.
    pub fn assigned(&self) -> Vec<(String, i32)> {
        self.shared
            .partitions
            .assigned()
            .into_iter()
            .map(|(k, _)| (k.0.to_string(), k.1))
            .collect()
    }

    /// Where it stands on every assigned partition and since when, if it
    /// has been caught up since the last check (about once a second).
    pub fn quiet(&self) -> Option<partitions::Quiet> {
        if !self.state().is_running() {
            return None;
        }
        self.shared.quiet.lock().unwrap().clone()
    }

    /// The deployment's metrics.
    pub fn metrics(&self) -> &DeploymentMetrics {
        &self.shared.telemetry.metrics
    }

    /// Make the next batch a lane starts panic, as a bug in the runner
    /// would. For tests of what a panicking lane does; never called by
    /// the runner.
    #[doc(hidden)]
    pub fn inject_lane_panic(&self) {
        self.lane_ctx.inject_panic();
    }

    /// Resolves when the deployment has stopped or failed.
    pub async fn finished(&self) -> RunState {
        let mut rx = self.state.clone();
        let state = rx
            .wait_for(|s| matches!(s, RunState::Stopped | RunState::Failed(_)))
            .await
            .map(|s| s.clone());
        state.unwrap_or_else(|_| self.state())
    }

    /// Ask the deployment to drain and stop, and wait for it.
    pub async fn stop(&self) -> RunState {
        self.shared.stop.store(true, Ordering::Release);
        let thread = self.thread.lock().unwrap().take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        self.state()
    }
}

/// Fail fast, with the topic's name, when an input or output topic is
/// missing: otherwise the consumer would idle and outputs would time out.
///
/// Asks for the deployment's topics only, one at a time: the cluster's
/// whole metadata would cost the broker a full answer per start, and many
/// deployments start at once (a runner's start, a wake-up storm).
fn check_topics<C: ConsumerContext>(consumer: &BaseConsumer<C>, d: &Definition) -> Result<()> {
    for (role, topic) in d.spec.topics() {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| {
                format!(
                    "deployment {:?}: cannot fetch the metadata of {role} topic {topic:?} from Kafka (is it running and reachable?)",
                    d.name
                )
            })?;
        let missing = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .is_none_or(|t| t.error().is_some() || t.partitions().is_empty());
        if missing {
            anyhow::bail!(
                "deployment {:?}: {role} topic {topic:?} does not exist in Kafka; create it first (ingesta does not auto-create topics)",
                d.name
            );
        }
    }
    Ok(())
}
