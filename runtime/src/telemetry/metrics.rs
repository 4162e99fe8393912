//! Prometheus metric families: what one deployment counts
//! ([`DeploymentMetrics`]), what a Kafka client reports through librdkafka's
//! statistics ([`KafkaClientMetrics`]), and the text exposition.
//!
//! Each deployment's families carry a constant `deployment` label and are
//! owned by the supervisor, so they survive hot swaps, pauses and restarts
//! (counters stay monotonic) and disappear with the deployment. Labels are
//! bounded by construction: deployment, input topic and partition, error
//! class, broker id — never a key, an offset or anything from a record.

use std::collections::{BTreeMap, HashMap};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, TextEncoder,
};
use rdkafka::statistics::Statistics;

use crate::deployment::status::{FailureClass, TrapKind};

/// Handler call durations, 100 µs to 10 s.
const CALL_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Records per batch, 1 to 10,000 (the largest `batch.max_records`).
const BATCH_RECORDS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// Builds families with shared constant labels and remembers each one, so
/// that collecting cannot forget a family that was defined.
struct Families {
    labels: HashMap<String, String>,
    all: Vec<Box<dyn Collector>>,
}

impl Families {
    fn new(labels: &[(&str, &str)]) -> Self {
        Self {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            all: Vec::new(),
        }
    }

    fn opts(&self, name: &str, help: &str) -> Opts {
        Opts::new(name, help).const_labels(self.labels.clone())
    }

    fn keep<C: Collector + Clone + 'static>(&mut self, c: C) -> C {
        self.all.push(Box::new(c.clone()));
        c
    }

    // The definitions below are fixed at compile time, so a failure is a
    // programming error caught by the unit tests.
    fn counter(&mut self, name: &str, help: &str) -> IntCounter {
        let c = IntCounter::with_opts(self.opts(name, help)).expect("valid metric definition");
        self.keep(c)
    }

    fn counter_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c = IntCounterVec::new(self.opts(name, help), labels).expect("valid metric definition");
        self.keep(c)
    }

    fn gauge(&mut self, name: &str, help: &str) -> IntGauge {
        let g = IntGauge::with_opts(self.opts(name, help)).expect("valid metric definition");
        self.keep(g)
    }

    fn gauge_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let g = IntGaugeVec::new(self.opts(name, help), labels).expect("valid metric definition");
        self.keep(g)
    }

    fn float_gauge_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let g = GaugeVec::new(self.opts(name, help), labels).expect("valid metric definition");
        self.keep(g)
    }

    fn histogram(&mut self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::from(self.opts(name, help)).buckets(buckets.to_vec());
        let h = Histogram::with_opts(opts).expect("valid metric definition");
        self.keep(h)
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.all.iter().flat_map(|c| c.collect()).collect()
    }

    fn names(&self) -> Vec<String> {
        self.all
            .iter()
            .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
            .collect()
    }
}

