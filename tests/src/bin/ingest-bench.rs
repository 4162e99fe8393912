//! `ingest-bench`: requests/s and latency of HTTP ingestion through
//! producer modules, on a runner process against the real broker (results
//! in docs/benchmarks.md).
//!
//! One runner (`ingesta serve` with `[control]`) hosts two producer
//! deployments of tenant A, each publishing to a fresh 4-partition topic:
//!
//! | module | what it does per request |
//! |---|---|
//! | shop-ingest | the validating webhook: parses the body, checks every field of every event, publishes each event compacted, keyed by user |
//! | beacon | the smallest producer: publishes the body unchanged as one record, keyed by the `x-key` header (the "no-op module") |
//!
//! For each client concurrency C (`--concurrency`) and each module,
//! `--requests` POSTs of one shop event each are sent by C threads, each
//! with its own reqwest blocking client (one keep-alive connection), after
//! `--warmup` unmeasured requests on the same connections. Then one batch
//! case per module: JSON arrays of `--batch-size` events, reported in
//! events/s; shop-ingest publishes one record per event, beacon the whole
//! array as one record. A request's latency runs from sending it to having
//! read the whole answer, and includes Kafka's acknowledgement: the runner
//! answers only once Kafka has every record of the request.
//!
//! Every answer must be 202 with `ingesta-published` counting the records
//! the request made, and after each case the topic must have grown by
//! exactly the records of the accepted requests (warm-up included); the
//! bench fails otherwise. Everything is loopback and every wait is bounded.
//!
//! ```text
//! cargo run --release -p ingesta-tests --bin ingest-bench -- --requests 20000 --concurrency 1,8,32
//! ```

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use ingesta_runtime::config::Config;
use ingesta_tests::control::{self, Api, TENANT_A, upload};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, RunnerProcess};
use ingesta_tests::shop::{Event, Generator};
use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Measure HTTP ingestion through producer modules: requests/s and latency")]
struct Args {
    /// Measured requests per single-event case.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Client concurrencies (threads, one connection each), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Unmeasured requests before each case, on the same connections (at
    /// most a fifth of the case's requests).
    #[arg(long, default_value_t = 500)]
    warmup: usize,
    /// Events per request in the batch case (1 to 1000, shop-ingest's
    /// default `max_events`).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Measured requests per batch case; 0 skips the batch case.
    #[arg(long, default_value_t = 1_000)]
    batch_requests: usize,
    /// Client concurrency of the batch case.
    #[arg(long, default_value_t = 8)]
    batch_concurrency: usize,
    /// Modules to run (shop-ingest, beacon), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "shop-ingest,beacon")]
    modules: Vec<String>,
    /// librdkafka property for the runner's ingest producer
    /// (`[kafka.ingest_producer]`), KEY=VALUE (repeat), e.g. `linger.ms=5`
    /// to see what batching costs in latency.
    #[arg(long = "producer-prop", value_name = "KEY=VALUE")]
    producer_props: Vec<String>,
    /// Also write the result (markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

const MODULES: [&str; 2] = ["shop-ingest", "beacon"];

/// The deployments' `ingest.max_concurrency`: above every client
/// concurrency, so no request is turned away with 429.
const MAX_CONCURRENCY: usize = 256;
/// One request, answer included (the runner's own Kafka bound is
/// `ingest.ack_timeout_ms`, 10 s by default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// One case, warm-up included.
const CASE_TIMEOUT: Duration = Duration::from_secs(600);
/// Runner start-up and shutdown.
const RUNNER_TIMEOUT: Duration = Duration::from_secs(60);

/// One prepared request body.
struct Body {
    bytes: Vec<u8>,
    /// Sent as `x-key`: the (first) event's user, so beacon's records
    /// spread over the partitions like shop-ingest's.
    key: String,
}

/// A producer deployment under test.
struct Target {
    module: &'static str,
    topic: String,
    url: String,
    /// Records the topic must hold: those of every accepted request.
    expected: i64,
}

impl Target {
    /// Records one request of `events` events makes.
    fn records_per_request(&self, events: usize) -> usize {
        match self.module {
            "beacon" => 1,
            _ => events,
        }
    }
}

/// One measured case.
struct Measured {
    module: &'static str,
    events_per_request: usize,
    clients: usize,
    requests: usize,
    seconds: f64,
    /// Sorted, in nanoseconds.
    latencies: Vec<u64>,
}

impl Measured {
    fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    /// Nearest-rank percentile, in ms.
    fn percentile_ms(&self, p: f64) -> f64 {
        let n = self.latencies.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.latencies[rank.clamp(1, n) - 1] as f64 / 1e6
    }
}

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    kafka::set_bootstrap(&args.bootstrap);
    for m in &args.modules {
        ensure!(
            MODULES.contains(&m.as_str()),
            "unknown module {m:?}; the modules are {}",
            MODULES.join(", ")
        );
    }
    ensure!(args.requests > 0, "--requests must be at least 1");
    ensure!(
        (1..=1000).contains(&args.batch_size),
        "--batch-size must be between 1 and 1000 (shop-ingest's max_events)"
    );
    let mut clients = args.concurrency.clone();
    clients.push(args.batch_concurrency);
    ensure!(
        clients.iter().all(|c| (1..=MAX_CONCURRENCY).contains(c)),
        "client concurrencies must be between 1 and {MAX_CONCURRENCY} (the deployments' ingest.max_concurrency)"
    );
    // Resolve everything up front so a missing build fails before any work.
    let bin = runner::ingesta_bin()?;
    let mut wasm = Vec::new();
    for m in MODULES
        .iter()
        .filter(|m| args.modules.iter().any(|x| x == *m))
    {
        wasm.push((*m, std::fs::read(runner::guest_wasm(m)?)?));
    }

