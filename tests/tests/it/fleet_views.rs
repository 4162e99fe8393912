//! Fleet-wide views, on the real broker with three runner processes
//! sharing one control plane (reporting every 500 ms, as the test kit's
//! config sets `control.report_interval_ms`):
//! - `GET /v1/deployments/{name}` on any runner lists every runner with
//!   its state and partitions, names each partition's runner, and sums
//!   the counters over runners (each runner's own `/metrics` agree);
//! - `/metrics` says which runner runs which partition
//!   (`ingesta_partition_assigned`, every partition once over the fleet);
//! - the guest log reads fleet-wide on any runner: lines logged on all
//!   three runners, each naming its runner;
//! - an ingest request works on any runner;
//! - a runner that stops is no longer listed;
//! - two live runners given one `runner_id` with `static_membership`:
//!   one of them fails the deployment, naming the setting to change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, DeploymentStatus, TENANT_A};
use ingesta_tests::fleet::Member;
use ingesta_tests::{kafka, metrics, runner, shop};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 6;
const PER_PARTITION: usize = 5;
const RUNNERS: [&str; 3] = ["view-1", "view-2", "view-3"];

/// The runners' names in a status, and which partitions each lists.
fn listed(s: &DeploymentStatus) -> BTreeMap<String, Vec<i32>> {
    s.runners
        .iter()
        .map(|r| {
            (
                r.runner.clone(),
                r.partitions.iter().map(|p| p.partition).collect(),
            )
        })
        .collect()
}

/// Whether every runner is listed, running, with at least one partition
/// and every partition listed once.
fn spread(s: &DeploymentStatus) -> bool {
    let runners = listed(s);
    let all: Vec<i32> = runners.values().flatten().copied().collect();
    let distinct: BTreeSet<i32> = all.iter().copied().collect();
    runners.len() == RUNNERS.len()
        && runners.values().all(|p| !p.is_empty())
        && s.runners.iter().all(|r| r.state.as_str() == "running")
        && all.len() == PARTITIONS as usize
        && distinct.len() == PARTITIONS as usize
}

