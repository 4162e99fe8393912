//! One partition's lane: call the instance per batch in offset order, publish
//! the outputs, and store the input offset once they are acknowledged.
//!
//! Publishing is pipelined: while batch N's outputs await their acks the lane
//! already runs batch N+1, but offsets are stored strictly in batch order and
//! only for batches whose acks all succeeded. A bounded number of batches may
//! be awaiting acks at once. Outputs Kafka did not take for a passing reason
//! are published again (see [`Lane::settle_front`]) and the partition is
//! noted as degraded meanwhile.
//!
//! Closing (revocation, pause, stop) is prompt: the lane finishes the call
//! in progress but starts no queued batch, retry, backoff, split part or
//! republish; the batch it abandons is not stored, so the partition's next
//! owner gets it again. A lane still busy at the drain timeout (a call
//! stuck until its deadline) is aborted at its next epoch yield. A lane
//! that panics fails the deployment with the panic's message.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::Shared;
use super::failure::{Failure, Policy};
use super::partitions::{PartitionKey, Progress};
use ingesta_abi::{OutgoingEntry, RecordEntry};
use thiserror::Error;

use crate::kafka::{OutputProducer, PublishError};
use crate::wasm::bindings::Batch;

use acks::Unacked;

mod acks;
mod process;
use crate::wasm::{ConsumerInstance, ConsumerTemplate};
use prometheus::IntCounter;

/// Where a lane stores the input offset of a batch it finished; the
/// deployment's consumer in the runner.
pub(super) trait OffsetStore: Send + Sync {
    /// Store `next_offset` for commit. `Ok(false)`: the partition is no
    /// longer assigned (nothing stored; its next owner re-delivers).
    fn store(&self, topic: &str, partition: i32, next_offset: i64) -> Result<bool, LaneError>;
}

/// Why a lane stops its deployment (the deployment's `failed` reason).
#[derive(Debug, Error)]
pub(super) enum LaneError {
    #[error("cannot instantiate the module: {0:#}")]
    Instantiate(anyhow::Error),
    #[error(
        "record at topic {topic:?} partition {partition} offset {offset} cannot be processed ({} after {} attempt(s): {}) and no failure.dead_letter_topic is configured; the deployment stops rather than skip it",
        failure.class, failure.attempts, failure.message
    )]
    NoDeadLetterTopic {
        topic: String,
        partition: i32,
        offset: i64,
        failure: Failure,
    },
    #[error(
        "outputs of topic {topic:?} partition {partition} offsets {first_offset}..{next_offset} were not acknowledged: {error}"
    )]
    NotAcknowledged {
        topic: String,
        partition: i32,
        first_offset: i64,
        next_offset: i64,
        error: PublishError,
    },
    #[error(
        "cannot store offset {next_offset} for topic {topic:?} partition {partition}: {source}"
    )]
    Store {
        topic: String,
        partition: i32,
        next_offset: i64,
        source: rdkafka::error::KafkaError,
    },
}

/// Batches queued for a lane before the poll loop pauses the partition.
const LANE_QUEUE: usize = 4;
/// Batches whose outputs may await acknowledgement at once.
const MAX_UNACKED: usize = 8;

/// What every lane of a deployment shares.
pub(super) struct LaneCtx {
    pub shared: Arc<Shared>,
    pub offsets: Arc<dyn OffsetStore>,
    pub producer: Arc<OutputProducer>,
    /// The program and its generation; replaced by a hot swap.
    program: Mutex<(u64, Arc<Program>)>,
    /// The current generation, checked by lanes at every batch without
    /// taking the lock.
    generation: AtomicU64,
    pub runtime: tokio::runtime::Handle,
    /// Test hook: the next batch any lane starts panics.
    panic_next: AtomicBool,
}

