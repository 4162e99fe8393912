//! The control plane's state, kept in Kafka: deployment records in the
//! compacted topic `<prefix>deployments` (key `<tenant>/<name>`) and module
//! binaries in the compacted topic `<prefix>modules` (keys `<digest>/meta`
//! and `<digest>/chunk/<n>`; binaries are cut into chunks well below the
//! broker's default message size).
//!
//! Every runner sharing the prefix tails both topics from the beginning and
//! applies each record in log order, so a restarted runner recovers every
//! deployment and module and a second runner sees the same state. The API
//! writes a record (acks=all), then waits until its own runner has applied
//! it, so a response always reflects the write.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use super::Error;
use crate::config::{ControlConfig, KafkaConfig};
use crate::kafka;

/// Which state topic a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateTopic {
    /// `<prefix>deployments`: one [`crate::deployment::DeploymentRecord`]
    /// per key `<tenant>/<name>`. Its value is its index in the
    /// per-topic arrays (`[i64; 2]`).
    Deployments = 0,
    /// `<prefix>modules`: `<digest>/meta` and `<digest>/chunk/<n>`
    /// records of uploaded modules.
    Modules = 1,
}

/// One record read back from a state topic.
#[derive(Debug)]
pub struct StateRecord {
    /// The state topic it was read from.
    pub topic: StateTopic,
    /// The record's key (`<tenant>/<name>`, `<digest>/meta`, ...), read
    /// as UTF-8 (invalid bytes replaced; empty if it had none).
    pub key: String,
    /// `None` is a tombstone: the object was deleted.
    pub value: Option<Vec<u8>>,
    /// Its offset in the topic (single partition); applying it marks
    /// `offset + 1` applied.
    pub offset: i64,
}

/// The writer's end, and how far this runner has applied each topic.
pub struct StateLog {
    producer: FutureProducer,
    topics: [String; 2],
    /// `<prefix>redrive.`, the start of every redrive topic's name.
    redrive_prefix: String,
    /// `<prefix>schedule.`, the start of every coordination group's id.
    group_prefix: String,
    /// Per topic: the next offset not yet applied.
    applied: watch::Sender<[i64; 2]>,
    stop: Arc<AtomicBool>,
}

/// What [`StateLog::open`] returns: the log, the records to apply in
/// order, and the end offsets at start (apply up to them before serving).
pub struct Opened {
    /// The writer, shared by the API and the applier.
    pub log: Arc<StateLog>,
    /// Every record of both topics from the beginning, in log order per
    /// topic, as the reader thread reads them.
    pub records: mpsc::UnboundedReceiver<StateRecord>,
    /// Each topic's end offset when it was opened, indexed by
    /// [`StateTopic`]: the runner is ready once it has applied up to them.
    pub ends: [i64; 2],
}

impl StateLog {
    /// Create the state topics if missing, then start tailing them from the
    /// beginning.
    pub async fn open(kafka_config: &KafkaConfig, control: &ControlConfig) -> Result<Opened> {
        let prefix = &control.state_topic_prefix;
        let topics = [format!("{prefix}deployments"), format!("{prefix}modules")];
        // `<prefix>schedules` is empty: its one partition is what each
        // schedule's coordination group elects an owner with (see
        // `producer::owner`).
        let schedules = format!("{prefix}schedules");
        let compacted = [("cleanup.policy", "compact")];
        let wanted: Vec<(&str, &[(&str, &str)])> = [&topics[0], &topics[1], &schedules]
            .into_iter()
            .map(|t| (t.as_str(), &compacted[..]))
            .collect();
        kafka::topics::ensure_own(kafka_config, &wanted, control.state_replication_factor).await?;

        let producer: FutureProducer = kafka::producer_config(kafka_config)
            .set("client.id", "ingesta-state")
            .set("linger.ms", "0")
            .create()
            .context("invalid Kafka producer settings for the state topics")?;
        // Reads by assignment: the group id is never joined or committed.
        let reader: BaseConsumer = kafka::group_admin_config(kafka_config, "ingesta-state-reader")
            .set("client.id", "ingesta-state-reader")
            .set("enable.partition.eof", "false")
            // A change is answered once this runner has read it back; the
            // broker answers a waiting fetch as soon as the record is
            // written, so a long wait adds no latency to a mutation, and an
            // idle runner asks twice a second rather than 200 times.
            .set("fetch.wait.max.ms", "500")
            .create()
            .context("invalid Kafka consumer settings for the state topics")?;
        let mut tpl = TopicPartitionList::new();
        let mut ends = [0i64; 2];
        for (i, topic) in topics.iter().enumerate() {
            tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
            let (_, high) = reader
                .fetch_watermarks(topic, 0, Duration::from_secs(10))
                .with_context(|| format!("cannot read the end of state topic {topic:?}"))?;
            ends[i] = high;
        }
        reader
            .assign(&tpl)
            .context("cannot read the state topics")?;

        let (tx, records) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_topics = topics.clone();
        let thread_stop = stop.clone();
        std::thread::Builder::new()
            .name("state-reader".into())
            .spawn(move || read_loop(reader, thread_topics, tx, thread_stop))
            .context("cannot start the state reader thread")?;
        tracing::info!(deployments = %topics[0], modules = %topics[1], ?ends, "reading control-plane state from Kafka");
        let (applied, _) = watch::channel([0i64; 2]);
        Ok(Opened {
            log: Arc::new(StateLog {
                producer,
                topics,
                redrive_prefix: format!("{prefix}redrive."),
                group_prefix: format!("{prefix}schedule."),
                applied,
                stop,
            }),
            records,
            ends,
        })
    }

