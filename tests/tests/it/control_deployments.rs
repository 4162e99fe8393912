//! The control API's deployment routes, end to end on runner processes and
//! the real broker:
//! - every route refuses a missing or wrong token; another tenant's
//!   deployment answers 404 like a missing one; topics, groups and modules
//!   outside the caller's grants are refused naming the offender; a module
//!   in use cannot be deleted;
//! - deploy (CLI, uploading the file) → records flow; a new module version
//!   mid-stream of 10,000 records leaves no record without an output and
//!   switches each partition exactly once, at a batch boundary; rollback,
//!   pause/resume and replay do what they say; status reports lag;
//! - a restarted runner recovers the deployment from Kafka and resumes
//!   from the committed offsets; a second runner sees the same state;
//! - a deployment failed on a poison record (no dead-letter topic) is
//!   recovered with CLI flags alone: `ingesta update --dead-letter` keeps
//!   the rest of each section, `--set` reaches any field, bad paths and
//!   unknown fields are refused by name; its dead letters are read back
//!   through `GET .../dead-letters` and `ingesta dlq ls|show`, by its own
//!   tenant only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{
    self, Api, DeploymentStatus, OPERATOR_TOKEN, State, TENANT_A, TENANT_B, error_of,
    second_version, tag_of, upload,
};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, RunnerProcess};
use rdkafka::message::{Message, OwnedMessage};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);

fn total_lag(status: &DeploymentStatus) -> i64 {
    status.total_lag().unwrap_or(-1)
}

/// Polls `GET /v1/deployments/{name}` until `done` holds for it.
fn wait_status(
    api: &Api,
    token: &str,
    name: &str,
    what: &str,
    done: impl Fn(&DeploymentStatus) -> bool,
) -> Result<DeploymentStatus> {
    control::wait_status(api, token, name, what, TIMEOUT, done)
}

