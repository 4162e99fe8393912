//! A started deployment of either kind, and what it runs: its module
//! linked for its definition ([`Program`]).

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use wasmtime::component::Linker;

use crate::config::KafkaConfig;
use crate::deployment::{Definition, Kind, Linked, Notes, RunState};
use crate::kafka::Producers;
use crate::pipeline::{Deployment, Timeouts};
use crate::producer::ProducerDeployment;
use crate::telemetry::{DeploymentMetrics, DeploymentTelemetry};
use crate::wasm::{
    ConsumerTemplate, DeploymentGrants, HostState, InstanceQuotas, LoadedModule, ProducerTemplate,
    World,
};

/// A definition with its module linked, of either kind.
pub enum Program {
    /// A module of the consumer world, linked for a consumer deployment.
    Consumer(Linked<ConsumerTemplate>),
    /// A module of the producer world, linked for a producer deployment.
    Producer(Linked<ProducerTemplate>),
}

impl Program {
    /// Link `module` for `def`; its instances report to `telemetry` and
    /// count against `quotas`. The module's world must be the definition's
    /// kind.
    pub fn link(
        linker: &Linker<HostState>,
        quotas: &InstanceQuotas,
        def: &Definition,
        module: LoadedModule,
        telemetry: Arc<DeploymentTelemetry>,
    ) -> Result<Program> {
        let (name, source) = (&def.name, def.spec.module.to_string());
        if let Some(e) = world_mismatch(&def.spec.kind, module.world) {
            bail!("deployment {name:?}: module {source} {e}");
        }
        let pre = linker
            .instantiate_pre(&module.component)
            .map_err(|e| anyhow!("deployment {name:?}: module {source} cannot be linked: {e:#}"))?;
        let spec = &def.spec;
        let mut grants =
            DeploymentGrants::new(name, &spec.limits, module.digest.to_string(), telemetry);
        grants.outputs = spec.outputs.iter().cloned().collect();
        grants.config = spec
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let slots = quotas.slots(name, spec.limits.max_instances, &grants.telemetry.metrics);
        let grants = Arc::new(grants);
        let in_context =
            |e: anyhow::Error| e.context(format!("deployment {name:?}: module {source}"));
        let program = match module.world {
            World::Consumer => Program::Consumer(Linked {
                def: def.clone(),
                template: ConsumerTemplate::new(pre, grants, slots).map_err(in_context)?,
            }),
            World::Producer => Program::Producer(Linked {
                def: def.clone(),
                template: ProducerTemplate::new(pre, grants, slots).map_err(in_context)?,
            }),
        };
        tracing::info!(deployment = %name, module = %source, digest = %module.digest,
            world = %module.world, size = module.size, "module ready");
        Ok(program)
    }

    /// The definition it runs.
    pub fn def(&self) -> &Definition {
        match self {
            Program::Consumer(l) => &l.def,
            Program::Producer(l) => &l.def,
        }
    }
}

/// Why a module of `world` cannot run a deployment of `kind`; completes
/// "module X ...".
pub fn world_mismatch(kind: &Kind, world: World) -> Option<&'static str> {
    match (kind, world) {
        (Kind::Producer(_), World::Consumer) => Some(
            "is a consumer, which needs `inputs` and a `group` (`schedule` and `ingest` are for producers)",
        ),
        (Kind::Consumer(_), World::Producer) => Some(
            "is a producer (HTTP ingestion and ticks), which takes no `inputs` or `group`: remove them",
        ),
        _ => None,
    }
}

/// A started deployment of either kind.
#[derive(Clone)]
pub enum Running {
    /// A consumer: its poll thread and lanes run until it is stopped.
    Consumer(Arc<Deployment>),
    /// A producer: it takes ingest requests and, with a schedule, ticks.
    Producer(Arc<ProducerDeployment>),
}

impl Running {
    /// Start `program`.
    pub fn start(
        program: Program,
        kafka: &KafkaConfig,
        producers: &Producers,
        timeouts: Timeouts,
        coordination: Option<&crate::producer::owner::Coordination>,
    ) -> Result<Self> {
        Ok(match program {
            Program::Consumer(p) => Running::Consumer(Arc::new(Deployment::start(
                p,
                kafka,
                producers.outputs.clone(),
                timeouts,
            )?)),
            Program::Producer(p) => Running::Producer(ProducerDeployment::start(
                p,
                producers.ingest.clone(),
                timeouts.drain,
                coordination.map(|c| (kafka.clone(), c.clone())),
            )),
        })
    }

    /// The deployment's name.
    pub fn name(&self) -> &str {
        match self {
            Running::Consumer(d) => d.name(),
            Running::Producer(d) => d.name(),
        }
    }

    /// The current state.
    pub fn state(&self) -> RunState {
        match self {
            Running::Consumer(d) => d.state(),
            Running::Producer(d) => d.state(),
        }
    }

    /// The definition it runs.
    pub fn def(&self) -> Definition {
        match self {
            Running::Consumer(d) => d.def(),
            Running::Producer(d) => d.def(),
        }
    }

    /// What is noted about its input partitions (a producer has none).
    pub fn notes(&self) -> Notes {
        match self {
            Running::Consumer(d) => d.notes(),
            Running::Producer(_) => Notes::default(),
        }
    }

    /// The input partitions it has assigned now (a producer has none).
    pub fn assigned(&self) -> Vec<(String, i32)> {
        match self {
            Running::Consumer(d) => d.assigned(),
            Running::Producer(_) => Vec::new(),
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
    pub async fn stop(&self) -> RunState {
        match self {
            Running::Consumer(d) => d.stop().await,
            Running::Producer(d) => d.stop().await,
        }
    }

    /// Resolves when it has stopped or failed.
    pub async fn finished(&self) -> RunState {
        match self {
            Running::Consumer(d) => d.finished().await,
            Running::Producer(d) => d.finished().await,
        }
    }

    /// Hot swap to `program` (of the same kind: a change of kind is a
    /// restart, as [`crate::deployment::change`] decides).
    pub fn swap(&self, program: Program) -> Result<()> {
        match (self, program) {
            (Running::Consumer(d), Program::Consumer(p)) => d.swap(p),
            (Running::Producer(d), Program::Producer(p)) => {
                d.swap(p);
                Ok(())
            }
            _ => bail!("the module's world changed; the deployment must restart"),
        }
    }
}
