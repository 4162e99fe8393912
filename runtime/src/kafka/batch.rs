//! Building a WIT [`Batch`] straight from borrowed Kafka messages.
//!
//! Keys, values and header bytes are appended to one buffer and described by
//! spans, so a record costs one copy into the buffer and no allocation; the
//! whole buffer then crosses into the guest as a single `list<u8>`.

use std::time::Instant;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

use crate::wasm::bindings::{Batch, HeaderEntry, RecordEntry, Span, TimestampType};

/// Accumulates consecutive records of one partition into a batch.
pub struct BatchBuilder {
    batch: Batch,
    /// When the first record arrived; a partial batch is handed over once
    /// it is older than the deployment's `max_wait`.
    started: Instant,
}

impl BatchBuilder {
    /// An empty builder for `topic`/`partition`.
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            batch: Batch {
                topic: topic.to_owned(),
                partition,
                data: Vec::new(),
                records: Vec::new(),
                headers: Vec::new(),
            },
            started: Instant::now(),
        }
    }

    /// Append one message (which must belong to this builder's partition).
    pub fn push(&mut self, msg: &BorrowedMessage<'_>) {
        if self.batch.records.is_empty() {
            self.started = Instant::now();
        }
        let (timestamp_type, timestamp) = match msg.timestamp() {
            rdkafka::Timestamp::NotAvailable => (TimestampType::NotAvailable, 0),
            rdkafka::Timestamp::CreateTime(t) => (TimestampType::CreateTime, t),
            rdkafka::Timestamp::LogAppendTime(t) => (TimestampType::LogAppendTime, t),
        };
        let key = msg.key().map(|k| self.append(k));
        let value = msg.payload().map(|v| self.append(v));
        let header_start = self.batch.headers.len() as u32;
        if let Some(headers) = msg.headers() {
            for h in headers.iter() {
                let key = self.append(h.key.as_bytes());
                let value = h.value.map(|v| self.append(v));
                self.batch.headers.push(HeaderEntry { key, value });
            }
        }
        let header_count = self.batch.headers.len() as u32 - header_start;
        self.batch.records.push(RecordEntry {
            offset: msg.offset(),
            timestamp,
            timestamp_type,
            key,
            value,
            header_start,
            header_count,
        });
    }

    fn append(&mut self, bytes: &[u8]) -> Span {
        let start = self.batch.data.len() as u32;
        self.batch.data.extend_from_slice(bytes);
        Span {
            start,
            len: bytes.len() as u32,
        }
    }

    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.batch.records.len()
    }

    /// Whether no record has been added.
    pub fn is_empty(&self) -> bool {
        self.batch.records.is_empty()
    }

    /// Bytes of keys, values and headers so far.
    pub fn bytes(&self) -> usize {
        self.batch.data.len()
    }

    /// When the first record of the current batch arrived.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Hand over the batch and start an empty one for the same partition.
    pub fn take(&mut self) -> Batch {
        let empty = Batch {
            topic: self.batch.topic.clone(),
            partition: self.batch.partition,
            data: Vec::with_capacity(self.batch.data.capacity()),
            records: Vec::with_capacity(self.batch.records.capacity()),
            headers: Vec::new(),
        };
        std::mem::replace(&mut self.batch, empty)
    }
}
