//! The runner: load and check every config-file module, start those
//! deployments, recover the control plane's state from Kafka and serve its
//! API, then run until shutdown.
//!
//! All config-file modules are loaded and linked before any consumer is
//! created, so a bad module or config stops the runner before a single
//! record is consumed.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use wasmtime::component::Linker;

use crate::config::Config;
use crate::control::applier::{Trust, apply_state};
use crate::control::http::{self, HttpState};
use crate::control::service::Service;
use crate::control::state::{StateLog, StateTopic};
use crate::deployment::ModuleRef;
use crate::fleet::{Fleet, FleetConfig};
use crate::kafka::Producers;
use crate::modules::ModuleRegistry;
use crate::offsets::Offsets;
use crate::pipeline::Timeouts;
use crate::supervisor::{Program, Running, Supervisor};
use crate::telemetry::{DeploymentTelemetry, RunnerMetrics};
use crate::wasm::{HostState, LoadedModule, WasmEngine, WasmEngineConfig, consumer_linker};

/// The default compile cache: `$XDG_CACHE_HOME/ingesta/compiled`, else
/// `~/.cache/ingesta/compiled`; `None` without either (never a shared
/// temporary directory: its files are loaded as trusted code).
pub fn default_compile_cache() -> Option<PathBuf> {
    xdg_base("XDG_CACHE_HOME", ".cache").map(|b| b.join("ingesta").join("compiled"))
}

/// `$<var>`, else `~/<under_home>`.
fn xdg_base(var: &str, under_home: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(under_home)))
}

/// `$<var>/ingesta`, else `~/<under_home>/ingesta`, else under the temp dir
/// (for unpacked SDK sources, which are not executed by the runner).
pub(crate) fn xdg_dir(var: &str, under_home: &str) -> PathBuf {
    xdg_base(var, under_home)
        .unwrap_or_else(std::env::temp_dir)
        .join("ingesta")
}

/// Load, check and link every config-file deployment's module.
pub fn prepare(config: &Config, engine: &WasmEngine) -> Result<Vec<Program>> {
    let linker = consumer_linker(engine.engine())?;
    prepare_with(config, engine, &linker)
}

fn prepare_with(
    config: &Config,
    engine: &WasmEngine,
    linker: &Linker<HostState>,
) -> Result<Vec<Program>> {
    let mut specs = Vec::new();
    for d in &config.deployments {
        let ModuleRef::File(file) = &d.spec.module else {
            bail!(
                "deployment {:?}: a config-file deployment's module must be a file",
                d.name
            );
        };
        let module =
            LoadedModule::from_file(engine.engine(), file, &engine.config().compile_cache_dir)
                .with_context(|| format!("deployment {:?}", d.name))?;
        specs.push(Program::link(
            linker,
            engine.quotas(),
            d,
            module,
            DeploymentTelemetry::new(&d.name),
        )?);
    }
    Ok(specs)
}

/// Build the shared engine for a config.
pub fn engine_for(config: &Config) -> Result<WasmEngine> {
    let cache = config
        .runtime
        .compile_cache_dir
        .clone()
        .or_else(default_compile_cache)
        .context("no place for the compile cache: set runtime.compile_cache_dir (neither XDG_CACHE_HOME nor HOME is set)")?;
    crate::wasm::prepare_cache_dir(&cache).map_err(anyhow::Error::msg)?;
    let mut engine =
        WasmEngineConfig::new(Duration::from_millis(config.runtime.epoch_tick_ms), cache);
    engine.max_wasm_stack = (config.runtime.wasm_stack_kib as usize) << 10;
    engine.max_instances = config.runtime.max_instances;
    if let Some(n) = config.runtime.long_calls {
        engine.long_calls = n as usize;
    }
    engine.tenant_max_instances = config
        .control
        .iter()
        .flat_map(|c| &c.tenants)
        .filter_map(|t| Some((t.name.clone(), t.max_instances? as usize)))
        .collect();
    // Fuel metering is engine-wide: on when asked for, or when a
    // config-file deployment sets a fuel limit.
    engine.fuel = config.runtime.fuel_metering
        || config
            .deployments
            .iter()
            .any(|d| d.spec.limits.fuel.is_some());
    WasmEngine::new(engine)
}

/// A started runner: the shared engine and producers, the supervisor of its
/// deployments and, with `[control]`, the control plane.
pub struct Runner {
    /// Kept alive for the deployments' instances; drives the epoch.
    engine: WasmEngine,
    producers: Producers,
    metrics: Arc<RunnerMetrics>,
    modules: Arc<ModuleRegistry>,
    supervisor: Arc<Supervisor>,
    /// Config-file deployments, in config order.
    statics: Vec<Running>,
    control: Option<Control>,
}

