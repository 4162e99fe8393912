//! `sdk-bench`: what the language of a guest costs, for `activity-stats`
//! built with the Rust, Go and Python SDKs (results in docs/benchmarks.md):
//! component size, compile time (once per module digest; the runner caches
//! it on disk), instantiation time (every new partition lane and every
//! trap), and the guest's own throughput on in-process batches of 500 shop
//! events, with no Kafka in the way (`ingesta-bench --cases
//! activity-stats,activity-stats-go,activity-stats-python` measures the
//! same guests end to end on the broker).
//!
//! ```text
//! cargo run --release -p ingesta-tests --bin sdk-bench -- --records 20000
//! ```

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ingesta_abi::{RecordEntry, Span, Timestamp};
use ingesta_runtime::deployment::LimitsConfig;
use ingesta_runtime::telemetry::DeploymentTelemetry;
use ingesta_runtime::wasm::bindings::Batch;
use ingesta_runtime::wasm::{
    CallOutcome, ConsumerInstance, ConsumerTemplate, DeploymentGrants, LoadedModule, WasmEngine,
    WasmEngineConfig, consumer_linker,
};
use ingesta_tests::inproc::block_on;
use ingesta_tests::runner::{built_wasm, guest_wasm};
use ingesta_tests::shop::Generator;

#[derive(Parser)]
#[command(about = "Measure component size, compile, instantiation and call cost per SDK")]
struct Args {
    /// Records pushed through each guest in-process.
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// Instantiations timed per guest (the median is reported).
    #[arg(long, default_value_t = 50)]
    instances: usize,
    /// Languages, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "rust,go,python")]
    langs: Vec<String>,
}

const BATCH: usize = 500;

struct Row {
    lang: String,
    size: u64,
    compile: Duration,
    instantiate: Duration,
    first_call: Duration,
    rate: f64,
}

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

fn module(lang: &str) -> Result<PathBuf> {
    match lang {
        "rust" => guest_wasm("activity-stats"),
        "go" | "python" => built_wasm(lang, "activity-stats"),
        other => bail!("unknown language {other:?}; rust, go or python"),
    }
}

/// Batches of shop events (the same for every language).
fn batches(records: usize) -> Vec<Batch> {
    let mut generator = Generator::new(5).users(999);
    let mut out = Vec::new();
    let mut offset = 0i64;
    while (offset as usize) < records {
        let n = BATCH.min(records - offset as usize);
        let (mut data, mut entries) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let e = generator.event();
            RecordEntry {
                offset,
                timestamp: Timestamp::CreateTime(e.ts),
                key: Some(Span::append(&mut data, e.key().as_bytes())),
                value: Some(Span::append(&mut data, e.to_json().as_bytes())),
                header_start: 0,
                header_count: 0,
            }
            .encode(&mut entries);
            offset += 1;
        }
        out.push(Batch {
            topic: "user-activity".into(),
            partition: 0,
            data,
            records: entries,
            headers: Vec::new(),
        });
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run() -> Result<()> {
    let args = Args::parse();
    let batches = batches(args.records);
    let mut rows = Vec::new();
    for lang in &args.langs {
        let path = module(lang)?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        // A fresh cache per language: the compile is measured, not loaded.
        let cache = tempfile::tempdir()?;
        let engine = WasmEngine::new(WasmEngineConfig::new(
            Duration::from_millis(10),
            cache.path().to_owned(),
        ))?;
        let t = Instant::now();
        let loaded = LoadedModule::from_bytes(engine.engine(), lang, &bytes, cache.path())?;
        let compile = t.elapsed();
        let pre = consumer_linker(engine.engine())?.instantiate_pre(&loaded.component)?;
        let limits = LimitsConfig::default();
        let mut grants = DeploymentGrants::new(
            lang,
            &limits,
            loaded.digest.to_string(),
            DeploymentTelemetry::new(lang),
        );
        grants.outputs =
            HashSet::from(["user-activity-stats".into(), "user-activity-alerts".into()]);
        grants.config = BTreeMap::new();
        let slots = engine.quotas().slots(lang, None, &grants.telemetry.metrics);
        let template = ConsumerTemplate::new(pre, Arc::new(grants), slots)?;
        let (instantiate, first_call, rate) = block_on(async {
            let mut times = Vec::with_capacity(args.instances);
            for _ in 0..args.instances.max(1) {
                let t = Instant::now();
                let instance = ConsumerInstance::new(&template).await?;
                times.push(t.elapsed());
                drop(instance);
            }
            let mut instance = ConsumerInstance::new(&template).await?;
            let t = Instant::now();
            let mut first = None;
            for batch in &batches {
                match instance.handle(batch).await {
                    CallOutcome::Ok(..) => {}
                    CallOutcome::Failed(e) => bail!("{lang}: the guest failed: {}", e.message),
                    CallOutcome::Trapped { message, .. } => bail!("{lang}: trapped: {message}"),
                }
                first.get_or_insert(t.elapsed());
            }
            let secs = t.elapsed().as_secs_f64();
            Ok((
                median(times),
                first.unwrap_or_default(),
                args.records as f64 / secs,
            ))
        })?;
        eprintln!("{lang}: {:.0} records/s in-process", rate);
        rows.push(Row {
            lang: lang.clone(),
            size: bytes.len() as u64,
            compile,
            instantiate,
            first_call,
            rate,
        });
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut t = String::new();
    let _ = writeln!(
        t,
        "sdk-bench: activity-stats per SDK, {} records in batches of {BATCH}, {cores} cores, \
         median of {} instantiations\n",
        args.records, args.instances
    );
    let _ = writeln!(
        t,
        "| SDK | component | compile (once per digest) | instantiate | first batch | records/s in-process |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        let _ = writeln!(
            t,
            "| {} | {:.2} MB | {:.2} s | {:.2} ms | {:.2} ms | {:.0} |",
            r.lang,
            r.size as f64 / 1e6,
            r.compile.as_secs_f64(),
            r.instantiate.as_secs_f64() * 1e3,
            r.first_call.as_secs_f64() * 1e3,
            r.rate
        );
    }
    println!("{t}");
    Ok(())
}
