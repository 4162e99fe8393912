//! Whatever stops a partition or a deployment is said, on the real broker:
//! - a partition standing still with records waiting (here a handler call
//!   that takes seconds) is reported as stalled after
//!   `runtime.stall_timeout_ms`: a status note, `ingesta_partition_stalled`
//!   and one warning naming deployment, topic and partition; the report
//!   clears when it moves again;
//! - outputs Kafka keeps refusing for a passing reason (the broker
//!   throttles the runner's producer until its records time out) put the
//!   deployment in `degraded` with the reason and count republishes;
//!   pausing then does not fail it; once Kafka takes the outputs it is
//!   `running` again and every input has its output;
//! - a lane that panics (a runner bug, injected in process) fails the
//!   deployment with the panic's message, naming the partition.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, State, TENANT_A};
use ingesta_tests::fleet::Member;
use ingesta_tests::kafka;
use ingesta_tests::metrics;
use ingesta_tests::runner::{self, Deployment};
use rdkafka::Message;
use reqwest::Method;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn a_partition_without_progress_is_reported_stalled_and_cleared() -> Result<()> {
    let mut member = Member::start(
        &control::state_prefix(),
        "[runtime]\nstall_timeout_ms = 1500\n",
        TIMEOUT,
    )?;
    let api = &member.api;
    let token = TENANT_A.token;
    let [input, output] = kafka::fresh_topics(["a-stall-in", "a-stall-out"], 1)?;
    let group = kafka::unique("a-stall");
    control::deploy_module(
        api,
        token,
        &runner::fixture_wasm("hostile")?,
        json!({
            "name": "stall",
            "inputs": [input],
            "group": group,
            "outputs": [output],
            "batch": { "max_records": 1 },
            "limits": { "deadline_ms": 30000 },
            "config": { "output_topic": output },
        }),
    )?;
    // The second record's call runs for 8 s: the partition has records
    // waiting and makes no progress.
    kafka::produce(
        &input,
        [("k0", "v0"), ("k1", "slow:8000"), ("k2", "v2")]
            .into_iter()
            .map(|(k, v)| (k, v, Some(0))),
    )?;
    let stalled = control::wait_status(api, token, "stall", "stalled", TIMEOUT, |s| {
        !s.notes.stalled.is_empty()
    })?;
    let note = &stalled.notes.stalled[0];
    ensure!(
        note.topic == input && note.partition == 0,
        "the note names the partition: {note:?}"
    );
    ensure!(
        note.handled_to == Some(1),
        "the first record was handled, the second not: {note:?}"
    );
    let scrape = metrics::scrape(api)?;
    ensure!(
        scrape.sum(
            "ingesta_partition_stalled",
            &[("deployment", "tenant-a/stall"), ("partition", "0")]
        ) == 1.0,
        "ingesta_partition_stalled is not 1"
    );
    let cli = control::cli(api.base(), Some(token), &["status", "stall"])?;
    let printed = String::from_utf8_lossy(&cli.stdout);
    ensure!(
        cli.status.success()
            && printed.lines().any(|l| l.starts_with("stalled")
                && l.contains(&input)
                && l.contains("partition 0")),
        "`ingesta status` shows the stall:\n{printed}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    // The call returns: the stall clears.
    member
        .process
        .wait_until_committed_to_end(&group, &input, TIMEOUT)?;
    control::wait_status(api, token, "stall", "no longer stalled", TIMEOUT, |s| {
        s.notes.stalled.is_empty()
    })?;
    let log = member.process.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("partition stalled"))
        .collect();
    ensure!(
        warnings.len() == 1
            && warnings[0].contains("tenant-a/stall")
            && warnings[0].contains(&input)
            && warnings[0].contains("partition=0"),
        "one warning naming deployment, topic and partition: {warnings:?}"
    );
    ensure!(
        log.contains("partition is making progress again"),
        "the recovery is logged"
    );
    let scrape = metrics::scrape(api)?;
    ensure!(
        scrape.sum(
            "ingesta_partition_stalled",
            &[("deployment", "tenant-a/stall"), ("partition", "0")]
        ) == 0.0,
        "ingesta_partition_stalled is still set"
    );
    member.stop(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}

#[test]
fn outputs_kafka_keeps_refusing_degrade_and_recover_and_pausing_does_not_fail() -> Result<()> {
    // The runner's output producer gets a client id of its own, which the
    // broker throttles to a byte a second: records wait in librdkafka past
    // their `message.timeout.ms` (2 s here, 300 s by default) and are
    // reported as not delivered, a passing refusal.
    let client_id = kafka::unique("degr-producer");
    kafka::set_produce_quota(&client_id, Some(1))?;
    let member = Member::start(
        &control::state_prefix(),
        &format!(
            "[kafka.producer]\n\"message.timeout.ms\" = 2000\n\"client.id\" = \"{client_id}\"\n"
        ),
        TIMEOUT,
    );
    let member = match member {
        Ok(m) => m,
        Err(e) => {
            kafka::set_produce_quota(&client_id, None)?;
            return Err(e);
        }
    };
    let api = &member.api;
    let token = TENANT_A.token;
    let [input, output] = kafka::fresh_topics(["a-degr-in", "a-degr-out"], 1)?;
    let group = kafka::unique("a-degr");
    control::deploy_module(
        api,
        token,
        &runner::fixture_wasm("hostile")?,
        json!({
            "name": "degr",
            "inputs": [input],
            "group": group,
            "outputs": [output],
            "batch": { "max_records": 2 },
            "failure": { "backoff_initial_ms": 100, "backoff_max_ms": 500 },
            "config": { "output_topic": output },
        }),
    )?;
    let records = |r: std::ops::Range<usize>| {
        r.map(|i| (format!("k{i}"), format!("v{i}"), Some(0)))
            .collect::<Vec<_>>()
    };
    // The first request may get through (the broker throttles after it);
    // the ones after it wait, time out and are published again.
    let mut produced = 0;
    let deadline = Instant::now() + TIMEOUT;
    let degraded = loop {
        kafka::produce(&input, records(produced..produced + 2))?;
        produced += 2;
        let status = api.status(token, "degr")?;
        if status.state == State::Degraded {
            break status;
        }
        ensure!(
            Instant::now() < deadline,
            "not degraded within {TIMEOUT:?}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let reason = degraded.reason.clone().unwrap_or_default();
    ensure!(
        reason.contains(&output) && reason.contains("published again"),
        "the reason names the partition and what happens: {reason}"
    );
    let note = &degraded.notes.degraded[0];
    ensure!(
        note.topic == input && note.partition == 0,
        "the note names the input partition: {degraded:?}"
    );
    metrics::wait_for(api, "republishing", TIMEOUT, |s| {
        s.sum(
            "ingesta_output_republishes_total",
            &[("deployment", "tenant-a/degr")],
        ) >= 1.0
    })?;

    // Pausing during the outage: paused, not failed.
    let (status, body) = api.call(
        Method::POST,
        "/v1/deployments/degr/pause",
        Some(token),
        None,
    )?;
    ensure!(status.is_success(), "pause: {status} {body}");
    let paused = control::wait_status(api, token, "degr", "paused", TIMEOUT, |s| {
        s.state != State::Running && s.state != State::Degraded
    })?;
    ensure!(
        paused.state == State::Paused,
        "pausing during an outage must not fail the deployment: {paused:?}"
    );
    let (status, body) = api.call(
        Method::POST,
        "/v1/deployments/degr/resume",
        Some(token),
        None,
    )?;
    ensure!(status.is_success(), "resume: {status} {body}");
    kafka::produce(&input, records(produced..produced + 10))?;
    produced += 10;

    // Kafka takes the outputs again: running by itself, nothing lost.
    kafka::set_produce_quota(&client_id, None)?;
    let watcher = kafka::Watcher::new(&input, Some(&group))?;
    let deadline = Instant::now() + TIMEOUT;
    while !kafka::is_committed_to_end(&watcher.committed()?, &watcher.high_watermarks()?) {
        ensure!(
            Instant::now() < deadline,
            "not committed to the end in time"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    control::wait_status(api, token, "degr", "running again", TIMEOUT, |s| {
        s.state == State::Running && s.notes.degraded.is_empty()
    })?;
    let seen: BTreeSet<String> = kafka::read_all(&output, produced, TIMEOUT)?
        .iter()
        .filter_map(|m| m.key().map(|k| String::from_utf8_lossy(k).into_owned()))
        .collect();
    let expected: BTreeSet<String> = (0..produced).map(|i| format!("k{i}")).collect();
    ensure!(
        expected.is_subset(&seen),
        "missing outputs: {:?}",
        expected.difference(&seen).collect::<Vec<_>>()
    );
    member.stop(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}

/// In process, to reach the lane: a panic there (a runner bug) fails the
/// deployment with the panic's message and the partition, and the runner
/// reports it when stopped; nothing is committed past what was output.
#[test]
fn a_lane_that_panics_fails_the_deployment_with_the_reason() -> Result<()> {
    use ingesta_runtime::deployment::RunState;
    use ingesta_runtime::runner::Runner;
    use ingesta_runtime::supervisor::Running;

    let [input, output] = kafka::fresh_topics(["panic-in", "panic-out"], 1)?;
    let group = kafka::unique("panic");
    let d = Deployment::new("panicky", &runner::guest_wasm("identity")?, &input, &group)
        .output(&output)
        .config("output_topic", &output)
        .batch(10, 5);
    let config = ingesta_runtime::config::Config::parse(&runner::config_toml(&[d]))
        .map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let values = |r: std::ops::Range<usize>| {
        r.map(|i| (format!("k{i}"), format!("v{i}"), Some(0)))
            .collect::<Vec<_>>()
    };
    let stopped = rt.block_on(async {
        let runner = Runner::start(&config)?;
        let Running::Consumer(deployment) = runner.deployments()[0].clone() else {
            anyhow::bail!("the identity deployment is not a consumer");
        };
        let result = async {
            kafka::produce(&input, values(0..10))?;
            let started = Instant::now();
            while deployment.metrics().offsets_stored.get() == 0 {
                ensure!(started.elapsed() < TIMEOUT, "nothing handled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            deployment.inject_lane_panic();
            kafka::produce(&input, values(10..20))?;
            let finished = tokio::time::timeout(TIMEOUT, deployment.finished())
                .await
                .context("the deployment did not stop after its lane panicked")?;
            let RunState::Failed(reason) = finished else {
                anyhow::bail!("the deployment is {finished:?}, not failed");
            };
            ensure!(
                reason.contains("panicked")
                    && reason.contains("injected by a test")
                    && reason.contains(&input)
                    && reason.contains("partition 0"),
                "the reason names the panic and the partition: {reason}"
            );
            Ok(())
        }
        .await;
        let stopped = runner.stop().await;
        result.map(|()| stopped)
    })?;
    let err = stopped
        .err()
        .context("stopping a failed runner must fail")?;
    ensure!(
        format!("{err:#}").contains("panicked"),
        "the runner's exit error names the failure: {err:#}"
    );
    // What was committed was output.
    let committed = kafka::committed(&group, &input)?[&0].unwrap_or(0);
    let out = kafka::read_all(&output, committed as usize, Duration::from_secs(10))?;
    ensure!(
        committed >= 10 && out.len() as i64 >= committed,
        "committed {committed} with {} outputs",
        out.len()
    );
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
