//! `create-topics`: create Kafka topics idempotently (an existing topic is
//! fine), for the Makefile and the demo. The broker has auto-creation off.
//!
//! ```text
//! create-topics user-activity:4 user-activity-stats:4 user-activity-alerts:1
//! ```

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use anyhow::{Context, Result, bail};
use clap::Parser;
use ingesta_tests::kafka;

#[derive(Parser)]
#[command(about = "Create Kafka topics if they do not exist yet")]
struct Args {
    /// Topics as NAME:PARTITIONS (partitions default to 1).
    #[arg(required = true)]
    topics: Vec<String>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

fn run() -> Result<()> {
    let args = Args::parse();
    kafka::set_bootstrap(&args.bootstrap);
    let mut specs = Vec::new();
    for t in &args.topics {
        let (name, partitions) = match t.split_once(':') {
            Some((n, p)) => (
                n,
                p.parse::<i32>()
                    .ok()
                    .filter(|p| *p > 0)
                    .with_context(|| format!("{t:?}: partitions must be a positive number"))?,
            ),
            None => (t.as_str(), 1),
        };
        if !ingesta_runtime::deployment::is_valid_topic(name) {
            bail!("{name:?} is not a valid topic name");
        }
        specs.push((name, partitions));
    }
    for (name, partitions) in specs {
        kafka::ensure_topic(name, partitions).with_context(|| format!("on {}", args.bootstrap))?;
        let actual = kafka::partitions(name)?.len();
        if actual as i32 == partitions {
            println!("topic {name} ready ({actual} partitions)");
        } else {
            println!(
                "topic {name} already exists with {actual} partitions (asked for {partitions})"
            );
        }
    }
    Ok(())
}
