//! The runner's TOML configuration: parsing, defaults and validation.
//!
//! Every table denies unknown keys, so a typo (`grup = "x"`) is an error that
//! names the key and its line rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors found while reading or validating a config file.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to reach Kafka; shared by every deployment.
    pub kafka: KafkaConfig,
    /// Runner-wide settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The deployments this runner runs (`[[deployment]]` tables).
    #[serde(default, rename = "deployment")]
    pub deployments: Vec<DeploymentConfig>,
    /// The HTTP control plane; unset means none is served.
    pub control: Option<ControlConfig>,
}

/// The HTTP control plane (`[control]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Address to listen on, e.g. `"127.0.0.1:8480"`.
    pub listen: std::net::SocketAddr,
    /// Prefix of the two compacted topics holding the control plane's
    /// state (`<prefix>deployments`, `<prefix>modules`). Runners sharing a
    /// prefix (and Kafka) share their deployments and modules.
    #[serde(default = "default_state_prefix")]
    pub state_topic_prefix: String,
    /// Replication factor of the state topics when ingesta creates them;
    /// unset uses the broker's default.
    pub state_replication_factor: Option<i32>,
    /// Largest accepted module upload, in MiB.
    #[serde(default = "default_max_module_mib")]
    pub max_module_mib: u64,
    /// Hex SHA-256 of the operator's bearer token (`ingesta hash-token`);
    /// the operator sees every tenant.
    pub operator_token_sha256: Option<String>,
    /// Tenants and their grants (`[[control.tenant]]`).
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<crate::control::auth::TenantConfig>,
}

fn default_max_module_mib() -> u64 {
    32
}

fn default_state_prefix() -> String {
    "_ingesta.".into()
}

/// Kafka connection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `"127.0.0.1:9092"`.
    pub bootstrap_servers: String,
    /// librdkafka properties for every client (TLS, SASL, timeouts...).
    #[serde(default)]
    pub properties: BTreeMap<String, Scalar>,
    /// librdkafka properties for the shared producers only (deployment
    /// outputs and ingest).
    #[serde(default)]
    pub producer: BTreeMap<String, Scalar>,
    /// librdkafka properties for the ingest producer only (what producer
    /// deployments publish; `linger.ms` is 0 there unless set here).
    #[serde(default)]
    pub ingest_producer: BTreeMap<String, Scalar>,
    /// librdkafka properties for every deployment's consumer.
    #[serde(default)]
    pub consumer: BTreeMap<String, Scalar>,
}

/// Runner-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Where compiled modules are cached, keyed by content digest.
    /// Defaults to `$XDG_CACHE_HOME/ingesta/compiled` (or `~/.cache/...`).
    pub compile_cache_dir: Option<PathBuf>,
    /// How often the epoch ticker advances, which bounds how late a deadline
    /// is noticed and how often a long call yields to its neighbours.
    pub epoch_tick_ms: u64,
    /// How long shutdown or a partition revocation waits for in-flight
    /// batches before giving up on them (they are then re-delivered).
    pub drain_timeout_ms: u64,
    /// How long an assigned input partition with records waiting may make
    /// no progress before it is reported as stalled (a warning, a metric
    /// and a note in the deployment's status).
    pub stall_timeout_ms: u64,
    /// Wasm call stack per instance, in KiB; deeper recursion traps.
    pub wasm_stack_kib: u64,
    /// Compile modules with fuel metering, so deployments created over the
    /// API may set `limits.fuel`. Metering costs every deployment some
    /// speed (see docs/benchmarks.md), so it is off unless asked for or a
    /// config-file deployment sets a fuel limit.
    pub fuel_metering: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            compile_cache_dir: None,
            epoch_tick_ms: 10,
            drain_timeout_ms: 30_000,
            stall_timeout_ms: 30_000,
            wasm_stack_kib: 512,
            fuel_metering: false,
        }
    }
}

/// Where a deployment starts on the partitions its input topics have when
/// it is created (or replayed): `"earliest"`, `"latest"`, or
/// `{ timestamp = <ms since epoch> }` (the first record at or after that
/// time). The position is committed for the group then, so a partition
/// without a committed offset is one that appeared later: it begins at its
/// first offset, since all its records are newer than the deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    #[default]
    Earliest,
    Latest,
    Timestamp(i64),
}

