//! `shop-watch`: a live view of what `activity-stats` outputs, for the demo.
//!
//! Reads the stats and alerts topics (no consumer group, nothing
//! committed), sums the per-batch stats increments into running totals per
//! product — ignoring a repeated (topic, partition, offsets, product) window,
//! which is how a redelivered batch shows up — and redraws every second:
//! the top 10 products by views and the last 5 large-purchase alerts.
//!
//! ```text
//! shop-watch --from earliest --seconds 20
//! ```

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use ingesta_tests::kafka;
use ingesta_tests::shop::{AlertRecord, StatsRecord, StatsSum};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

#[derive(Clone, Copy, ValueEnum)]
enum From {
    /// Everything the topics hold.
    Earliest,
    /// Only what arrives from now on.
    Latest,
}

#[derive(Parser)]
#[command(about = "Live view of the shop statistics and alerts")]
struct Args {
    /// The stats topic.
    #[arg(long, default_value = "user-activity-stats")]
    stats_topic: String,
    /// The alerts topic.
    #[arg(long, default_value = "user-activity-alerts")]
    alerts_topic: String,
    /// Where to start reading.
    #[arg(long, value_enum, default_value = "latest")]
    from: From,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

struct View {
    sum: StatsSum,
    alerts: VecDeque<AlertRecord>,
    alerts_total: u64,
    stats_records: u64,
    bad_records: u64,
}

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    kafka::set_bootstrap(&args.bootstrap);
    ingesta_tests::catch_stop_signals();
    let consumer: BaseConsumer = kafka::client_config()
        .set("group.id", kafka::unique("shop-watch"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let start_at = match args.from {
        From::Earliest => Offset::Beginning,
        From::Latest => Offset::End,
    };
    let mut tpl = TopicPartitionList::new();
    for topic in [&args.stats_topic, &args.alerts_topic] {
        let parts = kafka::partitions(topic).with_context(|| {
            format!("topic {topic:?} is not available; create it first (create-topics {topic}:4)")
        })?;
        for p in parts {
            tpl.add_partition_offset(topic, p, start_at)?;
        }
    }
    consumer.assign(&tpl)?;

    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let end = args.seconds.map(|s| started + Duration::from_secs(s));
    let mut view = View {
        sum: StatsSum::default(),
        alerts: VecDeque::new(),
        alerts_total: 0,
        stats_records: 0,
        bad_records: 0,
    };
    let mut next_draw = Instant::now();
    while !ingesta_tests::stop_requested() && end.is_none_or(|e| Instant::now() < e) {
        if let Some(r) = consumer.poll(Duration::from_millis(50)) {
            match r {
                Ok(m) => {
                    let value = m.payload().unwrap_or_default();
                    if m.topic() == args.stats_topic {
                        match serde_json::from_slice::<StatsRecord>(value) {
                            Ok(s) => {
                                view.stats_records += 1;
                                view.sum.add(&s);
                            }
                            Err(_) => view.bad_records += 1,
                        }
                    } else {
                        match serde_json::from_slice::<AlertRecord>(value) {
                            Ok(a) => {
                                view.alerts_total += 1;
                                view.alerts.push_back(a);
                                if view.alerts.len() > 5 {
                                    view.alerts.pop_front();
                                }
                            }
                            Err(_) => view.bad_records += 1,
                        }
                    }
                }
                Err(e) => eprintln!("consume error: {e}"),
            }
        }
        if Instant::now() >= next_draw {
            draw(&view, &args, started.elapsed(), tty)?;
            next_draw += Duration::from_secs(1);
        }
    }
    draw(&view, &args, started.elapsed(), tty)?;
    Ok(())
}

fn draw(v: &View, args: &Args, elapsed: Duration, tty: bool) -> Result<()> {
    let mut s = String::new();
    if tty {
        s.push_str("\x1b[2J\x1b[H");
    } else {
        s.push_str("----\n");
    }
    s.push_str(&format!(
        "shop-watch  {}s  stats from {:?}: {} records ({} repeats ignored)  alerts from {:?}: {}{}\n\n",
        elapsed.as_secs(),
        args.stats_topic,
        v.stats_records,
        v.sum.duplicates,
        args.alerts_topic,
        v.alerts_total,
        if v.bad_records > 0 {
            format!("  unreadable: {}", v.bad_records)
        } else {
            String::new()
        }
    ));
    s.push_str(&format!(
        "{:<24} {:>9} {:>8} {:>8} {:>9} {:>12}\n",
        "product", "views", "clicks", "carts", "purchases", "revenue"
    ));
    let mut top: Vec<_> = v.sum.totals.iter().collect();
    top.sort_by(|a, b| b.1.views.cmp(&a.1.views).then(a.0.cmp(b.0)));
    for (id, t) in top.iter().take(10) {
        let name = v.sum.names.get(id).map_or("?", String::as_str);
        s.push_str(&format!(
            "{:<24} {:>9} {:>8} {:>8} {:>9} {:>12.2}\n",
            truncate(name, 24),
            t.views,
            t.clicks,
            t.add_to_cart,
            t.purchases,
            t.revenue()
        ));
    }
    let u = &v.sum.unknown;
    if *u != Default::default() {
        // Events without a product_id (the shop tutorial's producers).
        s.push_str(&format!(
            "{:<24} {:>9} {:>8} {:>8} {:>9} {:>12.2}\n",
            "(unknown product)",
            u.views,
            u.clicks,
            u.add_to_cart,
            u.purchases,
            u.revenue()
        ));
    } else if top.is_empty() {
        s.push_str("(no stats yet)\n");
    }
    s.push_str("\nlast alerts:\n");
    for a in v.alerts.iter().rev() {
        s.push_str(&format!(
            "ALERT large purchase: user {} bought {} for {:.2} (threshold {})\n",
            a.user_id, a.product_name, a.price, a.threshold
        ));
    }
    if v.alerts.is_empty() {
        s.push_str("(none yet)\n");
    }
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
