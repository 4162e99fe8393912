//! Publishing: [`emit`], [`emit_json`], [`forward`], [`Message`] and the
//! per-instance outbox they append to.
//!
//! Every emitted record goes into one outbox laid out like the WIT `outbox`
//! (one byte buffer plus spans), so the whole batch's output crosses to the
//! host in a single `emit` call. Buffers are cleared, not freed, after each
//! flush: once warm, emitting does not allocate.

use std::borrow::Cow;
use std::cell::RefCell;
use std::convert::Infallible;

use serde::Serialize;

use ingesta_abi::{HeaderEntry, OutgoingEntry, Span};

use crate::batch::Record;
use crate::error::{Error, Result};
use crate::host;
use crate::wit;

/// Buffered output above which the outbox is handed to the host early, to
/// bound guest memory on batches that fan out heavily.
pub(crate) const FLUSH_THRESHOLD: usize = 4 << 20;

/// Bytes a record key, value or header value can be published from.
///
/// Implemented for text (`&str`, `String`), bytes (`&[u8]`, `Vec<u8>`,
/// `&[u8; N]`), `Cow`s of both, `Option<T>` (where `None` is null) and `()`
/// (null). Owned values are taken without copying; their bytes are copied
/// once, into the outbox.
pub trait Payload {
    /// The bytes, or `None` for a null key or value.
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p;
}

impl Payload for () {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>> {
        None
    }
}

impl<T: Payload> Payload for Option<T> {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p,
    {
        self.and_then(T::into_payload)
    }
}

impl Payload for &str {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p,
    {
        Some(Cow::Borrowed(self.as_bytes()))
    }
}

impl Payload for &String {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p,
    {
        Some(Cow::Borrowed(self.as_bytes()))
    }
}

impl Payload for String {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>> {
        Some(Cow::Owned(self.into_bytes()))
    }
}

impl Payload for Cow<'_, str> {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p,
    {
        Some(match self {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        })
    }
}

impl Payload for &[u8] {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p,
    {
        Some(Cow::Borrowed(self))
    }
}

impl<const N: usize> Payload for &[u8; N] {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p,
    {
        Some(Cow::Borrowed(self.as_slice()))
    }
}

impl Payload for &Vec<u8> {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p,
    {
        Some(Cow::Borrowed(self.as_slice()))
    }
}

impl Payload for Vec<u8> {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>> {
        Some(Cow::Owned(self))
    }
}

impl Payload for Cow<'_, [u8]> {
    fn into_payload<'p>(self) -> Option<Cow<'p, [u8]>>
    where
        Self: 'p,
    {
        Some(self)
    }
}

/// Publishes a record to `topic` when the current call succeeds.
///
/// `key` and `value` are anything that implements [`Payload`]; pass `()` or
/// `None` for null. Records are published in emit order.
///
/// Output is handed to the host in one piece when the handler returns (or
/// earlier, if it passes 4 MiB). Should the host refuse it (a topic the
/// deployment is not granted, an output limit), the call fails with a
/// permanent error carrying the host's reason, and later emits of the call
/// are dropped.
///
/// ```
/// # use ingesta::{Record, emit};
/// # fn handle(record: &Record) {
/// emit("greetings", "user-1", "hello");
/// emit("copies", record.key(), record.value());
/// emit("deletions", record.key(), ()); // a tombstone
/// # }
/// ```
pub fn emit(topic: &str, key: impl Payload, value: impl Payload) {
    let key = key.into_payload();
    let value = value.into_payload();
    let Ok(()) = with_outbox(|outbox| {
        outbox.push(
            topic,
            key.as_deref(),
            copy_value(value.as_deref()),
            no_headers(),
        )
    });
}

/// Publishes `value` serialized as JSON to `topic` when the current call
/// succeeds.
///
/// The JSON is written straight into the outbox. A value that cannot be
/// serialized (a map with non-string keys, a failing `Serialize` impl)
/// returns a permanent error and emits nothing.
pub fn emit_json<T: Serialize + ?Sized>(topic: &str, key: impl Payload, value: &T) -> Result<()> {
    let key = key.into_payload();
    let write_json = |data: &mut Vec<u8>| {
        serde_json::to_writer(data, value)
            .map(|()| true)
            .map_err(|e| Error::permanent(format!("cannot serialize a record for {topic}: {e}")))
    };
    with_outbox(|outbox| outbox.push(topic, key.as_deref(), write_json, no_headers()))
}

