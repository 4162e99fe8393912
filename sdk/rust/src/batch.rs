//! Borrowed views over the WIT `batch`: [`Batch`], [`Record`] and headers.
//!
//! The host sends a batch as one byte buffer plus fixed-size entries that
//! point into it (layout in `ingesta_abi`); these views decode an entry when
//! a record is visited and resolve its spans on access, so handling a record
//! never copies or allocates.

use std::iter::FusedIterator;

use serde::Deserialize;

use ingesta_abi::{HeaderEntry, RecordEntry, Span, Timestamp};

use crate::error::{Error, Result};
use crate::wit;

/// Consecutive records from one partition of one topic, in offset order.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    raw: &'a wit::Batch,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(raw: &'a wit::Batch) -> Self {
        Self { raw }
    }

    /// The topic the records were read from.
    pub fn topic(&self) -> &'a str {
        &self.raw.topic
    }

    /// The partition the records were read from.
    pub fn partition(&self) -> i32 {
        self.raw.partition
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        RecordEntry::count(&self.raw.records)
    }

    /// Whether the batch has no records (the runner never sends one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<Record<'a>> {
        RecordEntry::read(&self.raw.records, index).map(|entry| Record {
            batch: self.raw,
            entry,
            index,
        })
    }

    /// The records, in offset order.
    pub fn records(&self) -> Records<'a> {
        Records {
            batch: self.raw,
            indices: 0..self.len(),
        }
    }

    /// Offset of the first record.
    pub fn first_offset(&self) -> Option<i64> {
        self.get(0).map(|r| r.offset())
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> Option<i64> {
        self.get(self.len().checked_sub(1)?).map(|r| r.offset())
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("len", &self.len())
            .field("first_offset", &self.first_offset())
            .field("last_offset", &self.last_offset())
            .finish()
    }
}

impl<'a> IntoIterator for &Batch<'a> {
    type Item = Record<'a>;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.records()
    }
}

/// Iterator over a batch's records; see [`Batch::records`].
#[derive(Clone)]
pub struct Records<'a> {
    batch: &'a wit::Batch,
    indices: std::ops::Range<usize>,
}

impl<'a> Records<'a> {
    fn record(&self, index: usize) -> Record<'a> {
        Record {
            batch: self.batch,
            entry: RecordEntry::read(&self.batch.records, index)
                .expect("index is within the batch"),
            index,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        self.indices.next().map(|i| self.record(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.indices.size_hint()
    }

    fn nth(&mut self, n: usize) -> Option<Record<'a>> {
        self.indices.nth(n).map(|i| self.record(i))
    }
}

impl DoubleEndedIterator for Records<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.indices.next_back().map(|i| self.record(i))
    }
}

impl ExactSizeIterator for Records<'_> {}
impl FusedIterator for Records<'_> {}

/// What a record's timestamp means (Kafka's `timestampType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// The broker had no timestamp for the record.
    NotAvailable,
    /// Set by the producer when the record was created.
    CreateTime,
    /// Set by the broker when the record was appended to the log.
    LogAppendTime,
}

/// One consumed Kafka record: a borrowed view into its batch.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    batch: &'a wit::Batch,
    entry: RecordEntry,
    index: usize,
}

