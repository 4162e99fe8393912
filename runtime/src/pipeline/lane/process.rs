//! A batch under the deployment's failure policy: calls (whole, split,
//! retried), traps, and dead-letter records.

use std::time::Instant;

use ingesta_abi::RecordEntry;

use super::acks::store_acked;
use super::{Lane, LaneError};
use crate::deployment::status::FailureClass;
use crate::pipeline::failure::{self, Failure, Next, Origin, Outcome, Plan, Step};
use crate::wasm::bindings::{Batch, Outbox};
use crate::wasm::{CallOutcome, ConsumerInstance};

impl Lane {
    /// Run the batch through the instance under the failure policy
    /// ([`Plan`]). Returns every outbox to publish, in record order: the
    /// handler's outputs and dead-letter records; `None` if the lane
    /// started closing before the batch was through. Fails only when the
    /// deployment must stop.
    pub(super) async fn process(
        &mut self,
        batch: &Batch,
        count: usize,
    ) -> Result<Option<Vec<Outbox>>, LaneError> {
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
                    let Some(called) = self.call(target).await? else {
                        return Ok(None);
                    };
                    let metrics = &self.ctx.shared.telemetry.metrics;
                    let outcome = match called {
                        CallOutcome::Ok((), outboxes) => {
                            out.extend(outboxes);
                            Outcome::Ok
                        }
                        CallOutcome::Failed(e) => {
                            let class = FailureClass::from(e.class);
                            metrics.count_failure(class);
                            Outcome::Failed {
                                class,
                                message: e.message,
                                record_index: e.record_index,
                            }
                        }
                        CallOutcome::Trapped { kind, message } => {
                            // The instance's state can no longer be trusted.
                            self.instance = None;
                            tracing::debug!(kind = kind.as_str(), %message, attempt,
                                records = range.len(), "instance trapped; replacing it");
                            metrics.count_failure(FailureClass::Trap(kind));
                            Outcome::Trapped { kind, message }
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

    /// One call, creating the instance first if there is none (waiting for
    /// a slot if the quotas are used up: `None` if the lane starts closing
    /// meanwhile). While it runs, earlier batches whose outputs Kafka
    /// acknowledges are stored, so a long call holds back nothing that was
    /// handled before it.
    async fn call(&mut self, batch: &Batch) -> Result<Option<CallOutcome>, LaneError> {
        if self.instance.is_none() {
            let mut closing = self.closing.clone();
            let fresh = tokio::select! {
                fresh = ConsumerInstance::new(&self.program.template) => fresh,
                _ = closing.wait_for(|c| *c) => return Ok(None),
            };
            self.instance = Some(fresh.map_err(LaneError::Instantiate)?);
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
        Ok(Some(outcome))
    }

    /// The dead-letter record for record `index`, or the reason the
    /// deployment must stop when there is no dead-letter topic.
    fn dead_letter(
        &self,
        batch: &Batch,
        index: usize,
        failure: &Failure,
    ) -> Result<Outbox, LaneError> {
        let offset = RecordEntry::read(&batch.records, index).map_or(-1, |e| e.offset);
        let Some(topic) = &self.program.policy.dead_letter_topic else {
            return Err(LaneError::NoDeadLetterTopic {
                topic: self.key.0.clone(),
                partition: self.key.1,
                offset,
                failure: failure.clone(),
            });
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
}