/// Re-publishes a consumed record (key, value and headers, byte for byte)
/// to `topic` when the current call succeeds.
pub fn forward(topic: &str, record: &Record<'_>) {
    Message::to(topic)
        .key(record.key())
        .value(record.value())
        .headers_from(record)
        .emit();
}

/// A record to publish, built up step by step; use it when you need headers.
///
/// ```
/// # use ingesta::{Message, Record};
/// # fn handle(record: &Record, enriched_json: String) {
/// Message::to("orders-enriched")
///     .key(record.key())
///     .value(enriched_json)
///     .header("source-offset", record.offset().to_string())
///     .emit();
/// # }
/// ```
///
/// Nothing is published until [`emit`](Message::emit) is called. Unset keys
/// and values are null. A `Message` allocates only to hold headers added
/// with [`header`](Message::header); [`emit`] and [`forward`] never do.
#[must_use = "a Message is published only by calling .emit()"]
pub struct Message<'a> {
    topic: &'a str,
    key: Option<Cow<'a, [u8]>>,
    value: Option<Cow<'a, [u8]>>,
    headers: Vec<(&'a str, Option<Cow<'a, [u8]>>)>,
    forwarded: Option<Record<'a>>,
}

impl<'a> Message<'a> {
    /// Starts a record for `topic`, with a null key and value and no headers.
    pub fn to(topic: &'a str) -> Self {
        Self {
            topic,
            key: None,
            value: None,
            headers: Vec::new(),
            forwarded: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Payload + 'a) -> Self {
        self.key = key.into_payload();
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Payload + 'a) -> Self {
        self.value = value.into_payload();
        self
    }

    /// Appends a header; Kafka allows repeated names.
    pub fn header(mut self, name: &'a str, value: impl Payload + 'a) -> Self {
        self.headers.push((name, value.into_payload()));
        self
    }

    /// Carries over all of `record`'s headers, ahead of any added with
    /// [`header`](Self::header). Their bytes go straight from the batch into
    /// the outbox, with no allocation in between.
    pub fn headers_from(mut self, record: &Record<'a>) -> Self {
        self.forwarded = Some(*record);
        self
    }

    /// Queues the record for publishing.
    pub fn emit(self) {
        let Message {
            topic,
            key,
            value,
            headers,
            forwarded,
        } = self;
        let copied = forwarded.into_iter().flat_map(|r| r.headers());
        let added = headers
            .iter()
            .map(|(name, value)| (*name, value.as_deref()));
        let Ok(()) = with_outbox(|outbox| {
            outbox.push(
                topic,
                key.as_deref(),
                copy_value(value.as_deref()),
                copied.chain(added),
            )
        });
    }
}

/// The buffered output of the current call, in WIT layout.
pub(crate) struct Outbox {
    wire: wit::Outbox,
    /// Set when an early flush was refused: the host fails the call anyway,
    /// so later records are dropped and the batch reports this message.
    refused: Option<String>,
    /// Header entries in `wire.headers`.
    headers: u32,
}

impl Outbox {
    pub(crate) const fn new() -> Self {
        Self {
            wire: wit::Outbox {
                topics: Vec::new(),
                data: Vec::new(),
                records: Vec::new(),
                headers: Vec::new(),
            },
            refused: None,
            headers: 0,
        }
    }

    #[cfg(test)]
    fn wire(&self) -> &wit::Outbox {
        &self.wire
    }

