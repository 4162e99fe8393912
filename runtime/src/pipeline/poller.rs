//! The deployment's poll thread: consume, cut batches, hand them to lanes.
//!
//! The thread does as little as possible per record (one copy into the
//! partition's batch buffer) so that it keeps pace with a raw consume loop
//! while the wasm calls run on other threads. When a lane is busy its batches
//! wait here, up to a byte budget; only past that budget is the partition
//! paused. Pausing is the last resort because librdkafka discards what it
//! pre-fetched for a paused partition and may take up to a second to fetch
//! again after resume; short waits for acknowledgements must not trigger it.
//! The thread never blocks on a lane, so one slow partition never stalls the
//! others or the consumer's group membership.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;

use super::lane::{self, LaneCtx};
use super::{DeploymentState, Shared};
use crate::config::BatchConfig;
use crate::kafka::BatchBuilder;
use crate::wasm::bindings::Batch;

/// Rebalance hooks: drain a partition's lane and commit before giving it up.
pub struct DeploymentContext {
    shared: Arc<Shared>,
}

impl DeploymentContext {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl ClientContext for DeploymentContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::kafka::route_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "ingesta::kafka", deployment = &*self.shared.name, %error,
            reason, "consumer error");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.shared.telemetry.metrics.consumer.update(&statistics);
    }
}

impl ConsumerContext for DeploymentContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                tracing::info!(deployment = &*self.shared.name, partitions = ?parts,
                    "partitions revoked; draining their lanes");
                self.shared
                    .revoked
                    .lock()
                    .unwrap()
                    .extend(parts.iter().cloned());
                self.shared.revocations.fetch_add(1, Ordering::AcqRel);
                drain_lanes(&self.shared, Some(&parts));
                commit(consumer, &self.shared.name);
            }
            Rebalance::Assign(tpl) => {
                tracing::info!(
                    deployment = &*self.shared.name,
                    partitions = tpl.count(),
                    "partitions assigned"
                );
            }
            Rebalance::Error(e) => {
                tracing::warn!(deployment = &*self.shared.name, error = %e, "rebalance error");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => tracing::trace!(deployment = &*self.shared.name, ?offsets, "committed"),
            // Nothing new to commit is not a problem.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => tracing::warn!(deployment = &*self.shared.name, error = %e,
                "offset commit failed; it is retried with the next commit"),
        }
    }
}

/// Close the lanes of `parts` (all lanes if `None`) and wait for them to
/// finish the batches they hold, up to the drain timeout.
fn drain_lanes(shared: &Shared, parts: Option<&[(String, i32)]>) {
    let handles: Vec<_> = {
        let mut lanes = shared.lanes.lock().unwrap();
        match parts {
            None => lanes.drain().map(|(_, h)| h).collect(),
            Some(parts) => parts.iter().filter_map(|p| lanes.remove(p)).collect(),
        }
    };
    let deadline = Instant::now() + shared.drain_timeout;
    for h in handles {
        let (topic, partition) = (h.topic.clone(), h.partition);
        if !h.close_and_wait(deadline) {
            tracing::warn!(deployment = &*shared.name, %topic, partition,
                "lane did not drain in time; its unfinished records will be delivered again");
        }
    }
}

fn commit(consumer: &BaseConsumer<DeploymentContext>, name: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(deployment = name, error = %e,
            "final offset commit failed; records after the last commit will be delivered again"),
    }
}

/// A partition the poll loop is building batches for.
struct PartState {
    topic: String,
    partition: i32,
    builder: BatchBuilder,
    /// Batches cut while the lane was busy, oldest first.
    waiting: VecDeque<Batch>,
    /// Bytes held in `waiting`.
    waiting_bytes: usize,
    /// Whether the partition is paused (because `waiting` is over budget).
    paused: bool,
}

/// Bytes a partition may hold in waiting batches before it is paused.
fn waiting_budget(batch: &BatchConfig) -> usize {
    (batch.max_bytes * 4).clamp(8 << 20, 64 << 20)
}

fn batch_bytes(b: &Batch) -> usize {
    b.data.len() + b.records.len() + b.headers.len()
}

