//! The runner's TOML configuration: Kafka, runtime settings, the control
//! plane, and `[[deployment]]` tables (each a deployment spec, see
//! [`crate::deployment`]): parsing, defaults and validation.
//!
//! Every table denies unknown keys, so a typo (`grup = "x"`) is an error that
//! names the key and its line rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::deployment::{Definition, ModuleRef, Scalar, spec::spec_beside};

/// Errors found while reading or validating a config file.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (missing, no permission, not UTF-8).
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file, as given.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a config: bad syntax, a wrong type,
    /// an unknown (misspelt) or missing key, a spec that does not read.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The config file, as given.
        path: PathBuf,
        /// `toml`'s message, naming the key and showing its line.
        message: String,
    },
    /// The file parses but breaks a rule the types cannot express: a value
    /// out of range, a librdkafka property ingesta manages, a deployment
    /// spec that fails validation, a name used twice...
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The config file, as given.
        path: PathBuf,
        /// Which setting is wrong and what is allowed.
        message: String,
    },
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
    /// The deployments this runner runs (`[[deployment]]` tables: `name`,
    /// the spec's fields with `module` a `.wasm` file, and the
    /// operator-only `[deployment.kafka]` consumer properties).
    #[serde(default, rename = "deployment", deserialize_with = "definitions")]
    pub deployments: Vec<Definition>,
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
    /// Hex SHA-256 of the token Prometheus sends to `/metrics`. Set, a
    /// scrape needs a bearer token: this one or the operator's for every
    /// series, a tenant's for its own deployments' series. Unset,
    /// `/metrics` is open (keep it behind the network then).
    pub metrics_token_sha256: Option<String>,
    /// Connections the API serves at once; more wait in the listen
    /// backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long a client may take to send a request's line and headers,
    /// in ms; a slower one is disconnected.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// How long an upload waits for the compiler (one compile at a time)
    /// before it is answered 429.
    #[serde(default = "default_compile_queue_wait_ms")]
    pub compile_queue_wait_ms: u64,
    /// How long an upload's or an ingest request's body may take to arrive
    /// in full; a slower one is answered 408.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// How often this runner reports its deployments (state, partitions,
    /// schedules, counters) to the fleet through `<prefix>runners`, in ms;
    /// a runner not heard from for three intervals is no longer listed.
    #[serde(default = "default_report_interval_ms")]
    pub report_interval_ms: u64,
    /// How long the fleet's copy of guest log lines (`<prefix>logs`) is
    /// kept, in ms, when ingesta creates that topic.
    #[serde(default = "default_fleet_log_retention_ms")]
    pub fleet_log_retention_ms: u64,
    /// Tenants and their grants (`[[control.tenant]]`).
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<crate::auth::TenantConfig>,
}

impl ControlConfig {
    /// The token table this section describes.
    pub fn auth(&self) -> Result<crate::auth::Auth, crate::auth::BadTokens> {
        let auth = crate::auth::Auth::new(self.operator_token_sha256.as_deref(), &self.tenants)?;
        match &self.metrics_token_sha256 {
            Some(hash) => auth.with_metrics_token(hash),
            None => Ok(auth),
        }
    }
}

fn default_report_interval_ms() -> u64 {
    2_000
}

fn default_fleet_log_retention_ms() -> u64 {
    3_600_000
}

fn default_max_connections() -> usize {
    1024
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}

fn default_compile_queue_wait_ms() -> u64 {
    30_000
}

