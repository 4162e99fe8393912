//! Reading dead letters back: a page of a dead-letter topic holding the
//! records one deployment set aside, with the `ingesta.*` provenance
//! headers the lane wrote (see `pipeline::failure`) decoded. It never
//! joins a group or commits: reading is free of side effects. Blocking:
//! call from a blocking task.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::group_admin_config;
use crate::api::{
    DeadLetter, DeadLetterCursor, DeadLetterError, DeadLetterPage, DeadLetterSource, Payload,
};
use crate::config::KafkaConfig;

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The reading client could not be created or assigned; carries
    /// librdkafka's message.
    #[error("cannot read dead-letter topic {topic:?}: {message}")]
    Kafka {
        /// The dead-letter topic.
        topic: String,
        /// librdkafka's message.
        message: String,
    },
    /// Kafka did not answer within the request's time.
    #[error(
        "dead-letter topic {topic:?} partition {partition} did not answer within {timeout:?}; try again"
    )]
    Timeout {
        /// The dead-letter topic.
        topic: String,
        /// The partition being read.
        partition: i32,
        /// The request's time.
        timeout: Duration,
    },
}

/// Records of other deployments sharing the topic are skipped, but a page
/// looks at no more than this many records per dead letter asked for.
const SCAN_PER_LETTER: usize = 20;

/// Up to `limit` dead letters of `deployment` (its `ingesta.deployment`
/// header) in `topic`, from `from` on, within `timeout`. A topic that does
/// not exist yet (nothing was ever dead-lettered) is an empty page.
pub fn read_page(
    kafka: &KafkaConfig,
    topic: &str,
    deployment: &str,
    from: DeadLetterCursor,
    limit: usize,
    timeout: Duration,
) -> Result<DeadLetterPage, ReadError> {
    let kafka_error = |e: rdkafka::error::KafkaError| ReadError::Kafka {
        topic: topic.to_owned(),
        message: e.to_string(),
    };
    let consumer: BaseConsumer = group_admin_config(kafka, "ingesta-dead-letters")
        .create()
        .map_err(kafka_error)?;
    let deadline = Instant::now() + timeout;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka_error)?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .filter(|p| *p >= from.partition)
        .collect();
    partitions.sort_unstable();
    let mut page = DeadLetterPage {
        topic: topic.to_owned(),
        dead_letters: Vec::new(),
        next: None,
    };
    let mut budget = limit.saturating_mul(SCAN_PER_LETTER).max(1);
    for partition in partitions {
        let left = deadline.saturating_duration_since(Instant::now());
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, left)
            .map_err(kafka_error)?;
        let start = if partition == from.partition {
            from.offset.max(low)
        } else {
            low
        };
        if start >= high {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(kafka_error)?;
        consumer.assign(&tpl).map_err(kafka_error)?;
        let mut offset = start;
        while offset < high {
            if page.dead_letters.len() == limit || budget == 0 {
                page.next = Some(DeadLetterCursor { partition, offset });
                return Ok(page);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match consumer.poll(left.min(Duration::from_millis(200))) {
                Some(m) => m.map_err(kafka_error)?,
                None if left.is_zero() => {
                    return Err(ReadError::Timeout {
                        topic: topic.to_owned(),
                        partition,
                        timeout,
                    });
                }
                None => continue,
            };
            offset = message.offset() + 1;
            budget -= 1;
            if header(&message, "ingesta.deployment").as_deref() == Some(deployment) {
                page.dead_letters.push(dead_letter(&message));
            }
        }
    }
    Ok(page)
}

/// The last value of header `name` as text.
fn header(m: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Bytes as text when they are UTF-8, else as base64.
fn payload(bytes: Option<&[u8]>) -> Option<Payload> {
    bytes.map(|b| match std::str::from_utf8(b) {
        Ok(text) => Payload {
            text: Some(text.to_owned()),
            base64: None,
        },
        Err(_) => Payload {
            text: None,
            base64: Some(base64::engine::general_purpose::STANDARD.encode(b)),
        },
    })
}

fn dead_letter(m: &BorrowedMessage<'_>) -> DeadLetter {
    // The provenance headers, read once (the last of a name wins).
    let mut provenance: HashMap<&str, String> = HashMap::new();
    let mut headers = Vec::new();
    for h in m.headers().iter().flat_map(|hs| hs.iter()) {
        match h.key.strip_prefix("ingesta.") {
            Some(name) => {
                let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                provenance.insert(name, value.into_owned());
            }
            None => headers.push((h.key.to_owned(), payload(h.value))),
        }
    }
    let text = |name: &str| provenance.get(name).cloned();
    let number = |name: &str| provenance.get(name).and_then(|v| v.parse::<i64>().ok());
    DeadLetter {
        partition: m.partition(),
        offset: m.offset(),
        key: payload(m.key()),
        value: payload(m.payload()),
        headers,
        source: DeadLetterSource {
            topic: text("source.topic").unwrap_or_default(),
            partition: number("source.partition")
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(-1),
            offset: number("source.offset").unwrap_or(-1),
            timestamp: number("source.timestamp"),
        },
        error: DeadLetterError {
            class: text("error.class").unwrap_or_default(),
            message: text("error.message").unwrap_or_default(),
            attempts: number("error.attempts")
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
        },
        module: text("module.digest"),
    }
}
