//! Kafka clients and the conversions between Kafka records and WIT batches.
//!
//! Settings ingesta chooses deliberately (rather than librdkafka's defaults)
//! are set here, in one place, with the reason next to each.

mod batch;
pub mod dead_letters;
mod producer;
pub mod topics;

pub use batch::BatchBuilder;
pub use producer::{AckGroup, OutputProducer, ProducerRole, Producers, PublishError};

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::config::KafkaConfig;
use crate::deployment::Scalar;

/// How often the consumers and the output producer report librdkafka's
/// statistics (broker RTT, queues, throttling) to the metrics. Only clients
/// whose context takes the report set it: the default context logs it.
const STATISTICS_INTERVAL_MS: &str = "5000";

/// What every client starts from: where Kafka is, who it is, quiet
/// librdkafka logs. Each role adds its settings, then the user's properties
/// (`apply`), so those always win over ingesta's defaults.
fn base(kafka: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", client_id)
        .set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// librdkafka settings for the consumer of deployment `name` in `group`,
/// with its own `properties` last.
pub fn consumer_config(
    kafka: &KafkaConfig,
    name: &str,
    group: &str,
    properties: &BTreeMap<String, Scalar>,
) -> ClientConfig {
    // Deployments created over the API are named `<tenant>/<name>`; client
    // ids allow only [A-Za-z0-9._-].
    let mut c = base(kafka, &format!("ingesta-{}", name.replace('/', ".")));
    c.set("group.id", group)
        // Offsets are stored by the pipeline only once a batch's outputs are
        // acknowledged; the periodic auto-commit then commits exactly those.
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        // Where a partition begins is decided when it is assigned
        // (`pipeline::rebalance`); this covers only a position that Kafka
        // no longer has while the partition is being consumed (retention
        // overtook the deployment): resume at the earliest record still
        // there, and the poll loop reports the skipped range.
        .set("auto.offset.reset", "earliest")
        // New partitions of an input topic are noticed (and a rebalance
        // assigns them) within this, rather than librdkafka's 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "30000")
        // The broker holds a fetch until a record arrives (fetch.min.bytes
        // is 1) or this long: an idle consumer asks twice a second rather
        // than a hundred times (10 ms cost 0.004 cores of runner and of
        // broker per idle deployment), and latency-bench measured no cost
        // in latency (docs/benchmarks.md, "Latency").
        .set("fetch.wait.max.ms", "500")
        // The default pre-fetch queue (64 MiB) is per consumer; with hundreds
        // of deployments per runner that is too much memory to pin.
        .set("queued.max.messages.kbytes", "16384")
        // When that queue is full librdkafka backs off fetching for 1 s by
        // default, which shows up as a one-second stall after every burst.
        .set("fetch.queue.backoff.ms", "10")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    apply(&mut c, &kafka.properties);
    apply(&mut c, &kafka.consumer);
    apply(&mut c, properties);
    c
}

/// librdkafka settings for the runner's shared output producer.
pub fn producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka, "ingesta-output");
    // No loss and no reordering on retries: an output counts as written
    // only when every in-sync replica has it.
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        // The topics' own max.message.bytes decide what fits; librdkafka's
        // default (1,000,000) is below Kafka's (1,048,588), so a dead
        // letter of a full-size input record would be refused here first.
        .set("message.max.bytes", "67108864")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    apply(&mut c, &kafka.properties);
    apply(&mut c, &kafka.producer);
    c
}

/// librdkafka settings for the runner's ingest producer, which publishes
/// what producer deployments emit. An HTTP caller waits for every ack, so
/// this one sends at once (`linger.ms=0`): waiting 5 ms to fill a batch
/// made each request take 6 ms instead of 0.6 ms (docs/benchmarks.md).
/// Then `[kafka.ingest_producer]`, which may set linger.ms again.
pub fn ingest_producer_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = producer_config(kafka);
    c.set("client.id", "ingesta-ingest").set("linger.ms", "0");
    apply(&mut c, &kafka.ingest_producer);
    c
}

fn apply(c: &mut ClientConfig, props: &BTreeMap<String, Scalar>) {
    for (k, v) in props {
        c.set(k, &v.0);
    }
}

/// The low and high watermarks librdkafka last saw for `topic` /
/// `partition` in fetch responses, without a broker round trip; `None`
/// before it has fetched the partition.
pub fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for as long as `consumer` is
    // borrowed; librdkafka copies nothing from the topic name after
    // returning and writes only the two out parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        && low >= 0
        && high >= 0)
        .then_some((low, high))
}

/// Shared by every client context so librdkafka logs look the same everywhere.
pub fn route_log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    use RDKafkaLogLevel::*;
    match level {
        Emerg | Alert | Critical | Error => {
            tracing::warn!(target: "ingesta::kafka", facility = fac, "{message}")
        }
        Warning => tracing::warn!(target: "ingesta::kafka", facility = fac, "{message}"),
        Notice | Info => tracing::info!(target: "ingesta::kafka", facility = fac, "{message}"),
        Debug => tracing::debug!(target: "ingesta::kafka", facility = fac, "{message}"),
    }
}

/// librdkafka settings for a client that reads or moves a group's offsets
/// from outside the group (status, replay); it never joins the group.
pub fn group_admin_config(kafka: &KafkaConfig, group: &str) -> ClientConfig {
    let mut c = base(kafka, "ingesta-admin");
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    apply(&mut c, &kafka.properties);
    apply(&mut c, &kafka.consumer);
    c
}

/// librdkafka settings for an admin client (creating the state topics).
pub fn admin_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka, "ingesta-admin");
    apply(&mut c, &kafka.properties);
    c
}
