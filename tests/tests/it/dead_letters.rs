//! Dead letters always fit, end to end through the control API on the
//! real broker:
//! - a ~900 KB record whose handler fails with a ~900 KB error message is
//!   dead-lettered whole (the message clipped), and the deployment goes on
//!   to the next record instead of failing on a dead letter Kafka refuses;
//! - a dead-letter topic that accepts smaller records than the input topic
//!   is refused at deploy time, naming both sizes.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, Api, State, TENANT_A, error_of, upload};
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
