//! Monitoring, end to end on a runner process and the real broker:
//! - `/metrics` counts exactly what happened: after N records (some of
//!   them poison), records in/out, dead letters, errors by class, batches
//!   and the latency histogram agree with N and with the status API;
//!   consumer lag shows the backlog of a paused deployment and returns to
//!   0 once it drains; librdkafka's statistics arrive; `ingesta top` shows
//!   the same lag;
//! - a guest's log lines come back from the logs API (and `ingesta logs
//!   -f`) in order, cut at the 4096-byte bound, scoped to the tenant; a
//!   noisy guest's lines are dropped and counted, and exactly the kept ones
//!   reach the runner's own (JSON) log.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ingesta_tests::control::{self, Api, TENANT_A, TENANT_B, upload};
use ingesta_tests::kafka;
use ingesta_tests::metrics::{self, Scrape};
use ingesta_tests::runner::{self, RunnerProcess};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A runner with the control plane, ready, and its API.
fn runner(args: &[&str]) -> Result<(RunnerProcess, Api)> {
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 8);
    let mut ingesta = RunnerProcess::spawn_with("serve", &config, args)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    Ok((ingesta, api))
}

/// Uploads the hostile fixture as tenant A and creates a deployment of it
/// with `body`'s fields and a fresh group.
fn deploy_hostile(api: &Api, mut body: Value) -> Result<()> {
    let module = upload(
        api,
        TENANT_A.token,
        std::fs::read(runner::fixture_wasm("hostile")?)?,
    )?;
    body["module"] = module.into();
    body["group"] = kafka::unique("a-grp").into();
    let (status, answer) =
        api.json(Method::POST, "/v1/deployments", Some(TENANT_A.token), &body)?;
    ensure!(
        status == StatusCode::CREATED,
        "create answered {status}: {answer}"
    );
    Ok(())
}

