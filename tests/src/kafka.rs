//! Talking to the real Kafka broker the tests run against.
//!
//! The broker is found through `INGESTA_TEST_KAFKA` (default
//! `127.0.0.1:9092`; start it with `deploy/kafka/kafka.sh start`). Auto topic
//! creation is off there, so every test creates its own topics with
//! [`create_topic`] under a name from [`unique`], and uses a fresh consumer
//! group from [`unique`] too: tests never share state and can run in
//! parallel.
//!
//! Every helper is synchronous (the admin futures are driven by a tiny
//! built-in executor, so the helpers also work from inside a tokio runtime)
//! and every wait is bounded by a timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker used when `INGESTA_TEST_KAFKA` is not set.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// How long a single metadata or admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

static BOOTSTRAP_OVERRIDE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The broker's bootstrap address: the one given to [`set_bootstrap`], else
/// `INGESTA_TEST_KAFKA`, else `127.0.0.1:9092`.
pub fn bootstrap() -> String {
    if let Some(b) = BOOTSTRAP_OVERRIDE.get() {
        return b.clone();
    }
    std::env::var("INGESTA_TEST_KAFKA")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_owned())
}

/// Use `servers` for every helper of this process (the tools' `--bootstrap`
/// flag). Only the first call counts.
pub fn set_bootstrap(servers: &str) {
    let _ = BOOTSTRAP_OVERRIDE.set(servers.to_owned());
}

/// A fresh name such as `stats-3f9c01a2b7`: `prefix`, a dash and ten random
/// hex digits. Valid as a topic, group and deployment name if `prefix` is.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded randomly per process; mixing in the time and a
    // counter makes names distinct across processes and calls.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{prefix}-{:010x}", h.finish() & 0xff_ffff_ffff)
}

/// A client config for the test broker, with librdkafka's own logging
/// limited to warnings.
pub fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap())
        .set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// A consumer that never commits, for reading topics and metadata.
/// `group` is needed only to look up a group's committed offsets.
fn consumer(group: Option<&str>) -> Result<BaseConsumer> {
    let group = group.map_or_else(|| unique("ingesta-test-reader"), str::to_owned);
    client_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .with_context(|| format!("cannot create a Kafka consumer for {}", bootstrap()))
}

fn admin() -> Result<AdminClient<DefaultClientContext>> {
    client_config()
        .create()
        .with_context(|| format!("cannot create a Kafka admin client for {}", bootstrap()))
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// Drive a future to completion on the current thread. Enough for
/// rdkafka's admin futures, which librdkafka's own threads complete.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = TaskContext::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Create `name` with `partitions` partitions (replication factor 1) and
/// wait until the broker's metadata shows every partition with a leader.
/// Fails if the topic already exists.
pub fn create_topic(name: &str, partitions: i32) -> Result<()> {
    create(name, partitions, false)
}

/// Fresh topics `<prefix>-<random>` (see [`unique`]), one per prefix, each
/// created with `partitions` partitions.
pub fn fresh_topics<const N: usize>(prefixes: [&str; N], partitions: i32) -> Result<[String; N]> {
    let names = prefixes.map(unique);
    for t in &names {
        create_topic(t, partitions)?;
    }
    Ok(names)
}

/// Like [`create_topic`] but succeeds if the topic already exists (whatever
/// its partition count; see [`partitions`]).
pub fn ensure_topic(name: &str, partitions: i32) -> Result<()> {
    create(name, partitions, true)
}

/// Create `name` like [`create_topic`], with topic-level `configs` (e.g.
/// `("max.message.bytes", "100000")`).
pub fn create_topic_with(name: &str, partitions: i32, configs: &[(&str, &str)]) -> Result<()> {
    create_configured(name, partitions, false, configs)
}

fn create(name: &str, partitions: i32, exists_ok: bool) -> Result<()> {
    create_configured(name, partitions, exists_ok, &[])
}

fn create_configured(
    name: &str,
    partitions: i32,
    exists_ok: bool,
    configs: &[(&str, &str)],
) -> Result<()> {
    let admin = admin()?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = block_on(admin.create_topics([&topic], &admin_options()))
        .with_context(|| format!("cannot create topic {name:?} on {}", bootstrap()))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if exists_ok => {}
            Err((t, code)) => bail!("cannot create topic {t:?} on {}: {code}", bootstrap()),
        }
    }
    wait_for_topic(name, Duration::from_secs(30))
}

