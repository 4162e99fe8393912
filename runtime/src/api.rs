//! The control API's request and response bodies, one definition shared by
//! the server (`control::http`), the CLI and `ingesta top`
//! ([`crate::client`]) and the test kit: serde types, so no side indexes
//! JSON by field name.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use crate::deployment::World;
pub use crate::deployment::status::{Degraded, Gap, Notes, Stall, State};
pub use crate::telemetry::guest_log::{GuestLevel, LogLine};

use crate::deployment::{Spec, spec::spec_beside};

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the object.
    pub error: String,
}

/// What the API says about a stored module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModuleInfo {
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// The ingesta world it implements.
    pub world: World,
    /// Size in bytes.
    pub size: usize,
    /// Tenants that uploaded these bytes.
    pub owners: BTreeSet<String>,
    /// When it was first uploaded (ms since the Unix epoch).
    pub created_ms: u64,
}

/// `POST /v1/deployments`: a name, the first revision's spec (its fields
/// at the same level) and whether to start paused.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreateDeployment {
    /// Unique among the tenant's deployments: 1-63 of a-z, 0-9, '-', '_'.
    pub name: String,
    /// The first revision's spec, written flat beside `name` and `paused`
    /// (the fields of `Fields`: `module`, `inputs`, `group`, `outputs`,
    /// ...); unknown keys are refused.
    #[serde(flatten)]
    #[schema(value_type = crate::deployment::Fields)]
    pub spec: Spec,
    /// Create it paused (nothing is consumed until resumed).
    #[serde(default)]
    pub paused: bool,
}

/// By hand rather than with `#[serde(flatten)]`, which would let unknown
/// (misspelt) keys through: `name` and `paused` are taken out and the rest
/// must be exactly a spec.
impl<'de> Deserialize<'de> for CreateDeployment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let (taken, spec) = spec_beside(fields, &["name", "paused"]).map_err(D::Error::custom)?;
        let name = match taken.get("name") {
            Some(serde_json::Value::String(n)) => n.clone(),
            Some(_) => return Err(D::Error::custom("`name` must be a string")),
            None => return Err(D::Error::missing_field("name")),
        };
        let paused = match taken.get("paused") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| D::Error::custom("`paused` must be true or false"))?,
        };
        Ok(Self { name, spec, paused })
    }
}

/// Where a deployment is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Created through the API; its record lives in the state topic.
    Api,
    /// A `[[deployment]]` of the runner's config file.
    Config,
}

/// Where a group stands on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionStatus {
    /// Input topic.
    pub topic: String,
    /// Partition number within `topic`.
    pub partition: i32,
    /// The group's committed offset (the next record it will handle);
    /// `None` before its first commit.
    pub committed: Option<i64>,
    /// The offset the next produced record will get.
    pub high_watermark: i64,
    /// Records not yet handled: high watermark minus the committed offset
    /// (minus the low watermark before the first commit).
    pub lag: i64,
    /// The runner consuming it (`runtime.runner_id`), as the fleet's
    /// reports say; `None` while no live runner has it assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
}

/// A partition a runner has assigned.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct AssignedPartition {
    /// Input topic.
    pub topic: String,
    /// Partition number within `topic`.
    pub partition: i32,
}

/// A deployment on one runner of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunnerStatus {
    /// The runner (`runtime.runner_id`).
    pub runner: String,
    /// The deployment's state on that runner; `reason` says why.
    pub state: State,
    /// Why it failed, is degraded, or waits there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The input partitions that runner consumes.
    #[serde(default)]
    pub partitions: Vec<AssignedPartition>,
    /// Whether a scheduled producer deployment ticks there (one runner
    /// of the fleet at a time).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ticking: bool,
    /// That runner's counters (since it started).
    pub counters: Counters,
    /// When that runner reported this (ms since the Unix epoch); `None`
    /// for the runner that answered, which shows what it has now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_ms: Option<u64>,
}