/// The poll loop. Runs until stop is requested or a lane fails.
pub(super) fn run(
    shared: Arc<Shared>,
    consumer: Arc<BaseConsumer<DeploymentContext>>,
    lane_ctx: Arc<LaneCtx>,
    batch: BatchConfig,
) {
    let max_wait = Duration::from_millis(batch.max_wait_ms);
    let budget = waiting_budget(&batch);
    let mut any_waiting = false;
    let mut parts: Vec<PartState> = Vec::new();
    let mut seen_revocations = 0;
    let mut next_flush: Option<Instant> = None;

    // Reading the clock costs about as much as copying a record, so while
    // records flow the clock is read only every CLOCK_EVERY records; time
    // matters only for cutting partial batches, which flowing records fill.
    const CLOCK_EVERY: u32 = 64;
    let mut since_clock = 0u32;
    let mut idle = true;

    while !shared.stopping() {
        let timeout = if !idle {
            Duration::ZERO
        } else if any_waiting {
            // Waiting batches are retried often: a lane frees up within
            // milliseconds when its acknowledgements arrive.
            Duration::from_millis(1)
        } else {
            match next_flush {
                Some(t) => t
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
                None => Duration::from_millis(100),
            }
        };
        let polled = consumer.poll(timeout);

        // A revocation may have happened inside poll(): forget what we were
        // building for partitions we no longer own (nothing of it was
        // acknowledged, so the new owner will deliver it again).
        let revocations = shared.revocations.load(Ordering::Acquire);
        if revocations != seen_revocations {
            seen_revocations = revocations;
            let revoked = std::mem::take(&mut *shared.revoked.lock().unwrap());
            parts.retain(|p| !revoked.contains(&(p.topic.clone(), p.partition)));
        }

        idle = polled.is_none();
        match polled {
            None => {}
            Some(Err(e)) => {
                tracing::warn!(deployment = &*shared.name, error = %e, "consume error");
            }
            Some(Ok(msg)) => {
                let (topic, partition) = (msg.topic(), msg.partition());
                let idx = match parts
                    .iter()
                    .position(|p| p.partition == partition && p.topic == topic)
                {
                    Some(i) => i,
                    None => {
                        parts.push(PartState {
                            topic: topic.to_owned(),
                            partition,
                            builder: BatchBuilder::new(topic, partition),
                            waiting: VecDeque::new(),
                            waiting_bytes: 0,
                            paused: false,
                        });
                        parts.len() - 1
                    }
                };
                let p = &mut parts[idx];
                p.builder.push(&msg);
                drop(msg);
                if p.builder.len() >= batch.max_records || p.builder.bytes() >= batch.max_bytes {
                    any_waiting |= cut(p, &shared, &consumer, &lane_ctx, budget);
                } else if p.builder.len() == 1 {
                    let due = p.builder.started() + max_wait;
                    next_flush = Some(next_flush.map_or(due, |t| t.min(due)));
                }
            }
        }

        // Time-based cuts and retries of waiting batches. Waiting batches are
        // retried on every record on purpose: retrying only every
        // CLOCK_EVERY records measured slower on the 1:1 map, whose lanes
        // are the ones that fill up.
        since_clock += 1;
        if !idle && !any_waiting && since_clock < CLOCK_EVERY {
            continue;
        }
        since_clock = 0;
        let now = Instant::now();
        if any_waiting || next_flush.is_some_and(|t| t <= now) {
            next_flush = None;
            any_waiting = false;
            for p in &mut parts {
                if !p.waiting.is_empty() {
                    retry_waiting(p, &shared, &consumer, &lane_ctx);
                }
                if !p.builder.is_empty() {
                    let due = p.builder.started() + max_wait;
                    if due <= now {
                        cut(p, &shared, &consumer, &lane_ctx, budget);
                    } else {
                        next_flush = Some(next_flush.map_or(due, |t| t.min(due)));
                    }
                }
                any_waiting |= !p.waiting.is_empty();
            }
        }
    }

    // Drain: lanes finish what they hold; partial batches are dropped (not
    // acknowledged, so they are delivered again after restart).
    drain_lanes(&shared, None);
    commit(&consumer, &shared.name);
    consumer.unsubscribe();
    // Serve the revocation callback now, so the group sees us leave before
    // the deployment reports itself stopped.
    let _ = consumer.poll(Duration::from_millis(100));
    let failure = shared.failure.lock().unwrap().clone();
    let state = match failure {
        Some(reason) => DeploymentState::Failed(reason),
        None => DeploymentState::Stopped,
    };
    shared.telemetry.metrics.consumer.clear();
    tracing::info!(deployment = &*shared.name, ?state, "deployment stopped");
    shared.state.send_replace(state);
}

/// Hand the current batch to the lane, or keep it waiting (pausing the
/// partition once its waiting batches exceed `budget` bytes). Returns
/// whether the partition now has waiting batches.
fn cut(
    p: &mut PartState,
    shared: &Shared,
    consumer: &BaseConsumer<DeploymentContext>,
    lane_ctx: &Arc<LaneCtx>,
    budget: usize,
) -> bool {
    let batch = p.builder.take();
    let batch = if p.waiting.is_empty() {
        match lane::dispatch(shared, lane_ctx, batch) {
            Ok(()) => return false,
            Err(batch) => batch,
        }
    } else {
        batch
    };
    p.waiting_bytes += batch_bytes(&batch);
    p.waiting.push_back(batch);
    if p.waiting_bytes > budget && !p.paused {
        p.paused = true;
        pause(consumer, p, true, &shared.name);
    }
    true
}

/// Hand waiting batches to the lane in order; resume the partition once
/// none is left.
fn retry_waiting(
    p: &mut PartState,
    shared: &Shared,
    consumer: &BaseConsumer<DeploymentContext>,
    lane_ctx: &Arc<LaneCtx>,
) {
    while let Some(batch) = p.waiting.pop_front() {
        let size = batch_bytes(&batch);
        if let Err(batch) = lane::dispatch(shared, lane_ctx, batch) {
            p.waiting.push_front(batch);
            return;
        }
        p.waiting_bytes -= size;
    }
    if p.paused {
        p.paused = false;
        pause(consumer, p, false, &shared.name);
    }
}

fn pause(consumer: &BaseConsumer<DeploymentContext>, p: &PartState, paused: bool, name: &str) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&p.topic, p.partition);
    let result = if paused {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    if let Err(e) = result {
        tracing::warn!(deployment = name, topic = %p.topic, partition = p.partition, paused,
            error = %e, "cannot change partition pause state");
    }
}
