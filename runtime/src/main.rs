//! The `ingesta` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use ingesta_runtime::client::{self, ApiClient};
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
    /// Print the SHA-256 of a bearer token (read from stdin), for
    /// `token_sha256` in the config.
    HashToken,
    /// Manage modules through the control API.
    Module {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: ModuleCommand,
    },
}

/// Where the control API is and the token to present.
#[derive(clap::Args)]
struct ApiArgs {
    /// Control API address.
    #[arg(long, global = true, env = "INGESTA_API", default_value = client::DEFAULT_API)]
    api: String,
    /// Bearer token.
    #[arg(long, global = true, env = "INGESTA_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum ModuleCommand {
    /// Upload a component; prints its digest.
    Push {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// List the modules the token may see.
    Ls,
    /// Delete a module by digest.
    Rm {
        /// `sha256:<hex>`.
        digest: String,
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
    // Client commands are blocking HTTP calls; they need no async runtime.
    let command = match command {
        Command::HashToken => {
            let mut token = String::new();
            std::io::stdin()
                .read_line(&mut token)
                .context("cannot read the token from stdin")?;
            if token.trim().is_empty() {
                anyhow::bail!("no token on stdin; usage: echo -n TOKEN | ingesta hash-token");
            }
            println!("{}", ingesta_runtime::control::auth::hash_token(&token));
            return Ok(());
        }
        Command::Module { api, command } => return module_command(&api, command),
        other => other,
    };
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
        Command::HashToken | Command::Module { .. } => unreachable!("handled above"),
    }
}

fn module_command(api: &ApiArgs, command: ModuleCommand) -> Result<()> {
    let client = ApiClient::new(&api.api, api.token.clone())?;
    match command {
        ModuleCommand::Push { file } => {
            let m = client.push_module(&file)?;
            println!("{}  {}  {} bytes", m.digest, m.world, m.size);
        }
        ModuleCommand::Ls => {
            println!("{:<73}  {:<8}  {:>9}  owners", "digest", "world", "bytes");
            for m in client.list_modules()? {
                let owners: Vec<&str> = m.owners.iter().map(String::as_str).collect();
                println!(
                    "{:<73}  {:<8}  {:>9}  {}",
                    m.digest,
                    m.world,
                    m.size,
                    owners.join(",")
                );
            }
        }
        ModuleCommand::Rm { digest } => {
            client.delete_module(&digest)?;
            println!("deleted {digest}");
        }
    }
    Ok(())
}