impl<'a> Record<'a> {
    /// The topic the record was read from.
    pub fn topic(&self) -> &'a str {
        &self.batch.topic
    }

    /// The partition the record was read from.
    pub fn partition(&self) -> i32 {
        self.batch.partition
    }

    /// The record's offset in its partition.
    pub fn offset(&self) -> i64 {
        self.entry.offset
    }

    /// The record's position in its batch; pass it to [`Error::at_record`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Milliseconds since the Unix epoch, or `None` when the broker had no
    /// timestamp. See [`timestamp_type`](Self::timestamp_type) for its meaning.
    pub fn timestamp(&self) -> Option<i64> {
        match self.entry.timestamp {
            Timestamp::NotAvailable => None,
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
        }
    }

    /// Whether the timestamp was set by the producer or the broker.
    pub fn timestamp_type(&self) -> TimestampType {
        match self.entry.timestamp {
            Timestamp::NotAvailable => TimestampType::NotAvailable,
            Timestamp::CreateTime(_) => TimestampType::CreateTime,
            Timestamp::LogAppendTime(_) => TimestampType::LogAppendTime,
        }
    }

    /// The key bytes, or `None` for a null key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.entry.key.map(|span| self.bytes(span))
    }

    /// The value bytes, or `None` for a tombstone (null value).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.entry.value.map(|span| self.bytes(span))
    }

    /// The key as UTF-8 text; a permanent error if it is null or not UTF-8.
    pub fn key_str(&self) -> Result<&'a str> {
        self.text("key", self.key())
    }

    /// The value as UTF-8 text; a permanent error if it is null or not UTF-8.
    pub fn value_str(&self) -> Result<&'a str> {
        self.text("value", self.value())
    }

    /// Deserializes the value as JSON.
    ///
    /// A null value or invalid JSON is a permanent error that names the
    /// record and carries its index. `T` may borrow from the batch
    /// (`&'a str` fields), which avoids copying strings.
    pub fn json<T: Deserialize<'a>>(&self) -> Result<T> {
        let bytes = self
            .value()
            .ok_or_else(|| self.error(format_args!("value is null")))?;
        serde_json::from_slice(bytes)
            .map_err(|e| self.error(format_args!("value is not valid JSON: {e}")))
    }

    /// The record's headers in their original order, as `(name, value)`
    /// with `None` for a null header value.
    pub fn headers(&self) -> Headers<'a> {
        let start = self.entry.header_start as usize;
        Headers {
            data: &self.batch.data,
            entries: &self.batch.headers,
            indices: start..start + self.entry.header_count as usize,
        }
    }

    /// The value of the last header called `name` (Kafka's `lastHeader`);
    /// `None` if there is none or its value is null.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .rev()
            .find(|(n, _)| *n == name)
            .and_then(|(_, value)| value)
    }

    /// A permanent error about this record: names its topic, partition and
    /// offset and carries its index.
    pub fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::permanent(format!(
            "{reason} (topic {}, partition {}, offset {})",
            self.topic(),
            self.partition(),
            self.offset()
        ))
        .at_record(self.index)
    }

    fn bytes(&self, span: Span) -> &'a [u8] {
        // The host builds every span inside `data`.
        span.get(&self.batch.data).unwrap_or_default()
    }

    fn text(&self, what: &str, bytes: Option<&'a [u8]>) -> Result<&'a str> {
        let bytes = bytes.ok_or_else(|| self.error(format_args!("{what} is null")))?;
        std::str::from_utf8(bytes).map_err(|e| self.error(format_args!("{what} is not UTF-8: {e}")))
    }
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("topic", &self.topic())
            .field("partition", &self.partition())
            .field("offset", &self.offset())
            .field("index", &self.index)
            .field("timestamp", &self.timestamp())
            .field("key_len", &self.key().map(<[u8]>::len))
            .field("value_len", &self.value().map(<[u8]>::len))
            .field("headers", &self.entry.header_count)
            .finish()
    }
}

/// Iterator over a record's headers; see [`Record::headers`].
#[derive(Clone)]
pub struct Headers<'a> {
    data: &'a [u8],
    entries: &'a [u8],
    indices: std::ops::Range<usize>,
}

impl<'a> Headers<'a> {
    fn resolve(&self, index: usize) -> Option<(&'a str, Option<&'a [u8]>)> {
        let entry = HeaderEntry::read(self.entries, index)?;
        let name = entry.name.get(self.data).unwrap_or_default();
        // The host guarantees UTF-8 names; should one slip through, a
        // replacement character is kinder than trapping on every retry.
        let name = std::str::from_utf8(name).unwrap_or("\u{FFFD}");
        Some((
            name,
            entry
                .value
                .map(|span| span.get(self.data).unwrap_or_default()),
        ))
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let index = self.indices.next()?;
        self.resolve(index)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.indices.size_hint()
    }
}

