//! Dead letters always fit, end to end through the control API on the
//! real broker:
//! - a ~900 KB record whose handler fails with a ~900 KB error message is
//!   dead-lettered whole (the message clipped), and the deployment goes on
//!   to the next record instead of failing on a dead letter Kafka refuses;
//! - a dead-letter topic that accepts smaller records than the input topic
//!   is refused at deploy time, naming both sizes;
//! - poison records dead-lettered, the module fixed with `ingesta update`,
//!   then `ingesta dlq redrive`: each handled once by the fixed module, in
//!   its source partition's order, seen by no other group, never twice.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, Api, State, TENANT_A, error_of, upload, wait_status};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, RunnerProcess};
use rdkafka::Message;
use rdkafka::message::Headers;
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn oversized_failures_are_dead_lettered_and_small_dead_letter_topics_refused() -> Result<()> {
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 8);
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let token = TENANT_A.token;
    let [input, output, dlq] = kafka::fresh_topics(["a-in", "a-out", "a-dlq"], 1)?;
    let small_dlq = kafka::unique("a-small-dlq");
    kafka::create_topic_with(&small_dlq, 1, &[("max.message.bytes", "100000")])?;
    let module = upload(
        &api,
        token,
        std::fs::read(runner::fixture_wasm("hostile")?)?,
    )?;
    let spec = |dead_letter_topic: &str| {
        json!({
            "name": "big",
            "module": module,
            "inputs": [input],
            "group": kafka::unique("a-grp"),
            // The dead-letter topic also granted as an output: each topic
            // is asked about once.
            "outputs": [output, dead_letter_topic],
            "config": { "output_topic": output },
            "failure": { "dead_letter_topic": dead_letter_topic, "max_attempts": 1 },
        })
    };

    // A dead-letter topic taking 100,000-byte records behind an input that
    // takes Kafka's default (1,048,588): refused, both sizes named.
    let (status, body) = api.json(
        Method::POST,
        "/v1/deployments",
        Some(token),
        &spec(&small_dlq),
    )?;
    let message = error_of(&body);
    ensure!(
        status == StatusCode::BAD_REQUEST
            && message.contains(&small_dlq)
            && message.contains("100000")
            && message.contains("1048588"),
        "a too-small dead-letter topic: {status} {body}"
    );

    let (status, body) = api.json(Method::POST, "/v1/deployments", Some(token), &spec(&dlq))?;
    ensure!(status == StatusCode::CREATED, "create: {status} {body}");

    // ~900 KB of record, ~900 KB of error message, then a good record.
    let poison = format!("bigerror:921600#{}", "p".repeat(900_000));
    kafka::produce(
        &input,
        [("k0", poison.as_str(), Some(0)), ("k1", "good-1", Some(0))],
    )?;

    let dead = kafka::read_all(&dlq, 1, TIMEOUT)?;
    ensure!(dead.len() == 1, "dead letters: {}", dead.len());
    let letter = &dead[0];
    ensure!(
        letter.payload() == Some(poison.as_bytes()),
        "the dead letter must carry the record whole ({} bytes of {})",
        letter.payload().map_or(0, <[u8]>::len),
        poison.len()
    );
    let error = letter
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == "ingesta.error.message"))
        .and_then(|h| h.value)
        .context("no ingesta.error.message header")?;
    let error = String::from_utf8_lossy(error);
    ensure!(
        error.len() < 4096 && error.contains("bytes cut"),
        "the error message should be clipped and say so ({} bytes): {}",
        error.len(),
        &error[error.len().saturating_sub(80)..]
    );
    let out = kafka::read_all(&output, 1, TIMEOUT)?;
    ensure!(
        out.iter()
            .any(|m| m.payload() == Some(b"good-1".as_slice())),
        "the record after the dead letter was not handled"
    );
    let status = api.status(token, "big")?;
    ensure!(
        status.state == State::Running,
        "the deployment should go on: {status:?}"
    );

    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");
    kafka::delete_topics(&[&input, &output, &dlq, &small_dlq]);
    Ok(())
}

