//! Calls a component once per batch, request or tick, in-process and
//! without Kafka, and prints what it emitted: for poking at a guest built in
//! any language (`ingesta build`) while developing the SDKs.
//!
//! ```sh
//! printf 'k1\tv1\n\tv2\n' | guest-call handler.wasm --topic out --config output_topic=out
//! guest-call producer.wasm --topic out --request '{"x":1}' --tick
//! ```
//!
//! Consumer input lines are `key<TAB>value` (an empty key is null) or just
//! `value`; `--batch N` cuts them into batches of N. Every outcome and every
//! emitted record is printed as one JSON line.

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ingesta_abi::{HeaderEntry, OutgoingEntry, RecordEntry, Span, Timestamp};
use ingesta_runtime::deployment::LimitsConfig;
use ingesta_runtime::telemetry::DeploymentTelemetry;
use ingesta_runtime::wasm::bindings::producer::{Request, Tick};
use ingesta_runtime::wasm::bindings::{Batch, Outbox};
use ingesta_runtime::wasm::{
    CallOutcome, ConsumerInstance, ConsumerTemplate, DeploymentGrants, LoadedModule,
    ProducerInstance, ProducerTemplate, WasmEngine, WasmEngineConfig, World, consumer_linker,
};
use ingesta_tests::inproc::block_on;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The component (.wasm).
    file: PathBuf,
    /// A topic the guest may emit to (repeatable).
    #[arg(long)]
    topic: Vec<String>,
    /// A config entry KEY=VALUE (repeatable).
    #[arg(long)]
    config: Vec<String>,
    /// Records per batch for consumer input from stdin.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Producer: send one POST request with this body.
    #[arg(long)]
    request: Option<String>,
    /// Producer: call one tick.
    #[arg(long)]
    tick: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let cache = tempfile::tempdir()?;
    let engine = WasmEngine::new(WasmEngineConfig::new(
        Duration::from_millis(10),
        cache.path().to_owned(),
    ))?;
    let started = Instant::now();
    let module = LoadedModule::from_file(engine.engine(), &args.file, cache.path())
        .with_context(|| format!("loading {}", args.file.display()))?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut config = BTreeMap::new();
    for kv in &args.config {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--config {kv}: expected KEY=VALUE"))?;
        config.insert(k.to_owned(), v.to_owned());
    }
    let limits = LimitsConfig::default();
    let mut grants = DeploymentGrants::new(
        "guest-call",
        &limits,
        module.digest.to_string(),
        DeploymentTelemetry::new("guest-call"),
    );
    grants.outputs = args.topic.iter().cloned().collect::<HashSet<_>>();
    grants.config = config;
    let slots = engine
        .quotas()
        .slots("guest-call", None, &grants.telemetry.metrics);
    let grants = Arc::new(grants);
    let pre = consumer_linker(engine.engine())?.instantiate_pre(&module.component)?;
    println!(
        "{}",
        json!({"loaded": args.file, "world": format!("{:?}", module.world), "compile_ms": compile_ms})
    );
    match module.world {
        World::Consumer => {
            let template = ConsumerTemplate::new(pre, grants.clone(), slots.clone())?;
            let mut instance = ConsumerInstance::new(&template).await?;
            let lines: Vec<String> = std::io::stdin().lock().lines().collect::<Result<_, _>>()?;
            let mut offset = 0;
            for chunk in lines.chunks(args.batch.max(1)) {
                let batch = batch(chunk, offset);
                offset += chunk.len() as i64;
                let outcome = instance.handle(&batch).await;
                if print(outcome.map_ok(|()| Value::Null)) {
                    instance = ConsumerInstance::new(&template).await?;
                }
            }
        }
        World::Producer => {
            let template = ProducerTemplate::new(pre, grants.clone(), slots.clone())?;
            let mut instance = ProducerInstance::new(&template).await?;
            if let Some(body) = &args.request {
                let request = Request {
                    method: "POST".into(),
                    path: "/".into(),
                    query: String::new(),
                    headers: vec![("content-type".into(), b"application/json".to_vec())],
                    body: body.as_bytes().to_vec(),
                };
                let outcome = instance.request(&request).await;
                print(outcome.map_ok(|r| {
                    json!({"status": r.status, "headers": r.headers,
                           "body": String::from_utf8_lossy(&r.body)})
                }));
            }
            if args.tick {
                let tick = Tick {
                    seq: 0,
                    scheduled_ms: 0,
                    interval_ms: 1000,
                };
                print(instance.tick(tick).await.map_ok(|()| Value::Null));
            }
        }
    }
    for line in grants.telemetry.log.lines_after(0, 1000) {
        println!("{}", json!({"log": line}));
    }
    Ok(())
}