/// One module and how it runs: a consumer bound to input topics under an
/// explicit consumer group, or a producer (HTTP ingestion and/or a
/// schedule), which has neither inputs nor group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Unique name; appears in logs, metrics and dead-letter headers.
    pub name: String,
    /// Path of the wasm component (relative paths are resolved against the
    /// config file's folder).
    pub module: PathBuf,
    /// Topics to consume (consumers only).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// The Kafka consumer group (consumers only). Required for them:
    /// groups are never derived implicitly, so operators can see and
    /// grant them.
    #[serde(default)]
    pub group: String,
    /// Topics the module may emit to; anything else is refused.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Where to start without a committed offset.
    #[serde(default)]
    pub start: StartPosition,
    /// Batching of records handed to one call.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Sandbox limits for this deployment's instances.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Retries, dead-lettering and poison-record isolation.
    #[serde(default)]
    pub failure: FailureConfig,
    /// Values the module reads through the `config` import.
    #[serde(default)]
    pub config: BTreeMap<String, Scalar>,
    /// librdkafka consumer properties for this deployment only.
    #[serde(default)]
    pub kafka: BTreeMap<String, Scalar>,
    /// How a producer deployment's HTTP ingestion endpoint behaves.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Call a producer deployment's module on a timer (a generator).
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
}

/// A producer deployment's endpoint `/v1/ingest/<name>` (`ingest`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest request body accepted; larger ones are answered 413 before
    /// the module runs.
    pub max_body_bytes: usize,
    /// Requests handled at once by this runner, at most 256 (each holds an
    /// instance of the runner-wide pool); more are answered 429 with
    /// `Retry-After` (back-pressure, not a queue).
    pub max_concurrency: u32,
    /// How long a request waits for Kafka to acknowledge what it emitted
    /// before it is answered 503 with `Retry-After`. The records may still
    /// be delivered later, so a client that retries may cause duplicates
    /// (at-least-once), never a loss.
    pub ack_timeout_ms: u64,
    /// Hex SHA-256 of a key that may call the endpoint besides the
    /// tenant's token (`echo -n KEY | ingesta hash-token`): give webhook
    /// senders this key, not a token that can manage deployments.
    pub key_sha256: Option<String>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_concurrency: 64,
            ack_timeout_ms: 10_000,
            key_sha256: None,
        }
    }
}

/// A producer deployment's timer (`schedule`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Time between the starts of two ticks. A tick that runs late delays
    /// the next; missed ticks are not made up in a burst.
    pub interval_ms: u64,
    /// Most records per second the ticks may publish, on average: after a
    /// tick published `n` records the next starts no sooner than `n / rate`
    /// seconds after it. Unset: no limit beyond the interval.
    #[serde(default)]
    pub max_records_per_second: Option<u64>,
}

/// How records are grouped into calls.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most records in one call.
    pub max_records: usize,
    /// Most key+value+header bytes in one call.
    pub max_bytes: usize,
    /// How long a partial batch waits for more records before it is handed
    /// over anyway; bounds the latency a batch adds.
    pub max_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_bytes: 4 * 1024 * 1024,
            max_wait_ms: 5,
        }
    }
}

/// Sandbox limits of one deployment's instances.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Linear memory cap per instance, in MiB.
    pub memory_mib: u64,
    /// Wall-clock budget of one call, in milliseconds.
    pub deadline_ms: u64,
    /// Fuel (roughly, wasm instructions) one call may burn; unset means no
    /// fuel metering. Deterministic where the deadline is wall-clock.
    pub fuel: Option<u64>,
    /// Most records one call may emit.
    pub max_output_records: u64,
    /// Most key+value+header bytes one call may emit.
    pub max_output_bytes: u64,
    /// Guest log lines (log calls and stdout/stderr lines) per second the
    /// deployment may write on average; the rest are dropped and counted.
    pub log_lines_per_second: u32,
    /// Lines the deployment may write at once before the rate applies.
    pub log_burst_lines: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            memory_mib: 64,
            deadline_ms: 5_000,
            fuel: None,
            max_output_records: 100_000,
            max_output_bytes: 64 << 20,
            log_lines_per_second: 100,
            log_burst_lines: 1_000,
        }
    }
}

/// What happens when a handler fails.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FailureConfig {
    /// Where records that cannot be processed go, with headers saying why.
    /// Without one, such a record stops the deployment (it is never skipped).
    pub dead_letter_topic: Option<String>,
    /// Attempts for a retryable error (and for a single record that traps)
    /// before the record is isolated and dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles on every further attempt.
    pub backoff_initial_ms: u64,
    /// Longest retry delay.
    pub backoff_max_ms: u64,
}

impl Default for FailureConfig {
    fn default() -> Self {
        Self {
            dead_letter_topic: None,
            max_attempts: 3,
            backoff_initial_ms: 100,
            backoff_max_ms: 10_000,
        }
    }
}