fn default_body_read_timeout_ms() -> u64 {
    30_000
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
    /// How long the offsets and lag the runner read from Kafka are reused
    /// (status, `ingesta top`, scrapes) before they are read again.
    pub offsets_cache_ms: u64,
    /// Wasm call stack per instance, in KiB; deeper recursion traps.
    pub wasm_stack_kib: u64,
    /// Most live instances on this runner (the size of the instance pool);
    /// more wait for one to be given back.
    pub max_instances: u32,
    /// Wasm calls still running at an epoch tick ("long calls") that may
    /// run at once; the others wait their turn, one deployment after
    /// another. Unset: one fewer than the cores (at least 1), so a worker
    /// is always left for short calls.
    pub long_calls: Option<u32>,
    /// Compile modules with fuel metering, so deployments created over the
    /// API may set `limits.fuel`. Metering costs every deployment some
    /// speed (see docs/benchmarks.md), so it is off unless asked for or a
    /// config-file deployment sets a fuel limit.
    pub fuel_metering: bool,
    /// This runner's name in the fleet: written into the state records it
    /// writes (the audit says which runner made a change and which carries
    /// out a replay). Unset: the host name and process id.
    pub runner_id: Option<String>,
    /// Join every deployment's group as a static member named
    /// `runner_id` (`group.instance.id`): a restart within the session
    /// timeout moves no partition. A stopped static member stays in its
    /// groups until its session times out, so replays and group moves
    /// wait that long. Needs `runner_id`; two live runners must not share
    /// one.
    pub static_membership: bool,
    /// How long an API consumer deployment may stand caught up with no
    /// record before it sleeps: its consumer, threads and instances are
    /// released (it leaves its group) and the runner watches its inputs'
    /// ends, starting it again when one moves. `0`: never sleep.
    pub sleep_after_ms: u64,
    /// How often the ends of sleeping deployments' inputs are read (one
    /// request for all of them): the most a record waits before its
    /// sleeping deployment starts waking.
    pub wake_check_ms: u64,
}

impl RuntimeConfig {
    /// `runner_id`, or the host name and process id.
    pub fn runner_id(&self) -> String {
        self.runner_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "runner".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            compile_cache_dir: None,
            epoch_tick_ms: 10,
            drain_timeout_ms: 30_000,
            stall_timeout_ms: 30_000,
            offsets_cache_ms: 1_000,
            wasm_stack_kib: 512,
            max_instances: 1000,
            long_calls: None,
            fuel_metering: false,
            runner_id: None,
            static_membership: false,
            sleep_after_ms: 60_000,
            wake_check_ms: 100,
        }
    }
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

