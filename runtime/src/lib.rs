//! ingesta — a serverless-style WebAssembly stream runner for Apache Kafka.
//!
//! Tenants upload WebAssembly components that implement the WIT worlds in
//! `wit/`; the runner consumes Kafka partitions, hands each batch to a
//! sandboxed instance and publishes what it emits, committing input offsets
//! only after the outputs are acknowledged (at-least-once).
//!
//! # Layout
//! | module | owns |
//! |---|---|
//! | [`config`] | the TOML config file: keys, defaults, validation |
//! | [`wasm`] | wasmtime: the shared engine and epoch ticker, loading and checking components, host imports, instances and trap classification |
//! | [`kafka`] | librdkafka client settings, building WIT batches from messages, the shared acks=all producer |
//! | [`pipeline`] | a running deployment: poll thread, per-partition lanes, ordered offset storing, rebalance and shutdown draining |
//! | [`producer`] | a running producer deployment: ingest requests and schedule ticks through an instance pool, publish, await acks, answer |
//! | [`supervisor`] | the deployments of this runner: start, hot swap, restart, replay, pause, remove; their status |
//! | [`runner`] | wiring: engine, producer, supervisor, control plane; serve until a signal |
//! | [`build`] | `ingesta build` and `ingesta new`: Rust, Go and Python projects into components; the embedded WIT, SDKs and templates |
//! | [`client`] | the blocking HTTP client the CLI uses to talk to the control API, and `ingesta top` |
//! | [`control`] | the HTTP control plane: tenants and tokens, the module registry, deployment records, state in Kafka, the `/v1` API |
//! | [`telemetry`] | log output, Prometheus metric families, each deployment's bounded guest log |
//!
//! The data path of one record: `pipeline::poller` (poll, copy into the
//! partition's batch) → `pipeline::lane` (call the instance) →
//! `kafka::OutputProducer` (publish outputs) → ack → store offset → periodic
//! commit. A producer's: `control::ingest` (HTTP in) or
//! `producer::schedule` (a tick) → `producer` (call an instance) →
//! `kafka::OutputProducer` → ack → the HTTP answer.

pub mod build;
pub mod client;
pub mod config;
pub mod control;
pub mod kafka;
pub mod pipeline;
pub mod producer;
pub mod runner;
pub mod supervisor;
pub mod telemetry;
pub mod wasm;
