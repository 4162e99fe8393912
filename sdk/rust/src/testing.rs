//! Running handlers natively, for unit tests (not built for `wasm32`).
//!
//! ```
//! # use ingesta::prelude::*;
//! # #[derive(Default)]
//! # struct Upper;
//! # impl Handler for Upper {
//! #     fn on_record(&mut self, record: &Record) -> Result<()> {
//! #         emit("shouty", record.key(), record.value_str()?.to_uppercase());
//! #         Ok(())
//! #     }
//! # }
//! use ingesta::testing::{self, TestBatch};
//!
//! // In a #[test] function:
//! let batch = TestBatch::new("words", 0).record("k", "hi").record("k", "yo");
//! let out = testing::run(&mut Upper, &batch).unwrap();
//! assert_eq!(out[0].value_str(), Some("HI"));
//! assert_eq!(out[1].topic, "shouty");
//! ```
//!
//! The stand-in host keeps its state (configuration, captured logs) per
//! thread, and the test harness runs each test on its own thread, so tests
//! do not see each other's setup.

use crate::batch::{Batch, TimestampType};
use crate::emit::{self, Payload};
use crate::error::{Error, Result};
use crate::handler::{self, Handler};
use crate::host::imp::with_host;
use crate::log::Level;
use crate::producer::{self, Producer, Request, Response, Tick};
use crate::wit;
use ingesta_abi::{HeaderEntry, OutgoingEntry, RecordEntry, Span, Timestamp};

/// A batch assembled in memory, laid out exactly as the host sends one.
#[derive(Clone, Debug)]
pub struct TestBatch {
    pub(crate) raw: wit::Batch,
    next_offset: i64,
    /// Header entries in `raw.headers`.
    headers: u32,
}

impl TestBatch {
    /// An empty batch from `topic`/`partition`; records get offsets from 0.
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            raw: wit::Batch {
                topic: topic.to_owned(),
                partition,
                data: Vec::new(),
                records: Vec::new(),
                headers: Vec::new(),
            },
            next_offset: 0,
            headers: 0,
        }
    }

    /// The next record added gets `offset` (later ones count up from it).
    pub fn at_offset(mut self, offset: i64) -> Self {
        self.next_offset = offset;
        self
    }

    /// Adds a record with no headers and no timestamp.
    pub fn record(self, key: impl Payload, value: impl Payload) -> Self {
        self.push(TestRecord::new(key, value))
    }

    /// Adds a fully specified record.
    pub fn push(mut self, record: TestRecord) -> Self {
        let offset = record.offset.unwrap_or(self.next_offset);
        self.next_offset = offset + 1;
        let data = &mut self.raw.data;
        let header_start = self.headers;
        for (name, value) in &record.headers {
            HeaderEntry {
                name: Span::append(data, name.as_bytes()),
                value: value.as_deref().map(|v| Span::append(data, v)),
            }
            .encode(&mut self.raw.headers);
            self.headers += 1;
        }
        let key = record.key.as_deref().map(|k| Span::append(data, k));
        let value = record.value.as_deref().map(|v| Span::append(data, v));
        let timestamp = match record.timestamp {
            None | Some((_, TimestampType::NotAvailable)) => Timestamp::NotAvailable,
            Some((ts, TimestampType::CreateTime)) => Timestamp::CreateTime(ts),
            Some((ts, TimestampType::LogAppendTime)) => Timestamp::LogAppendTime(ts),
        };
        RecordEntry {
            offset,
            timestamp,
            key,
            value,
            header_start,
            header_count: self.headers - header_start,
        }
        .encode(&mut self.raw.records);
        self
    }

    /// The batch as a handler sees it, e.g. to call `on_record` directly.
    pub fn as_batch(&self) -> Batch<'_> {
        Batch::new(&self.raw)
    }
}

/// One record for a [`TestBatch`].
#[derive(Clone, Debug, Default)]
pub struct TestRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<(i64, TimestampType)>,
    offset: Option<i64>,
}

impl TestRecord {
    /// A record with this key and value (`()` or `None` for null).
    pub fn new(key: impl Payload, value: impl Payload) -> Self {
        Self {
            key: owned(key),
            value: owned(value),
            ..Self::default()
        }
    }

    /// Appends a header.
    pub fn header(mut self, name: &str, value: impl Payload) -> Self {
        self.headers.push((name.to_owned(), owned(value)));
        self
    }

    /// Sets the timestamp (milliseconds since the Unix epoch) and its kind.
    pub fn timestamp(mut self, millis: i64, kind: TimestampType) -> Self {
        self.timestamp = Some((millis, kind));
        self
    }

    /// Overrides the offset (otherwise the batch assigns the next one).
    pub fn offset(mut self, offset: i64) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// A record the handler published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emitted {
    /// Destination topic.
    pub topic: String,
    /// Key bytes, `None` for null.
    pub key: Option<Vec<u8>>,
    /// Value bytes, `None` for null.
    pub value: Option<Vec<u8>>,
    /// Headers in order, values `None` for null.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Emitted {
    /// The key as text; `None` if null. Panics if it is not UTF-8.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .map(|k| std::str::from_utf8(k).expect("key is not UTF-8"))
    }

    /// The value as text; `None` if null. Panics if it is not UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .map(|v| std::str::from_utf8(v).expect("value is not UTF-8"))
    }

    /// The value parsed as JSON. Panics if it is null or not JSON.
    pub fn value_json(&self) -> serde_json::Value {
        let value = self.value.as_deref().expect("value is null");
        serde_json::from_slice(value).expect("value is not JSON")
    }
}

