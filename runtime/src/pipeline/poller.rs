//! The deployment's poll thread: consume, cut batches, hand them to lanes,
//! notice records Kafka no longer had, and watch for stalls.
//!
//! The thread does as little as possible per record (one copy into the
//! partition's batch buffer and one offset comparison) so that it keeps
//! pace with a raw consume loop while the wasm calls run on other threads.
//! When a lane is busy its batches wait here, up to a byte budget; only
//! past that budget is the partition paused. Pausing is the last resort
//! because librdkafka discards what it pre-fetched for a paused partition
//! and may take up to a second to fetch again after resume; short waits
//! for acknowledgements must not trigger it. The thread never blocks on a
//! lane, so one slow partition never stalls the others or the consumer's
//! group membership.
//!
//! Once a second the [`Watchdog`] looks at every assigned partition; one
//! with records waiting and no progress for `runtime.stall_timeout_ms` is
//! reported, whatever the cause.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::Shared;
use super::lane::{self, LaneCtx};
use super::partitions::{self, Observation, PartitionKey, Quiet, Watchdog};
use super::rebalance::{self, DeploymentConsumer};
use crate::deployment::BatchConfig;
use crate::deployment::RunState;
use crate::kafka::{self, BatchBuilder};
use crate::wasm::bindings::Batch;

/// How often the watchdog looks at the assigned partitions.
const WATCH_EVERY: Duration = Duration::from_secs(1);

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
    /// The offset the next record should have (`-1`: unknown). A record
    /// past it, below the partition's first offset, means Kafka removed
    /// records before they were handled.
    expected: i64,
}

/// Bytes a partition may hold in waiting batches before it is paused.
fn waiting_budget(batch: &BatchConfig) -> usize {
    (batch.max_bytes * 4).clamp(8 << 20, 64 << 20)
}

fn batch_bytes(b: &Batch) -> usize {
    b.data.len() + b.records.len() + b.headers.len()
}

/// How long a stopping deployment serves its revocation before it gives
/// up on leaving the group cleanly (the group then notices at the session
/// timeout).
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// The poll thread: the poll loop until stop is requested or a lane fails,
/// then drain, commit and leave the group. A panic in the loop fails the
/// deployment with its message rather than leave it running unseen.
pub(super) fn run(
    shared: Arc<Shared>,
    consumer: Arc<DeploymentConsumer>,
    lane_ctx: Arc<LaneCtx>,
    batch: BatchConfig,
) {
    let looped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll_loop(&shared, &consumer, &lane_ctx, &batch)
    }));
    if let Err(panic) = looped {
        shared.fail(format!(
            "the poll thread panicked ({}); this is a bug in ingesta, please report it. Records after the last commit are handled again on resume",
            lane::panic_message(&panic)
        ));
    }

    // Drain: lanes finish what they hold; partial batches are dropped (not
    // acknowledged, so they are delivered again after restart).
    rebalance::drain(&shared, None);
    rebalance::commit(&consumer, &shared.name);
    consumer.unsubscribe();
    // Serve the revocation callback now, so the group sees us leave before
    // the deployment reports itself stopped (a replay on another runner
    // waits for the group to be empty). Stopped in the middle of a
    // rebalance, the revocation comes once the rebalance is through.
    let leave_by = std::time::Instant::now() + LEAVE_WAIT;
    loop {
        let _ = consumer.poll(Duration::from_millis(100));
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        if assigned == 0 || std::time::Instant::now() >= leave_by {
            break;
        }
    }
    shared.partitions.revoke_all();
    let failure = shared.failure.lock().unwrap().clone();
    let state = match failure {
        Some(reason) => RunState::Failed(reason),
        None => RunState::Stopped,
    };
    shared.telemetry.metrics.consumer.clear();
    tracing::info!(deployment = &*shared.name, ?state, "deployment stopped");
    shared.state.send_replace(state);
}

