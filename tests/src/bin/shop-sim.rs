//! `shop-sim`: simulated shop traffic for the demo.
//!
//! Produces shop events (see `ingesta_tests::shop`) to a topic at a steady
//! rate, keyed by user id, with an idempotent acks=all producer. Prints one
//! progress line per second. Runs for `--seconds` or until Ctrl-C.
//!
//! ```text
//! shop-sim --topic user-activity --rate 200 --seconds 30
//! ```

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ingesta_tests::kafka;
use ingesta_tests::shop::{Generator, Rng, malformed_event};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

#[derive(Parser)]
#[command(about = "Produce simulated shop events to Kafka")]
struct Args {
    /// Topic to produce to (must exist).
    #[arg(long, default_value = "user-activity")]
    topic: String,
    /// Events per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
    /// Share of malformed events, e.g. 0.01 for 1%. The runner stops a
    /// deployment on a malformed event unless it has a dead-letter topic.
    #[arg(long, default_value_t = 0.0)]
    malformed_ratio: f64,
    /// Seed of the event generator (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    if args.rate == 0 || !(0.0..=1.0).contains(&args.malformed_ratio) {
        bail!("--rate must be positive and --malformed-ratio between 0 and 1");
    }
    kafka::set_bootstrap(&args.bootstrap);
    ingesta_tests::catch_stop_signals();
    kafka::partitions(&args.topic).with_context(|| {
        format!(
            "topic {:?} is not available; create it first (create-topics {}:4)",
            args.topic, args.topic
        )
    })?;

    let producer: Arc<ThreadedProducer<kafka::Acks>> = Arc::new(
        kafka::client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .create_with_context(kafka::Acks::default())?,
    );
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut generator = Generator::new(seed).start_ts(now_ms);
    let mut dice = Rng::new(seed ^ 0x5eed);
    eprintln!(
        "shop-sim: {} events/s to {:?} on {} (seed {seed}){}",
        args.rate,
        args.topic,
        args.bootstrap,
        args.seconds
            .map_or(", until Ctrl-C".to_owned(), |s| format!(" for {s}s"))
    );

    let start = Instant::now();
    let end = args.seconds.map(|s| start + Duration::from_secs(s));
    let mut sent: u64 = 0;
    let mut malformed: u64 = 0;
    let mut next_report = start + Duration::from_secs(1);
    let mut sent_at_report = 0;
    while !ingesta_tests::stop_requested() && end.is_none_or(|e| Instant::now() < e) {
        // Catch up to the rate, then sleep a tick.
        let due = (start.elapsed().as_secs_f64() * args.rate as f64) as u64;
        while sent < due {
            let (key, value) = if dice.unit() < args.malformed_ratio {
                malformed += 1;
                ("0".to_owned(), malformed_event(dice.next_u64()))
            } else {
                let mut e = generator.event();
                e.ts = now_ms + start.elapsed().as_millis() as i64;
                (e.key(), e.to_json())
            };
            let record = BaseRecord::to(&args.topic).key(&key).payload(&value);
            let queued = kafka::send_when_room(
                &producer,
                record,
                Duration::from_millis(5),
                ingesta_tests::stop_requested,
            )
            .with_context(|| format!("cannot produce to {:?}", args.topic))?;
            if !queued {
                break;
            }
            sent += 1;
        }
        let now = Instant::now();
        if now >= next_report {
            let acks = producer.context();
            println!(
                "sent {sent} events ({}/s), acked {}, failed {}{}",
                sent - sent_at_report,
                acks.ok.load(Ordering::Relaxed),
                acks.failed.load(Ordering::Relaxed),
                if malformed > 0 {
                    format!(", malformed {malformed}")
                } else {
                    String::new()
                }
            );
            sent_at_report = sent;
            next_report += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing the last events")?;
    let acks = producer.context();
    println!(
        "done: sent {sent} events in {:.1}s, acked {}, failed {}",
        start.elapsed().as_secs_f64(),
        acks.ok.load(Ordering::Relaxed),
        acks.failed.load(Ordering::Relaxed)
    );
    if acks.failed.load(Ordering::Relaxed) > 0 {
        bail!("some events were not delivered");
    }
    Ok(())
}
