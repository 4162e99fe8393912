//! Safe concurrent writes in a fleet, on the real broker with two runner
//! processes sharing one control plane: two PATCHes naming the same
//! version (`If-Match`), sent at once through the two runners: one wins,
//! the other gets 409 with the current version, and both runners end up
//! with the winner's change (neither is lost unseen); a stale `If-Match`
//! is refused before anything is written; records say which runner wrote
//! them.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, TENANT_A, error_of};
use ingesta_tests::fleet::Member;
use ingesta_tests::{kafka, runner};
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn of_two_concurrent_changes_one_wins_and_the_other_gets_409() -> Result<()> {
    let prefix = control::state_prefix();
    let first = Member::start(&prefix, "[runtime]\nrunner_id = \"runner-1\"\n", TIMEOUT)?;
    let second = Member::start(&prefix, "[runtime]\nrunner_id = \"runner-2\"\n", TIMEOUT)?;
    let a = TENANT_A.token;
    let [input, output] = kafka::fresh_topics(["a-cw-in", "a-cw-out"], 1)?;
    control::deploy_module(
        &first.api,
        a,
        &runner::guest_wasm("identity")?,
        json!({
            "name": "cw",
            "inputs": [input],
            "group": kafka::unique("a-cw"),
            "outputs": [output],
            "config": { "output_topic": output },
        }),
    )?;
    // Both runners have it, at version 1.
    for m in [&first, &second] {
        control::wait_status(&m.api, a, "cw", "created", TIMEOUT, |s| s.version == 1)?;
    }
    let read = control::wait_status(&first.api, a, "cw", "read", TIMEOUT, |_| true)?;
    ensure!(
        read.updated_by_runner.as_deref() == Some("runner-1"),
        "the record names the runner that wrote it: {read:?}"
    );

    // Two changes of the version read, at once, through the two runners.
    let patch = |m: &Member, value: &str| {
        let body = serde_json::to_vec(&json!({"config": {"output_topic": output, "tag": value}}))?;
        let response = m
            .api
            .request(Method::PATCH, "/v1/deployments/cw", Some(a))
            .header("content-type", "application/json")
            .header("if-match", "\"1\"")
            .body(body)
            .send()?;
        let status = response.status();
        let body: serde_json::Value = response.json().unwrap_or_default();
        anyhow::Ok((status, body))
    };
    let (one, two) = std::thread::scope(|s| {
        let one = s.spawn(|| patch(&first, "from-runner-1"));
        let two = s.spawn(|| patch(&second, "from-runner-2"));
        (one.join(), two.join())
    });
    let one = one.map_err(|_| anyhow::anyhow!("a PATCH panicked"))??;
    let two = two.map_err(|_| anyhow::anyhow!("a PATCH panicked"))??;
    let codes = [one.0, two.0];
    ensure!(
        codes.contains(&StatusCode::OK) && codes.contains(&StatusCode::CONFLICT),
        "one change wins, the other gets 409: {one:?} {two:?}"
    );
    let (winner, loser) = if one.0 == StatusCode::OK {
        (one, two)
    } else {
        (two, one)
    };
    ensure!(
        error_of(&loser.1).contains("version 2") && error_of(&loser.1).contains("read it again"),
        "the 409 names the current version: {loser:?}"
    );
    let tag = winner.1["settings"]["config"]["tag"]
        .as_str()
        .context("the winner's answer has its change")?
        .to_owned();

    // Both runners have the winner's change, and only that.
    for m in [&first, &second] {
        let s = control::wait_status(&m.api, a, "cw", "the winner applied", TIMEOUT, |s| {
            s.version >= 2
        })?;
        let config = serde_json::to_value(&s.settings)?["config"].clone();
        ensure!(
            s.version == 2 && config["tag"] == tag.as_str(),
            "a runner disagrees on the winner ({tag}): version {} config {config}",
            s.version
        );
    }

    // A stale If-Match is refused before anything is written.
    let (code, body) = {
        let response = second
            .api
            .request(Method::POST, "/v1/deployments/cw/pause", Some(a))
            .header("if-match", "\"1\"")
            .send()?;
        (
            response.status(),
            response.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    ensure!(
        code == StatusCode::CONFLICT && error_of(&body).contains("not the version 1"),
        "a stale If-Match: {code} {body}"
    );
    let etag = first
        .api
        .request(Method::GET, "/v1/deployments/cw", Some(a))
        .send()?
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok().map(str::to_owned));
    ensure!(
        etag.as_deref() == Some("\"2\""),
        "the ETag is the version: {etag:?}"
    );
    first.stop(TIMEOUT)?;
    second.stop(TIMEOUT)?;
    Ok(())
}
