//! The `ingesta` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use ingesta_runtime::build::{self, BuildOptions, Language};
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
    /// Create a deployment (from flags, a spec file, or both; flags win).
    Deploy {
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        spec: DeployArgs,
    },
    /// Change a deployment: new module, config or outputs swap in at the
    /// next batch; `--replay` moves its group and consumes again from there.
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
        /// Replay from `earliest`, `latest` or a timestamp (ms since epoch).
        #[arg(long)]
        replay: Option<String>,
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
struct DeployArgs {
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
    /// Dead-letter topic for records that cannot be processed.
    #[arg(long)]
    dead_letter: Option<String>,
    /// `earliest`, `latest` or a timestamp (ms since epoch).
    #[arg(long)]
    start: Option<String>,
    /// Config value KEY=VALUE for the module (repeat).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Create it paused.
    #[arg(long)]
    paused: bool,
    /// Producer modules: call the module every this many milliseconds.
    #[arg(long, value_name = "MS")]
    schedule_ms: Option<u64>,
    /// Producer modules: SHA-256 of a key that may call the ingest
    /// endpoint besides the tenant's token (`ingesta hash-token`).
    #[arg(long, value_name = "HEX")]
    ingest_key_sha256: Option<String>,
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
    /// Act on this tenant's deployments (operator token only).
    #[arg(long, global = true, env = "INGESTA_TENANT")]
    tenant: Option<String>,
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
        Command::Build { dir, out, lang } => {
            let built = build::build(&BuildOptions {
                dir: dir.clone(),
                out,
                lang,
                cache: build::default_cache(),
            })
            .with_context(|| format!("cannot build {}", dir.display()))?;
            println!(
                "built {} ({} {}, {} bytes) in {:.1} s",
                built.path.display(),
                built.lang,
                built.world,
                built.size,
                built.seconds
            );
            return Ok(());
        }
        Command::New { lang, name, dir } => {
            let created = build::scaffold::new_project(lang, &name, &dir, &build::default_cache())
                .with_context(|| format!("cannot create {lang} project {name}"))?;
            println!("created {} ({lang}):", created.dir.display());
            for f in &created.files {
                println!("  {}", f.strip_prefix(&created.dir).unwrap_or(f).display());
            }
            println!(
                "next: cd {} && read README.md; `ingesta build` makes the component",
                created.dir.display()
            );
            return Ok(());
        }
        Command::Serve { .. } | Command::Check { .. } => command,
        client_command => return deployment_command(client_command),
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
        _ => unreachable!("client commands are handled above"),
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

fn client(api: &ApiArgs) -> Result<ApiClient> {
    ApiClient::new(&api.api, api.token.clone())
}

/// A module flag: a digest as is, or a file uploaded first.
fn module_ref(client: &ApiClient, module: &str) -> Result<String> {
    let path = std::path::Path::new(module);
    if module.starts_with("sha256:") || !path.exists() {
        return Ok(module.to_owned());
    }
    let m = client.push_module(path)?;
    eprintln!("uploaded {} as {}", path.display(), m.digest);
    Ok(m.digest)
}

fn start_value(s: &str) -> Result<Value> {
    Ok(match s {
        "earliest" | "latest" => Value::from(s),
        ms => json!({ "timestamp": ms.parse::<i64>().with_context(|| {
            format!("start {ms:?}: expected earliest, latest or a timestamp in ms since the epoch")
        })? }),
    })
}

fn config_map(pairs: &[String]) -> Result<Value> {
    let mut map = serde_json::Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("config {p:?}: expected KEY=VALUE"))?;
        map.insert(k.to_owned(), Value::from(v));
    }
    Ok(Value::Object(map))
}

