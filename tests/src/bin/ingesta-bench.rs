//! `ingesta-bench`: throughput of ingesta against native Rust baselines, as
//! ratios measured in one run on the same broker and the same data.
//!
//! For each record size a fresh 4-partition topic is filled with shop events
//! padded to exactly that size, then consumed by:
//!
//! | case | what |
//! |---|---|
//! | raw | a plain rust-rdkafka `BaseConsumer` loop touching every payload (the ceiling) |
//! | noop | ingesta with the `noop` guest (in-process, via the library) |
//! | activity-stats | ingesta with the shop statistics guest (outputs stats and alerts) |
//! | activity-stats-go, activity-stats-python | the same guest written with the Go or Python SDK (not run by default) |
//! | native-map | a native 1:1 map: consume, produce each record (acks=all, idempotent), until the last ack |
//! | identity | ingesta with the `identity` guest: the same 1:1 map through wasm |
//! | neighbour | `identity` again, on a runner where a hostile deployment spins into its deadline on every record |
//!
//! Rates count from the first record seen to the last one handled (for the
//! maps: acknowledged), so consumer-group joins and module compilation are
//! excluded. Ratios: noop/raw and activity-stats/raw against the design
//! targets ≥ 0.9, identity/native-map ≥ 0.7, and neighbour/identity (a
//! healthy tenant's throughput beside a hostile one, as a share of its solo
//! throughput) ≥ 0.5.
//!
//! ```text
//! cargo run --release -p ingesta-tests --bin ingesta-bench -- --records 200000 --out bench.md
//! ```

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ingesta_runtime::config::Config;
use ingesta_runtime::runner::Runner;
use ingesta_tests::kafka;
use ingesta_tests::runner::{
    Deployment, built_wasm, config_toml_with_consumer, fixture_wasm, guest_wasm,
};
use ingesta_tests::shop::{Generator, sized_json};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

/// The same allocator as the `ingesta` binary, for every case alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every measured phase must finish within this.
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Parser)]
#[command(about = "Measure ingesta's throughput against native rust-rdkafka baselines")]
struct Args {
    /// Records per size (default: 4,000,000 for 100 B, 1,000,000 for 1 KiB,
    /// 100 MB worth for other sizes).
    #[arg(long)]
    records: Option<usize>,
    /// Record sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    sizes: Vec<usize>,
    /// Cases to run, comma-separated (raw, noop, activity-stats,
    /// activity-stats-go, activity-stats-python, native-map, identity,
    /// neighbour).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "raw,noop,activity-stats,native-map,identity,neighbour"
    )]
    cases: Vec<String>,
    /// Runs per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Also write the result table (markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Extra librdkafka consumer property KEY=VALUE for every case (the
    /// baselines' consumers and ingesta's `[kafka.consumer]`); repeatable.
    #[arg(long = "consumer-prop", value_name = "KEY=VALUE")]
    consumer_props: Vec<String>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

/// `--consumer-prop` values, shared by every case.
static CONSUMER_PROPS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

fn consumer_props() -> &'static [(String, String)] {
    CONSUMER_PROPS.get().map_or(&[], Vec::as_slice)
}

const CASES: [&str; 8] = [
    "raw",
    "noop",
    "activity-stats",
    "activity-stats-go",
    "activity-stats-python",
    "native-map",
    "identity",
    "neighbour",
];

/// The hostile neighbour: every record is an infinite loop, stopped by a
/// deadline of this long, then dead-lettered after one attempt. There are
/// enough of them to keep all its partitions spinning for the whole case.
const HOSTILE_DEADLINE_MS: u64 = 100;
const HOSTILE_RECORDS: usize = 4_000;