#[test]
fn any_runner_answers_for_the_whole_fleet() -> Result<()> {
    let prefix = control::state_prefix();
    let mut members = RUNNERS
        .iter()
        .map(|id| {
            Member::start(
                &prefix,
                &format!("[runtime]\nrunner_id = \"{id}\"\n"),
                TIMEOUT,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let a = TENANT_A.token;
    let [input, output] = kafka::fresh_topics(["a-views-in", "a-views-out"], PARTITIONS)?;
    control::deploy_module(
        &members[0].api,
        a,
        &runner::fixture_wasm("hostile")?,
        json!({
            "name": "views", "inputs": [input], "group": kafka::unique("a-views"),
            "outputs": [output], "config": { "output_topic": output },
        }),
    )?;
    // Once every runner has joined and reported, any of them shows the
    // partitions spread over all three.
    for m in &members {
        control::wait_status(
            &m.api,
            a,
            "views",
            "spread over three runners",
            TIMEOUT,
            spread,
        )?;
    }

    // Each record logs one line on the runner that consumes it.
    let records: Vec<(String, String, Option<i32>)> = (0..PARTITIONS)
        .flat_map(|p| {
            (0..PER_PARTITION).map(move |i| (format!("k{p}-{i}"), "log:1".to_owned(), Some(p)))
        })
        .collect();
    kafka::produce(
        &input,
        records.iter().map(|(k, v, p)| (k.as_str(), v.as_str(), *p)),
    )?;
    let total = records.len() as u64;
    let done = |s: &DeploymentStatus| {
        s.total_lag() == Some(0)
            && s.runners.len() == RUNNERS.len()
            && s.runners.iter().map(|r| r.counters.records_in).sum::<u64>() >= total
    };
    let status = control::wait_status(&members[1].api, a, "views", "all handled", TIMEOUT, done)?;
    ensure!(
        spread(&status),
        "still spread after the records: {status:?}"
    );

    // Counters: the sum of every runner's, and each runner's what its own
    // /metrics says (nothing moves any more, but a report may be one
    // interval old: read until they agree).
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        let s = control::wait_status(&members[1].api, a, "views", "read", TIMEOUT, |_| true)?;
        let mut own = BTreeMap::new();
        for (m, id) in members.iter().zip(RUNNERS) {
            let scrape = metrics::scrape(&m.api)?;
            own.insert(
                id.to_owned(),
                scrape.sum(
                    "ingesta_records_in_total",
                    &[("deployment", "tenant-a/views")],
                ) as u64,
            );
        }
        let reported: BTreeMap<String, u64> = s
            .runners
            .iter()
            .map(|r| (r.runner.clone(), r.counters.records_in))
            .collect();
        if reported == own {
            break s;
        }
        ensure!(
            Instant::now() < deadline,
            "status never agreed with the runners' /metrics: {reported:?} vs {own:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let summed: u64 = status.runners.iter().map(|r| r.counters.records_in).sum();
    ensure!(
        status.counters.records_in == summed && summed >= total,
        "counters are summed over runners: {} vs {summed} (at least {total} handled)",
        status.counters.records_in
    );
    ensure!(
        status.runners[0].runner == RUNNERS[1] && status.runners[0].reported_ms.is_none(),
        "the answering runner comes first, live: {:?}",
        status.runners[0]
    );

    // Each partition is named with the runner that lists it, and /metrics
    // on each runner names the same partitions with its id.
    let by_runner = listed(&status);
    for p in &status.partitions {
        let named = p
            .runner
            .as_deref()
            .context("a partition without a runner")?;
        ensure!(
            by_runner[named].contains(&p.partition),
            "partition {} named with {named}, which lists {:?}",
            p.partition,
            by_runner[named]
        );
    }
    for (m, id) in members.iter().zip(RUNNERS) {
        let scrape = metrics::scrape(&m.api)?;
        let mut assigned: Vec<i32> = scrape
            .matching(
                "ingesta_partition_assigned",
                &[("deployment", "tenant-a/views")],
            )
            .map(|s| {
                ensure!(
                    s.labels["runner"] == id,
                    "another runner's series on {id}: {s:?}"
                );
                Ok(s.labels["partition"].parse::<i32>()?)
            })
            .collect::<Result<_>>()?;
        assigned.sort_unstable();
        ensure!(
            assigned == by_runner[id],
            "{id}'s /metrics assigns {assigned:?}, status lists {:?}",
            by_runner[id]
        );
    }

    // The guest log on one runner has every runner's lines.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let lines = log_lines(&members[2].api)?;
        let logged: Vec<&Value> = lines.iter().filter(|l| l["stream"] == "log").collect();
        let from: BTreeSet<&str> = logged.iter().filter_map(|l| l["runner"].as_str()).collect();
        if logged.len() >= records.len() && from.len() == RUNNERS.len() {
            eprintln!(
                "guest log on {}: {} lines from {from:?}",
                RUNNERS[2],
                logged.len()
            );
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the guest log on {} never showed every runner's lines: {} lines from {from:?}",
            RUNNERS[2],
            logged.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Ingest through every runner.
    let [events] = kafka::fresh_topics(["a-views-events"], 1)?;
    control::deploy_module(
        &members[0].api,
        a,
        &runner::guest_wasm("shop-ingest")?,
        json!({ "name": "views-ingest", "outputs": [events], "config": { "topic": events } }),
    )?;
    let sent = shop::numbered_events(11, RUNNERS.len());
    for (m, event) in members.iter().zip(&sent) {
        control::wait_status(&m.api, a, "views-ingest", "running", TIMEOUT, |s| {
            s.state.as_str() == "running"
        })?;
        let (status, body) = m.api.call(
            Method::POST,
            "/v1/ingest/views-ingest",
            Some(a),
            Some(event.to_json().into_bytes()),
        )?;
        ensure!(
            status == StatusCode::ACCEPTED,
            "ingest through the runner on port {}: {status} {body}",
            m.port
        );
    }
    ensure!(
        kafka::total_records(&events)? == RUNNERS.len() as i64,
        "one record per request, through any runner"
    );

    // A runner that stops is no longer listed.
    let gone = members.pop().context("three members")?;
    gone.stop(TIMEOUT)?;
    let after = control::wait_status(&members[0].api, a, "views", "two runners", TIMEOUT, |s| {
        s.runners.len() == 2 && s.runners.iter().all(|r| r.runner != RUNNERS[2])
    })?;
    ensure!(
        after.runners.iter().all(|r| r.runner != RUNNERS[2]),
        "{after:?}"
    );
    for m in members {
        m.stop(TIMEOUT)?;
    }
    Ok(())
}

/// The deployment's guest log on the runner behind `api`, as JSON lines.
fn log_lines(api: &control::Api) -> Result<Vec<Value>> {
    let response = api
        .request(
            Method::GET,
            "/v1/deployments/views/logs?limit=1000",
            Some(TENANT_A.token),
        )
        .send()?;
    ensure!(
        response.status().is_success(),
        "logs: {}",
        response.status()
    );
    response
        .text()?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

#[test]
fn two_live_runners_with_one_static_id_fail_naming_it() -> Result<()> {
    let prefix = control::state_prefix();
    let same = "[runtime]\nrunner_id = \"twin\"\nstatic_membership = true\n";
    let first = Member::start(&prefix, same, TIMEOUT)?;
    let a = TENANT_A.token;
    let [input, output] = kafka::fresh_topics(["a-twin-in", "a-twin-out"], 2)?;
    control::deploy_module(
        &first.api,
        a,
        &runner::guest_wasm("identity")?,
        json!({
            "name": "twin", "inputs": [input], "group": kafka::unique("a-twin"),
            "outputs": [output], "config": { "output_topic": output },
        }),
    )?;
    control::wait_status(&first.api, a, "twin", "running", TIMEOUT, |s| {
        s.state.as_str() == "running" && s.runners.first().is_some_and(|r| !r.partitions.is_empty())
    })?;
    // The second member with the same group.instance.id fences one of the
    // two; that runner's deployment fails, saying what to change.
    let second = Member::start(&prefix, same, TIMEOUT)?;
    let deadline = Instant::now() + TIMEOUT;
    let reason = loop {
        let failed = [&first, &second].into_iter().find_map(|m| {
            let s = m.api.status(a, "twin").ok()?;
            (s.state.as_str() == "failed").then(|| s.reason.unwrap_or_default())
        });
        if let Some(r) = failed {
            break r;
        }
        ensure!(
            Instant::now() < deadline,
            "neither runner noticed the other used its static member id"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    ensure!(
        reason.contains("runtime.runner_id") && reason.contains("static member id"),
        "the failure names the setting to change: {reason}"
    );
    eprintln!("two runners with one static id: {reason}");
    first.stop(TIMEOUT).ok();
    second.stop(TIMEOUT).ok();
    Ok(())
}
