//! A permanent handler error (a malformed event) with no dead-letter topic
//! stops the deployment: the runner exits non-zero naming where, and never
//! commits past the bad record.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, Deployment, RunnerProcess};
use ingesta_tests::shop::{self, StatsRecord, StatsSum};

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn malformed_event_stops_the_deployment_naming_the_offset() -> Result<()> {
    let input = kafka::unique("user-activity");
    let stats = kafka::unique("stats");
    let alerts = kafka::unique("alerts");
    let group = kafka::unique("grp");
    kafka::create_topic(&input, 1)?;
    kafka::create_topic(&stats, 1)?;
    kafka::create_topic(&alerts, 1)?;

    let good = shop::events(7, 200);
    let mut values: Vec<String> = good[..100].iter().map(shop::Event::to_json).collect();
    values.push(r#"{"user_id":"oops"}"#.to_owned());
    values.extend(good[100..].iter().map(shop::Event::to_json));
    let produced = kafka::produce(&input, values.iter().map(|v| ("u", v, Some(0))))?;
    let bad_offset = produced.positions[100].1;
    ensure!(
        bad_offset == 100,
        "the bad record landed at offset {bad_offset}"
    );

    let name = "shop-stats";
    // Small batches, so some batches before the bad record succeed.
    let deployment = Deployment::new(name, &runner::guest_wasm("activity-stats")?, &input, &group)
        .batch(25, 5)
        .output(&stats)
        .output(&alerts)
        .config("stats_topic", &stats)
        .config("alerts_topic", &alerts);
    let mut ingesta = RunnerProcess::spawn(&runner::config_toml(&[deployment]))?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(!status.success(), "ingesta exited with {status}:\n{log}");
    let error_line = log
        .lines()
        .find(|l| l.starts_with("error: "))
        .with_context(|| format!("no `error: ` line in the log:\n{log}"))?;
    for needle in [
        &format!("deployment \"{name}\" failed"),
        &format!("{input:?}"),
        "partition 0",
        "offset 100",
        "user_id",
    ] {
        ensure!(
            error_line.contains(needle),
            "the error should contain {needle:?}: {error_line}"
        );
    }

    // Never committed past the bad record...
    let committed = kafka::committed(&group, &input)?;
    ensure!(
        committed[&0].is_none_or(|c| c <= bad_offset),
        "committed {committed:?} passes the bad record at offset {bad_offset}"
    );
    // ...nothing at or after it was emitted, and what was emitted covers
    // the records before it without gaps: the stats windows tile offsets
    // 0..handled, handled is at least the committed offset, and the stats
    // sum to exactly the totals of those events.
    let out = kafka::read_all(&stats, usize::MAX, Duration::from_secs(3))?;
    let mut sum = StatsSum::default();
    let mut windows = BTreeSet::new();
    for m in &out {
        let s: StatsRecord = serde_json::from_str(kafka::value_str(m)?)?;
        ensure!(
            s.source.last_offset < bad_offset,
            "stats were emitted for a batch reaching the bad record: {s:?}"
        );
        windows.insert((s.source.first_offset, s.source.last_offset));
        sum.add(&s);
    }
    let mut handled = 0;
    for (first, last) in windows {
        ensure!(
            first == handled,
            "stats windows leave a gap or overlap at offset {handled}: next window {first}..={last}"
        );
        handled = last + 1;
    }
    let c = committed[&0].unwrap_or(0);
    ensure!(
        handled >= c,
        "offset {c} is committed but stats cover only offsets below {handled}"
    );
    let expected = shop::Expected::compute(&good[..handled as usize], 500.0);
    ensure!(
        sum.totals == expected.totals,
        "stats for offsets 0..{handled} sum to {:?}, expected {:?}",
        sum.totals,
        expected.totals
    );
    println!(
        "committed {committed:?}; {} stats records cover offsets 0..{handled}",
        out.len()
    );
    kafka::delete_topics(&[&input, &stats, &alerts]);
    Ok(())
}