/// The running control plane.
struct Control {
    /// Ends the API's open streams before it stops.
    closing: tokio::sync::watch::Sender<bool>,
    stop_api: tokio::sync::oneshot::Sender<()>,
    api: tokio::task::JoinHandle<std::io::Result<()>>,
    applier: tokio::task::JoinHandle<()>,
    /// Reports to the other runners; left once the deployments stopped.
    fleet: Arc<Fleet>,
    /// Puts idle deployments to sleep and wakes them (unless
    /// `runtime.sleep_after_ms` is 0).
    sleeper: Option<tokio::task::JoinHandle<()>>,
}

impl Runner {
    /// Load every config-file module, then start those deployments. The
    /// control plane, if configured, is started by [`Runner::start_control`].
    pub fn start(config: &Config) -> Result<Runner> {
        if config.deployments.is_empty() && config.control.is_none() {
            bail!("the config has no [[deployment]] and no [control] API; nothing to run");
        }
        let engine = engine_for(config)?;
        let metrics = Arc::new(RunnerMetrics::new());
        let producers =
            Producers::new(&config.kafka, &metrics).context("invalid Kafka producer settings")?;
        let modules = Arc::new(ModuleRegistry::new(
            engine.engine().clone(),
            engine.config().compile_cache_dir.clone(),
        ));
        let supervisor = Arc::new(Supervisor::new(
            &engine,
            config.kafka.clone(),
            producers.clone(),
            Timeouts {
                drain: Duration::from_millis(config.runtime.drain_timeout_ms),
                stall: Duration::from_millis(config.runtime.stall_timeout_ms),
            },
            modules.clone(),
        )?);
        let specs = prepare_with(config, &engine, supervisor.linker())?;
        let mut statics = Vec::new();
        for spec in specs {
            statics.push(supervisor.start_static(spec)?);
        }
        Ok(Runner {
            engine,
            producers,
            metrics,
            modules,
            supervisor,
            statics,
            control: None,
        })
    }

    /// The shared wasmtime engine.
    pub fn engine(&self) -> &WasmEngine {
        &self.engine
    }

    /// The runner's shared producers.
    pub fn producers(&self) -> &Producers {
        &self.producers
    }

    /// The config-file deployments, in config order.
    pub fn deployments(&self) -> &[Running] {
        &self.statics
    }

    /// Resolves once every config-file deployment has stopped or failed.
    pub async fn all_finished(&self) {
        for d in &self.statics {
            d.finished().await;
        }
    }

    /// The control plane's service over `state`, with the control
    /// settings that are not its constructor's.
    fn service(
        &self,
        config: &Config,
        control: &crate::config::ControlConfig,
        state: Arc<StateLog>,
        fleet: Arc<Fleet>,
    ) -> Result<Arc<Service>> {
        let offsets = Offsets::new(
            &config.kafka,
            Duration::from_millis(config.runtime.offsets_cache_ms),
        )
        .context("cannot create the runner's offsets client")?;
        let mut service = Service::new(
            control.auth().map_err(anyhow::Error::msg)?,
            self.supervisor.clone(),
            self.modules.clone(),
            state,
            Arc::new(offsets),
            self.metrics.clone(),
            self.engine.config().fuel,
            (control.max_module_mib as usize) << 20,
        );
        service.compile_queue_wait = Duration::from_millis(control.compile_queue_wait_ms);
        service.state_replication = control.state_replication_factor;
        service.runner_id = config.runtime.runner_id();
        service.fleet = Some(fleet);
        let service = Arc::new(service);
        Ok(service)
    }

    /// Put idle deployments to sleep and wake them, until `closing`
    /// (unless `runtime.sleep_after_ms` is 0).
    fn start_sleeper(
        &self,
        config: &Config,
        offsets: Arc<Offsets>,
        closing: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let runtime = &config.runtime;
        (runtime.sleep_after_ms > 0).then(|| {
            tokio::spawn(self.supervisor.clone().keep_sleeping(
                offsets,
                Duration::from_millis(runtime.sleep_after_ms),
                Duration::from_millis(runtime.wake_check_ms),
                closing,
            ))
        })
    }

