//! Test kit for ingesta: everything the integration tests (`tests/tests/`),
//! the benchmark (`ingesta-bench`) and the demo tools (`shop-sim`,
//! `shop-watch`, `create-topics`) share.
//!
//! | module | owns |
//! |---|---|
//! | [`kafka`] | talking to the real broker: unique names, topics, producing, reading back, committed offsets |
//! | [`control`] | a runner's control API: test tenants and tokens, an HTTP client, the CLI |
//! | [`fleet`] | several runners sharing one control plane: starting and stopping members, watching a group's progress |
//! | [`metrics`] | scraping a runner's `/metrics` and summing series |
//! | [`inproc`] | calling guests in-process with the runner's engine, for properties of one call |
//! | [`runner`] | finding the `ingesta` binary and guest modules, running `ingesta serve` as a child process |
//! | [`shop`] | the shop scenario: the event generator and what `activity-stats` must output for it |
//!
//! Everything here is synchronous and bounded in time: every wait takes a
//! timeout and fails with a message saying what it was waiting for.

pub mod control;
pub mod fleet;
pub mod inproc;
pub mod kafka;
pub mod metrics;
pub mod proc;
pub mod runner;
pub mod shop;

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Make SIGINT (Ctrl-C) and SIGTERM set a flag, read by [`stop_requested`],
/// instead of killing the process, so the tools can flush and summarize.
pub fn catch_stop_signals() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_stop_signals`].
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Finish a tool's `main`: print `error: ...` with the cause chain (no
/// backtrace) and exit 1 on failure, like `ingesta` itself.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
