//! ingesta — a serverless-style WebAssembly stream runner for Apache Kafka.
//!
//! Tenants upload WebAssembly components that implement the WIT worlds in
//! `wit/`; the runner consumes Kafka partitions, hands each batch to a
//! sandboxed instance and publishes what it emits, committing input offsets
//! only after the outputs are acknowledged (at-least-once).
//!
//! # Layout
//! In dependency order (a module uses only modules above it; see
//! `docs/architecture.md`):
//!
//! | module | owns |
//! |---|---|
//! | [`deployment`] | the deployment model: one `Spec` with a typed kind, its validation, the swap/restart/replay decision, the state record (revisions, PATCH, rollback), run states and notes |
//! | [`auth`] | tenants, tokens, grants and maxima |
//! | [`config`] | the TOML config file: keys, defaults, validation |
//! | [`telemetry`] | log output, Prometheus metric families and their exposition, each deployment's bounded guest log |
//! | [`wasm`] | wasmtime: the shared engine and epoch ticker, loading and checking components, host imports, instances and trap classification |
//! | [`kafka`] | librdkafka client settings, building WIT batches from messages, the shared acks=all producer |
//! | [`api`] | the JSON types of the HTTP API, shared by server, CLI, `top` and the test kit |
//! | [`modules`] | the registry of uploaded modules |
//! | [`offsets`] | one cached, batched offsets-and-lag service; moving a group's offsets (replay, start) |
//! | [`pipeline`] | a running consumer deployment: poll thread, per-partition lanes, ordered offset storing, rebalances, stalls and gaps |
//! | [`producer`] | a running producer deployment: ingest requests and schedule ticks through an instance pool, publish, await acks, answer |
//! | [`supervisor`] | reconciling desired deployments into running ones; read-only views of what runs |
//! | [`fleet`] | what runners sharing a control plane tell each other: per-runner reports (state, partitions, schedules, counters) and mirrored guest logs |
//! | [`control`] | the control plane: HTTP translation, the service (rules, audit), state in Kafka and its applier, status, ingest |
//! | [`runner`] | wiring: engine, producer, supervisor, control plane; serve until a signal |
//! | [`cli`] | the `ingesta` command line |
//! | [`client`] | the blocking HTTP client the CLI uses to talk to the control API, and `ingesta top` |
//! | [`build`] | `ingesta build` and `ingesta new`: Rust, Go and Python projects into components; the embedded WIT, SDKs and templates |
//!
//! The data path of one record: `pipeline::poller` (poll, copy into the
//! partition's batch) → `pipeline::lane` (call the instance) →
//! `kafka::OutputProducer` (publish outputs) → ack → store offset → periodic
//! commit. A producer's: `control::ingest` (HTTP in) or
//! `producer::schedule` (a tick) → `producer` (call an instance) →
//! `kafka::OutputProducer` → ack → the HTTP answer.

pub mod api;
pub mod auth;
pub mod build;
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod deployment;
pub mod fleet;
pub mod kafka;
pub mod modules;
pub mod offsets;
pub mod pipeline;
pub mod producer;
pub mod runner;
pub mod supervisor;
pub mod telemetry;
pub mod wasm;
