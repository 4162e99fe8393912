//! The runner's shared output producer and per-batch acknowledgement groups.
//!
//! One idempotent producer (acks=all) serves every deployment: a Kafka
//! client per deployment would cost threads and buffers, and a client per
//! call is ~1000x the cost of a dispatch. Each batch's outputs share one
//! [`AckGroup`]; the delivery callback counts it down, and the batch's input
//! offset may be stored only when the group completed without error.
//!
//! An idempotent producer can hit a *fatal* error (e.g. a sequence
//! desynchronisation after a broker restart); librdkafka then refuses every
//! record for the life of that client. [`OutputProducer`] replaces such a
//! client with a new one at the next publish: what the old one still held
//! fails its batch or request, which retries, and nothing is acknowledged
//! that Kafka did not take.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use thiserror::Error;
use tokio::sync::Notify;

use ingesta_abi::{HeaderEntry, OutgoingEntry, Span};

use crate::telemetry::RunnerMetrics;
use crate::wasm::bindings::Outbox;

/// Publishing a batch's outputs failed; the batch's input must not be
/// acknowledged.
#[derive(Debug, Error, Clone)]
#[error("{message}")]
pub struct PublishError {
    /// What failed, naming the output topic and Kafka's reason; this is
    /// the error's text.
    pub message: String,
    /// Kafka refused a record for good (too large, unknown topic, not
    /// authorized, invalid): publishing the same records again cannot
    /// succeed. Otherwise the failure may pass (timeouts, broker away).
    pub permanent: bool,
}

/// Whether Kafka's `code` for a record means it can never be accepted.
fn is_permanent(code: Option<RDKafkaErrorCode>) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        Some(
            MessageSizeTooLarge
                | InvalidMessageSize
                | InvalidMessage
                | InvalidRecord
                | TopicAuthorizationFailed
                | ClusterAuthorizationFailed
                | InvalidTopic
                | UnknownTopic
                | InvalidRequiredAcks
        )
    )
}

/// Counts a batch's outputs until Kafka has acknowledged (or failed) each.
pub struct AckGroup {
    /// Outputs not yet settled, plus one while the batch is still sending.
    pending: AtomicUsize,
    /// The first delivery failure, if any.
    error: Mutex<Option<PublishError>>,
    /// Wakes the waiter when `pending` reaches zero.
    done: Notify,
    /// Number of records sent in this group.
    sent: AtomicUsize,
}