/// One measured case.
struct Measured {
    case: &'static str,
    size: usize,
    records: usize,
    seconds: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-9)
    }
}

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    // RUST_LOG=info shows the runner's own log (joins, traps, drains).
    if std::env::var_os("RUST_LOG").is_some() {
        ingesta_runtime::telemetry::init(ingesta_runtime::telemetry::LogFormat::Text);
    }
    kafka::set_bootstrap(&args.bootstrap);
    for c in &args.cases {
        if !CASES.contains(&c.as_str()) {
            bail!("unknown case {c:?}; the cases are {}", CASES.join(", "));
        }
    }
    let want = |c: &str| args.cases.iter().any(|x| x == c);
    let repeat = args.repeat.max(1);
    let mut props = Vec::new();
    for p in &args.consumer_props {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--consumer-prop {p:?} is not KEY=VALUE"))?;
        props.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    CONSUMER_PROPS.set(props).ok();
    // Resolve modules up front so a missing build fails before any work.
    let noop = guest_wasm("noop")?;
    let stats = guest_wasm("activity-stats")?;
    // The Go and Python builds only when asked for: `make guests` makes them.
    let stats_in = |lang: &str| -> Result<Option<PathBuf>> {
        if want(&format!("activity-stats-{lang}")) {
            Ok(Some(built_wasm(lang, "activity-stats")?))
        } else {
            Ok(None)
        }
    };
    let stats_go = stats_in("go")?;
    let stats_python = stats_in("python")?;
    let identity = guest_wasm("identity")?;
    let hostile = fixture_wasm("hostile")?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let started = Instant::now();
    let mut results = Vec::new();
    for &size in &args.sizes {
        let n = args.records.unwrap_or(match size {
            100 => 4_000_000,
            1024 => 1_000_000,
            s => (100_000_000 / s.max(1)).max(1),
        });
        let input = kafka::unique(&format!("bench-{size}"));
        kafka::create_topic(&input, 4)?;
        eprintln!("[{size} B] producing {n} records to {input}...");
        let t = Instant::now();
        let mut generator = Generator::new(size as u64).users(999);
        let records = (0..n).map(|i| -> (String, Vec<u8>, Option<i32>) {
            let mut e = generator.event();
            // Small timestamps keep 100-byte events from needing to cut
            // their product names much.
            e.ts = (i % 100_000) as i64;
            let v = sized_json(&e, size).expect("events fit the record size");
            (e.key(), v, None)
        });
        kafka::produce(&input, records)?;
        eprintln!("[{size} B] produced in {:.1}s", t.elapsed().as_secs_f64());

        let mut topics = vec![input.clone()];
        let mut run = |case: &'static str, f: &mut dyn FnMut() -> Result<f64>| -> Result<()> {
            if !want(case) {
                return Ok(());
            }
            eprintln!("[{size} B] {case}...");
            // Runs are short and the machine is shared with the broker, so
            // each case runs `repeat` times and the median counts.
            let mut runs = Vec::with_capacity(repeat);
            for _ in 0..repeat {
                runs.push(f().with_context(|| format!("case {case}, {size} B"))?);
            }
            runs.sort_by(f64::total_cmp);
            let seconds = runs[runs.len() / 2];
            let m = Measured {
                case,
                size,
                records: n,
                seconds,
            };
            eprintln!(
                "[{size} B] {case}: {n} records in {seconds:.3}s = {:.0} records/s",
                m.rate()
            );
            results.push(m);
            Ok(())
        };
        run("raw", &mut || raw_consume(&input, n))?;
        run("noop", &mut || {
            ingesta_case(&rt, "noop", &noop, &input, &[], &[], n, &[])
        })?;
        let (stats_topic, alerts_topic) =
            (kafka::unique("bench-stats"), kafka::unique("bench-alerts"));
        if want("activity-stats") || stats_go.is_some() || stats_python.is_some() {
            kafka::create_topic(&stats_topic, 4)?;
            kafka::create_topic(&alerts_topic, 4)?;
            topics.extend([stats_topic.clone(), alerts_topic.clone()]);
        }
        for (case, module) in [
            ("activity-stats", Some(&stats)),
            ("activity-stats-go", stats_go.as_ref()),
            ("activity-stats-python", stats_python.as_ref()),
        ] {
            let Some(module) = module else { continue };
            run(case, &mut || {
                ingesta_case(
                    &rt,
                    case,
                    module,
                    &input,
                    &[&stats_topic, &alerts_topic],
                    &[
                        ("stats_topic", &stats_topic),
                        ("alerts_topic", &alerts_topic),
                    ],
                    n,
                    &[],
                )
            })?;
        }
        let native_out = kafka::unique("bench-native-out");
        if want("native-map") {
            kafka::create_topic(&native_out, 4)?;
            topics.push(native_out.clone());
        }
        run("native-map", &mut || native_map(&input, &native_out, n))?;
        let identity_out = kafka::unique("bench-identity-out");
        if want("identity") || want("neighbour") {
            kafka::create_topic(&identity_out, 4)?;
            topics.push(identity_out.clone());
        }
        let identity_case = |neighbours: &[Deployment]| {
            ingesta_case(
                &rt,
                "identity",
                &identity,
                &input,
                &[&identity_out],
                &[("output_topic", &identity_out)],
                n,
                neighbours,
            )
        };
        run("identity", &mut || identity_case(&[]))?;
        if want("neighbour") {
            let neighbour = hostile_neighbour(&hostile)?;
            topics.extend(neighbour.topics.iter().cloned());
            run("neighbour", &mut || {
                identity_case(std::slice::from_ref(&neighbour.deployment))
            })?;
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        kafka::delete_topics(&names);
    }
    drop(rt);

    let table = render(&results, &args.bootstrap, started.elapsed(), repeat);
    println!("{table}");
    if let Some(path) = &args.out {
        std::fs::write(path, &table).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The runner's own consumer settings for a deployment reading `topic`
/// (`ingesta_runtime::kafka::consumer_config`, so the baselines track any change
/// there), on a fresh group, plus `--consumer-prop`s.
fn consumer_config(topic: &str) -> Result<ClientConfig> {
    let d = Deployment::new(
        "baseline",
        std::path::Path::new("unused.wasm"),
        topic,
        &kafka::unique("bench-baseline"),
    );
    let config = parse_config(&[d])?;
    let def = &config.deployments[0];
    let group = def.spec.group().unwrap_or_default().to_owned();
    Ok(ingesta_runtime::kafka::consumer_config(
        &config.kafka,
        &def.name,
        &group,
        &def.kafka,
    ))
}

/// A runner config for `deployments` with the `--consumer-prop`s.
fn parse_config(deployments: &[Deployment]) -> Result<Config> {
    let props: Vec<(&str, &str)> = consumer_props()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let config = Config::parse(&config_toml_with_consumer(&props, deployments))
        .map_err(anyhow::Error::msg)?;
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

/// (a) The ceiling: poll until `n` records were seen, touching every payload.
fn raw_consume(topic: &str, n: usize) -> Result<f64> {
    let consumer: BaseConsumer = consumer_config(topic)?.create()?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let (mut seen, mut bytes) = (0usize, 0usize);
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while seen < n {
        if Instant::now() > deadline {
            bail!("raw consume saw only {seen} of {n} records");
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => eprintln!("consume error: {e}"),
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                bytes += m.payload().map_or(0, <[u8]>::len);
                seen += 1;
                if seen == n {
                    last = Instant::now();
                }
            }
        }
    }
    std::hint::black_box(bytes);
    Ok((last - first.unwrap_or(last)).as_secs_f64())
}

/// A hostile deployment and the topics made for it.
struct Neighbour {
    deployment: Deployment,
    topics: Vec<String>,
}

/// A deployment of the hostile fixture whose every record loops until its
/// deadline, with a dead-letter topic so it never stops. Each run of the
/// case starts it on a fresh group, from the beginning.
fn hostile_neighbour(module: &std::path::Path) -> Result<Neighbour> {
    let [input, output, dlq] = kafka::fresh_topics(
        ["bench-hostile-in", "bench-hostile-out", "bench-hostile-dlq"],
        4,
    )?;
    kafka::produce(
        &input,
        (0..HOSTILE_RECORDS).map(|i| (format!("h{i}"), "loop", None)),
    )?;
    let deployment = Deployment::new("hostile", module, &input, &kafka::unique("bench-grp"))
        .output(&output)
        .config("output_topic", &output)
        .set("limits", "deadline_ms", HOSTILE_DEADLINE_MS)
        .dead_letter(&dlq, 1);
    Ok(Neighbour {
        deployment,
        topics: vec![input, output, dlq],
    })
}

/// (b)–(d) ingesta in-process: start a runner for one deployment (plus any
/// `neighbours`, started alongside but not measured) and watch its
/// counters until every record was handled and its offset stored.
#[allow(clippy::too_many_arguments)]
fn ingesta_case(
    rt: &tokio::runtime::Runtime,
    name: &str,
    module: &std::path::Path,
    input: &str,
    outputs: &[&str],
    config: &[(&str, &str)],
    n: usize,
    neighbours: &[Deployment],
) -> Result<f64> {
    let group = kafka::unique("bench-grp");
    let mut d = Deployment::new(name, module, input, &group);
    for o in outputs {
        d = d.output(o);
    }
    for (k, v) in config {
        d = d.config(k, v);
    }
    let mut deployments = vec![d];
    for neighbour in neighbours {
        let mut neighbour = neighbour.clone();
        neighbour.group = kafka::unique("bench-grp");
        deployments.push(neighbour);
    }
    let config = parse_config(&deployments)?;
    let runner = {
        let _guard = rt.enter();
        Runner::start(&config)?
    };
    let measured = watch(&runner, n);
    // A neighbour that never trapped was no hostile neighbour at all.
    let calm: Vec<String> = runner.deployments()[1..]
        .iter()
        .filter(|d| d.metrics().instance_restarts.get() == 0)
        .map(|d| d.name().to_owned())
        .collect();
    let stopped = rt.block_on(runner.stop());
    let seconds = measured?;
    stopped?;
    if !calm.is_empty() {
        bail!("neighbour deployments {calm:?} never trapped while {name} ran");
    }
    let ends = kafka::high_watermarks(input)?;
    let committed = kafka::committed(&group, input)?;
    if !kafka::is_committed_to_end(&committed, &ends) {
        bail!("after stop, group {group} committed {committed:?} but the input ends at {ends:?}");
    }
    Ok(seconds)
}

fn watch(runner: &Runner, n: usize) -> Result<f64> {
    let d = &runner.deployments()[0];
    let c = d.metrics();
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut first: Option<Instant> = None;
    let mut done_at: Option<Instant> = None;
    // INGESTA_BENCH_TRACE=1 prints the counters every 100 ms (to spot stalls).
    let trace = std::env::var_os("INGESTA_BENCH_TRACE").is_some();
    let mut next_trace = Instant::now();
    loop {
        let records_in = c.records_in_total();
        let batches = c.batches.get();
        let stored = c.offsets_stored.get();
        let now = Instant::now();
        if records_in > 0 {
            first.get_or_insert(now);
        }
        if trace && now >= next_trace {
            let t = first.map_or(0.0, |f| (now - f).as_secs_f64());
            eprintln!("  t={t:.3}s records_in={records_in} batches={batches} stored={stored}");
            next_trace = now + Duration::from_millis(100);
        }
        // Every successful batch stores its offset exactly once, after its
        // outputs were acknowledged. A lane bumps `batches` just after
        // `records_in`, so a sample can fall between the two: only trust
        // "done" when the next sample agrees, and time it at the first.
        if records_in >= n as u64 && stored >= batches {
            match done_at {
                Some(t) => {
                    if trace {
                        eprintln!(
                            "  done: records_in={records_in} (of {n}) batches={batches} stored={stored}"
                        );
                    }
                    return Ok((t - first.unwrap_or(t)).as_secs_f64());
                }
                None => done_at = Some(now),
            }
        } else {
            done_at = None;
        }
        if let ingesta_runtime::deployment::RunState::Failed(reason) = d.state() {
            bail!("deployment failed: {reason}");
        }
        if now > deadline {
            bail!(
                "timed out: records_in={records_in} of {n}, batches={batches}, offsets_stored={stored}"
            );
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// (e) The native 1:1 map: consume, produce each record unchanged with the
/// runner's consumer and producer settings, until the last record is
/// acknowledged.
fn native_map(input: &str, output: &str, n: usize) -> Result<f64> {
    let consumer: BaseConsumer = consumer_config(input)?.create()?;
    consumer.subscribe(&[input])?;
    // The runner's own producer settings (acks=all, idempotent, linger).
    let producer: ThreadedProducer<kafka::Acks> =
        ingesta_runtime::kafka::producer_config(&parse_config(&[])?.kafka)
            .create_with_context(kafka::Acks::default())?;
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut seen = 0usize;
    let mut first: Option<Instant> = None;
    while seen < n {
        if Instant::now() > deadline {
            bail!("native map saw only {seen} of {n} records");
        }
        let Some(r) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match r {
            Ok(m) => m,
            Err(e) => {
                eprintln!("consume error: {e}");
                continue;
            }
        };
        first.get_or_insert_with(Instant::now);
        let mut record = BaseRecord::to(output);
        if let Some(k) = m.key() {
            record = record.key(k);
        }
        if let Some(v) = m.payload() {
            record = record.payload(v);
        }
        let queued = kafka::send_when_room(&producer, record, Duration::from_micros(200), || {
            Instant::now() > deadline
        })
        .context("produce failed")?;
        if !queued {
            bail!("producer queue stayed full");
        }
        seen += 1;
    }
    producer.flush(PHASE_TIMEOUT)?;
    let last = Instant::now();
    let acks = producer.context();
    let (ok, failed) = (
        acks.ok.load(Ordering::Relaxed),
        acks.failed.load(Ordering::Relaxed),
    );
    if ok != n as u64 || failed != 0 {
        bail!("native map: {ok} acked, {failed} failed of {n}");
    }
    Ok((last - first.unwrap_or(last)).as_secs_f64())
}

fn render(results: &[Measured], bootstrap: &str, total: Duration, repeat: usize) -> String {
    let mut t = String::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let props: Vec<String> = consumer_props()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        t,
        "ingesta-bench: broker {bootstrap} (same host), {cores} cores, 4 partitions, runner \
         defaults (batch 500 records / 5 ms), mimalloc, median of {repeat} runs per case, extra \
         consumer properties [{}], total run {:.0}s\n",
        props.join(", "),
        total.as_secs_f64()
    );
    let _ = writeln!(t, "| case | size | records | seconds | records/s | ratio |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---|");
    let find = |case: &str, size: usize| results.iter().find(|m| m.case == case && m.size == size);
    for m in results {
        let ratio = match m.case {
            "noop" | "activity-stats" => {
                find("raw", m.size).map(|raw| format!("{:.2} × raw", m.rate() / raw.rate()))
            }
            "activity-stats-go" | "activity-stats-python" => find("activity-stats", m.size)
                .map(|rust| format!("{:.2} × activity-stats (Rust)", m.rate() / rust.rate())),
            "identity" => find("native-map", m.size)
                .map(|native| format!("{:.2} × native-map", m.rate() / native.rate())),
            "neighbour" => find("identity", m.size)
                .map(|solo| format!("{:.2} × identity alone", m.rate() / solo.rate())),
            _ => None,
        }
        .unwrap_or_else(|| "—".to_owned());
        let size = if m.size % 1024 == 0 {
            format!("{} KiB", m.size / 1024)
        } else {
            format!("{} B", m.size)
        };
        let _ = writeln!(
            t,
            "| {} | {size} | {} | {:.3} | {:.0} | {ratio} |",
            m.case,
            m.records,
            m.seconds,
            m.rate()
        );
    }
    t
}