/// Counters since the deployment was created on this runner (or the runner
/// started), the same values `/metrics` exports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counters {
    /// Records handed to the handler, over all input partitions (consumers;
    /// 0 for a producer).
    pub records_in: u64,
    /// Records published to Kafka: the module's outputs and dead letters.
    pub records_out: u64,
    /// Key, value and header bytes handed to the handler (consumers).
    pub bytes_in: u64,
    /// Key, value and header bytes published.
    pub bytes_out: u64,
    /// Batches handed to the handler (consumers), each counted once
    /// however many calls its retries and splits took.
    pub batches: u64,
    /// Failed handler calls of every class (errors and traps).
    pub errors: u64,
    /// Calls repeated after a retryable error or a trap.
    pub retries: u64,
    /// Calls that trapped (each replaced its instance).
    pub traps: u64,
    /// Records sent to the dead-letter topic (`failure.dead_letter_topic`).
    pub dead_lettered: u64,
    /// Guest log lines dropped by the rate limit
    /// (`limits.log_lines_per_second`); the kept ones are in the
    /// deployment's log.
    pub guest_log_dropped: u64,
}

impl Counters {
    /// The counters `/metrics` exports for a deployment, as status shows
    /// them.
    pub fn of(m: &crate::telemetry::DeploymentMetrics) -> Counters {
        Counters {
            records_in: m.records_in_total(),
            records_out: m.records_out.get(),
            bytes_in: crate::telemetry::metrics::sum_counters(&m.bytes_in),
            bytes_out: m.bytes_out.get(),
            batches: m.batches.get(),
            errors: m.errors_total(),
            retries: m.retries.get(),
            traps: m.instance_restarts.get(),
            dead_lettered: m.dead_lettered.get(),
            guest_log_dropped: m.guest_log_dropped.get(),
        }
    }
}

impl std::ops::AddAssign<&Counters> for Counters {
    fn add_assign(&mut self, o: &Counters) {
        self.records_in += o.records_in;
        self.records_out += o.records_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.batches += o.batches;
        self.errors += o.errors;
        self.retries += o.retries;
        self.traps += o.traps;
        self.dead_lettered += o.dead_lettered;
        self.guest_log_dropped += o.guest_log_dropped;
    }
}

/// What the API reports about a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentStatus {
    /// Deployment name, unique among its tenant's deployments (a
    /// config-file deployment's name for those).
    pub name: String,
    /// Owning tenant; `None` for a config-file deployment.
    pub tenant: Option<String>,
    /// Whether it was created through the API or is defined in the
    /// runner's config file (which only the operator sees and which cannot
    /// be changed through the API).
    pub source: Source,
    /// Its life-cycle state on the runner that answered; `reason` says why
    /// when it is failed or degraded.
    pub state: State,
    /// Why it failed, is degraded, or is not running.
    pub reason: Option<String>,
    /// The module it runs: a digest, or a config-file deployment's file.
    pub module: String,
    /// The current revision: 1 at creation, one more with every change of
    /// its spec (rollback included); always 1 for a config-file deployment.
    pub revision: u64,
    /// One more with every write of it (any change, pause and resume
    /// too): name it in `If-Match` on a change, and the change is refused
    /// (409) if someone changed the deployment since you read it. Also the
    /// answer's `ETag`. 0 for a config-file deployment.
    #[serde(default)]
    pub version: u64,
    /// The runner whose API made the last change (`runtime.runner_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by_runner: Option<String>,
    /// Modules of earlier revisions, newest last (rollback goes to the last).
    pub previous_modules: Vec<String>,
    /// The current revision's spec (API deployments).
    #[schema(value_type = Option<crate::deployment::Fields>)]
    pub settings: Option<Spec>,
    /// Counters summed over the runners in `runners` (each counts since
    /// it started; a runner that went away takes its counts with it).
    pub counters: Counters,
    /// The deployment on each live runner of the fleet (the runner that
    /// answered first): its state there, the partitions it consumes, its
    /// counters. Runners report every `control.report_interval_ms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runners: Vec<RunnerStatus>,
    /// Input partitions standing still with records waiting, records
    /// skipped because Kafka no longer had them, and partitions whose
    /// outputs are being published again (this runner's view).
    #[serde(default, skip_serializing_if = "Notes::is_empty")]
    pub notes: Notes,
    /// Per input partition: committed offset, high watermark, lag (on
    /// `GET /v1/deployments/{name}`, and on the list with `?lag=true`).
    #[serde(default)]
    pub partitions: Vec<PartitionStatus>,
    /// Who changed it last: the tenant's name, or `*` for the operator;
    /// `None` for a config-file deployment.
    pub updated_by: Option<String>,
    /// When it was last changed (created, patched, paused, resumed, rolled
    /// back), in ms since the Unix epoch; `None` for a config-file
    /// deployment.
    pub updated_ms: Option<u64>,
}

