//! Moving a consumer group from outside it: committing a deployment's
//! start position when its group is new, or a replay's position. The
//! group must have no active member (stop the deployment first). Blocking:
//! call from a blocking task.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::deployment::StartPosition;
use crate::kafka;

/// Broker round trips here are metadata-sized.
const TIMEOUT: Duration = Duration::from_secs(10);

fn admin(kafka_config: &KafkaConfig, group: &str) -> Result<BaseConsumer> {
    kafka::group_admin_config(kafka_config, group)
        .create()
        .with_context(|| format!("cannot create a Kafka client for group {group:?}"))
}

/// Every partition of `topics`.
fn partitions(consumer: &BaseConsumer, topics: &[String]) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .with_context(|| format!("cannot fetch the metadata of topic {topic:?}"))?;
        for t in metadata.topics() {
            if t.error().is_some() || t.partitions().is_empty() {
                bail!("topic {topic:?} does not exist in Kafka");
            }
            for p in t.partitions() {
                tpl.add_partition(topic, p.id());
            }
        }
    }
    Ok(tpl)
}

/// The offsets `position` means on every partition of `topics`.
fn targets(
    consumer: &BaseConsumer,
    topics: &[String],
    position: StartPosition,
) -> Result<TopicPartitionList> {
    let all = partitions(consumer, topics)?;
    let mut out = TopicPartitionList::new();
    let by_time = match position {
        StartPosition::Timestamp(ms) => {
            let mut query = TopicPartitionList::new();
            for e in all.elements() {
                query.add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms))?;
            }
            Some(
                consumer
                    .offsets_for_times(query, TIMEOUT)
                    .context("cannot look up offsets by timestamp")?,
            )
        }
        _ => None,
    };
    for e in all.elements() {
        let (low, high) = consumer
            .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
            .with_context(|| format!("cannot read the watermarks of topic {:?}", e.topic()))?;
        let offset = match position {
            StartPosition::Earliest => low,
            StartPosition::Latest => high,
            StartPosition::Timestamp(_) => {
                let found = by_time
                    .as_ref()
                    .and_then(|t| t.find_partition(e.topic(), e.partition()))
                    .map(|p| p.offset());
                match found {
                    Some(Offset::Offset(o)) => o,
                    // No record at or after the time: start at the end.
                    _ => high,
                }
            }
        };
        out.add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset))?;
    }
    Ok(out)
}

/// Why a group is moved, which decides what happens to partitions the
/// group has already committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// A replay: every partition goes to the position, even backwards.
    Replay,
    /// A deployment's `start` taking effect on topics it begins to read:
    /// only if the group has committed nothing on any of their partitions
    /// (a new group). A group with commits keeps them, and its partitions
    /// without one begin at their first offset.
    StartIfNew,
}

/// Commit `position` for `group` on every partition of `topics` (see
/// [`Move`]). The group must have no active member (Kafka refuses commits
/// from outside a live group), so this retries until `wait` has passed;
/// stop the deployment first. Returns the number of partitions moved.
pub fn move_group(
    kafka_config: &KafkaConfig,
    group: &str,
    topics: &[String],
    position: StartPosition,
    mode: Move,
    wait: Duration,
) -> Result<usize> {
    let consumer = admin(kafka_config, group)?;
    let tpl = targets(&consumer, topics, position)?;
    if mode == Move::StartIfNew {
        let committed = consumer
            .committed_offsets(tpl.clone(), TIMEOUT)
            .with_context(|| format!("cannot read the committed offsets of group {group:?}"))?;
        let any = committed
            .elements()
            .iter()
            .any(|c| matches!(c.offset(), Offset::Offset(_)));
        if any {
            return Ok(0);
        }
    }
    if tpl.count() == 0 {
        return Ok(0);
    }
    let deadline = Instant::now() + wait;
    loop {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => return Ok(tpl.count()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(group, error = %e, "group still has members; retrying the offset move");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot move group {group:?} to {position:?}: does it still have active members outside this runner?")
                });
            }
        }
    }
}
