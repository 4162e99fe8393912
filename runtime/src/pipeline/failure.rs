//! Failure policy: how a failing batch is retried, split and dead-lettered.
//!
//! - A *retryable* error retries the same records with exponential backoff,
//!   up to `max_attempts`; then the records are split in two and each half is
//!   handled on its own.
//! - A *permanent* error naming its record (`record-index`) dead-letters that
//!   record at once and handles the records around it again; without an index
//!   the records are split until the culprit is alone.
//! - A *trap* discards the instance. Several records are split at once (each
//!   half is a retry); a single trapping record is retried up to
//!   `max_attempts`, then dead-lettered.
//!
//! So only poison records reach the dead-letter topic and their neighbours
//! are processed normally. A dead-lettered record keeps its key, value and
//! headers and gains `ingesta.*` headers saying where it came from and why it
//! failed. Without a dead-letter topic the deployment fails instead: a record
//! is never skipped.

use std::time::Duration;

use ingesta_abi::{HeaderEntry, OUTGOING_ENTRY_SIZE, OutgoingEntry, RecordEntry, Span, Timestamp};

use crate::config::FailureConfig;
use crate::wasm::bindings::{Batch, Outbox};

/// Why a record could not be processed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `retryable`, `permanent`, or `trap:<kind>`.
    pub class: String,
    pub message: String,
    /// Calls made with this record before giving up on it.
    pub attempts: u32,
}

