//! One owner per schedule, on the real broker with three runner processes
//! sharing one control plane: a generator deployment ticks on exactly one
//! of them (its output rate is the configured one, not three times it,
//! and only one runner counts ticks), and when that runner is killed with
//! SIGKILL another takes the schedule over within the coordination
//! group's session timeout (6 s) plus a margin, at the same rate. Status
//! on any runner names the one that ticks.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, TENANT_A};
use ingesta_tests::fleet::Member;
use ingesta_tests::{kafka, metrics, runner};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Records a second the generator is configured for (10 a tick, a tick
/// every 100 ms).
const RATE: f64 = 100.0;
const WINDOW: Duration = Duration::from_secs(5);

/// Records written to `topic` over `WINDOW`, as a rate.
fn rate_of(topic: &str) -> Result<f64> {
    let before = kafka::total_records(topic)?;
    std::thread::sleep(WINDOW);
    Ok((kafka::total_records(topic)? - before) as f64 / WINDOW.as_secs_f64())
}

fn ticks(m: &Member) -> Result<f64> {
    Ok(metrics::scrape(&m.api)?.sum("ingesta_ticks_total", &[("deployment", "tenant-a/gen")]))
}

#[test]
fn a_schedule_ticks_on_one_runner_and_moves_when_it_dies() -> Result<()> {
    let prefix = control::state_prefix();
    let mut members = (0..3)
        .map(|_| Member::start(&prefix, "", TIMEOUT))
        .collect::<Result<Vec<_>>>()?;
    let [topic] = kafka::fresh_topics(["a-sched"], 1)?;
    control::deploy_module(
        &members[0].api,
        TENANT_A.token,
        &runner::guest_wasm("shop-generator")?,
        json!({
            "name": "gen", "outputs": [topic],
            "schedule": { "interval_ms": 100 },
            "config": { "topic": topic, "rate": RATE as u64 }
        }),
    )?;
    let deadline = Instant::now() + TIMEOUT;
    while kafka::total_records(&topic)? == 0 {
        ensure!(Instant::now() < deadline, "the generator never produced");
        std::thread::sleep(Duration::from_millis(200));
    }

    // While the runners join its coordination group the schedule may move
    // between them (each joins as it applies the deployment); once they
    // are all in, one ticks.
    let settled = Instant::now() + TIMEOUT;
    loop {
        let before = members.iter().map(ticks).collect::<Result<Vec<_>>>()?;
        std::thread::sleep(Duration::from_secs(2));
        let after = members.iter().map(ticks).collect::<Result<Vec<_>>>()?;
        if (0..3).filter(|i| after[*i] > before[*i]).count() == 1 {
            break;
        }
        ensure!(
            Instant::now() < settled,
            "the schedule's owner never settled: {before:?} -> {after:?}"
        );
    }
    let before = members.iter().map(ticks).collect::<Result<Vec<_>>>()?;
    let rate = rate_of(&topic)?;
    let after = members.iter().map(ticks).collect::<Result<Vec<_>>>()?;
    eprintln!("schedule on three runners: {rate:.0} records/s (configured {RATE})");
    ensure!(
        rate > 0.5 * RATE && rate < 1.3 * RATE,
        "three runners produced {rate:.0} records/s for a configured {RATE}: more than one ticks"
    );
    let owners: Vec<usize> = (0..3).filter(|i| after[*i] > before[*i]).collect();
    ensure!(
        owners.len() == 1,
        "ticks per runner {before:?} -> {after:?}: exactly one should tick"
    );

    // Status on any runner says which one ticks.
    let owner = owners[0];
    let read =
        |m: &Member| control::wait_status(&m.api, TENANT_A.token, "gen", "read", TIMEOUT, |_| true);
    let owner_id = read(&members[owner])?.runners[0].runner.clone();
    let other = &members[(owner + 1) % 3];
    control::wait_status(
        &other.api,
        TENANT_A.token,
        "gen",
        "the owner ticking",
        TIMEOUT,
        |s| {
            s.runners.len() == 3
                && s.runners
                    .iter()
                    .filter(|r| r.ticking)
                    .map(|r| r.runner.as_str())
                    .eq([owner_id.as_str()])
        },
    )?;

    // Kill the owner: another takes over.
    members[owner].process.sigkill()?;
    let killed = Instant::now();
    let at_kill = kafka::total_records(&topic)?;
    // Records the dead owner had in flight may still land; wait for a
    // second of silence or of new records, then for records to flow.
    let resumed = loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = kafka::total_records(&topic)?;
        if now > at_kill + (RATE as i64) {
            break killed.elapsed();
        }
        ensure!(
            killed.elapsed() < Duration::from_secs(6 + 14),
            "no runner took the schedule over within 20 s of the owner's death"
        );
    };
    eprintln!("schedule failover after SIGKILL: records flow again {resumed:?} after the kill");
    let survivors: Vec<Member> = members
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != owner)
        .map(|(_, m)| m)
        .collect();
    let before = survivors.iter().map(ticks).collect::<Result<Vec<_>>>()?;
    let rate = rate_of(&topic)?;
    let after = survivors.iter().map(ticks).collect::<Result<Vec<_>>>()?;
    eprintln!("schedule on the two runners left: {rate:.0} records/s");
    ensure!(
        rate > 0.5 * RATE && rate < 1.3 * RATE,
        "after the failover: {rate:.0} records/s for a configured {RATE}"
    );
    ensure!(
        (0..2).filter(|i| after[*i] > before[*i]).count() == 1,
        "ticks per surviving runner {before:?} -> {after:?}: exactly one should tick"
    );
    for m in survivors {
        m.stop(TIMEOUT).context("stopping a survivor")?;
    }
    kafka::delete_topics(&[&topic]);
    Ok(())
}
