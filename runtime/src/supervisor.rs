//! The supervisor: owns every deployment this runner runs and brings each
//! to its desired state.
//!
//! Config-file deployments are started once. API deployments follow their
//! records in the deployments state topic: a new record starts one; a
//! changed module, outputs, limits, failure policy or config is swapped in
//! at each partition's next batch; changed inputs, group or batching
//! restart it; a replay request stops it, moves the group and starts it
//! again; pause stops it (committing what it handled) and a tombstone
//! removes it. Records are applied one at a time, in log order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use wasmtime::component::Linker;

use crate::config::{DeploymentConfig, KafkaConfig, StartPosition};
use crate::control::auth::Caller;
use crate::control::deployments::{DeploymentRecord, Settings};
use crate::control::modules::ModuleRegistry;
use crate::kafka::Producers;
use crate::pipeline::offsets::{Move, PartitionStatus, group_status};
use crate::pipeline::{Deployment, DeploymentSpec, DeploymentState, Notes, Timeouts};
use crate::producer::{ProducerDeployment, ProducerSpec};
use crate::telemetry::metrics::{self, ScrapeFamilies};
use crate::telemetry::{DeploymentMetrics, DeploymentTelemetry, RunnerMetrics};
use crate::wasm::{
    ConsumerTemplate, DeploymentGrants, HostState, LoadedModule, ProducerTemplate, World,
    consumer_linker,
};

/// How long a scrape waits for consumer lag from Kafka.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);
/// Every state a deployment can be in, as status and metrics name them.
const STATES: [&str; 6] = [
    "running", "degraded", "paused", "failed", "starting", "stopped",
];

/// How long a replay waits for the group to empty before it gives up.
const REPLAY_WAIT: Duration = Duration::from_secs(30);

/// What a deployment runs, resolved from its module's world.
pub enum Spec {
    Consumer(DeploymentSpec),
    Producer(ProducerSpec),
}

impl Spec {
    /// The deployment's settings.
    pub fn config(&self) -> &DeploymentConfig {
        match self {
            Spec::Consumer(s) => &s.config,
            Spec::Producer(s) => &s.config,
        }
    }
}

/// Link `module` for the deployment `config` and wrap it with its grants;
/// its instances report to `telemetry`. The module's world decides the
/// kind: a consumer needs inputs and a group, a producer has neither.
pub fn build_spec(
    linker: &Linker<HostState>,
    config: &DeploymentConfig,
    module: LoadedModule,
    source: &str,
    telemetry: Arc<DeploymentTelemetry>,
) -> Result<Spec> {
    let name = &config.name;
    check_world(config, module.world)
        .map_err(|e| anyhow!("deployment {name:?}: module {source} {e}"))?;
    let pre = linker
        .instantiate_pre(&module.component)
        .map_err(|e| anyhow!("deployment {name:?}: module {source} cannot be linked: {e:#}"))?;
    let mut grants = DeploymentGrants::new(name, &config.limits, module.digest.clone(), telemetry);
    grants.outputs = config.outputs.iter().cloned().collect();
    grants.config = config
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let grants = Arc::new(grants);
    let context = || format!("deployment {name:?}: module {source}");
    let spec = match module.world {
        World::Consumer => Spec::Consumer(DeploymentSpec {
            config: config.clone(),
            template: ConsumerTemplate::new(pre, grants).with_context(context)?,
        }),
        World::Producer => Spec::Producer(ProducerSpec {
            config: config.clone(),
            template: ProducerTemplate::new(pre, grants).with_context(context)?,
        }),
    };
    tracing::info!(deployment = %name, module = source, digest = %module.digest,
        world = %module.world, size = module.size, "module ready");
    Ok(spec)
}

/// Whether `config` fits a module of `world`; the error completes "module
/// X ...".
pub fn check_world(config: &DeploymentConfig, world: World) -> Result<(), String> {
    match world {
        World::Consumer if config.inputs.is_empty() => Err(
            "is a consumer, which needs `inputs` and a `group` (`schedule` and `ingest` are for producers)".into(),
        ),
        World::Producer if !config.inputs.is_empty() => Err(
            "is a producer (HTTP ingestion and ticks), which takes no `inputs` or `group`: remove them".into(),
        ),
        _ => Ok(()),
    }
}