fn deployment_command(command: Command) -> Result<()> {
    match command {
        Command::Deploy { api, spec } => {
            let client = client(&api)?;
            let mut body = match &spec.file {
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("cannot read {}", f.display()))?;
                    if f.extension().is_some_and(|e| e == "toml") {
                        toml::from_str::<Value>(&text)
                            .with_context(|| format!("invalid TOML in {}", f.display()))?
                    } else {
                        serde_json::from_str::<Value>(&text)
                            .with_context(|| format!("invalid JSON in {}", f.display()))?
                    }
                }
                None => json!({}),
            };
            let obj = body
                .as_object_mut()
                .context("the spec file must hold an object")?;
            if let Some(n) = spec.name {
                obj.insert("name".into(), n.into());
            }
            if let Some(m) = &spec.module {
                obj.insert("module".into(), module_ref(&client, m)?.into());
            } else if let Some(m) = obj.get("module").and_then(Value::as_str).map(str::to_owned) {
                obj.insert("module".into(), module_ref(&client, &m)?.into());
            }
            if !spec.inputs.is_empty() {
                obj.insert("inputs".into(), json!(spec.inputs));
            }
            if let Some(g) = spec.group {
                obj.insert("group".into(), g.into());
            }
            if !spec.outputs.is_empty() {
                obj.insert("outputs".into(), json!(spec.outputs));
            }
            if let Some(t) = spec.dead_letter {
                obj.insert("failure".into(), json!({ "dead_letter_topic": t }));
            }
            if let Some(s) = &spec.start {
                obj.insert("start".into(), start_value(s)?);
            }
            if !spec.config.is_empty() {
                obj.insert("config".into(), config_map(&spec.config)?);
            }
            if spec.paused {
                obj.insert("paused".into(), true.into());
            }
            if let Some(ms) = spec.schedule_ms {
                obj.insert("schedule".into(), json!({ "interval_ms": ms }));
            }
            if let Some(h) = spec.ingest_key_sha256 {
                let ingest = obj.entry("ingest").or_insert_with(|| json!({}));
                ingest
                    .as_object_mut()
                    .context("`ingest` in the spec file must be a table")?
                    .insert("key_sha256".into(), h.into());
            }
            let status = client.create_deployment(&body, api.tenant.as_deref())?;
            print_status(&status);
        }
        Command::Update {
            api,
            name,
            module,
            outputs,
            config,
            replay,
        } => {
            let client = client(&api)?;
            let mut body = serde_json::Map::new();
            if let Some(m) = module {
                body.insert("module".into(), module_ref(&client, &m)?.into());
            }
            if !outputs.is_empty() {
                body.insert("outputs".into(), json!(outputs));
            }
            if !config.is_empty() {
                body.insert("config".into(), config_map(&config)?);
            }
            if let Some(r) = replay {
                body.insert("start".into(), start_value(&r)?);
            }
            if body.is_empty() {
                anyhow::bail!("nothing to change: give --module, --output, --config or --replay");
            }
            let status =
                client.update_deployment(&name, &Value::Object(body), api.tenant.as_deref())?;
            print_status(&status);
        }
        Command::Ls { api } => {
            let list = client(&api)?.list_deployments(false)?;
            println!(
                "{:<28}  {:<12}  {:<8}  {:>4}  {:<20}  {:>10}",
                "name", "tenant", "state", "rev", "module", "records_in"
            );
            for d in list {
                println!(
                    "{:<28}  {:<12}  {:<8}  {:>4}  {:<20}  {:>10}",
                    text(&d["name"]),
                    text(&d["tenant"]),
                    text(&d["state"]),
                    text(&d["revision"]),
                    short_digest(&text(&d["module"])),
                    text(&d["counters"]["records_in"]),
                );
            }
        }
        Command::Status { api, name } => {
            let status = client(&api)?.deployment(&name, api.tenant.as_deref())?;
            print_status(&status);
        }
        Command::Pause { api, name } => action(&api, &name, "pause")?,
        Command::Resume { api, name } => action(&api, &name, "resume")?,
        Command::Rollback { api, name } => action(&api, &name, "rollback")?,
        Command::Rm { api, name } => {
            client(&api)?.delete_deployment(&name, api.tenant.as_deref())?;
            println!("deleted deployment {name}");
        }
        Command::Logs {
            api,
            name,
            follow,
            tail,
        } => {
            let mut stdout = std::io::stdout();
            client(&api)?.logs(&name, api.tenant.as_deref(), tail, follow, |line| {
                use std::io::Write;
                writeln!(stdout, "{}", log_line(&line))?;
                stdout.flush()?;
                Ok(())
            })?;
        }
        Command::Top {
            api,
            interval,
            frames,
        } => {
            if !(interval.is_finite() && interval > 0.0) {
                anyhow::bail!("--interval must be a positive number of seconds");
            }
            client::top::run(
                &client(&api)?,
                std::time::Duration::from_secs_f64(interval),
                frames,
            )?;
        }
        _ => unreachable!("server commands are handled by run()"),
    }
    Ok(())
}