#[test]
fn deployment_routes_authenticate_check_grants_and_scope_by_tenant() -> Result<()> {
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 8);
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let (a, b) = (TENANT_A.token, TENANT_B.token);
    let [a_in, a_out, b_in] = kafka::fresh_topics(["a-in", "a-out", "b-in"], 1)?;
    let hostile = std::fs::read(runner::fixture_wasm("hostile")?)?;
    let module_a = upload(&api, a, hostile.clone())?;
    let module_b = upload(&api, b, second_version(hostile))?;
    let spec = |module: &str, input: &str, group: &str, output: &str| {
        json!({
            "name": "dep",
            "module": module,
            "inputs": [input],
            "group": group,
            "outputs": [output],
            "config": { "output_topic": output },
        })
    };

    // No token or a wrong one: 401 everywhere.
    let routes = [
        (Method::GET, "/v1/deployments"),
        (Method::POST, "/v1/deployments"),
        (Method::GET, "/v1/deployments/dep"),
        (Method::PATCH, "/v1/deployments/dep"),
        (Method::DELETE, "/v1/deployments/dep"),
        (Method::POST, "/v1/deployments/dep/pause"),
        (Method::POST, "/v1/deployments/dep/resume"),
        (Method::POST, "/v1/deployments/dep/rollback"),
    ];
    for (method, path) in &routes {
        for token in [None, Some("not-a-token")] {
            let (status, body) = api.json(method.clone(), path, token, &json!({}))?;
            ensure!(
                status == StatusCode::UNAUTHORIZED && error_of(&body).contains("bearer token"),
                "{method} {path} with {token:?}: {status} {body}"
            );
        }
    }

    // Grants: the offending topic, group or module is named.
    let group_a = kafka::unique("a-grp");
    let refusals = [
        (
            spec(&module_a, &b_in, &group_a, &a_out),
            StatusCode::FORBIDDEN,
            b_in.clone(),
        ),
        (
            spec(&module_a, &a_in, "b-grp", &a_out),
            StatusCode::FORBIDDEN,
            "b-grp".to_owned(),
        ),
        (
            spec(&module_a, &a_in, &group_a, "b-out"),
            StatusCode::FORBIDDEN,
            "b-out".to_owned(),
        ),
        (
            spec(&module_b, &a_in, &group_a, &a_out),
            StatusCode::BAD_REQUEST,
            module_b.clone(),
        ),
        (
            spec(&module_a, "a-no-such-topic", &group_a, &a_out),
            StatusCode::BAD_REQUEST,
            "a-no-such-topic".to_owned(),
        ),
        (
            json!({ "name": "dep", "module": module_a, "inputs": [a_in], "grup": "x" }),
            StatusCode::BAD_REQUEST,
            "grup".to_owned(),
        ),
    ];
    for (body, expected, named) in refusals {
        let (status, answer) = api.json(Method::POST, "/v1/deployments", Some(a), &body)?;
        ensure!(
            status == expected && error_of(&answer).contains(&named),
            "{body}: expected {expected} naming {named:?}, got {status} {answer}"
        );
    }

    // JSON bodies have their own limit (1 MiB), far below the 8 MiB upload
    // limit: a 2 MiB spec is refused before it is parsed.
    let mut huge = spec(&module_a, &a_in, &group_a, &a_out);
    huge["config"]["padding"] = "x".repeat(2 << 20).into();
    let (status, answer) = api.json(Method::POST, "/v1/deployments", Some(a), &huge)?;
    ensure!(
        status == StatusCode::PAYLOAD_TOO_LARGE && error_of(&answer).contains("1048576"),
        "a 2 MiB JSON body: {status} {answer}"
    );

    // A deploys; B cannot see or touch it, and gets exactly a missing one's answer.
    let (status, created) = api.json(
        Method::POST,
        "/v1/deployments",
        Some(a),
        &spec(&module_a, &a_in, &group_a, &a_out),
    )?;
    ensure!(
        status == StatusCode::CREATED && created["state"] == "running",
        "create: {status} {created}"
    );
    let (status, again) = api.json(
        Method::POST,
        "/v1/deployments",
        Some(a),
        &spec(&module_a, &a_in, &group_a, &a_out),
    )?;
    ensure!(
        status == StatusCode::CONFLICT,
        "create twice: {status} {again}"
    );
    for name in ["dep", "missing"] {
        for (method, path) in &routes[2..] {
            let path = path.replace("deployments/dep", &format!("deployments/{name}"));
            let (status, body) = api.json(method.clone(), &path, Some(b), &json!({}))?;
            ensure!(
                status == StatusCode::NOT_FOUND
                    && error_of(&body) == format!("deployment {name:?} not found"),
                "B: {method} {path}: {status} {body}"
            );
        }
    }
    let (_, listed_b) = api.call(Method::GET, "/v1/deployments", Some(b), None)?;
    ensure!(listed_b == json!([]), "B lists A's deployment: {listed_b}");
    let (_, listed_op) = api.call(Method::GET, "/v1/deployments", Some(OPERATOR_TOKEN), None)?;
    ensure!(
        listed_op[0]["name"] == "dep" && listed_op[0]["tenant"] == TENANT_A.name,
        "the operator sees every tenant: {listed_op}"
    );

    // A timestamp start replays exactly the records from that time on.
    kafka::produce(&a_in, (0..20).map(|i| (format!("early-{i}"), "x", None)))?;
    std::thread::sleep(Duration::from_millis(100));
    let from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    std::thread::sleep(Duration::from_millis(100));
    kafka::produce(&a_in, (0..20).map(|i| (format!("late-{i}"), "x", None)))?;
    ensure!(
        kafka::read_all(&a_out, 40, TIMEOUT)?.len() == 40,
        "the deployment did not handle the 40 records"
    );
    let (status, body) = api.json(
        Method::PATCH,
        "/v1/deployments/dep",
        Some(a),
        &json!({ "start": { "timestamp": from } }),
    )?;
    ensure!(
        status == StatusCode::OK,
        "replay from {from}: {status} {body}"
    );
    let again = kafka::read_all(&a_out, 60, TIMEOUT)?;
    let replayed: BTreeSet<String> = again[40..]
        .iter()
        .map(|m| String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned())
        .collect();
    let late: BTreeSet<String> = (0..20).map(|i| format!("late-{i}")).collect();
    ensure!(
        again.len() == 60 && replayed == late,
        "a replay from the timestamp should handle exactly the 20 later records again: {} outputs, replayed {replayed:?}",
        again.len()
    );

    // A module in use (or kept for rollback) cannot be deleted.
    let (status, body) = api.call(
        Method::DELETE,
        &format!("/v1/modules/{module_a}"),
        Some(a),
        None,
    )?;
    ensure!(
        status == StatusCode::CONFLICT && error_of(&body).contains("dep"),
        "delete a module in use: {status} {body}"
    );
    let (status, _) = api.call(Method::DELETE, "/v1/deployments/dep", Some(a), None)?;
    ensure!(status == StatusCode::NO_CONTENT, "delete: {status}");
    let (status, body) = api.call(
        Method::DELETE,
        &format!("/v1/modules/{module_a}"),
        Some(a),
        None,
    )?;
    ensure!(
        status == StatusCode::NO_CONTENT,
        "delete the module once unused: {status} {body}"
    );

    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(status.success(), "ingesta exited with {status}:\n{log}");
    for action in ["deployment.create", "deployment.delete"] {
        ensure!(
            log.lines()
                .any(|l| l.contains("ingesta::audit") && l.contains(action)),
            "no audit line for {action}:\n{log}"
        );
    }
    Ok(())
}

