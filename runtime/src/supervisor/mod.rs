//! The supervisor: brings every deployment of this runner to its desired
//! state, and shows what it runs as a read-only [`View`] per deployment.
//! Status, lag and the scrape are built from those views elsewhere
//! (`control::status`, `telemetry::scrape`).
//!
//! Config-file deployments are started once. API deployments follow their
//! records in the deployments state topic, applied one at a time in log
//! order: a new record starts one; what a changed record means (swap at
//! the next batch, restart, replay) is [`crate::deployment::change`]'s
//! decision; pause stops it (committing what it handled) and a tombstone
//! removes it.

mod running;
mod sleep;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use wasmtime::component::Linker;

pub use running::{Program, Running, world_mismatch};

use crate::config::KafkaConfig;
use crate::deployment::{
    Change, Definition, DeploymentRecord, ModuleRef, Notes, RunState, StartPosition, State, change,
};
use crate::kafka::Producers;
use crate::modules::ModuleRegistry;
use crate::offsets::{Move, move_group};
use crate::pipeline::Timeouts;
use crate::producer::ProducerDeployment;
use crate::telemetry::DeploymentTelemetry;
use crate::wasm::{HostState, InstanceQuotas, WasmEngine, consumer_linker};

/// How long a start or replay waits for the group to empty before it
/// gives up.
const MOVE_WAIT: Duration = Duration::from_secs(30);

/// One deployment, wanted or running.
struct Slot {
    /// The record it follows (`None` for a config-file deployment).
    record: Option<Arc<DeploymentRecord>>,
    /// What it runs or would run.
    def: Arc<Definition>,
    running: Option<Running>,
    /// Why it is not running when it should be.
    problem: Option<String>,
    /// The last replay request carried out.
    replayed: u64,
    /// Why it is stopped for a while on purpose: another runner of the
    /// fleet is carrying out a replay.
    waiting: Option<String>,
    /// Metrics and guest log, kept for as long as the slot.
    telemetry: Arc<DeploymentTelemetry>,
    /// Set while it sleeps: caught up and idle, its consumer released.
    asleep: Option<sleep::Asleep>,
}

/// One deployment as the supervisor has it: a read-only copy, cheap to
/// take (shared parts).
#[derive(Clone)]
pub struct View {
    /// `<tenant>/<name>` (API) or the config file's name.
    pub key: String,
    /// The record it follows (`None` for a config-file deployment).
    pub record: Option<Arc<DeploymentRecord>>,
    /// What it runs or would run.
    pub def: Arc<Definition>,
    /// The started deployment; `None` when paused, failed to start, or
    /// not started yet.
    pub running: Option<Running>,
    /// Why it is not running when it should be.
    pub problem: Option<String>,
    /// Why it is stopped for a while on purpose (another runner carries
    /// out a replay).
    pub waiting: Option<String>,
    /// Its metrics and guest log, which outlive restarts (kept as long as
    /// the deployment exists on this runner).
    pub telemetry: Arc<DeploymentTelemetry>,
    /// How long it has been asleep, if it sleeps.
    pub asleep_for: Option<Duration>,
}

impl View {
    /// Its state as status reports it, and the reason that goes with it.
    pub fn state(&self) -> (State, Option<String>) {
        // A refused record (see `Supervisor::refuse`) is failed, paused or not.
        if let (None, Some(p)) = (&self.running, &self.problem) {
            return (State::Failed, Some(p.clone()));
        }
        if self.record.as_ref().is_some_and(|r| r.paused) {
            return (State::Paused, None);
        }
        match (&self.running, &self.problem) {
            (Some(d), _) => d.state().reported(),
            (None, Some(p)) => (State::Failed, Some(p.clone())),
            (None, None) if self.waiting.is_some() => (State::Starting, self.waiting.clone()),
            (None, None) if self.asleep_for.is_some() => (State::Sleeping, None),
            (None, None) => (State::Stopped, None),
        }
    }

    /// What is noted about its input partitions.
    pub fn notes(&self) -> Notes {
        self.running
            .as_ref()
            .map(Running::notes)
            .unwrap_or_default()
    }