/// A started deployment of either kind.
#[derive(Clone)]
pub enum Running {
    Consumer(Arc<Deployment>),
    Producer(Arc<ProducerDeployment>),
}

impl Running {
    fn start(
        spec: Spec,
        kafka: &KafkaConfig,
        producers: &Producers,
        timeouts: Timeouts,
    ) -> Result<Self> {
        Ok(match spec {
            Spec::Consumer(s) => Running::Consumer(Arc::new(Deployment::start(
                s,
                kafka,
                producers.outputs.clone(),
                timeouts,
            )?)),
            Spec::Producer(s) => Running::Producer(ProducerDeployment::start(
                s,
                producers.ingest.clone(),
                timeouts.drain,
            )),
        })
    }

    /// What is noted about its input partitions (a producer has none).
    pub fn notes(&self) -> Notes {
        match self {
            Running::Consumer(d) => d.notes(),
            Running::Producer(_) => Notes::default(),
        }
    }

    /// The deployment's name.
    pub fn name(&self) -> &str {
        match self {
            Running::Consumer(d) => d.name(),
            Running::Producer(d) => d.name(),
        }
    }

    /// The current state.
    pub fn state(&self) -> DeploymentState {
        match self {
            Running::Consumer(d) => d.state(),
            Running::Producer(d) => d.state(),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> DeploymentConfig {
        match self {
            Running::Consumer(d) => d.config(),
            Running::Producer(d) => d.config(),
        }
    }

    /// Its metrics.
    pub fn metrics(&self) -> &DeploymentMetrics {
        match self {
            Running::Consumer(d) => d.metrics(),
            Running::Producer(d) => d.metrics(),
        }
    }

    /// Drain and stop.
    pub async fn stop(&self) -> DeploymentState {
        match self {
            Running::Consumer(d) => d.stop().await,
            Running::Producer(d) => d.stop().await,
        }
    }

    /// Resolves when it has stopped or failed.
    pub async fn finished(&self) -> DeploymentState {
        match self {
            Running::Consumer(d) => d.finished().await,
            Running::Producer(d) => d.finished().await,
        }
    }

    /// Hot swap to `spec` (of the same kind; a module of another world
    /// needs a restart, which `needs_restart` arranges).
    fn swap(&self, spec: Spec) -> Result<()> {
        match (self, spec) {
            (Running::Consumer(d), Spec::Consumer(s)) => d.swap(s),
            (Running::Producer(d), Spec::Producer(s)) => {
                d.swap(s);
                Ok(())
            }
            _ => bail!("the module's world changed; the deployment must restart"),
        }
    }
}

/// One deployment, wanted or running.
struct Slot {
    /// The record it follows (`None` for a config-file deployment).
    record: Option<DeploymentRecord>,
    running: Option<Running>,
    /// Why it is not running when it should be.
    problem: Option<String>,
    /// The last replay request carried out.
    replayed: u64,
    /// Metrics and guest log, kept for as long as the slot.
    telemetry: Arc<DeploymentTelemetry>,
}

/// What the API reports about a deployment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeploymentStatus {
    pub name: String,
    /// Owning tenant; `None` for a config-file deployment.
    pub tenant: Option<String>,
    /// `api` or `config`.
    pub source: &'static str,
    /// `running`, `degraded`, `paused`, `failed`, `starting` or `stopped`.
    pub state: &'static str,
    /// Why it failed (or is not running).
    pub reason: Option<String>,
    pub module: String,
    pub revision: u64,
    /// Modules of earlier revisions, newest last (rollback goes to the last).
    pub previous_modules: Vec<String>,
    pub settings: Option<Settings>,
    pub counters: CountersView,
    /// Input partitions standing still with records waiting, records
    /// skipped because Kafka no longer had them, and partitions whose
    /// outputs are being published again (this runner's view).
    #[serde(default, skip_serializing_if = "Notes::is_empty")]
    pub notes: Notes,
    /// Per input partition: committed offset, high watermark, lag (only on
    /// `GET /v1/deployments/{name}`).
    pub partitions: Vec<PartitionStatus>,
    pub updated_by: Option<String>,
    pub updated_ms: Option<u64>,
}

/// Counters since the deployment was created on this runner (or the runner
/// started), the same values `/metrics` exports.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct CountersView {
    pub records_in: u64,
    pub records_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub batches: u64,
    /// Failed handler calls of every class (errors and traps).
    pub errors: u64,
    pub retries: u64,
    /// Calls that trapped (each replaced its instance).
    pub traps: u64,
    pub dead_lettered: u64,
    pub guest_log_dropped: u64,
}

