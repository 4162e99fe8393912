//! The end-to-end suite: every test that shares the one test broker, in one
//! binary (one link of the runtime instead of one per file; cargo runs the
//! cases concurrently with `--test-threads`).
//!
//! Tests that stop, freeze or reconfigure the broker live in binaries of
//! their own (`tests/broker_outage.rs`), which cargo runs after this one,
//! so they never disturb these cases. Each module's doc says what it
//! proves; `tests/README.md` lists them all.
//!
//! Needs the broker (`deploy/kafka/kafka.sh start`), the runner
//! (`make build`) and the guests (`make guests`).

#![allow(
    clippy::too_many_lines,
    reason = "end-to-end scenarios read top to bottom, step by step"
)]

mod ambient;
mod bad_input;
mod close;
mod conformance;
mod control_deployments;
mod control_modules;
mod crash;
mod dead_letters;
mod density;
mod fleet_chaos;
mod fleet_replay;
mod fleet_schedule;
mod fleet_views;
mod fleet_writes;
mod guest_log;
mod handler_error;
mod hostile;
mod http_limits;
mod limits;
mod monitoring;
mod monitoring_assets;
mod pipeline;
mod producer;
mod rebalance;
mod sandbox;
mod scaffold;
mod shutdown;
mod skips;
mod sleeping;
mod topics;
mod tutorial;
mod visible;