    /// The running producer deployment, if it is one.
    pub fn producer(&self) -> Option<Arc<ProducerDeployment>> {
        match self.running.as_ref()? {
            Running::Producer(p) => Some(p.clone()),
            Running::Consumer(_) => None,
        }
    }
}

/// Every deployment of this runner.
pub struct Supervisor {
    linker: Linker<HostState>,
    quotas: Arc<InstanceQuotas>,
    kafka: KafkaConfig,
    producers: Producers,
    timeouts: Timeouts,
    modules: Arc<ModuleRegistry>,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// Where API deployments' schedules elect their owner (set once the
    /// control plane is up).
    coordination: std::sync::OnceLock<crate::producer::owner::Coordination>,
    /// This runner's id in the fleet (set with the control plane).
    runner_id: std::sync::OnceLock<String>,
    /// Where a replay carried out here is announced, for the control
    /// plane to mark it done in the state topic.
    replays_done: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
    /// Where every deployment's guest lines are mirrored to the fleet.
    log_mirror: std::sync::OnceLock<crate::telemetry::guest_log::LogMirror>,
    /// One change at a time per deployment: the applier's, sleeping and
    /// waking take turns.
    turns: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Supervisor {
    /// A supervisor with no deployments yet: `engine` links modules;
    /// `kafka` (also used to move groups) and `producers` are shared by
    /// every deployment it starts; `timeouts` bound their drains and
    /// stalls; `modules` is where API deployments find their uploaded
    /// module.
    pub fn new(
        engine: &WasmEngine,
        kafka: KafkaConfig,
        producers: Producers,
        timeouts: Timeouts,
        modules: Arc<ModuleRegistry>,
    ) -> Result<Self> {
        Ok(Self {
            linker: consumer_linker(engine.engine())?,
            quotas: engine.quotas().clone(),
            kafka,
            producers,
            timeouts,
            modules,
            slots: Mutex::new(BTreeMap::new()),
            coordination: std::sync::OnceLock::new(),
            runner_id: std::sync::OnceLock::new(),
            replays_done: std::sync::OnceLock::new(),
            log_mirror: std::sync::OnceLock::new(),
            turns: Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// Join the fleet sharing the control plane: elect one owner per
    /// schedule through `coordination`, know this runner as `runner_id`,
    /// and announce replays carried out here on `replays_done`.
    pub fn join_fleet(
        &self,
        coordination: crate::producer::owner::Coordination,
        runner_id: String,
        replays_done: tokio::sync::mpsc::UnboundedSender<String>,
    ) {
        let _ = self.coordination.set(coordination);
        let _ = self.runner_id.set(runner_id);
        let _ = self.replays_done.set(replays_done);
    }

    /// Mirror every deployment's guest lines to the fleet, those it has
    /// now and those it gets.
    pub fn mirror_logs(&self, mirror: crate::telemetry::guest_log::LogMirror) {
        let _ = self.log_mirror.set(mirror.clone());
        let slots = self.slots.lock().unwrap();
        for s in slots.values() {
            s.telemetry.log.mirror_to(mirror.clone());
        }
    }

    /// Wait for deployment `key`'s turn to change.
    async fn turn(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .turns
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Fresh telemetry for deployment `key`, mirrored to the fleet.
    fn telemetry(&self, key: &str) -> Arc<DeploymentTelemetry> {
        let t = DeploymentTelemetry::new(key);
        if let Some(m) = self.log_mirror.get() {
            t.log.mirror_to(m.clone());
        }
        t
    }

    /// The shared linker (config-file modules are linked before start).
    pub fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// Start a config-file deployment. Blocking: a `start` other than
    /// `earliest` is committed first if its group is new.
    pub fn start_static(&self, program: Program) -> Result<Running> {
        let def = Arc::new(program.def().clone());
        let telemetry = match &program {
            Program::Consumer(p) => p.template.grants().telemetry.clone(),
            Program::Producer(p) => p.template.grants().telemetry.clone(),
        };
        if let Some(c) = def.spec.kind.consumer()
            && c.start != StartPosition::Earliest
        {
            let moved = move_group(
                &self.kafka,
                &c.group,
                &c.inputs,
                c.start,
                Move::StartIfNew,
                MOVE_WAIT,
            )?;
            log_moved(&def, c.start, moved);
        }
        // A config-file deployment is this runner's alone: no election.
        let d = Running::start(program, &self.kafka, &self.producers, self.timeouts, None)?;
        self.slots.lock().unwrap().insert(
            def.name.clone(),
            Slot {
                record: None,
                def,
                running: Some(d.clone()),
                problem: None,
                replayed: 0,
                waiting: None,
                telemetry,
                asleep: None,
            },
        );
        Ok(d)
    }

    /// Every deployment, by key.
    pub fn snapshot(&self) -> Vec<View> {
        let slots = self.slots.lock().unwrap();
        slots.iter().map(|(k, s)| view(k, s)).collect()
    }

    /// The deployment `key` (state-topic key or config-file name).
    pub fn view(&self, key: &str) -> Option<View> {
        let slots = self.slots.lock().unwrap();
        slots.get(key).map(|s| view(key, s))
    }

    /// Bring the deployment `key` to `record` (`None`: remove it).
    ///
    /// A replay request is carried out only when `live` (the record was
    /// written while this runner was reading along): one found while
    /// recovering state at start was carried out when it was made, and
    /// repeating it would rewind the group again.
    pub async fn apply(&self, key: &str, record: Option<DeploymentRecord>, live: bool) {
        let _turn = self.turn(key).await;
        let (old, running, replayed, telemetry) = {
            let slots = self.slots.lock().unwrap();
            match slots.get(key) {
                // Left in place while the change is worked out (a module
                // may compile for seconds): it keeps serving until
                // replaced or stopped below.
                Some(s) => (
                    s.record.clone(),
                    s.running.clone(),
                    s.replayed,
                    s.telemetry.clone(),
                ),
                None => (None, None, 0, self.telemetry(key)),
            }
        };
        let Some(record) = record else {
            if let Some(d) = running {
                stop(&d).await;
            }
            self.slots.lock().unwrap().remove(key);
            // A sleep or wake still waiting for this key finds no slot and
            // does nothing.
            self.turns.lock().unwrap().remove(key);
            tracing::info!(deployment = key, "deployment removed");
            return;
        };
        let requested = record.replay.as_ref().filter(|r| r.seq > replayed);
        let replayed = requested.map_or(replayed, |r| r.seq);
        let replay = requested.filter(|_| live).map(|r| r.from);
        let def = Arc::new(Definition::of_record(&record));
        // In a fleet one runner carries a replay out, the one whose API
        // took it; the others stop and wait until it says it is done (the
        // same record again, marked done), so nobody reads the group while
        // it is moved and nobody moves it twice.
        if replay.is_some()
            && let Some(by) = self.replayed_by_another(&record)
        {
            if let Some(d) = running {
                stop(&d).await;
            }
            let waiting = format!(
                "runner {by:?} is replaying the deployment's group; this runner resumes when it is done"
            );
            tracing::info!(deployment = key, runner = %by, "waiting for another runner's replay");
            let slot = Slot::not_running(record, def, replayed, telemetry);
            self.slots.lock().unwrap().insert(
                key.to_owned(),
                Slot {
                    waiting: Some(waiting),
                    ..slot
                },
            );
            return;
        }
        let carried_out = replay.is_some() && def.spec.kind.consumer().is_some() && !record.paused;
        let outcome = self
            .reconcile(old.as_deref(), &record, &def, running, replay, &telemetry)
            .await;
        if carried_out && outcome.is_ok() {
            // Tell the fleet (the control plane writes it down).
            if let Some(done) = self.replays_done.get() {
                let _ = done.send(key.to_owned());
            }
        }
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
                record: Some(Arc::new(record)),
                def,
                running,
                problem,
                replayed,
                waiting: None,
                telemetry,
                asleep: None,
            },
        );
    }

    /// The runner that took `record`'s replay, if it is not this one and
    /// the replay is not done yet (`None`: this runner carries it out).
    fn replayed_by_another(&self, record: &DeploymentRecord) -> Option<String> {
        let me = self.runner_id.get()?;
        let by = record.runner.as_ref()?;
        let pending = record.replay.as_ref().is_some_and(|r| !r.done);
        (pending && by != me).then(|| by.clone())
    }

    /// Stop deployment `key` (if it runs) because `record` may not run on
    /// this runner, and keep it listed as failed with `reason`.
    pub async fn refuse(&self, key: &str, record: DeploymentRecord, reason: String) {
        let _turn = self.turn(key).await;
        let (running, replayed, telemetry) = {
            let slots = self.slots.lock().unwrap();
            match slots.get(key) {
                Some(s) => (s.running.clone(), s.replayed, s.telemetry.clone()),
                None => (None, 0, self.telemetry(key)),
            }
        };
        if let Some(d) = running {
            stop(&d).await;
        }
        tracing::warn!(deployment = key, %reason, "deployment refused; not running it");
        let def = Arc::new(Definition::of_record(&record));
        let slot = Slot::not_running(record, def, replayed, telemetry);
        self.slots.lock().unwrap().insert(
            key.to_owned(),
            Slot {
                problem: Some(reason),
                ..slot
            },
        );
    }

    async fn reconcile(
        &self,
        old: Option<&DeploymentRecord>,
        record: &DeploymentRecord,
        def: &Definition,
        running: Option<Running>,
        replay: Option<StartPosition>,
        telemetry: &Arc<DeploymentTelemetry>,
    ) -> Result<Option<Running>> {
        // A producer has no group to move.
        let replay = replay.filter(|_| def.spec.kind.consumer().is_some());
        if record.paused {
            if let Some(d) = running {
                stop(&d).await;
                tracing::info!(deployment = %def.name, "deployment paused");
            }
            self.position_group(def, old, replay).await?;
            return Ok(None);
        }
        let what = match (&running, old) {
            // A new redrive topic is a new subscription.
            (Some(d), Some(o))
                if d.state().is_running() && o.redrive_topic != def.redrive_topic =>
            {
                Change::Restart
            }
            (Some(d), Some(o)) if d.state().is_running() => change(&o.settings, &def.spec, replay),
            // Not running (new, failed, paused before): start it.
            _ => Change::Restart,
        };
        match (what, &running) {
            (Change::Nothing, _) => Ok(running),
            (Change::Swap, Some(d)) => {
                let swapped = match self.program(def, telemetry).await {
                    Ok(program) => d.swap(program),
                    Err(e) => Err(e),
                };
                if let Err(e) = swapped {
                    // Not running what the record asks for: stop, and say
                    // why, rather than keep an old revision running unseen.
                    stop(d).await;
                    return Err(e);
                }
                Ok(running)
            }
            _ => {
                if let Some(d) = running {
                    stop(&d).await;
                }
                let program = self.program(def, telemetry).await?;
                self.position_group(def, old, replay).await?;
                Ok(Some(self.start(program).await?))
            }
        }
    }

    /// Start `program` with the runner's Kafka settings, producers and
    /// schedule election, off the async workers (creating a consumer and
    /// reading its topics' metadata block).
    async fn start(&self, program: Program) -> Result<Running> {
        let (kafka, producers, timeouts) =
            (self.kafka.clone(), self.producers.clone(), self.timeouts);
        let coordination = self.coordination.get().cloned();
        tokio::task::spawn_blocking(move || {
            Running::start(program, &kafka, &producers, timeouts, coordination.as_ref())
        })
        .await
        .unwrap_or_else(|e| Err(anyhow!("starting the deployment panicked: {e}")))
    }

    /// Move the (stopped) group where it must begin: to a replay's
    /// position, or to the deployment's `start` on the inputs it did not
    /// read before (all of them when it is created) if the group has no
    /// commit there yet (`earliest` needs no commit: a partition without
    /// one begins at its first offset).
    async fn position_group(
        &self,
        def: &Definition,
        old: Option<&DeploymentRecord>,
        replay: Option<StartPosition>,
    ) -> Result<()> {
        let Some(c) = def.spec.kind.consumer() else {
            return Ok(());
        };
        if let Some(from) = replay {
            return self.move_group(def, &c.inputs, from, Move::Replay).await;
        }
        let read_before = |t: &String| {
            old.and_then(|o| o.settings.kind.consumer())
                .is_some_and(|o| o.inputs.contains(t))
        };
        let new_inputs: Vec<String> = c
            .inputs
            .iter()
            .filter(|t| !read_before(t))
            .cloned()
            .collect();
        if new_inputs.is_empty() || c.start == StartPosition::Earliest {
            return Ok(());
        }
        self.move_group(def, &new_inputs, c.start, Move::StartIfNew)
            .await
    }

    async fn move_group(
        &self,
        def: &Definition,
        topics: &[String],
        from: StartPosition,
        mode: Move,
    ) -> Result<()> {
        let group = def.spec.group().unwrap_or_default().to_owned();
        let (kafka, topics) = (self.kafka.clone(), topics.to_vec());
        let moved = tokio::task::spawn_blocking(move || {
            move_group(&kafka, &group, &topics, from, mode, MOVE_WAIT)
        })
        .await
        .context("offset move panicked")??;
        log_moved(def, from, moved);
        Ok(())
    }

    /// Load, check and link the module a definition names.
    async fn program(
        &self,
        def: &Definition,
        telemetry: &Arc<DeploymentTelemetry>,
    ) -> Result<Program> {
        let ModuleRef::Digest(digest) = &def.spec.module else {
            anyhow::bail!(
                "deployment {:?}: module {} is not an uploaded module's digest",
                def.name,
                def.spec.module
            );
        };
        let (modules, wanted) = (self.modules.clone(), digest.clone());
        let module = tokio::task::spawn_blocking(move || modules.load(&wanted))
            .await
            .context("module compilation panicked")?
            .ok_or_else(|| {
                anyhow!(
                    "deployment {:?}: module {digest} is not in the module store (yet); it starts when the module arrives",
                    def.name
                )
            })??;
        Program::link(&self.linker, &self.quotas, def, module, telemetry.clone())
    }

    /// Re-apply the deployments waiting for module `digest`.
    pub async fn module_arrived(&self, digest: &str) {
        let waiting: Vec<(String, DeploymentRecord)> = {
            let slots = self.slots.lock().unwrap();
            slots
                .iter()
                .filter(|(_, s)| s.running.is_none() && s.problem.is_some())
                .filter_map(|(k, s)| Some((k.clone(), s.record.as_deref()?.clone())))
                .filter(|(_, r)| r.settings.module.to_string() == digest && !r.paused)
                .collect()
        };
        // Not running, so applying the same record again starts it.
        for (key, record) in waiting {
            self.apply(&key, Some(record), false).await;
        }
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
                Ok((name, RunState::Failed(reason))) => {
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

impl Slot {
    /// `record`'s deployment, listed but not running (the caller says why:
    /// `problem` or `waiting`).
    fn not_running(
        record: DeploymentRecord,
        def: Arc<Definition>,
        replayed: u64,
        telemetry: Arc<DeploymentTelemetry>,
    ) -> Slot {
        Slot {
            record: Some(Arc::new(record)),
            def,
            running: None,
            problem: None,
            replayed,
            waiting: None,
            telemetry,
            asleep: None,
        }
    }
}

fn view(key: &str, s: &Slot) -> View {
    View {
        key: key.to_owned(),
        record: s.record.clone(),
        def: s.def.clone(),
        running: s.running.clone(),
        problem: s.problem.clone(),
        waiting: s.waiting.clone(),
        telemetry: s.telemetry.clone(),
        asleep_for: s.asleep.as_ref().map(|a| a.since.elapsed()),
    }
}

fn log_moved(def: &Definition, from: StartPosition, moved: usize) {
    if moved > 0 {
        tracing::info!(deployment = %def.name, ?from, partitions = moved, "consumer group moved");
    }
}

async fn stop(d: &Running) {
    if let RunState::Failed(reason) = d.stop().await {
        tracing::info!(deployment = d.name(), %reason, "stopped a failed deployment");
    }
}