    // Bodies: the same shop events for every module and concurrency.
    let single_warmup = args.warmup.min(args.requests / 5);
    let batch_warmup = args.warmup.min(args.batch_requests / 5);
    let mut generator = Generator::new(42).users(5_000);
    let singles: Vec<Body> = (0..args.requests + single_warmup)
        .map(|_| body(&[generator.event()]))
        .collect();
    let batches: Vec<Body> = (0..args.batch_requests + batch_warmup)
        .map(|_| body(&generator.take_events(args.batch_size)))
        .collect();

    let port = control::free_port()?;
    let mut config = control::config_toml(port, &control::state_prefix(), 8);
    if !args.producer_props.is_empty() {
        config.push_str("\n[kafka.ingest_producer]\n");
        for p in &args.producer_props {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("--producer-prop {p:?}: expected KEY=VALUE"))?;
            config.push_str(&format!(
                "{} = {}\n",
                runner::toml_str(k),
                runner::toml_str(v)
            ));
        }
    }
    let producer = ingesta_runtime::kafka::ingest_producer_config(
        &Config::parse(&config)
            .map_err(anyhow::Error::msg)
            .context("the runner's config")?
            .kafka,
    );
    let setting = |k: &str| producer.get(k).unwrap_or("librdkafka default").to_owned();
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    api.wait_ready(RUNNER_TIMEOUT)?;
    let mut targets = Vec::new();
    for (module, wasm) in wasm {
        let [topic] = kafka::fresh_topics(["a-ingest-bench"], 4)?;
        let digest = upload(&api, TENANT_A.token, wasm)?;
        let (status, answer) = api.json(
            Method::POST,
            "/v1/deployments",
            Some(TENANT_A.token),
            &json!({
                "name": module, "module": digest, "outputs": [topic],
                "config": { "topic": topic },
                "ingest": { "max_concurrency": MAX_CONCURRENCY },
            }),
        )?;
        ensure!(
            status == StatusCode::CREATED,
            "creating {module}: {status} {answer}"
        );
        targets.push(Target {
            module,
            url: format!("{}/v1/ingest/{module}", api.base()),
            topic,
            expected: 0,
        });
    }

    // Concurrency outermost, so both modules are measured close in time.
    let mut cases: Vec<(usize, usize)> = args.concurrency.iter().map(|&c| (c, 1)).collect();
    if args.batch_requests > 0 {
        cases.push((args.batch_concurrency, args.batch_size));
    }
    let mut results = Vec::new();
    for (clients, events) in cases {
        let (bodies, warmup, requests) = if events == 1 {
            (&singles, single_warmup, args.requests)
        } else {
            (&batches, batch_warmup, args.batch_requests)
        };
        for t in &mut targets {
            let records = t.records_per_request(events);
            eprintln!(
                "[{}] {requests} requests of {events} event(s), {clients} client(s)...",
                t.module
            );
            let (seconds, latencies) =
                drive(&t.url, bodies, warmup, requests, clients, records).map_err(|e| {
                    e.context(format!(
                        "case {}, {events} event(s) per request, {clients} client(s); runner log tail:\n{}",
                        t.module,
                        tail(&ingesta.log(), 20)
                    ))
                })?;
            t.expected += ((warmup + requests) * records) as i64;
            let total = kafka::total_records(&t.topic)?;
            ensure!(
                total == t.expected,
                "{}: after {} accepted requests of {records} record(s) the topic holds {total} records, not {}",
                t.module,
                warmup + requests,
                t.expected
            );
            let m = Measured {
                module: t.module,
                events_per_request: events,
                clients,
                requests,
                seconds,
                latencies,
            };
            eprintln!(
                "[{}] {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms",
                t.module,
                m.requests_per_second(),
                m.percentile_ms(50.0),
                m.percentile_ms(99.0)
            );
            results.push(m);
        }
    }

    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(RUNNER_TIMEOUT)?;
    ensure!(status.success(), "ingesta exited with {status}:\n{log}");

    let conditions = Conditions {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        linger_ms: setting("linger.ms"),
        acks: setting("acks"),
        idempotence: setting("enable.idempotence"),
        single_bytes: mean_len(&singles),
        batch_bytes: mean_len(&batches),
        bin,
    };
    let report = report(
        &args,
        &conditions,
        &results,
        &targets,
        (single_warmup, batch_warmup),
    );
    print!("{report}");
    if let Some(path) = &args.out {
        std::fs::write(path, &report)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// A body holding `events`: the object itself for one, else a JSON array.
fn body(events: &[Event]) -> Body {
    let json: Vec<String> = events.iter().map(Event::to_json).collect();
    let bytes = match json.as_slice() {
        [one] => one.clone().into_bytes(),
        many => format!("[{}]", many.join(",")).into_bytes(),
    };
    Body {
        bytes,
        key: events[0].user_id.to_string(),
    }
}

fn mean_len(bodies: &[Body]) -> f64 {
    bodies.iter().map(|b| b.bytes.len()).sum::<usize>() as f64 / bodies.len().max(1) as f64
}

/// What the client threads of one case share.
struct Case<'a> {
    url: &'a str,
    bodies: &'a [Body],
    /// Records every request must publish.
    records: usize,
    deadline: Instant,
    failed: AtomicBool,
    errors: Mutex<Vec<String>>,
}