/// A TOML scalar used where the value is ultimately a string (config maps,
/// librdkafka properties), so users may write `linger.ms = 5` or `"5"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Scalar(#[serde(deserialize_with = "scalar_to_string")] pub String);

fn scalar_to_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a string, number or boolean"))?
        {
            Raw::S(s) => s,
            Raw::I(i) => i.to_string(),
            Raw::F(f) => f.to_string(),
            Raw::B(b) => b.to_string(),
        },
    )
}

/// librdkafka properties ingesta sets itself; setting them by hand would
/// break the delivery guarantee or the explicit-group contract.
const MANAGED_CONSUMER_KEYS: &[(&str, &str)] = &[
    ("group.id", "set `group` on the deployment instead"),
    ("bootstrap.servers", "set `kafka.bootstrap_servers` instead"),
    (
        "enable.auto.offset.store",
        "ingesta stores offsets only after outputs are acknowledged",
    ),
    ("auto.offset.reset", "set `start` on the deployment instead"),
];

const MANAGED_PRODUCER_KEYS: &[(&str, &str)] = &[
    ("bootstrap.servers", "set `kafka.bootstrap_servers` instead"),
    ("enable.idempotence", "ingesta always produces idempotently"),
    ("acks", "ingesta always produces with acks=all"),
    ("transactional.id", "exactly-once mode is not available yet"),
];