/// `[[deployment]]` tables: `name` and `kafka` beside the spec's fields.
fn definitions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Definition>, D::Error> {
    use serde::de::Error;
    let tables = Vec::<serde_json::Map<String, serde_json::Value>>::deserialize(d)?;
    tables
        .into_iter()
        .map(|table| {
            let (mut taken, spec) =
                spec_beside(table, &["name", "kafka"]).map_err(D::Error::custom)?;
            let name = match taken.remove("name") {
                Some(serde_json::Value::String(n)) => n,
                Some(_) => return Err(D::Error::custom("deployment `name` must be a string")),
                None => return Err(D::Error::missing_field("name")),
            };
            let kafka = match taken.remove("kafka") {
                None => BTreeMap::new(),
                Some(v) => serde_json::from_value(v)
                    .map_err(|e| D::Error::custom(format!("deployment {name:?}: kafka: {e}")))?,
            };
            Ok(Definition {
                name,
                spec,
                kafka,
                redrive_topic: None,
            })
        })
        .collect()
}

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
        // A static member of every deployment's group: restarting within
        // the session timeout moves no partition.
        if let (true, Some(id)) = (config.runtime.static_membership, &config.runtime.runner_id) {
            config
                .kafka
                .consumer
                .entry("group.instance.id".into())
                .or_insert_with(|| crate::deployment::Scalar(id.clone()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for d in &mut config.deployments {
            if let ModuleRef::File(file) = &mut d.spec.module
                && file.is_relative()
            {
                *file = base.join(&*file);
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
        if self.runtime.static_membership && self.runtime.runner_id.is_none() {
            return Err(
                "runtime.static_membership needs runtime.runner_id: the member id must be the same across restarts of this runner".into(),
            );
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
        self.runtime.validate()?;
        if let Some(c) = &self.control {
            c.validate()?;
        }
        let mut names = std::collections::BTreeSet::new();
        for d in &self.deployments {
            d.spec.validate(&d.name).map_err(|e| e.to_string())?;
            if !matches!(d.spec.module, ModuleRef::File(_)) {
                return Err(format!(
                    "deployment {:?}: `module` must be a .wasm file in the config file (uploaded modules are deployed through the API)",
                    d.name
                ));
            }
            check_managed(&d.kafka, "kafka", MANAGED_CONSUMER_KEYS)
                .map_err(|e| format!("deployment {:?}: {e}", d.name))?;
            if !names.insert(d.name.as_str()) {
                return Err(format!("deployment name {:?} is used twice", d.name));
            }
        }
        Ok(())
    }
}

impl RuntimeConfig {
    fn validate(&self) -> Result<(), String> {
        if !(1_000..=86_400_000).contains(&self.stall_timeout_ms) {
            return Err(
                "runtime.stall_timeout_ms must be between 1000 and 86400000 (a day)".into(),
            );
        }
        if self.offsets_cache_ms > 60_000 {
            return Err("runtime.offsets_cache_ms must be at most 60000".into());
        }
        if self.sleep_after_ms != 0 && self.sleep_after_ms < 1_000 {
            return Err(
                "runtime.sleep_after_ms must be 0 (never sleep) or at least 1000 (the idle check runs once a second)".into(),
            );
        }
        if !(20..=10_000).contains(&self.wake_check_ms) {
            return Err("runtime.wake_check_ms must be between 20 and 10000".into());
        }
        if self.epoch_tick_ms == 0 {
            return Err("runtime.epoch_tick_ms must be at least 1".into());
        }
        if !(1..=100_000).contains(&self.max_instances) {
            return Err("runtime.max_instances must be between 1 and 100000".into());
        }
        if self.long_calls == Some(0) {
            return Err("runtime.long_calls must be at least 1 (or unset for cores - 1)".into());
        }
        if !(64..=16 * 1024).contains(&self.wasm_stack_kib) {
            return Err("runtime.wasm_stack_kib must be between 64 and 16384".into());
        }
        Ok(())
    }
}

impl ControlConfig {
    fn validate(&self) -> Result<(), String> {
        if self.operator_token_sha256.is_none() && self.tenants.is_empty() {
            return Err("control: no operator_token_sha256 and no [[control.tenant]]: nobody could use the API".into());
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err("control.max_connections must be between 1 and 65536".into());
        }
        if !(100..=600_000).contains(&self.header_read_timeout_ms) {
            return Err("control.header_read_timeout_ms must be between 100 and 600000".into());
        }
        if !(100..=600_000).contains(&self.compile_queue_wait_ms) {
            return Err("control.compile_queue_wait_ms must be between 100 and 600000".into());
        }
        if !(100..=600_000).contains(&self.body_read_timeout_ms) {
            return Err("control.body_read_timeout_ms must be between 100 and 600000".into());
        }
        if !(100..=600_000).contains(&self.report_interval_ms) {
            return Err("control.report_interval_ms must be between 100 and 600000".into());
        }
        if self.fleet_log_retention_ms < 60_000 {
            return Err("control.fleet_log_retention_ms must be at least 60000 (a minute)".into());
        }
        if self.max_module_mib == 0 || self.max_module_mib > 1024 {
            return Err("control.max_module_mib must be between 1 and 1024".into());
        }
        self.auth().map_err(|e| format!("control: {e}"))?;
        if !crate::deployment::is_valid_topic(&format!("{}deployments", self.state_topic_prefix)) {
            return Err(format!(
                "control.state_topic_prefix {:?} does not make a valid topic name",
                self.state_topic_prefix
            ));
        }
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
        let consumer = d.spec.kind.consumer().unwrap();
        assert_eq!(consumer.start, crate::deployment::StartPosition::Earliest);
        assert_eq!(consumer.batch.max_records, 500);
        assert_eq!(d.spec.config["alert_purchase_over"].0, "500");
        assert_eq!(d.spec.config["verbose"].0, "true");
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
        assert!(err.contains("the name must be"), "{err}");
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
        let d = c.deployments[0].spec.kind.producer().unwrap();
        assert_eq!(d.schedule.as_ref().unwrap().interval_ms, 100);
        assert_eq!(d.ingest.max_concurrency, 8);
        assert_eq!(d.ingest.ack_timeout_ms, 10_000, "defaults fill the rest");

        let text = PRODUCER.replace("name = \"shop-generator\"", "name = \"g\"\ngroup = \"x\"");
        let err = Config::parse(&text).unwrap_err();
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
        let err = Config::parse(&text).unwrap_err();
        assert!(err.contains("for producer modules"), "{err}");
    }
}
