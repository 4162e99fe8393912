//! The one description of a deployment: the module it runs and how — a
//! [`Spec`] with a typed [`Kind`] (a consumer reads topics under a group,
//! a producer is called over HTTP and on a schedule).
//!
//! The config file's `[[deployment]]`, the API's body, PATCH and the state
//! records all write a spec in one flat form ([`Fields`], below: its field
//! list exists once), which is read into a `Spec` and checked in one place
//! ([`Spec::validate`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::settings::{
    BatchConfig, FailureConfig, IngestConfig, LimitsConfig, Scalar, ScheduleConfig, StartPosition,
};

/// A spec that breaks a rule; the message names the deployment and the
/// setting, and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("deployment {deployment:?}: {problem}")]
pub struct InvalidSpec {
    /// The deployment's name.
    pub deployment: String,
    /// What is wrong and what would be right.
    pub problem: String,
}

/// `sha256:<64 hex digits>` of a component's bytes: how uploaded modules
/// are named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(bytes))
        ))
    }

    /// `text` if it is a digest (lower-case hex).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.strip_prefix("sha256:") {
            Some(hex)
                if hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Ok(Self(text.to_owned()))
            }
            _ => Err(format!(
                "module {text:?} is not a module digest (`sha256:` and 64 lower-case hex digits, as the upload returns)"
            )),
        }
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The module a deployment runs: an uploaded one (API deployments) or a
/// file (config-file deployments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRef {
    /// An uploaded module in the registry, by the digest the upload
    /// returned (written `sha256:<hex>`).
    Digest(Digest),
    /// A `.wasm` file on the runner's disk, as a config-file deployment
    /// names it (any text not starting `sha256:`).
    File(PathBuf),
}

impl ModuleRef {
    /// A digest if `text` starts `sha256:`, else a file path.
    fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("`module` is empty: name a module digest or a .wasm file".into());
        }
        if text.starts_with("sha256:") {
            return Digest::parse(text).map(Self::Digest);
        }
        Ok(Self::File(PathBuf::from(text)))
    }

    /// The digest, for an uploaded module.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Self::Digest(d) => Some(d),
            Self::File(_) => None,
        }
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Digest(d) => d.fmt(f),
            Self::File(p) => p.display().fmt(f),
        }
    }
}

/// Which ingesta world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// Exports `handler`: consumes batches of Kafka records.
    Consumer,
    /// Exports `source`: turns HTTP requests and timer ticks into records.
    Producer,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Consumer => "consumer",
            World::Producer => "producer",
        })
    }
}

/// What a consumer reads and how it batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// Topics to consume.
    pub inputs: Vec<String>,
    /// The consumer group: always named, never derived.
    pub group: String,
    /// Where a new group starts.
    pub start: StartPosition,
    /// How records are grouped into calls.
    pub batch: BatchConfig,
}

/// How a producer is called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerSettings {
    /// Its HTTP ingestion endpoint.
    pub ingest: IngestConfig,
    /// Its timer, if it is a generator.
    pub schedule: Option<ScheduleConfig>,
}

/// Which world a deployment's module implements, with the settings only
/// that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Reads input topics under a consumer group (the spec has `inputs`).
    Consumer(ConsumerSettings),
    /// Called over HTTP and on a schedule (the spec has no `inputs`).
    Producer(ProducerSettings),
}

impl Kind {
    /// The consumer settings, for a consumer.
    pub fn consumer(&self) -> Option<&ConsumerSettings> {
        match self {
            Kind::Consumer(c) => Some(c),
            Kind::Producer(_) => None,
        }
    }

    /// The producer settings, for a producer.
    pub fn producer(&self) -> Option<&ProducerSettings> {
        match self {
            Kind::Producer(p) => Some(p),
            Kind::Consumer(_) => None,
        }
    }

    /// The WIT world a module of this kind implements.
    pub fn world(&self) -> World {
        match self {
            Kind::Consumer(_) => World::Consumer,
            Kind::Producer(_) => World::Producer,
        }
    }
}

