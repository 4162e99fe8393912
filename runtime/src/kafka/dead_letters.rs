//! Working with dead letters: reading a page of a dead-letter topic (the
//! records one deployment set aside, with the `ingesta.*` provenance
//! headers the lane wrote, see `pipeline::failure`, decoded), and
//! redriving chosen ones into the deployment's own redrive topic, which it
//! reads beside its inputs. Reading never joins a group or commits.
//! Blocking: call from a blocking task.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use super::group_admin_config;
use crate::api::{
    DeadLetter, DeadLetterCursor, DeadLetterError, DeadLetterPage, DeadLetterSource, Payload,
    RedriveReport,
};
use crate::config::KafkaConfig;

/// Why a page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The reading client could not be created or assigned; carries
    /// librdkafka's message.
    #[error("cannot read dead-letter topic {topic:?}: {message}")]
    Kafka {
        /// The dead-letter topic.
        topic: String,
        /// librdkafka's message.
        message: String,
    },
    /// Kafka did not answer within the request's time.
    #[error(
        "dead-letter topic {topic:?} partition {partition} did not answer within {timeout:?}; try again"
    )]
    Timeout {
        /// The dead-letter topic.
        topic: String,
        /// The partition being read.
        partition: i32,
        /// The request's time.
        timeout: Duration,
    },
}

/// Records of other deployments sharing the topic are skipped, but a page
/// looks at no more than this many records per dead letter asked for.
const SCAN_PER_LETTER: usize = 20;

/// One topic read by assignment, within one deadline: no group joined,
/// nothing committed.
struct Reader {
    consumer: BaseConsumer,
    topic: String,
    deadline: Instant,
    timeout: Duration,
}

