//! The hostile battery: one hostile tenant per hole, each beside a healthy
//! co-tenant on the same runner process and the real broker. Every case
//! asserts that the runner stays up, that the co-tenant keeps making
//! progress (all its records handled, exactly the outputs expected) and
//! that what the hostile tenant did was refused, waited or dead-lettered
//! with a reason. The co-tenant's throughput beside each hostile case is
//! printed (`co-tenant: ...`) for docs/benchmarks.md; it is not asserted
//! beyond the floor of finishing within the timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, Api, State, TENANT_A, TENANT_B};
use ingesta_tests::kafka;
use ingesta_tests::metrics;
use ingesta_tests::runner::{self, RunnerProcess};
use rdkafka::Message;
use rdkafka::message::Headers;
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
/// Records of the healthy co-tenant per case.
const HEALTHY_RECORDS: usize = 2_000;

/// A runner of its own.
struct Runner {
    process: RunnerProcess,
    api: Api,
    /// Its state topics' prefix.
    state_prefix: String,
}

/// A runner with `runtime` lines added to `[runtime]`, `control` lines to
/// `[control]` and `tenant_a` lines to tenant A's table.
fn runner_with(runtime: &str, control_lines: &str, tenant_a: &str) -> Result<Runner> {
    runner_on(
        &control::state_prefix(),
        runtime,
        control_lines,
        tenant_a,
        |c| c,
    )
}

/// [`runner_with`] on the state topics under `state_prefix`, its config
/// text passed through `edit` last.
fn runner_on(
    state_prefix: &str,
    runtime: &str,
    control_lines: &str,
    tenant_a: &str,
    edit: impl Fn(String) -> String,
) -> Result<Runner> {
    let port = control::free_port()?;
    let state_prefix = state_prefix.to_owned();
    let tenant_line = format!("name = {}\n", runner::toml_str(TENANT_A.name));
    let config = edit(format!(
        "[runtime]\n{runtime}\n{}",
        control::config_toml(port, &state_prefix, 8)
            .replacen(&tenant_line, &format!("{tenant_line}{tenant_a}\n"), 1)
            .replacen("[control]\n", &format!("[control]\n{control_lines}\n"), 1)
    ));
    let mut process = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    process.wait_ready(&api, TIMEOUT)?;
    Ok(Runner {
        process,
        api,
        state_prefix,
    })
}

/// Tenant B's healthy deployment: the fixture forwarding every record of a
/// fresh 4-partition topic to a fresh output topic.
struct Healthy {
    input: String,
    output: String,
    /// Rounds produced so far.
    rounds: usize,
    /// Its rate alone on the runner (records/s), once measured.
    alone: Option<f64>,
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
        Ok(Self {
            input,
            output,
            rounds: 0,
            alone: None,
        })
    }

    /// One round: [`HEALTHY_RECORDS`] records produced now, every one
    /// forwarded exactly once, the deployment still running. Prints the
    /// round's rate beside `case` (and its ratio to the rate alone).
    fn round(&mut self, api: &Api, case: &str) -> Result<f64> {
        self.rounds += 1;
        let r = self.rounds;
        let records: Vec<(String, String)> = (0..HEALTHY_RECORDS)
            .map(|i| (format!("k{i}"), format!("healthy-{r}-{i}")))
            .collect();
        let started = Instant::now();
        kafka::produce(
            &self.input,
            records.iter().map(|(k, v)| (k.as_str(), v.as_str(), None)),
        )?;
        let expected = HEALTHY_RECORDS * r;
        let out = kafka::read_all(&self.output, expected, TIMEOUT)?;
        let rate = HEALTHY_RECORDS as f64 / started.elapsed().as_secs_f64();
        let values: BTreeSet<Vec<u8>> = out
            .iter()
            .filter_map(|m| m.payload().map(<[u8]>::to_vec))
            .collect();
        ensure!(
            out.len() == expected && values.len() == expected,
            "{case}: the co-tenant forwarded {} records ({} distinct); {expected} expected",
            out.len(),
            values.len()
        );
        let status = api.status(TENANT_B.token, "healthy")?;
        ensure!(
            status.state == State::Running,
            "{case}: the co-tenant is {:?}: {:?}",
            status.state,
            status.reason
        );
        let ratio = self.alone.map_or(1.0, |alone| rate / alone);
        println!(
            "co-tenant: case={case} records={HEALTHY_RECORDS} rate={rate:.0}/s ratio={ratio:.2}"
        );
        Ok(rate)
    }
}

