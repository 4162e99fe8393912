//! `deploy-bench`: how long from a deploy request to the first output, on a
//! runner process against the real broker (results in docs/benchmarks.md).
//!
//! Each round creates a fresh input topic with one record waiting (the
//! output topic is shared, told apart by the fixture's `tag` header), then:
//! - **create**: `POST /v1/deployments` (hostile fixture, start earliest) →
//!   first output. The runner's log gives the consumer-group join (from
//!   "deployment started" to "partitions assigned"), reported separately
//!   and subtracted for the "excluding join" figure;
//! - **swap**: with that deployment running, `PATCH` a second module
//!   version with a new `tag`, produce one record → first output carrying
//!   the new tag. No join is involved: the swap happens at the next batch.

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ingesta_tests::control::{self, Api, TENANT_A, second_version, tag_of, upload};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, RunnerProcess};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Measure deploy → first output latency through the control API")]
struct Args {
    /// Rounds to run.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

/// Seconds since midnight of a log line's RFC 3339 UTC timestamp.
fn log_seconds(line: &str) -> Option<f64> {
    let time = line.get(11..)?.split('Z').next()?;
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The group join of `deployment` as the runner logged it, in ms.
fn join_ms(log: &str, deployment: &str) -> Result<f64> {
    let field = format!("deployment=\"{deployment}\"");
    let at = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains(&field))
            .filter_map(log_seconds)
            .next_back()
            .with_context(|| format!("no {what:?} line for {deployment} in the runner log"))
    };
    let mut ms = (at("partitions assigned")? - at("deployment started")?) * 1e3;
    if ms < 0.0 {
        ms += 86_400e3; // across midnight
    }
    Ok(ms)
}

/// Waits for the first record on `topic` (tagged `tag`, if given).
fn first_output(consumer: &BaseConsumer, tag: Option<&str>, start: Instant) -> Result<f64> {
    let deadline = start + TIMEOUT;
    while Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(1)) {
            let m = m?.detach();
            if tag.is_none() || tag_of(&m).as_deref() == tag {
                return Ok(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    bail!("no output within {TIMEOUT:?}")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run() -> Result<()> {
    let args = Args::parse();
    kafka::set_bootstrap(&args.bootstrap);
    let port = control::free_port()?;
    let mut ingesta =
        RunnerProcess::spawn(&control::config_toml(port, &control::state_prefix(), 8))?;
    let api = Api::new(port)?;
    api.wait_ready(Duration::from_secs(60))?;
    let a = TENANT_A.token;
    let v1 = std::fs::read(runner::fixture_wasm("hostile")?)?;
    let digests = [
        upload(&api, a, v1.clone())?,
        upload(&api, a, second_version(v1))?,
    ];

    // One producer for the whole run: creating one per record would add
    // its start-up (hundreds of ms) to every swap measurement.
    let producer: BaseProducer = kafka::client_config()
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()?;
    let out = kafka::unique("a-lat-out");
    kafka::create_topic(&out, 1)?;
    println!(
        "| round | create → first output (ms) | of which group join (ms) | create, excluding join (ms) | swap → first output (ms) |"
    );
    println!("|---|---|---|---|---|");
    let (mut totals, mut joins, mut excl, mut swaps) = (vec![], vec![], vec![], vec![]);
    for round in 0..args.rounds {
        let name = format!("latency-{round}");
        let input = kafka::unique("a-lat-in");
        kafka::create_topic(&input, 1)?;
        kafka::produce(&input, [("k", "first", None)])?;
        let consumer: BaseConsumer = kafka::client_config()
            .set("group.id", kafka::unique("lat-watch"))
            .set("fetch.wait.max.ms", "1")
            // A brand-new topic may answer its first fetches with an error;
            // the default 500 ms back-off would be measured as latency.
            .set("fetch.error.backoff.ms", "5")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&out, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;

        let start = Instant::now();
        let (status, body) = api.json(
            Method::POST,
            "/v1/deployments",
            Some(a),
            &json!({
                "name": name, "module": digests[0], "inputs": [input],
                "group": kafka::unique("a-lat"), "outputs": [out],
                "config": { "output_topic": out, "tag": format!("create-{round}") },
            }),
        )?;
        if status != StatusCode::CREATED {
            bail!("create: {status} {body}");
        }
        let total = first_output(&consumer, Some(&format!("create-{round}")), start)?;
        let join = join_ms(&ingesta.log(), &format!("{}/{name}", TENANT_A.name))?;

        let tag = format!("round-{round}");
        let start = Instant::now();
        let (status, body) = api.json(
            Method::PATCH,
            &format!("/v1/deployments/{name}"),
            Some(a),
            &json!({
                "module": digests[1],
                "config": { "output_topic": out, "tag": tag },
            }),
        )?;
        if status != StatusCode::OK {
            bail!("update: {status} {body}");
        }
        producer
            .send(BaseRecord::to(&input).key("k").payload("second"))
            .map_err(|(e, _)| e)?;
        producer.flush(TIMEOUT)?;
        let swap = first_output(&consumer, Some(&tag), start)?;
        println!(
            "| {round} | {total:.0} | {join:.0} | {:.0} | {swap:.0} |",
            total - join
        );
        totals.push(total);
        joins.push(join);
        excl.push(total - join);
        swaps.push(swap);
        let (status, _) = api.call(
            Method::DELETE,
            &format!("/v1/deployments/{name}"),
            Some(a),
            None,
        )?;
        if status != StatusCode::NO_CONTENT {
            bail!("delete: {status}");
        }
    }
    println!(
        "| median | {:.0} | {:.0} | {:.0} | {:.0} |",
        median(totals),
        median(joins),
        median(excl),
        median(swaps)
    );
    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(Duration::from_secs(60))?;
    if !status.success() {
        bail!("ingesta exited with {status}:\n{log}");
    }
    Ok(())
}
