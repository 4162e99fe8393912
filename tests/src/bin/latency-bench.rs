//! `latency-bench`: end-to-end latency of the 1:1 map, and how long a
//! sleeping deployment takes to handle its first new record (results in
//! docs/benchmarks.md, "Latency" and "Waking").
//!
//! Every case runs a runner process with the control plane and `identity`
//! deployments (100 B records). A record's latency is from just before it
//! is handed to an acks=all producer (`linger.ms` 0) until a consumer of
//! the output topic (`fetch.wait.max.ms` 1) has its copy: produce → handler
//! → output acknowledged → visible, at-least-once.
//!
//! - `steady`: records at a fixed rate for `--seconds` (the first two are
//!   warm-up and not counted), for each rate and settings preset:
//!   `default` (the runner's and a deployment's defaults), `demo` (the
//!   demo's runner settings with activity-stats' 200 ms batches) and `low`
//!   (output `linger.ms` 0, `batch.max_wait_ms` 0, `fetch.wait.max.ms` 1).
//! - `wake`: `--deployments` deployments, each on an input topic of its
//!   own, fall asleep (`sleep_after_ms` 2000); then one record goes to
//!   each input, 20 ms apart, and each wake-up is timed; `--rounds` times.
//!   Then `--broadcast` deployments on one topic: a single record wakes
//!   them all at once.

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ingesta_tests::control::{self, Api, TENANT_A, upload};
use ingesta_tests::kafka;
use ingesta_tests::runner;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Measure ingesta's end-to-end latency and wake-up time")]
struct Args {
    /// `steady`, `wake` or `all`.
    #[arg(long, default_value = "all")]
    case: String,
    /// Records per second for `steady`.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    rates: Vec<u64>,
    /// Settings presets for `steady`: default, demo, fetch500, low, zero.
    #[arg(long, value_delimiter = ',', default_value = "default,demo,low")]
    presets: Vec<String>,
    /// Seconds of load per steady run (the first two are not counted).
    #[arg(long, default_value_t = 12)]
    seconds: u64,
    /// Deployments with an input topic each, for `wake`.
    #[arg(long, default_value_t = 50)]
    deployments: usize,
    /// Rounds of waking each of them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Deployments on one topic, woken by a single record.
    #[arg(long, default_value_t = 100)]
    broadcast: usize,
    /// Extra TOML for the wake case's runner (not `[runtime]`, which the
    /// case sets), e.g. `[kafka.consumer]` settings to compare.
    #[arg(long, default_value = "")]
    extra: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

const TIMEOUT: Duration = Duration::from_secs(300);
const SIZE: usize = 100;

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    kafka::set_bootstrap(&args.bootstrap);
    if matches!(args.case.as_str(), "steady" | "all") {
        println!(
            "latency: identity 1:1 map, {SIZE} B records, produce (acks=all, linger 0) -> output visible; {} s per run, 2 s warm-up",
            args.seconds
        );
        println!(
            "| settings | rate (rec/s) | records | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for preset in &args.presets {
            for &rate in &args.rates {
                steady(preset, rate, args.seconds)?;
            }
        }
    }
    if matches!(args.case.as_str(), "wake" | "all") {
        wake(&args)?;
    }
    Ok(())
}

/// The runner's extra config and the deployment's `batch` for a preset.
fn preset(name: &str) -> Result<(&'static str, serde_json::Value)> {
    Ok(match name {
        "default" => ("", json!({})),
        "demo" => ("", json!({ "max_wait_ms": 200 })),
        // The broker answers a waiting fetch as soon as a record arrives,
        // so a long wait should cost no latency, only idle fetches.
        "fetch500" => ("[kafka.consumer]\n\"fetch.wait.max.ms\" = 500\n", json!({})),
        "low" => (
            "[kafka.producer]\n\"linger.ms\" = 1\n[kafka.consumer]\n\"fetch.wait.max.ms\" = 1\n",
            json!({ "max_wait_ms": 1 }),
        ),
        "zero" => (
            "[kafka.producer]\n\"linger.ms\" = 0\n[kafka.consumer]\n\"fetch.wait.max.ms\" = 1\n",
            json!({ "max_wait_ms": 0 }),
        ),
        other => bail!("unknown preset {other:?} (default, demo, fetch500, low, zero)"),
    })
}

