//! The deployment's consumer and its place in the group: the callbacks
//! librdkafka makes on assignment and revocation, where each assigned
//! partition begins, draining and committing before a partition is given
//! up, and the offset store the lanes write to.
//!
//! - **Assign**: each new partition begins at its committed offset; with
//!   none, at its first offset (a deployment's `start` is committed for
//!   every partition that exists when it is created, so a partition
//!   without a commit appeared later and all its records are newer than
//!   the deployment). A committed offset below the partition's first
//!   offset (retention, deleted records) resumes at the first offset and
//!   the skipped range is reported ([`Partitions::gap`]). Newly assigned
//!   partitions are resumed: librdkafka keeps a partition's pause flag
//!   across revocation and assignment, while the poll loop starts them
//!   afresh with nothing waiting.
//! - **Revoke**: the partitions' lanes are closed together and drained
//!   under one deadline, then what they stored is committed. A partition
//!   *lost* without a revoke (the group moved on, e.g. after a session
//!   expiry) is neither drained nor committed: its new owner handles what
//!   was not committed.
//!
//! Both work for the eager and the cooperative protocols.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::Shared;
use super::lane::{self, LaneError, OffsetStore};
use super::partitions::PartitionKey;

/// A deployment's consumer.
pub(super) type DeploymentConsumer = BaseConsumer<DeploymentContext>;

/// Broker round trips made while assigning (committed offsets, watermarks).
const ASSIGN_TIMEOUT: Duration = Duration::from_secs(10);

/// librdkafka's callbacks for one deployment's consumer.
pub struct DeploymentContext {
    shared: Arc<Shared>,
    /// When an eager revocation gave up every partition: until the next
    /// assignment nothing is read.
    revoked_all_at: std::sync::Mutex<Option<Instant>>,
}

impl DeploymentContext {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            revoked_all_at: std::sync::Mutex::new(None),
        }
    }

    fn assign(&self, consumer: &DeploymentConsumer, tpl: &mut TopicPartitionList) {
        let shared = &self.shared;
        let name = &*shared.name;
        match begin_at(consumer, tpl) {
            Ok(starts) => {
                for s in &starts {
                    if let Some((from, to, reason)) = &s.skipped {
                        shared.partitions.gap(&s.key, *from, *to, reason);
                    }
                    if let Some(note) = &s.note {
                        tracing::warn!(deployment = name, topic = %s.key.0, partition = s.key.1,
                            offset = s.offset, "{note}");
                    }
                    let _ = tpl.set_partition_offset(&s.key.0, s.key.1, Offset::Offset(s.offset));
                }
            }
            Err(e) => tracing::warn!(deployment = name, error = %e,
                "cannot read where the assigned partitions begin; they resume at their committed offsets (or their first offset) as librdkafka finds them, and a range of records Kafka no longer has would not be reported"),
        }
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
            _ => consumer.assign(tpl),
        };
        if let Err(e) = assigned {
            tracing::error!(deployment = name, error = %e, "cannot take the assigned partitions");
        }
        // Nothing of these partitions waits in the poll loop, so none may
        // stay paused (a pause from before a revocation would be forever).
        if let Err(e) = consumer.resume(tpl) {
            tracing::warn!(deployment = name, error = %e, "cannot resume the assigned partitions");
        }
        for e in tpl.elements() {
            let start = match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            shared
                .partitions
                .assign((e.topic().to_owned(), e.partition()), start);
        }
        tracing::info!(
            deployment = name,
            partitions = tpl.count(),
            "partitions assigned"
        );
    }

    fn revoke(&self, consumer: &DeploymentConsumer, tpl: &TopicPartitionList) {
        let shared = &self.shared;
        let name = &*shared.name;
        let parts: Vec<PartitionKey> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        // The poll loop drops what it was building for these.
        shared.revoked.lock().unwrap().extend(parts.iter().cloned());
        shared.revocations.fetch_add(1, Ordering::AcqRel);
        if consumer.assignment_lost() {
            tracing::warn!(deployment = name, partitions = ?parts,
                "partitions lost: the group moved on without this member (e.g. its session expired); nothing more is stored or committed for them, and their new owner handles what was not committed");
            for p in &parts {
                shared.partitions.revoke(p);
            }
            lane::abort(shared.take_lanes(Some(&parts)));
        } else {
            tracing::info!(deployment = name, partitions = ?parts,
                "partitions revoked; draining their lanes");
            drain(shared, Some(&parts));
            commit(consumer, name);
            for p in &parts {
                shared.partitions.revoke(p);
            }
        }
        // librdkafka keeps the pause flag of a partition across revocation
        // and assignment; the poll loop forgets these, so clear it.
        if let Err(e) = consumer.resume(tpl) {
            tracing::debug!(deployment = name, error = %e, "cannot resume revoked partitions");
        }
        let unassigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
            _ => consumer.unassign(),
        };
        if let Err(e) = unassigned {
            tracing::warn!(deployment = name, error = %e, "cannot give up the revoked partitions");
        }
    }
}

impl ClientContext for DeploymentContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        crate::kafka::route_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::FencedInstanceId | RDKafkaErrorCode::UnreleasedInstanceId)
        ) {
            // Two live members with one static id: the broker takes one
            // and fences the other; say which setting to change.
            self.shared.fail(format!(
                "another live runner uses this runner's static member id in the deployment's group ({error}: {reason}); give each runner its own runtime.runner_id (group.instance.id)"
            ));
            return;
        }
        tracing::warn!(target: "ingesta::kafka", deployment = &*self.shared.name, %error,
            reason, "consumer error");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        self.shared.telemetry.metrics.consumer.update(&statistics);
    }
}