#[test]
fn metrics_count_every_record_lag_drains_and_top_shows_it() -> Result<()> {
    let (mut ingesta, api) = runner(&[])?;
    let [input, out, dead] = kafka::fresh_topics(["a-in", "a-out", "a-dlq"], 3)?;
    deploy_hostile(
        &api,
        json!({
            "name": "stats", "inputs": [input], "outputs": [out],
            "failure": { "dead_letter_topic": dead },
            "config": { "output_topic": out }, "paused": true
        }),
    )?;
    let d = [("deployment", "tenant-a/stats")];

    // A backlog while paused: good records and a few poison ones.
    const GOOD: usize = 3_000;
    const POISON: usize = 4;
    let total = (GOOD + POISON) as f64;
    let values: Vec<String> = (0..GOOD)
        .map(|i| format!("view {i}"))
        .chain((0..POISON).map(|_| "permanent".to_owned()))
        .collect();
    kafka::produce(
        &input,
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.as_str(), None)),
    )?;
    let paused = metrics::wait_for(&api, "showing the paused backlog", TIMEOUT, |s| {
        s.sum("ingesta_consumer_lag", &d) == total
    })?;
    ensure!(
        paused.sum("ingesta_deployment_state", &[d[0], ("state", "paused")]) == 1.0,
        "the deployment is not reported paused"
    );
    ensure!(paused.matching("ingesta_consumer_lag", &d).count() == 3);
    let top = control::cli(api.base(), Some(TENANT_A.token), &["top", "--frames", "1"])?;
    let top_text = String::from_utf8_lossy(&top.stdout);
    ensure!(top.status.success(), "ingesta top failed: {top:?}");
    let row = top_text
        .lines()
        .find(|l| l.starts_with("tenant-a/stats"))
        .with_context(|| format!("no row for the deployment in:\n{top_text}"))?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    ensure!(
        cells[1] == "paused" && cells.last() == Some(&"3004"),
        "top row {row:?} should show paused with lag 3004"
    );

    // Resume: everything drains.
    let resumed = control::cli(api.base(), Some(TENANT_A.token), &["resume", "stats"])?;
    ensure!(resumed.status.success(), "resume: {resumed:?}");
    let outputs = kafka::read_all(&out, GOOD, TIMEOUT)?;
    let dead_letters = kafka::read_all(&dead, POISON, TIMEOUT)?;
    ensure!(outputs.len() == GOOD && dead_letters.len() == POISON);
    let drained = metrics::wait_for(&api, "drained to lag 0", TIMEOUT, |s| {
        s.has("ingesta_consumer_lag", &d)
            && s.sum("ingesta_consumer_lag", &d) == 0.0
            && s.sum("ingesta_records_out_total", &d) == total
    })?;

    let expect = |name: &str, labels: &[(&str, &str)], want: f64| -> Result<()> {
        let got = drained.sum(name, labels);
        ensure!(got == want, "{name}{labels:?} = {got}, expected {want}");
        Ok(())
    };
    expect("ingesta_records_in_total", &d, total)?;
    expect("ingesta_records_out_total", &d, total)?;
    expect("ingesta_dead_lettered_total", &d, POISON as f64)?;
    expect(
        "ingesta_handler_errors_total",
        &[d[0], ("class", "permanent")],
        POISON as f64,
    )?;
    expect("ingesta_deadline_interruptions_total", &d, 0.0)?;
    expect(
        "ingesta_deployment_state",
        &[d[0], ("state", "running")],
        1.0,
    )?;
    let batches = drained.sum("ingesta_batches_total", &d);
    expect("ingesta_batch_records_count", &d, batches)?;
    expect("ingesta_batch_records_sum", &d, total)?;
    let calls = drained.sum("ingesta_handler_seconds_count", &d);
    ensure!(
        calls >= batches && calls > POISON as f64,
        "{calls} calls timed for {batches} batches and {POISON} failed calls"
    );
    ensure!(drained.sum("ingesta_bytes_in_total", &d) > 0.0);
    ensure!(drained.sum("ingesta_instance_memory_bytes", &d) > 0.0);
    ensure!(drained.sum("ingesta_instances", &d) >= 1.0);
    ensure!(
        drained.matching("ingesta_records_in_total", &d).count() == 3,
        "records in are counted per input partition"
    );

    // The status API reports the same counters.
    let (_, status) = api.call(
        Method::GET,
        "/v1/deployments/stats",
        Some(TENANT_A.token),
        None,
    )?;
    ensure!(
        status["counters"]["records_in"] == json!(GOOD + POISON)
            && status["counters"]["dead_lettered"] == json!(POISON)
            && status["counters"]["errors"] == json!(POISON),
        "status counters disagree with the metrics: {}",
        status["counters"]
    );

    // librdkafka's statistics come every 5 s.
    let stats = metrics::wait_for(&api, "reporting Kafka client statistics", TIMEOUT, |s| {
        s.has(
            "ingesta_kafka_producer_broker_rtt_seconds",
            &[("stat", "p99")],
        ) && s.has("ingesta_kafka_consumer_broker_rtt_seconds", &d)
    })?;
    // Every family in a real scrape is one the definitions declare (the
    // dashboard test checks panels against the same list).
    let known = ingesta_runtime::telemetry::metrics::exported_names();
    for s in &stats.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| s.name.strip_suffix(suffix))
            .filter(|base| known.iter().any(|k| k == base))
            .unwrap_or(&s.name);
        ensure!(
            known.iter().any(|k| k == family),
            "{} is exported but not declared",
            s.name
        );
    }
    // Another tenant's deployments are not in its top; the operator's
    // metrics scrape has them all (checked above), the tenant's top not.
    let other = control::cli(api.base(), Some(TENANT_B.token), &["top", "--frames", "1"])?;
    ensure!(!String::from_utf8_lossy(&other.stdout).contains("tenant-a/stats"));

    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");
    kafka::delete_topics(&[&input, &out, &dead]);
    Ok(())
}

/// `GET /v1/deployments/{name}/logs` as lines of JSON.
fn logs(api: &Api, token: &str, path_and_query: &str) -> Result<(StatusCode, Vec<Value>)> {
    let response = api
        .request(Method::GET, path_and_query, Some(token))
        .send()?;
    let status = response.status();
    let text = response.text()?;
    if !status.is_success() {
        return Ok((status, vec![]));
    }
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("not NDJSON: {text}"))?;
    Ok((status, lines))
}