/// A batch of `lines` (`key\tvalue` or `value`) from `offset` on.
fn batch(lines: &[String], offset: i64) -> Batch {
    let mut data = Vec::new();
    let mut records = Vec::new();
    let mut headers = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (key, value) = match line.split_once('\t') {
            Some((k, v)) => ((!k.is_empty()).then_some(k), v),
            None => (None, line.as_str()),
        };
        let header_start = HeaderEntry::count(&headers) as u32;
        HeaderEntry {
            name: Span::append(&mut data, b"line"),
            value: Some(Span::append(&mut data, (i + 1).to_string().as_bytes())),
        }
        .encode(&mut headers);
        RecordEntry {
            offset: offset + i as i64,
            timestamp: Timestamp::CreateTime(1_732_460_000_000 + i as i64),
            key: key.map(|k| Span::append(&mut data, k.as_bytes())),
            value: Some(Span::append(&mut data, value.as_bytes())),
            header_start,
            header_count: 1,
        }
        .encode(&mut records);
    }
    Batch {
        topic: "in".into(),
        partition: 0,
        data,
        records,
        headers,
    }
}

trait MapOk<T> {
    fn map_ok(self, f: impl FnOnce(T) -> Value) -> CallOutcome<Value>;
}

impl<T> MapOk<T> for CallOutcome<T> {
    fn map_ok(self, f: impl FnOnce(T) -> Value) -> CallOutcome<Value> {
        match self {
            CallOutcome::Ok(t, o) => CallOutcome::Ok(f(t), o),
            CallOutcome::Failed(e) => CallOutcome::Failed(e),
            CallOutcome::Trapped { kind, message } => CallOutcome::Trapped { kind, message },
        }
    }
}

/// Prints the outcome and its records; true if the instance trapped.
fn print(outcome: CallOutcome<Value>) -> bool {
    match outcome {
        CallOutcome::Ok(value, outboxes) => {
            println!("{}", json!({"ok": value}));
            for o in &outboxes {
                if let Err(e) = print_outbox(o) {
                    println!("{}", json!({"bad_outbox": e.to_string()}));
                }
            }
            false
        }
        CallOutcome::Failed(e) => {
            println!(
                "{}",
                json!({"failed": format!("{:?}", e.class), "message": e.message,
                       "record_index": e.record_index})
            );
            false
        }
        CallOutcome::Trapped { kind, message } => {
            println!("{}", json!({"trapped": kind.as_str(), "message": message}));
            true
        }
    }
}

fn print_outbox(o: &Outbox) -> Result<()> {
    let text = |s: Option<Span>| -> Value {
        match s.and_then(|s| s.get(&o.data)) {
            Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            None => Value::Null,
        }
    };
    for i in 0..OutgoingEntry::count(&o.records) {
        let Some(r) = OutgoingEntry::read(&o.records, i) else {
            bail!("entry {i} unreadable")
        };
        let mut headers = Vec::new();
        for h in r.header_start..r.header_start + r.header_count {
            let Some(h) = HeaderEntry::read(&o.headers, h as usize) else {
                bail!("header {h} unreadable")
            };
            headers.push(json!([text(Some(h.name)), text(h.value)]));
        }
        println!(
            "{}",
            json!({"topic": o.topics.get(r.topic as usize), "key": text(r.key),
                   "value": text(r.value), "headers": headers})
        );
    }
    Ok(())
}
