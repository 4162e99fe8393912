//! Closing a lane is prompt even while it is deep in its failure policy:
//! on SIGTERM a deployment bisecting a batch of infinite loops finishes the
//! call in progress, abandons the rest of the batch (not stored, so it is
//! delivered again) and the runner exits cleanly, well inside a generous
//! drain timeout, with nothing lost: every record below the committed
//! offset was dead-lettered.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, ensure};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, Deployment, RunnerProcess};
use rdkafka::Message;

const TIMEOUT: Duration = Duration::from_secs(120);
const LOOPS: usize = 200;

#[test]
fn sigterm_abandons_a_batch_mid_bisection_and_loses_nothing() -> Result<()> {
    let [input, output, dlq] = kafka::fresh_topics(["close-in", "close-out", "close-dlq"], 1)?;
    kafka::produce(
        &input,
        (0..LOOPS).map(|i| (format!("k{i}"), "loop", Some(0))),
    )?;
    let group = kafka::unique("grp");
    let deployment = Deployment::new("looping", &runner::fixture_wasm("hostile")?, &input, &group)
        .output(&output)
        // Small batches: dead letters are published when their batch is
        // through, so the first ones appear while later batches still run.
        .batch(10, 5)
        .config("output_topic", &output)
        .set("limits", "deadline_ms", 100)
        .dead_letter(&dlq, 1);
    // A drain timeout far longer than the test waits: the lane must close
    // on its own, not be cut off by the timeout.
    let config = format!(
        "[runtime]\ndrain_timeout_ms = 600000\n\n{}",
        runner::config_toml(&[deployment])
    );
    let mut ingesta = RunnerProcess::spawn(&config)?;
    // Mid-bisection: some loops are dead-lettered, most are not yet.
    kafka::read_all(&dlq, 3, TIMEOUT)?;
    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(status.success(), "ingesta exited with {status}:\n{log}");
    ensure!(
        log.contains("batch abandoned mid-retry"),
        "the lane should abandon its batch:\n{log}"
    );
    ensure!(
        !log.contains("did not drain in time"),
        "the lane should close on its own:\n{log}"
    );

    // Nothing lost: every offset below the commit was dead-lettered.
    let committed = kafka::committed(&group, &input)?[&0].unwrap_or(0);
    let dead: BTreeSet<i64> = kafka::read_to_end(&dlq, Duration::from_secs(10))?
        .iter()
        .filter_map(|m| {
            let h = m.headers()?;
            (0..rdkafka::message::Headers::count(h))
                .map(|i| rdkafka::message::Headers::get(h, i))
                .find(|h| h.key == "ingesta.source.offset")
                .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
        })
        .collect();
    ensure!(
        (committed as usize) < LOOPS,
        "the whole input was committed ({committed}); the stop came too late to test anything"
    );
    let missing: Vec<i64> = (0..committed).filter(|o| !dead.contains(o)).collect();
    ensure!(
        missing.is_empty(),
        "offsets {missing:?} are below the committed offset {committed} but were not dead-lettered"
    );
    println!(
        "stopped with {} of {LOOPS} loops dead-lettered, committed offset {committed}",
        dead.len()
    );
    kafka::delete_topics(&[&input, &output, &dlq]);
    Ok(())
}
