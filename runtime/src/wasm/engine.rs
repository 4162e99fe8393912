//! The runner's single wasmtime [`Engine`] and its epoch ticker.
//!
//! One engine serves every deployment: compiled code, the pooling allocator's
//! slots and the epoch counter are shared. The ticker thread advances the
//! epoch every `tick`; each store's deadline callback then either yields to
//! the async executor (fairness between tenants) or traps once the call's
//! wall-clock budget is spent.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::quota::InstanceQuotas;
use anyhow::{Context, Result};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Knobs for the shared engine; all sizes are per runner.
#[derive(Debug, Clone)]
pub struct WasmEngineConfig {
    /// How often the epoch advances.
    pub tick: Duration,
    /// Where compiled components are cached by digest.
    pub compile_cache_dir: PathBuf,
    /// Largest linear memory any instance may have; deployments set lower caps.
    pub max_memory_bytes: usize,
    /// Instances the pool can hold at once (one per active partition lane).
    pub max_instances: u32,
    /// Long calls (past their first epoch tick) running at once.
    pub long_calls: usize,
    /// Most live instances of each tenant that has a cap.
    pub tenant_max_instances: std::collections::HashMap<String, usize>,
    /// Wasm call stack per instance.
    pub max_wasm_stack: usize,
    /// Whether compiled code checks the epoch (deadlines and yielding).
    /// Only benchmarks measuring its cost turn it off.
    pub epoch_interruption: bool,
    /// Whether calls are fuel-metered (needed by any deployment with a fuel
    /// limit; it instruments all compiled code, so it is off unless asked).
    pub fuel: bool,
}

impl WasmEngineConfig {
    /// Defaults sized for a few hundred deployments on one machine.
    pub fn new(tick: Duration, compile_cache_dir: PathBuf) -> Self {
        Self {
            tick,
            compile_cache_dir,
            max_memory_bytes: 4 << 30,
            max_instances: 1000,
            tenant_max_instances: std::collections::HashMap::new(),
            long_calls: default_long_calls(),
            max_wasm_stack: 512 * 1024,
            epoch_interruption: true,
            fuel: false,
        }
    }
}

/// One fewer than the cores, at least one: a worker is always left for
/// short calls.
pub(super) fn default_long_calls() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_sub(1)
        .max(1)
}

/// The shared engine plus the thread that drives its epoch.
pub struct WasmEngine {
    engine: Engine,
    config: WasmEngineConfig,
    quotas: Arc<InstanceQuotas>,
    /// Tells the ticker to stop when the engine is dropped.
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl WasmEngine {
    /// Build the engine and start the epoch ticker.
    pub fn new(config: WasmEngineConfig) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let instances = config.max_instances;
        pool.total_component_instances(instances)
            // Components from componentize-py hold a dozen core instances.
            .max_core_instances_per_component(64)
            .total_core_instances(instances * 8)
            .max_memories_per_component(4)
            .total_memories(instances * 2)
            .max_tables_per_component(16)
            .total_tables(instances * 8)
            .total_stacks(instances)
            .max_memory_size(config.max_memory_bytes)
            // Keep a few warm slots; everything else is returned to the OS,
            // which is what keeps idle deployments cheap.
            .max_unused_warm_slots(64)
            .linear_memory_keep_resident(64 * 1024)
            .table_elements(100_000);

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(config.epoch_interruption)
            .max_wasm_stack(config.max_wasm_stack)
            // The fiber stack holds the wasm stack plus host frames.
            .async_stack_size(config.max_wasm_stack + (1 << 20))
            .consume_fuel(config.fuel)
            .parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm)
            .map_err(anyhow::Error::from)
            .context("failed to create the wasmtime engine")?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            let tick = config.tick;
            std::thread::Builder::new()
                .name("ingesta-epoch".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .context("failed to start the epoch ticker thread")?
        };
        let quotas = Arc::new(InstanceQuotas::new(
            config.max_instances as usize,
            config.tenant_max_instances.clone(),
            config.long_calls,
            config.tick,
        ));
        Ok(Self {
            engine,
            quotas,
            config,
            stop,
            ticker: Some(ticker),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The quotas of live instances (runner, tenants).
    pub fn quotas(&self) -> &Arc<InstanceQuotas> {
        &self.quotas
    }

    /// The engine's settings.
    pub fn config(&self) -> &WasmEngineConfig {
        &self.config
    }
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        // One last tick: a lane aborted just before this (see
        // `LaneHandle::close_and_wait`) is dropped at its next epoch yield,
        // which needs the epoch to move once more.
        self.engine.increment_epoch();
    }
}