/// `pause`, `resume` or `rollback`, then the new status.
fn action(api: &ApiArgs, name: &str, action: &str) -> Result<()> {
    let status = client(api)?.deployment_action(name, action, api.tenant.as_deref())?;
    print_status(&status);
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `HH:MM:SS.mmm` (UTC) of a time in ms since the Unix epoch.
fn clock(ms: u64) -> String {
    let ms = ms % 86_400_000;
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// `HH:MM:SS.mmm LEVEL [stream] message` (UTC).
fn log_line(l: &Value) -> String {
    let level = l["level"].as_str().unwrap_or("?").to_uppercase();
    let truncated = if l["truncated"].as_bool() == Some(true) {
        " [truncated]"
    } else {
        ""
    };
    format!(
        "{} {level:<5} [{}] {}{truncated}",
        clock(l["time_ms"].as_u64().unwrap_or(0)),
        l["stream"].as_str().unwrap_or("?"),
        l["message"].as_str().unwrap_or_default()
    )
}

fn short_digest(d: &str) -> String {
    d.get(..19).unwrap_or(d).to_owned()
}

/// The status as a short report and a per-partition lag table.
fn print_status(s: &Value) {
    println!("deployment  {}", text(&s["name"]));
    println!("tenant      {}", text(&s["tenant"]));
    let reason = match &s["reason"] {
        Value::Null => String::new(),
        r => format!(" ({})", text(r)),
    };
    println!("state       {}{reason}", text(&s["state"]));
    println!("revision    {}", text(&s["revision"]));
    println!("module      {}", text(&s["module"]));
    if let Some(prev) = s["previous_modules"].as_array().and_then(|p| p.last()) {
        println!("rollback to {}", text(prev));
    }
    let c = &s["counters"];
    println!(
        "counters    in={} out={} batches={} errors={} retries={} traps={} dead_lettered={} log_dropped={}",
        text(&c["records_in"]),
        text(&c["records_out"]),
        text(&c["batches"]),
        text(&c["errors"]),
        text(&c["retries"]),
        text(&c["traps"]),
        text(&c["dead_lettered"]),
        text(&c["guest_log_dropped"])
    );
    for st in s["notes"]["stalled"].as_array().into_iter().flatten() {
        println!(
            "stalled     topic {} partition {}: records waiting, handled to offset {}, end {}, no progress since {}",
            text(&st["topic"]),
            text(&st["partition"]),
            text(&st["handled_to"]),
            text(&st["high_watermark"]),
            clock(st["since_ms"].as_u64().unwrap_or(0))
        );
    }
    for d in s["notes"]["degraded"].as_array().into_iter().flatten() {
        println!(
            "degraded    topic {} partition {} since {}: {}",
            text(&d["topic"]),
            text(&d["partition"]),
            clock(d["since_ms"].as_u64().unwrap_or(0)),
            text(&d["reason"])
        );
    }
    for g in s["notes"]["skipped"].as_array().into_iter().flatten() {
        let (from, to) = (
            g["from"].as_i64().unwrap_or(0),
            g["to"].as_i64().unwrap_or(0),
        );
        println!(
            "skipped     topic {} partition {} offsets {from}..{to} ({} records) at {}: {}",
            text(&g["topic"]),
            text(&g["partition"]),
            to - from,
            clock(g["at_ms"].as_u64().unwrap_or(0)),
            text(&g["reason"])
        );
    }
    if let Some(parts) = s["partitions"].as_array()
        && !parts.is_empty()
    {
        println!();
        println!(
            "{:<32}  {:>9}  {:>12}  {:>12}  {:>10}",
            "topic", "partition", "committed", "high", "lag"
        );
        let mut total = 0;
        for p in parts {
            total += p["lag"].as_i64().unwrap_or(0);
            println!(
                "{:<32}  {:>9}  {:>12}  {:>12}  {:>10}",
                text(&p["topic"]),
                text(&p["partition"]),
                text(&p["committed"]),
                text(&p["high_watermark"]),
                text(&p["lag"])
            );
        }
        println!(
            "{:<32}  {:>9}  {:>12}  {:>12}  {:>10}",
            "total", "", "", "", total
        );
    }
}