impl LaneCtx {
    pub(super) fn new(
        shared: Arc<Shared>,
        offsets: Arc<dyn OffsetStore>,
        producer: Arc<OutputProducer>,
        program: Program,
    ) -> Self {
        Self {
            shared,
            offsets,
            producer,
            program: Mutex::new((0, Arc::new(program))),
            generation: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
            panic_next: AtomicBool::new(false),
        }
    }

    /// Replace the program; each lane switches at its next batch.
    pub(super) fn swap(&self, program: Program) {
        let mut current = self.program.lock().unwrap();
        let generation = current.0 + 1;
        *current = (generation, Arc::new(program));
        self.generation.store(generation, Ordering::Release);
    }

    fn program(&self) -> (u64, Arc<Program>) {
        let current = self.program.lock().unwrap();
        (current.0, current.1.clone())
    }

    /// Make the next batch a lane starts panic, as a bug in the runner
    /// would. For tests of what a panicking lane does; never called by
    /// the runner.
    #[doc(hidden)]
    pub(super) fn inject_panic(&self) {
        self.panic_next.store(true, Ordering::Release);
    }
}

/// What a deployment runs: its linked module and its failure policy. A hot
/// swap replaces both at once.
pub(super) struct Program {
    pub template: ConsumerTemplate,
    /// Retries, splitting and dead-lettering.
    pub policy: Policy,
}

/// The poll loop's end of a lane.
pub(super) struct LaneHandle {
    pub key: PartitionKey,
    tx: mpsc::Sender<Batch>,
    closing: watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl LaneHandle {
    /// Tell the lane to finish the call in progress and start nothing more.
    fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Wait (until `deadline`) for a closed lane to finish the call in
    /// progress and settle the acks of what it completed; abort it if it
    /// is not done by then. Returns whether it finished in time.
    fn wait(self, deadline: Instant) -> bool {
        drop(self.tx);
        let timeout = deadline.saturating_duration_since(Instant::now());
        let finished = !matches!(
            self.done.recv_timeout(timeout),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if !finished {
            self.task.abort();
        }
        finished
    }
}

/// Close `lanes` together, then wait for each under one `deadline`, so
/// draining many lanes takes as long as the slowest, not the sum.
pub(super) fn drain(lanes: Vec<LaneHandle>, deadline: Instant, deployment: &str) {
    for h in &lanes {
        h.close();
    }
    for h in lanes {
        let (topic, partition) = h.key.clone();
        if !h.wait(deadline) {
            tracing::warn!(deployment, %topic, partition,
                "lane did not drain in time; its unfinished records will be delivered again");
        }
    }
}

/// Stop `lanes` at once, waiting for nothing (their partitions are lost:
/// nothing of theirs may be stored any more).
pub(super) fn abort(lanes: Vec<LaneHandle>) {
    for h in lanes {
        h.close();
        h.task.abort();
    }
}

/// Give `batch` to its partition's lane, starting the lane if needed.
/// Returns the batch back if the lane is busy (or gone).
pub(super) fn dispatch(ctx: &Arc<LaneCtx>, batch: Batch) -> Result<(), Batch> {
    let shared = &ctx.shared;
    let mut lanes = shared.lanes.lock().unwrap();
    let key = (batch.topic.clone(), batch.partition);
    let handle = match lanes.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let progress = shared
                .partitions
                .progress(e.key())
                // Not registered (assignment outside a rebalance callback):
                // track it from here.
                .unwrap_or_else(|| shared.partitions.assign(e.key().clone(), None));
            e.insert(spawn(ctx, &batch, progress))
        }
    };
    match handle.tx.try_send(batch) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b)) => Err(b),
    }
}