/// One revision of a deployment: what runs and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Fields", into = "Fields")]
pub struct Spec {
    /// The component it runs; its world must match `kind`.
    pub module: ModuleRef,
    /// Consumer or producer, decided by whether `inputs` are given, with
    /// the settings only that kind has.
    pub kind: Kind,
    /// Topics the module may emit to; anything else is refused.
    pub outputs: Vec<String>,
    /// Sandbox limits of its instances.
    pub limits: LimitsConfig,
    /// Retries, dead-lettering and poison-record isolation.
    pub failure: FailureConfig,
    /// Values the module reads through the `config` import.
    pub config: BTreeMap<String, Scalar>,
}

/// A spec in its written form: flat, every table optional with its
/// defaults, unknown keys refused. This is the only list of a spec's
/// fields; the typed [`Spec`] is read from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Fields {
    /// A module digest (`sha256:<hex>`, as the upload returns) or, in the
    /// config file, a `.wasm` file.
    pub module: String,
    /// Topics to consume (consumer modules; a producer has none).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// The Kafka consumer group (required for consumer modules, never
    /// derived; a producer has none).
    #[serde(default)]
    pub group: String,
    /// Topics the module may emit to.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Where the group starts when the deployment is created (consumers).
    #[serde(default)]
    pub start: StartPosition,
    /// How records are grouped into one call (consumers).
    #[serde(default)]
    pub batch: BatchConfig,
    /// Sandbox limits: memory per instance; deadline, fuel and outputs
    /// per call; the guest-log rate.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Retries, backoff and the dead-letter topic for calls that fail.
    #[serde(default)]
    pub failure: FailureConfig,
    /// Values the module reads through the `config` import.
    #[serde(default)]
    pub config: BTreeMap<String, Scalar>,
    /// Producer modules: the HTTP ingestion endpoint `/v1/ingest/<name>`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub ingest: IngestConfig,
    /// Producer modules: call the module on a timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleConfig>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl TryFrom<Fields> for Spec {
    type Error = String;

    /// The kind is decided here, once: inputs make a consumer.
    fn try_from(f: Fields) -> Result<Self, String> {
        let module = ModuleRef::parse(&f.module)?;
        let kind = if f.inputs.is_empty() {
            if !f.group.is_empty() {
                return Err("`group` is set but `inputs` is empty: a consumer needs input topics, and a producer has no group".into());
            }
            if f.start != StartPosition::default() {
                return Err("`start` is for consumers; a producer has no input to start in".into());
            }
            if f.batch != BatchConfig::default() {
                return Err(
                    "`batch` is for consumers; a producer takes one request or tick per call"
                        .into(),
                );
            }
            Kind::Producer(ProducerSettings {
                ingest: f.ingest,
                schedule: f.schedule,
            })
        } else {
            if f.schedule.is_some() || f.ingest != IngestConfig::default() {
                return Err(
                    "`schedule` and `ingest` are for producer modules, which have no `inputs`"
                        .into(),
                );
            }
            Kind::Consumer(ConsumerSettings {
                inputs: f.inputs,
                group: f.group,
                start: f.start,
                batch: f.batch,
            })
        };
        Ok(Spec {
            module,
            kind,
            outputs: f.outputs,
            limits: f.limits,
            failure: f.failure,
            config: f.config,
        })
    }
}

impl From<Spec> for Fields {
    fn from(s: Spec) -> Self {
        let (consumer, producer) = match s.kind {
            Kind::Consumer(c) => (Some(c), ProducerSettings::default()),
            Kind::Producer(p) => (None, p),
        };
        let consumer = consumer.unwrap_or(ConsumerSettings {
            inputs: Vec::new(),
            group: String::new(),
            start: StartPosition::default(),
            batch: BatchConfig::default(),
        });
        Fields {
            module: s.module.to_string(),
            inputs: consumer.inputs,
            group: consumer.group,
            outputs: s.outputs,
            start: consumer.start,
            batch: consumer.batch,
            limits: s.limits,
            failure: s.failure,
            config: s.config,
            ingest: producer.ingest,
            schedule: producer.schedule,
        }
    }
}