fn poll_loop(
    shared: &Shared,
    consumer: &DeploymentConsumer,
    lane_ctx: &Arc<LaneCtx>,
    batch: &BatchConfig,
) {
    let max_wait = Duration::from_millis(batch.max_wait_ms);
    let budget = waiting_budget(batch);
    let mut any_waiting = false;
    let mut parts: Vec<PartState> = Vec::new();
    let mut seen_revocations = 0;
    let mut next_flush: Option<Instant> = None;
    let mut watchdog = Watchdog::new(shared.stall_timeout);
    let mut next_watch = Instant::now() + WATCH_EVERY;

    // Reading the clock costs about as much as copying a record, so while
    // records flow the clock is read only every CLOCK_EVERY records; time
    // matters only for cutting partial batches, which flowing records fill.
    const CLOCK_EVERY: u32 = 64;
    let mut since_clock = 0u32;
    let mut idle = true;

    while !shared.stopping() {
        let polled = consumer.poll(poll_timeout(idle, any_waiting, next_flush));

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
                let p = part_of(&mut parts, shared, msg.topic(), msg.partition());
                let offset = msg.offset();
                if offset != p.expected {
                    check_continuity(shared, consumer, p, offset);
                }
                p.expected = offset + 1;
                p.builder.push(&msg);
                drop(msg);
                if p.builder.len() >= batch.max_records || p.builder.bytes() >= batch.max_bytes {
                    any_waiting |= cut(p, shared, consumer, lane_ctx, budget);
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
            (any_waiting, next_flush) =
                flush_due(&mut parts, shared, consumer, lane_ctx, batch, now);
        }
        if now >= next_watch {
            next_watch = now + WATCH_EVERY;
            watch(&mut watchdog, shared, consumer, &parts, now);
        }
    }
}

/// How long the next poll may wait: not at all while records flow, briefly
/// while batches wait for their lanes (a lane frees up within milliseconds
/// when its acknowledgements arrive), else until the next partial batch is
/// due.
fn poll_timeout(idle: bool, any_waiting: bool, next_flush: Option<Instant>) -> Duration {
    if !idle {
        Duration::ZERO
    } else if any_waiting {
        Duration::from_millis(1)
    } else {
        match next_flush {
            Some(t) => t
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
            None => Duration::from_millis(100),
        }
    }
}

/// The poll loop's state for `topic`/`partition`, created on its first
/// record. A linear search: a deployment holds a handful of partitions,
/// and this beats hashing the topic name per record.
fn part_of<'a>(
    parts: &'a mut Vec<PartState>,
    shared: &Shared,
    topic: &str,
    partition: i32,
) -> &'a mut PartState {
    let idx = match parts
        .iter()
        .position(|p| p.partition == partition && p.topic == topic)
    {
        Some(i) => i,
        None => {
            parts.push(PartState::new(shared, topic, partition));
            parts.len() - 1
        }
    };
    &mut parts[idx]
}

/// Retry waiting batches and cut partial batches that are due. Returns
/// whether any batch still waits, and when the next partial batch is due.
fn flush_due(
    parts: &mut [PartState],
    shared: &Shared,
    consumer: &DeploymentConsumer,
    lane_ctx: &Arc<LaneCtx>,
    batch: &BatchConfig,
    now: Instant,
) -> (bool, Option<Instant>) {
    let max_wait = Duration::from_millis(batch.max_wait_ms);
    let budget = waiting_budget(batch);
    let mut next_flush = None;
    let mut any_waiting = false;
    for p in parts {
        if !p.waiting.is_empty() {
            retry_waiting(p, shared, consumer, lane_ctx);
        }
        if !p.builder.is_empty() {
            let due = p.builder.started() + max_wait;
            if due <= now {
                cut(p, shared, consumer, lane_ctx, budget);
            } else {
                next_flush = Some(next_flush.map_or(due, |t: Instant| t.min(due)));
            }
        }
        any_waiting |= !p.waiting.is_empty();
    }
    (any_waiting, next_flush)
}

impl PartState {
    fn new(shared: &Shared, topic: &str, partition: i32) -> Self {
        // Where the partition began, as the assignment decided.
        let expected = shared
            .partitions
            .progress(&(topic.to_owned(), partition))
            .and_then(|p| p.handled_to())
            .unwrap_or(-1);
        PartState {
            topic: topic.to_owned(),
            partition,
            builder: BatchBuilder::new(topic, partition),
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            paused: false,
            expected,
        }
    }
}

