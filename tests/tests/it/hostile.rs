//! The hostile battery: one hostile tenant per hole, each beside a healthy
//! co-tenant on the same runner process and the real broker. Every case
//! asserts that the runner stays up, that the co-tenant keeps making
//! progress (all its records handled, exactly the outputs expected) and
//! that what the hostile tenant did was refused, waited or dead-lettered
//! with a reason. The co-tenant's throughput beside each hostile case is
//! printed (`co-tenant: ...`) for docs/benchmarks.md; it is not asserted
//! beyond the floor of finishing within the timeout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, Api, State, TENANT_A, TENANT_B};
use ingesta_tests::kafka;
use ingesta_tests::metrics;
use ingesta_tests::runner::{self, RunnerProcess};
use rdkafka::Message;
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
/// Records of the healthy co-tenant per case.
const HEALTHY_RECORDS: usize = 2_000;

/// A runner with `runtime` lines added to `[runtime]` and `tenant_a` lines
/// added to tenant A's table.
fn runner_with(runtime: &str, tenant_a: &str) -> Result<(RunnerProcess, Api)> {
    let port = control::free_port()?;
    let tenant_line = format!("name = {}\n", runner::toml_str(TENANT_A.name));
    let config = format!(
        "[runtime]\n{runtime}\n{}",
        control::config_toml(port, &control::state_prefix(), 8).replacen(
            &tenant_line,
            &format!("{tenant_line}{tenant_a}\n"),
            1
        )
    );
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    Ok((ingesta, api))
}

/// Tenant B's healthy deployment: the fixture forwarding every record of a
/// fresh 4-partition topic to a fresh output topic.
struct Healthy {
    input: String,
    output: String,
}

impl Healthy {
    fn deploy(api: &Api) -> Result<Self> {
        let [input, output] = kafka::fresh_topics(["b-healthy-in", "b-healthy-out"], 4)?;
        control::deploy_module(
            api,
            TENANT_B.token,
            &runner::fixture_wasm("hostile")?,
            json!({
                "name": "healthy", "inputs": [input], "group": kafka::unique("b-healthy"),
                "outputs": [output], "config": { "output_topic": output },
            }),
        )?;
        Ok(Self { input, output })
    }

    /// Produce the co-tenant's records now.
    fn produce(&self) -> Result<Instant> {
        let records: Vec<(String, String)> = (0..HEALTHY_RECORDS)
            .map(|i| (format!("k{i}"), format!("healthy-{i}")))
            .collect();
        let started = Instant::now();
        kafka::produce(
            &self.input,
            records.iter().map(|(k, v)| (k.as_str(), v.as_str(), None)),
        )?;
        Ok(started)
    }

    /// Every record forwarded exactly once, and still running; prints the
    /// co-tenant's rate beside `case`.
    fn check(&self, api: &Api, case: &str, started: Instant) -> Result<()> {
        let out = kafka::read_all(&self.output, HEALTHY_RECORDS, TIMEOUT)?;
        let elapsed = started.elapsed();
        let values: BTreeSet<String> = out
            .iter()
            .filter_map(|m| m.payload().map(|p| String::from_utf8_lossy(p).into_owned()))
            .collect();
        ensure!(
            out.len() == HEALTHY_RECORDS && values.len() == HEALTHY_RECORDS,
            "{case}: the co-tenant forwarded {} records ({} distinct) of {HEALTHY_RECORDS}",
            out.len(),
            values.len()
        );
        let status = api.status(TENANT_B.token, "healthy")?;
        ensure!(
            status.state == State::Running,
            "{case}: the co-tenant is {:?}",
            status.state
        );
        println!(
            "co-tenant: case={case} records={HEALTHY_RECORDS} seconds={:.2} rate={:.0}/s",
            elapsed.as_secs_f64(),
            HEALTHY_RECORDS as f64 / elapsed.as_secs_f64()
        );
        Ok(())
    }
}