impl Case<'_> {
    fn fail(&self, error: String) {
        self.failed.store(true, Ordering::Relaxed);
        self.errors.lock().expect("errors lock").push(error);
    }

    /// Sends request `i` of `counter` while `i < count`, body `offset + i`,
    /// pushing each latency to `out`. Stops at the first failure of any
    /// thread.
    fn phase(
        &self,
        client: &Client,
        counter: &AtomicUsize,
        count: usize,
        offset: usize,
        out: &mut Vec<u64>,
    ) {
        while !self.failed.load(Ordering::Relaxed) {
            let i = counter.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                return;
            }
            if Instant::now() > self.deadline {
                self.fail(format!("the case did not finish within {CASE_TIMEOUT:?}"));
                return;
            }
            let body = &self.bodies[(offset + i) % self.bodies.len()];
            let sent = Instant::now();
            match post(client, self.url, body) {
                Ok((StatusCode::ACCEPTED, Some(n), _)) if n == self.records => {
                    out.push(sent.elapsed().as_nanos() as u64);
                }
                Ok((status, n, text)) => self.fail(format!(
                    "answered {status}, ingesta-published {n:?} (expected 202 and {}): {text}",
                    self.records
                )),
                Err(e) => self.fail(format!("{e:#}")),
            }
        }
    }
}

/// POSTs `warmup` then `requests` bodies (taken in order, wrapping) from
/// `clients` threads, each on its own keep-alive connection. Every answer
/// must be 202 publishing `records`; the first that is not stops the case.
/// Returns the measured seconds (from all threads warmed up to the last
/// answer) and the sorted latencies in ns.
fn drive(
    url: &str,
    bodies: &[Body],
    warmup: usize,
    requests: usize,
    clients: usize,
    records: usize,
) -> Result<(f64, Vec<u64>)> {
    let case = Case {
        url,
        bodies,
        records,
        deadline: Instant::now() + CASE_TIMEOUT,
        failed: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
    };
    let (next_warmup, next) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let warmed_up = Barrier::new(clients + 1);
    let mut start = Instant::now();
    let per_client: Vec<Vec<u64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let mut latencies = Vec::with_capacity(requests / clients + 1);
                    match Client::builder().timeout(REQUEST_TIMEOUT).build() {
                        Ok(client) => {
                            case.phase(&client, &next_warmup, warmup, 0, &mut Vec::new());
                            warmed_up.wait();
                            case.phase(&client, &next, requests, warmup, &mut latencies);
                        }
                        Err(e) => {
                            case.fail(format!("cannot build an HTTP client: {e}"));
                            warmed_up.wait();
                        }
                    }
                    latencies
                })
            })
            .collect();
        warmed_up.wait();
        start = Instant::now();
        workers
            .into_iter()
            .map(|w| w.join().expect("client thread panicked"))
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let errors = case.errors.into_inner().expect("errors lock");
    if let Some(first) = errors.first() {
        bail!(
            "{} request(s) failed (each failure stops the case); first: {first}",
            errors.len()
        );
    }
    let mut latencies: Vec<u64> = per_client.into_iter().flatten().collect();
    ensure!(
        latencies.len() == requests,
        "{} of {requests} requests measured",
        latencies.len()
    );
    latencies.sort_unstable();
    Ok((seconds, latencies))
}