impl DeploymentStatus {
    /// `<tenant>/<name>`, or the config-file name.
    pub fn key(&self) -> String {
        match &self.tenant {
            Some(t) => format!("{t}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Records not yet handled, summed over input partitions; `None` when
    /// the partitions were not read.
    pub fn total_lag(&self) -> Option<i64> {
        (!self.partitions.is_empty()).then(|| self.partitions.iter().map(|p| p.lag).sum())
    }
}

/// A record as bytes: `text` when it is UTF-8, else `base64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Payload {
    /// The bytes as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The bytes, base64 (standard alphabet, padded), when not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

/// Where a dead letter came from: the input record it copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterSource {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// The input record's timestamp, ms since the epoch.
    pub timestamp: Option<i64>,
}

/// Why a record was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterError {
    /// `permanent`, `retryable` or `trap:<kind>`.
    pub class: String,
    /// The handler's or runner's message (clipped to 2 KiB).
    pub message: String,
    /// Attempts made before giving up.
    pub attempts: u32,
}

/// One dead letter: the input record (key, value, headers) as it was, where
/// it came from and why it was set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Partition of the dead-letter topic.
    pub partition: i32,
    /// Offset in the dead-letter topic.
    pub offset: i64,
    /// The input record's key (`null`: none).
    pub key: Option<Payload>,
    /// The input record's value (`null`: none).
    pub value: Option<Payload>,
    /// The input record's own headers, in order.
    pub headers: Vec<(String, Option<Payload>)>,
    /// The input record it copies.
    pub source: DeadLetterSource,
    /// Why it was set aside.
    pub error: DeadLetterError,
    /// Digest of the module that failed on it.
    pub module: Option<String>,
}

/// Where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterCursor {
    /// Partition of the dead-letter topic.
    pub partition: i32,
    /// Offset in it.
    pub offset: i64,
}

/// A page of a deployment's dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetterPage {
    /// The deployment's dead-letter topic.
    pub topic: String,
    /// Its dead letters, by partition then offset.
    pub dead_letters: Vec<DeadLetter>,
    /// Pass as `partition` and `offset` for the next page; `null` when
    /// there is no more (as of this read).
    pub next: Option<DeadLetterCursor>,
}

/// `POST /v1/deployments/{name}/dead-letters/redrive`: which dead letters
/// to hand to the deployment again. Something must select: an offset
/// range, a class, or `all`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only this partition of the dead-letter topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Only offsets from this one on (in every selected partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_offset: Option<i64>,
    /// Only offsets up to and including this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_offset: Option<i64>,
    /// Only dead letters of this error class (`permanent`, `retryable`,
    /// `trap:deadline`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Every dead letter of the deployment (needed when nothing else
    /// selects, so an empty request redrives nothing by accident).
    #[serde(default)]
    pub all: bool,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedriveReport {
    /// The dead-letter topic read.
    pub dead_letter_topic: String,
    /// The deployment's own redrive topic the copies were written to (it
    /// reads it beside its inputs; no other group does).
    pub redrive_topic: String,
    /// Dead letters copied to the redrive topic by this request.
    pub redriven: u64,
    /// Selected dead letters skipped because an earlier redrive copied
    /// them already.
    pub already_redriven: u64,
    /// Where selecting stopped when the request's budget ran out: send the
    /// same request again to go on (what is done is skipped). `null` when
    /// every selected dead letter was seen.
    pub more: Option<DeadLetterCursor>,
}

/// A topic as `GET /v1/topics` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// Its partitions.
    pub partitions: i32,
    /// Replicas of each partition.
    pub replication_factor: i32,
    /// The settings ingesta manages (`retention.ms`, `retention.bytes`,
    /// `segment.bytes`, `cleanup.policy`, `min.insync.replicas`,
    /// `max.message.bytes`), as in effect: set on the topic or the
    /// broker's default.
    pub configs: std::collections::BTreeMap<String, String>,
}

/// `POST /v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// The topic's name (Kafka's rules: 1-249 of a-z, A-Z, 0-9, `.`, `_`,
    /// `-`).
    pub name: String,
    /// Its partitions (the most consumers of one group reading it at once).
    pub partitions: i32,
    /// Replicas of each partition; unset: the broker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i32>,
    /// Settings to set (only the ones [`TopicInfo::configs`] lists).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub configs: std::collections::BTreeMap<String, String>,
}

/// `PATCH /v1/topics/{name}`: only what is named changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlterTopic {
    /// More partitions (Kafka cannot take partitions away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Settings to set; `null` returns one to the broker's default.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub configs: std::collections::BTreeMap<String, Option<String>>,
}