impl Config {
    /// Read, parse and validate a config file. Module paths are resolved
    /// against the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for d in &mut config.deployments {
            if d.module.is_relative() {
                d.module = base.join(&d.module);
            }
        }
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Parse TOML text without validation (`toml`'s messages name the key
    /// and show the offending line).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Check the rules TOML types cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return Err("kafka.bootstrap_servers is empty".into());
        }
        check_managed(
            &self.kafka.properties,
            "kafka.properties",
            MANAGED_CONSUMER_KEYS,
        )?;
        check_managed(
            &self.kafka.properties,
            "kafka.properties",
            MANAGED_PRODUCER_KEYS,
        )?;
        check_managed(
            &self.kafka.consumer,
            "kafka.consumer",
            MANAGED_CONSUMER_KEYS,
        )?;
        check_managed(
            &self.kafka.producer,
            "kafka.producer",
            MANAGED_PRODUCER_KEYS,
        )?;
        check_managed(
            &self.kafka.ingest_producer,
            "kafka.ingest_producer",
            MANAGED_PRODUCER_KEYS,
        )?;
        if !(1_000..=86_400_000).contains(&self.runtime.stall_timeout_ms) {
            return Err(
                "runtime.stall_timeout_ms must be between 1000 and 86400000 (a day)".into(),
            );
        }
        if self.runtime.epoch_tick_ms == 0 {
            return Err("runtime.epoch_tick_ms must be at least 1".into());
        }
        if !(64..=16 * 1024).contains(&self.runtime.wasm_stack_kib) {
            return Err("runtime.wasm_stack_kib must be between 64 and 16384".into());
        }
        if let Some(c) = &self.control {
            if c.operator_token_sha256.is_none() && c.tenants.is_empty() {
                return Err("control: no operator_token_sha256 and no [[control.tenant]]: nobody could use the API".into());
            }
            if c.max_module_mib == 0 || c.max_module_mib > 1024 {
                return Err("control.max_module_mib must be between 1 and 1024".into());
            }
            crate::control::auth::Auth::new(c.operator_token_sha256.as_deref(), &c.tenants)
                .map_err(|e| format!("control: {e}"))?;
            if !is_valid_topic(&format!("{}deployments", c.state_topic_prefix)) {
                return Err(format!(
                    "control.state_topic_prefix {:?} does not make a valid topic name",
                    c.state_topic_prefix
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for d in &self.deployments {
            d.validate()?;
            if !names.insert(d.name.as_str()) {
                return Err(format!("deployment name {:?} is used twice", d.name));
            }
        }
        Ok(())
    }
}

impl DeploymentConfig {
    /// Check one deployment; messages name the deployment and the key.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        if !is_valid_name(name) {
            return Err(format!(
                "deployment name {name:?} must be 1-63 characters of a-z, 0-9, '-' or '_'"
            ));
        }
        let ctx = |msg: String| format!("deployment {name:?}: {msg}");
        // A deployment without inputs is a producer; whether its module
        // really is one is checked when the module is loaded.
        let producer = self.inputs.is_empty();
        if producer && !self.group.is_empty() {
            return Err(ctx(
                "`group` is set but `inputs` is empty: a consumer needs input topics, and a producer has no group".into(),
            ));
        }
        if !producer && (self.schedule.is_some() || self.ingest != IngestConfig::default()) {
            return Err(ctx(
                "`schedule` and `ingest` are for producer modules, which have no `inputs`".into(),
            ));
        }
        if producer && self.start != StartPosition::default() {
            return Err(ctx(
                "`start` is for consumers; a producer has no input to start in".into(),
            ));
        }
        if let Some(s) = &self.schedule {
            if !(10..=86_400_000).contains(&s.interval_ms) {
                return Err(ctx(
                    "schedule.interval_ms must be between 10 and 86400000 (a day)".into(),
                ));
            }
            if s.max_records_per_second == Some(0) {
                return Err(ctx(
                    "schedule.max_records_per_second must be at least 1 (or unset for no limit)"
                        .into(),
                ));
            }
        }
        let i = &self.ingest;
        if i.max_body_bytes == 0 || i.max_body_bytes > 64 << 20 {
            return Err(ctx(
                "ingest.max_body_bytes must be between 1 and 67108864 (64 MiB)".into(),
            ));
        }
        // Each request in flight holds an instance of the runner-wide pool.
        if i.max_concurrency == 0 || i.max_concurrency > 256 {
            return Err(ctx(
                "ingest.max_concurrency must be between 1 and 256".into()
            ));
        }
        if i.ack_timeout_ms == 0 || i.ack_timeout_ms > 600_000 {
            return Err(ctx(
                "ingest.ack_timeout_ms must be between 1 and 600000".into()
            ));
        }
        if let Some(h) = &i.key_sha256
            && !(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ctx(
                "ingest.key_sha256 must be 64 hex digits (`echo -n KEY | ingesta hash-token`)"
                    .into(),
            ));
        }
        for t in self.inputs.iter().chain(&self.outputs) {
            if !is_valid_topic(t) {
                return Err(ctx(format!(
                    "{t:?} is not a valid Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"
                )));
            }
        }
        if let Some(t) = self.outputs.iter().find(|t| self.inputs.contains(t)) {
            return Err(ctx(format!(
                "topic {t:?} is both an input and an output, which would loop forever"
            )));
        }
        if !producer && self.group.trim().is_empty() {
            return Err(ctx("`group` must not be empty".into()));
        }
        let b = &self.batch;
        if b.max_records == 0 || b.max_records > 100_000 {
            return Err(ctx("batch.max_records must be between 1 and 100000".into()));
        }
        if b.max_bytes < 1024 || b.max_bytes > 256 * 1024 * 1024 {
            return Err(ctx(
                "batch.max_bytes must be between 1 KiB and 256 MiB".into()
            ));
        }
        if b.max_wait_ms > 60_000 {
            return Err(ctx("batch.max_wait_ms must be at most 60000".into()));
        }
        let l = &self.limits;
        if l.memory_mib == 0 || l.memory_mib > 4096 {
            return Err(ctx("limits.memory_mib must be between 1 and 4096".into()));
        }
        if l.deadline_ms == 0 || l.deadline_ms > 600_000 {
            return Err(ctx("limits.deadline_ms must be between 1 and 600000".into()));
        }
        if l.fuel == Some(0) {
            return Err(ctx(
                "limits.fuel must be at least 1 (or unset for no metering)".into(),
            ));
        }
        if l.max_output_records == 0 || l.max_output_bytes == 0 {
            return Err(ctx(
                "limits.max_output_records and limits.max_output_bytes must be at least 1".into(),
            ));
        }
        if l.log_lines_per_second > 100_000
            || l.log_burst_lines == 0
            || l.log_burst_lines > 1_000_000
        {
            return Err(ctx(
                "limits.log_lines_per_second must be at most 100000 and limits.log_burst_lines between 1 and 1000000".into(),
            ));
        }
        let f = &self.failure;
        if f.max_attempts == 0 || f.max_attempts > 100 {
            return Err(ctx("failure.max_attempts must be between 1 and 100".into()));
        }
        if f.backoff_initial_ms > f.backoff_max_ms {
            return Err(ctx(
                "failure.backoff_initial_ms must not exceed failure.backoff_max_ms".into(),
            ));
        }
        if let Some(t) = &f.dead_letter_topic {
            if !is_valid_topic(t) {
                return Err(ctx(format!(
                    "failure.dead_letter_topic {t:?} is not a valid topic name"
                )));
            }
            if self.inputs.contains(t) {
                return Err(ctx(format!(
                    "failure.dead_letter_topic {t:?} is also an input, which would loop forever"
                )));
            }
        }
        check_managed(&self.kafka, "kafka", MANAGED_CONSUMER_KEYS).map_err(ctx)?;
        Ok(())
    }
}