/// A record arrived at `offset` where `p.expected` was due. Past it and
/// below the partition's first offset: Kafka removed records before they
/// were handled (retention overtook a lagging deployment), and librdkafka
/// resumed at the first offset still there; report the range. Past it but
/// not below the first offset: compaction or transaction markers, nothing
/// missed. Before it: the consumer went back (an offset reset after a
/// truncated log), so records are handled again.
fn check_continuity(shared: &Shared, consumer: &DeploymentConsumer, p: &PartState, offset: i64) {
    if p.expected < 0 {
        return;
    }
    let key = (p.topic.clone(), p.partition);
    if offset > p.expected {
        if let Some((low, _)) = kafka::cached_watermarks(consumer, &p.topic, p.partition)
            && low > p.expected
        {
            shared.partitions.gap(
                &key,
                p.expected,
                low.min(offset),
                "records below the partition's first offset were removed (retention or deleted records) before the deployment handled them",
            );
        }
    } else {
        tracing::warn!(deployment = &*shared.name, topic = %p.topic, partition = p.partition,
            expected = p.expected, offset,
            "the consumer went back to an earlier offset (an offset reset after the log was truncated?); records are handled again");
    }
}

/// Look at every assigned partition and report the ones standing still
/// with records waiting (see [`Watchdog`]). Cheap: the positions and
/// watermarks librdkafka caches are read only for partitions that have
/// work or have not moved for the stall timeout.
fn watch(
    watchdog: &mut Watchdog,
    shared: &Shared,
    consumer: &DeploymentConsumer,
    parts: &[PartState],
    now: Instant,
) {
    let assigned = shared.partitions.assigned();
    watchdog.retain(|k| assigned.iter().any(|(a, _)| a == k));
    let mut positions: Option<TopicPartitionList> = None;
    // Where every assigned partition stands, while all are caught up (not
    // before the first assignment: holding nothing then means nothing).
    let mut caught_up = shared
        .joined
        .load(Ordering::Acquire)
        .then(std::collections::BTreeMap::new);
    for (key, progress) in &assigned {
        let part = parts
            .iter()
            .find(|p| p.partition == key.1 && p.topic == key.0);
        let received_to = part.map(|p| p.expected).filter(|o| *o >= 0);
        let holding = part.is_some_and(|p| !p.builder.is_empty() || !p.waiting.is_empty());
        match (progress.handled_to(), &mut caught_up) {
            (Some(h), Some(at)) if !holding && received_to.is_none_or(|r| r <= h) => {
                // The application position also moves past transaction
                // markers, which no record ever hands over.
                let positions =
                    positions.get_or_insert_with(|| consumer.position().unwrap_or_default());
                let delivered =
                    positions
                        .find_partition(&key.0, key.1)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        });
                at.insert(key.clone(), delivered.map_or(h, |d| d.max(h)));
            }
            _ => caught_up = None,
        }
        let mut obs = Observation {
            handled_to: progress.handled_to(),
            received_to,
            delivered_to: None,
            high_watermark: None,
            detailed: false,
        };
        if watchdog.needs_detail(key, now) {
            obs.detailed = true;
            let positions =
                positions.get_or_insert_with(|| consumer.position().unwrap_or_default());
            obs.delivered_to =
                positions
                    .find_partition(&key.0, key.1)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
            obs.high_watermark = high_watermark(consumer, key);
        }
        let verdict = watchdog.observe(key, obs, now);
        partitions::report(&shared.partitions, key, obs, verdict);
    }
    let mut quiet = shared.quiet.lock().unwrap();
    *quiet = Quiet::next(quiet.take(), caught_up, now);
}

/// The partition's end as the consumer last saw it, or from the broker if
/// it has not fetched the partition yet.
fn high_watermark(consumer: &DeploymentConsumer, key: &PartitionKey) -> Option<i64> {
    if let Some((_, high)) = kafka::cached_watermarks(consumer, &key.0, key.1) {
        return Some(high);
    }
    consumer
        .fetch_watermarks(&key.0, key.1, Duration::from_secs(2))
        .ok()
        .map(|(_, high)| high)
}

/// Hand the current batch to the lane, or keep it waiting (pausing the
/// partition once its waiting batches exceed `budget` bytes). Returns
/// whether the partition now has waiting batches.
fn cut(
    p: &mut PartState,
    shared: &Shared,
    consumer: &DeploymentConsumer,
    lane_ctx: &Arc<LaneCtx>,
    budget: usize,
) -> bool {
    let batch = p.builder.take();
    let batch = if p.waiting.is_empty() {
        match lane::dispatch(lane_ctx, batch) {
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
    consumer: &DeploymentConsumer,
    lane_ctx: &Arc<LaneCtx>,
) {
    while let Some(batch) = p.waiting.pop_front() {
        let size = batch_bytes(&batch);
        if let Err(batch) = lane::dispatch(lane_ctx, batch) {
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

fn pause(consumer: &DeploymentConsumer, p: &PartState, paused: bool, name: &str) {
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
