//! The `ingesta` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use ingesta_runtime::config::Config;
use ingesta_runtime::telemetry::{self, LogFormat};

/// mimalloc, overriding malloc for librdkafka too: the consume path makes
/// several small allocations per record inside librdkafka, and this is worth
/// ~60% throughput on it (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ingesta",
    version,
    about = "WebAssembly stream runner for Apache Kafka"
)]
struct Cli {
    /// Log line format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "INGESTA_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the deployments of a config file until SIGINT/SIGTERM.
    Serve {
        /// The runner's TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file and every module it names, without consuming.
    Check {
        /// The runner's TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ingesta-worker")
        .build()
        .context("cannot start the async runtime")?;
    match command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            runtime.block_on(ingesta_runtime::runner::serve(
                config,
                ingesta_runtime::runner::shutdown_signal(),
            ))
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            let engine = ingesta_runtime::runner::engine_for(&config)?;
            let specs = ingesta_runtime::runner::prepare(&config, &engine)?;
            println!("ok: {} deployment(s) ready", specs.len());
            Ok(())
        }
    }
}
