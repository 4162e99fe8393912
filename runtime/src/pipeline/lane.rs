//! One partition's lane: call the instance per batch in offset order, publish
//! the outputs, and store the input offset once they are acknowledged.
//!
//! Publishing is pipelined: while batch N's outputs await their acks the lane
//! already runs batch N+1, but offsets are stored strictly in batch order and
//! only for batches whose acks all succeeded. A bounded number of batches may
//! be awaiting acks at once. Outputs Kafka did not take for a passing reason
//! are published again (see [`Lane::settle_front`]).
//!
//! Closing (revocation, stop) is prompt: the lane finishes the call in
//! progress but starts no queued batch, retry, backoff or split part; the
//! batch it abandons is not stored, so the partition's next owner gets it
//! again. A lane still busy at the drain timeout (a call stuck until its
//! deadline) is aborted at its next epoch yield.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::Shared;
use super::failure::{self, Failure, Origin, Policy};
use super::poller::DeploymentContext;
use ingesta_abi::{OutgoingEntry, RecordEntry};

use crate::kafka::{AckGroup, OutputProducer};
use crate::wasm::bindings::{Batch, ErrorClass, Outbox};
use crate::wasm::{CallOutcome, ConsumerInstance, ConsumerTemplate};
use prometheus::IntCounter;

/// Batches queued for a lane before the poll loop pauses the partition.
const LANE_QUEUE: usize = 4;
/// Batches whose outputs may await acknowledgement at once.
const MAX_UNACKED: usize = 8;

/// What every lane of a deployment shares.
pub struct LaneCtx {
    pub shared: Arc<Shared>,
    pub consumer: Arc<BaseConsumer<DeploymentContext>>,
    pub producer: Arc<OutputProducer>,
    /// The program and its generation; replaced by a hot swap.
    program: Mutex<(u64, Arc<Program>)>,
    /// The current generation, checked by lanes at every batch without
    /// taking the lock.
    generation: AtomicU64,
    pub runtime: tokio::runtime::Handle,
}