/// A spec written beside other keys (the config file's `name` and `kafka`,
/// the API's `name` and `paused`): takes `keys` out of `object` and reads
/// the rest as a spec, so an unknown (misspelt) key is still refused —
/// which `#[serde(flatten)]` would let through.
pub fn spec_beside(
    mut object: serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Result<(serde_json::Map<String, serde_json::Value>, Spec), String> {
    let mut taken = serde_json::Map::new();
    for k in keys {
        if let Some(v) = object.remove(*k) {
            taken.insert((*k).to_owned(), v);
        }
    }
    Ok((taken, read(serde_json::Value::Object(object))?))
}

/// A spec from its written form; an error names the field at fault
/// (`limits.memory_mib: invalid type...`).
pub fn read(value: serde_json::Value) -> Result<Spec, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })
}

impl Spec {
    /// The spec as the flat JSON object it is written as.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => unreachable!("a spec serializes to an object"),
        }
    }

    /// A consumer's input topics (a producer has none).
    pub fn inputs(&self) -> &[String] {
        self.kind.consumer().map_or(&[], |c| c.inputs.as_slice())
    }

    /// A consumer's group; `None` for a producer.
    pub fn group(&self) -> Option<&str> {
        self.kind.consumer().map(|c| c.group.as_str())
    }

    /// A consumer's group and input topics; `None` for a producer.
    pub fn group_and_inputs(&self) -> Option<(String, Vec<String>)> {
        let c = self.kind.consumer()?;
        Some((c.group.clone(), c.inputs.clone()))
    }

    /// Every topic it reads or writes, with its role (`input`, `output`,
    /// `dead-letter`).
    pub fn topics(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.inputs()
            .iter()
            .map(|t| ("input", t.as_str()))
            .chain(self.outputs.iter().map(|t| ("output", t.as_str())))
            .chain(
                self.failure
                    .dead_letter_topic
                    .iter()
                    .map(|t| ("dead-letter", t.as_str())),
            )
    }

    /// Check every rule the types cannot express, for the deployment
    /// `name`. The one place a spec is validated.
    pub fn validate(&self, name: &str) -> Result<(), InvalidSpec> {
        let fail = |problem: String| {
            Err(InvalidSpec {
                deployment: name.to_owned(),
                problem,
            })
        };
        if !is_valid_name(name.rsplit('/').next().unwrap_or(name)) {
            return fail("the name must be 1-63 characters of a-z, 0-9, '-' or '_'".into());
        }
        if let Some(problem) = self.problem() {
            return fail(problem);
        }
        Ok(())
    }

    fn problem(&self) -> Option<String> {
        for (role, topic) in self.topics() {
            if !is_valid_topic(topic) {
                return Some(format!(
                    "{role} topic {topic:?} is not a valid Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"
                ));
            }
        }
        match &self.kind {
            Kind::Consumer(c) => consumer_problem(c, &self.outputs, &self.failure),
            Kind::Producer(p) => producer_problem(p),
        }
        .or_else(|| limits_problem(&self.limits))
        .or_else(|| failure_problem(&self.failure))
    }
}

fn consumer_problem(
    c: &ConsumerSettings,
    outputs: &[String],
    failure: &FailureConfig,
) -> Option<String> {
    if let Some(t) = outputs.iter().find(|t| c.inputs.contains(t)) {
        return Some(format!(
            "topic {t:?} is both an input and an output, which would loop forever"
        ));
    }
    if let Some(t) = failure
        .dead_letter_topic
        .as_ref()
        .filter(|t| c.inputs.contains(t))
    {
        return Some(format!(
            "failure.dead_letter_topic {t:?} is also an input, which would loop forever"
        ));
    }
    if c.group.trim().is_empty() {
        return Some("`group` must not be empty".into());
    }
    let b = &c.batch;
    if b.max_records == 0 || b.max_records > 100_000 {
        return Some("batch.max_records must be between 1 and 100000".into());
    }
    if b.max_bytes < 1024 || b.max_bytes > 256 * 1024 * 1024 {
        return Some("batch.max_bytes must be between 1 KiB and 256 MiB".into());
    }
    if b.max_wait_ms > 60_000 {
        return Some("batch.max_wait_ms must be at most 60000".into());
    }
    None
}

