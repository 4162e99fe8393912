//! The happy path end to end: real broker, real `ingesta serve`, real guests.
//!
//! Needs the broker (`deploy/kafka/kafka.sh start`), the runner
//! (`make build`) and the guests (`make guests`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ingesta_tests::kafka::{self, Produced};
use ingesta_tests::runner::{self, Deployment, RunnerProcess};
use ingesta_tests::shop::{self, AlertRecord, StatsRecord, StatsSum};
use rdkafka::Message;

/// Bounds every wait; generous because CI machines are slow, never a
/// performance assertion.
const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn activity_stats_handles_10k_events_over_four_partitions() -> Result<()> {
    let input = kafka::unique("user-activity");
    let stats = kafka::unique("stats");
    let alerts = kafka::unique("alerts");
    let group = kafka::unique("grp");
    kafka::create_topic(&input, 4)?;
    kafka::create_topic(&stats, 4)?;
    kafka::create_topic(&alerts, 2)?;

    let events = shop::events(42, 10_000);
    let expected = shop::Expected::compute(&events, 500.0);
    let produced = kafka::produce(&input, events.iter().map(|e| (e.key(), e.to_json(), None)))?;
    ensure!(
        produced.ranges.len() == 4,
        "events keyed by user should land on all 4 partitions: {:?}",
        produced.ranges
    );

    let deployment = Deployment::new(
        "activity-stats",
        &runner::guest_wasm("activity-stats")?,
        &input,
        &group,
    )
    .output(&stats)
    .output(&alerts)
    .batch(500, 5)
    .config("stats_topic", &stats)
    .config("alerts_topic", &alerts)
    .config("alert_purchase_over", 500);
    let mut ingesta = RunnerProcess::spawn(&runner::config_toml(&[deployment]))?;

    // Offsets are committed only after the outputs were acknowledged, so
    // once the group is at the end every stats record and alert is written.
    let committed = ingesta.wait_until_committed_to_end(&group, &input, TIMEOUT)?;
    let ends = kafka::high_watermarks(&input)?;
    for (p, end) in &ends {
        ensure!(
            committed[p] == Some(*end),
            "partition {p}: committed {:?}, end {end}",
            committed[p]
        );
    }

    check_stats(&kafka::read_to_end(&stats, TIMEOUT)?, &input, &expected)?;
    check_alerts(
        &kafka::read_to_end(&alerts, TIMEOUT)?,
        &input,
        &expected,
        &produced,
    )?;

    // A clean stop: drain, commit, exit 0.
    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(
        status.success(),
        "ingesta exited with {status}; log:\n{log}"
    );
    ensure!(
        log.contains("shutdown requested") && log.contains("all deployments stopped cleanly"),
        "the log should say it drained and stopped cleanly:\n{log}"
    );
    ensure!(
        kafka::committed(&group, &input)? == committed,
        "committed offsets moved after the end was reached"
    );
    kafka::delete_topics(&[&input, &stats, &alerts]);
    Ok(())
}

/// Every stats record is well-formed and their sum per product equals the
/// expected totals exactly (the guest sums revenue in whole cents).
fn check_stats(
    records: &[rdkafka::message::OwnedMessage],
    input: &str,
    expected: &shop::Expected,
) -> Result<()> {
    let mut sum = StatsSum::default();
    for m in records {
        let value = kafka::value_str(m)?;
        let s: StatsRecord =
            serde_json::from_str(value).with_context(|| format!("bad stats record {value}"))?;
        let key = m.key().map(String::from_utf8_lossy);
        ensure!(
            key.as_deref() == Some(s.key().as_str()),
            "stats record key {key:?} is not its product id: {value}"
        );
        ensure!(
            s.source.topic == input && s.source.first_offset <= s.source.last_offset,
            "bad source in {value}"
        );
        ensure!(
            s.product_id.and_then(|id| expected.names.get(&id)) == Some(&s.product_name),
            "unexpected product in {value}"
        );
        sum.add(&s);
    }
    ensure!(
        sum.duplicates == 0,
        "{} stats records repeat a batch window in a run without failures",
        sum.duplicates
    );
    let products: BTreeSet<_> = sum.totals.keys().collect();
    let wanted: BTreeSet<_> = expected.totals.keys().collect();
    ensure!(
        products == wanted,
        "products with stats {products:?} differ from those with events {wanted:?}"
    );
    for (id, want) in &expected.totals {
        let got = &sum.totals[id];
        ensure!(
            got == want,
            "product {id} ({}): stats sum to {got:?} over {} records, expected {want:?}",
            expected.names[id],
            sum.records[id]
        );
    }
    Ok(())
}