impl Reader {
    fn open(kafka: &KafkaConfig, topic: &str, timeout: Duration) -> Result<Self, ReadError> {
        let consumer: BaseConsumer = group_admin_config(kafka, "ingesta-dead-letters")
            .create()
            .map_err(|e| kafka_error(topic, e))?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            deadline: Instant::now() + timeout,
            timeout,
        })
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The topic's partitions in order; none when it does not exist.
    fn partitions(&self) -> Result<Vec<i32>, ReadError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), self.left())
            .map_err(|e| kafka_error(&self.topic, e))?;
        let mut partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        partitions.sort_unstable();
        Ok(partitions)
    }

    /// Hand each record of `partition` from offset `from` to the end (as
    /// of now) to `visit`, until it breaks: then the offset after the
    /// record it broke on.
    fn scan(
        &self,
        partition: i32,
        from: i64,
        mut visit: impl FnMut(&BorrowedMessage<'_>) -> ControlFlow<()>,
    ) -> Result<Option<i64>, ReadError> {
        let error = |e| kafka_error(&self.topic, e);
        let (low, high) = self
            .consumer
            .fetch_watermarks(&self.topic, partition, self.left())
            .map_err(error)?;
        let mut offset = from.max(low);
        if offset >= high {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
            .map_err(error)?;
        self.consumer.assign(&tpl).map_err(error)?;
        while offset < high {
            let left = self.left();
            let message = match self.consumer.poll(left.min(Duration::from_millis(200))) {
                Some(m) => m.map_err(error)?,
                None if left.is_zero() => {
                    return Err(ReadError::Timeout {
                        topic: self.topic.clone(),
                        partition,
                        timeout: self.timeout,
                    });
                }
                None => continue,
            };
            offset = message.offset() + 1;
            if visit(&message).is_break() {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }
}

fn kafka_error(topic: &str, e: rdkafka::error::KafkaError) -> ReadError {
    ReadError::Kafka {
        topic: topic.to_owned(),
        message: e.to_string(),
    }
}

/// Up to `limit` dead letters of `deployment` (its `ingesta.deployment`
/// header) in `topic`, from `from` on, within `timeout`. A topic that does
/// not exist yet (nothing was ever dead-lettered) is an empty page.
pub fn read_page(
    kafka: &KafkaConfig,
    topic: &str,
    deployment: &str,
    from: DeadLetterCursor,
    limit: usize,
    timeout: Duration,
) -> Result<DeadLetterPage, ReadError> {
    let reader = Reader::open(kafka, topic, timeout)?;
    let mut page = DeadLetterPage {
        topic: topic.to_owned(),
        dead_letters: Vec::new(),
        next: None,
    };
    let mut budget = limit.saturating_mul(SCAN_PER_LETTER).max(1);
    for partition in reader.partitions()? {
        if partition < from.partition {
            continue;
        }
        let start = if partition == from.partition {
            from.offset
        } else {
            0
        };
        let stopped = reader.scan(partition, start, |m| {
            budget -= 1;
            if header(m, "ingesta.deployment").as_deref() == Some(deployment) {
                page.dead_letters.push(dead_letter(m));
            }
            if page.dead_letters.len() == limit || budget == 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        if let Some(offset) = stopped {
            page.next = Some(DeadLetterCursor { partition, offset });
            return Ok(page);
        }
    }
    Ok(page)
}

/// Header naming the dead letter a redriven record copies,
/// `<dead-letter topic>/<partition>/<offset>`: how a redrive knows what was
/// redriven before.
pub const REDRIVE_OF: &str = "ingesta.redrive.of";

/// Which dead letters a redrive takes (see [`crate::api::RedriveRequest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Only this partition of the dead-letter topic.
    pub partition: Option<i32>,
    /// First offset taken, in each partition.
    pub from: i64,
    /// Last offset taken, in each partition.
    pub to: i64,
    /// Only this error class.
    pub class: Option<String>,
}

/// Why a redrive did not complete. Copies already written stay (they are
/// recorded in the redrive topic, so asking again goes on from there).
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// Reading the dead-letter or redrive topic failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Creating or writing the redrive topic failed.
    #[error("redrive topic {topic:?}: {message}")]
    Write {
        /// The redrive topic.
        topic: String,
        /// What failed, with Kafka's message.
        message: String,
    },
}

/// Copies are sent once this many are selected; send again for the rest.
const REDRIVE_MAX_LETTERS: usize = 10_000;
/// ... or once their keys and values reach this many bytes.
const REDRIVE_MAX_BYTES: usize = 64 << 20;

/// A redrive's inputs besides the Kafka settings.
pub struct Redrive<'a> {
    /// The deployment's dead-letter topic.
    pub dead_letter_topic: &'a str,
    /// The deployment's key (its dead letters' `ingesta.deployment`).
    pub deployment: &'a str,
    /// The deployment's own redrive topic (created when missing).
    pub redrive_topic: &'a str,
    /// The deployment's input topics: the redrive topic gets as many
    /// partitions as the largest has.
    pub inputs: &'a [String],
    /// Replication factor when creating it (`None`: the broker's default).
    pub replication: Option<i32>,
    /// What to take.
    pub selection: Selection,
    /// Time for the whole redrive.
    pub timeout: Duration,
}

/// Copy the selected dead letters of `r.deployment` not redriven before
/// into its redrive topic, ordered by their source partition and offset,
/// each source partition's copies in one redrive partition. Blocking, and
/// must run where a Tokio runtime is current (a blocking task): creating
/// the topic and awaiting acknowledgements use it.
pub fn redrive(kafka: &KafkaConfig, r: &Redrive<'_>) -> Result<RedriveReport, RedriveError> {
    let runtime = tokio::runtime::Handle::current();
    let partitions = ensure_redrive_topic(kafka, r, &runtime)?;
    let done = redriven_before(kafka, r)?;
    let mut chosen = select(kafka, r, &done)?;
    // One source partition's records go to one redrive partition, in
    // their original order.
    chosen.letters.sort_by(|a, b| {
        (&a.2.topic, a.2.partition, a.2.offset).cmp(&(&b.2.topic, b.2.partition, b.2.offset))
    });
    write_copies(kafka, r, &chosen.letters, partitions, &runtime)?;
    Ok(RedriveReport {
        dead_letter_topic: r.dead_letter_topic.to_owned(),
        redrive_topic: r.redrive_topic.to_owned(),
        redriven: chosen.letters.len() as u64,
        already_redriven: chosen.already,
        more: chosen.more,
    })
}

/// A dead letter to copy: its id (see [`REDRIVE_OF`]), the record, its
/// source.
type Chosen = (String, OwnedMessage, DeadLetterSource);

/// What [`select`] found.
struct Selected {
    letters: Vec<Chosen>,
    /// Selected but redriven before.
    already: u64,
    /// Where the budget ran out.
    more: Option<DeadLetterCursor>,
}

/// The ids of the dead letters earlier redrives copied.
fn redriven_before(kafka: &KafkaConfig, r: &Redrive<'_>) -> Result<HashSet<String>, ReadError> {
    let copies = Reader::open(kafka, r.redrive_topic, r.timeout)?;
    let mut done = HashSet::new();
    for p in copies.partitions()? {
        copies.scan(p, 0, |m| {
            if let Some(of) = header(m, REDRIVE_OF) {
                done.insert(of);
            }
            ControlFlow::Continue(())
        })?;
    }
    Ok(done)
}

/// The deployment's dead letters the selection takes and `done` does not
/// have, up to the budget.
fn select(
    kafka: &KafkaConfig,
    r: &Redrive<'_>,
    done: &HashSet<String>,
) -> Result<Selected, ReadError> {
    let letters = Reader::open(kafka, r.dead_letter_topic, r.timeout)?;
    let s = &r.selection;
    let mut found = Selected {
        letters: Vec::new(),
        already: 0,
        more: None,
    };
    let mut bytes = 0usize;
    let full = |n: usize, bytes: usize| n >= REDRIVE_MAX_LETTERS || bytes >= REDRIVE_MAX_BYTES;
    for p in letters.partitions()? {
        if s.partition.is_some_and(|wanted| wanted != p) {
            continue;
        }
        let stopped = letters.scan(p, s.from, |m| {
            if m.offset() > s.to {
                return ControlFlow::Break(());
            }
            if header(m, "ingesta.deployment").as_deref() != Some(r.deployment) {
                return ControlFlow::Continue(());
            }
            let letter = dead_letter(m);
            if s.class.as_ref().is_some_and(|c| *c != letter.error.class) {
                return ControlFlow::Continue(());
            }
            let id = format!("{}/{p}/{}", r.dead_letter_topic, m.offset());
            if done.contains(&id) {
                found.already += 1;
                return ControlFlow::Continue(());
            }
            bytes += m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len);
            found.letters.push((id, m.detach(), letter.source));
            if full(found.letters.len(), bytes) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        if let Some(offset) = stopped
            && offset <= s.to
            && full(found.letters.len(), bytes)
        {
            found.more = Some(DeadLetterCursor {
                partition: p,
                offset,
            });
            break;
        }
    }
    Ok(found)
}

/// Send the copies, in order, and wait until Kafka has every one.
fn write_copies(
    kafka: &KafkaConfig,
    r: &Redrive<'_>,
    letters: &[Chosen],
    partitions: i32,
    runtime: &tokio::runtime::Handle,
) -> Result<(), RedriveError> {
    let write_error = |message: String| RedriveError::Write {
        topic: r.redrive_topic.to_owned(),
        message,
    };
    let producer: FutureProducer = super::producer_config(kafka)
        .set("client.id", "ingesta-redrive")
        .create()
        .map_err(|e| write_error(e.to_string()))?;
    let mut acks = Vec::with_capacity(letters.len());
    for (id, m, source) in letters {
        let mut headers = OwnedHeaders::new();
        for h in m.headers().iter().flat_map(|hs| hs.iter()) {
            if !h.key.starts_with("ingesta.") {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let from = format!("{}/{}/{}", source.topic, source.partition, source.offset);
        headers = headers
            .insert(Header {
                key: REDRIVE_OF,
                value: Some(id.as_bytes()),
            })
            .insert(Header {
                key: "ingesta.redrive.source",
                value: Some(from.as_bytes()),
            });
        let mut record = FutureRecord::<[u8], [u8]>::to(r.redrive_topic)
            .partition(redrive_partition(
                &source.topic,
                source.partition,
                partitions,
            ))
            .headers(headers);
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        if let Some(value) = m.payload() {
            record = record.payload(value);
        }
        if let Some(ts) = source.timestamp {
            record = record.timestamp(ts);
        }
        let ack = producer
            .send_result(record)
            .map_err(|(e, _)| write_error(format!("cannot send the copy of {id}: {e}")))?;
        acks.push(ack);
    }
    let delivered = runtime
        .block_on(async {
            tokio::time::timeout(r.timeout, futures_util::future::join_all(acks)).await
        })
        .map_err(|_| {
            write_error(format!(
                "copies not acknowledged within {:?}; send the redrive again (what was written is skipped)",
                r.timeout
            ))
        })?;
    for (result, (id, _, _)) in delivered.into_iter().zip(letters) {
        match result {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => {
                return Err(write_error(format!(
                    "the copy of {id} was refused: {e}; send the redrive again (what was written is skipped)"
                )));
            }
            Err(_) => return Err(write_error(format!("the copy of {id} was cancelled"))),
        }
    }
    Ok(())
}

/// Delete a removed deployment's redrive topic; a failure is logged (the
/// topic is left for the operator, named), not returned: the deployment is
/// gone either way.
pub async fn delete_redrive_topic(kafka: &KafkaConfig, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = match super::admin_config(kafka).create() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(%topic, error = %e, "cannot delete the redrive topic of a removed deployment");
            return;
        }
    };
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    match admin
        .delete_topics(&[topic], &options)
        .await
        .map(|mut r| r.pop())
    {
        Ok(Some(Ok(_)) | None) => {
            tracing::info!(%topic, "deleted the redrive topic of a removed deployment")
        }
        Ok(Some(Err((_, code)))) => {
            tracing::warn!(%topic, %code, "cannot delete the redrive topic of a removed deployment; delete it by hand");
        }
        Err(e) => {
            tracing::warn!(%topic, error = %e, "cannot delete the redrive topic of a removed deployment; delete it by hand");
        }
    }
}

/// The redrive partition of source partition `partition` of `topic`.
fn redrive_partition(topic: &str, partition: i32, partitions: i32) -> i32 {
    let mut hash = Sha256::new();
    hash.update(topic.as_bytes());
    hash.update(partition.to_be_bytes());
    let digest = hash.finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (n % partitions.max(1).unsigned_abs()) as i32
}

/// Create the redrive topic if missing (as many partitions as the largest
/// input, kept forever: it is also the record of what was redriven);
/// returns its partition count.
fn ensure_redrive_topic(
    kafka: &KafkaConfig,
    r: &Redrive<'_>,
    runtime: &tokio::runtime::Handle,
) -> Result<i32, RedriveError> {
    let write_error = |message: String| RedriveError::Write {
        topic: r.redrive_topic.to_owned(),
        message,
    };
    let admin: AdminClient<DefaultClientContext> = super::admin_config(kafka)
        .create()
        .map_err(|e| write_error(e.to_string()))?;
    let count = |topic: &str| -> Result<i32, RedriveError> {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), r.timeout)
            .map_err(|e| write_error(format!("cannot read the metadata of {topic:?}: {e}")))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .sum())
    };
    let existing = count(r.redrive_topic)?;
    if existing > 0 {
        return Ok(existing);
    }
    let mut partitions = 1;
    for input in r.inputs {
        partitions = partitions.max(count(input)?);
    }
    let topic = NewTopic::new(
        r.redrive_topic,
        partitions,
        TopicReplication::Fixed(r.replication.unwrap_or(-1)),
    )
    .set("retention.ms", "-1");
    let created = runtime.block_on(admin.create_topics(
        [&topic],
        &AdminOptions::new().operation_timeout(Some(r.timeout)),
    ));
    match created
        .map_err(|e| write_error(format!("cannot create it: {e}")))?
        .pop()
    {
        Some(Ok(_)) | Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => {}
        Some(Err((_, code))) => {
            return Err(write_error(format!(
                "cannot create it: {code}; the runner needs CreateTopics on it"
            )));
        }
    }
    tracing::info!(
        topic = r.redrive_topic,
        deployment = r.deployment,
        partitions,
        "created the deployment's redrive topic"
    );
    // Metadata may lag the creation by a moment.
    for _ in 0..50 {
        let n = count(r.redrive_topic)?;
        if n > 0 {
            return Ok(n);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(partitions)
}

/// The last value of header `name` as text.
fn header(m: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Bytes as text when they are UTF-8, else as base64.
fn payload(bytes: Option<&[u8]>) -> Option<Payload> {
    bytes.map(|b| match std::str::from_utf8(b) {
        Ok(text) => Payload {
            text: Some(text.to_owned()),
            base64: None,
        },
        Err(_) => Payload {
            text: None,
            base64: Some(base64::engine::general_purpose::STANDARD.encode(b)),
        },
    })
}

fn dead_letter(m: &BorrowedMessage<'_>) -> DeadLetter {
    // The provenance headers, read once (the last of a name wins).
    let mut provenance: HashMap<&str, String> = HashMap::new();
    let mut headers = Vec::new();
    for h in m.headers().iter().flat_map(|hs| hs.iter()) {
        match h.key.strip_prefix("ingesta.") {
            Some(name) => {
                let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                provenance.insert(name, value.into_owned());
            }
            None => headers.push((h.key.to_owned(), payload(h.value))),
        }
    }
    let text = |name: &str| provenance.get(name).cloned();
    let number = |name: &str| provenance.get(name).and_then(|v| v.parse::<i64>().ok());
    DeadLetter {
        partition: m.partition(),
        offset: m.offset(),
        key: payload(m.key()),
        value: payload(m.payload()),
        headers,
        source: DeadLetterSource {
            topic: text("source.topic").unwrap_or_default(),
            partition: number("source.partition")
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(-1),
            offset: number("source.offset").unwrap_or(-1),
            timestamp: number("source.timestamp"),
        },
        error: DeadLetterError {
            class: text("error.class").unwrap_or_default(),
            message: text("error.message").unwrap_or_default(),
            attempts: number("error.attempts")
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
        },
        module: text("module.digest"),
    }
}
