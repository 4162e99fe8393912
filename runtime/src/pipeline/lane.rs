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
use super::failure::{self, Failure, Next, Origin, Outcome, Plan, Policy, Step};
use super::partitions::{PartitionKey, Progress};
use ingesta_abi::{OutgoingEntry, RecordEntry};

use crate::kafka::{AckGroup, OutputProducer};
use crate::wasm::bindings::{Batch, ErrorClass, Outbox};
use crate::wasm::{CallOutcome, ConsumerInstance, ConsumerTemplate};
use prometheus::IntCounter;

/// Where a lane stores the input offset of a batch it finished; the
/// deployment's consumer in the runner.
pub trait OffsetStore: Send + Sync {
    /// Store `next_offset` for commit. `Ok(false)`: the partition is no
    /// longer assigned (nothing stored; its next owner re-delivers).
    fn store(&self, topic: &str, partition: i32, next_offset: i64) -> Result<bool, String>;
}

/// Batches queued for a lane before the poll loop pauses the partition.
const LANE_QUEUE: usize = 4;
/// Batches whose outputs may await acknowledgement at once.
const MAX_UNACKED: usize = 8;

/// What every lane of a deployment shares.
pub struct LaneCtx {
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
    pub fn new(
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
    pub fn swap(&self, program: Program) {
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
    pub fn inject_panic(&self) {
        self.panic_next.store(true, Ordering::Release);
    }
}

/// What a deployment runs: its linked module and its failure policy. A hot
/// swap replaces both at once.
pub struct Program {
    pub template: ConsumerTemplate,
    /// Retries, splitting and dead-lettering.
    pub policy: Policy,
}

/// The poll loop's end of a lane.
pub struct LaneHandle {
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
pub fn drain(lanes: Vec<LaneHandle>, deadline: Instant, deployment: &str) {
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
pub fn abort(lanes: Vec<LaneHandle>) {
    for h in lanes {
        h.close();
        h.task.abort();
    }
}

/// Give `batch` to its partition's lane, starting the lane if needed.
/// Returns the batch back if the lane is busy (or gone).
pub fn dispatch(ctx: &Arc<LaneCtx>, batch: Batch) -> Result<(), Batch> {
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
                Ok(Err(reason)) => shared.fail(reason),
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

/// A batch whose outputs are still being acknowledged.
struct Unacked {
    acks: Arc<AckGroup>,
    /// Kept to publish again if Kafka did not take them for a passing reason.
    outboxes: Vec<Outbox>,
    first_offset: i64,
    /// The offset to store once acknowledged (last offset + 1).
    next_offset: i64,
    /// Published again after Kafka refused them (the partition is noted
    /// as degraded until they are acknowledged).
    republished: bool,
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

    async fn run(mut self, mut rx: mpsc::Receiver<Batch>) -> Result<(), String> {
        let result = self.work(&mut rx).await;
        // Whatever ended the lane, its outputs are no longer republished.
        self.ctx.shared.partitions.recovered(&self.key);
        result
    }

    async fn work(&mut self, rx: &mut mpsc::Receiver<Batch>) -> Result<(), String> {
        loop {
            let next = if self.unacked.len() >= MAX_UNACKED {
                if self.settle_front().await? == Handled::Abandoned {
                    return Ok(());
                }
                continue;
            } else if let Some(front) = self.unacked.front() {
                let acks = front.acks.clone();
                tokio::select! {
                    biased;
                    _ = acks.wait() => {
                        if self.settle_front().await? == Handled::Abandoned {
                            return Ok(());
                        }
                        continue;
                    }
                    b = rx.recv() => b,
                }
            } else {
                rx.recv().await
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
            if handled == Ok(Handled::Abandoned) {
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

    async fn handle(&mut self, batch: Batch) -> Result<Handled, String> {
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
        metrics.records_out.inc_by(acks.sent() as u64);
        metrics
            .bytes_out
            .inc_by(outboxes.iter().map(|o| o.data.len() as u64).sum());
        self.unacked.push_back(Unacked {
            acks,
            outboxes,
            first_offset,
            next_offset,
            republished: false,
        });
        Ok(Handled::Done)
    }

    /// Run the batch through the instance under the failure policy
    /// ([`Plan`]). Returns every outbox to publish, in record order: the
    /// handler's outputs and dead-letter records; `None` if the lane
    /// started closing before the batch was through. Fails only when the
    /// deployment must stop.
    async fn process(
        &mut self,
        batch: &Batch,
        count: usize,
    ) -> Result<Option<Vec<Outbox>>, String> {
        let program = self.program.clone();
        let policy = &program.policy;
        let mut plan = Plan::new(count);
        let mut out = Vec::new();
        let mut dead = 0usize;
        loop {
            match plan.next() {
                Step::Done => break,
                Step::DeadLetter { index, failure } => {
                    out.push(self.dead_letter(batch, index, &failure)?);
                    dead += 1;
                }
                Step::Call {
                    range,
                    attempt,
                    first,
                } => {
                    if !first && self.closing() {
                        return Ok(None);
                    }
                    let part;
                    let target = if range == (0..count) {
                        batch
                    } else {
                        part = failure::slice(batch, range.clone());
                        &part
                    };
                    let called = self.call(target).await?;
                    let metrics = &self.ctx.shared.telemetry.metrics;
                    let outcome = match called {
                        CallOutcome::Ok((), outboxes) => {
                            out.extend(outboxes);
                            Outcome::Ok
                        }
                        CallOutcome::Failed(e) => Outcome::Failed {
                            class: metrics.count_error(e.class).to_owned(),
                            retryable: e.class == ErrorClass::Retryable,
                            message: e.message,
                            record_index: e.record_index,
                        },
                        CallOutcome::Trapped { kind, message } => {
                            // The instance's state can no longer be trusted.
                            self.instance = None;
                            tracing::debug!(kind = kind.as_str(), %message, attempt,
                                records = range.len(), "instance trapped; replacing it");
                            Outcome::Trapped {
                                class: metrics.count_trap(kind),
                                message,
                            }
                        }
                    };
                    if let Next::Retry { backoff } = plan.outcome(outcome, policy) {
                        self.ctx.shared.telemetry.metrics.retries.inc();
                        if !backoff.is_zero() {
                            self.backoff(backoff).await;
                        }
                    }
                }
            }
        }
        if dead > 0 {
            tracing::warn!(
                dead_lettered = dead,
                records = count,
                "records of this batch could not be processed and were dead-lettered"
            );
        }
        Ok(Some(out))
    }

    /// One call, creating the instance first if there is none. While it
    /// runs, earlier batches whose outputs Kafka acknowledges are stored,
    /// so a long call holds back nothing that was handled before it.
    async fn call(&mut self, batch: &Batch) -> Result<CallOutcome, String> {
        if self.instance.is_none() {
            let fresh = ConsumerInstance::new(&self.program.template)
                .await
                .map_err(|e| format!("cannot instantiate the module: {e:#}"))?;
            self.instance = Some(fresh);
        }
        let Lane {
            instance,
            unacked,
            ctx,
            key,
            progress,
            ..
        } = self;
        let running = instance.as_mut().expect("instance was just created");
        let started = Instant::now();
        let outcome = tokio::select! {
            biased;
            outcome = running.handle(batch) => outcome,
            stored = store_acked(unacked, ctx, key, progress) => {
                // Storing failed: the deployment stops, and the call is
                // dropped mid-way, so its instance cannot be trusted.
                *instance = None;
                return Err(match stored {
                    Err(e) => e,
                    Ok(never) => match never {},
                });
            }
        };
        ctx.shared
            .telemetry
            .metrics
            .call_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// The dead-letter record for record `index`, or the reason the
    /// deployment must stop when there is no dead-letter topic.
    fn dead_letter(
        &self,
        batch: &Batch,
        index: usize,
        failure: &Failure,
    ) -> Result<Outbox, String> {
        let offset = RecordEntry::read(&batch.records, index).map_or(-1, |e| e.offset);
        let Some(topic) = &self.program.policy.dead_letter_topic else {
            return Err(format!(
                "record at topic {:?} partition {} offset {offset} cannot be processed ({} after {} attempt(s): {}) and no failure.dead_letter_topic is configured; the deployment stops rather than skip it",
                self.key.0, self.key.1, failure.class, failure.attempts, failure.message
            ));
        };
        tracing::trace!(offset, class = %failure.class, message = %failure.message, "dead-lettering record");
        self.ctx.shared.telemetry.metrics.dead_lettered.inc();
        let grants = self.program.template.grants();
        let origin = Origin {
            deployment: &grants.deployment,
            module_digest: &grants.module_digest,
        };
        Ok(failure::dead_letter(batch, index, topic, &origin, failure))
    }

    /// Wait for the oldest unacknowledged batch and store its offset.
    ///
    /// If Kafka did not take its outputs for a reason that may pass (the
    /// broker away past `message.timeout.ms`, a shared producer replaced
    /// after a fatal error), they are published again after the failure
    /// backoff, for as long as the lane is open: the input offset stays
    /// unstored meanwhile, so nothing is lost, and records of a failed
    /// attempt that did arrive may appear twice (at-least-once). Later
    /// batches wait behind it, so each output partition keeps its order
    /// (an idempotent producer fails every record after a failed one on
    /// the same partition). Meanwhile the partition is noted as degraded.
    /// A lane that closes meanwhile abandons the batch (its next owner
    /// handles it again); a permanent refusal (topic gone, record too
    /// large, not authorised) fails the deployment.
    async fn settle_front(&mut self) -> Result<Handled, String> {
        let mut attempt = 0u32;
        loop {
            let Some(acks) = self.unacked.front().map(|f| f.acks.clone()) else {
                return Ok(Handled::Done);
            };
            let error = match acks.wait().await {
                Ok(()) => {
                    let front = self.unacked.pop_front().expect("front exists");
                    settled(&self.ctx, &self.key, &self.progress, &front)?;
                    return Ok(Handled::Done);
                }
                Err(e) => e,
            };
            let front = self.unacked.front().expect("front exists");
            let failed = format!(
                "outputs of topic {:?} partition {} offsets {}..{} were not acknowledged: {error}",
                self.key.0, self.key.1, front.first_offset, front.next_offset
            );
            if error.permanent {
                return Err(failed);
            }
            if self.closing() {
                return Ok(self.abandon_unacked());
            }
            attempt += 1;
            let delay = self.program.policy.backoff(attempt);
            if self
                .ctx
                .shared
                .partitions
                .degrade(&self.key, &error.message)
            {
                tracing::warn!(error = %error, first_offset = front.first_offset,
                    retry_in_ms = delay.as_millis() as u64,
                    "outputs not acknowledged; publishing them again (input offset not stored meanwhile; the deployment is degraded)");
            }
            self.backoff(delay).await;
            if self.closing() {
                return Ok(self.abandon_unacked());
            }
            let front = self.unacked.front_mut().expect("front exists");
            front.acks = self.ctx.producer.publish(&front.outboxes).await;
            front.republished = true;
        }
    }

    /// The lane closes while outputs are unacknowledged: nothing from the
    /// oldest such batch on is stored, so the partition's next owner (or
    /// this deployment after a resume) handles those records again.
    fn abandon_unacked(&mut self) -> Handled {
        if let Some(front) = self.unacked.front() {
            tracing::info!(
                first_offset = front.first_offset,
                batches = self.unacked.len(),
                "lane closing with outputs Kafka has not acknowledged; those records will be delivered again"
            );
        }
        self.unacked.clear();
        Handled::Abandoned
    }

    fn store(&self, next_offset: i64) -> Result<(), String> {
        store(&self.ctx, &self.key, &self.progress, next_offset)
    }
}

/// A batch's outputs are acknowledged: store its input offset.
fn settled(
    ctx: &LaneCtx,
    key: &PartitionKey,
    progress: &Progress,
    front: &Unacked,
) -> Result<(), String> {
    if front.republished && ctx.shared.partitions.recovered(key) {
        tracing::info!(
            first_offset = front.first_offset,
            "outputs acknowledged after publishing them again; no longer degraded"
        );
    }
    store(ctx, key, progress, front.next_offset)
}

/// Store the input offsets of the oldest batches as Kafka acknowledges
/// their outputs, until one is refused (left to [`Lane::settle_front`],
/// which publishes it again) or storing fails (the error). Never returns
/// otherwise: it runs beside a call and ends with it.
async fn store_acked(
    unacked: &mut VecDeque<Unacked>,
    ctx: &LaneCtx,
    key: &PartitionKey,
    progress: &Progress,
) -> Result<std::convert::Infallible, String> {
    loop {
        let Some(acks) = unacked.front().map(|f| f.acks.clone()) else {
            return std::future::pending().await;
        };
        if acks.wait().await.is_err() {
            return std::future::pending().await;
        }
        let front = unacked.pop_front().expect("front exists");
        settled(ctx, key, progress, &front)?;
    }
}

/// Store `next_offset` for the partition, unless it was taken away.
fn store(
    ctx: &LaneCtx,
    key: &PartitionKey,
    progress: &Progress,
    next_offset: i64,
) -> Result<(), String> {
    if progress.is_closed() {
        tracing::debug!(
            next_offset,
            "partition no longer assigned; offset not stored"
        );
        return Ok(());
    }
    if ctx.offsets.store(&key.0, key.1, next_offset)? {
        ctx.shared.telemetry.metrics.offsets_stored.inc();
        progress.handled(next_offset);
    } else {
        tracing::warn!(
            next_offset,
            "partition no longer assigned; offset not stored"
        );
    }
    Ok(())
}
