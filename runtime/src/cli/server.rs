//! `ingesta serve` and `ingesta check`: the runner itself.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Config;

/// Run the deployments of a config file until SIGINT/SIGTERM.
pub(super) fn serve(config: &Path) -> Result<()> {
    let config = Config::load(config)?;
    runtime()?.block_on(crate::runner::serve(
        config,
        crate::runner::shutdown_signal(),
    ))
}

/// Check a config file and every module it names, consuming nothing.
pub(super) fn check(config: &Path) -> Result<()> {
    let config = Config::load(config)?;
    let engine = crate::runner::engine_for(&config)?;
    let programs = crate::runner::prepare(&config, &engine)?;
    println!("ok: {} deployment(s) ready", programs.len());
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ingesta-worker")
        .build()
        .context("cannot start the async runtime")
}