fn producer_problem(p: &ProducerSettings) -> Option<String> {
    if let Some(s) = &p.schedule {
        if !(10..=86_400_000).contains(&s.interval_ms) {
            return Some("schedule.interval_ms must be between 10 and 86400000 (a day)".into());
        }
        if s.max_records_per_second == Some(0) {
            return Some(
                "schedule.max_records_per_second must be at least 1 (or unset for no limit)".into(),
            );
        }
    }
    let i = &p.ingest;
    if i.max_body_bytes == 0 || i.max_body_bytes > 64 << 20 {
        return Some("ingest.max_body_bytes must be between 1 and 67108864 (64 MiB)".into());
    }
    // Each request in flight holds an instance of the runner-wide pool.
    if i.max_concurrency == 0 || i.max_concurrency > 256 {
        return Some("ingest.max_concurrency must be between 1 and 256".into());
    }
    if i.ack_timeout_ms == 0 || i.ack_timeout_ms > 600_000 {
        return Some("ingest.ack_timeout_ms must be between 1 and 600000".into());
    }
    if let Some(h) = &i.key_sha256
        && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Some(
            "ingest.key_sha256 must be 64 hex digits (`echo -n KEY | ingesta hash-token`)".into(),
        );
    }
    None
}

fn limits_problem(l: &LimitsConfig) -> Option<String> {
    if l.memory_mib == 0 || l.memory_mib > 4096 {
        return Some("limits.memory_mib must be between 1 and 4096".into());
    }
    if l.deadline_ms == 0 || l.deadline_ms > 600_000 {
        return Some("limits.deadline_ms must be between 1 and 600000".into());
    }
    if l.fuel == Some(0) {
        return Some("limits.fuel must be at least 1 (or unset for no metering)".into());
    }
    if !(1..=1_000_000).contains(&l.max_output_records) {
        return Some("limits.max_output_records must be between 1 and 1000000".into());
    }
    if !(1..=256 << 20).contains(&l.max_output_bytes) {
        return Some("limits.max_output_bytes must be between 1 and 268435456 (256 MiB)".into());
    }
    if l.log_lines_per_second > 100_000 || l.log_burst_lines == 0 || l.log_burst_lines > 1_000_000 {
        return Some("limits.log_lines_per_second must be at most 100000 and limits.log_burst_lines between 1 and 1000000".into());
    }
    if l.max_instances.is_some_and(|n| !(1..=10_000).contains(&n)) {
        return Some(
            "limits.max_instances must be between 1 and 10000 (or unset for no cap of its own)"
                .into(),
        );
    }
    None
}

fn failure_problem(f: &FailureConfig) -> Option<String> {
    if f.max_attempts == 0 || f.max_attempts > 100 {
        return Some("failure.max_attempts must be between 1 and 100".into());
    }
    if f.backoff_initial_ms > f.backoff_max_ms {
        return Some("failure.backoff_initial_ms must not exceed failure.backoff_max_ms".into());
    }
    None
}