/// One POST; the status, `ingesta-published` and the body (read to the
/// end, so the connection is reused).
fn post(client: &Client, url: &str, body: &Body) -> Result<(StatusCode, Option<usize>, String)> {
    let response = client
        .post(url)
        .bearer_auth(TENANT_A.token)
        .header("content-type", "application/json")
        .header("x-key", &body.key)
        .body(body.bytes.clone())
        .send()
        .context("no answer")?;
    let status = response.status();
    let published = response
        .headers()
        .get("ingesta-published")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = response.text().context("reading the answer")?;
    Ok((status, published, text))
}

/// What the table's numbers depend on.
struct Conditions {
    cpus: usize,
    linger_ms: String,
    acks: String,
    idempotence: String,
    single_bytes: f64,
    batch_bytes: f64,
    bin: PathBuf,
}

fn report(
    args: &Args,
    c: &Conditions,
    results: &[Measured],
    targets: &[Target],
    (single_warmup, batch_warmup): (usize, usize),
) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "Ingest through producer modules (`ingest-bench`), {} UTC\n",
        utc_date()
    );
    let _ = writeln!(r, "Conditions:");
    let _ = writeln!(
        r,
        "- host: {} CPUs, shared by the runner, the client threads and (if local) the broker \
         at {}",
        c.cpus, args.bootstrap
    );
    let _ = writeln!(
        r,
        "- runner: `{}`; its ingest producer: linger.ms={}, acks={}, enable.idempotence={}",
        c.bin.display(),
        c.linger_ms,
        c.acks,
        c.idempotence
    );
    let _ = writeln!(
        r,
        "- deployments: tenant A, `ingest.max_concurrency = {MAX_CONCURRENCY}`, a fresh \
         4-partition topic each"
    );
    let _ = writeln!(
        r,
        "- requests: `POST`, one shop event per body ({:.0} B of JSON on average, `x-key` its \
         user); {} measured per case after {single_warmup} warm-up ones on the same connections",
        c.single_bytes, args.requests
    );
    if args.batch_requests > 0 {
        let _ = writeln!(
            r,
            "- batch rows: a JSON array of {} events per body ({:.0} B on average); {} measured \
             after {batch_warmup} warm-up ones. shop-ingest publishes each event as a record of \
             its own; beacon publishes the whole array as one record, so its events/s counts \
             events carried, not records made",
            args.batch_size, c.batch_bytes, args.batch_requests
        );
    }
    let _ = writeln!(
        r,
        "- client: reqwest blocking, one client (one keep-alive connection) per thread; a \
         latency runs from sending to having read the whole answer, which the runner sends \
         once Kafka has acknowledged every record of the request\n"
    );
    let _ = writeln!(
        r,
        "| module | events / request | clients | requests | seconds | requests/s | events/s | p50 ms | p90 ms | p99 ms | max ms |"
    );
    let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in results {
        let rps = m.requests_per_second();
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            m.module,
            m.events_per_request,
            m.clients,
            m.requests,
            m.seconds,
            rps,
            rps * m.events_per_request as f64,
            m.percentile_ms(50.0),
            m.percentile_ms(90.0),
            m.percentile_ms(99.0),
            m.latencies.last().copied().unwrap_or(0) as f64 / 1e6,
        );
    }
    let totals: Vec<String> = targets
        .iter()
        .map(|t| format!("{} {}", t.module, t.expected))
        .collect();
    let _ = writeln!(
        r,
        "\nVerified: every answer was 202 with `ingesta-published` equal to the records it \
         made, and each topic grew by exactly the records of the accepted requests, warm-ups \
         included (records in all: {}).",
        totals.join(", ")
    );
    r
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn utc_date() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The last `n` lines of `log`.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