    /// The topic's name.
    pub fn topic(&self, topic: StateTopic) -> &str {
        &self.topics[topic as usize]
    }

    /// Where schedules elect their owner: `<prefix>schedules`, groups
    /// `<prefix>schedule.<tenant>.<name>`.
    pub fn coordination(&self) -> crate::producer::owner::Coordination {
        let prefix = self.redrive_prefix.trim_end_matches("redrive.");
        crate::producer::owner::Coordination {
            topic: format!("{prefix}schedules"),
            group_prefix: self.group_prefix.clone(),
        }
    }

    /// The topics the runner keeps for itself: these state topics and the
    /// deployments' redrive topics.
    pub(crate) fn reserved(&self) -> crate::control::service::Reserved<'_> {
        crate::control::service::Reserved {
            state: [&self.topics[0], &self.topics[1]],
            redrive_prefix: &self.redrive_prefix,
            group_prefix: &self.group_prefix,
        }
    }

    /// Write `value` (`None`: a tombstone) under `key`; returns its offset
    /// once every in-sync replica has it.
    pub async fn put(
        &self,
        topic: StateTopic,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<i64, Error> {
        let name = self.topic(topic);
        let mut record = FutureRecord::<str, [u8]>::to(name).key(key);
        if let Some(v) = value {
            record = record.payload(v);
        }
        match self.producer.send(record, Duration::from_secs(30)).await {
            Ok(delivery) => Ok(delivery.offset),
            Err((e, _)) => Err(Error::Unavailable(format!(
                "cannot write to state topic {name:?}: {e}; retry when Kafka is reachable"
            ))),
        }
    }

    /// Record that every record of `topic` before `next` is applied.
    pub fn mark_applied(&self, topic: StateTopic, next: i64) {
        self.applied.send_modify(|a| {
            let slot = &mut a[topic as usize];
            *slot = (*slot).max(next);
        });
    }

    /// Whether this runner has applied `topic` up to `end` (exclusive).
    pub fn is_applied(&self, topic: StateTopic, end: i64) -> bool {
        self.applied.borrow()[topic as usize] >= end
    }

    /// Wait until this runner has applied the record at `offset`.
    pub async fn wait_applied(&self, topic: StateTopic, offset: i64) -> Result<(), Error> {
        let mut rx = self.applied.subscribe();
        let wait = rx.wait_for(|a| a[topic as usize] > offset);
        match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "the change was written to {:?} but this runner has not applied it yet; check the runner's log",
                self.topic(topic)
            ))),
        }
    }
}

impl Drop for StateLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn read_loop(
    reader: BaseConsumer,
    topics: [String; 2],
    tx: mpsc::UnboundedSender<StateRecord>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        match reader.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "cannot read the state topics; retrying"),
            Some(Ok(m)) => {
                let topic = if m.topic() == topics[0] {
                    StateTopic::Deployments
                } else {
                    StateTopic::Modules
                };
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let record = StateRecord {
                    topic,
                    key,
                    value: m.payload().map(<[u8]>::to_vec),
                    offset: m.offset(),
                };
                if tx.send(record).is_err() {
                    break;
                }
            }
        }
    }
}