/// Wait until `name` exists and each of its partitions has a leader.
pub fn wait_for_topic(name: &str, timeout: Duration) -> Result<()> {
    let consumer = consumer(None)?;
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match consumer.fetch_metadata(Some(name), REQUEST_TIMEOUT) {
            Ok(md) => match md.topics().iter().find(|t| t.name() == name) {
                Some(t)
                    if t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions()
                            .iter()
                            .all(|p| p.error().is_none() && p.leader() >= 0) =>
                {
                    return Ok(());
                }
                Some(t) => last = format!("topic error {:?}", t.error()),
                None => last = "not in metadata".into(),
            },
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("topic {name:?} did not become ready within {timeout:?}: {last}")
}

/// Set (or with `None`, remove) the broker's produce quota for clients
/// with id `client_id`, in bytes per second: past it the broker throttles
/// them, and records wait past their `message.timeout.ms`. Uses Kafka's
/// own `ConfigCommand` through `deploy/kafka/kafka.sh` (a JVM start, ~2 s).
pub fn set_produce_quota(client_id: &str, bytes_per_second: Option<u64>) -> Result<()> {
    let script = crate::runner::workspace_root().join("deploy/kafka/kafka.sh");
    let change = match bytes_per_second {
        Some(rate) => vec![
            "--add-config".to_owned(),
            format!("producer_byte_rate={rate}"),
        ],
        None => vec![
            "--delete-config".to_owned(),
            "producer_byte_rate".to_owned(),
        ],
    };
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args([
            "run-class",
            "org.apache.kafka.tools.ConfigCommand",
            "--bootstrap-server",
            &bootstrap(),
            "--alter",
            "--entity-type",
            "clients",
            "--entity-name",
            client_id,
        ])
        .args(&change)
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "setting the produce quota of client {client_id:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Grow `name` to `partitions` partitions and wait until each has a
/// leader.
pub fn add_partitions(name: &str, partitions: usize) -> Result<()> {
    use rdkafka::admin::NewPartitions;
    let admin = admin()?;
    let grow = NewPartitions::new(name, partitions);
    let results = block_on(admin.create_partitions([&grow], &admin_options()))
        .with_context(|| format!("cannot add partitions to topic {name:?}"))?;
    for r in results {
        if let Err((_, code)) = r {
            bail!("cannot grow topic {name:?} to {partitions} partitions: {code}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while self::partitions(name)?.len() < partitions {
        if Instant::now() > deadline {
            bail!("topic {name:?} did not show {partitions} partitions within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_topic(name, Duration::from_secs(30))
}

/// Delete the records of `topic` / `partition` below `before` (as
/// retention would); returns the partition's new first offset.
pub fn delete_records_before(topic: &str, partition: i32, before: i64) -> Result<i64> {
    let admin = admin()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(before))?;
    let result = block_on(admin.delete_records(&tpl, &admin_options()))
        .with_context(|| format!("cannot delete records of {topic:?}/{partition}"))?;
    let e = result
        .find_partition(topic, partition)
        .with_context(|| format!("no result for {topic:?}/{partition}"))?;
    if let Err(err) = e.error() {
        bail!("cannot delete records of {topic:?}/{partition} below {before}: {err}");
    }
    match e.offset() {
        Offset::Offset(low) => Ok(low),
        other => bail!("deleting records of {topic:?}/{partition}: new low watermark {other:?}"),
    }
}

/// Delete topics, best effort (tests call it after they passed; a failed
/// test leaves its topics behind for inspection).
pub fn delete_topics(names: &[&str]) {
    let Ok(admin) = admin() else { return };
    let _ = block_on(admin.delete_topics(names, &admin_options()));
}

/// The partition ids of `topic`, ascending. Fails if it does not exist.
pub fn partitions(topic: &str) -> Result<Vec<i32>> {
    let consumer = consumer(None)?;
    partitions_with(&consumer, topic)
}

fn partitions_with<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("cannot fetch metadata of topic {topic:?}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("topic {topic:?} is not in the broker's metadata"))?;
    if let Some(e) = t.error() {
        bail!("topic {topic:?}: {:?}", RDKafkaErrorCode::from(e));
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// What [`produce`] wrote.
#[derive(Debug, Clone, Default)]
pub struct Produced {
    /// `(partition, offset)` of every record, in the order they were given.
    pub positions: Vec<(i32, i64)>,
    /// Per partition, the first and last offset written.
    pub ranges: BTreeMap<i32, (i64, i64)>,
}

impl Produced {
    /// How many records were written.
    pub fn count(&self) -> usize {
        self.positions.len()
    }
}

/// A record's index and where it landed (or why it failed).
type DeliveryReport = (usize, Result<(i32, i64), String>);

/// Counts delivery reports, for tools that produce without waiting per
/// record (the shop simulator, the native-map baseline). The first few
/// failures are printed so a broken run says why.
#[derive(Default)]
pub struct Acks {
    /// Records the broker acknowledged.
    pub ok: std::sync::atomic::AtomicU64,
    /// Records whose delivery failed for good (librdkafka gave up).
    pub failed: std::sync::atomic::AtomicU64,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Relaxed);
            }
            Err((e, _)) => {
                if self.failed.fetch_add(1, Relaxed) < 5 {
                    eprintln!("delivery failed: {e}");
                }
            }
        }
    }
}

/// Collects delivery reports by record index.
#[derive(Default)]
struct Deliveries {
    reports: Mutex<Vec<DeliveryReport>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let report = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.reports.lock().unwrap().push((index, report));
    }
}

/// Send `record`, waiting while librdkafka's local queue is full.
/// `give_up` is asked after every wait; returns `Ok(false)` if it said yes
/// before the record was queued, and any other produce error as `Err`.
pub fn send_when_room<'a, C, K, P>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
    pause: Duration,
    mut give_up: impl FnMut() -> bool,
) -> std::result::Result<bool, KafkaError>
where
    C: ProducerContext + 'static,
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                std::thread::sleep(pause);
                if give_up() {
                    return Ok(false);
                }
                record = back;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// Produce `records` — `(key, value, partition)`, `None` partition meaning
/// "by key" — to `topic` with an idempotent acks=all producer, flush, and
/// return where each record landed. Fails if any record was not delivered.
pub fn produce<K, V, I>(topic: &str, records: I) -> Result<Produced>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
    I: IntoIterator<Item = (K, V, Option<i32>)>,
{
    let producer: ThreadedProducer<Deliveries> = client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "524288")
        .create_with_context(Deliveries::default())
        .context("cannot create the test producer")?;
    // Generous: a million small records take a few seconds on a laptop.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut sent = 0usize;
    for (index, (key, value, partition)) in records.into_iter().enumerate() {
        let mut record = BaseRecord::with_opaque_to(topic, index)
            .key(key.as_ref())
            .payload(value.as_ref());
        if let Some(p) = partition {
            record = record.partition(p);
        }
        let queued = send_when_room(&producer, record, Duration::from_millis(1), || {
            Instant::now() > deadline
        })
        .with_context(|| format!("cannot produce record {index} to {topic:?}"))?;
        if !queued {
            bail!("producing to {topic:?} timed out after {sent} records");
        }
        sent += 1;
    }
    producer
        .flush(Duration::from_secs(120))
        .with_context(|| format!("flushing {sent} records to {topic:?}"))?;
    let mut reports = std::mem::take(&mut *producer.context().reports.lock().unwrap());
    if reports.len() != sent {
        bail!(
            "produced {sent} records to {topic:?} but got {} delivery reports",
            reports.len()
        );
    }
    reports.sort_unstable_by_key(|(i, _)| *i);
    let mut out = Produced {
        positions: Vec::with_capacity(sent),
        ranges: BTreeMap::new(),
    };
    for (index, report) in reports {
        let (p, o) = report.map_err(|e| anyhow!("record {index} to {topic:?} failed: {e}"))?;
        out.positions.push((p, o));
        let r = out.ranges.entry(p).or_insert((o, o));
        r.0 = r.0.min(o);
        r.1 = r.1.max(o);
    }
    Ok(out)
}

/// Read `topic` from the beginning of every partition (no group, nothing
/// committed) until `expected` records arrived — then keep reading for a
/// short grace period to catch extras — or until `timeout`. Returns what was
/// read either way; the caller asserts on it.
pub fn read_all(topic: &str, expected: usize, timeout: Duration) -> Result<Vec<OwnedMessage>> {
    let consumer = assigned_from_beginning(topic)?;
    let deadline = Instant::now() + timeout;
    let mut grace_until: Option<Instant> = None;
    let mut out = Vec::with_capacity(expected.min(1 << 20));
    loop {
        let now = Instant::now();
        if now >= deadline || grace_until.is_some_and(|g| now >= g) {
            return Ok(out);
        }
        if let Some(r) = consumer.poll(Duration::from_millis(50)) {
            let m = r.with_context(|| format!("reading {topic:?}"))?;
            out.push(m.detach());
        }
        if grace_until.is_none() && out.len() >= expected {
            grace_until = Some(Instant::now() + Duration::from_millis(500));
        }
    }
}

/// Read `topic` from the beginning until every partition's high watermark
/// (as of the call) is reached. Fails on timeout, saying how far it got.
pub fn read_to_end(topic: &str, timeout: Duration) -> Result<Vec<OwnedMessage>> {
    let ends = high_watermarks(topic)?;
    let consumer = assigned_from_beginning(topic)?;
    let deadline = Instant::now() + timeout;
    let mut next: BTreeMap<i32, i64> = ends.keys().map(|&p| (p, 0)).collect();
    let mut out = Vec::new();
    let total: i64 = ends.values().sum();
    while ends.iter().any(|(p, end)| next[p] < *end) {
        if Instant::now() >= deadline {
            bail!(
                "reading {topic:?} to its end timed out after {} records: at {next:?}, end {ends:?}",
                out.len()
            );
        }
        if let Some(r) = consumer.poll(Duration::from_millis(50)) {
            let m = r.with_context(|| format!("reading {topic:?}"))?;
            next.insert(m.partition(), m.offset() + 1);
            out.push(m.detach());
        }
    }
    debug_assert!(out.len() as i64 <= total);
    Ok(out)
}

fn assigned_from_beginning(topic: &str) -> Result<BaseConsumer> {
    let consumer = consumer(None)?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions_with(&consumer, topic)? {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer
        .assign(&tpl)
        .with_context(|| format!("cannot assign the partitions of {topic:?}"))?;
    Ok(consumer)
}

/// The committed offset of `group` for every partition of `topic`
/// (`None`: nothing committed).
pub fn committed(group: &str, topic: &str) -> Result<BTreeMap<i32, Option<i64>>> {
    Watcher::new(topic, Some(group))?.committed()
}

/// The high watermark (offset of the next record to be written) of every
/// partition of `topic`.
pub fn high_watermarks(topic: &str) -> Result<BTreeMap<i32, i64>> {
    Watcher::new(topic, None)?.high_watermarks()
}

/// One client kept open to ask about a topic (and optionally a group's
/// committed offsets on it) repeatedly and cheaply, e.g. in a polling loop.
pub struct Watcher {
    consumer: BaseConsumer,
    topic: String,
    group: Option<String>,
    partitions: Vec<i32>,
}

impl Watcher {
    /// Watch `topic`, and `group`'s commits on it if given. A consumer that
    /// never subscribes does not join the group; it only asks the group
    /// coordinator for committed offsets.
    pub fn new(topic: &str, group: Option<&str>) -> Result<Watcher> {
        let consumer = consumer(group)?;
        let partitions = partitions_with(&consumer, topic)?;
        Ok(Watcher {
            consumer,
            topic: topic.to_owned(),
            group: group.map(str::to_owned),
            partitions,
        })
    }

    /// The topic's partition ids.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// The high watermark of every partition.
    pub fn high_watermarks(&self) -> Result<BTreeMap<i32, i64>> {
        let mut out = BTreeMap::new();
        for &p in &self.partitions {
            let (_, high) = self
                .consumer
                .fetch_watermarks(&self.topic, p, REQUEST_TIMEOUT)
                .with_context(|| format!("cannot fetch the watermarks of {:?}/{p}", self.topic))?;
            out.insert(p, high);
        }
        Ok(out)
    }

    /// The sum of the high watermarks.
    pub fn total(&self) -> Result<i64> {
        Ok(self.high_watermarks()?.values().sum())
    }

    /// The group's committed offset per partition (`None`: nothing
    /// committed). Fails if the watcher was made without a group.
    pub fn committed(&self) -> Result<BTreeMap<i32, Option<i64>>> {
        let Some(group) = &self.group else {
            bail!("this watcher of {:?} has no group", self.topic);
        };
        let mut tpl = TopicPartitionList::new();
        for &p in &self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        let tpl = self
            .consumer
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .with_context(|| format!("cannot fetch the committed offsets of group {group:?}"))?;
        Ok(tpl
            .elements()
            .iter()
            .map(|e| {
                let o = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                (e.partition(), o)
            })
            .collect())
    }
}

/// The sum of committed offsets (partitions without a commit count as 0).
pub fn committed_total(committed: &BTreeMap<i32, Option<i64>>) -> i64 {
    committed.values().map(|o| o.unwrap_or(0)).sum()
}

/// The sum of [`high_watermarks`]: how many records `topic` holds (for
/// topics that were never compacted or truncated).
pub fn total_records(topic: &str) -> Result<i64> {
    Ok(high_watermarks(topic)?.values().sum())
}

/// Whether `committed` covers every record below `ends` (a partition with
/// no records needs no commit).
pub fn is_committed_to_end(
    committed: &BTreeMap<i32, Option<i64>>,
    ends: &BTreeMap<i32, i64>,
) -> bool {
    ends.iter()
        .all(|(p, &end)| end == 0 || committed.get(p).copied().flatten() >= Some(end))
}

/// Wait until `group` has committed, on every partition of `topic`, the
/// high watermark as of the call. Returns the committed offsets.
pub fn wait_until_committed_to_end(
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<i32, Option<i64>>> {
    wait_until_committed_to_end_while(group, topic, timeout, || Ok(()))
}

/// [`wait_until_committed_to_end`], calling `check` on every round so the
/// caller can give up early (e.g. when the runner process died).
pub fn wait_until_committed_to_end_while(
    group: &str,
    topic: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<()>,
) -> Result<BTreeMap<i32, Option<i64>>> {
    let watcher = Watcher::new(topic, Some(group))?;
    let ends = watcher.high_watermarks()?;
    let deadline = Instant::now() + timeout;
    loop {
        let c = watcher.committed()?;
        if is_committed_to_end(&c, &ends) {
            return Ok(c);
        }
        check()?;
        if Instant::now() >= deadline {
            bail!(
                "group {group:?} did not commit to the end of {topic:?} within {timeout:?}: committed {c:?}, end {ends:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The distinct partitions `messages` came from.
pub fn partitions_of(messages: &[OwnedMessage]) -> BTreeSet<i32> {
    messages.iter().map(|m| m.partition()).collect()
}

/// A message's value as UTF-8 text (empty for a tombstone).
pub fn value_str(m: &OwnedMessage) -> Result<&str> {
    std::str::from_utf8(m.payload().unwrap_or_default()).with_context(|| {
        format!(
            "value at {}/{} offset {} is not UTF-8",
            m.topic(),
            m.partition(),
            m.offset()
        )
    })
}

/// The type of `group` as the broker lists it (`Classic` or `Consumer`,
/// the KIP-848 protocol), through Kafka's own `GroupsCommand`.
pub fn group_type(group: &str) -> Result<String> {
    let out = std::process::Command::new("bash")
        .arg(crate::runner::workspace_root().join("deploy/kafka/kafka.sh"))
        .args(["run-class", "org.apache.kafka.tools.GroupsCommand"])
        .args(["--bootstrap-server", &bootstrap(), "--list"])
        .output()
        .context("cannot run Kafka's GroupsCommand")?;
    ensure!(
        out.status.success(),
        "GroupsCommand --list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout)?;
    listing
        .lines()
        .find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(group)).then(|| cols.next().unwrap_or_default().to_owned())
        })
        .with_context(|| format!("group {group:?} is not listed:\n{listing}"))
}