fn spawn(ctx: &Arc<LaneCtx>, first: &Batch, progress: Arc<Progress>) -> LaneHandle {
    let (tx, rx) = mpsc::channel(LANE_QUEUE);
    let (done_tx, done) = std::sync::mpsc::sync_channel(1);
    let (closing, closing_rx) = watch::channel(false);
    let metrics = &ctx.shared.telemetry.metrics;
    let partition = first.partition.to_string();
    let labels = [first.topic.as_str(), partition.as_str()];
    let (generation, program) = ctx.program();
    let key: PartitionKey = (first.topic.clone(), first.partition);
    let lane = Lane {
        ctx: ctx.clone(),
        program,
        generation,
        key: key.clone(),
        progress,
        instance: None,
        unacked: VecDeque::new(),
        closing: closing_rx,
        records_in: metrics.records_in.with_label_values(&labels),
        bytes_in: metrics.bytes_in.with_label_values(&labels),
    };
    let span = tracing::info_span!("lane", deployment = &*ctx.shared.name,
        topic = %first.topic, partition = first.partition);
    let task = ctx.runtime.spawn(
        async move {
            let shared = lane.ctx.shared.clone();
            let (topic, partition) = lane.key.clone();
            let outcome = std::panic::AssertUnwindSafe(lane.run(rx))
                .catch_unwind()
                .await;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => shared.fail(reason.to_string()),
                Err(panic) => shared.fail(format!(
                    "the lane of topic {topic:?} partition {partition} panicked ({}); this is a bug in ingesta, please report it. Records after the last commit are handled again on resume",
                    panic_message(&panic)
                )),
            }
            let _ = done_tx.send(());
        }
        .instrument(span),
    );
    LaneHandle {
        key,
        tx,
        closing,
        done,
        task,
    }
}

/// The message of a panic payload.
pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned())
}

struct Lane {
    ctx: Arc<LaneCtx>,
    /// The program this lane runs, and its generation.
    program: Arc<Program>,
    generation: u64,
    key: PartitionKey,
    /// How far the partition is handled (the watchdog reads it).
    progress: Arc<Progress>,
    /// Created on first use and kept across batches (handler state lives in
    /// it); dropped after a trap.
    instance: Option<ConsumerInstance>,
    unacked: VecDeque<Unacked>,
    /// Set when the lane is being closed.
    closing: watch::Receiver<bool>,
    /// This partition's series of the deployment's input counters.
    records_in: IntCounter,
    bytes_in: IntCounter,
}

/// Whether a batch (or its outputs) was finished, or given up because the
/// lane is closing.
#[derive(Debug, PartialEq, Eq)]
enum Handled {
    Done,
    Abandoned,
}

impl Lane {
    fn closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Sleeps for `d`, or less if the lane starts closing meanwhile.
    /// (`&mut self`: the lane is `Send` but not `Sync`, and this future
    /// is held across an await in the lane task.)
    async fn backoff(&mut self, d: std::time::Duration) {
        let mut closing = self.closing.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = closing.wait_for(|c| *c) => {}
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Batch>) -> Result<(), LaneError> {
        let result = self.work(&mut rx).await;
        // Whatever ended the lane, its outputs are no longer republished.
        self.ctx.shared.partitions.recovered(&self.key);
        result
    }

