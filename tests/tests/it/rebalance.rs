//! Rebalances under load, on the real broker with runner processes sharing
//! one control plane (so every runner joins the deployment's group):
//! - a backlog worked off under back-pressure (partitions paused because
//!   their waiting batches are over budget) while a second runner joins
//!   and leaves the group three times: afterwards every partition makes
//!   progress to the end, no input is without its output, and the longest
//!   pause of any partition is reported (and bounded, generously), and
//!   the first runner's rebalance metrics count what it went through.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, TENANT_A};
use ingesta_tests::fleet::{self, Member};
use ingesta_tests::kafka;
use ingesta_tests::metrics;
use ingesta_tests::runner;
use rdkafka::Message;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

/// Six partitions of 6,000 records of 4 KB each: a lane works ~1,000
/// records a second (1 ms each), so within a second every partition has
/// more than its waiting budget (8 MiB) fetched and is paused, and the
/// backlog lasts well beyond the three joins and leaves.
const PARTITIONS: i32 = 6;
const RECORDS: usize = 36_000;
const VALUE_BYTES: usize = 4_000;

#[test]
fn paused_partitions_survive_a_member_joining_and_leaving_three_times() -> Result<()> {
    let prefix = control::state_prefix();
    let first = Member::start(&prefix, "", TIMEOUT)?;
    let [input, output] = kafka::fresh_topics(["a-rebal-in", "a-rebal-out"], PARTITIONS)?;
    let group = kafka::unique("a-rebal");
    let value = vec![b'x'; VALUE_BYTES];
    kafka::produce(
        &input,
        (0..RECORDS).map(|i| {
            (
                format!("k{i}"),
                value.as_slice(),
                Some(i as i32 % PARTITIONS),
            )
        }),
    )?;

    control::deploy_module(
        &first.api,
        TENANT_A.token,
        &runner::fixture_wasm("hostile")?,
        json!({
            "name": "rebal",
            "inputs": [input],
            "group": group,
            "outputs": [output],
            "batch": { "max_records": 200, "max_bytes": 1_048_576 },
            "config": { "output_topic": output, "spin_micros": "1000" },
        }),
    )?;

    // A second member joins for ~3 s and leaves, three times, while the
    // backlog is being worked off.
    let started = Instant::now();
    let mut second: Option<Member> = None;
    let mut churns = 0;
    let progress = fleet::watch_progress(
        &group,
        &input,
        Duration::from_millis(200),
        Duration::from_secs(240),
        || {
            let t = started.elapsed();
            match second.take() {
                None if churns < 3 && t > Duration::from_secs(2 + 5 * churns) => {
                    second = Some(Member::start(&prefix, "", TIMEOUT)?);
                }
                Some(m) if t > Duration::from_secs(5 + 5 * churns) => {
                    m.stop(TIMEOUT)?;
                    churns += 1;
                }
                other => second = other,
            }
            Ok(())
        },
    )?;
    ensure!(
        churns == 3,
        "the backlog was worked off after only {churns} joins and leaves (make it larger)"
    );
    eprintln!(
        "rebalance under load: longest pause {:?} (per partition {:?})",
        progress.worst(),
        progress.longest_pause
    );
    ensure!(
        progress.worst() < Duration::from_secs(45),
        "a partition stood still for {:?}: {:?}",
        progress.worst(),
        progress.longest_pause
    );

    let out = kafka::read_all(&output, RECORDS, TIMEOUT)?;
    let keys: BTreeSet<Vec<u8>> = out
        .iter()
        .filter_map(|m| m.key().map(<[u8]>::to_vec))
        .collect();
    let missing: Vec<usize> = (0..RECORDS)
        .filter(|i| !keys.contains(format!("k{i}").as_bytes()))
        .collect();
    eprintln!(
        "rebalance under load: inputs={RECORDS} outputs={} missing={} duplicates={}",
        out.len(),
        missing.len(),
        out.len() - keys.len()
    );
    ensure!(
        missing.is_empty(),
        "{} inputs have no output, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // The first member counted the rebalances it went through: at least
    // the three joins and three leaves, with partitions given up (drained
    // and committed) and time with nothing read.
    let seen = metrics::scrape(&first.api)?;
    let d = [("deployment", "tenant-a/rebal")];
    let rebalances = seen.sum("ingesta_rebalances_total", &d);
    let revoked = seen.sum(
        "ingesta_partitions_revoked_total",
        &[("deployment", "tenant-a/rebal"), ("how", "revoked")],
    );
    let paused = seen.sum("ingesta_rebalance_paused_milliseconds_total", &d);
    eprintln!(
        "rebalance under load: first member's rebalances={rebalances} revoked={revoked} paused_ms={paused}"
    );
    ensure!(
        rebalances >= 6.0
            && revoked >= 3.0
            && paused > 0.0
            && seen.sum("ingesta_partitions_assigned_total", &d) >= 6.0,
        "rebalance metrics: rebalances={rebalances} revoked={revoked} paused_ms={paused}"
    );
    first.stop(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