/// Runs `hostile` on a thread of its own while `healthy` runs here, then
/// tells it to stop (`stop` turns true) and returns both results.
fn beside<T: Send>(
    hostile: impl FnOnce(&AtomicBool) -> Result<T> + Send,
    healthy: impl FnOnce() -> Result<f64>,
) -> Result<T> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let hostile = s.spawn(|| hostile(&stop));
        let healthy = healthy();
        stop.store(true, Ordering::Relaxed);
        let hostile = hostile.join().expect("hostile thread");
        healthy?;
        hostile
    })
}

/// The dead letters of the hostile deployment so far, once there are
/// `expected`: (class, message) by value.
fn dead_letters(topic: &str, expected: usize) -> Result<BTreeMap<String, (String, String)>> {
    let letters = kafka::read_all(topic, expected, TIMEOUT)?;
    let header = |m: &rdkafka::message::OwnedMessage, name: &str| {
        m.headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let by_value: BTreeMap<String, (String, String)> = letters
        .iter()
        .map(|m| {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default());
            let value: String = value.chars().take(40).collect();
            (
                value,
                (
                    header(m, "ingesta.error.class"),
                    header(m, "ingesta.error.message"),
                ),
            )
        })
        .collect();
    ensure!(
        letters.len() == expected && by_value.len() == expected,
        "{} dead letters ({} distinct), {expected} expected: {by_value:?}",
        letters.len(),
        by_value.len()
    );
    Ok(by_value)
}