/// The alerts are exactly the expected purchases, each once, pointing at
/// the right input record.
fn check_alerts(
    records: &[rdkafka::message::OwnedMessage],
    input: &str,
    expected: &shop::Expected,
    produced: &Produced,
) -> Result<()> {
    let mut got: BTreeMap<(i32, i64), AlertRecord> = BTreeMap::new();
    for m in records {
        let value = kafka::value_str(m)?;
        let a: AlertRecord =
            serde_json::from_str(value).with_context(|| format!("bad alert {value}"))?;
        let key = m.key().map(String::from_utf8_lossy);
        ensure!(
            key.as_deref() == Some(a.user_id.to_string().as_str()),
            "alert key {key:?} is not its user id: {value}"
        );
        ensure!(
            a.kind == "large_purchase" && a.threshold == 500.0 && a.source.topic == input,
            "unexpected alert {value}"
        );
        let at = (a.source.partition, a.source.offset);
        ensure!(got.insert(at, a).is_none(), "duplicate alert for {at:?}");
    }
    ensure!(
        !expected.alerts.is_empty(),
        "the test data should contain large purchases"
    );
    let mut want = BTreeMap::new();
    for x in &expected.alerts {
        want.insert(produced.positions[x.index], x);
    }
    let got_at: BTreeSet<_> = got.keys().collect();
    let want_at: BTreeSet<_> = want.keys().collect();
    ensure!(
        got_at == want_at,
        "alerts at {got_at:?}, expected at {want_at:?}"
    );
    for (at, x) in want {
        let a = &got[&at];
        ensure!(
            (a.user_id, a.product_id, &a.product_name, a.price)
                == (x.user_id, Some(x.product_id), &x.product_name, x.price),
            "alert at {at:?} is {a:?}, expected {x:?}"
        );
    }
    Ok(())
}