/// Microseconds since the epoch (the producer and the reader are this
/// process, so one clock).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A record stamped with its send time, padded to `SIZE` bytes.
fn stamped(seq: u64) -> String {
    let mut v = format!("{seq:012}-{:016}-", now_us());
    v.extend(std::iter::repeat_n('x', SIZE.saturating_sub(v.len())));
    v
}

/// The send time in a stamped record.
fn stamp_of(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    text.get(13..29)?.parse().ok()
}

fn producer() -> Result<ThreadedProducer<rdkafka::producer::DefaultProducerContext>> {
    kafka::client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .context("cannot create the load producer")
}

/// A reader of every partition of `topic` from its end, with no group.
fn reader(topic: &str) -> Result<BaseConsumer> {
    let c: BaseConsumer = kafka::client_config()
        .set("group.id", kafka::unique("lat-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "1")
        .create()?;
    // From the ends as they are now (Offset::End would be resolved at the
    // first fetch, after records this run is waiting for).
    let mut tpl = TopicPartitionList::new();
    for (p, end) in kafka::high_watermarks(topic)? {
        tpl.add_partition_offset(topic, p, Offset::Offset(end))?;
    }
    c.assign(&tpl)?;
    Ok(c)
}

/// Read `want` stamped records from `c`; their latencies in µs.
fn latencies(c: &BaseConsumer, want: usize, timeout: Duration) -> Result<Vec<u64>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        if Instant::now() > deadline {
            bail!("only {} of {want} outputs within {timeout:?}", out.len());
        }
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m?;
            let at = now_us();
            if let Some(sent) = m.payload().and_then(stamp_of) {
                out.push(at.saturating_sub(sent));
            }
        }
    }
    Ok(out)
}

/// `p`th percentile of sorted `v`, in ms.
fn pct(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 * p / 100.0).ceil() as usize).clamp(1, v.len()) - 1;
    v[i] as f64 / 1000.0
}

fn deploy(
    api: &Api,
    digest: &str,
    name: &str,
    input: &str,
    output: &str,
    batch: &serde_json::Value,
) -> Result<()> {
    let mut body = json!({
        "name": name, "module": digest, "inputs": [input], "group": kafka::unique("a-lat"),
        "outputs": [output], "config": { "output_topic": output },
    });
    if batch.as_object().is_some_and(|b| !b.is_empty()) {
        body["batch"] = batch.clone();
    }
    control::create(api, TENANT_A.token, &body)?;
    Ok(())
}

/// A runner with `extra` config and the identity module uploaded: the
/// process, its API and the module's digest.
fn runner_with_identity(extra: &str) -> Result<(runner::RunnerProcess, Api, String)> {
    let (ingesta, api) = control::start_runner(8, extra)?;
    let wasm = std::fs::read(runner::guest_wasm("identity")?)?;
    let digest = upload(&api, TENANT_A.token, wasm)?;
    Ok((ingesta, api, digest))
}

fn wait_state(api: &Api, state: &str, n: usize) -> Result<()> {
    control::wait_count(api, TENANT_A.token, &[state], n, TIMEOUT)
}

fn steady(preset_name: &str, rate: u64, seconds: u64) -> Result<()> {
    let (extra, batch) = preset(preset_name)?;
    let (mut ingesta, api, digest) = runner_with_identity(extra)?;
    let [input, output] = kafka::fresh_topics(["a-lat-in", "a-lat-out"], 4)?;
    deploy(&api, &digest, "lat", &input, &output, &batch)?;
    wait_state(&api, "running", 1)?;
    let reader = reader(&output)?;
    let producer = producer()?;
    // Warm up: the group has joined once the first record comes through.
    producer
        .send(BaseRecord::<(), _>::to(&input).payload(&stamped(0)))
        .map_err(|(e, _)| e)?;
    latencies(&reader, 1, Duration::from_secs(60))?;
    let total = rate * seconds;
    let warm = rate * 2;
    let started = Instant::now();
    let measured = std::thread::scope(|s| -> Result<Vec<u64>> {
        let sending = s.spawn(|| -> Result<()> {
            for seq in 1..=total {
                let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let value = stamped(seq);
                let mut record = BaseRecord::<(), _>::to(&input).payload(&value);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, r)) => {
                            record = r;
                            producer.poll(Duration::from_millis(1));
                        }
                    }
                }
            }
            producer.flush(Duration::from_secs(30))?;
            Ok(())
        });
        let all = latencies(&reader, total as usize, Duration::from_secs(seconds + 60))?;
        sending
            .join()
            .map_err(|_| anyhow::anyhow!("the sender panicked"))??;
        Ok(all)
    })?;
    let mut counted: Vec<u64> = measured.into_iter().skip(warm as usize).collect();
    counted.sort_unstable();
    println!(
        "| {preset_name} | {rate} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
        counted.len(),
        pct(&counted, 50.0),
        pct(&counted, 99.0),
        pct(&counted, 99.9),
        pct(&counted, 100.0)
    );
    ingesta.sigterm()?;
    ingesta.wait(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}