impl AckGroup {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            pending: AtomicUsize::new(1),
            error: Mutex::new(None),
            done: Notify::new(),
            sent: AtomicUsize::new(0),
        })
    }

    fn add(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn settle(&self, error: Option<PublishError>) {
        if let Some(e) = error {
            self.error.lock().unwrap().get_or_insert(e);
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    /// Records sent in this group.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Whether every output has been settled.
    pub fn is_settled(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Wait until every output is acknowledged; the first failure wins.
    pub async fn wait(&self) -> Result<(), PublishError> {
        while !self.is_settled() {
            self.done.notified().await;
        }
        // Cloned, not taken: the group may be awaited more than once (the
        // lane polls it in a select and then settles it), and every wait
        // must see the failure.
        match self.error.lock().unwrap().clone() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// Which of the runner's two producers this is, for its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerRole {
    /// Consumer deployments' outputs and dead letters (batched: linger).
    Outputs,
    /// What producer deployments publish, while an HTTP caller waits.
    Ingest,
}

impl ProducerRole {
    /// The metrics label and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outputs => "outputs",
            Self::Ingest => "ingest",
        }
    }
}

/// Delivery reports settle the group carried as each message's opaque;
/// statistics reports go to the runner's metrics.
struct AckContext {
    metrics: Arc<RunnerMetrics>,
    role: ProducerRole,
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        super::route_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "ingesta::kafka", %error, reason, "output producer error");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        match self.role {
            ProducerRole::Outputs => self.metrics.producer.update(&statistics),
            ProducerRole::Ingest => self.metrics.ingest_producer.update(&statistics),
        }
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<AckGroup>;

    fn delivery(&self, result: &DeliveryResult<'_>, group: Arc<AckGroup>) {
        let error = match result {
            Ok(_) => None,
            Err((e, msg)) => {
                use rdkafka::Message;
                Some(PublishError {
                    message: format!(
                        "Kafka did not acknowledge an output to topic {:?}: {e}",
                        msg.topic()
                    ),
                    permanent: is_permanent(e.rdkafka_error_code()),
                })
            }
        };
        group.settle(error);
    }
}

/// The shared, idempotent, acks=all producer for deployment outputs.
pub struct OutputProducer {
    config: ClientConfig,
    metrics: Arc<RunnerMetrics>,
    role: ProducerRole,
    /// The client in use; replaced when it hits a fatal error.
    live: RwLock<Arc<ThreadedProducer<AckContext>>>,
}

impl OutputProducer {
    /// Create the producer from librdkafka settings; it reports its
    /// statistics to `metrics` as `role`.
    pub fn new(
        config: &ClientConfig,
        metrics: Arc<RunnerMetrics>,
        role: ProducerRole,
    ) -> Result<Self, KafkaError> {
        let client = Self::create(config, &metrics, role)?;
        Ok(Self {
            config: config.clone(),
            metrics,
            role,
            live: RwLock::new(Arc::new(client)),
        })
    }

    fn create(
        config: &ClientConfig,
        metrics: &Arc<RunnerMetrics>,
        role: ProducerRole,
    ) -> Result<ThreadedProducer<AckContext>, KafkaError> {
        config.create_with_context(AckContext {
            metrics: metrics.clone(),
            role,
        })
    }

    /// The client to publish with: the current one, or a new one if the
    /// current one hit a fatal error (it would refuse every record).
    fn live(&self) -> Result<Arc<ThreadedProducer<AckContext>>, PublishError> {
        let current = self.live.read().unwrap().clone();
        let Some((code, reason)) = current.client().fatal_error() else {
            return Ok(current);
        };
        let mut live = self.live.write().unwrap();
        if !Arc::ptr_eq(&live, &current) {
            // Another publish replaced it meanwhile.
            return Ok(live.clone());
        }
        let fresh = Arc::new(
            Self::create(&self.config, &self.metrics, self.role).map_err(|e| PublishError {
                message: format!(
                    "the {} producer hit a fatal error ({code:?}: {reason}) and a new one cannot be created: {e}",
                    self.role.as_str()
                ),
                permanent: false,
            })?,
        );
        let old = std::mem::replace(&mut *live, fresh.clone());
        drop(live);
        self.metrics.count_producer_replaced(self.role.as_str());
        tracing::warn!(target: "ingesta::kafka", producer = self.role.as_str(), ?code, reason,
            "the producer hit a fatal error; replaced it with a new client (records the old one had not delivered fail their batch or request, which retries)");
        // Dropping purges what the old client still holds, which settles
        // those groups with an error, and joins its thread: not on a
        // runtime worker.
        std::thread::spawn(move || drop(old));
        Ok(fresh)
    }

    /// Put the current client into librdkafka's fatal state, as a
    /// sequence desynchronisation after a broker restart does (librdkafka's
    /// own test hook). For tests of the recovery; never called by the runner.
    #[doc(hidden)]
    pub fn inject_fatal_error(&self, reason: &str) {
        let live = self.live.read().unwrap().clone();
        let reason = std::ffi::CString::new(reason).unwrap_or_default();
        // SAFETY: the client pointer is valid while `live` is held, and
        // librdkafka copies `reason` before returning.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                live.client().native_ptr(),
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            );
        }
    }

    /// Queue every record of `outboxes` for sending and return the group to
    /// await. A record librdkafka refuses outright (too large, unknown topic)
    /// fails the group; records already queued still settle normally.
    pub async fn publish(&self, outboxes: &[Outbox]) -> Arc<AckGroup> {
        let group = AckGroup::new();
        let producer = match self.live() {
            Ok(p) => p,
            Err(e) => {
                group.settle(Some(e));
                return group;
            }
        };
        'outboxes: for outbox in outboxes {
            // The host checked every span and index when the guest emitted
            // the outbox (`HostState::check_outbox`), so lookups cannot fail.
            let slice = |s: Span| s.get(&outbox.data).unwrap_or_default();
            for i in 0..OutgoingEntry::count(&outbox.records) {
                let Some(r) = OutgoingEntry::read(&outbox.records, i) else {
                    break;
                };
                let topic = &outbox.topics[r.topic as usize];
                let mut record = BaseRecord::<[u8], [u8], _>::with_opaque_to(topic, group.clone());
                if let Some(k) = r.key {
                    record = record.key(slice(k));
                }
                if let Some(v) = r.value {
                    record = record.payload(slice(v));
                }
                if r.header_count > 0 {
                    let mut headers = OwnedHeaders::new_with_capacity(r.header_count as usize);
                    for h in r.header_start..r.header_start + r.header_count {
                        let Some(h) = HeaderEntry::read(&outbox.headers, h as usize) else {
                            break;
                        };
                        headers = headers.insert(Header {
                            key: std::str::from_utf8(slice(h.name)).unwrap_or_default(),
                            value: h.value.map(slice),
                        });
                    }
                    record = record.headers(headers);
                }
                group.add();
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            // Back-pressure: librdkafka's queue is full, so
                            // wait for deliveries to drain it.
                            record = r;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err((e, r)) => {
                            let group = r.delivery_opaque;
                            // librdkafka refused it before sending: the
                            // record itself is wrong (size, topic...), or
                            // the client just hit a fatal error, which the
                            // next publish mends by replacing it.
                            let fatal = e.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal);
                            group.settle(Some(PublishError {
                                message: format!(
                                    "cannot publish an output to topic {topic:?}: {e}"
                                ),
                                permanent: !fatal,
                            }));
                            break 'outboxes;
                        }
                    }
                }
            }
        }
        group.settle(None);
        group
    }

    /// Wait for every queued output to be delivered (used at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let live = self.live.read().unwrap().clone();
        live.flush(timeout)
    }
}