#[test]
fn guest_logs_come_back_in_order_bounded_and_rate_limited() -> Result<()> {
    const RATE: u64 = 20;
    const BURST: u64 = 50;
    const NOISE: u64 = 5_000;
    let (mut ingesta, api) = runner(&["--log-format", "json"])?;
    let [input, out] = kafka::fresh_topics(["a-logs-in", "a-logs-out"], 1)?;
    deploy_hostile(
        &api,
        json!({
            "name": "chatty", "inputs": [input], "outputs": [out],
            "config": { "output_topic": out },
            "limits": { "log_lines_per_second": RATE, "log_burst_lines": BURST }
        }),
    )?;

    // Follow the log with the CLI from the start.
    let mut follower = Command::new(runner::ingesta_bin()?)
        .args(["logs", "--follow", "chatty"])
        .env("INGESTA_API", api.base())
        .env("INGESTA_TOKEN", TENANT_A.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let followed = BufReader::new(follower.stdout.take().context("no stdout")?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in followed.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Within the burst: five numbered lines, then one far over the bound.
    kafka::produce(&input, [("k", "log:5", None), ("k", "longlog:10000", None)])?;
    kafka::read_all(&out, 2, TIMEOUT)?;
    let (status, lines) = logs(&api, TENANT_A.token, "/v1/deployments/chatty/logs")?;
    ensure!(status == StatusCode::OK, "logs answered {status}");
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    let expected: Vec<String> = (1..=5)
        .map(|i| format!("hostile: log line {i} of 5"))
        .collect();
    ensure!(
        messages.len() == 6 && messages[..5] == expected,
        "log lines out of order or missing: {messages:?}"
    );
    let long = &lines[5];
    ensure!(
        long["message"]
            .as_str()
            .is_some_and(|m| m.len() == 4096 && m.starts_with("hostile: long line xxx"))
            && long["truncated"] == true
            && long["level"] == "info"
            && long["stream"] == "log",
        "the long line must be cut at 4096 bytes and marked: {}",
        json!({"len": long["message"].as_str().map(str::len), "truncated": long["truncated"]})
    );
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    ensure!(seqs == (1..=6).collect::<Vec<_>>(), "seq numbers {seqs:?}");
    // Paging: after the third, with a limit.
    let (_, page) = logs(
        &api,
        TENANT_A.token,
        "/v1/deployments/chatty/logs?after=3&limit=2",
    )?;
    let page: Vec<u64> = page.iter().filter_map(|l| l["seq"].as_u64()).collect();
    ensure!(page == [5, 6], "after=3&limit=2 gave {page:?}");

    // The follower printed the same lines, in order.
    let mut seen = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < 6 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => bail!("ingesta logs -f printed only {seen:#?}"),
        }
    }
    for (i, line) in seen[..5].iter().enumerate() {
        ensure!(
            line.ends_with(&format!("INFO  [log] hostile: log line {} of 5", i + 1)),
            "followed line {i}: {line:?}"
        );
    }
    ensure!(seen[5].ends_with("[truncated]"), "{:?}", seen[5]);

    // Another tenant cannot read it.
    let (status, _) = logs(&api, TENANT_B.token, "/v1/deployments/chatty/logs")?;
    ensure!(status == StatusCode::NOT_FOUND, "tenant B got {status}");

    // A noisy guest: far more lines than the budget.
    let started = Instant::now();
    kafka::produce(&input, [("k", format!("log:{NOISE}").as_str(), None)])?;
    kafka::read_all(&out, 3, TIMEOUT)?;
    let d = [("deployment", "tenant-a/chatty")];
    let counted = metrics::wait_for(&api, "counting every guest line", TIMEOUT, |s: &Scrape| {
        s.sum("ingesta_guest_log_lines_total", &d) + s.sum("ingesta_guest_log_dropped_total", &d)
            == (6 + NOISE) as f64
    })?;
    let kept = counted.sum("ingesta_guest_log_lines_total", &d) as u64;
    let elapsed = started.elapsed().as_secs_f64();
    let budget = BURST + (RATE as f64 * (elapsed + 1.0)).ceil() as u64;
    ensure!(
        kept <= 6 + budget,
        "{kept} lines kept, more than the burst and rate allow ({budget} after the first 6)"
    );
    let (_, lines) = logs(
        &api,
        TENANT_A.token,
        "/v1/deployments/chatty/logs?limit=1000",
    )?;
    ensure!(
        lines.iter().any(|l| l["stream"] == "ingesta"
            && l["message"].as_str().is_some_and(|m| m.contains("dropped"))),
        "the log must say that lines were dropped"
    );

    // Exactly the kept lines reached the runner's own log, as JSON with
    // the deployment as a field. The follower is still connected: the
    // runner must end its stream and stop anyway.
    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");
    let mut guest_lines = 0;
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        if v["target"] == "ingesta::guest" && v["stream"].is_string() {
            ensure!(v["deployment"] == "tenant-a/chatty", "{line}");
            guest_lines += 1;
        }
    }
    ensure!(
        guest_lines == kept,
        "{guest_lines} guest lines in the runner's log, {kept} kept"
    );
    let deadline = Instant::now() + TIMEOUT;
    let ended = loop {
        if let Some(status) = follower.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = follower.kill();
            bail!("ingesta logs -f did not end when the runner stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(ended.success(), "ingesta logs -f ended with {ended}");
    kafka::delete_topics(&[&input, &out]);
    Ok(())
}

/// With `control.metrics_token_sha256` set, `/metrics` needs a token: the
/// scrape token (or the operator's) reads every series, a tenant's token
/// only its own deployments' series and none of the runner's.
#[test]
fn a_scrape_token_closes_metrics_and_tenants_see_only_their_own() -> Result<()> {
    const SCRAPE_TOKEN: &str = "token-of-prometheus";
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 8).replacen(
        "[control]\n",
        &format!(
            "[control]\nmetrics_token_sha256 = \"{}\"\n",
            ingesta_runtime::auth::hash_token(SCRAPE_TOKEN)
        ),
        1,
    );
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let hostile = runner::fixture_wasm("hostile")?;
    for (tenant, name) in [(&TENANT_A, "dep-a"), (&TENANT_B, "dep-b")] {
        let p = tenant.prefix;
        let [input, output] = kafka::fresh_topics([&format!("{p}in"), &format!("{p}out")], 1)?;
        control::deploy_module(
            &api,
            tenant.token,
            &hostile,
            json!({ "name": name, "inputs": [input], "group": kafka::unique(&format!("{p}grp")),
                "outputs": [output], "config": { "output_topic": output } }),
        )?;
    }
    let scrape = |token: Option<&str>| -> Result<(StatusCode, String)> {
        let r = api.request(Method::GET, "/metrics", token).send()?;
        Ok((r.status(), r.text()?))
    };
    for token in [None, Some("not-a-token")] {
        let (status, _) = scrape(token)?;
        ensure!(status == StatusCode::UNAUTHORIZED, "{token:?}: {status}");
    }
    for token in [SCRAPE_TOKEN, control::OPERATOR_TOKEN] {
        let (status, text) = scrape(Some(token))?;
        ensure!(status == StatusCode::OK, "{token}: {status}");
        ensure!(
            text.contains("tenant-a/dep-a") && text.contains("tenant-b/dep-b"),
            "{token} should see every deployment"
        );
    }
    let (status, text) = scrape(Some(TENANT_A.token))?;
    ensure!(status == StatusCode::OK, "tenant A: {status}");
    ensure!(
        text.contains("tenant-a/dep-a") && !text.contains("dep-b"),
        "tenant A must see only its own deployment:\n{text}"
    );
    let (_, all) = scrape(Some(SCRAPE_TOKEN))?;
    let runner_only: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .filter(|l| !text.contains(*l))
        .collect();
    ensure!(
        !runner_only.is_empty(),
        "the runner's own families should be missing from a tenant's scrape"
    );
    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");
    Ok(())
}
