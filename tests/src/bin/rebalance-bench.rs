//! `rebalance-bench`: how long partitions stand still when a runner joins
//! or leaves a deployment's group, per group protocol (results and the
//! choice they led to in docs/benchmarks.md).
//!
//! For each protocol: three runner processes share one control plane and
//! an identity deployment reading a 12-partition topic under a steady
//! load; a fourth runner joins, later one of the first three leaves
//! cleanly (SIGTERM: drain, commit, leave the group). A reader of the
//! output topic notes when each input partition's records arrive; the
//! figure is, per partition, the longest gap between arrivals in the 15 s
//! after the join (and after the leave). A partition that did not move
//! should not stand still: with an eager protocol every partition stops
//! at every rebalance, with an incremental one only the moved ones do.
//! Every input is checked to have its output.

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ingesta_tests::control::{self, TENANT_A};
use ingesta_tests::fleet::Member;
use ingesta_tests::{kafka, runner};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Measure partition pauses when a runner joins or leaves, per group protocol")]
struct Args {
    /// Protocols to measure: eager (classic, range,roundrobin),
    /// cooperative (classic, cooperative-sticky), consumer (KIP-848).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "eager,cooperative,consumer"
    )]
    protocols: Vec<String>,
    /// Input partitions.
    #[arg(long, default_value_t = 12)]
    partitions: i32,
    /// Records per second, over all partitions.
    #[arg(long, default_value_t = 600)]
    rate: u64,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

const TIMEOUT: Duration = Duration::from_secs(90);
/// How long after a join or leave gaps are looked at.
const WINDOW: Duration = Duration::from_secs(15);

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

fn consumer_settings(protocol: &str) -> Result<&'static str> {
    Ok(match protocol {
        "eager" => "[kafka.consumer]\n\"partition.assignment.strategy\" = \"range,roundrobin\"\n",
        "cooperative" => {
            "[kafka.consumer]\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n"
        }
        "consumer" => "[kafka.consumer]\n\"group.protocol\" = \"consumer\"\n",
        other => bail!("unknown protocol {other:?}: eager, cooperative or consumer"),
    })
}

/// Per partition, the longest gap between arrivals within `from..from+WINDOW`.
fn gaps(arrivals: &BTreeMap<i32, Vec<Instant>>, from: Instant) -> Vec<Duration> {
    let to = from + WINDOW;
    arrivals
        .values()
        .map(|times| {
            let mut last = from;
            let mut worst = Duration::ZERO;
            for &t in times.iter().filter(|t| **t > from && **t <= to) {
                worst = worst.max(t - last);
                last = t;
            }
            worst.max(to.saturating_duration_since(last).min(WINDOW))
        })
        .collect()
}

fn summary(mut gaps: Vec<Duration>) -> String {
    gaps.sort_unstable();
    let ms = |d: Duration| d.as_millis();
    let still = gaps.iter().filter(|g| **g > Duration::from_secs(1)).count();
    let all: Vec<String> = gaps.iter().map(|g| ms(*g).to_string()).collect();
    format!(
        "median {} ms, max {} ms, {still}/{} partitions still > 1 s (all: {})",
        ms(gaps[gaps.len() / 2]),
        ms(gaps[gaps.len() - 1]),
        gaps.len(),
        all.join(" ")
    )
}

fn run() -> Result<()> {
    let args = Args::parse();
    kafka::set_bootstrap(&args.bootstrap);
    println!(
        "| protocol | after a 4th runner joins | after one of 4 leaves | inputs | missing | duplicates |"
    );
    println!("|---|---|---|---:|---:|---:|");
    for protocol in &args.protocols {
        let line = measure(protocol, &args)?;
        println!("{line}");
    }
    Ok(())
}