#[test]
fn sigterm_drains_and_commits_before_exit() -> Result<()> {
    const RECORDS: usize = 30_000;
    let input = kafka::unique("drain-in");
    let output = kafka::unique("drain-out");
    let group = kafka::unique("grp");
    kafka::create_topic(&input, 4)?;
    kafka::create_topic(&output, 4)?;
    let values: Vec<String> = (0..RECORDS).map(|i| format!("rec-{i:06}")).collect();
    let produced = kafka::produce(
        &input,
        values.iter().map(|v| (v.as_str(), v.as_str(), None)),
    )?;

    let deployment = Deployment::new("identity", &runner::guest_wasm("identity")?, &input, &group)
        .output(&output)
        .batch(50, 5)
        .config("output_topic", &output);
    let mut ingesta = RunnerProcess::spawn(&runner::config_toml(&[deployment]))?;

    // Let it get going, then ask it to stop.
    let watcher = kafka::Watcher::new(&output, None)?;
    let deadline = std::time::Instant::now() + TIMEOUT;
    while watcher.total()? < (RECORDS / 10) as i64 {
        ensure!(
            std::time::Instant::now() < deadline,
            "no progress; log:\n{}",
            ingesta.log()
        );
        ensure!(
            ingesta.try_status()?.is_none(),
            "ingesta exited:\n{}",
            ingesta.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(
        status.success(),
        "ingesta exited with {status}; log:\n{log}"
    );
    ensure!(
        log.contains("all deployments stopped cleanly"),
        "the log should say it stopped cleanly:\n{log}"
    );

    // Drained and committed: the committed offsets cover exactly what was
    // output — nothing handled is left uncommitted (it would be handled
    // again after a restart), and nothing committed is missing.
    let committed = kafka::committed(&group, &input)?;
    let out = kafka::read_to_end(&output, TIMEOUT)?;
    let out_values: BTreeSet<&str> = out.iter().map(kafka::value_str).collect::<Result<_>>()?;
    ensure!(
        out_values.len() == out.len(),
        "{} duplicate outputs in a clean run",
        out.len() - out_values.len()
    );
    let mut below_commit = 0;
    for (i, v) in values.iter().enumerate() {
        let (p, o) = produced.positions[i];
        let is_committed = committed[&p].is_some_and(|c| o < c);
        below_commit += usize::from(is_committed);
        ensure!(
            is_committed == out_values.contains(v.as_str()),
            "record {v} at {p}/{o}: committed={is_committed} but output={}; committed offsets {committed:?}",
            !is_committed
        );
    }
    ensure!(below_commit > 0, "nothing was committed before exit");
    println!(
        "sigterm after {} of {RECORDS} records: committed {below_commit}, {committed:?}",
        out.len()
    );
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}

/// Outputs Kafka did not take for a passing reason are published again,
/// and the deployment goes on: here the shared output producer lands in
/// librdkafka's fatal state (as after some broker restarts) while a batch's
/// outputs wait in its queue (`linger.ms` 1000). The runner replaces the
/// client, the lane publishes that batch's outputs again, every input ends
/// up in the output topic and committed, and the deployment never fails.
/// In process, to reach the producer.
#[test]
fn outputs_refused_by_a_fatal_producer_are_published_again() -> Result<()> {
    use ingesta_runtime::deployment::RunState;
    use ingesta_runtime::runner::Runner;
    use std::time::Instant;

    let [input, output] = kafka::fresh_topics(["refused-in", "refused-out"], 1)?;
    let group = kafka::unique("refused");
    let d = Deployment::new("refused", &runner::guest_wasm("identity")?, &input, &group)
        .output(&output)
        .config("output_topic", &output)
        .batch(10, 10);
    let toml = format!(
        "{}[kafka.producer]\n\"linger.ms\" = 1000\n",
        runner::config_toml(&[d])
    );
    let config = ingesta_runtime::config::Config::parse(&toml).map_err(anyhow::Error::msg)?;
    let values = |range: std::ops::Range<usize>| -> Vec<(String, String, Option<i32>)> {
        range
            .map(|i| (format!("k{i}"), format!("v{i}"), Some(0)))
            .collect()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let runner = Runner::start(&config)?;
        let deployment = &runner.deployments()[0];
        let state = || deployment.state();
        let result = async {
            kafka::produce(&input, values(0..10))?;
            // The first batch's outputs are published (queued, lingering).
            let started = Instant::now();
            while deployment.metrics().records_out.get() == 0 {
                ensure!(
                    started.elapsed() < TIMEOUT,
                    "nothing published; state {:?}",
                    state()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            runner
                .producers()
                .outputs
                .inject_fatal_error("injected by the test");
            kafka::produce(&input, values(10..20))?;
            let committed = tokio::task::spawn_blocking({
                let (group, input) = (group.clone(), input.clone());
                move || kafka::wait_until_committed_to_end(&group, &input, TIMEOUT)
            })
            .await?;
            ensure!(
                state() == RunState::Running,
                "the deployment is {:?}",
                state()
            );
            committed.context("inputs not committed")
        }
        .await;
        runner.stop().await?;
        result.map(drop)
    })?;

    let seen: BTreeSet<String> = kafka::read_to_end(&output, TIMEOUT)?
        .iter()
        .map(|m| kafka::value_str(m).map(str::to_owned))
        .collect::<Result<_>>()?;
    let expected: BTreeSet<String> = (0..20).map(|i| format!("v{i}")).collect();
    ensure!(seen == expected, "the output topic holds {seen:?}");
    Ok(())
}