impl LaneCtx {
    pub fn new(
        shared: Arc<Shared>,
        consumer: Arc<BaseConsumer<DeploymentContext>>,
        producer: Arc<OutputProducer>,
        program: Program,
    ) -> Self {
        Self {
            shared,
            consumer,
            producer,
            program: Mutex::new((0, Arc::new(program))),
            generation: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
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
    pub topic: String,
    pub partition: i32,
    tx: mpsc::Sender<Batch>,
    closing: watch::Sender<bool>,
    done: std::sync::mpsc::Receiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl LaneHandle {
    /// Close the lane and wait (until `deadline`) for it to finish the call
    /// in progress and settle the acks of what it completed. A lane not
    /// done by then is aborted. Returns whether it finished in time.
    pub fn close_and_wait(self, deadline: Instant) -> bool {
        self.closing.send_replace(true);
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

/// Give `batch` to its partition's lane, starting the lane if needed.
/// Returns the batch back if the lane is busy (or gone).
pub fn dispatch(shared: &Shared, ctx: &Arc<LaneCtx>, batch: Batch) -> Result<(), Batch> {
    let mut lanes = shared.lanes.lock().unwrap();
    let key = (batch.topic.clone(), batch.partition);
    let handle = lanes.entry(key).or_insert_with(|| spawn(ctx, &batch));
    match handle.tx.try_send(batch) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b)) => Err(b),
    }
}

fn spawn(ctx: &Arc<LaneCtx>, first: &Batch) -> LaneHandle {
    let (tx, rx) = mpsc::channel(LANE_QUEUE);
    let (done_tx, done) = std::sync::mpsc::sync_channel(1);
    let (closing, closing_rx) = watch::channel(false);
    let metrics = &ctx.shared.telemetry.metrics;
    let partition = first.partition.to_string();
    let labels = [first.topic.as_str(), partition.as_str()];
    let (generation, program) = ctx.program();
    let lane = Lane {
        ctx: ctx.clone(),
        program,
        generation,
        topic: first.topic.clone(),
        partition: first.partition,
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
            if let Err(reason) = lane.run(rx).await {
                shared.fail(reason);
            }
            let _ = done_tx.send(());
        }
        .instrument(span),
    );
    LaneHandle {
        topic: first.topic.clone(),
        partition: first.partition,
        tx,
        closing,
        done,
        task,
    }
}

/// A batch whose outputs are still being acknowledged.
struct Unacked {
    acks: Arc<AckGroup>,
    /// Kept to publish again if Kafka did not take them for a passing reason.
    outboxes: Vec<Outbox>,
    first_offset: i64,
    /// The offset to store once acknowledged (last offset + 1).
    next_offset: i64,
}

struct Lane {
    ctx: Arc<LaneCtx>,
    /// The program this lane runs, and its generation.
    program: Arc<Program>,
    generation: u64,
    topic: String,
    partition: i32,
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

/// Whether a batch was finished or given up because the lane is closing.
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
        loop {
            let next = if self.unacked.len() >= MAX_UNACKED {
                self.settle_front().await?;
                continue;
            } else if let Some(front) = self.unacked.front() {
                let acks = front.acks.clone();
                tokio::select! {
                    biased;
                    _ = acks.wait() => { self.settle_front().await?; continue; }
                    b = rx.recv() => b,
                }
            } else {
                rx.recv().await
            };
            let Some(batch) = next else { break };
            if self.closing() {
                break;
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
                    if let Err(e) = self.settle_front().await {
                        tracing::warn!(error = %e, "earlier batch could not be settled");
                        break;
                    }
                }
                return Err(failure);
            }
        }
        while !self.unacked.is_empty() {
            self.settle_front().await?;
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
        });
        Ok(Handled::Done)
    }

    /// Run the batch through the instance under the failure policy. Returns
    /// every outbox to publish, in record order: the handler's outputs and
    /// dead-letter records; `None` if the lane started closing before the
    /// batch was through. Fails only when the deployment must stop.
    async fn process(
        &mut self,
        batch: &Batch,
        count: usize,
    ) -> Result<Option<Vec<Outbox>>, String> {
        /// Pending work, kept on a stack in reverse record order.
        enum Work {
            Range(usize, usize),
            DeadLetter(usize, Failure),
        }
        fn split(work: &mut Vec<Work>, lo: usize, hi: usize) {
            let mid = lo + (hi - lo) / 2;
            work.push(Work::Range(mid, hi));
            work.push(Work::Range(lo, mid));
        }
        let program = self.program.clone();
        let policy = &program.policy;
        let mut out = Vec::new();
        let mut dead = 0usize;
        let mut work = vec![Work::Range(0, count)];
        while let Some(item) = work.pop() {
            let (lo, hi) = match item {
                Work::DeadLetter(index, failure) => {
                    out.push(self.dead_letter(batch, index, &failure)?);
                    dead += 1;
                    continue;
                }
                Work::Range(lo, hi) => (lo, hi),
            };
            let part;
            let target = if (lo, hi) == (0, count) {
                batch
            } else {
                part = failure::slice(batch, lo..hi);
                &part
            };
            let mut attempt = 0;
            loop {
                attempt += 1;
                let first_call = attempt == 1 && (lo, hi) == (0, count);
                if !first_call && self.closing() {
                    return Ok(None);
                }
                match self.call(target).await? {
                    CallOutcome::Ok((), outboxes) => {
                        out.extend(outboxes);
                        break;
                    }
                    CallOutcome::Failed(e) => {
                        let metrics = &self.ctx.shared.telemetry.metrics;
                        let failure = Failure {
                            class: metrics.count_error(e.class).to_owned(),
                            message: e.message,
                            attempts: attempt,
                        };
                        if e.class == ErrorClass::Retryable && attempt < policy.max_attempts {
                            metrics.retries.inc();
                            self.backoff(policy.backoff(attempt)).await;
                            continue;
                        }
                        let culprit = e
                            .record_index
                            .map(|i| i as usize)
                            .filter(|&i| e.class == ErrorClass::Permanent && i < hi - lo);
                        match culprit {
                            Some(i) => {
                                if lo + i + 1 < hi {
                                    work.push(Work::Range(lo + i + 1, hi));
                                }
                                work.push(Work::DeadLetter(lo + i, failure));
                                if i > 0 {
                                    work.push(Work::Range(lo, lo + i));
                                }
                            }
                            None if hi - lo > 1 => split(&mut work, lo, hi),
                            None => work.push(Work::DeadLetter(lo, failure)),
                        }
                        break;
                    }
                    CallOutcome::Trapped { kind, message } => {
                        // The instance's state can no longer be trusted.
                        self.instance = None;
                        let metrics = &self.ctx.shared.telemetry.metrics;
                        let class = metrics.count_trap(kind);
                        tracing::debug!(kind = kind.as_str(), %message, records = hi - lo,
                            "instance trapped; replacing it");
                        if hi - lo > 1 {
                            split(&mut work, lo, hi);
                            break;
                        }
                        if attempt < policy.max_attempts {
                            metrics.retries.inc();
                            continue;
                        }
                        work.push(Work::DeadLetter(
                            lo,
                            Failure {
                                class,
                                message,
                                attempts: attempt,
                            },
                        ));
                        break;
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

    /// One call, creating the instance first if there is none.
    async fn call(&mut self, batch: &Batch) -> Result<CallOutcome, String> {
        if self.instance.is_none() {
            let fresh = ConsumerInstance::new(&self.program.template)
                .await
                .map_err(|e| format!("cannot instantiate the module: {e:#}"))?;
            self.instance = Some(fresh);
        }
        let instance = self.instance.as_mut().expect("instance was just created");
        let started = Instant::now();
        let outcome = instance.handle(batch).await;
        self.ctx
            .shared
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
                self.topic, self.partition, failure.class, failure.attempts, failure.message
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
    /// the same partition). A permanent refusal (topic gone, record too
    /// large, not authorised) fails the deployment.
    async fn settle_front(&mut self) -> Result<(), String> {
        let mut attempt = 0u32;
        loop {
            let Some(acks) = self.unacked.front().map(|f| f.acks.clone()) else {
                return Ok(());
            };
            let error = match acks.wait().await {
                Ok(()) => {
                    let front = self.unacked.pop_front().expect("front exists");
                    if attempt > 0 {
                        tracing::info!(
                            first_offset = front.first_offset,
                            attempt,
                            "outputs acknowledged after publishing them again"
                        );
                    }
                    return self.store(front.next_offset);
                }
                Err(e) => e,
            };
            let front = self.unacked.front().expect("front exists");
            let failed = format!(
                "outputs of topic {:?} partition {} offsets {}..{} were not acknowledged: {error}",
                self.topic, self.partition, front.first_offset, front.next_offset
            );
            if error.permanent || self.closing() {
                return Err(failed);
            }
            attempt += 1;
            let delay = self.program.policy.backoff(attempt);
            if attempt == 1 {
                tracing::warn!(error = %error, first_offset = front.first_offset,
                    retry_in_ms = delay.as_millis() as u64,
                    "outputs not acknowledged; publishing them again (input offset not stored meanwhile)");
            }
            self.backoff(delay).await;
            if self.closing() {
                return Err(failed);
            }
            let front = self.unacked.front_mut().expect("front exists");
            front.acks = self.ctx.producer.publish(&front.outboxes).await;
        }
    }

    fn store(&self, next_offset: i64) -> Result<(), String> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, self.partition, Offset::Offset(next_offset))
            .map_err(|e| e.to_string())?;
        match self.ctx.consumer.store_offsets(&tpl) {
            Ok(()) => {
                self.ctx.shared.telemetry.metrics.offsets_stored.inc();
                Ok(())
            }
            // The partition was taken away (e.g. the session expired): the
            // new owner re-delivers from the last commit; nothing is lost.
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => {
                tracing::warn!(
                    next_offset,
                    "partition no longer assigned; offset not stored"
                );
                Ok(())
            }
            Err(e) => Err(format!(
                "cannot store offset {next_offset} for topic {:?} partition {}: {e}",
                self.topic, self.partition
            )),
        }
    }
}
