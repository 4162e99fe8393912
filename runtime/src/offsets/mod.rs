//! Consumer groups' offsets seen from outside the groups, for the whole
//! runner: where each deployment's group stands on every input partition
//! (committed offset, watermarks, lag) — through one admin client, with
//! every partition's watermarks in one batched request and every group's
//! commits in requests sent together, cached for `runtime.offsets_cache_ms`
//! — and moving a group to a start position ([`moves`]).
//!
//! Status, `ingesta ls --lag`, `ingesta top` and the Prometheus scrape all
//! read lag here; no request or scrape creates a Kafka client, and callers
//! asking at once share one look-up.

mod admin;
pub mod moves;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

pub use admin::{AdminError, Tp};
pub use moves::{Move, move_group};

use crate::api::PartitionStatus;
use crate::config::KafkaConfig;

/// How long a look-up may take before callers answer without it.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a group's lag is not known.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LagError {
    /// The look-up as a whole failed: no client, no metadata, or no answer
    /// in time. Every group asked about gets this error.
    #[error(transparent)]
    Kafka(#[from] AdminError),
    /// One of the group's input topics is not in the cluster's metadata.
    #[error("topic {0:?} does not exist in Kafka")]
    NoTopic(String),
    /// Kafka refused to list the group's committed offsets (or gave no
    /// answer for it).
    #[error("cannot read the offsets of group {group:?}: {reason}")]
    Group {
        /// The consumer group asked about.
        group: String,
        /// Kafka's reason, in words.
        reason: String,
    },
    /// Kafka refused the earliest or latest offset of one input partition
    /// (or gave no answer for it).
    #[error("cannot read the watermarks of topic {topic:?} partition {partition}: {reason}")]
    Partition {
        /// The input topic.
        topic: String,
        /// The partition within `topic`.
        partition: i32,
        /// Kafka's reason, in words.
        reason: String,
    },
}

/// An answer from Kafka, or why it could not be had (kept like an answer,
/// so a refusal is not asked again within the cache time), with when it
/// was looked up.
type Looked<T> = (Instant, Result<T, String>);

/// A group's committed offset on each partition asked for (`None`: no
/// commit there yet).
type Commits = HashMap<Tp, Option<i64>>;

/// What is known, and since when.
#[derive(Default)]
struct Cache {
    /// Partition ids of each topic that exists, and when they were read.
    partitions: HashMap<String, (Instant, Vec<i32>)>,
    /// `(low, high)` watermarks of each partition.
    watermarks: HashMap<Tp, Looked<(i64, i64)>>,
    /// Committed offsets of each consumer group.
    committed: HashMap<String, Looked<Commits>>,
}

/// The runner's offsets-and-lag service.
pub struct Offsets {
    admin: Arc<admin::Admin>,
    kafka: KafkaConfig,
    fresh_for: Duration,
    cache: Mutex<Cache>,
}