impl DoubleEndedIterator for Headers<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let index = self.indices.next_back()?;
        self.resolve(index)
    }
}

impl ExactSizeIterator for Headers<'_> {}
impl FusedIterator for Headers<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestBatch, TestRecord};

    fn sample() -> TestBatch {
        TestBatch::new("user-activity", 3)
            .at_offset(100)
            .push(
                TestRecord::new("k1", "{\"n\":1}")
                    .header("trace-id", "abc")
                    .header("empty", ())
                    .header("trace-id", "def")
                    .timestamp(1_732_460_000_000, TimestampType::CreateTime),
            )
            .record((), ())
            .push(TestRecord::new(&[0xff, 0xfe], "x").timestamp(42, TimestampType::LogAppendTime))
    }

    #[test]
    fn batch_exposes_topic_partition_and_records() {
        let owned = sample();
        let batch = owned.as_batch();
        assert_eq!(batch.topic(), "user-activity");
        assert_eq!(batch.partition(), 3);
        assert_eq!(batch.len(), 3);
        assert!(!batch.is_empty());
        assert_eq!(batch.first_offset(), Some(100));
        assert_eq!(batch.last_offset(), Some(102));
        let offsets: Vec<i64> = batch.records().map(|r| r.offset()).collect();
        assert_eq!(offsets, [100, 101, 102]);
        let indices: Vec<usize> = batch.records().rev().map(|r| r.index()).collect();
        assert_eq!(indices, [2, 1, 0]);
        assert_eq!(batch.records().len(), 3);
        assert_eq!(batch.get(1).map(|r| r.offset()), Some(101));
        assert!(batch.get(3).is_none());
        assert_eq!((&batch).into_iter().count(), 3);
    }

    #[test]
    fn record_resolves_key_value_spans() {
        let owned = sample();
        let batch = owned.as_batch();
        let r = batch.get(0).unwrap();
        assert_eq!(r.topic(), "user-activity");
        assert_eq!(r.partition(), 3);
        assert_eq!(r.key(), Some(&b"k1"[..]));
        assert_eq!(r.key_str(), Ok("k1"));
        assert_eq!(r.value_str(), Ok("{\"n\":1}"));
    }

    #[test]
    fn null_key_and_value_are_none() {
        let owned = sample();
        let r = owned.as_batch().get(1).unwrap();
        assert_eq!(r.key(), None);
        assert_eq!(r.value(), None);
        assert_eq!(r.headers().len(), 0);
        let err = r.value_str().unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.message(),
            "value is null (topic user-activity, partition 3, offset 101)"
        );
        assert_eq!(err.record_index(), Some(1));
        assert_eq!(
            r.key_str().unwrap_err().message(),
            "key is null (topic user-activity, partition 3, offset 101)"
        );
    }

    #[test]
    fn non_utf8_text_is_a_permanent_error() {
        let owned = sample();
        let r = owned.as_batch().get(2).unwrap();
        assert_eq!(r.key(), Some(&[0xff, 0xfe][..]));
        let err = r.key_str().unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.record_index(), Some(2));
        assert!(
            err.message().starts_with("key is not UTF-8: invalid utf-8"),
            "{}",
            err.message()
        );
        assert!(
            err.message()
                .ends_with("(topic user-activity, partition 3, offset 102)")
        );
    }

    #[test]
    fn timestamps_follow_their_type() {
        let owned = sample();
        let batch = owned.as_batch();
        let [a, b, c] = [0, 1, 2].map(|i| batch.get(i).unwrap());
        assert_eq!(a.timestamp(), Some(1_732_460_000_000));
        assert_eq!(a.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(b.timestamp(), None);
        assert_eq!(b.timestamp_type(), TimestampType::NotAvailable);
        assert_eq!(c.timestamp(), Some(42));
        assert_eq!(c.timestamp_type(), TimestampType::LogAppendTime);
    }

    #[test]
    fn headers_keep_order_nulls_and_duplicates() {
        let owned = sample();
        let r = owned.as_batch().get(0).unwrap();
        let headers: Vec<_> = r.headers().collect();
        assert_eq!(
            headers,
            [
                ("trace-id", Some(&b"abc"[..])),
                ("empty", None),
                ("trace-id", Some(&b"def"[..])),
            ]
        );
        assert_eq!(r.header("trace-id"), Some(&b"def"[..]), "last one wins");
        assert_eq!(r.header("empty"), None);
        assert_eq!(r.header("missing"), None);
    }

    #[test]
    fn json_deserializes_owned_and_borrowed() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct N {
            n: u32,
        }
        #[derive(serde::Deserialize)]
        struct Borrowed<'a> {
            name: &'a str,
        }
        let owned = sample();
        let batch = owned.as_batch();
        assert_eq!(batch.get(0).unwrap().json::<N>(), Ok(N { n: 1 }));

        let owned = TestBatch::new("t", 0).record((), r#"{"name":"Trekking"}"#);
        let batch = owned.as_batch();
        let r = batch.get(0).unwrap();
        assert_eq!(r.json::<Borrowed<'_>>().unwrap().name, "Trekking");
    }

    #[test]
    fn bad_json_names_the_record() {
        let owned = TestBatch::new("t", 7).at_offset(9).record((), "{oops");
        let err = owned
            .as_batch()
            .get(0)
            .unwrap()
            .json::<serde_json::Value>()
            .unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.record_index(), Some(0));
        assert!(
            err.message()
                .starts_with("value is not valid JSON: key must be a string")
        );
        assert!(err.message().ends_with("(topic t, partition 7, offset 9)"));

        let owned = TestBatch::new("t", 7).record((), ());
        let err = owned.as_batch().get(0).unwrap().json::<u8>().unwrap_err();
        assert_eq!(
            err.message(),
            "value is null (topic t, partition 7, offset 0)"
        );
    }

    #[test]
    fn spans_into_a_shared_buffer_resolve_independently() {
        // Hand-built layout: two records sharing one buffer, a header whose
        // bytes sit before the keys, and a zero-length (empty, not null) value.
        let mut records = Vec::new();
        RecordEntry {
            offset: 5,
            timestamp: Timestamp::NotAvailable,
            key: Some(Span { start: 6, len: 4 }),
            value: Some(Span { start: 14, len: 0 }),
            header_start: 0,
            header_count: 1,
        }
        .encode(&mut records);
        RecordEntry {
            offset: 6,
            timestamp: Timestamp::NotAvailable,
            key: Some(Span { start: 10, len: 4 }),
            value: None,
            header_start: 1,
            header_count: 0,
        }
        .encode(&mut records);
        let mut headers = Vec::new();
        HeaderEntry {
            name: Span { start: 0, len: 3 },
            value: Some(Span { start: 3, len: 3 }),
        }
        .encode(&mut headers);
        let raw = wit::Batch {
            topic: "t".into(),
            partition: 0,
            data: b"hdrvalkeyAkeyB".to_vec(),
            records,
            headers,
        };
        let batch = Batch::new(&raw);
        let a = batch.get(0).unwrap();
        assert_eq!(a.key_str(), Ok("keyA"));
        assert_eq!(a.value(), Some(&b""[..]));
        assert_eq!(
            a.headers().collect::<Vec<_>>(),
            [("hdr", Some(&b"val"[..]))]
        );
        let b = batch.get(1).unwrap();
        assert_eq!(b.key_str(), Ok("keyB"));
        assert_eq!(b.value(), None);
        assert_eq!(b.headers().count(), 0);
    }
}
