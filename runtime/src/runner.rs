//! The runner: load and check every module, then start every deployment and
//! supervise them until shutdown.
//!
//! All modules are loaded and linked before any consumer is created, so a bad
//! module or config stops the runner before a single record is consumed.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::config::{Config, ControlConfig};
use crate::control::api::{self, ApiState};
use crate::control::auth::Auth;
use crate::control::modules::ModuleRegistry;
use crate::kafka::{self, OutputProducer};
use crate::pipeline::{Deployment, DeploymentSpec, DeploymentState};
use crate::wasm::{
    ConsumerTemplate, DeploymentGrants, LoadedModule, WasmEngine, WasmEngineConfig, World,
    consumer_linker,
};

/// The default compile cache: `$XDG_CACHE_HOME/ingesta/compiled`.
pub fn default_compile_cache() -> PathBuf {
    xdg_dir("XDG_CACHE_HOME", ".cache").join("compiled")
}

/// The default module directory: `$XDG_DATA_HOME/ingesta/modules`.
pub fn default_data_dir() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share").join("modules")
}

/// `$<var>/ingesta`, else `~/<under_home>/ingesta`, else under the temp dir.
fn xdg_dir(var: &str, under_home: &str) -> PathBuf {
    let base = std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(under_home)))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ingesta")
}

/// Load, check and link every deployment's module.
pub fn prepare(config: &Config, engine: &WasmEngine) -> Result<Vec<DeploymentSpec>> {
    let linker = consumer_linker(engine.engine())?;
    let mut specs = Vec::new();
    for d in &config.deployments {
        let module = LoadedModule::from_file(
            engine.engine(),
            &d.module,
            &engine.config().compile_cache_dir,
        )
        .with_context(|| format!("deployment {:?}", d.name))?;
        if module.world != World::Consumer {
            bail!(
                "deployment {:?}: module {} implements the {} world, not consumer",
                d.name,
                d.module.display(),
                module.world
            );
        }
        let pre = linker.instantiate_pre(&module.component).map_err(|e| {
            anyhow::anyhow!(
                "deployment {:?}: module {} cannot be linked: {e:#}",
                d.name,
                d.module.display()
            )
        })?;
        let mut grants = DeploymentGrants::new(&d.name, &d.limits, module.digest.clone());
        grants.outputs = d.outputs.iter().cloned().collect();
        grants.config = d
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let grants = Arc::new(grants);
        let template = ConsumerTemplate::new(pre, grants)
            .with_context(|| format!("deployment {:?}: module {}", d.name, d.module.display()))?;
        tracing::info!(deployment = %d.name, module = %d.module.display(), digest = %module.digest,
            size = module.size, "module ready");
        specs.push(DeploymentSpec {
            config: d.clone(),
            template,
        });
    }
    Ok(specs)
}

/// Build the shared engine for a config.
pub fn engine_for(config: &Config) -> Result<WasmEngine> {
    let cache = config
        .runtime
        .compile_cache_dir
        .clone()
        .unwrap_or_else(default_compile_cache);
    let mut engine =
        WasmEngineConfig::new(Duration::from_millis(config.runtime.epoch_tick_ms), cache);
    engine.max_wasm_stack = (config.runtime.wasm_stack_kib as usize) << 10;
    engine.fuel = config.deployments.iter().any(|d| d.limits.fuel.is_some());
    WasmEngine::new(engine)
}

/// A started runner: the shared engine and producer plus its deployments.
pub struct Runner {
    /// Kept alive for the deployments' instances; drives the epoch.
    _engine: WasmEngine,
    producer: Arc<OutputProducer>,
    deployments: Vec<Deployment>,
}

impl Runner {
    /// Load every module, then start every deployment of `config`.
    pub fn start(config: &Config) -> Result<Runner> {
        if config.deployments.is_empty() && config.control.is_none() {
            bail!("the config has no [[deployment]] and no [control] API; nothing to run");
        }
        let engine = engine_for(config)?;
        let specs = prepare(config, &engine)?;
        let producer = Arc::new(
            OutputProducer::new(&kafka::producer_config(&config.kafka))
                .context("invalid Kafka producer settings")?,
        );
        let drain = Duration::from_millis(config.runtime.drain_timeout_ms);
        let mut deployments = Vec::new();
        for spec in specs {
            deployments.push(Deployment::start(
                spec,
                &config.kafka,
                producer.clone(),
                drain,
            )?);
        }
        Ok(Runner {
            _engine: engine,
            producer,
            deployments,
        })
    }

    /// The shared wasmtime engine.
    pub fn engine(&self) -> &WasmEngine {
        &self._engine
    }

    /// The running deployments.
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    /// Resolves once every deployment has stopped or failed.
    pub async fn all_finished(&self) {
        for d in &self.deployments {
            d.finished().await;
        }
    }

    /// Drain and stop every deployment, flush the producer. Fails if any
    /// deployment failed, naming each and why.
    pub async fn stop(self) -> Result<()> {
        let mut failures = Vec::new();
        for d in self.deployments {
            let name = d.name().to_owned();
            if let DeploymentState::Failed(reason) = d.stop().await {
                failures.push(format!("deployment {name:?} failed: {reason}"));
            }
        }
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(10)))
            .await?
            .context("output producer did not flush")?;
        if !failures.is_empty() {
            bail!("{}", failures.join("\n"));
        }
        Ok(())
    }
}

/// Run every deployment of `config` until `shutdown` resolves (then drain and
/// commit) or until every deployment has stopped. Fails if any deployment
/// failed, naming each and why.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let runner = Runner::start(&config)?;
    let api = match &config.control {
        Some(control) => Some(start_api(control, &runner).await?),
        None => None,
    };
    // With an API the runner serves until told to stop; without one it is
    // done when its deployments are.
    let finished = async {
        if api.is_some() {
            std::future::pending::<()>().await
        } else {
            runner.all_finished().await
        }
    };
    tokio::select! {
        _ = shutdown => tracing::info!("shutdown requested; draining in-flight batches"),
        _ = finished => {}
    }
    if let Some((stop_api, task)) = api {
        let _ = stop_api.send(());
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "control API ended with an error"),
            Err(e) => tracing::warn!(error = %e, "control API task failed"),
        }
    }
    runner.stop().await?;
    tracing::info!("all deployments stopped cleanly");
    Ok(())
}

/// The running API: a trigger for its graceful shutdown and its task.
type ApiHandle = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

/// Bind the control API and serve it in the background.
async fn start_api(control: &ControlConfig, runner: &Runner) -> Result<ApiHandle> {
    let dir = control.data_dir.clone().unwrap_or_else(default_data_dir);
    let state = Arc::new(ApiState {
        auth: Auth::new(control.operator_token_sha256.as_deref(), &control.tenants)
            .map_err(anyhow::Error::msg)?,
        modules: ModuleRegistry::open(&dir)?,
        engine: runner.engine().engine().clone(),
        compile_cache: runner.engine().config().compile_cache_dir.clone(),
        max_module_bytes: (control.max_module_mib as usize) << 20,
        ready: true.into(),
    });
    let listener = tokio::net::TcpListener::bind(control.listen)
        .await
        .with_context(|| format!("cannot listen on control.listen = {}", control.listen))?;
    tracing::info!(listen = %control.listen, modules = %dir.display(), "control API listening");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    Ok((stop, task))
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
