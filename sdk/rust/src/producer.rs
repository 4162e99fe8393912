//! The [`Producer`] trait (WIT world `producer`): turn HTTP requests and
//! timer ticks into records, and the per-call dispatch behind
//! `export_producer!`.
//!
//! Emitting works exactly as in a consumer ([`emit`](crate::emit),
//! [`Message`](crate::Message)...): records are buffered during the call and
//! published only if it succeeds. For a request, success means `Ok` with a
//! status below 400; the runner answers the caller only after Kafka has
//! acknowledged every record.

use std::cell::RefCell;
use std::thread::LocalKey;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::emit;
use crate::error::{Error, Result};
use crate::host;
use crate::wit;

/// Bindings' request, response and tick types.
pub(crate) use crate::__private::producer_bindings::exports::ingesta::runtime::source as wit_source;

/// An HTTP request sent to `/v1/ingest/<deployment>[/<path>]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    /// A request, as tests build one; headers are added with
    /// [`with_header`](Self::with_header).
    pub fn new(method: &str, path: &str, body: impl Into<Vec<u8>>) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// This request with one more header (its name is lower-cased).
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// `POST`, `PUT`, `GET`...
    pub fn method(&self) -> &str {
        &self.method
    }

    /// What follows the deployment's name in the URL (`/` when nothing).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string, without `?`.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The first value of query parameter `name`, as written (not
    /// percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Every header, names in lower case, in arrival order.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of header `name` as text, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text; a permanent error (400) if it is not.
    pub fn body_str(&self) -> Result<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::permanent(format!("request body is not UTF-8: {e}")))
    }

    /// The body parsed as JSON; a permanent error (400) saying where it
    /// fails if it is not.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::permanent(format!("request body is not valid JSON: {e}")))
    }

    fn from_wit(r: wit_source::Request) -> Self {
        Self {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
        }
    }
}

/// The answer to a request, sent once every emitted record is acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status; 400 or more publishes nothing of the call.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200 OK`, empty.
    pub fn ok() -> Self {
        Self::new(200)
    }

    /// `202 Accepted`, empty: the usual answer of an ingestion endpoint.
    pub fn accepted() -> Self {
        Self::new(202)
    }

    /// `status` with a plain-text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// `status` with `value` serialized as the JSON body.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::permanent(format!("cannot serialize the response: {e}")))?;
        Ok(Self::new(status)
            .header("content-type", "application/json")
            .body(body))
    }

    /// This response with one more header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// This response with `body`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn into_wit(self) -> wit_source::Response {
        wit_source::Response {
            status: self.status,
            headers: self.headers,
            body: self.body,
        }
    }
}

/// A scheduled call of a generator deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Ticks since the deployment started on this runner, from 0.
    pub seq: u64,
    /// When the tick was due, ms since the Unix epoch.
    pub scheduled_ms: i64,
    /// The deployment's `schedule.interval_ms`.
    pub interval_ms: u32,
}

/// A producer module: answers HTTP requests and/or timer ticks by emitting
/// records.
///
/// One value lives per instance, created with [`Default`] on its first call
/// and kept across calls. The runner keeps a small pool of instances per
/// deployment for requests (so concurrent requests see different values)
/// and one instance for ticks (so a generator can keep counters and random
/// state from tick to tick).
pub trait Producer: Default + 'static {
    /// Handles one HTTP request. The default refuses it, for generator-only
    /// modules.
    ///
    /// [`Error::permanent`] answers 400 with its message, [`Error::retryable`]
    /// 503 with `Retry-After`; either way nothing emitted is published.
    fn on_request(&mut self, _request: &Request) -> Result<Response> {
        Err(Error::permanent(
            "this module does not accept HTTP requests (it has no on_request)",
        ))
    }

    /// Handles one tick of the deployment's schedule. The default refuses
    /// it, for ingestion-only modules.
    fn on_tick(&mut self, _tick: &Tick) -> Result<()> {
        Err(Error::permanent(
            "this module does not handle ticks (it has no on_tick); deploy it without a schedule",
        ))
    }
}