/// What one deployment counts, on this runner.
pub struct DeploymentMetrics {
    /// By input `topic` and `partition`.
    pub records_in: IntCounterVec,
    /// Bytes of the batches' `data` buffers (keys, values, header names and
    /// values) handed to the handler, by input `topic` and `partition`.
    pub bytes_in: IntCounterVec,
    /// Records published: handler outputs and dead letters.
    pub records_out: IntCounter,
    /// Bytes of the published outboxes' `data` buffers (keys, values,
    /// header names and values).
    pub bytes_out: IntCounter,
    /// Input batches handed to the handler (a batch retried or split still
    /// counts once).
    pub batches: IntCounter,
    /// Batches whose input offset was stored for commit (outputs acked).
    pub offsets_stored: IntCounter,
    /// Records per input batch, in buckets from 1 to 10,000.
    pub batch_records: Histogram,
    /// Duration of each handler call (retries and split parts included).
    pub call_seconds: Histogram,
    /// Failed calls by `class`: `retryable`, `permanent` or `trap:<kind>`.
    pub errors: IntCounterVec,
    /// Calls repeated after a retryable error or a trap (consumer batches
    /// or their split parts, producer ticks).
    pub retries: IntCounter,
    /// Records sent to the deployment's dead-letter topic.
    pub dead_lettered: IntCounter,
    /// Instances replaced after a trap.
    pub instance_restarts: IntCounter,
    /// Calls stopped at their wall-clock deadline (`limits.deadline_ms`);
    /// each also counts as a `trap:deadline` error and a restart.
    pub deadline_interruptions: IntCounter,
    /// Live instances (stores) of the deployment on this runner; kept by
    /// the store's resource limiter.
    pub instances: IntGauge,
    /// Times an instance had to wait for a slot, by the `scope` whose
    /// quota was used up: `deployment` (`limits.max_instances`), `tenant`
    /// (the tenant's `max_instances`), `runner` (`runtime.max_instances`)
    /// or `pool` (the allocator's memories or tables).
    pub instance_waits: IntCounterVec,
    /// Time spent waiting for an instance slot, in milliseconds.
    pub instance_wait_ms: IntCounter,
    /// Linear memory of the live instances, in bytes, as wasmtime grew it.
    pub instance_memory_bytes: IntGauge,
    /// Guest lines admitted by the log budget, from `log` calls and
    /// stdout and stderr; counted by the deployment's
    /// [`GuestLog`](super::GuestLog).
    pub guest_log_lines: IntCounter,
    /// Guest lines dropped by the log budget
    /// (`limits.log_lines_per_second`).
    pub guest_log_dropped: IntCounter,
    /// Producer deployments: ingest requests answered, by status class
    /// (`2xx`, `4xx`, `5xx`...).
    pub ingest_requests: IntCounterVec,
    /// Producer deployments: ticks of the schedule started.
    pub ticks: IntCounter,
    /// 1 while an assigned input partition has records waiting and no
    /// progress for `runtime.stall_timeout_ms`, by `topic` and `partition`.
    pub partition_stalled: IntGaugeVec,
    /// Times a partition was found stalled.
    pub stalls: IntCounter,
    /// Records Kafka no longer had where a partition resumed (retention or
    /// deleted records below the committed offset), by `topic` and
    /// `partition`.
    pub skipped_records: IntCounterVec,
    /// Batches whose outputs were published again after Kafka did not
    /// acknowledge them for a passing reason.
    pub republishes: IntCounter,
    /// Rebalance callbacks of the deployment's consumer on this runner (an
    /// assignment or a revocation each).
    pub rebalances: IntCounter,
    /// Partitions assigned to this runner by rebalances.
    pub partitions_assigned: IntCounter,
    /// Times the deployment was put to sleep on this runner (caught up and
    /// idle for `runtime.sleep_after_ms`).
    pub sleeps: IntCounter,
    /// Times it was started again because records arrived while it slept.
    pub wakes: IntCounter,
    /// Time from noticing a sleeping deployment's new records to its
    /// consumer being started again, in milliseconds, summed over wakes.
    pub wake_ms: IntCounter,
    /// Partitions taken from this runner by rebalances, by `how`:
    /// `revoked` (drained and committed first) or `lost` (the group moved
    /// on without this member).
    pub partitions_revoked: IntCounterVec,
    /// Time the consumer spent in rebalance callbacks (draining, committing,
    /// finding where partitions begin: no partition is read meanwhile) and,
    /// with the eager protocol, with everything revoked waiting for the
    /// next assignment, in milliseconds.
    pub rebalance_paused_ms: IntCounter,
    /// The deployment's consumer, from librdkafka's statistics.
    pub consumer: KafkaClientMetrics,
    families: Families,
}