/// Every hole but the instance storm, one case after another on one
/// runner, each beside tenant B's healthy deployment: a call that spins
/// and one that blocks in a WASI sleep (deadline), aliased outboxes
/// (output bytes as produced), a memory bomb and several memories (memory
/// cap, growing and at instantiation), an oversized
/// failure (dead letters fit), an upload storm, a scrape storm, slow HTTP
/// clients, and a forged state record.
#[test]
fn the_hostile_battery() -> Result<()> {
    let runner = runner_with(
        "",
        "header_read_timeout_ms = 1000\ncompile_queue_wait_ms = 200",
        "max_modules = 4",
    )?;
    let api = &runner.api;
    let mut healthy = Healthy::deploy(api)?;
    healthy.alone = Some(healthy.round(api, "alone")?);

    let [input, output, dlq] =
        kafka::fresh_topics(["a-hostile-in", "a-hostile-out", "a-hostile-dlq"], 4)?;
    let hostile = control::deploy_module(
        api,
        TENANT_A.token,
        &runner::fixture_wasm("hostile")?,
        json!({
            "name": "hostile", "inputs": [input], "group": kafka::unique("a-hostile"),
            "outputs": [output], "config": { "output_topic": output },
            "limits": { "deadline_ms": 300, "memory_mib": 16, "max_output_bytes": 1_048_576 },
            "failure": { "dead_letter_topic": dlq, "max_attempts": 1 },
            "batch": { "max_records": 4 },
        }),
    )?;
    let mut dead = 0;
    // Kafka-borne cases: hostile records produced, the co-tenant's round
    // beside them, then every hostile record dead-lettered with its reason.
    let cases: [(&str, Vec<String>, &str, &str); 4] = [
        (
            "spin and block",
            (0..6)
                .flat_map(|i| [format!("loop#{i}"), format!("sleep:600000#{i}")])
                .collect(),
            "trap:deadline",
            "deadline of 300 ms",
        ),
        (
            "aliased outboxes",
            (0..2).map(|i| format!("alias:60000#{i}")).collect(),
            "permanent",
            "limits.max_output_bytes",
        ),
        (
            "memory bomb",
            (0..2).map(|i| format!("bomb#{i}")).collect(),
            "trap:out-of-memory",
            "memory limit",
        ),
        (
            "oversized dead letter",
            vec![format!("bigerror:921600#{}", "p".repeat(900_000))],
            "permanent",
            "bytes cut",
        ),
    ];
    for (case, records, class, needle) in cases {
        kafka::produce(
            &input,
            records
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("h{i}"), v.as_str(), None)),
        )?;
        healthy.round(api, case)?;
        dead += records.len();
        let letters = dead_letters(&dlq, dead)?;
        for r in &records {
            let key: String = r.chars().take(40).collect();
            let (got_class, message) = letters
                .get(&key)
                .with_context(|| format!("{case}: {key} was not dead-lettered"))?;
            ensure!(
                got_class == class && message.contains(needle),
                "{case}: {key} dead-lettered as {got_class} ({message}); expected {class} saying {needle:?}"
            );
        }
    }
    ensure!(
        kafka::read_to_end(&output, Duration::from_secs(2))?.is_empty(),
        "the hostile deployment published outputs of records it failed"
    );
    let status = api.status(TENANT_A.token, "hostile")?;
    ensure!(
        status.state == State::Running,
        "the hostile deployment stops: {status:?}"
    );

    // Several memories: a consumer whose two extra memories of 12 MiB are
    // each under its 16 MiB cap but together over it is not run, and says
    // which limit it meets; the co-tenant goes on.
    let [memories_in] = kafka::fresh_topics(["a-memories-in"], 1)?;
    let memories = control::deploy_bytes(
        api,
        TENANT_A.token,
        several_memories(&[192, 192])?,
        json!({
            "name": "memories", "inputs": [memories_in], "group": kafka::unique("a-memories"),
            "limits": { "memory_mib": 16 },
        }),
    )?;
    kafka::produce(&memories_in, [("m", "anything", None)])?;
    let failed = control::wait_status(api, TENANT_A.token, "memories", "failed", TIMEOUT, |s| {
        s.state == State::Failed
    })?;
    let reason = failed.reason.unwrap_or_default();
    ensure!(
        reason.contains("limits.memory_mib") && reason.contains("memories and tables"),
        "several memories: {reason}"
    );
    healthy.round(api, "several memories")?;
    // The tenant removes it (and its module, so the module quota below
    // counts as before); a failed deployment left behind would make the
    // runner's exit status say so.
    for path in [
        "/v1/deployments/memories".to_owned(),
        format!("/v1/modules/{}", memories.module),
    ] {
        let (status, body) = api.call(Method::DELETE, &path, Some(TENANT_A.token), None)?;
        ensure!(status.is_success(), "DELETE {path}: {status} {body}");
    }

    // A module past a structural limit is refused before it compiles.
    let functions: String = "(func) ".repeat(200_001);
    let sprawling = wat::parse_str(format!("(component (core module {functions}))"))?;
    let (status, body) = api.call(
        Method::POST,
        "/v1/modules",
        Some(TENANT_A.token),
        Some(sprawling),
    )?;
    ensure!(
        status == StatusCode::BAD_REQUEST
            && control::error_of(&body).contains("more than 200000 functions"),
        "a module of 200,001 functions: {status} {body}"
    );

    // An upload storm: six new modules (Go, ~5 MB each) at once. Compiles
    // are one at a time and an upload waits 200 ms for its turn: some are
    // told to come back.
    let wasm = std::fs::read(runner::built_wasm("go", "echo")?)?;
    let versions: Vec<Vec<u8>> = (0..6)
        .scan(wasm, |w, _| {
            *w = control::second_version(w.clone());
            Some(w.clone())
        })
        .collect();
    let uploads = beside(
        |_| {
            std::thread::scope(|s| {
                let calls: Vec<_> = versions
                    .iter()
                    .map(|v| {
                        s.spawn(|| {
                            api.call(
                                Method::POST,
                                "/v1/modules",
                                Some(TENANT_A.token),
                                Some(v.clone()),
                            )
                        })
                    })
                    .collect();
                calls
                    .into_iter()
                    .map(|c| c.join().expect("upload thread"))
                    .collect::<Result<Vec<_>>>()
            })
        },
        || healthy.round(api, "upload storm"),
    )?;
    // Each is stored, told to come back (the compile queue), or refused
    // by tenant A's module quota (when the uploads arrive spread out
    // enough to be compiled in turn, the quota is reached first).
    let over_quota = |status: StatusCode, body: &serde_json::Value| {
        status == StatusCode::FORBIDDEN && control::error_of(body).contains("maximum of 4 modules")
    };
    for (status, body) in &uploads {
        ensure!(
            status.is_success()
                || *status == StatusCode::TOO_MANY_REQUESTS
                || over_quota(*status, body),
            "an upload was answered {status}: {body}"
        );
    }
    let stored = uploads.iter().filter(|(s, _)| s.is_success()).count();
    ensure!(
        stored > 0 && stored < uploads.len(),
        "{stored} of {} concurrent uploads were stored; the compile queue or the quota should have turned some away",
        uploads.len()
    );
    // Tenant A may own four modules: the fixture and what the storm
    // stored count; the next new one past four is refused.
    let mut answers = Vec::new();
    for v in &versions {
        let (status, body) = api.call(
            Method::POST,
            "/v1/modules",
            Some(TENANT_A.token),
            Some(v.clone()),
        )?;
        answers.push((status, body));
    }
    ensure!(
        answers.iter().any(|(s, b)| over_quota(*s, b)),
        "no upload hit tenant A's module quota: {answers:?}"
    );

    // A scrape storm: eight clients scraping /metrics back to back.
    let scrapes = beside(
        |stop| {
            std::thread::scope(|s| {
                let clients: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| -> Result<usize> {
                            let mut n = 0;
                            while !stop.load(Ordering::Relaxed) {
                                metrics::scrape(api)?;
                                n += 1;
                            }
                            Ok(n)
                        })
                    })
                    .collect();
                clients
                    .into_iter()
                    .map(|c| c.join().expect("scrape thread"))
                    .sum::<Result<usize>>()
            })
        },
        || healthy.round(api, "scrape storm"),
    )?;
    ensure!(scrapes > 0, "no scrape was answered");

    // Slow clients: sixteen connections that never finish their headers
    // are cut off after header_read_timeout_ms while the API serves.
    let cut = beside(
        |_| -> Result<usize> {
            let mut stalled: Vec<TcpStream> = (0..16)
                .map(|_| -> Result<TcpStream> {
                    let mut c = TcpStream::connect(api.base().trim_start_matches("http://"))?;
                    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")?;
                    c.set_read_timeout(Some(Duration::from_secs(10)))?;
                    Ok(c)
                })
                .collect::<Result<_>>()?;
            let mut closed = 0;
            for c in &mut stalled {
                let mut buf = [0u8; 256];
                // EOF or a reset: the server hung up on it.
                if matches!(c.read(&mut buf), Ok(0) | Err(_))
                    || matches!(c.read(&mut buf), Ok(0) | Err(_))
                {
                    closed += 1;
                }
            }
            Ok(closed)
        },
        || healthy.round(api, "slow clients"),
    )?;
    ensure!(
        cut == 16,
        "only {cut} of 16 stalled connections were cut off"
    );

    // A forged state record: tenant A's deployment writing to tenant B's
    // output, written straight to the state topic. It is not run.
    let forged_spec: ingesta_runtime::deployment::Spec = serde_json::from_value(json!({
        "module": hostile.module, "inputs": [input], "group": kafka::unique("a-forged"),
        "outputs": [healthy.output], "config": { "output_topic": healthy.output },
    }))?;
    let record = ingesta_runtime::deployment::DeploymentRecord::create(
        TENANT_A.name,
        "forged".into(),
        forged_spec,
        false,
        "someone with write access to the state topic",
    );
    let forged = serde_json::to_string(&record)?;
    kafka::produce(
        &format!("{}deployments", runner.state_prefix),
        [(format!("{}/forged", TENANT_A.name), forged.as_str(), None)],
    )?;
    let refused = control::wait_status(api, TENANT_A.token, "forged", "refused", TIMEOUT, |s| {
        s.state == State::Failed
    })?;
    let reason = refused.reason.unwrap_or_default();
    ensure!(
        reason.contains("may not run on this runner") && reason.contains(&healthy.output),
        "the forged record's reason: {reason}"
    );
    kafka::produce(&input, [("f", "forward-me", None)])?;
    healthy.round(api, "forged state record")?;

    let mut process = runner.process;
    ensure!(
        process.try_status()?.is_none(),
        "the runner exited:\n{}",
        process.log()
    );
    process.sigterm()?;
    let (exit, log) = process.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");

    // Narrowed grants: the operator restarts the runner with tenant A
    // allowed to read one literal topic only. Its deployment reading
    // another topic is not run, and says why; tenant B's goes on.
    let narrowed = runner_on(&runner.state_prefix, "", "", "", |config| {
        config.replacen(
            &format!("read_topics = [{}]", runner::toml_str(TENANT_A.prefix)),
            "read_topics = [{ literal = \"a-only-this\" }]",
            1,
        )
    })?;
    let api = &narrowed.api;
    let stopped = control::wait_status(api, TENANT_A.token, "hostile", "failed", TIMEOUT, |s| {
        s.state == State::Failed
    })?;
    let reason = stopped.reason.unwrap_or_default();
    ensure!(
        reason.contains(&input) && reason.contains("literal \"a-only-this\""),
        "narrowed grants: {reason}"
    );
    healthy.round(api, "after narrowed grants")?;
    Ok(())
}