/// An instantiation storm: tenant A (quota of 3 live instances) floods its
/// producer with concurrent slow requests while a consumer of its own with
/// `limits.max_instances = 1` reads four partitions. Nothing fails: requests
/// past the quota wait, then are answered 202 or 503 with Retry-After; the
/// one-instance consumer handles every partition by rotation; tenant B's
/// deployment is untouched by A's quota.
#[test]
fn an_instance_storm_waits_within_its_tenants_quota() -> Result<()> {
    let (_ingesta, api) = runner_with("max_instances = 16", "max_instances = 3")?;
    let healthy = Healthy::deploy(&api)?;
    let [storm_out, in4, out4] = kafka::fresh_topics(["a-storm", "a-rot-in", "a-rot-out"], 4)?;
    control::deploy_module(
        &api,
        TENANT_A.token,
        &runner::fixture_wasm("hostile_producer")?,
        json!({
            "name": "storm", "outputs": [storm_out],
            "config": { "output_topic": storm_out },
            "limits": { "deadline_ms": 1500 },
            "ingest": { "max_concurrency": 64 }
        }),
    )?;
    control::deploy_module(
        &api,
        TENANT_A.token,
        &runner::fixture_wasm("hostile")?,
        json!({
            "name": "rotation", "inputs": [in4], "group": kafka::unique("a-rot"),
            "outputs": [out4], "config": { "output_topic": out4 },
            "limits": { "max_instances": 1 },
            "batch": { "max_records": 10 },
        }),
    )?;
    let rotation: Vec<(String, String)> = (0..400)
        .map(|i| (format!("k{i}"), format!("rot-{i}")))
        .collect();
    kafka::produce(
        &in4,
        rotation.iter().map(|(k, v)| (k.as_str(), v.as_str(), None)),
    )?;
    let started = healthy.produce()?;

    // 24 clients, each sending slow requests for ~4 s.
    let answers = std::thread::scope(|s| {
        let clients: Vec<_> = (0..24)
            .map(|_| {
                s.spawn(|| -> Result<Vec<(StatusCode, bool)>> {
                    let until = Instant::now() + Duration::from_secs(4);
                    let mut seen = Vec::new();
                    while Instant::now() < until {
                        let r = api
                            .request(Method::POST, "/v1/ingest/storm", Some(TENANT_A.token))
                            .body("slow:300")
                            .send()?;
                        seen.push((r.status(), r.headers().contains_key("retry-after")));
                    }
                    Ok(seen)
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().expect("client thread"))
            .collect::<Result<Vec<_>>>()
    })?;
    let answers: Vec<_> = answers.into_iter().flatten().collect();
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    for (status, retry_after) in &answers {
        ensure!(
            *status == StatusCode::ACCEPTED
                || (*status == StatusCode::SERVICE_UNAVAILABLE && *retry_after),
            "a storm request was answered {status} (Retry-After: {retry_after}); only 202 or 503 with Retry-After are expected"
        );
    }
    ensure!(accepted > 0, "no storm request was served: {answers:?}");

    healthy.check(&api, "instance storm", started)?;
    let out = kafka::read_all(&out4, rotation.len(), TIMEOUT)?;
    ensure!(
        out.len() == rotation.len(),
        "the one-instance consumer forwarded {} of {} records",
        out.len(),
        rotation.len()
    );
    for name in ["storm", "rotation"] {
        let status = api.status(TENANT_A.token, name)?;
        ensure!(
            status.state == State::Running,
            "{name} is {:?}: {:?}",
            status.state,
            status.reason
        );
    }
    let scrape = metrics::scrape(&api)?;
    let waits = |name: &str, scope: &str| {
        scrape.sum(
            "ingesta_instance_waits_total",
            &[("deployment", name), ("scope", scope)],
        )
    };
    let storm_waits = waits("tenant-a/storm", "tenant");
    let rotation_waits = waits("tenant-a/rotation", "deployment");
    ensure!(
        storm_waits > 0.0 && rotation_waits > 0.0,
        "waits were not counted: storm (tenant quota) {storm_waits}, rotation (its own quota) {rotation_waits}"
    );
    ensure!(
        waits("tenant-b/healthy", "tenant") == 0.0,
        "tenant B waited on tenant A's quota"
    );
    println!(
        "instance storm: {} requests, {accepted} accepted, {storm_waits} waits; rotation waits {rotation_waits}",
        answers.len()
    );
    Ok(())
}