impl ConsumerContext for DeploymentContext {
    fn rebalance(
        &self,
        consumer: &DeploymentConsumer,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let began = Instant::now();
        let metrics = &self.shared.telemetry.metrics;
        let eager = !matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut waited = Duration::ZERO;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Some(at) = self.revoked_all_at.lock().unwrap().take() {
                    waited = began - at;
                }
                metrics.partitions_assigned.inc_by(tpl.count() as u64);
                self.assign(consumer, tpl);
                self.shared.joined.store(true, Ordering::Release);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let how = if consumer.assignment_lost() {
                    "lost"
                } else {
                    "revoked"
                };
                metrics
                    .partitions_revoked
                    .with_label_values(&[how])
                    .inc_by(tpl.count() as u64);
                self.revoke(consumer, tpl);
                if eager {
                    *self.revoked_all_at.lock().unwrap() = Some(Instant::now());
                }
            }
            other => {
                tracing::warn!(deployment = &*self.shared.name, error = %RDKafkaErrorCode::from(other),
                    "rebalance error");
                // Give up the assignment so the group can move on, as the
                // default handler does.
                let _ = consumer.unassign();
            }
        }
        metrics.rebalances.inc();
        let paused = waited + began.elapsed();
        metrics
            .rebalance_paused_ms
            .inc_by(u64::try_from(paused.as_millis()).unwrap_or(u64::MAX));
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

impl OffsetStore for DeploymentConsumer {
    fn store(&self, topic: &str, partition: i32, next_offset: i64) -> Result<bool, LaneError> {
        let mut tpl = TopicPartitionList::new();
        let stored = tpl
            .add_partition_offset(topic, partition, Offset::Offset(next_offset))
            .and_then(|()| self.store_offsets(&tpl));
        match stored {
            Ok(()) => Ok(true),
            // The partition was taken away meanwhile: the new owner
            // re-delivers from the last commit; nothing is lost.
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => Ok(false),
            Err(source) => Err(LaneError::Store {
                topic: topic.to_owned(),
                partition,
                next_offset,
                source,
            }),
        }
    }
}

/// Close the lanes of `parts` (every lane if `None`) together and wait for
/// them to finish what they hold, up to the drain timeout.
pub(super) fn drain(shared: &Shared, parts: Option<&[PartitionKey]>) {
    let deadline = Instant::now() + shared.drain_timeout;
    lane::drain(shared.take_lanes(parts), deadline, &shared.name);
}

/// Commit what the lanes stored, now.
pub(super) fn commit(consumer: &DeploymentConsumer, name: &str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(deployment = name, error = %e,
            "offset commit failed; records after the last commit will be delivered again"),
    }
}

/// Where an assigned partition begins.
#[derive(Debug, PartialEq, Eq)]
struct Start {
    key: PartitionKey,
    offset: i64,
    /// Records Kafka no longer has below the committed offset: `from`,
    /// `to`, why.
    skipped: Option<(i64, i64, String)>,
    /// Something worth a warning that skips nothing.
    note: Option<String>,
}

/// Where a partition with committed offset `committed` and records
/// `low..high` begins. Pure, so the rule is unit-tested.
fn start_of(key: PartitionKey, committed: Option<i64>, low: i64, high: i64) -> Start {
    let (offset, skipped, note) = match committed {
        None => (low, None, None),
        Some(c) if c < low => (
            low,
            Some((
                c,
                low,
                format!(
                    "the committed offset {c} is below the partition's first offset {low} (retention or deleted records)"
                ),
            )),
            None,
        ),
        Some(c) if c > high => (
            low,
            None,
            Some(format!(
                "the committed offset {c} is past the partition's end {high} (was the topic recreated or truncated?); resuming at its first offset {low}, so records {low}..{high} are handled, possibly again"
            )),
        ),
        Some(c) => (c, None, None),
    };
    Start {
        key,
        offset,
        skipped,
        note,
    }
}

/// Where each partition of `tpl` begins (see [`start_of`]): the group's
/// committed offsets and each partition's watermarks, from the broker.
fn begin_at(consumer: &DeploymentConsumer, tpl: &TopicPartitionList) -> KafkaResult<Vec<Start>> {
    let committed = consumer.committed_offsets(tpl.clone(), ASSIGN_TIMEOUT)?;
    let mut starts = Vec::with_capacity(committed.count());
    for e in committed.elements() {
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), ASSIGN_TIMEOUT)?;
        let committed = match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        starts.push(start_of(
            (e.topic().to_owned(), e.partition()),
            committed,
            low,
            high,
        ));
    }
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_a_partition_begins() {
        let key = || ("in".to_owned(), 3);
        // (committed, low, high) -> (offset, skipped range, warned)
        let cases = [
            ((Some(40), 0, 100), (40, None, false), "committed, in range"),
            (
                (Some(100), 0, 100),
                (100, None, false),
                "committed at the end",
            ),
            (
                (None, 0, 100),
                (0, None, false),
                "no commit: the first offset",
            ),
            (
                (None, 70, 100),
                (70, None, false),
                "no commit, old records gone",
            ),
            (
                (Some(40), 70, 100),
                (70, Some((40, 70)), false),
                "retention passed the commit",
            ),
            ((Some(500), 0, 100), (0, None, true), "commit past the end"),
        ];
        for ((committed, low, high), (offset, skipped, warned), what) in cases {
            let s = start_of(key(), committed, low, high);
            assert_eq!(s.offset, offset, "{what}");
            assert_eq!(s.skipped.map(|(f, t, _)| (f, t)), skipped, "{what}");
            assert_eq!(s.note.is_some(), warned, "{what}");
        }
    }
}