/// Poison records across two input partitions are dead-lettered by the
/// hostile module; `ingesta update` swaps in the identity module and
/// `ingesta dlq redrive --class permanent` hands them back: the fixed
/// module handles each once, from the deployment's own redrive topic (the
/// input topic gets nothing new, so no other group sees them), copies in
/// source order with their provenance; a second redrive copies nothing;
/// removing the deployment removes its redrive topic.
#[test]
fn redriven_dead_letters_reach_only_the_fixed_deployment_once() -> Result<()> {
    let prefix = control::state_prefix();
    let port = control::free_port()?;
    let mut ingesta = RunnerProcess::spawn(&control::config_toml(port, &prefix, 8))?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let a = TENANT_A.token;
    let [input, out] = kafka::fresh_topics(["a-rd-in", "a-rd-out"], 2)?;
    let [dlq] = kafka::fresh_topics(["a-rd-dlq"], 1)?;
    let cli = |args: &[&str]| control::cli(api.base(), Some(a), args);
    let hostile = runner::fixture_wasm("hostile")?.display().to_string();
    let identity = runner::guest_wasm("identity")?.display().to_string();
    let output_config = format!("output_topic={out}");
    let group = kafka::unique("a-rd");
    let deployed = cli(&[
        "deploy",
        "--name",
        "rd",
        "--module",
        &hostile,
        "--input",
        &input,
        "--group",
        &group,
        "--output",
        &out,
        "--config",
        &output_config,
        "--dead-letter",
        &dlq,
        "--max-attempts",
        "1",
    ])?;
    ensure!(deployed.status.success(), "ingesta deploy: {deployed:?}");

    // Partition 0: ok, poison, ok, poison; partition 1: poison, ok, poison.
    let records: [(&str, &str, i32); 7] = [
        ("k0", "ok-0", 0),
        ("p0", "permanent-0", 0),
        ("k1", "ok-1", 0),
        ("p1", "permanent-1", 0),
        ("p2", "permanent-2", 1),
        ("k2", "ok-2", 1),
        ("p3", "permanent-3", 1),
    ];
    kafka::produce(&input, records.iter().map(|(k, v, p)| (*k, *v, Some(*p))))?;
    let input_end = kafka::total_records(&input)?;
    ensure!(
        kafka::read_all(&out, 3, TIMEOUT)?.len() == 3,
        "the good records"
    );
    ensure!(
        kafka::read_all(&dlq, 4, TIMEOUT)?.len() == 4,
        "the poison dead-lettered"
    );

    // Nothing selected is refused rather than read as "all".
    let (code, body) = api.json(
        Method::POST,
        "/v1/deployments/rd/dead-letters/redrive",
        Some(a),
        &json!({}),
    )?;
    ensure!(
        code == StatusCode::BAD_REQUEST && error_of(&body).contains("all: true"),
        "an empty redrive: {code} {body}"
    );

    let updated = cli(&["update", "rd", "--module", &identity])?;
    ensure!(updated.status.success(), "ingesta update: {updated:?}");
    wait_status(&api, a, "rd", "running the fixed module", TIMEOUT, |s| {
        s.state == State::Running && s.revision == 2
    })?;
    let redriven = cli(&["dlq", "redrive", "rd", "--class", "permanent"])?;
    let text = String::from_utf8_lossy(&redriven.stdout);
    ensure!(
        redriven.status.success() && text.contains("redriven: 4 dead letters"),
        "ingesta dlq redrive: {redriven:?}"
    );

    // Each poison record reaches the fixed module once; nothing else moves.
    let outputs = kafka::read_all(&out, 7, TIMEOUT)?;
    let mut values: Vec<&str> = outputs
        .iter()
        .map(kafka::value_str)
        .collect::<Result<_>>()?;
    values.sort_unstable();
    ensure!(
        values
            == [
                "ok-0",
                "ok-1",
                "ok-2",
                "permanent-0",
                "permanent-1",
                "permanent-2",
                "permanent-3"
            ],
        "outputs after the redrive: {values:?}"
    );
    ensure!(
        kafka::total_records(&input)? == input_end,
        "the input topic got new records: other groups would see them"
    );
    let status = wait_status(
        &api,
        a,
        "rd",
        "caught up on the redrive topic",
        TIMEOUT,
        |s| s.state == State::Running && s.total_lag() == Some(0),
    )?;
    let redrive_topic = format!("{prefix}redrive.{}.rd", TENANT_A.name);
    ensure!(
        status.partitions.iter().any(|p| p.topic == redrive_topic),
        "the status reports the redrive topic's offsets: {:?}",
        status.partitions
    );

    // The copies: in source order per source partition, provenance kept.
    let copies = kafka::read_all(&redrive_topic, 4, TIMEOUT)?;
    let mut by_source: std::collections::BTreeMap<(i32, String), Vec<i64>> = Default::default();
    for c in &copies {
        let header = |name: &str| -> Option<String> {
            c.headers()?
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let source = header("ingesta.redrive.source").context("ingesta.redrive.source")?;
        let of = header("ingesta.redrive.of").context("ingesta.redrive.of")?;
        ensure!(of.starts_with(&format!("{dlq}/0/")), "redrive.of {of}");
        let (topic_partition, offset) = source.rsplit_once('/').context("source")?;
        ensure!(topic_partition.starts_with(&input), "source {source}");
        by_source
            .entry((c.partition(), topic_partition.to_owned()))
            .or_default()
            .push(offset.parse()?);
    }
    for ((_, source), offsets) in &by_source {
        ensure!(
            offsets.is_sorted(),
            "copies of {source} out of order: {offsets:?}"
        );
    }
    let sources: std::collections::BTreeSet<&String> = by_source.keys().map(|(_, s)| s).collect();
    ensure!(sources.len() == 2, "both source partitions: {by_source:?}");

    // Again: nothing is redriven twice.
    let (code, body) = api.json(
        Method::POST,
        "/v1/deployments/rd/dead-letters/redrive",
        Some(a),
        &json!({"all": true}),
    )?;
    ensure!(
        code == StatusCode::OK && body["redriven"] == 0 && body["already_redriven"] == 4,
        "a second redrive: {code} {body}"
    );
    // No deployment reads a redrive topic by naming it (refused by the
    // grants here; by the reserved names for a tenant granted every topic,
    // see the rules' unit tests).
    let (code, body) = api.json(
        Method::POST,
        "/v1/deployments",
        Some(a),
        &json!({"name": "peek", "module": status.settings.as_ref().map(|s| s.module.to_string()),
            "inputs": [redrive_topic], "group": kafka::unique("a-peek"), "outputs": [out]}),
    )?;
    ensure!(
        code == StatusCode::FORBIDDEN && error_of(&body).contains(redrive_topic.as_str()),
        "a deployment reading a redrive topic: {code} {body}"
    );
    ensure!(
        kafka::read_to_end(&out, Duration::from_secs(2))?.len() == 7,
        "no output twice"
    );

    let removed = cli(&["rm", "rd"])?;
    ensure!(removed.status.success(), "ingesta rm: {removed:?}");
    let deadline = std::time::Instant::now() + TIMEOUT;
    while kafka::partitions(&redrive_topic).is_ok_and(|p| !p.is_empty()) {
        ensure!(
            std::time::Instant::now() < deadline,
            "the redrive topic outlived its deployment"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