    /// Appends one record. `write_value` writes the value straight into the
    /// data buffer and says whether there is one (`false` for null); if it
    /// fails, nothing is appended.
    pub(crate) fn push<'h, E>(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        write_value: impl FnOnce(&mut Vec<u8>) -> std::result::Result<bool, E>,
        headers: impl Iterator<Item = (&'h str, Option<&'h [u8]>)>,
    ) -> std::result::Result<(), E> {
        if self.refused.is_some() {
            return Ok(());
        }
        let mark = self.wire.data.len();
        let key = key.map(|bytes| Span::append(&mut self.wire.data, bytes));
        let value_start = self.wire.data.len();
        let value = match write_value(&mut self.wire.data) {
            Ok(true) => Some(span(value_start, self.wire.data.len() - value_start)),
            Ok(false) => None,
            Err(err) => {
                self.wire.data.truncate(mark);
                return Err(err);
            }
        };
        let header_start = self.headers;
        for (name, value) in headers {
            HeaderEntry {
                name: Span::append(&mut self.wire.data, name.as_bytes()),
                value: value.map(|bytes| Span::append(&mut self.wire.data, bytes)),
            }
            .encode(&mut self.wire.headers);
            self.headers += 1;
        }
        let topic = self.topic_index(topic);
        OutgoingEntry {
            topic,
            key,
            value,
            header_start,
            header_count: self.headers - header_start,
        }
        .encode(&mut self.wire.records);
        Ok(())
    }

    fn topic_index(&mut self, topic: &str) -> u32 {
        // Outboxes name a handful of topics; a scan beats hashing here.
        let index = match self.wire.topics.iter().position(|t| t == topic) {
            Some(index) => index,
            None => {
                self.wire.topics.push(topic.to_owned());
                self.wire.topics.len() - 1
            }
        };
        to_u32(index)
    }

    pub(crate) fn buffered_bytes(&self) -> usize {
        self.wire.data.len()
    }

    /// Hands the buffered records to `sink` (unless there are none) and
    /// clears the buffers, keeping their capacity. A refusal is remembered
    /// and reported by [`finish`](Self::finish).
    pub(crate) fn flush(&mut self, sink: &mut dyn FnMut(&wit::Outbox) -> Result<()>) {
        if self.refused.is_none()
            && !self.wire.records.is_empty()
            && let Err(err) = sink(&self.wire)
        {
            self.refused = Some(err.message().to_owned());
        }
        self.clear();
    }

    /// Flushes what is left and reports whether the host accepted all of
    /// this call's output. Leaves the outbox empty for the next call.
    pub(crate) fn finish(
        &mut self,
        sink: &mut dyn FnMut(&wit::Outbox) -> Result<()>,
    ) -> Result<()> {
        self.flush(sink);
        match self.refused.take() {
            Some(message) => Err(Error::permanent(message)),
            None => Ok(()),
        }
    }

    /// Drops buffered output and any refusal: the call failed, so the host
    /// publishes nothing of it regardless.
    pub(crate) fn discard(&mut self) {
        self.clear();
        self.refused = None;
    }

    fn clear(&mut self) {
        let wire = &mut self.wire;
        wire.topics.clear();
        wire.data.clear();
        wire.records.clear();
        wire.headers.clear();
        self.headers = 0;
    }
}

thread_local! {
    static OUTBOX: RefCell<Outbox> = const { RefCell::new(Outbox::new()) };
}

/// Runs `f` on this instance's outbox, then flushes early if it grew past
/// [`FLUSH_THRESHOLD`].
fn with_outbox<R>(f: impl FnOnce(&mut Outbox) -> R) -> R {
    OUTBOX.with_borrow_mut(|outbox| {
        let result = f(outbox);
        if outbox.buffered_bytes() >= FLUSH_THRESHOLD {
            outbox.flush(&mut host::emit);
        }
        result
    })
}

/// Ends a call: hands its buffered output to `sink` when `result` is `Ok`
/// and `publish` accepts the value, and drops it otherwise (the host
/// publishes nothing of a failed call anyway). Every export ends this way.
pub(crate) fn end_call<T>(
    result: Result<T>,
    publish: impl FnOnce(&T) -> bool,
    sink: &mut dyn FnMut(&wit::Outbox) -> Result<()>,
) -> Result<T> {
    outbox(|outbox| match result {
        Ok(value) if publish(&value) => outbox.finish(sink).map(|()| value),
        Ok(value) => {
            outbox.discard();
            Ok(value)
        }
        Err(err) => {
            outbox.discard();
            Err(err)
        }
    })
}

/// Gives the dispatcher (and tests) the outbox.
pub(crate) fn outbox<R>(f: impl FnOnce(&mut Outbox) -> R) -> R {
    OUTBOX.with_borrow_mut(f)
}