    /// Read the control plane's state from Kafka, start every deployment
    /// it holds, then serve the API.
    pub async fn start_control(&mut self, config: &Config) -> Result<()> {
        let Some(control) = &config.control else {
            return Ok(());
        };
        let opened = StateLog::open(&config.kafka, control).await?;
        let state = opened.log.clone();
        let (replays_done, replayed) = tokio::sync::mpsc::unbounded_channel();
        let runner_id = config.runtime.runner_id();
        self.supervisor
            .join_fleet(state.coordination(), runner_id.clone(), replays_done);
        let fleet = Fleet::join(
            &config.kafka,
            fleet_config(control),
            &runner_id,
            self.supervisor.clone(),
            self.metrics.fleet_log_dropped.clone(),
        )
        .await?;
        let applier = tokio::spawn(apply_state(
            opened.records,
            opened.ends,
            state.clone(),
            self.modules.clone(),
            self.supervisor.clone(),
            Trust {
                auth: control.auth().map_err(anyhow::Error::msg)?,
                fuel_metering: self.engine.config().fuel,
            },
        ));
        let service = self.service(config, control, state.clone(), fleet.clone())?;
        service.follow_replays(replayed);
        service.adopt_orphaned_replays();
        let (closing, closing_rx) = tokio::sync::watch::channel(false);
        let sleeper = self.start_sleeper(config, service.offsets.clone(), closing_rx.clone());
        let http_state = Arc::new(HttpState {
            service: service.clone(),
            closing: closing_rx,
            body_read_timeout: Duration::from_millis(control.body_read_timeout_ms),
        });
        let listener = tokio::net::TcpListener::bind(control.listen)
            .await
            .with_context(|| format!("cannot listen on control.listen = {}", control.listen))?;
        tracing::info!(listen = %control.listen, "control API listening");
        let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = http::accept::Limits {
            max_connections: control.max_connections,
            header_read_timeout: Duration::from_millis(control.header_read_timeout_ms),
        };
        let api = tokio::spawn(http::serve(listener, http_state, limits, async {
            let _ = stopped.await;
        }));
        // Ready once everything that was in the state topics at start is
        // applied: a restarted runner is running its deployments again.
        let ends = opened.ends;
        let started = std::time::Instant::now();
        while !(state.is_applied(StateTopic::Deployments, ends[0])
            && state.is_applied(StateTopic::Modules, ends[1]))
        {
            if applier.is_finished() {
                bail!("the control-plane state reader stopped while starting");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        service.set_ready();
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "control-plane state recovered; ready"
        );
        self.control = Some(Control {
            closing,
            stop_api,
            api,
            applier,
            fleet,
            sleeper,
        });
        Ok(())
    }

    /// Stop the API, drain and stop every deployment, flush the producers.
    /// Fails if any deployment failed, naming each and why.
    pub async fn stop(self) -> Result<()> {
        let mut fleet = None;
        if let Some(c) = self.control {
            c.closing.send_replace(true);
            let _ = c.stop_api.send(());
            match c.api.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "control API ended with an error"),
                Err(e) => tracing::warn!(error = %e, "control API task failed"),
            }
            c.applier.abort();
            // It finishes the round it is in, so nothing it woke is left
            // out of the stop below.
            if let Some(sleeper) = c.sleeper {
                let _ = sleeper.await;
            }
            fleet = Some(c.fleet);
        }
        let failures = self.supervisor.stop_all().await;
        if let Some(f) = fleet {
            f.leave().await;
        }
        let p = self.producers.clone();
        tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(10)))
            .await?
            .context("the Kafka producers did not flush")?;
        if !failures.is_empty() {
            bail!("{}", failures.join("\n"));
        }
        Ok(())
    }
}

/// Where the fleet of runners sharing `control`'s state prefix meets.
fn fleet_config(control: &crate::config::ControlConfig) -> FleetConfig {
    let prefix = &control.state_topic_prefix;
    FleetConfig {
        runners_topic: format!("{prefix}runners"),
        logs_topic: format!("{prefix}logs"),
        every: Duration::from_millis(control.report_interval_ms),
        log_retention_ms: control.fleet_log_retention_ms,
        replication: control.state_replication_factor,
    }
}

/// Run every deployment of `config` (and its control plane) until
/// `shutdown` resolves (then drain and commit) or, without a control plane,
/// until every deployment has stopped. Fails if any deployment failed,
/// naming each and why.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let mut runner = Runner::start(&config)?;
    if let Err(e) = runner.start_control(&config).await {
        let _ = runner.stop().await;
        return Err(e);
    }
    // With an API the runner serves until told to stop; without one it is
    // done when its deployments are.
    let with_api = config.control.is_some();
    let finished = async {
        if with_api {
            std::future::pending::<()>().await
        } else {
            runner.all_finished().await
        }
    };
    tokio::select! {
        _ = shutdown => tracing::info!("shutdown requested; draining in-flight batches"),
        _ = finished => {}
    }
    runner.stop().await?;
    tracing::info!("all deployments stopped cleanly");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("cannot install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
