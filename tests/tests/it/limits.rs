//! Sandbox bounds, checked in-process against the runner's own engine:
//! an infinite loop, and a call blocked in a WASI sleep, are stopped within
//! their deadline plus two epoch ticks, and
//! a loop under fuel metering runs out of fuel, and
//! a memory bomb never raises the process's resident memory by more than the
//! deployment's cap plus a stated margin. No Kafka is involved: these are
//! properties of one call.
//!
//! Both checks live in one test so nothing else runs in this process while
//! resident memory is measured.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use ingesta_runtime::deployment::LimitsConfig;
use ingesta_runtime::wasm::{
    CallOutcome, ConsumerInstance, ConsumerTemplate, TrapKind, WasmEngine, WasmEngineConfig,
};
use ingesta_tests::inproc::{self, batch};

const TICK: Duration = Duration::from_millis(50);
const DEADLINE: Duration = Duration::from_millis(200);
const MEMORY_CAP: usize = 64 << 20;
/// What the runner may add on top of the guest's capped linear memory while
/// a bomb goes off: the instance's tables, stacks and host-side buffers.
const RSS_MARGIN: usize = 16 << 20;

/// A `/proc/self/status` field in bytes.
fn status_bytes(field: &str) -> Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/self/status"))?;
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("bad line {line:?}"))?
        .parse()?;
    Ok(kib << 10)
}

/// The hostile fixture with this deadline and fuel budget.
fn hostile(
    engine: &WasmEngine,
    cache: &std::path::Path,
    deadline: Duration,
    fuel: Option<u64>,
) -> Result<ConsumerTemplate> {
    let limits = LimitsConfig {
        memory_mib: (MEMORY_CAP >> 20) as u64,
        deadline_ms: deadline.as_millis() as u64,
        fuel,
        max_output_records: 1000,
        max_output_bytes: 1 << 20,
        ..LimitsConfig::default()
    };
    inproc::hostile(engine, cache, "limits", &limits)
}

#[test]
fn loops_stop_at_the_deadline_and_bombs_stay_under_the_memory_cap() -> Result<()> {
    inproc::block_on(async {
        let cache = tempfile::tempdir()?;
        let engine = WasmEngine::new(WasmEngineConfig::new(TICK, cache.path().to_owned()))?;
        let template = hostile(&engine, cache.path(), DEADLINE, None)?;

        // Deadline: each infinite loop must end within deadline + 2 ticks.
        for attempt in 1..=3 {
            let mut instance = ConsumerInstance::new(&template).await?;
            let started = Instant::now();
            let outcome = instance.handle(&batch(["loop"])).await;
            let took = started.elapsed();
            match outcome {
                CallOutcome::Trapped {
                    kind: TrapKind::Deadline,
                    ..
                } => {}
                CallOutcome::Trapped { kind, message } => {
                    bail!("loop trapped as {kind:?}, not deadline: {message}")
                }
                _ => bail!("an infinite loop returned"),
            }
            println!("attempt {attempt}: loop stopped after {took:?}");
            ensure!(
                took <= DEADLINE + 2 * TICK,
                "loop ran {took:?}, more than the deadline {DEADLINE:?} plus two ticks of {TICK:?}"
            );
        }

        // A WASI sleep of an hour runs no wasm, so no epoch check stops
        // it: the deadline over the whole call must, just as promptly.
        let mut instance = ConsumerInstance::new(&template).await?;
        let started = Instant::now();
        let outcome = instance.handle(&batch(["sleep:3600000"])).await;
        let took = started.elapsed();
        match outcome {
            CallOutcome::Trapped {
                kind: TrapKind::Deadline,
                message,
            } => ensure!(
                message.contains(&format!("{} ms", DEADLINE.as_millis())),
                "the deadline trap should name the deadline: {message}"
            ),
            CallOutcome::Trapped { kind, message } => {
                bail!("a sleep trapped as {kind:?}, not deadline: {message}")
            }
            _ => bail!("an hour's sleep returned"),
        }
        println!("sleep: stopped after {took:?}");
        ensure!(
            took <= DEADLINE + 2 * TICK,
            "a sleeping call ran {took:?}, more than the deadline {DEADLINE:?} plus two ticks of {TICK:?}"
        );
        drop(instance);

        // Memory: reset the peak, set off a bomb, and compare the peak
        // with where we started.
        std::fs::write("/proc/self/clear_refs", "5")?;
        let before = status_bytes("VmRSS:")?;
        let mut instance = ConsumerInstance::new(&template).await?;
        match instance.handle(&batch(["bomb"])).await {
            CallOutcome::Trapped {
                kind: TrapKind::OutOfMemory,
                ..
            } => {}
            CallOutcome::Trapped { kind, message } => {
                bail!("bomb trapped as {kind:?}, not out-of-memory: {message}")
            }
            _ => bail!("a memory bomb returned"),
        }
        drop(instance);
        let peak = status_bytes("VmHWM:")?;
        let grew = peak.saturating_sub(before);
        println!(
            "bomb: resident memory grew by {} MiB at peak (cap {} MiB, margin {} MiB)",
            grew >> 20,
            MEMORY_CAP >> 20,
            RSS_MARGIN >> 20
        );
        ensure!(
            grew <= MEMORY_CAP + RSS_MARGIN,
            "resident memory grew by {grew} bytes, more than the {MEMORY_CAP}-byte cap plus {RSS_MARGIN}"
        );
        // The bomb really allocated (otherwise this proves nothing).
        ensure!(
            grew >= MEMORY_CAP / 2,
            "the bomb only grew memory by {grew} bytes"
        );
        drop(template);
        drop(engine);

        // Fuel: a metered deployment instantiates and handles good records,
        // and a loop runs out of fuel long before the deadline.
        let mut config = WasmEngineConfig::new(TICK, cache.path().to_owned());
        config.fuel = true;
        let engine = WasmEngine::new(config)?;
        let template = hostile(
            &engine,
            cache.path(),
            Duration::from_secs(60),
            Some(50_000_000),
        )?;
        let mut instance = ConsumerInstance::new(&template).await?;
        match instance.handle(&batch(["good"])).await {
            CallOutcome::Ok((), out) => ensure!(out.len() == 1, "expected one outbox"),
            _ => bail!("a good record failed under fuel metering"),
        }
        match instance.handle(&batch(["loop"])).await {
            CallOutcome::Trapped {
                kind: TrapKind::OutOfFuel,
                ..
            } => {}
            CallOutcome::Trapped { kind, message } => {
                bail!("loop trapped as {kind:?}, not out-of-fuel: {message}")
            }
            _ => bail!("an infinite loop returned"),
        }
        Ok(())
    })
}