/// An instantiation storm: tenant A (quota of 3 live instances) floods its
/// producer with concurrent slow requests while a consumer of its own with
/// `limits.max_instances = 1` reads four partitions. Nothing fails: requests
/// past the quota wait, then are answered 202 or 503 with Retry-After; the
/// one-instance consumer handles every partition by rotation; tenant B's
/// deployment is untouched by A's quota.
#[test]
fn an_instance_storm_waits_within_its_tenants_quota() -> Result<()> {
    let runner = runner_with("max_instances = 16", "", "max_instances = 3")?;
    let api = runner.api;
    let mut healthy = Healthy::deploy(&api)?;
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
    // 24 clients, each sending slow requests for ~4 s, beside a round of
    // the co-tenant.
    let storm = |_: &AtomicBool| {
        std::thread::scope(|s| {
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
        })
    };
    let answers = beside(storm, || healthy.round(&api, "instance storm"))?;
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

/// A consumer component (every export traps) with, beside its own module,
/// one more core module per entry of `pages`, each instantiated with a
/// linear memory of that many pages (64 KiB a page). The SDKs never make
/// one; a tenant writing wasm by hand can.
fn several_memories(pages: &[u32]) -> Result<Vec<u8>> {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))?;
    let world = resolve.select_world(&[package], Some("consumer"))?;
    let mut core =
        wit_component::dummy_module(&resolve, world, wit_parser::ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(
        &mut core,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )?;
    let mut component = wit_component::ComponentEncoder::default()
        .module(&core)?
        .validate(true)
        .encode()?;
    // A component's sections may come in any order: append a core module
    // and an instance of it per memory, numbered after the core modules
    // already there (those at the top level, not inside nested ones).
    let mut modules = 0u32;
    let mut depth = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(&component) {
        match payload? {
            wasmparser::Payload::ModuleSection { .. } => {
                modules += u32::from(depth == 0);
                depth += 1;
            }
            wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    for (i, p) in (modules..).zip(pages) {
        // `wat` encodes without validating, so the instance may name a
        // module index that exists only once appended.
        let extra = wat::parse_str(format!(
            "(component (core module (memory {p})) (core instance (instantiate {i})))"
        ))?;
        component.extend_from_slice(&extra[8..]);
    }
    Ok(component)
}