/// Deployment names end up in group ids, metric labels and headers.
pub fn is_valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Kafka's own rule for topic names.
pub fn is_valid_topic(topic: &str) -> bool {
    (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn spec(v: serde_json::Value) -> Result<Spec, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn inputs_make_a_consumer_and_their_absence_a_producer() {
        let c = spec(json!({"module": DIGEST, "inputs": ["in"], "group": "g"})).unwrap();
        let Kind::Consumer(cs) = &c.kind else {
            panic!("{c:?}")
        };
        assert_eq!((cs.group.as_str(), cs.batch.max_records), ("g", 500));
        let p = spec(json!({"module": DIGEST, "schedule": {"interval_ms": 100}})).unwrap();
        assert_eq!(
            p.kind
                .producer()
                .unwrap()
                .schedule
                .as_ref()
                .unwrap()
                .interval_ms,
            100
        );
    }

    #[test]
    fn settings_of_the_other_kind_are_refused_by_name() {
        let cases = [
            (json!({"module": DIGEST, "group": "g"}), "`group` is set"),
            (
                json!({"module": DIGEST, "start": "latest"}),
                "`start` is for consumers",
            ),
            (
                json!({"module": DIGEST, "batch": {"max_records": 2}}),
                "`batch` is for consumers",
            ),
            (
                json!({"module": DIGEST, "inputs": ["i"], "group": "g", "schedule": {"interval_ms": 100}}),
                "for producer modules",
            ),
            (json!({"module": DIGEST, "grup": "g"}), "grup"),
            (json!({"module": "sha256:xyz"}), "not a module digest"),
            (json!({"module": ""}), "`module` is empty"),
        ];
        for (v, expected) in cases {
            let err = spec(v.clone()).unwrap_err();
            assert!(err.contains(expected), "{v}: {err}");
        }
    }

    #[test]
    fn the_written_form_round_trips_as_todays_records_do() {
        // A consumer record as the 0.1 release wrote it.
        let written = json!({
            "module": DIGEST, "inputs": ["a-in"], "group": "a-g", "outputs": ["a-out"],
            "start": "earliest",
            "batch": {"max_records": 500, "max_bytes": 4194304, "max_wait_ms": 5},
            "limits": {"memory_mib": 64, "deadline_ms": 5000, "fuel": null,
                       "max_output_records": 100000, "max_output_bytes": 67108864,
                       "log_lines_per_second": 100, "log_burst_lines": 1000},
            "failure": {"dead_letter_topic": null, "max_attempts": 3,
                        "backoff_initial_ms": 100, "backoff_max_ms": 10000},
            "config": {"k": "v"}
        });
        let s = spec(written.clone()).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), written);
        assert_eq!(s.module.digest().unwrap().as_str(), DIGEST);
    }

    #[test]
    fn validation_names_the_deployment_and_the_setting() {
        let s = |v| spec(v).unwrap();
        let cases = [
            (
                json!({"module": DIGEST, "inputs": ["a"], "group": "g", "outputs": ["a"]}),
                "both an input and an output",
            ),
            (
                json!({"module": DIGEST, "inputs": ["a b"], "group": "g"}),
                "input topic \"a b\"",
            ),
            (
                json!({"module": DIGEST, "inputs": ["a"], "group": " "}),
                "`group` must not be empty",
            ),
            (
                json!({"module": DIGEST, "inputs": ["a"], "group": "g", "limits": {"memory_mib": 0}}),
                "limits.memory_mib",
            ),
            (
                json!({"module": DIGEST, "inputs": ["a"], "group": "g", "limits": {"max_output_bytes": 268_435_457u64}}),
                "limits.max_output_bytes must be between 1 and 268435456",
            ),
            (
                json!({"module": DIGEST, "inputs": ["a"], "group": "g", "limits": {"max_output_records": 1_000_001}}),
                "limits.max_output_records must be between 1 and 1000000",
            ),
            (
                json!({"module": DIGEST, "inputs": ["a"], "group": "g", "limits": {"max_instances": 0}}),
                "limits.max_instances must be between 1 and 10000",
            ),
            (
                json!({"module": DIGEST, "schedule": {"interval_ms": 5}}),
                "schedule.interval_ms",
            ),
            (
                json!({"module": DIGEST, "ingest": {"key_sha256": "abc"}}),
                "ingest.key_sha256",
            ),
            (
                json!({"module": DIGEST, "failure": {"max_attempts": 0}}),
                "failure.max_attempts",
            ),
        ];
        for (v, expected) in cases {
            let err = s(v.clone()).validate("d").unwrap_err();
            assert!(err.to_string().starts_with("deployment \"d\": "), "{err}");
            assert!(err.to_string().contains(expected), "{v}: {err}");
        }
        let ok = s(json!({"module": DIGEST, "inputs": ["a"], "group": "g"}));
        ok.validate("tenant/d").unwrap();
        assert!(ok.validate("Bad Name").is_err());
    }

    #[test]
    fn digests_are_checked() {
        assert_eq!(Digest::of(b"abc").as_str().len(), 71);
        assert!(Digest::parse(DIGEST).is_ok());
        assert!(Digest::parse(&DIGEST.to_uppercase()).is_err());
        assert!(Digest::parse("sha256:12").is_err());
    }
}