impl DeploymentMetrics {
    /// The families of `deployment` (its constant `deployment` label: the
    /// config-file name or `<tenant>/<name>`), all at zero, every error
    /// class included.
    #[allow(
        clippy::too_many_lines,
        reason = "one struct literal defining every family of a deployment, a flat catalogue \
                  of name and help text per field; splitting it would only scatter the list"
    )]
    pub fn new(deployment: &str) -> Self {
        let mut f = Families::new(&[("deployment", deployment)]);
        let part = &["topic", "partition"];
        let m = Self {
            records_in: f.counter_vec(
                "ingesta_records_in_total",
                "Records handed to the handler, by input partition.",
                part,
            ),
            bytes_in: f.counter_vec(
                "ingesta_bytes_in_total",
                "Key, value and header bytes handed to the handler, by input partition.",
                part,
            ),
            records_out: f.counter(
                "ingesta_records_out_total",
                "Records published (handler outputs and dead letters).",
            ),
            bytes_out: f.counter(
                "ingesta_bytes_out_total",
                "Key, value and header bytes published.",
            ),
            batches: f.counter("ingesta_batches_total", "Batches handled."),
            offsets_stored: f.counter(
                "ingesta_offsets_stored_total",
                "Batches whose input offset was stored for commit, after their outputs were acknowledged.",
            ),
            batch_records: f.histogram(
                "ingesta_batch_records",
                "Records per batch.",
                BATCH_RECORDS,
            ),
            call_seconds: f.histogram(
                "ingesta_handler_seconds",
                "Duration of one handler call, retries and split parts included.",
                CALL_SECONDS,
            ),
            errors: f.counter_vec(
                "ingesta_handler_errors_total",
                "Failed handler calls by class: retryable, permanent or trap:<kind>.",
                &["class"],
            ),
            retries: f.counter(
                "ingesta_retries_total",
                "Calls repeated after a retryable error or a trap.",
            ),
            dead_lettered: f.counter(
                "ingesta_dead_lettered_total",
                "Records sent to the dead-letter topic.",
            ),
            instance_restarts: f.counter(
                "ingesta_instance_restarts_total",
                "Instances discarded after a trap and replaced.",
            ),
            deadline_interruptions: f.counter(
                "ingesta_deadline_interruptions_total",
                "Calls interrupted at their deadline (limits.deadline_ms).",
            ),
            instances: f.gauge("ingesta_instances", "Live instances."),
            instance_waits: f.counter_vec(
                "ingesta_instance_waits_total",
                "Waits for an instance slot, by the scope whose quota was used up (deployment, tenant, runner, pool).",
                &["scope"],
            ),
            instance_wait_ms: f.counter(
                "ingesta_instance_wait_milliseconds_total",
                "Time spent waiting for an instance slot.",
            ),
            instance_memory_bytes: f.gauge(
                "ingesta_instance_memory_bytes",
                "Linear memory of the live instances.",
            ),
            guest_log_lines: f.counter(
                "ingesta_guest_log_lines_total",
                "Guest log and stdout/stderr lines kept.",
            ),
            guest_log_dropped: f.counter(
                "ingesta_guest_log_dropped_total",
                "Guest log lines dropped by the rate limit (limits.log_lines_per_second).",
            ),
            ingest_requests: f.counter_vec(
                "ingesta_ingest_requests_total",
                "Requests to the producer deployment's ingest endpoint, by status class (2xx, 4xx, 5xx).",
                &["status"],
            ),
            ticks: f.counter("ingesta_ticks_total", "Ticks of the producer deployment's schedule."),
            partition_stalled: f.gauge_vec(
                "ingesta_partition_stalled",
                "1 while the input partition has records waiting and has made no progress for runtime.stall_timeout_ms.",
                part,
            ),
            stalls: f.counter(
                "ingesta_partition_stalls_total",
                "Times an input partition was found stalled.",
            ),
            skipped_records: f.counter_vec(
                "ingesta_skipped_records_total",
                "Records no longer in Kafka where the partition resumed (retention or deleted records below the committed offset), by input partition.",
                part,
            ),
            republishes: f.counter(
                "ingesta_output_republishes_total",
                "Batches whose outputs were published again after Kafka did not acknowledge them for a passing reason.",
            ),
            rebalances: f.counter(
                "ingesta_rebalances_total",
                "Rebalance callbacks (assignments and revocations) of the deployment's consumer.",
            ),
            partitions_assigned: f.counter(
                "ingesta_partitions_assigned_total",
                "Partitions assigned to this runner by rebalances.",
            ),
            sleeps: f.counter(
                "ingesta_deployment_sleeps_total",
                "Times the deployment was put to sleep (caught up and idle for runtime.sleep_after_ms; its consumer released).",
            ),
            wakes: f.counter(
                "ingesta_deployment_wakes_total",
                "Times a sleeping deployment was started again because records arrived on its inputs.",
            ),
            wake_ms: f.counter(
                "ingesta_deployment_wake_milliseconds_total",
                "Time from noticing a sleeping deployment's new records to its consumer being started, summed over wakes.",
            ),
            partitions_revoked: f.counter_vec(
                "ingesta_partitions_revoked_total",
                "Partitions taken from this runner by rebalances, by how: revoked (drained and committed) or lost.",
                &["how"],
            ),
            rebalance_paused_ms: f.counter(
                "ingesta_rebalance_paused_milliseconds_total",
                "Time the consumer read nothing because of rebalances (callbacks, and with the eager protocol the wait for the next assignment).",
            ),
            consumer: KafkaClientMetrics::new(&mut f, "ingesta_kafka_consumer"),
            families: f,
        };
        // Every error class exists from the start at 0, so `rate()` and the
        // error-ratio alert see the first failure (a series that appears
        // with value 1 has no increase to rate).
        for class in FailureClass::all() {
            m.errors.with_label_values(&[&class.label()]);
        }
        m
    }

    /// Every family, for the exposition.
    pub fn collect(&self) -> Vec<MetricFamily> {
        self.families.collect()
    }

    /// Count a failed call of `class` (a trap also counts a replaced
    /// instance, and a deadline trap an interruption).
    pub fn count_failure(&self, class: FailureClass) {
        self.errors.with_label_values(&[&class.label()]).inc();
        if let FailureClass::Trap(kind) = class {
            self.instance_restarts.inc();
            if kind == TrapKind::Deadline {
                self.deadline_interruptions.inc();
            }
        }
    }

    /// Failed calls of every class, summed.
    pub fn errors_total(&self) -> u64 {
        sum_counters(&self.errors)
    }

    /// Records handed to the handler, all partitions summed.
    pub fn records_in_total(&self) -> u64 {
        sum_counters(&self.records_in)
    }
}

