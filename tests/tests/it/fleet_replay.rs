//! A replay in a fleet is carried out once: three runner processes share
//! one control plane and a consumer deployment; a PATCH naming `start`
//! through one of them makes that runner move the group while the other
//! two stop and wait for it (state `starting`, the reason naming the
//! runner), then all three run again. Every input is handled again (each
//! key's output at least twice), no runner fails, and no runner moved the
//! group under another's consumer. A replay taken by a runner that died
//! before carrying it out is taken over by the first live runner waiting
//! for it (three report intervals after the fleet last heard of it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ingesta_runtime::deployment::record::Replay;
use ingesta_runtime::deployment::{DeploymentRecord, StartPosition};
use ingesta_tests::control::{self, State, TENANT_A};
use ingesta_tests::fleet::Member;
use ingesta_tests::{kafka, runner};
use rdkafka::Message;
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
const RECORDS: usize = 300;

/// Runners sharing a control plane, and the inputs and outputs of their
/// identity deployment.
struct Fleet {
    prefix: String,
    members: Vec<Member>,
    input: String,
    output: String,
}

/// `n` runners (`<id>-1`...), an identity deployment `name` over an
/// `n`-partition topic, and [`RECORDS`] inputs handled once and committed.
fn handled_once(name: &str, id: &str, n: usize) -> Result<Fleet> {
    let prefix = control::state_prefix();
    let members = (1..=n)
        .map(|i| {
            Member::start(
                &prefix,
                &format!("[runtime]\nrunner_id = \"{id}-{i}\"\n"),
                TIMEOUT,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let [input, output] =
        kafka::fresh_topics([&format!("a-{id}-in"), &format!("a-{id}-out")], n as i32)?;
    let group = kafka::unique(&format!("a-{id}"));
    control::deploy_module(
        &members[0].api,
        TENANT_A.token,
        &runner::guest_wasm("identity")?,
        json!({
            "name": name, "inputs": [input], "group": group, "outputs": [output],
            "config": { "output_topic": output },
        }),
    )?;
    kafka::produce(
        &input,
        (0..RECORDS).map(|i| (format!("k{i}"), format!("v{i}"), Some((i % n) as i32))),
    )?;
    ensure!(
        kafka::read_all(&output, RECORDS, TIMEOUT)?.len() == RECORDS,
        "first pass"
    );
    kafka::wait_until_committed_to_end(&group, &input, TIMEOUT)?;
    Ok(Fleet {
        prefix,
        members,
        input,
        output,
    })
}

#[test]
fn a_replay_is_carried_out_once_and_every_runner_resumes() -> Result<()> {
    let Fleet {
        prefix: _,
        members,
        input,
        output,
    } = handled_once("rp", "replay", 3)?;
    let a = TENANT_A.token;

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

#[test]
fn a_replay_whose_runner_is_gone_is_taken_over() -> Result<()> {
    let Fleet {
        prefix,
        members,
        input,
        output,
    } = handled_once("adopt", "adopt", 2)?;
    let a = TENANT_A.token;

    // A replay taken by a runner that died before carrying it out: the
    // record as that runner would have written it, straight to the state
    // topic.
    let state_topic = format!("{prefix}deployments");
    let key = format!("{}/adopt", TENANT_A.name);
    let last = kafka::read_to_end(&state_topic, TIMEOUT)?
        .into_iter()
        .rev()
        .find(|m| m.key() == Some(key.as_bytes()))
        .and_then(|m| m.payload().map(<[u8]>::to_vec))
        .context("the deployment's record")?;
    let mut record: DeploymentRecord = serde_json::from_slice(&last)?;
    record.version += 1;
    record.runner = Some("adopt-gone".into());
    record.replay = Some(Replay {
        seq: record.replay.map_or(1, |r| r.seq + 1),
        from: StartPosition::Earliest,
        done: false,
    });
    kafka::produce(
        &state_topic,
        [(key.as_str(), serde_json::to_string(&record)?, None)],
    )?;

    // Both wait for the gone runner, then the first of them takes the
    // replay over: every input is handled again and both run.
    let out = kafka::read_all(&output, 2 * RECORDS, TIMEOUT)?;
    if out.len() < 2 * RECORDS {
        for (i, m) in members.iter().enumerate() {
            for line in m
                .process
                .log()
                .lines()
                .filter(|l| l.contains("adopt") && !l.contains("Statistics"))
            {
                eprintln!("runner {}: {line}", i + 1);
            }
        }
        anyhow::bail!("the replay was not carried out: {} outputs", out.len());
    }
    for m in &members {
        control::wait_status(&m.api, a, "adopt", "running again", TIMEOUT, |s| {
            s.state == State::Running
        })?;
    }
    let logs: Vec<String> = members
        .into_iter()
        .map(|m| m.stop(TIMEOUT))
        .collect::<Result<_>>()?;
    let adopted: Vec<usize> = (0..2)
        .filter(|&i| logs[i].contains("the runner carrying out the replay is gone"))
        .collect();
    ensure!(
        adopted == [0],
        "the first runner by id (adopt-1) takes the replay over; taken over by {adopted:?}"
    );
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