fn check_managed(
    props: &BTreeMap<String, Scalar>,
    table: &str,
    managed: &[(&str, &str)],
) -> Result<(), String> {
    for (key, why) in managed {
        if props.contains_key(*key) {
            return Err(format!("{table}.{key:?} cannot be set: {why}"));
        }
    }
    Ok(())
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

    const GOOD: &str = r#"
        [kafka]
        bootstrap_servers = "127.0.0.1:9092"
        [kafka.producer]
        "linger.ms" = 5

        [[deployment]]
        name = "activity-stats"
        module = "stats.wasm"
        inputs = ["user-activity"]
        group = "shop-stats"
        outputs = ["user-activity-stats"]
        [deployment.config]
        alert_purchase_over = 500
        verbose = true
    "#;

    #[test]
    fn parses_a_complete_file_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        c.validate().unwrap();
        let d = &c.deployments[0];
        assert_eq!(d.start, StartPosition::Earliest);
        assert_eq!(d.batch.max_records, 500);
        assert_eq!(d.config["alert_purchase_over"].0, "500");
        assert_eq!(d.config["verbose"].0, "true");
        assert_eq!(c.kafka.producer["linger.ms"].0, "5");
    }

    #[test]
    fn unknown_key_is_named() {
        let text = GOOD.replace("group = \"shop-stats\"", "grop = \"shop-stats\"");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains("grop"), "{err}");
    }

    #[test]
    fn mistyped_value_is_named() {
        let text = GOOD.replace("inputs = [\"user-activity\"]", "inputs = \"user-activity\"");
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains("inputs"), "{err}");
    }

    #[test]
    fn managed_kafka_properties_are_refused() {
        let text = GOOD.replace("\"linger.ms\" = 5", "\"acks\" = \"1\"");
        let err = Config::parse(&text).unwrap().validate().unwrap_err();
        assert!(err.contains("acks"), "{err}");
    }

    #[test]
    fn loops_and_bad_names_are_refused() {
        let text = GOOD.replace("\"user-activity-stats\"", "\"user-activity\"");
        let err = Config::parse(&text).unwrap().validate().unwrap_err();
        assert!(err.contains("both an input and an output"), "{err}");
        let text = GOOD.replace("\"activity-stats\"", "\"Activity Stats\"");
        let err = Config::parse(&text).unwrap().validate().unwrap_err();
        assert!(err.contains("deployment name"), "{err}");
    }

    const PRODUCER: &str = r#"
        [kafka]
        bootstrap_servers = "127.0.0.1:9092"

        [[deployment]]
        name = "shop-generator"
        module = "gen.wasm"
        outputs = ["user-activity"]
        [deployment.schedule]
        interval_ms = 100
        [deployment.ingest]
        max_concurrency = 8
    "#;

    #[test]
    fn a_producer_has_outputs_schedule_and_ingest_but_no_group() {
        let c = Config::parse(PRODUCER).unwrap();
        c.validate().unwrap();
        let d = &c.deployments[0];
        assert!(d.inputs.is_empty() && d.group.is_empty());
        assert_eq!(d.schedule.as_ref().unwrap().interval_ms, 100);
        assert_eq!(d.ingest.max_concurrency, 8);
        assert_eq!(d.ingest.ack_timeout_ms, 10_000, "defaults fill the rest");

        let text = PRODUCER.replace("name = \"shop-generator\"", "name = \"g\"\ngroup = \"x\"");
        let err = Config::parse(&text).unwrap().validate().unwrap_err();
        assert!(
            err.contains("`group` is set but `inputs` is empty"),
            "{err}"
        );
        let text = PRODUCER.replace("interval_ms = 100", "interval_ms = 5");
        let err = Config::parse(&text).unwrap().validate().unwrap_err();
        assert!(err.contains("schedule.interval_ms"), "{err}");
        let text = PRODUCER.replace("max_concurrency = 8", "key_sha256 = \"abc\"");
        let err = Config::parse(&text).unwrap().validate().unwrap_err();
        assert!(err.contains("ingest.key_sha256"), "{err}");
    }

    #[test]
    fn a_consumer_may_not_have_a_schedule() {
        let text = format!("{GOOD}\n[deployment.schedule]\ninterval_ms = 100\n");
        let err = Config::parse(&text).unwrap().validate().unwrap_err();
        assert!(err.contains("for producer modules"), "{err}");
    }
}