/// The sum of every series of `v`.
pub fn sum_counters(v: &IntCounterVec) -> u64 {
    v.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// What librdkafka reports about one client, refreshed at every statistics
/// interval.
pub struct KafkaClientMetrics {
    rtt: GaugeVec,
    throttle: GaugeVec,
    in_flight: IntGaugeVec,
    queued_requests: IntGaugeVec,
    queued_messages: IntGauge,
    replyq: IntGauge,
}

impl KafkaClientMetrics {
    fn new(f: &mut Families, prefix: &str) -> Self {
        Self {
            rtt: f.float_gauge_vec(
                &format!("{prefix}_broker_rtt_seconds"),
                "Broker round-trip time over the last statistics window (stat: avg or p99).",
                &["broker", "stat"],
            ),
            throttle: f.float_gauge_vec(
                &format!("{prefix}_broker_throttle_seconds"),
                "Average time the broker throttled this client (quotas) over the last window.",
                &["broker"],
            ),
            in_flight: f.gauge_vec(
                &format!("{prefix}_broker_requests_in_flight"),
                "Requests sent to the broker and awaiting a response.",
                &["broker"],
            ),
            queued_requests: f.gauge_vec(
                &format!("{prefix}_broker_requests_queued"),
                "Requests waiting to be sent to the broker.",
                &["broker"],
            ),
            queued_messages: f.gauge(
                &format!("{prefix}_queued_messages"),
                "Messages in the client's queues (producer: awaiting delivery; consumer: pre-fetched).",
            ),
            replyq: f.gauge(
                &format!("{prefix}_reply_queue"),
                "Events waiting for the application to serve them.",
            ),
        }
    }

    /// Forget the last report (the client is gone), so a stopped
    /// deployment does not show stale broker figures.
    pub fn clear(&self) {
        self.rtt.reset();
        self.throttle.reset();
        self.in_flight.reset();
        self.queued_requests.reset();
        self.queued_messages.set(0);
        self.replyq.set(0);
    }

    /// Take in one statistics report.
    pub fn update(&self, s: &Statistics) {
        const MICROS: f64 = 1e-6;
        // Brokers can leave the cluster: start from empty each time.
        self.clear();
        // Bootstrap entries (node id -1) are not brokers yet.
        for b in s.brokers.values().filter(|b| b.nodeid >= 0) {
            let id = b.nodeid.to_string();
            if let Some(w) = &b.rtt {
                self.rtt
                    .with_label_values(&[id.as_str(), "avg"])
                    .set(w.avg as f64 * MICROS);
                self.rtt
                    .with_label_values(&[id.as_str(), "p99"])
                    .set(w.p99 as f64 * MICROS);
            }
            if let Some(w) = &b.throttle {
                // librdkafka reports throttle times in milliseconds.
                self.throttle
                    .with_label_values(&[id.as_str()])
                    .set(w.avg as f64 / 1000.0);
            }
            self.in_flight
                .with_label_values(&[id.as_str()])
                .set(b.waitresp_cnt);
            self.queued_requests
                .with_label_values(&[id.as_str()])
                .set(b.outbuf_cnt);
        }
        let fetched: i64 = s
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .map(|p| p.fetchq_cnt.max(0))
            .sum();
        let queued = if s.client_type == "consumer" {
            fetched
        } else {
            s.msg_cnt as i64
        };
        self.queued_messages.set(queued);
        self.replyq.set(s.replyq);
    }
}

/// The runner's own families: the shared output producer and build info.
pub struct RunnerMetrics {
    /// The output producer (consumer deployments' outputs, dead letters).
    pub producer: KafkaClientMetrics,
    /// The ingest producer (what producer deployments publish).
    pub ingest_producer: KafkaClientMetrics,
    producer_replaced: IntCounterVec,
    /// Guest lines not copied to the fleet's logs topic (queue full or
    /// refused by Kafka); they are still in this runner's log.
    pub fleet_log_dropped: IntCounter,
    families: Families,
}

impl Default for RunnerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RunnerMetrics {
    /// The runner's families; `ingesta_build_info` is set at once.
    pub fn new() -> Self {
        let mut f = Families::new(&[]);
        let producer = KafkaClientMetrics::new(&mut f, "ingesta_kafka_producer");
        let ingest_producer = KafkaClientMetrics::new(&mut f, "ingesta_kafka_ingest_producer");
        let producer_replaced = f.counter_vec(
            "ingesta_kafka_producer_replacements_total",
            "Shared producers replaced by a new client after a fatal error (producer: outputs or ingest).",
            &["producer"],
        );
        f.gauge_vec(
            "ingesta_build_info",
            "Always 1; the version label says which ingesta this is.",
            &["version"],
        )
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
        let fleet_log_dropped = f.counter(
            "ingesta_fleet_log_lines_dropped_total",
            "Guest log lines not copied to the fleet's logs topic (queue full or refused by Kafka); they are still in this runner's log.",
        );
        Self {
            producer,
            ingest_producer,
            producer_replaced,
            fleet_log_dropped,
            families: f,
        }
    }

    /// One shared producer (`outputs` or `ingest`) was replaced.
    pub fn count_producer_replaced(&self, producer: &str) {
        self.producer_replaced.with_label_values(&[producer]).inc();
    }

    /// How often the `producer` was replaced.
    pub fn producer_replacements(&self, producer: &str) -> u64 {
        self.producer_replaced.with_label_values(&[producer]).get()
    }

    /// Every family of the runner itself, for the exposition.
    pub fn collect(&self) -> Vec<MetricFamily> {
        self.families.collect()
    }
}

/// Families computed at scrape time from the supervisor and Kafka.
pub struct ScrapeFamilies {
    families: Families,
    /// One series per deployment, 1 for its current state.
    pub state: IntGaugeVec,
    /// Deployments per state.
    pub by_state: IntGaugeVec,
    /// High watermark minus committed offset, per input partition.
    pub lag: IntGaugeVec,
    /// 1 per input partition this runner consumes, naming the runner.
    pub assigned: IntGaugeVec,
}

impl Default for ScrapeFamilies {
    fn default() -> Self {
        Self::new()
    }
}

impl ScrapeFamilies {
    /// Empty families, to be filled for one scrape and then dropped.
    pub fn new() -> Self {
        let mut f = Families::new(&[]);
        Self {
            state: f.gauge_vec(
                "ingesta_deployment_state",
                "1 for the deployment's current state (running, paused, failed, starting, stopped).",
                &["deployment", "state"],
            ),
            by_state: f.gauge_vec(
                "ingesta_deployments",
                "Deployments on this runner by state.",
                &["state"],
            ),
            lag: f.gauge_vec(
                "ingesta_consumer_lag",
                "Records not yet handled: the partition's high watermark minus the group's committed offset (group-wide; every runner of the deployment reports the same value).",
                &["deployment", "topic", "partition"],
            ),
            assigned: f.gauge_vec(
                "ingesta_partition_assigned",
                "1 for each input partition this runner consumes; runner is its runtime.runner_id (sum over the fleet's scrapes: every partition once).",
                &["deployment", "topic", "partition", "runner"],
            ),
            families: f,
        }
    }

    /// Every family, for the exposition.
    pub fn collect(&self) -> Vec<MetricFamily> {
        self.families.collect()
    }
}

/// Every family name the runner can export (histograms without their
/// `_bucket`/`_sum`/`_count` suffixes). Derived from the definitions
/// themselves, so the dashboard and alert checks cannot drift from them.
pub fn exported_names() -> Vec<String> {
    let mut names = DeploymentMetrics::new("x").families.names();
    names.extend(RunnerMetrics::new().families.names());
    names.extend(ScrapeFamilies::new().families.names());
    names.sort();
    names.dedup();
    names
}

/// Prometheus text format of `families`; families of the same name (one
/// per deployment) are merged into one.
pub fn encode(families: impl IntoIterator<Item = MetricFamily>) -> String {
    let mut merged: BTreeMap<String, MetricFamily> = BTreeMap::new();
    for mut f in families {
        if f.get_metric().is_empty() {
            continue;
        }
        match merged.get_mut(f.name()) {
            Some(existing) => existing.mut_metric().extend(f.take_metric()),
            None => {
                merged.insert(f.name().to_owned(), f);
            }
        }
    }
    let families: Vec<MetricFamily> = merged.into_values().collect();
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut out)
        .expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_two_deployments_merge_under_one_name() {
        let a = DeploymentMetrics::new("shop/a");
        let b = DeploymentMetrics::new("shop/b");
        a.records_in.with_label_values(&["t", "0"]).inc_by(3);
        b.records_in.with_label_values(&["t", "1"]).inc_by(4);
        let text = encode(a.collect().into_iter().chain(b.collect()));
        assert_eq!(
            text.matches("# TYPE ingesta_records_in_total counter")
                .count(),
            1
        );
        assert!(text.contains(
            r#"ingesta_records_in_total{deployment="shop/a",partition="0",topic="t"} 3"#
        ));
        assert!(text.contains(
            r#"ingesta_records_in_total{deployment="shop/b",partition="1",topic="t"} 4"#
        ));
        assert_eq!(a.records_in_total(), 3);
    }

    #[test]
    fn exported_names_cover_every_family() {
        let names = exported_names();
        for n in [
            "ingesta_records_in_total",
            "ingesta_handler_seconds",
            "ingesta_consumer_lag",
            "ingesta_kafka_producer_broker_rtt_seconds",
            "ingesta_kafka_consumer_queued_messages",
            "ingesta_deployment_state",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
    }
}