impl Offsets {
    /// A service whose answers are at most `fresh_for` old.
    pub fn new(kafka: &KafkaConfig, fresh_for: Duration) -> Result<Self, AdminError> {
        Ok(Self {
            admin: Arc::new(admin::Admin::new(kafka)?),
            kafka: kafka.clone(),
            fresh_for,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The Kafka settings (for moving groups).
    pub fn kafka(&self) -> &KafkaConfig {
        &self.kafka
    }

    /// Where each `(group, topics)` stands on every partition of its
    /// topics, in the order asked. One look-up for whatever is not cached
    /// (or older than the cache time); callers asking meanwhile wait for
    /// it rather than look again.
    pub async fn lag(
        &self,
        wanted: &[(String, Vec<String>)],
    ) -> Vec<Result<Vec<PartitionStatus>, LagError>> {
        let mut cache = self.cache.lock().await;
        if let Err(e) = self.refresh(&mut cache, wanted).await {
            return wanted.iter().map(|_| Err(e.clone())).collect();
        }
        wanted
            .iter()
            .map(|(group, topics)| answer(&cache, group, topics))
            .collect()
    }

    /// [`Offsets::lag`] for each entry that has a group (a producer's
    /// `None` is answered `None`).
    pub async fn lag_each(
        &self,
        wanted: &[Option<(String, Vec<String>)>],
    ) -> Vec<Option<Result<Vec<PartitionStatus>, LagError>>> {
        let asked: Vec<(String, Vec<String>)> = wanted.iter().flatten().cloned().collect();
        let mut found = self.lag(&asked).await.into_iter();
        wanted
            .iter()
            .map(|g| g.as_ref().and_then(|_| found.next()))
            .collect()
    }

    /// Which of `topics` exist in Kafka (a topic not found is looked up
    /// again on every call; one found is trusted for the cache time).
    pub async fn existing(
        &self,
        topics: &[String],
    ) -> Result<std::collections::HashSet<String>, LagError> {
        let mut cache = self.cache.lock().await;
        self.topics(&mut cache, topics).await?;
        Ok(topics
            .iter()
            .filter(|t| cache.partitions.contains_key(*t))
            .cloned()
            .collect())
    }

    /// The `(low, high)` watermarks of every partition of `topics`, read
    /// now in one request whatever the cache holds (partition lists are
    /// cached as usual), and kept for the other readers. Sleeping
    /// deployments are woken by these.
    pub async fn ends(&self, topics: &[String]) -> Result<HashMap<Tp, (i64, i64)>, LagError> {
        let mut cache = self.cache.lock().await;
        self.topics(&mut cache, topics).await?;
        let parts: Vec<Tp> = topics
            .iter()
            .filter_map(|t| cache.partitions.get(t).map(|(_, ids)| (t, ids)))
            .flat_map(|(t, ids)| ids.iter().map(move |p| (t.clone(), *p)))
            .collect();
        if parts.is_empty() {
            return Ok(HashMap::new());
        }
        let admin = self.admin.clone();
        let fetched = tokio::task::spawn_blocking(move || admin.fetch(&parts, &[], LOOKUP_TIMEOUT))
            .await
            .map_err(|e| AdminError::Metadata(e.to_string()))??;
        let now = Instant::now();
        for (tp, marks) in &fetched.watermarks {
            cache.watermarks.insert(tp.clone(), (now, Ok(*marks)));
        }
        Ok(fetched.watermarks)
    }

    /// Each of `topics`' `max.message.bytes` as Kafka reports it (not
    /// cached: asked only when a deployment is checked).
    pub async fn max_message_bytes(
        &self,
        topics: &[String],
    ) -> Result<HashMap<String, i64>, LagError> {
        Ok(self.admin.max_message_bytes(topics, LOOKUP_TIMEOUT).await?)
    }

    /// Make sure the partitions of `topics` are known and fresh.
    async fn topics(&self, cache: &mut Cache, topics: &[String]) -> Result<(), LagError> {
        let now = Instant::now();
        let stale: Vec<String> = topics
            .iter()
            .filter(|t| {
                cache
                    .partitions
                    .get(*t)
                    .is_none_or(|(at, _)| now.duration_since(*at) >= self.fresh_for)
            })
            .cloned()
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let admin = self.admin.clone();
        let asked = stale.clone();
        let found = tokio::task::spawn_blocking(move || admin.partitions(&asked, LOOKUP_TIMEOUT))
            .await
            .map_err(|e| AdminError::Metadata(e.to_string()))??;
        for t in stale {
            cache.partitions.remove(&t);
        }
        for (t, ids) in found {
            cache.partitions.insert(t, (now, ids));
        }
        Ok(())
    }

    async fn refresh(
        &self,
        cache: &mut Cache,
        wanted: &[(String, Vec<String>)],
    ) -> Result<(), LagError> {
        let now = Instant::now();
        let fresh = |at: &Instant| now.duration_since(*at) < self.fresh_for;
        let mut topics: Vec<String> = wanted.iter().flat_map(|(_, t)| t.iter().cloned()).collect();
        topics.sort();
        topics.dedup();
        self.topics(cache, &topics).await?;
        let parts_of = |t: &String| {
            cache
                .partitions
                .get(t)
                .map(|(_, p)| p.clone())
                .unwrap_or_default()
        };
        let stale_parts: Vec<Tp> = topics
            .iter()
            .flat_map(|t| parts_of(t).into_iter().map(move |p| (t.clone(), p)))
            .filter(|tp| cache.watermarks.get(tp).is_none_or(|(at, _)| !fresh(at)))
            .collect();
        let stale_groups: Vec<(String, Vec<Tp>)> = wanted
            .iter()
            .filter(|(g, _)| cache.committed.get(g).is_none_or(|(at, _)| !fresh(at)))
            .map(|(g, ts)| {
                let tps = ts
                    .iter()
                    .flat_map(|t| parts_of(t).into_iter().map(move |p| (t.clone(), p)))
                    .collect();
                (g.clone(), tps)
            })
            .collect();
        if stale_parts.is_empty() && stale_groups.is_empty() {
            return Ok(());
        }
        let admin = self.admin.clone();
        let (parts, groups) = (stale_parts.clone(), stale_groups.clone());
        let fetched =
            tokio::task::spawn_blocking(move || admin.fetch(&parts, &groups, LOOKUP_TIMEOUT))
                .await
                .map_err(|e| AdminError::Metadata(e.to_string()))??;
        for tp in stale_parts {
            let value = match (fetched.watermarks.get(&tp), fetched.failed.get(&tp)) {
                (Some(&marks), _) => Ok(marks),
                (None, Some(why)) => Err(why.clone()),
                (None, None) => Err("no answer".into()),
            };
            cache.watermarks.insert(tp, (now, value));
        }
        for (g, _) in stale_groups {
            let value = fetched
                .committed
                .get(&g)
                .cloned()
                .unwrap_or_else(|| Err("no answer".into()));
            cache.committed.insert(g, (now, value));
        }
        Ok(())
    }
}

/// Where `group` stands on `topics`, from the cache.
fn answer(cache: &Cache, group: &str, topics: &[String]) -> Result<Vec<PartitionStatus>, LagError> {
    let committed = match cache.committed.get(group).map(|(_, c)| c) {
        Some(Ok(c)) => c,
        Some(Err(reason)) => {
            return Err(LagError::Group {
                group: group.to_owned(),
                reason: reason.clone(),
            });
        }
        None => {
            return Err(LagError::Group {
                group: group.to_owned(),
                reason: "not looked up".into(),
            });
        }
    };
    let mut out = Vec::new();
    for topic in topics {
        let Some((_, parts)) = cache.partitions.get(topic) else {
            return Err(LagError::NoTopic(topic.clone()));
        };
        for &partition in parts {
            let tp = (topic.clone(), partition);
            let (low, high) = match cache.watermarks.get(&tp).map(|(_, w)| w) {
                Some(Ok(w)) => *w,
                Some(Err(reason)) => {
                    return Err(LagError::Partition {
                        topic: topic.clone(),
                        partition,
                        reason: reason.clone(),
                    });
                }
                None => {
                    return Err(LagError::Partition {
                        topic: topic.clone(),
                        partition,
                        reason: "not looked up".into(),
                    });
                }
            };
            let committed = committed.get(&tp).copied().flatten();
            out.push(PartitionStatus {
                topic: topic.clone(),
                partition,
                committed,
                high_watermark: high,
                lag: lag(committed, low, high),
                runner: None,
            });
        }
    }
    Ok(out)
}

/// Records not yet handled: the end minus the committed offset (minus the
/// first offset before a commit, or where retention passed the commit).
pub fn lag(committed: Option<i64>, low: i64, high: i64) -> i64 {
    (high - committed.unwrap_or(low).max(low)).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_what_is_still_there() {
        assert_eq!(lag(Some(40), 0, 100), 60);
        assert_eq!(
            lag(None, 20, 100),
            80,
            "before a commit: from the first offset"
        );
        assert_eq!(lag(Some(10), 50, 100), 50, "retention passed the commit");
        assert_eq!(lag(Some(120), 0, 100), 0, "a commit past the end");
    }

    #[test]
    fn answers_come_from_the_cache_and_name_what_is_missing() {
        let now = Instant::now();
        let mut cache = Cache::default();
        cache.partitions.insert("t".into(), (now, vec![0, 1]));
        cache.watermarks.insert(("t".into(), 0), (now, Ok((0, 10))));
        cache.watermarks.insert(("t".into(), 1), (now, Ok((5, 8))));
        let commits = HashMap::from([(("t".into(), 0), Some(4)), (("t".into(), 1), None)]);
        cache.committed.insert("g".into(), (now, Ok(commits)));
        let parts = answer(&cache, "g", &["t".into()]).unwrap();
        let lags: Vec<i64> = parts.iter().map(|p| p.lag).collect();
        assert_eq!(lags, [6, 3]);
        let err = answer(&cache, "g", &["nope".into()]).unwrap_err();
        assert!(err.to_string().contains("\"nope\" does not exist"), "{err}");
        assert!(answer(&cache, "other", &["t".into()]).is_err());
    }
}