/// Outputs by key; fails unless every key in `keys` has one.
fn outputs_by_key(
    out: &str,
    expected: usize,
    keys: impl Iterator<Item = usize>,
) -> Result<(Vec<OwnedMessage>, BTreeMap<String, usize>)> {
    let messages = kafka::read_all(out, expected, TIMEOUT)?;
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for m in &messages {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        *by_key.entry(key).or_default() += 1;
    }
    let missing: Vec<usize> = keys
        .filter(|k| !by_key.contains_key(&k.to_string()))
        .collect();
    ensure!(
        missing.is_empty(),
        "{} inputs have no output (first: {:?}); read {} outputs",
        missing.len(),
        &missing[..missing.len().min(10)],
        messages.len()
    );
    Ok((messages, by_key))
}

#[test]
fn deploy_swap_rollback_pause_replay_and_recover_from_kafka() -> Result<()> {
    let prefix = control::state_prefix();
    let port = control::free_port()?;
    let config = control::config_toml(port, &prefix, 8);
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let a = TENANT_A.token;
    let [input, out] = kafka::fresh_topics(["a-in", "a-out"], 4)?;
    let group = kafka::unique("a-grp");
    let v1_file = runner::fixture_wasm("hostile")?;
    let dir = tempfile::tempdir()?;
    let v2_file = dir.path().join("hostile-v2.wasm");
    std::fs::write(&v2_file, second_version(std::fs::read(&v1_file)?))?;

    // Deploy with the CLI, which uploads the file first.
    let v1_path = v1_file.display().to_string();
    let deployed = control::cli(
        api.base(),
        Some(a),
        &[
            "deploy", "--name", "stream", "--module", &v1_path, "--input", &input, "--group",
            &group, "--output", &out, "--config",
        ]
        .into_iter()
        .chain([format!("output_topic={out}").as_str(), "--config", "tag=v1"])
        .collect::<Vec<_>>(),
    )?;
    ensure!(deployed.status.success(), "ingesta deploy: {deployed:?}");
    let v1 = wait_status(&api, a, "stream", "running", |s| s.state == State::Running)?.module;

    // 10,000 records, produced over a few seconds; v2 goes in mid-stream.
    const N: usize = 10_000;
    let producer_topic = input.clone();
    let producing = std::thread::spawn(move || -> Result<()> {
        for chunk in 0..50 {
            let records =
                (chunk * 200..(chunk + 1) * 200).map(|i| (i.to_string(), format!("v{i}"), None));
            kafka::produce(&producer_topic, records)?;
            std::thread::sleep(Duration::from_millis(60));
        }
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(1200));
    let v2_path = v2_file.display().to_string();
    let out_config = format!("output_topic={out}");
    let updated = control::cli(
        api.base(),
        Some(a),
        &[
            "update",
            "stream",
            "--module",
            &v2_path,
            "--config",
            &out_config,
            "--config",
            "tag=v2",
        ],
    )?;
    ensure!(updated.status.success(), "ingesta update: {updated:?}");
    producing.join().expect("producer thread panicked")?;
    let (messages, _) = outputs_by_key(&out, N, 0..N)?;
    ensure!(
        messages.len() == N,
        "a hot swap should handle no record twice: {} outputs for {N} inputs",
        messages.len()
    );
    // Per partition, outputs are v1 then v2: one switch, at a batch boundary.
    let mut switched: BTreeMap<i32, bool> = BTreeMap::new();
    let mut tags = BTreeSet::new();
    for m in &messages {
        let tag = tag_of(m).context("an output without a tag header")?;
        let seen_v2 = switched.entry(m.partition()).or_default();
        ensure!(
            !(*seen_v2 && tag == "v1"),
            "partition {} went back to v1 after v2 at offset {}",
            m.partition(),
            m.offset()
        );
        *seen_v2 |= tag == "v2";
        tags.insert(tag);
    }
    ensure!(
        tags == BTreeSet::from(["v1".to_owned(), "v2".to_owned()]),
        "the swap did not happen mid-stream: tags {tags:?}"
    );
    let status = wait_status(&api, a, "stream", "caught up", |s| total_lag(s) == 0)?;
    ensure!(
        status.revision == 2 && status.previous_modules == [v1.clone()],
        "after the update: {status:?}"
    );

    // Rollback: back to v1 (module and config).
    let (code, rolled) = api.call(
        Method::POST,
        "/v1/deployments/stream/rollback",
        Some(a),
        None,
    )?;
    ensure!(
        code == StatusCode::OK && rolled["module"] == v1.as_str() && rolled["revision"] == 3,
        "rollback: {code} {rolled}"
    );
    kafka::produce(&input, (N..N + 100).map(|i| (i.to_string(), "x", None)))?;
    let (messages, _) = outputs_by_key(&out, N + 100, N..N + 100)?;
    let late: BTreeSet<Option<String>> = messages
        .iter()
        .filter(|m| {
            m.key()
                .is_some_and(|k| String::from_utf8_lossy(k).parse::<usize>().unwrap_or(0) >= N)
        })
        .map(tag_of)
        .collect();
    ensure!(
        late == BTreeSet::from([Some("v1".to_owned())]),
        "after rollback, records should be handled by v1: {late:?}"
    );

    // Pause: nothing is consumed and the lag shows it; resume catches up.
    let paused = control::cli(api.base(), Some(a), &["pause", "stream"])?;
    ensure!(paused.status.success(), "ingesta pause: {paused:?}");
    kafka::produce(
        &input,
        (N + 100..N + 150).map(|i| (i.to_string(), "x", None)),
    )?;
    let status = wait_status(&api, a, "stream", "paused with lag", |s| {
        s.state == State::Paused && total_lag(s) == 50
    })?;
    let table = control::cli(api.base(), Some(a), &["status", "stream"])?;
    let text = String::from_utf8_lossy(&table.stdout);
    ensure!(
        table.status.success() && text.contains("paused") && text.contains("lag"),
        "ingesta status: {table:?}"
    );
    ensure!(
        kafka::read_all(&out, N + 150, Duration::from_secs(2))?.len() == N + 100,
        "a paused deployment produced outputs: {status:?}"
    );
    let resumed = control::cli(api.base(), Some(a), &["resume", "stream"])?;
    ensure!(resumed.status.success(), "ingesta resume: {resumed:?}");
    outputs_by_key(&out, N + 150, N + 100..N + 150)?;
    wait_status(&api, a, "stream", "caught up", |s| total_lag(s) == 0)?;

    // Replay from the earliest offset: every input is handled again.
    let (code, body) = api.json(
        Method::PATCH,
        "/v1/deployments/stream",
        Some(a),
        &json!({ "start": "earliest" }),
    )?;
    ensure!(code == StatusCode::OK, "replay: {code} {body}");
    let total = N + 150;
    let (messages, by_key) = outputs_by_key(&out, 2 * total, 0..total)?;
    ensure!(
        messages.len() == 2 * total && by_key.values().all(|&n| n == 2),
        "after a replay every input should have exactly two outputs; {} outputs",
        messages.len()
    );
    wait_status(&api, a, "stream", "caught up", |s| total_lag(s) == 0)?;

    // Restart from nothing but Kafka: the deployment comes back and resumes
    // from its committed offsets (a clean stop committed everything).
    ingesta.sigterm()?;
    let (code, log) = ingesta.wait(TIMEOUT)?;
    ensure!(code.success(), "ingesta exited with {code}:\n{log}");
    let mut ingesta = RunnerProcess::spawn(&config)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let status = wait_status(&api, a, "stream", "running", |s| s.state == State::Running)?;
    ensure!(
        status.revision == 3,
        "recovered the wrong revision: {status:?}"
    );
    kafka::produce(
        &input,
        (total..total + 100).map(|i| (i.to_string(), "x", None)),
    )?;
    let (messages, _) = outputs_by_key(&out, 2 * total + 100, total..total + 100)?;
    let outputs_so_far = messages.len();
    ensure!(
        outputs_so_far == 2 * total + 100,
        "after the restart the deployment should resume from its committed offsets, not before: {} outputs, expected {}\nrunner log before the restart:\n{log}\nafter:\n{}",
        messages.len(),
        2 * total + 100,
        ingesta.log()
    );

    // A second runner on the same state topics sees the same deployment
    // and shares its partitions.
    let port2 = control::free_port()?;
    let mut second = RunnerProcess::spawn(&control::config_toml(port2, &prefix, 8))?;
    let api2 = Api::new(port2)?;
    second.wait_ready(&api2, TIMEOUT)?;
    let seen = wait_status(&api2, a, "stream", "running", |s| s.state == State::Running)?;
    ensure!(
        seen.module == v1 && seen.revision == 3,
        "the second runner sees another state: {seen:?}"
    );
    let total = total + 100;
    kafka::produce(
        &input,
        (total..total + 200).map(|i| (i.to_string(), "x", None)),
    )?;
    outputs_by_key(&out, outputs_so_far + 200, total..total + 200)?;

    for r in [&mut second, &mut ingesta] {
        r.sigterm()?;
        let (code, log) = r.wait(TIMEOUT)?;
        ensure!(code.success(), "ingesta exited with {code}:\n{log}");
    }
    Ok(())
}

/// The tutorial reader's recovery: a deployment without a dead-letter
/// topic fails on a record it cannot handle; `ingesta update --dead-letter`
/// (no raw JSON) brings it back, the poison record dead-lettered and every
/// other record forwarded, the settings not named left as they were.
#[test]
fn a_failed_deployment_recovers_with_cli_flags_alone_and_shows_its_dead_letters() -> Result<()> {
    let prefix = control::state_prefix();
    let port = control::free_port()?;
    let mut ingesta = RunnerProcess::spawn(&control::config_toml(port, &prefix, 8))?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let a = TENANT_A.token;
    let [input, out, dlq] = kafka::fresh_topics(["a-cli-in", "a-cli-out", "a-cli-dlq"], 1)?;
    let module = runner::fixture_wasm("hostile")?.display().to_string();
    let output_config = format!("output_topic={out}");
    let group = kafka::unique("a-cli");
    let cli = |args: &[&str]| control::cli(api.base(), Some(a), args);
    let deployed = cli(&[
        "deploy",
        "--name",
        "cli",
        "--module",
        &module,
        "--input",
        &input,
        "--group",
        &group,
        "--output",
        &out,
        "--config",
        &output_config,
        "--max-attempts",
        "2",
        "--deadline-ms",
        "2500",
        "--batch-max-records",
        "7",
        "--set",
        "failure.backoff_initial_ms=20",
    ])?;
    ensure!(deployed.status.success(), "ingesta deploy: {deployed:?}");
    kafka::produce(
        &input,
        [
            ("0", "ok-0", None),
            ("1", "permanent", None),
            ("2", "ok-2", None),
        ],
    )?;
    let failed = wait_status(&api, a, "cli", "failed", |s| s.state == State::Failed)?;
    ensure!(
        failed
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("no failure.dead_letter_topic")),
        "{failed:?}"
    );

    // Bad flags are refused by name, and change nothing.
    let bad = cli(&["update", "cli", "--set", "limits"])?;
    let text = String::from_utf8_lossy(&bad.stderr);
    ensure!(
        !bad.status.success() && text.contains("expected PATH=VALUE"),
        "{bad:?}"
    );
    let unknown = cli(&["update", "cli", "--set", "limits.deadline=5"])?;
    let text = String::from_utf8_lossy(&unknown.stderr);
    ensure!(
        !unknown.status.success() && text.contains("deadline"),
        "an unknown field: {unknown:?}"
    );
    let same = cli(&["update", "cli", "--max-attempts", "2"])?;
    ensure!(
        !same.status.success()
            && String::from_utf8_lossy(&same.stderr).contains("nothing to change"),
        "{same:?}"
    );

    let updated = cli(&["update", "cli", "--dead-letter", &dlq])?;
    ensure!(updated.status.success(), "ingesta update: {updated:?}");
    let running = wait_status(&api, a, "cli", "running", |s| s.state == State::Running)?;
    let spec = serde_json::to_value(running.settings.context("an API deployment has settings")?)?;
    ensure!(
        spec["failure"]["dead_letter_topic"] == dlq.as_str()
            && spec["failure"]["max_attempts"] == 2
            && spec["failure"]["backoff_initial_ms"] == 20
            && spec["limits"]["deadline_ms"] == 2500
            && spec["batch"]["max_records"] == 7
            && running.revision == 2,
        "the update changed more than the dead-letter topic: {spec}"
    );
    let letters = kafka::read_all(&dlq, 1, TIMEOUT)?;
    ensure!(
        letters.len() == 1 && letters[0].key() == Some(b"1".as_slice()),
        "dead letters: {letters:?}"
    );
    let outputs: BTreeSet<Vec<u8>> = kafka::read_all(&out, 2, TIMEOUT)?
        .iter()
        .filter_map(|m| m.key().map(<[u8]>::to_vec))
        .collect();
    ensure!(
        outputs == BTreeSet::from([b"0".to_vec(), b"2".to_vec()]),
        "outputs: {outputs:?}"
    );
    wait_status(&api, a, "cli", "caught up", |s| total_lag(s) == 0)?;

    // The dead letter, read back through the API (whatever tenant A's read
    // grants) and the CLI, its provenance decoded; tenant B cannot see it.
    let (code, page) = api.call(
        Method::GET,
        "/v1/deployments/cli/dead-letters",
        Some(a),
        None,
    )?;
    let letters = page["dead_letters"].as_array().cloned().unwrap_or_default();
    ensure!(
        code == StatusCode::OK && page["topic"] == dlq.as_str() && letters.len() == 1,
        "dead letters: {code} {page}"
    );
    let d = &letters[0];
    ensure!(
        d["key"]["text"] == "1"
            && d["value"]["text"] == "permanent"
            && d["source"]["topic"] == input.as_str()
            && d["source"]["offset"] == 1
            && d["error"]["class"] == "permanent"
            // A permanent error is not retried, max_attempts or not.
            && d["error"]["attempts"] == 1
            && d["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("permanent error requested"))
            && page["next"].is_null(),
        "the dead letter: {d}"
    );
    let listed = cli(&["dlq", "ls", "cli"])?;
    let text = String::from_utf8_lossy(&listed.stdout);
    ensure!(
        listed.status.success()
            && text.contains(&format!("{input}/0@1"))
            && text.contains("permanent error requested"),
        "ingesta dlq ls: {listed:?}"
    );
    let at = d["offset"].to_string();
    let shown = cli(&["dlq", "show", "cli", "--partition", "0", "--offset", &at])?;
    ensure!(
        shown.status.success()
            && String::from_utf8_lossy(&shown.stdout).contains("\"attempts\": 1"),
        "ingesta dlq show: {shown:?}"
    );
    // Pages: two more poison records, and a neighbour sharing the
    // dead-letter topic whose letters are not this deployment's.
    let [other_in] = kafka::fresh_topics(["a-cli-other"], 1)?;
    let other = cli(&[
        "deploy",
        "--name",
        "other",
        "--module",
        &module,
        "--input",
        &other_in,
        "--group",
        &kafka::unique("a-cli-other"),
        "--output",
        &out,
        "--config",
        &output_config,
        "--dead-letter",
        &dlq,
    ])?;
    ensure!(other.status.success(), "ingesta deploy: {other:?}");
    kafka::produce(&other_in, [("o", "permanent", None)])?;
    kafka::produce(&input, [("3", "permanent", None), ("4", "permanent", None)])?;
    kafka::read_all(&dlq, 4, TIMEOUT)?;
    let page = |from: &str| -> Result<Value> {
        let path = format!("/v1/deployments/cli/dead-letters?limit=2{from}");
        let (code, page) = api.call(Method::GET, &path, Some(a), None)?;
        ensure!(code == StatusCode::OK, "{path}: {code} {page}");
        Ok(page)
    };
    let first = page("")?;
    let next = &first["next"];
    let second = page(&format!(
        "&partition={}&offset={}",
        next["partition"], next["offset"]
    ))?;
    let keys: Vec<Value> = [&first, &second]
        .iter()
        .flat_map(|p| p["dead_letters"].as_array().cloned().unwrap_or_default())
        .map(|d| d["key"]["text"].clone())
        .collect();
    ensure!(
        keys == [json!("1"), json!("3"), json!("4")] && second["next"].is_null(),
        "pages of 2: {first} then {second}"
    );

    let (code, _) = api.call(
        Method::GET,
        "/v1/deployments/cli/dead-letters",
        Some(TENANT_B.token),
        None,
    )?;
    ensure!(
        code == StatusCode::NOT_FOUND,
        "tenant B read A's dead letters: {code}"
    );

    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");
    Ok(())
}