/// Runs one call of `handler` on `batch`, as the runner would: on success,
/// returns every record the call published, in order; on failure, returns
/// the handler's error (and, as with the real host, publishes nothing).
///
/// Emits made outside a call (say, in an earlier test on this thread without
/// `run`) are discarded first.
pub fn run<H: Handler>(handler: &mut H, batch: &TestBatch) -> Result<Vec<Emitted>> {
    let (result, out) = capture(|sink| handler::run(handler, &batch.raw, sink));
    result.map(|()| out)
}

/// Runs one request through `producer`, as the runner would: on success,
/// the response and every record the call published (none for a status of
/// 400 or more, not even records flushed early); on failure, the
/// producer's error. A status outside 200..=599 is the permanent error the
/// runner reports for it (`the module answered with status S, which is not
/// a final HTTP status (200-599); nothing was published`).
pub fn run_request<P: Producer>(
    producer: &mut P,
    request: &Request,
) -> Result<(Response, Vec<Emitted>)> {
    let (result, out) = capture(|sink| producer::run_request(producer, request, sink));
    let response = result?;
    match response.status {
        200..=399 => Ok((response, out)),
        // The runner publishes nothing of a refusal, early flushes included.
        400..=599 => Ok((response, Vec::new())),
        other => Err(Error::permanent(format!(
            "the module answered with status {other}, which is not a final HTTP status \
             (200-599); nothing was published"
        ))),
    }
}

/// Runs one tick through `producer`, as the runner would: on success, every
/// record the call published; on failure, the producer's error.
pub fn run_tick<P: Producer>(producer: &mut P, tick: &Tick) -> Result<Vec<Emitted>> {
    let (result, out) = capture(|sink| producer::run_tick(producer, tick, sink));
    result.map(|()| out)
}

/// Runs `call` against the stand-in host and collects what it published.
fn capture<R>(
    call: impl FnOnce(&mut dyn FnMut(&wit::Outbox) -> Result<()>) -> R,
) -> (R, Vec<Emitted>) {
    emit::outbox(|outbox| outbox.discard());
    with_host(|host| host.emitted.clear());
    let result = call(&mut crate::host::emit);
    let outboxes = with_host(|host| std::mem::take(&mut host.emitted));
    (result, outboxes.iter().flat_map(decode).collect())
}

/// Sets the deployment configuration seen by `ingesta::config`.
pub fn set_config<K, V>(entries: impl IntoIterator<Item = (K, V)>)
where
    K: Into<String>,
    V: Into<String>,
{
    let entries = entries
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    with_host(|host| host.config = entries);
    crate::config::reset_cache();
}

/// Makes the stand-in host refuse outboxes that name `topic`, as the real
/// one does for a topic the deployment is not granted; `None` lifts it.
pub fn deny_topic(topic: Option<&str>) {
    with_host(|host| host.deny_topic = topic.map(str::to_owned));
}

/// Takes the log lines written so far on this thread.
pub fn take_logs() -> Vec<(Level, String)> {
    with_host(|host| std::mem::take(&mut host.logs))
}

/// Reads an outbox back into records, checking every span on the way.
pub(crate) fn decode(outbox: &wit::Outbox) -> Vec<Emitted> {
    let bytes = |span: Span| {
        span.get(&outbox.data)
            .expect("span points outside the outbox")
            .to_vec()
    };
    assert!(
        outbox
            .records
            .len()
            .is_multiple_of(ingesta_abi::OUTGOING_ENTRY_SIZE)
    );
    (0..OutgoingEntry::count(&outbox.records))
        .map(|i| {
            let entry = OutgoingEntry::read(&outbox.records, i).unwrap();
            let headers = (entry.header_start..entry.header_start + entry.header_count)
                .map(|h| {
                    let h = HeaderEntry::read(&outbox.headers, h as usize)
                        .expect("header index points outside the outbox");
                    let name = String::from_utf8(bytes(h.name)).expect("header name is not UTF-8");
                    (name, h.value.map(bytes))
                })
                .collect();
            Emitted {
                topic: outbox.topics[entry.topic as usize].clone(),
                key: entry.key.map(bytes),
                value: entry.value.map(bytes),
                headers,
            }
        })
        .collect()
}

fn owned(payload: impl Payload) -> Option<Vec<u8>> {
    payload.into_payload().map(|bytes| bytes.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::{FLUSH_THRESHOLD, emit};

    /// Emits `size` bytes (over the early-flush threshold if asked) and
    /// answers `status`.
    #[derive(Default)]
    struct Answer {
        status: u16,
        size: usize,
    }

    impl Producer for Answer {
        fn on_request(&mut self, _: &Request) -> Result<Response> {
            emit("big", "k", vec![b'x'; self.size]);
            Ok(Response::new(self.status))
        }
    }

    fn answer(status: u16, size: usize) -> Result<(Response, Vec<Emitted>)> {
        run_request(&mut Answer { status, size }, &Request::new("POST", "/", ""))
    }

    #[test]
    fn run_request_follows_the_runners_status_rules() {
        let big = FLUSH_THRESHOLD + 1;
        // A refusal publishes nothing, not even what was flushed early.
        let (resp, out) = answer(409, big).unwrap();
        assert_eq!((resp.status, out.len()), (409, 0));
        assert_eq!(answer(200, big).unwrap().1.len(), 1);
        assert_eq!(answer(399, 1).unwrap().1.len(), 1);
        assert_eq!(answer(599, 1).unwrap().1.len(), 0);
        for status in [0, 101, 199, 600, 999] {
            let err = answer(status, 1).unwrap_err();
            assert!(!err.is_retryable());
            assert_eq!(
                err.message(),
                format!(
                    "the module answered with status {status}, which is not a final HTTP \
                     status (200-599); nothing was published"
                )
            );
        }
    }
}
