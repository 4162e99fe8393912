//! Measures what one call costs per record: building the WIT batch on the
//! host, lowering it into the guest, and (for `identity`) lifting outputs.
//!
//! ```sh
//! make guests
//! cargo run --release -p ingesta --example dispatch_cost -- target/wasm32-wasip2/guest/noop.wasm
//! ```
//!
//! Environment: `JSON=1` sends shop events instead of opaque bytes (for
//! `activity_stats.wasm`); `NO_EPOCH=1` compiles without epoch interruption
//! and `FUEL=1` with fuel metering, to measure what those limits cost.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ingesta_abi::{OutgoingEntry, RecordEntry, Span, Timestamp};
use ingesta_runtime::deployment::LimitsConfig;
use ingesta_runtime::wasm::bindings::Batch;
use ingesta_runtime::wasm::{
    CallOutcome, ConsumerInstance, ConsumerTemplate, DeploymentGrants, LoadedModule, WasmEngine,
    WasmEngineConfig, consumer_linker,
};

const VALUE: usize = 100;
const RECORDS: usize = 1_000_000;

fn build_batch(batch_len: usize) -> Batch {
    let mut data = Vec::with_capacity(batch_len * (VALUE + 8));
    let mut records = Vec::with_capacity(batch_len * ingesta_abi::RECORD_ENTRY_SIZE);
    let value = if std::env::var_os("JSON").is_some() {
        let event = br#"{"user_id":12,"action":"view","product_id":7,"product_name":"Trekking T-shirt","price":19.9,"ts":1}"#;
        event.to_vec()
    } else {
        vec![b'x'; VALUE]
    };
    for i in 0..batch_len {
        RecordEntry {
            offset: i as i64,
            timestamp: Timestamp::CreateTime(1_732_460_000_000 + i as i64),
            key: Some(Span::append(&mut data, &(i as u64).to_le_bytes())),
            value: Some(Span::append(&mut data, &value)),
            header_start: 0,
            header_count: 0,
        }
        .encode(&mut records);
    }
    Batch {
        topic: "bench".into(),
        partition: 0,
        data,
        records,
        headers: Vec::new(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let Some(path) = std::env::args().nth(1) else {
        bail!("usage: dispatch_cost MODULE.wasm [BATCH_LEN]");
    };
    let batch_len: usize = match std::env::args().nth(2) {
        Some(n) => n.parse()?,
        None => 500,
    };
    let calls = RECORDS / batch_len;
    let cache = std::env::temp_dir().join("ingesta-dispatch-cost");
    let mut config = WasmEngineConfig::new(Duration::from_millis(10), cache.clone());
    config.epoch_interruption = std::env::var_os("NO_EPOCH").is_none();
    config.fuel = std::env::var_os("FUEL").is_some();
    let engine = WasmEngine::new(config)?;
    let module = LoadedModule::from_file(engine.engine(), path.as_ref(), &cache)?;
    let pre = consumer_linker(engine.engine())?.instantiate_pre(&module.component)?;
    let limits = LimitsConfig {
        max_output_records: u64::MAX,
        max_output_bytes: u64::MAX,
        ..LimitsConfig::default()
    };
    let mut grants = DeploymentGrants::new(
        "bench",
        &limits,
        module.digest.to_string(),
        ingesta_runtime::telemetry::DeploymentTelemetry::new("bench"),
    );
    grants.outputs = HashSet::from([
        "out".to_owned(),
        "user-activity-stats".to_owned(),
        "user-activity-alerts".to_owned(),
    ]);
    grants.config = BTreeMap::from([("output_topic".to_owned(), "out".to_owned())]);
    let slots = engine
        .quotas()
        .slots("bench", None, &grants.telemetry.metrics);
    let template = ConsumerTemplate::new(pre, Arc::new(grants), slots)?;
    let mut instance = ConsumerInstance::new(&template).await?;

    let started = Instant::now();
    let mut batches = Vec::with_capacity(calls);
    for _ in 0..calls {
        batches.push(build_batch(batch_len));
    }
    let build_ns = started.elapsed().as_nanos() as f64 / (calls * batch_len) as f64;

    let mut outputs = 0;
    let started = Instant::now();
    for batch in &batches {
        match instance.handle(batch).await {
            CallOutcome::Ok((), out) => {
                outputs += out
                    .iter()
                    .map(|o| OutgoingEntry::count(&o.records))
                    .sum::<usize>()
            }
            CallOutcome::Failed(e) => bail!("handler failed: {}", e.message),
            CallOutcome::Trapped { message, .. } => bail!("trapped: {message}"),
        }
    }
    let call_ns = started.elapsed().as_nanos() as f64 / (calls * batch_len) as f64;
    println!(
        "{path}: batch {batch_len} x {VALUE} B: host build {build_ns:.1} ns/record (incl. allocation), call {call_ns:.1} ns/record, outputs {outputs}"
    );
    Ok(())
}