/// One row of the waking table: `case` and the percentiles of `v` (µs).
fn wake_row(case: &str, v: &mut [u64]) {
    v.sort_unstable();
    println!(
        "| {case} | {} | {:.0} | {:.0} | {:.0} |",
        v.len(),
        pct(v, 50.0),
        pct(v, 99.0),
        pct(v, 100.0)
    );
}

fn wake(args: &Args) -> Result<()> {
    let extra = format!("{}\n[runtime]\nsleep_after_ms = 2000\n", args.extra);
    let (mut ingesta, api, digest) = runner_with_identity(&extra)?;
    let [output, shared] = kafka::fresh_topics(["a-wake-out", "a-wake-shared"], 4)?;
    let mut inputs = Vec::new();
    for i in 0..args.deployments {
        let topic = kafka::unique(&format!("a-wake-in-{i}"));
        kafka::create_topic(&topic, 1)?;
        deploy(
            &api,
            &digest,
            &format!("wake-{i}"),
            &topic,
            &output,
            &json!({}),
        )?;
        inputs.push(topic);
    }
    let n = args.deployments;
    wait_state(&api, "sleeping", n)?;
    let reader = reader(&output)?;
    let producer = producer()?;
    // A new idempotent producer's first send waits for its producer id and
    // metadata; that is the bench's cost, not a wake's: send one record
    // nobody reads first.
    producer
        .send(BaseRecord::<(), _>::to(&shared).payload("warm-up"))
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    let mut own = Vec::new();
    for round in 0..args.rounds {
        for (i, topic) in inputs.iter().enumerate() {
            producer
                .send(BaseRecord::<(), _>::to(topic).payload(&stamped((round * n + i) as u64)))
                .map_err(|(e, _)| e)?;
            producer.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(20));
        }
        producer.flush(Duration::from_secs(30))?;
        own.extend(latencies(&reader, n, TIMEOUT)?);
        wait_state(&api, "sleeping", n)?;
    }
    println!();
    println!(
        "waking (wake_check_ms 100, sleep_after_ms 2000, broker group.initial.rebalance.delay.ms 0): first record -> its output visible"
    );
    println!("| case | wake-ups | p50 (ms) | p99 (ms) | max (ms) |");
    println!("|---|---:|---:|---:|---:|");
    wake_row(
        &format!(
            "one record per deployment, {n} deployments, 20 ms apart, x{}",
            args.rounds
        ),
        &mut own,
    );
    for i in 0..args.broadcast {
        deploy(
            &api,
            &digest,
            &format!("bcast-{i}"),
            &shared,
            &output,
            &json!({}),
        )?;
    }
    wait_state(&api, "sleeping", n + args.broadcast)?;
    producer
        .send(BaseRecord::<(), _>::to(&shared).payload(&stamped(0)))
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    let mut all = latencies(&reader, args.broadcast, TIMEOUT)?;
    wake_row(
        &format!(
            "one record waking {} deployments of one topic",
            args.broadcast
        ),
        &mut all,
    );
    ingesta.sigterm()?;
    ingesta.wait(TIMEOUT)?;
    let mut topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    topics.extend([output.as_str(), shared.as_str()]);
    kafka::delete_topics(&topics);
    Ok(())
}
