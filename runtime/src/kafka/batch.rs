//! Building a WIT [`Batch`] straight from borrowed Kafka messages.
//!
//! Keys, values and header bytes are appended to one buffer and described by
//! fixed-size entries (`ingesta_abi`), so a record costs one copy into the
//! buffer and no allocation, and the whole batch crosses into the guest as
//! three byte lists.

use std::time::Instant;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

use ingesta_abi::{HeaderEntry, RecordEntry, Span, Timestamp};

use crate::wasm::bindings::Batch;

/// Accumulates consecutive records of one partition into a batch.
pub struct BatchBuilder {
    batch: Batch,
    /// When the first record arrived; a partial batch is handed over once
    /// it is older than the deployment's `max_wait`.
    started: Instant,
    /// Entries in `batch.records` and `batch.headers`.
    records: usize,
    headers: u32,
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
            records: 0,
            headers: 0,
        }
    }

    /// Append one message (which must belong to this builder's partition).
    pub fn push(&mut self, msg: &BorrowedMessage<'_>) {
        if self.records == 0 {
            self.started = Instant::now();
        }
        let timestamp = match msg.timestamp() {
            rdkafka::Timestamp::NotAvailable => Timestamp::NotAvailable,
            rdkafka::Timestamp::CreateTime(t) => Timestamp::CreateTime(t),
            rdkafka::Timestamp::LogAppendTime(t) => Timestamp::LogAppendTime(t),
        };
        let data = &mut self.batch.data;
        let key = msg.key().map(|k| Span::append(data, k));
        let value = msg.payload().map(|v| Span::append(data, v));
        let header_start = self.headers;
        if let Some(headers) = msg.headers() {
            for h in headers.iter() {
                HeaderEntry {
                    name: Span::append(data, h.key.as_bytes()),
                    value: h.value.map(|v| Span::append(data, v)),
                }
                .encode(&mut self.batch.headers);
                self.headers += 1;
            }
        }
        RecordEntry {
            offset: msg.offset(),
            timestamp,
            key,
            value,
            header_start,
            header_count: self.headers - header_start,
        }
        .encode(&mut self.batch.records);
        self.records += 1;
    }

    /// Number of records so far.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether no record has been added.
    pub fn is_empty(&self) -> bool {
        self.records == 0
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
        self.records = 0;
        self.headers = 0;
        std::mem::replace(&mut self.batch, empty)
    }
}