    async fn work(&mut self, rx: &mut mpsc::Receiver<Batch>) -> Result<(), LaneError> {
        loop {
            let next = if self.unacked_full() {
                if self.settle_front().await? == Handled::Abandoned {
                    return Ok(());
                }
                continue;
            } else {
                let acks = self.unacked.front().map(|f| f.acks.clone());
                let slots = self.program.template.slots().clone();
                tokio::select! {
                    biased;
                    _ = async { acks.as_ref().expect("guarded").wait().await }, if acks.is_some() => {
                        if self.settle_front().await? == Handled::Abandoned {
                            return Ok(());
                        }
                        continue;
                    }
                    b = rx.recv() => b,
                    // Idle while someone waits for an instance: give ours back.
                    () = slots.until_wanted(), if self.instance.is_some() => {
                        self.instance = None;
                        continue;
                    }
                }
            };
            let Some(batch) = next else { break };
            if self.closing() {
                break;
            }
            if self.ctx.panic_next.load(Ordering::Relaxed)
                && self.ctx.panic_next.swap(false, Ordering::AcqRel)
            {
                panic!("injected by a test");
            }
            let handled = self.handle(batch).await;
            if self.program.template.slots().wanted() {
                // Someone waits for an instance: rotate at the batch boundary.
                self.instance = None;
            }
            if matches!(handled, Ok(Handled::Abandoned)) {
                // Nothing after an abandoned batch may be stored either.
                break;
            }
            if let Err(failure) = handled {
                // Earlier batches succeeded: keep their progress, so the
                // committed offset stops exactly at the failing batch.
                while !self.unacked.is_empty() {
                    match self.settle_front().await {
                        Ok(Handled::Done) => {}
                        Ok(Handled::Abandoned) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "earlier batch could not be settled");
                            break;
                        }
                    }
                }
                return Err(failure);
            }
        }
        while !self.unacked.is_empty() {
            if self.settle_front().await? == Handled::Abandoned {
                break;
            }
        }
        Ok(())
    }

    /// Whether the outputs awaiting acks are as many as a lane may hold:
    /// [`MAX_UNACKED`] batches, or one call's worth of bytes
    /// (`limits.max_output_bytes`), so a lane holds at most twice that.
    fn unacked_full(&self) -> bool {
        let budget = self.program.template.grants().max_output_bytes;
        self.unacked.len() >= MAX_UNACKED
            || self.unacked.iter().map(|u| u.bytes).sum::<u64>() >= budget
    }

    /// Switch to a swapped program at a batch boundary: the batch in
    /// progress finished under the old one, the next starts fresh.
    fn refresh_program(&mut self) {
        if self.ctx.generation.load(Ordering::Acquire) == self.generation {
            return;
        }
        let (generation, program) = self.ctx.program();
        tracing::info!(generation, module = %program.template.grants().module_digest,
            "switching to the new program at a batch boundary");
        self.program = program;
        self.generation = generation;
        self.instance = None;
    }

    async fn handle(&mut self, batch: Batch) -> Result<Handled, LaneError> {
        self.refresh_program();
        let count = RecordEntry::count(&batch.records);
        let offset_at = |i: usize| RecordEntry::read(&batch.records, i).map(|e| e.offset);
        let (Some(first_offset), Some(last_offset)) =
            (offset_at(0), offset_at(count.wrapping_sub(1)))
        else {
            return Ok(Handled::Done);
        };
        let next_offset = last_offset + 1;
        let metrics = &self.ctx.shared.telemetry.metrics;
        self.records_in.inc_by(count as u64);
        self.bytes_in.inc_by(batch.data.len() as u64);
        metrics.batches.inc();
        metrics.batch_records.observe(count as f64);

        let span = tracing::debug_span!("batch", first_offset, last_offset, records = count);
        let Some(outboxes) = self.process(&batch, count).instrument(span).await? else {
            tracing::info!(
                first_offset,
                "lane closing: batch abandoned mid-retry; it will be delivered again"
            );
            return Ok(Handled::Abandoned);
        };
        let outputs: usize = outboxes
            .iter()
            .map(|o| OutgoingEntry::count(&o.records))
            .sum();
        if outputs == 0 && self.unacked.is_empty() {
            return self.store(next_offset).map(|()| Handled::Done);
        }
        let acks = self.ctx.producer.publish(&outboxes).await;
        let metrics = &self.ctx.shared.telemetry.metrics;
        let bytes = crate::wasm::produced_bytes(&outboxes);
        metrics.records_out.inc_by(acks.sent() as u64);
        metrics.bytes_out.inc_by(bytes);
        self.unacked.push_back(Unacked {
            acks,
            outboxes,
            bytes,
            first_offset,
            next_offset,
            republished: false,
        });
        Ok(Handled::Done)
    }
}