/// Runs one request: the producer, then the single flush of its output.
pub(crate) fn run_request<P: Producer>(
    producer: &mut P,
    request: &Request,
    sink: &mut dyn FnMut(&wit::Outbox) -> Result<()>,
) -> Result<Response> {
    // A status of 400 or more is a refusal: nothing of it is published.
    emit::end_call(producer.on_request(request), |r| r.status < 400, sink)
}

/// Runs one tick: the producer, then the single flush of its output.
pub(crate) fn run_tick<P: Producer>(
    producer: &mut P,
    tick: &Tick,
    sink: &mut dyn FnMut(&wit::Outbox) -> Result<()>,
) -> Result<()> {
    emit::end_call(producer.on_tick(tick), |_| true, sink)
}

/// The body of the exported `handle-request` generated by `export_producer!`.
#[doc(hidden)]
pub fn handle_request<P: Producer>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    request: wit_source::Request,
) -> std::result::Result<wit_source::Response, wit::HandlerError> {
    slot.with_borrow_mut(|producer| {
        let producer = producer.get_or_insert_with(P::default);
        run_request(producer, &Request::from_wit(request), &mut host::emit)
            .map(Response::into_wit)
            .map_err(Error::into_wit)
    })
}

/// The body of the exported `handle-tick` generated by `export_producer!`.
#[doc(hidden)]
pub fn handle_tick<P: Producer>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    tick: wit_source::Tick,
) -> std::result::Result<(), wit::HandlerError> {
    slot.with_borrow_mut(|producer| {
        let producer = producer.get_or_insert_with(P::default);
        let tick = Tick {
            seq: tick.seq,
            scheduled_ms: tick.scheduled_ms,
            interval_ms: tick.interval_ms,
        };
        run_tick(producer, &tick, &mut host::emit).map_err(Error::into_wit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::emit;
    use crate::testing;

    #[derive(Default)]
    struct Echo {
        ticks: u64,
    }

    impl Producer for Echo {
        fn on_request(&mut self, request: &Request) -> Result<Response> {
            let body = request.body_str()?;
            if body == "bad" {
                return Ok(Response::text(422, "bad body"));
            }
            emit("echo", request.query_param("key"), body);
            Ok(Response::accepted())
        }

        fn on_tick(&mut self, tick: &Tick) -> Result<()> {
            self.ticks += 1;
            emit("ticks", (), tick.seq.to_string());
            Ok(())
        }
    }

    #[test]
    fn request_emits_and_answers() {
        let req = Request::new("POST", "/events?key=u1&x", "hello").with_header("X-Id", "7");
        assert_eq!((req.path(), req.query()), ("/events", "key=u1&x"));
        assert_eq!(req.query_param("x"), Some(""));
        assert_eq!(req.header_str("x-id"), Some("7"));
        let (resp, out) = testing::run_request(&mut Echo::default(), &req).unwrap();
        assert_eq!(resp.status, 202);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key_str(), Some("u1"));
        assert_eq!(out[0].value_str(), Some("hello"));
    }

    #[test]
    fn error_status_and_errors_publish_nothing() {
        let (resp, out) =
            testing::run_request(&mut Echo::default(), &Request::new("POST", "/", "bad")).unwrap();
        assert_eq!((resp.status, out.len()), (422, 0));
        let err =
            testing::run_request(&mut Echo::default(), &Request::new("POST", "/", vec![0xff]))
                .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn ticks_keep_state_and_defaults_refuse() {
        let mut echo = Echo::default();
        for seq in 0..3 {
            let tick = Tick {
                seq,
                scheduled_ms: 0,
                interval_ms: 100,
            };
            let out = testing::run_tick(&mut echo, &tick).unwrap();
            assert_eq!(out[0].value_str(), Some(seq.to_string().as_str()));
        }
        assert_eq!(echo.ticks, 3);

        #[derive(Default)]
        struct Nothing;
        impl Producer for Nothing {}
        let err = testing::run_request(&mut Nothing, &Request::new("GET", "/", "")).unwrap_err();
        assert!(err.message().contains("does not accept HTTP requests"));
        let tick = Tick {
            seq: 0,
            scheduled_ms: 0,
            interval_ms: 1,
        };
        assert!(testing::run_tick(&mut Nothing, &tick).is_err());
    }
}
