//! Stopping and starting a runner, on the real broker:
//! - SIGTERM with 20 deployments, three of them in calls that do not
//!   return before the drain timeout: every lane drains at once, so the
//!   runner exits within one drain timeout (plus 5 s), and everything
//!   that was handled is committed;
//! - until a runner has applied the state it found in Kafka, a create or
//!   a change answers 503 with `Retry-After`, and the deployment that
//!   exists is untouched (it was overwritten and resumed before).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, Api, State, TENANT_A};
use ingesta_tests::fleet::Member;
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, Deployment, RunnerProcess, toml_str};
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

#[test]
fn sigterm_with_20_deployments_some_in_long_calls_exits_within_one_drain() -> Result<()> {
    const DRAIN_MS: u64 = 4000;
    let [quick_in, slow_in, output] =
        kafka::fresh_topics(["drain-quick", "drain-slow", "drain-out"], 2)?;
    let hostile = runner::fixture_wasm("hostile")?;
    let mut deployments = Vec::new();
    for i in 0..20 {
        let (input, name) = if i < 3 {
            (&slow_in, format!("slow{i}"))
        } else {
            (&quick_in, format!("quick{i}"))
        };
        let d = Deployment::new(&name, &hostile, input, &kafka::unique(&name))
            .output(&output)
            .config("output_topic", &output)
            .batch(1, 5)
            .set("limits", "deadline_ms", 60_000);
        deployments.push(d);
    }
    let config = format!(
        "{}\n[runtime]\ndrain_timeout_ms = {DRAIN_MS}\n",
        runner::config_toml(&deployments)
    );
    // The slow deployments' input has a record whose call runs for 60 s.
    let records: Vec<(String, String, Option<i32>)> = (0..40)
        .map(|i| (format!("k{i}"), format!("v{i}"), Some(i % 2)))
        .collect();
    kafka::produce(&quick_in, records.clone())?;
    let mut slow = records.clone();
    slow.insert(20, ("slow".into(), "slow:60000".into(), Some(0)));
    let produced = kafka::produce(&slow_in, slow)?;
    let slow_offset = produced.positions[20].1;

    let mut ingesta = RunnerProcess::spawn(&config)?;
    for d in &deployments[3..] {
        ingesta.wait_until_committed_to_end(&d.group, &quick_in, TIMEOUT)?;
    }
    // The slow ones are in their long call once partition 1 is committed.
    for d in &deployments[..3] {
        let watcher = kafka::Watcher::new(&slow_in, Some(&d.group))?;
        let end = watcher.high_watermarks()?[&1];
        let deadline = Instant::now() + TIMEOUT;
        while watcher.committed()?[&1] != Some(end) {
            ensure!(
                Instant::now() < deadline,
                "{} did not handle partition 1",
                d.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Give the slow calls time to start.
    std::thread::sleep(Duration::from_secs(1));
    let signalled = Instant::now();
    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    let took = signalled.elapsed();
    eprintln!("sigterm with 20 deployments: exited in {took:?} (drain timeout {DRAIN_MS} ms)");
    ensure!(
        status.success(),
        "ingesta exited with {status}; log:\n{log}"
    );
    ensure!(
        took < Duration::from_millis(DRAIN_MS) + Duration::from_secs(5),
        "exit took {took:?}, more than the drain timeout plus 5 s; log:\n{log}"
    );
    // What was handled is committed: the quick ones to the end, the slow
    // ones up to their long call on partition 0 and to the end of
    // partition 1.
    for d in &deployments[3..] {
        let committed = kafka::committed(&d.group, &quick_in)?;
        ensure!(
            kafka::is_committed_to_end(&committed, &kafka::high_watermarks(&quick_in)?),
            "{}: committed {committed:?}",
            d.name
        );
    }
    for d in &deployments[..3] {
        let committed = kafka::committed(&d.group, &slow_in)?;
        ensure!(
            committed[&0] == Some(slow_offset),
            "{}: partition 0 committed {:?}, the long call is at {slow_offset}",
            d.name,
            committed[&0]
        );
    }
    kafka::delete_topics(&[&quick_in, &slow_in, &output]);
    Ok(())
}

#[test]
fn changes_during_recovery_get_503_and_leave_the_deployment_untouched() -> Result<()> {
    let prefix = control::state_prefix();
    let first = Member::start(&prefix, "", TIMEOUT)?;
    let [input, output] = kafka::fresh_topics(["a-recov-in", "a-recov-out"], 1)?;
    let token = TENANT_A.token;
    let spec = |tag: &str, paused: bool| {
        json!({
            "name": "recov",
            "inputs": [input],
            "group": kafka::unique("a-recov"),
            "outputs": [output],
            "paused": paused,
            "config": { "output_topic": output, "tag": tag },
        })
    };
    let module = control::deploy_module(
        &first.api,
        token,
        &runner::fixture_wasm("hostile")?,
        spec("v1", true),
    )?
    .module;
    // A few running deployments make recovery take a while.
    for i in 0..5 {
        let mut body = spec("other", false);
        body["name"] = format!("other{i}").into();
        body["module"] = module.clone().into();
        let (status, answer) =
            first
                .api
                .json(Method::POST, "/v1/deployments", Some(token), &body)?;
        ensure!(
            status == StatusCode::CREATED,
            "create other{i}: {status} {answer}"
        );
    }
    first.stop(TIMEOUT)?;

    // A second runner with an empty compile cache: recovering means
    // compiling the module, so the window before it is ready is seconds.
    let cache = tempfile::tempdir()?;
    let port = control::free_port()?;
    let config = format!(
        "{}\n[runtime]\ncompile_cache_dir = {}\n",
        control::config_toml(port, &prefix, 32),
        toml_str(&cache.path().to_string_lossy())
    );
    let mut second = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    api.wait_healthy(TIMEOUT)?;
    let mut body = spec("v2", false);
    body["module"] = module.clone().into();
    let mut refused = 0;
    let deadline = Instant::now() + TIMEOUT;
    while !api.is_ready() {
        ensure!(Instant::now() < deadline, "not ready in time");
        // Each is harmless once the runner is ready (409: exists; 404: no
        // such deployment; it is paused already), so a request that races
        // with readiness changes nothing.
        let create = api
            .request(Method::POST, "/v1/deployments", Some(token))
            .json(&body)
            .send()?;
        let delete = api
            .request(Method::DELETE, "/v1/deployments/nope", Some(token))
            .send()?;
        let pause = api
            .request(Method::POST, "/v1/deployments/recov/pause", Some(token))
            .send()?;
        for r in [create, delete, pause] {
            let (status, retry) = (r.status(), r.headers().get("retry-after").cloned());
            if api.is_ready() && status != StatusCode::SERVICE_UNAVAILABLE {
                // Ready meanwhile: this one may have been answered for real.
                continue;
            }
            ensure!(
                status == StatusCode::SERVICE_UNAVAILABLE && retry.is_some(),
                "a change before recovery was answered {status} (retry-after {retry:?}): {}",
                r.text().unwrap_or_default()
            );
            refused += 1;
        }
    }
    eprintln!("changes refused during recovery: {refused}");
    ensure!(
        refused > 0,
        "the runner was ready before any change was sent"
    );
    let status = control::wait_status(&api, token, "recov", "recovered", TIMEOUT, |_| true)?;
    let tag = status
        .settings
        .as_ref()
        .and_then(|s| s.config.get("tag"))
        .map(|t| t.0.as_str());
    ensure!(
        status.revision == 1 && status.state == State::Paused && tag == Some("v1"),
        "the deployment was changed during recovery: {status:?}"
    );
    second.sigterm()?;
    second.wait(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
