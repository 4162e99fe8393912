//! Acknowledgements: the batches whose outputs Kafka has not yet
//! acknowledged, publishing again what it refused for a passing reason,
//! and storing input offsets strictly in batch order.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Handled, Lane, LaneCtx, LaneError};
use crate::kafka::AckGroup;
use crate::pipeline::partitions::{PartitionKey, Progress};
use crate::wasm::bindings::Outbox;

/// A batch whose outputs are still being acknowledged.
pub(super) struct Unacked {
    pub(super) acks: Arc<AckGroup>,
    /// Kept to publish again if Kafka did not take them for a passing reason.
    pub(super) outboxes: Vec<Outbox>,
    /// Key, value and header bytes of `outboxes` as produced: what the
    /// lane holds in memory for them.
    pub(super) bytes: u64,
    pub(super) first_offset: i64,
    /// The offset to store once acknowledged (last offset + 1).
    pub(super) next_offset: i64,
    /// Published again after Kafka refused them (the partition is noted
    /// as degraded until they are acknowledged).
    pub(super) republished: bool,
}

impl Lane {
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
    pub(super) async fn settle_front(&mut self) -> Result<Handled, LaneError> {
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
            if error.permanent {
                return Err(LaneError::NotAcknowledged {
                    topic: self.key.0.clone(),
                    partition: self.key.1,
                    first_offset: front.first_offset,
                    next_offset: front.next_offset,
                    error,
                });
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

    pub(super) fn store(&self, next_offset: i64) -> Result<(), LaneError> {
        store(&self.ctx, &self.key, &self.progress, next_offset)
    }
}

/// A batch's outputs are acknowledged: store its input offset.
fn settled(
    ctx: &LaneCtx,
    key: &PartitionKey,
    progress: &Progress,
    front: &Unacked,
) -> Result<(), LaneError> {
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
pub(super) async fn store_acked(
    unacked: &mut VecDeque<Unacked>,
    ctx: &LaneCtx,
    key: &PartitionKey,
    progress: &Progress,
) -> Result<std::convert::Infallible, LaneError> {
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
) -> Result<(), LaneError> {
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
