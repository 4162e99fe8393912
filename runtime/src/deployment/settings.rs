//! The settings tables of a deployment — where it starts, batching,
//! sandbox limits, failure policy, ingestion, schedule — as the config
//! file, the API and the state records write them. Each table fills in its
//! defaults and denies unknown keys (a typo names the key).

use serde::{Deserialize, Serialize};

/// Where a deployment starts on the partitions its input topics have when
/// it is created (or replayed): `"earliest"`, `"latest"`, or
/// `{ timestamp = <ms since epoch> }` (the first record at or after that
/// time). The position is committed for the group then, so a partition
/// without a committed offset is one that appeared later: it begins at its
/// first offset, since all its records are newer than the deployment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    /// The first record Kafka still has on each partition (the default).
    #[default]
    Earliest,
    /// The end of each partition when the position is committed: only
    /// records produced afterwards are consumed.
    Latest,
    /// The first record with a timestamp at or after this time (ms since
    /// the Unix epoch); the end of a partition with none.
    Timestamp(i64),
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
    /// Most live instances of the deployment on one runner (a consumer
    /// lane holds one while it has work; an ingest request one for its
    /// call). More wait for one to be given back, so a value below the
    /// partition count still makes progress by rotation. Unset: only the
    /// tenant's and the runner's quotas apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
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
            max_instances: None,
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
