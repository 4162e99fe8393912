//! A replay in a fleet is carried out once: three runner processes share
//! one control plane and a consumer deployment; a PATCH naming `start`
//! through one of them makes that runner move the group while the other
//! two stop and wait for it (state `starting`, the reason naming the
//! runner), then all three run again. Every input is handled again (each
//! key's output at least twice), no runner fails, and no runner moved the
//! group under another's consumer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, State, TENANT_A};
use ingesta_tests::fleet::Member;
use ingesta_tests::{kafka, runner};
use rdkafka::Message;
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
const RECORDS: usize = 300;

#[test]
fn a_replay_is_carried_out_once_and_every_runner_resumes() -> Result<()> {
    let prefix = control::state_prefix();
    let members = (1..=3)
        .map(|i| {
            Member::start(
                &prefix,
                &format!("[runtime]\nrunner_id = \"replay-{i}\"\n"),
                TIMEOUT,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let a = TENANT_A.token;
    let [input, output] = kafka::fresh_topics(["a-replay-in", "a-replay-out"], 3)?;
    let group = kafka::unique("a-replay");
    control::deploy_module(
        &members[0].api,
        a,
        &runner::guest_wasm("identity")?,
        json!({
            "name": "rp", "inputs": [input], "group": group, "outputs": [output],
            "config": { "output_topic": output },
        }),
    )?;
    kafka::produce(
        &input,
        (0..RECORDS).map(|i| (format!("k{i}"), format!("v{i}"), Some((i % 3) as i32))),
    )?;
    ensure!(
        kafka::read_all(&output, RECORDS, TIMEOUT)?.len() == RECORDS,
        "first pass"
    );
    kafka::wait_until_committed_to_end(&group, &input, TIMEOUT)?;

    let (code, body) = members[1].api.json(
        Method::PATCH,
        "/v1/deployments/rp",
        Some(a),
        &json!({"start": "earliest"}),
    )?;
    ensure!(code == StatusCode::OK, "replay: {code} {body}");

    // Every input handled again, every runner running again.
    let out = kafka::read_all(&output, 2 * RECORDS, TIMEOUT)?;
    let mut per_key: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for m in &out {
        *per_key
            .entry(m.key().unwrap_or_default().to_vec())
            .or_default() += 1;
    }
    let missing = (0..RECORDS)
        .filter(|i| {
            per_key
                .get(format!("k{i}").as_bytes())
                .copied()
                .unwrap_or(0)
                < 2
        })
        .count();
    eprintln!(
        "replay in a fleet: outputs={} keys={} handled again missing={missing}",
        out.len(),
        per_key.len()
    );
    if missing > 0 {
        for (i, m) in members.iter().enumerate() {
            for line in m
                .process
                .log()
                .lines()
                .filter(|l| l.contains("tenant-a/rp") && !l.contains("Statistics"))
            {
                eprintln!("runner {}: {line}", i + 1);
            }
        }
        anyhow::bail!("{missing} inputs were not handled again by the replay");
    }
    let deadline = Instant::now() + TIMEOUT;
    for m in &members {
        loop {
            let s = m.api.status(a, "rp")?;
            ensure!(
                s.state != State::Failed,
                "a runner failed the deployment: {s:?}"
            );
            if s.state == State::Running {
                break;
            }
            ensure!(Instant::now() < deadline, "a runner never resumed: {s:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let logs: Vec<String> = members
        .into_iter()
        .map(|m| m.stop(TIMEOUT))
        .collect::<Result<_>>()?;
    let moved = logs
        .iter()
        .filter(|l| l.contains("consumer group moved"))
        .count();
    let waited = logs
        .iter()
        .filter(|l| l.contains("waiting for another runner's replay"))
        .count();
    ensure!(
        moved == 1 && waited == 2,
        "one runner moves the group ({moved} did), the two others wait ({waited} did)"
    );
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