/// The failure settings of one deployment, resolved.
#[derive(Debug, Clone)]
pub struct Policy {
    pub dead_letter_topic: Option<String>,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl From<&FailureConfig> for Policy {
    fn from(c: &FailureConfig) -> Self {
        Self {
            dead_letter_topic: c.dead_letter_topic.clone(),
            max_attempts: c.max_attempts,
            backoff_initial: Duration::from_millis(c.backoff_initial_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms),
        }
    }
}

impl Policy {
    /// Delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// The records `range` of `batch` as a batch of their own. The data and
/// header buffers are shared by every entry, so only the entries are cut.
pub fn slice(batch: &Batch, range: std::ops::Range<usize>) -> Batch {
    Batch {
        topic: batch.topic.clone(),
        partition: batch.partition,
        data: batch.data.clone(),
        records: batch.records[range.start * ingesta_abi::RECORD_ENTRY_SIZE
            ..range.end * ingesta_abi::RECORD_ENTRY_SIZE]
            .to_vec(),
        headers: batch.headers.clone(),
    }
}

/// Identity of the deployment, for dead-letter headers.
pub struct Origin<'a> {
    pub deployment: &'a str,
    pub module_digest: &'a str,
}

/// An outbox holding one dead-letter record: record `index` of `batch`
/// with its key, value and headers, plus provenance headers.
pub fn dead_letter(
    batch: &Batch,
    index: usize,
    topic: &str,
    origin: &Origin<'_>,
    failure: &Failure,
) -> Outbox {
    let entry = RecordEntry::read(&batch.records, index).expect("index is within the batch");
    let mut data = Vec::new();
    let mut headers = Vec::new();
    let mut header_count = 0u32;
    let copy = |data: &mut Vec<u8>, span: Span| {
        Span::append(data, span.get(&batch.data).unwrap_or_default())
    };
    let key = entry.key.map(|s| copy(&mut data, s));
    let value = entry.value.map(|s| copy(&mut data, s));
    for h in entry.header_start..entry.header_start + entry.header_count {
        let Some(h) = HeaderEntry::read(&batch.headers, h as usize) else {
            break;
        };
        HeaderEntry {
            name: copy(&mut data, h.name),
            value: h.value.map(|v| copy(&mut data, v)),
        }
        .encode(&mut headers);
        header_count += 1;
    }
    let timestamp = match entry.timestamp {
        Timestamp::NotAvailable => String::new(),
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t.to_string(),
    };
    let provenance: [(&str, &str); 9] = [
        ("ingesta.source.topic", &batch.topic),
        ("ingesta.source.partition", &batch.partition.to_string()),
        ("ingesta.source.offset", &entry.offset.to_string()),
        ("ingesta.source.timestamp", &timestamp),
        ("ingesta.deployment", origin.deployment),
        ("ingesta.module.digest", origin.module_digest),
        ("ingesta.error.class", &failure.class),
        ("ingesta.error.message", &failure.message),
        ("ingesta.error.attempts", &failure.attempts.to_string()),
    ];
    for (name, value) in provenance {
        HeaderEntry {
            name: Span::append(&mut data, name.as_bytes()),
            value: Some(Span::append(&mut data, value.as_bytes())),
        }
        .encode(&mut headers);
        header_count += 1;
    }
    let mut records = Vec::with_capacity(OUTGOING_ENTRY_SIZE);
    OutgoingEntry {
        topic: 0,
        key,
        value,
        header_start: 0,
        header_count,
    }
    .encode(&mut records);
    Outbox {
        topics: vec![topic.to_owned()],
        data,
        records,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = Policy {
            dead_letter_topic: None,
            max_attempts: 10,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
        };
        let ms: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 500, 500]);
        assert_eq!(p.backoff(64), Duration::from_millis(500));
    }

    #[test]
    fn dead_letter_keeps_the_record_and_adds_provenance() {
        let mut data = Vec::new();
        let mut records = Vec::new();
        let mut headers = Vec::new();
        for (i, v) in ["good", "poison"].iter().enumerate() {
            let key = Span::append(&mut data, format!("k{i}").as_bytes());
            let value = Span::append(&mut data, v.as_bytes());
            HeaderEntry {
                name: Span::append(&mut data, b"trace"),
                value: Some(Span::append(&mut data, format!("t{i}").as_bytes())),
            }
            .encode(&mut headers);
            RecordEntry {
                offset: 40 + i as i64,
                timestamp: Timestamp::CreateTime(1_000 + i as i64),
                key: Some(key),
                value: Some(value),
                header_start: i as u32,
                header_count: 1,
            }
            .encode(&mut records);
        }
        let batch = Batch {
            topic: "in".into(),
            partition: 3,
            data,
            records,
            headers,
        };
        let failure = Failure {
            class: "trap:panic".into(),
            message: "boom".into(),
            attempts: 3,
        };
        let origin = Origin {
            deployment: "d",
            module_digest: "sha256:ab",
        };
        let out = dead_letter(&batch, 1, "dlq", &origin, &failure);
        assert_eq!(out.topics, ["dlq"]);
        let e = OutgoingEntry::read(&out.records, 0).unwrap();
        let text = |s: Span| String::from_utf8(s.get(&out.data).unwrap().to_vec()).unwrap();
        assert_eq!(text(e.key.unwrap()), "k1");
        assert_eq!(text(e.value.unwrap()), "poison");
        let hs: Vec<(String, String)> = (0..e.header_count as usize)
            .map(|i| {
                let h = HeaderEntry::read(&out.headers, i).unwrap();
                (text(h.name), text(h.value.unwrap()))
            })
            .collect();
        let get = |n: &str| hs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("trace"), Some("t1"), "original headers are kept");
        assert_eq!(get("ingesta.source.topic"), Some("in"));
        assert_eq!(get("ingesta.source.partition"), Some("3"));
        assert_eq!(get("ingesta.source.offset"), Some("41"));
        assert_eq!(get("ingesta.source.timestamp"), Some("1001"));
        assert_eq!(get("ingesta.deployment"), Some("d"));
        assert_eq!(get("ingesta.module.digest"), Some("sha256:ab"));
        assert_eq!(get("ingesta.error.class"), Some("trap:panic"));
        assert_eq!(get("ingesta.error.message"), Some("boom"));
        assert_eq!(get("ingesta.error.attempts"), Some("3"));
    }
}
