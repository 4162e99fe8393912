//! The `ingesta` command line: what each command and flag is (clap), and
//! which module runs it.
//!
//! | module | commands |
//! |---|---|
//! | [`server`] | `serve`, `check` |
//! | [`project`] | `build`, `new`, `hash-token` |
//! | [`modules`] | `module push\|ls\|rm` |
//! | [`deployments`] | `deploy`, `update`, `ls`, `status`, `pause`, `resume`, `rollback`, `rm`, `logs`, `top` |
//! | [`dead_letters`] | `dlq ls\|show\|redrive` |
//! | [`topics`] | `topic create\|ls\|describe\|alter\|rm` |
//! | [`print`] | how statuses and log lines are printed |

mod dead_letters;
mod deployments;
mod modules;
mod print;
mod project;
mod server;
mod topics;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::build::Language;
use crate::client::{self, ApiClient};
use crate::telemetry::{self, LogFormat};

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
    /// Build the handler project in DIR (Rust, Go or Python, detected from
    /// its manifest) into a component ready to deploy.
    Build {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the component (default: DIR/<project>.wasm).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// The project's language, if detection is not enough.
        #[arg(long, value_enum)]
        lang: Option<Language>,
    },
    /// Create a handler project NAME in the current directory.
    New {
        /// The project's language.
        #[arg(long, value_enum)]
        lang: Language,
        /// The project's name (lower case, digits and `-`).
        name: String,
        /// Create it in this directory instead of the current one.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
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
    /// Manage Kafka topics through the control API, within the tenant's
    /// create_topics grants and maxima.
    Topic {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Create a deployment (from flags, a spec file, or both; flags win).
    Deploy {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        spec: DeployArgs,
    },
    /// Change a deployment: a new module, config, outputs, limits or
    /// failure policy swaps in at the next batch; new inputs, group or
    /// batching restart it; `--replay` moves its group and consumes again
    /// from there. Only the fields named change.
    Update {
        #[command(flatten)]
        api: ApiArgs,
        /// The deployment.
        name: String,
        /// New module: a digest, or a `.wasm` file to upload first.
        #[arg(long)]
        module: Option<String>,
        /// Replace the output topics (repeat the flag).
        #[arg(long = "output")]
        outputs: Vec<String>,
        /// Replace the config map with these KEY=VALUE pairs (repeat).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Replace the input topics (repeat; restarts the deployment).
        #[arg(long = "input")]
        inputs: Vec<String>,
        /// Move to another consumer group (restarts the deployment).
        #[arg(long)]
        group: Option<String>,
        /// Replay from `earliest`, `latest` or a timestamp (ms since epoch).
        #[arg(long)]
        replay: Option<String>,
        #[command(flatten)]
        fields: SpecFlags,
    },
    /// List deployments with their state and total lag.
    Ls {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// One deployment's state, counters and per-partition lag.
    Status {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
    },
    /// Stop consuming; offsets and settings are kept.
    Pause {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
    },
    /// Consume again (also restarts a failed deployment).
    Resume {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
    },
    /// Go back to the previous revision (again: forward).
    Rollback {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
    },
    /// Delete a deployment (its group's offsets stay in Kafka).
    Rm {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
    },
    /// A deployment's dead letters: the records it set aside, and why.
    Dlq {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Print a deployment's guest log: its log calls and stdout/stderr
    /// (as kept after the rate limit, on the runner that answers).
    Logs {
        #[command(flatten)]
        api: ApiArgs,
        name: String,
        /// Keep printing new lines as they come (Ctrl-C stops).
        #[arg(long, short)]
        follow: bool,
        /// How many of the latest lines to print first (at most 1000).
        #[arg(long, default_value_t = 100)]
        tail: usize,
    },
    /// A live view of deployments: rates, errors, dead letters and lag,
    /// refreshed in place (Ctrl-C quits).
    Top {
        #[command(flatten)]
        api: ApiArgs,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Print this many frames, then exit.
        #[arg(long)]
        frames: Option<u32>,
    },
}

/// `ingesta deploy`: what to run.
#[derive(clap::Args)]
pub(crate) struct DeployArgs {
    /// A JSON or TOML file with the `POST /v1/deployments` fields.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// Deployment name.
    #[arg(long)]
    name: Option<String>,
    /// Module digest, or a `.wasm` file to upload first.
    #[arg(long)]
    module: Option<String>,
    /// Input topic (repeat the flag for several).
    #[arg(long = "input")]
    inputs: Vec<String>,
    /// Consumer group (required: never derived).
    #[arg(long)]
    group: Option<String>,
    /// Output topic the module may emit to (repeat).
    #[arg(long = "output")]
    outputs: Vec<String>,
    /// `earliest`, `latest` or a timestamp (ms since epoch).
    #[arg(long)]
    start: Option<String>,
    /// Config value KEY=VALUE for the module (repeat).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
    #[command(flatten)]
    fields: SpecFlags,
}

/// Spec fields inside the `failure`, `limits`, `batch`, `schedule` and
/// `ingest` sections, for `deploy` and `update` alike. `update` changes
/// only the fields named and keeps the rest of each section.
#[derive(clap::Args)]
pub(crate) struct SpecFlags {
    /// Dead-letter topic for records that cannot be processed
    /// (`failure.dead_letter_topic`).
    #[arg(long, value_name = "TOPIC")]
    dead_letter: Option<String>,
    /// Attempts before a record is dead-lettered (`failure.max_attempts`).
    #[arg(long, value_name = "N")]
    max_attempts: Option<u32>,
    /// Wall-clock deadline of one call (`limits.deadline_ms`).
    #[arg(long, value_name = "MS")]
    deadline_ms: Option<u64>,
    /// Memory cap of one instance, all its memories together
    /// (`limits.memory_mib`).
    #[arg(long, value_name = "MIB")]
    memory_mib: Option<u64>,
    /// Records per batch at most (`batch.max_records`).
    #[arg(long, value_name = "N")]
    batch_max_records: Option<u64>,
    /// How long a batch waits to fill (`batch.max_wait_ms`).
    #[arg(long, value_name = "MS")]
    batch_max_wait_ms: Option<u64>,
    /// Producer modules: call the module every this many milliseconds
    /// (`schedule.interval_ms`).
    #[arg(long, value_name = "MS")]
    schedule_ms: Option<u64>,
    /// Producer modules: SHA-256 of a key that may call the ingest
    /// endpoint besides the tenant's token (`ingest.key_sha256`;
    /// `ingesta hash-token`).
    #[arg(long, value_name = "HEX")]
    ingest_key_sha256: Option<String>,
    /// Any other spec field by its path, e.g. `limits.fuel=1000000`,
    /// `failure.backoff_max_ms=60000`, `batch.max_bytes=4194304` or
    /// `config.region=eu` (repeat). VALUE is read as JSON when it parses
    /// as JSON, else as a string.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
}

/// Where the control API is and the token to present.
#[derive(clap::Args)]
pub(crate) struct ApiArgs {
    /// Control API address.
    #[arg(long, global = true, env = "INGESTA_API", default_value = client::DEFAULT_API)]
    api: String,
    /// Bearer token.
    #[arg(long, global = true, env = "INGESTA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Act on this tenant's deployments (operator token only).
    #[arg(long, global = true, env = "INGESTA_TENANT")]
    tenant: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters: where each came from, its error class, attempts
    /// and message.
    Ls {
        /// The deployment.
        name: String,
        /// Start at this partition of the dead-letter topic.
        #[arg(long, default_value_t = 0)]
        partition: i32,
        /// Start at this offset in it (default: its first).
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// At most this many (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Print one dead letter in full, as JSON: the record as it was
    /// (key, value, headers), its source and its error.
    Show {
        /// The deployment.
        name: String,
        /// Its partition in the dead-letter topic.
        #[arg(long)]
        partition: i32,
        /// Its offset there.
        #[arg(long)]
        offset: i64,
    },
    /// Hand dead letters to the deployment again (after fixing its module
    /// with `ingesta update`): only it sees them, each once, in its source
    /// partition's order. Say what to take: --partition/--from/--to,
    /// --class, or --all.
    Redrive {
        /// The deployment.
        name: String,
        /// Only this partition of the dead-letter topic.
        #[arg(long)]
        partition: Option<i32>,
        /// Only offsets from this one on.
        #[arg(long)]
        from: Option<i64>,
        /// Only offsets up to and including this one.
        #[arg(long)]
        to: Option<i64>,
        /// Only this error class (permanent, retryable, trap:deadline, ...).
        #[arg(long)]
        class: Option<String>,
        /// Every dead letter of the deployment.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic's name.
        name: String,
        /// Its partitions.
        #[arg(long)]
        partitions: i32,
        /// Replicas of each partition (default: the broker's).
        #[arg(long)]
        replication_factor: Option<i32>,
        /// Keep records this many hours (sets retention.ms; the
        /// tutorial's log.retention.hours).
        #[arg(long)]
        retention_hours: Option<u64>,
        /// A setting KEY=VALUE (retention.ms, retention.bytes,
        /// segment.bytes, cleanup.policy, min.insync.replicas,
        /// max.message.bytes; repeat).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Succeed without changes when it exists already.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List the topics the token may read, write or create.
    Ls,
    /// Print a topic's partitions, replication and settings as JSON.
    Describe {
        /// The topic.
        name: String,
    },
    /// Change only what is named: more partitions, settings set or reset.
    Alter {
        /// The topic.
        name: String,
        /// Partitions in all (only more).
        #[arg(long)]
        partitions: Option<i32>,
        /// Keep records this many hours (sets retention.ms).
        #[arg(long)]
        retention_hours: Option<u64>,
        /// A setting KEY=VALUE to set (repeat).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// A setting to return to the broker's default (repeat).
        #[arg(long = "reset", value_name = "KEY")]
        resets: Vec<String>,
    },
    /// Delete a topic no deployment uses.
    Rm {
        /// The topic.
        name: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum ModuleCommand {
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

/// Parse the command line, run the command, and say how it went.
pub fn main() -> ExitCode {
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
    match command {
        Command::Serve { config } => server::serve(&config),
        Command::Check { config } => server::check(&config),
        Command::Build { dir, out, lang } => project::build(dir, out, lang),
        Command::New { lang, name, dir } => project::new(lang, &name, &dir),
        Command::HashToken => project::hash_token(),
        Command::Module { api, command } => modules::run(&api, command),
        Command::Dlq { api, command } => dead_letters::run(&api, command),
        Command::Topic { api, command } => topics::run(&api, command),
        Command::Deploy { api, spec } => deployments::deploy(&api, spec),
        Command::Update {
            api,
            name,
            module,
            outputs,
            config,
            inputs,
            group,
            replay,
            fields,
        } => deployments::update(
            &api,
            &name,
            deployments::Edits {
                module,
                outputs,
                config,
                inputs,
                group,
                fields,
            },
            replay,
        ),
        Command::Ls { api } => deployments::ls(&api),
        Command::Status { api, name } => deployments::status(&api, &name),
        Command::Pause { api, name } => deployments::action(&api, &name, "pause"),
        Command::Resume { api, name } => deployments::action(&api, &name, "resume"),
        Command::Rollback { api, name } => deployments::action(&api, &name, "rollback"),
        Command::Rm { api, name } => deployments::rm(&api, &name),
        Command::Logs {
            api,
            name,
            follow,
            tail,
        } => deployments::logs(&api, &name, follow, tail),
        Command::Top {
            api,
            interval,
            frames,
        } => deployments::top(&api, interval, frames),
    }
}

/// The API client for `api`'s address and token.
fn api_client(api: &ApiArgs) -> Result<ApiClient> {
    ApiClient::new(&api.api, api.token.clone())
}