impl From<&DeploymentMetrics> for CountersView {
    fn from(m: &DeploymentMetrics) -> Self {
        Self {
            records_in: m.records_in_total(),
            records_out: m.records_out.get(),
            bytes_in: metrics::sum_counters(&m.bytes_in),
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

/// Every deployment of this runner.
pub struct Supervisor {
    linker: Linker<HostState>,
    kafka: KafkaConfig,
    producers: Producers,
    timeouts: Timeouts,
    modules: Arc<ModuleRegistry>,
    slots: Mutex<BTreeMap<String, Slot>>,
    metrics: Arc<RunnerMetrics>,
}

impl Supervisor {
    pub fn new(
        engine: &crate::wasm::WasmEngine,
        kafka: KafkaConfig,
        producers: Producers,
        timeouts: Timeouts,
        modules: Arc<ModuleRegistry>,
        metrics: Arc<RunnerMetrics>,
    ) -> Result<Self> {
        Ok(Self {
            linker: consumer_linker(engine.engine())?,
            kafka,
            producers,
            timeouts,
            modules,
            slots: Mutex::new(BTreeMap::new()),
            metrics,
        })
    }

    /// The shared linker (config-file modules are linked before start).
    pub fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// The module store the API deployments' modules come from.
    pub fn modules(&self) -> &Arc<ModuleRegistry> {
        &self.modules
    }

    /// Start a config-file deployment. Blocking: a `start` other than
    /// `earliest` is committed first if its group is new.
    pub fn start_static(&self, spec: Spec) -> Result<Running> {
        let name = spec.config().name.clone();
        let telemetry = match &spec {
            Spec::Consumer(s) => s.template.grants().telemetry.clone(),
            Spec::Producer(s) => s.template.grants().telemetry.clone(),
        };
        let config = spec.config();
        if !config.inputs.is_empty() && config.start != StartPosition::Earliest {
            let moved = crate::pipeline::offsets::move_group(
                &self.kafka,
                &config.group,
                &config.inputs,
                config.start,
                Move::StartIfNew,
                REPLAY_WAIT,
            )?;
            log_moved(config, config.start, moved);
        }
        let d = Running::start(spec, &self.kafka, &self.producers, self.timeouts)?;
        self.slots.lock().unwrap().insert(
            name,
            Slot {
                record: None,
                running: Some(d.clone()),
                problem: None,
                replayed: 0,
                telemetry,
            },
        );
        Ok(d)
    }

    /// Every running deployment.
    pub fn running(&self) -> Vec<Running> {
        let slots = self.slots.lock().unwrap();
        slots.values().filter_map(|s| s.running.clone()).collect()
    }

    /// Bring the deployment `key` to `record` (`None`: remove it).
    ///
    /// A replay request is carried out only when `live` (the record was
    /// written while this runner was reading along): one found while
    /// recovering state at start was carried out when it was made, and
    /// repeating it would rewind the group again.
    pub async fn apply(&self, key: &str, record: Option<DeploymentRecord>, live: bool) {
        let (old, running, replayed, telemetry) = {
            let mut slots = self.slots.lock().unwrap();
            match slots.get_mut(key) {
                Some(s) => (
                    s.record.clone(),
                    // Left in place while the change is worked out (a
                    // module may compile for seconds): it keeps serving
                    // until replaced or stopped below.
                    s.running.clone(),
                    s.replayed,
                    s.telemetry.clone(),
                ),
                None => (None, None, 0, DeploymentTelemetry::new(key)),
            }
        };
        let Some(record) = record else {
            if let Some(d) = running {
                stop(&d).await;
            }
            self.slots.lock().unwrap().remove(key);
            tracing::info!(deployment = key, "deployment removed");
            return;
        };
        let requested = record.replay.as_ref().filter(|r| r.seq > replayed);
        let replayed = requested.map_or(replayed, |r| r.seq);
        let replay = requested.filter(|_| live).cloned();
        let outcome = self
            .reconcile(old.as_ref(), &record, running, replay.as_ref(), &telemetry)
            .await;
        let (running, problem) = match outcome {
            Ok(running) => (running, None),
            Err(e) => {
                tracing::warn!(deployment = key, error = %format!("{e:#}"),
                    "deployment cannot run as requested");
                (None, Some(format!("{e:#}")))
            }
        };
        self.slots.lock().unwrap().insert(
            key.to_owned(),
            Slot {
                record: Some(record),
                running,
                problem,
                replayed,
                telemetry,
            },
        );
    }

    async fn reconcile(
        &self,
        old: Option<&DeploymentRecord>,
        record: &DeploymentRecord,
        running: Option<Running>,
        replay: Option<&crate::control::deployments::Replay>,
        telemetry: &Arc<DeploymentTelemetry>,
    ) -> Result<Option<Running>> {
        let name = record.key();
        let config = record.settings.to_config(&name);
        // A producer has no group to move.
        let replay = replay.filter(|_| !config.inputs.is_empty());
        // The deployment's `start` applies to the topics it begins to read:
        // every input when it is created, an input added later.
        let new_inputs: Vec<String> = config
            .inputs
            .iter()
            .filter(|t| old.is_none_or(|o| !o.settings.inputs.contains(t)))
            .cloned()
            .collect();
        if record.paused {
            if let Some(d) = running {
                stop(&d).await;
                tracing::info!(deployment = %name, "deployment paused");
            }
            self.position_group(&config, replay, &new_inputs).await?;
            return Ok(None);
        }
        let healthy = running.as_ref().is_some_and(|d| d.state().is_running());
        let same = old.is_some_and(|o| o.settings == record.settings);
        let restart = old.is_none_or(|o| o.settings.needs_restart(&record.settings));
        if let (Some(d), true, None) = (&running, healthy, replay) {
            if same {
                return Ok(running);
            }
            if !restart {
                let swapped = match self.spec(&config, telemetry).await {
                    Ok(spec) => d.swap(spec),
                    Err(e) => Err(e),
                };
                if let Err(e) = swapped {
                    // Not running what the record asks for: stop, and say
                    // why, rather than keep an old revision running unseen.
                    stop(d).await;
                    return Err(e);
                }
                return Ok(running);
            }
        }
        if let Some(d) = running {
            stop(&d).await;
        }
        let spec = self.spec(&config, telemetry).await?;
        self.position_group(&config, replay, &new_inputs).await?;
        Ok(Some(Running::start(
            spec,
            &self.kafka,
            &self.producers,
            self.timeouts,
        )?))
    }

    /// Move the (stopped) group where it must begin: to a replay's
    /// position, or to the deployment's `start` on `new_inputs` if the
    /// group has no commit there yet (`earliest` needs no commit: a
    /// partition without one begins at its first offset).
    async fn position_group(
        &self,
        config: &DeploymentConfig,
        replay: Option<&crate::control::deployments::Replay>,
        new_inputs: &[String],
    ) -> Result<()> {
        match replay {
            Some(r) => {
                self.move_group(config, &config.inputs, r.from, Move::Replay)
                    .await
            }
            None if !new_inputs.is_empty() && config.start != StartPosition::Earliest => {
                self.move_group(config, new_inputs, config.start, Move::StartIfNew)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Load, check and link the module a record names.
    async fn spec(
        &self,
        config: &DeploymentConfig,
        telemetry: &Arc<DeploymentTelemetry>,
    ) -> Result<Spec> {
        let digest = config.module.display().to_string();
        let (modules, wanted) = (self.modules.clone(), digest.clone());
        let module = tokio::task::spawn_blocking(move || modules.load(&wanted))
            .await
            .context("module compilation panicked")?
            .ok_or_else(|| {
                anyhow!(
                    "deployment {:?}: module {digest} is not in the module store (yet); it starts when the module arrives",
                    config.name
                )
            })??;
        build_spec(&self.linker, config, module, &digest, telemetry.clone())
    }

    async fn move_group(
        &self,
        config: &DeploymentConfig,
        topics: &[String],
        from: StartPosition,
        mode: Move,
    ) -> Result<()> {
        let (kafka, group, topics) = (self.kafka.clone(), config.group.clone(), topics.to_vec());
        let moved = tokio::task::spawn_blocking(move || {
            crate::pipeline::offsets::move_group(&kafka, &group, &topics, from, mode, REPLAY_WAIT)
        })
        .await
        .context("offset move panicked")??;
        log_moved(config, from, moved);
        Ok(())
    }

    /// Re-apply the deployments waiting for module `digest`.
    pub async fn module_arrived(&self, digest: &str) {
        let waiting: Vec<(String, DeploymentRecord)> = {
            let slots = self.slots.lock().unwrap();
            slots
                .iter()
                .filter(|(_, s)| s.running.is_none() && s.problem.is_some())
                .filter_map(|(k, s)| Some((k.clone(), s.record.clone()?)))
                .filter(|(_, r)| r.settings.module == digest && !r.paused)
                .collect()
        };
        // Not running, so applying the same record again starts it.
        for (key, record) in waiting {
            self.apply(&key, Some(record), false).await;
        }
    }

    /// The record of an API deployment the caller may see, by name.
    /// Another tenant's deployment answers `None`, like a missing one.
    /// The operator names `<tenant>/<name>` or a name unique across tenants.
    pub fn record(&self, caller: &Caller, name: &str) -> Option<DeploymentRecord> {
        let slots = self.slots.lock().unwrap();
        let mut found = slots
            .values()
            .filter_map(|s| s.record.as_ref())
            .filter(|r| caller.sees(&r.tenant))
            .filter(|r| r.name == name || r.key() == name);
        let first = found.next()?.clone();
        found.next().is_none().then_some(first)
    }

    /// How many API deployments `tenant` has.
    pub fn count_for(&self, tenant: &str) -> usize {
        let slots = self.slots.lock().unwrap();
        slots
            .values()
            .filter_map(|s| s.record.as_ref())
            .filter(|r| r.tenant == tenant)
            .count()
    }

    /// A deployment the caller may see that depends on module `digest`.
    pub fn user_of(&self, caller: &Caller, digest: &str) -> Option<String> {
        let slots = self.slots.lock().unwrap();
        slots
            .values()
            .filter_map(|s| s.record.as_ref())
            .filter(|r| caller.sees(&r.tenant))
            .find(|r| r.modules().any(|m| m == digest))
            .map(|r| r.name.clone())
    }

    /// Status of every deployment the caller may see; with `lag`, each
    /// with its per-partition offsets and lag (see [`Self::lag_of`]).
    pub async fn list(&self, caller: &Caller, lag: bool) -> Vec<DeploymentStatus> {
        let (mut list, wanted) = {
            let slots = self.slots.lock().unwrap();
            let mut list = Vec::new();
            let mut wanted = Vec::new();
            let visible = slots.iter().filter(|(_, s)| match &s.record {
                Some(r) => caller.sees(&r.tenant),
                None => matches!(caller, Caller::Operator),
            });
            for (key, s) in visible {
                if let Some(config) = config_of(key, s).filter(|_| lag) {
                    wanted.push((list.len(), config));
                }
                list.push(status(key, s));
            }
            (list, wanted)
        };
        for (i, parts) in self.lag_of(wanted).await {
            list[i].partitions = parts;
        }
        list
    }

    /// Per-partition offsets and lag of each `(id, config)`'s group, read
    /// from Kafka in parallel. A deployment Kafka does not answer for
    /// within [`LAG_TIMEOUT`] is left out (the caller answers without it
    /// rather than wait).
    async fn lag_of<K: Send + 'static>(
        &self,
        wanted: Vec<(K, DeploymentConfig)>,
    ) -> Vec<(K, Vec<PartitionStatus>)> {
        let mut lookups = tokio::task::JoinSet::new();
        for (id, config) in wanted {
            let kafka = self.kafka.clone();
            lookups.spawn_blocking(move || {
                let parts = group_status(&kafka, &config.group, &config.inputs);
                (id, config.name, parts)
            });
        }
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + LAG_TIMEOUT;
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, lookups.join_next()).await {
            match joined {
                Ok((id, _, Ok(parts))) => out.push((id, parts)),
                Ok((_, name, Err(e))) => tracing::debug!(deployment = %name,
                    error = %format!("{e:#}"), "consumer lag not available"),
                Err(e) => tracing::debug!(error = %e, "consumer lag lookup panicked"),
            }
        }
        if !lookups.is_empty() {
            tracing::debug!(
                pending = lookups.len(),
                "consumer lag lookups exceeded their time budget"
            );
        }
        out
    }

    /// Status of one deployment (by state-topic key or config name) as this
    /// runner knows it, without partition detail.
    pub fn brief_status(&self, key: &str) -> Option<DeploymentStatus> {
        let slots = self.slots.lock().unwrap();
        slots.get(key).map(|s| status(key, s))
    }

    /// Status of one deployment (by state-topic key or config name), with
    /// per-partition offsets and lag.
    pub async fn status(&self, key: &str) -> Option<Result<DeploymentStatus>> {
        let (mut st, group, inputs) = {
            let slots = self.slots.lock().unwrap();
            let s = slots.get(key)?;
            let config = config_of(key, s)?;
            (status(key, s), config.group, config.inputs)
        };
        let kafka = self.kafka.clone();
        let parts =
            tokio::task::spawn_blocking(move || group_status(&kafka, &group, &inputs)).await;
        Some(match parts {
            Ok(Ok(p)) => {
                st.partitions = p;
                Ok(st)
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(anyhow!("status lookup panicked: {e}")),
        })
    }

    /// The metrics and guest log of a deployment (by state-topic key or
    /// config name).
    pub fn telemetry(&self, key: &str) -> Option<Arc<DeploymentTelemetry>> {
        let slots = self.slots.lock().unwrap();
        slots.get(key).map(|s| s.telemetry.clone())
    }

    /// The Prometheus exposition of this runner: its own families, every
    /// deployment's, their states, and each deployment's consumer lag as
    /// Kafka has it (group-wide). A deployment whose lag cannot be read
    /// within [`LAG_TIMEOUT`] is left out of this scrape's lag.
    pub async fn metrics_text(&self) -> String {
        let scrape = ScrapeFamilies::new();
        let mut families = self.metrics.collect();
        let mut wanted = Vec::new();
        {
            let slots = self.slots.lock().unwrap();
            let mut by_state: BTreeMap<&str, i64> =
                STATES.iter().map(|state| (*state, 0)).collect();
            for (key, s) in slots.iter() {
                let (state, _) = state_of(s);
                scrape
                    .state
                    .with_label_values(&[key.as_str(), state])
                    .set(1);
                *by_state.entry(state).or_default() += 1;
                families.extend(s.telemetry.metrics.collect());
                if let Some(config) = config_of(key, s) {
                    wanted.push((key.clone(), config));
                }
            }
            for (state, n) in by_state {
                scrape.by_state.with_label_values(&[state]).set(n);
            }
        }
        for (key, parts) in self.lag_of(wanted).await {
            for p in parts {
                let partition = p.partition.to_string();
                scrape
                    .lag
                    .with_label_values(&[key.as_str(), &p.topic, &partition])
                    .set(p.lag);
            }
        }
        families.extend(scrape.collect());
        metrics::encode(families)
    }

    /// The running producer deployment `key` (state-topic key), if it is
    /// one and running.
    pub fn producer(&self, key: &str) -> Option<Arc<ProducerDeployment>> {
        let slots = self.slots.lock().unwrap();
        match slots.get(key)?.running.as_ref()? {
            Running::Producer(p) => Some(p.clone()),
            Running::Consumer(_) => None,
        }
    }

    /// The keys of the deployments (of any tenant) whose
    /// `ingest.key_sha256` is `key_sha256`. The API keeps ingest keys
    /// unique, so a webhook sender holding only a key is matched to exactly
    /// one deployment.
    pub fn ingest_key_users(&self, key_sha256: &str) -> Vec<String> {
        let slots = self.slots.lock().unwrap();
        slots
            .values()
            .filter_map(|s| s.record.as_ref())
            .filter(|r| {
                r.settings
                    .ingest
                    .key_sha256
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(key_sha256))
            })
            .map(DeploymentRecord::key)
            .collect()
    }

    /// Whether the deployment is a config-file one (the API cannot change it).
    pub fn is_static(&self, name: &str) -> bool {
        let slots = self.slots.lock().unwrap();
        slots.get(name).is_some_and(|s| s.record.is_none())
    }

    /// Drain and stop every deployment, all at once, so stopping many
    /// takes about one drain timeout. Returns the failures, naming each.
    pub async fn stop_all(&self) -> Vec<String> {
        let running: Vec<(String, Running)> = {
            let mut slots = self.slots.lock().unwrap();
            slots
                .iter_mut()
                .filter_map(|(k, s)| Some((k.clone(), s.running.take()?)))
                .collect()
        };
        let mut stopping = tokio::task::JoinSet::new();
        for (name, d) in running {
            stopping.spawn(async move { (name, d.stop().await) });
        }
        let mut failures = Vec::new();
        while let Some(stopped) = stopping.join_next().await {
            match stopped {
                Ok((name, DeploymentState::Failed(reason))) => {
                    failures.push(format!("deployment {name:?} failed: {reason}"));
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("stopping a deployment panicked: {e}")),
            }
        }
        failures.sort();
        failures
    }
}

fn log_moved(config: &DeploymentConfig, from: StartPosition, moved: usize) {
    if moved > 0 {
        tracing::info!(deployment = %config.name, group = %config.group, ?from, partitions = moved,
            "consumer group moved");
    }
}

async fn stop(d: &Running) {
    if let DeploymentState::Failed(reason) = d.stop().await {
        tracing::info!(deployment = d.name(), %reason, "stopped a failed deployment");
    }
}

/// The consumer settings a slot runs (or would run) with, for its offsets
/// and lag; `None` for a producer.
fn config_of(key: &str, s: &Slot) -> Option<DeploymentConfig> {
    let config = match (&s.record, &s.running) {
        (Some(r), _) => r.settings.to_config(key),
        (None, Some(d)) => d.config(),
        (None, None) => return None,
    };
    // A producer has no group, so no offsets or lag.
    (!config.inputs.is_empty()).then_some(config)
}

/// The slot's state name, and why it failed.
fn state_of(s: &Slot) -> (&'static str, Option<String>) {
    match (&s.running, &s.record, &s.problem) {
        (_, Some(r), _) if r.paused => ("paused", None),
        (Some(d), _, _) => match d.state() {
            DeploymentState::Starting => ("starting", None),
            DeploymentState::Running => ("running", None),
            DeploymentState::Degraded(reason) => ("degraded", Some(reason)),
            DeploymentState::Stopped => ("stopped", None),
            DeploymentState::Failed(reason) => ("failed", Some(reason)),
        },
        (None, _, Some(p)) => ("failed", Some(p.clone())),
        (None, _, None) => ("stopped", None),
    }
}

fn status(key: &str, s: &Slot) -> DeploymentStatus {
    let (state, reason) = state_of(s);
    let counters = CountersView::from(&s.telemetry.metrics);
    let notes = s.running.as_ref().map(Running::notes).unwrap_or_default();
    match &s.record {
        Some(r) => DeploymentStatus {
            name: r.name.clone(),
            tenant: Some(r.tenant.clone()),
            source: "api",
            state,
            reason,
            module: r.settings.module.clone(),
            revision: r.revision,
            previous_modules: r
                .previous
                .iter()
                .map(|p| p.settings.module.clone())
                .collect(),
            settings: Some(r.settings.clone()),
            counters,
            notes: notes.clone(),
            partitions: Vec::new(),
            updated_by: Some(r.updated_by.clone()),
            updated_ms: Some(r.updated_ms),
        },
        None => DeploymentStatus {
            name: key.to_owned(),
            tenant: None,
            source: "config",
            state,
            reason,
            module: s
                .running
                .as_ref()
                .map(|d| d.config().module.display().to_string())
                .unwrap_or_default(),
            revision: 1,
            previous_modules: Vec::new(),
            settings: None,
            counters,
            notes: notes.clone(),
            partitions: Vec::new(),
            updated_by: None,
            updated_ms: None,
        },
    }
}
