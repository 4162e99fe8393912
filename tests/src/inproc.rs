//! Calling guests in-process, without Kafka: the runner's own engine,
//! linker and instances, for properties of one call (deadlines, memory,
//! host-call limits, what a guest can reach).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use ingesta_abi::{OutgoingEntry, RecordEntry, Span, Timestamp};
use ingesta_runtime::deployment::LimitsConfig;
use ingesta_runtime::telemetry::DeploymentTelemetry;
use ingesta_runtime::wasm::bindings::{Batch, Outbox};
use ingesta_runtime::wasm::{
    ConsumerTemplate, DeploymentGrants, LoadedModule, WasmEngine, consumer_linker,
};

use crate::runner;

/// The topic the hostile fixture forwards to in these tests.
pub const OUTPUT_TOPIC: &str = "out";

/// Runs `f` to completion on a current-thread runtime, as the runner's
/// lanes would run a call.
pub fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// A batch of keyless records with these values, from offset 0.
pub fn batch<'a>(values: impl IntoIterator<Item = &'a str>) -> Batch {
    let mut data = Vec::new();
    let mut records = Vec::new();
    for (offset, value) in values.into_iter().enumerate() {
        RecordEntry {
            offset: offset as i64,
            timestamp: Timestamp::NotAvailable,
            key: None,
            value: Some(Span::append(&mut data, value.as_bytes())),
            header_start: 0,
            header_count: 0,
        }
        .encode(&mut records);
    }
    Batch {
        topic: "in".into(),
        partition: 0,
        data,
        records,
        headers: Vec::new(),
    }
}

/// The consumer component at `path` linked into `engine` as deployment
/// `name` with these limits, granted `outputs` and given `config`.
pub fn consumer(
    engine: &WasmEngine,
    cache: &Path,
    path: &Path,
    name: &str,
    limits: &LimitsConfig,
    outputs: &[&str],
    config: &[(&str, &str)],
) -> Result<ConsumerTemplate> {
    let module = LoadedModule::from_file(engine.engine(), path, cache)?;
    let pre = consumer_linker(engine.engine())?.instantiate_pre(&module.component)?;
    let mut grants = DeploymentGrants::new(
        name,
        limits,
        module.digest.to_string(),
        DeploymentTelemetry::new(name),
    );
    grants.outputs = outputs
        .iter()
        .map(|t| (*t).to_owned())
        .collect::<HashSet<_>>();
    grants.config = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<BTreeMap<_, _>>();
    let slots = engine.quotas().slots(name, None, &grants.telemetry.metrics);
    ConsumerTemplate::new(pre, Arc::new(grants), slots)
}

/// The hostile fixture linked into `engine` as deployment `name` with
/// these limits, granted [`OUTPUT_TOPIC`].
pub fn hostile(
    engine: &WasmEngine,
    cache: &Path,
    name: &str,
    limits: &LimitsConfig,
) -> Result<ConsumerTemplate> {
    consumer(
        engine,
        cache,
        &runner::fixture_wasm("hostile")?,
        name,
        limits,
        &[OUTPUT_TOPIC],
        &[("output_topic", OUTPUT_TOPIC)],
    )
}

/// The values of every record in `outboxes`, in order (`None` for null).
pub fn emitted_values(outboxes: &[Outbox]) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    for o in outboxes {
        for i in 0..OutgoingEntry::count(&o.records) {
            let r = OutgoingEntry::read(&o.records, i).expect("the host checked the outbox");
            out.push(r.value.and_then(|s| s.get(&o.data)).map(<[u8]>::to_vec));
        }
    }
    out
}