fn copy_value(
    value: Option<&[u8]>,
) -> impl FnOnce(&mut Vec<u8>) -> std::result::Result<bool, Infallible> {
    move |data| {
        if let Some(bytes) = value {
            data.extend_from_slice(bytes);
        }
        Ok(value.is_some())
    }
}

fn no_headers<'h>() -> std::iter::Empty<(&'h str, Option<&'h [u8]>)> {
    std::iter::empty()
}

fn span(start: usize, len: usize) -> Span {
    Span {
        start: to_u32(start),
        len: to_u32(len),
    }
}

fn to_u32(n: usize) -> u32 {
    // Early flushing keeps buffers far below 4 GiB; reaching it is a bug.
    u32::try_from(n).expect("outbox exceeds the 4 GiB the WIT layout can address")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::testing::{self, Emitted, TestBatch, TestRecord};

    fn payload(p: impl Payload) -> Option<Vec<u8>> {
        p.into_payload().map(Cow::into_owned)
    }

    /// Takes what this thread's outbox holds, leaving it empty.
    fn drain() -> wit::Outbox {
        outbox(|o| {
            let wire = o.wire().clone();
            o.discard();
            wire
        })
    }

    #[test]
    fn payload_impls() {
        let text = String::from("txt");
        let bytes = vec![1u8, 2];
        assert_eq!(payload("str"), Some(b"str".to_vec()));
        assert_eq!(payload(&text), Some(b"txt".to_vec()));
        assert_eq!(payload(text.clone()), Some(b"txt".to_vec()));
        assert_eq!(payload(Cow::Borrowed("cow")), Some(b"cow".to_vec()));
        assert_eq!(payload(&bytes[..]), Some(vec![1, 2]));
        assert_eq!(payload(&bytes), Some(vec![1, 2]));
        assert_eq!(payload(bytes.clone()), Some(vec![1, 2]));
        assert_eq!(payload(b"arr"), Some(b"arr".to_vec()));
        assert_eq!(payload(Cow::Borrowed(&b"cb"[..])), Some(b"cb".to_vec()));
        assert_eq!(payload(()), None);
        assert_eq!(payload(None::<&str>), None);
        assert_eq!(payload(Some("some")), Some(b"some".to_vec()));
        assert_eq!(payload(Some(&b""[..])), Some(vec![]), "empty is not null");
    }

    #[test]
    fn topics_are_deduplicated_in_first_use_order() {
        emit("a", "k1", "v1");
        emit("b", (), "v2");
        emit("a", "k3", ());
        let wire = drain();
        assert_eq!(wire.topics, ["a", "b"]);
        let topics: Vec<u32> = (0..OutgoingEntry::count(&wire.records))
            .map(|i| OutgoingEntry::read(&wire.records, i).unwrap().topic)
            .collect();
        assert_eq!(topics, [0, 1, 0]);
        assert_eq!(
            testing::decode(&wire),
            [
                emitted("a", Some("k1"), Some("v1"), &[]),
                emitted("b", None, Some("v2"), &[]),
                emitted("a", Some("k3"), None, &[]),
            ]
        );
    }

    #[test]
    fn spans_point_into_one_buffer() {
        emit("t", "key", "value");
        Message::to("t").value("v2").header("h", "hv").emit();
        let wire = drain();
        assert_eq!(wire.data, b"keyvaluev2hhv");
        let r = OutgoingEntry::read(&wire.records, 1).unwrap();
        assert_eq!((r.header_start, r.header_count), (0, 1));
        let h = HeaderEntry::read(&wire.headers, 0).unwrap();
        assert_eq!((h.name.start, h.name.len), (10, 1));
        assert_eq!(h.value.map(|v| (v.start, v.len)), Some((11, 2)));
    }

    #[test]
    fn message_builds_headers_in_order() {
        Message::to("out")
            .key("k")
            .value(String::from("v"))
            .header("a", "1")
            .header("nul", ())
            .header("a", b"2")
            .emit();
        Message::to("out").emit();
        assert_eq!(
            testing::decode(&drain()),
            [
                emitted(
                    "out",
                    Some("k"),
                    Some("v"),
                    &[("a", Some("1")), ("nul", None), ("a", Some("2"))]
                ),
                emitted("out", None, None, &[]),
            ]
        );
    }

    #[test]
    fn forward_copies_key_value_and_headers() {
        let batch = TestBatch::new("in", 0)
            .push(
                TestRecord::new("k", &[0u8, 159, 146, 150])
                    .header("x", "1")
                    .header("y", ()),
            )
            .record((), ());
        let batch = batch.as_batch();
        for record in batch.records() {
            forward("out", &record);
        }
        Message::to("out2")
            .value("v")
            .headers_from(&batch.get(0).unwrap())
            .header("added", "z")
            .emit();
        let out = testing::decode(&drain());
        assert_eq!(out[0].key, Some(b"k".to_vec()));
        assert_eq!(out[0].value, Some(vec![0, 159, 146, 150]));
        assert_eq!(
            out[0].headers,
            [
                ("x".to_owned(), Some(b"1".to_vec())),
                ("y".to_owned(), None)
            ]
        );
        assert_eq!(out[1], emitted("out", None, None, &[]));
        assert_eq!(
            out[2],
            emitted(
                "out2",
                None,
                Some("v"),
                &[("x", Some("1")), ("y", None), ("added", Some("z"))]
            )
        );
    }

    #[test]
    fn emit_json_writes_json_and_rolls_back_on_error() {
        #[derive(Serialize)]
        struct Stat<'a> {
            id: u32,
            name: &'a str,
        }
        emit_json("t", "1", &Stat { id: 1, name: "x" }).unwrap();
        let unserializable: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        let err = emit_json("t", "2", &unserializable).unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.message(),
            "cannot serialize a record for t: key must be a string"
        );
        let wire = drain();
        assert_eq!(
            wire.data, b"1{\"id\":1,\"name\":\"x\"}",
            "no trace of the failed record"
        );
        assert_eq!(OutgoingEntry::count(&wire.records), 1);
    }

    #[test]
    fn large_output_is_flushed_early() {
        let big = vec![b'x'; FLUSH_THRESHOLD / 2 + 1];
        emit("t", (), &big);
        assert!(testing_host_outboxes().is_empty(), "below the threshold");
        emit("t", (), &big);
        let flushed = testing_host_outboxes();
        assert_eq!(flushed.len(), 1);
        assert_eq!(OutgoingEntry::count(&flushed[0].records), 2);
        outbox(|o| assert_eq!(o.buffered_bytes(), 0, "buffers are reused after a flush"));
    }

    #[test]
    fn refused_flush_fails_the_call_and_drops_later_records() {
        testing::deny_topic(Some("secret"));
        emit("secret", (), vec![0u8; FLUSH_THRESHOLD]);
        emit("fine", (), "dropped");
        let result = outbox(|o| o.finish(&mut crate::host::emit));
        let err = result.unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.message(),
            "emit refused: topic secret is not granted to this deployment"
        );
        assert!(testing_host_outboxes().is_empty());
        // The next call starts clean.
        emit("fine", (), "kept");
        assert_eq!(outbox(|o| o.finish(&mut crate::host::emit)), Ok(()));
        assert_eq!(testing_host_outboxes().len(), 1);
    }

    #[test]
    fn empty_outbox_does_not_call_the_host() {
        let mut calls = 0;
        let result = outbox(|o| {
            o.finish(&mut |_| {
                calls += 1;
                Ok(())
            })
        });
        assert_eq!(result, Ok(()));
        assert_eq!(calls, 0);
    }

    fn testing_host_outboxes() -> Vec<wit::Outbox> {
        crate::host::imp::with_host(|host| std::mem::take(&mut host.emitted))
    }

    fn emitted(
        topic: &str,
        key: Option<&str>,
        value: Option<&str>,
        headers: &[(&str, Option<&str>)],
    ) -> Emitted {
        let bytes = |s: Option<&str>| s.map(|s| s.as_bytes().to_vec());
        Emitted {
            topic: topic.to_owned(),
            key: bytes(key),
            value: bytes(value),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), bytes(*v)))
                .collect(),
        }
    }
}
