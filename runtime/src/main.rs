//! The `ingesta` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use ingesta::config::Config;
use ingesta::telemetry::{self, LogFormat};

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
            runtime.block_on(ingesta::runner::serve(
                config,
                ingesta::runner::shutdown_signal(),
            ))
        }
        Command::Check { config } => {
            let config = Config::load(&config)?;
            let engine = ingesta::runner::engine_for(&config)?;
            let specs = ingesta::runner::prepare(&config, &engine)?;
            println!("ok: {} deployment(s) ready", specs.len());
            Ok(())
        }
    }
}