/// The runner's two shared producers: one per latency need, both
/// idempotent with acks=all.
#[derive(Clone)]
pub struct Producers {
    /// Consumer deployments' outputs and dead letters.
    pub outputs: Arc<OutputProducer>,
    /// What producer deployments publish while an HTTP caller waits.
    pub ingest: Arc<OutputProducer>,
}

impl Producers {
    /// Both producers for `kafka`, reporting to `metrics`.
    pub fn new(
        kafka: &crate::config::KafkaConfig,
        metrics: &Arc<RunnerMetrics>,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            outputs: Arc::new(OutputProducer::new(
                &super::producer_config(kafka),
                metrics.clone(),
                ProducerRole::Outputs,
            )?),
            ingest: Arc::new(OutputProducer::new(
                &super::ingest_producer_config(kafka),
                metrics.clone(),
                ProducerRole::Ingest,
            )?),
        })
    }

    /// Wait for everything queued on either to be delivered (shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.outputs.flush(timeout)?;
        self.ingest.flush(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_is_seen_by_every_wait() {
        let group = AckGroup::new();
        group.add();
        group.add();
        group.settle(None);
        group.settle(Some(PublishError {
            message: "broker said no".into(),
            permanent: false,
        }));
        assert!(!group.is_settled(), "the sender's own count is still held");
        group.settle(None);
        assert!(group.is_settled());
        assert_eq!(group.sent(), 2);
        for _ in 0..2 {
            let err = group.wait().await.unwrap_err();
            assert_eq!(err.message, "broker said no");
        }
    }

    #[tokio::test]
    async fn wait_wakes_when_the_last_ack_arrives() {
        let group = AckGroup::new();
        group.add();
        group.settle(None);
        let waiter = tokio::spawn({
            let group = group.clone();
            async move { group.wait().await }
        });
        tokio::task::yield_now().await;
        group.settle(None);
        waiter.await.unwrap().unwrap();
    }
}