fn measure(protocol: &str, args: &Args) -> Result<String> {
    let extra = consumer_settings(protocol)?;
    let prefix = control::state_prefix();
    let [input, output] = kafka::fresh_topics(["a-rbench-in", "a-rbench-out"], args.partitions)?;
    let mut members = (0..3)
        .map(|_| Member::start(&prefix, extra, TIMEOUT))
        .collect::<Result<Vec<_>>>()?;
    control::deploy_module(
        &members[0].api,
        TENANT_A.token,
        &runner::guest_wasm("identity")?,
        json!({
            "name": "rbench",
            "inputs": [input],
            "group": kafka::unique("a-rbench"),
            "outputs": [output],
            "config": { "output_topic": output },
        }),
    )?;

    // The reader: arrival time of each output by its input partition.
    let arrivals: Arc<Mutex<BTreeMap<i32, Vec<Instant>>>> = Arc::default();
    let seen: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let reader: BaseConsumer = kafka::client_config()
        .set("group.id", kafka::unique("rbench-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    reader.subscribe(&[&output])?;
    let reading = std::thread::spawn({
        let (arrivals, seen, stop) = (arrivals.clone(), seen.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                let Some(Ok(m)) = reader.poll(Duration::from_millis(50)) else {
                    continue;
                };
                let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                    continue;
                };
                let partition = key
                    .split('-')
                    .next()
                    .and_then(|p| p.trim_start_matches('p').parse::<i32>().ok());
                if let Some(p) = partition {
                    arrivals
                        .lock()
                        .unwrap()
                        .entry(p)
                        .or_default()
                        .push(Instant::now());
                }
                *seen.lock().unwrap().entry(key.to_owned()).or_default() += 1;
            }
        }
    });

    // The load: `rate` records a second, round the partitions.
    let producer: BaseProducer = kafka::client_config().set("linger.ms", "5").create()?;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut join_at = None;
    let mut leave_at = None;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let end = Duration::from_secs(8) + 2 * WINDOW + Duration::from_secs(2);
    while started.elapsed() < end {
        let due = (started.elapsed().as_secs_f64() * args.rate as f64) as u64;
        while sent < due {
            let partition = (sent % args.partitions as u64) as i32;
            let key = format!("p{partition}-{sent}");
            let record = BaseRecord::to(&input)
                .key(&key)
                .payload("x")
                .partition(partition);
            if producer.send(record).is_err() {
                producer.poll(Duration::from_millis(10));
                continue;
            }
            sent += 1;
        }
        producer.poll(Duration::ZERO);
        let t = started.elapsed();
        if join_at.is_none() && t > Duration::from_secs(8) {
            join_at = Some(Instant::now());
            // Joining in a thread: the load goes on meanwhile.
            let prefix = prefix.clone();
            let joined = std::thread::spawn(move || Member::start(&prefix, extra, TIMEOUT));
            members.push(
                joined
                    .join()
                    .map_err(|_| anyhow::anyhow!("join panicked"))??,
            );
        }
        if leave_at.is_none() && t > Duration::from_secs(8) + WINDOW {
            leave_at = Some(Instant::now());
            let leaving = members.remove(1);
            std::thread::spawn(move || leaving.stop(TIMEOUT));
        }
        std::thread::sleep(interval.min(Duration::from_millis(5)));
    }
    producer.flush(Duration::from_secs(30))?;

    // Every input has its output?
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let have = seen.lock().unwrap().len() as u64;
        if have >= sent {
            break;
        }
        if Instant::now() > deadline {
            bail!("{protocol}: {have} of {sent} inputs have an output after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    reading
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))?;
    let seen = seen.lock().unwrap();
    let missing = (0..sent)
        .filter(|i| {
            let key = format!("p{}-{i}", i % args.partitions as u64);
            !seen.contains_key(&key)
        })
        .count();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    let arrivals = arrivals.lock().unwrap();
    let join = summary(gaps(&arrivals, join_at.context("no join")?));
    let leave = summary(gaps(&arrivals, leave_at.context("no leave")?));
    for m in members {
        let log = m.stop(TIMEOUT)?;
        // REBALANCE_BENCH_LOG=1: each runner's rebalance lines, to see
        // where a pause came from.
        if std::env::var_os("REBALANCE_BENCH_LOG").is_some() {
            for line in log
                .lines()
                .filter(|l| l.contains("partitions") || l.contains("rebalance"))
            {
                eprintln!("{line}");
            }
            eprintln!("--");
        }
    }
    kafka::delete_topics(&[&input, &output]);
    Ok(format!(
        "| {protocol} | {join} | {leave} | {sent} | {missing} | {duplicates} |"
    ))
}
