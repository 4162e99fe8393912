//! Hostile guests and the failure policy, end to end on the real broker.
//!
//! One `hostile` deployment gets 10,000 good records interleaved with 100
//! poison records of every kind across 4 partitions, while a healthy
//! `identity` deployment runs on the same runner. Every poison record must
//! land in the dead-letter topic exactly once with the right headers, every
//! other record must produce its output, the runner must not crash, and the
//! healthy deployment must deliver everything.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, Deployment, RunnerProcess};
use rdkafka::Message;
use rdkafka::message::Headers;

const TIMEOUT: Duration = Duration::from_secs(240);
const GOOD: usize = 10_000;
const PER_KIND: usize = 100;

/// Poison kinds that must be dead-lettered, with the error class expected
/// in the `ingesta.error.class` header.
const DEAD: [(&str, &str); 9] = [
    ("loop", "trap:deadline"),
    // An hour's WASI sleep: no wasm runs, yet the deadline must stop it.
    ("sleep:3600000", "trap:deadline"),
    // 5,000 entries over one 1 KB value: 5 MB asked of Kafka from a 1 KB
    // buffer, over the 4 MiB output cap (and under the record cap).
    ("alias:5000", "permanent"),
    ("bomb", "trap:out-of-memory"),
    ("recurse", "trap:stack-overflow"),
    ("panic", "trap:panic"),
    ("permanent", "permanent"),
    ("huge", "permanent"),
    ("forbidden", "permanent"),
];

/// How many records of a poison kind are produced: fewer sleepers (each
/// costs a whole deadline per attempt) and aliased outboxes.
fn count_of(kind: &str) -> usize {
    if kind.starts_with("sleep") || kind.starts_with("alias") {
        PER_KIND / 5
    } else {
        PER_KIND
    }
}

/// Values of the records, in produce order: good ones with poison spread
/// evenly among them, plus retryable-once and slow records (which must
/// succeed, not be dead-lettered).
fn values() -> Vec<String> {
    let mut poison = Vec::new();
    for i in 0..PER_KIND {
        for (kind, _) in DEAD {
            if i >= count_of(kind) {
                continue;
            }
            poison.push(format!("{kind}#{i}"));
        }
        poison.push(format!("retry:r{i}:1"));
        poison.push("slow:5".to_owned());
    }
    let every = GOOD / poison.len();
    let mut out = Vec::with_capacity(GOOD + poison.len());
    let mut poison = poison.into_iter();
    for i in 0..GOOD {
        out.push(format!("good-{i:05}"));
        if i % every == every - 1
            && let Some(p) = poison.next()
        {
            out.push(p);
        }
    }
    out.extend(poison);
    out
}

fn header<'a>(m: &'a rdkafka::message::OwnedMessage, name: &str) -> Option<&'a str> {
    let h = m.headers()?;
    (0..h.count())
        .map(|i| h.get(i))
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

#[test]
fn poison_records_are_dead_lettered_while_neighbours_and_other_tenants_flow() -> Result<()> {
    let [input, output, dlq, healthy_in, healthy_out] = kafka::fresh_topics(
        [
            "hostile-in",
            "hostile-out",
            "hostile-dlq",
            "healthy-in",
            "healthy-out",
        ],
        4,
    )?;
    let values = values();
    let produced = kafka::produce(
        &input,
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), v.as_str(), Some((i % 4) as i32))),
    )?;
    let healthy: Vec<String> = (0..5_000).map(|i| format!("healthy-{i:05}")).collect();
    kafka::produce(
        &healthy_in,
        healthy.iter().map(|v| (v.as_str(), v.as_str(), None)),
    )?;

    let hostile = Deployment::new(
        "hostile",
        &runner::fixture_wasm("hostile")?,
        &input,
        &kafka::unique("grp"),
    )
    .output(&output)
    .batch(50, 5)
    .config("output_topic", &output)
    .set("limits", "deadline_ms", 200)
    .set("limits", "memory_mib", 16)
    .set("limits", "max_output_records", 10_000)
    .set("limits", "max_output_bytes", 4 << 20)
    .set("failure", "dead_letter_topic", runner::toml_str(&dlq))
    .set("failure", "max_attempts", 2)
    .set("failure", "backoff_initial_ms", 10);
    let healthy_group = kafka::unique("grp");
    let healthy_dep = Deployment::new(
        "healthy",
        &runner::guest_wasm("identity")?,
        &healthy_in,
        &healthy_group,
    )
    .output(&healthy_out)
    .config("output_topic", &healthy_out);
    let hostile_group = hostile.group.clone();
    let mut ingesta = RunnerProcess::spawn(&runner::config_toml(&[hostile, healthy_dep]))?;

    ingesta.wait_until_committed_to_end(&healthy_group, &healthy_in, TIMEOUT)?;
    ingesta.wait_until_committed_to_end(&hostile_group, &input, TIMEOUT)?;
    if let Some(status) = ingesta.try_status()? {
        bail!("ingesta exited with {status}:\n{}", ingesta.log());
    }

    // The healthy tenant got everything.
    let got = kafka::read_to_end(&healthy_out, TIMEOUT)?;
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for m in &got {
        *seen.entry(m.payload().unwrap_or_default()).or_default() += 1;
    }
    let missing = healthy
        .iter()
        .filter(|v| !seen.contains_key(v.as_bytes()))
        .count();
    ensure!(
        missing == 0,
        "the healthy deployment lost {missing} records"
    );

    // Every poison record is in the dead-letter topic exactly once, with
    // provenance headers pointing at where it was produced.
    let position: HashMap<&str, (i32, i64)> = values
        .iter()
        .map(String::as_str)
        .zip(produced.positions.iter().copied())
        .collect();
    let dead = kafka::read_to_end(&dlq, TIMEOUT)?;
    let mut by_value: BTreeMap<String, usize> = BTreeMap::new();
    for m in &dead {
        let value = kafka::value_str(m)?.to_owned();
        let kind = value.split('#').next().unwrap_or_default();
        let Some((_, class)) = DEAD.iter().find(|(k, _)| *k == kind) else {
            bail!(
                "record {value:?} was dead-lettered but is not poison ({:?}: {:?})",
                header(m, "ingesta.error.class"),
                header(m, "ingesta.error.message")
            );
        };
        let (partition, offset) = position[value.as_str()];
        let expect = [
            ("ingesta.source.topic", input.clone()),
            ("ingesta.source.partition", partition.to_string()),
            ("ingesta.source.offset", offset.to_string()),
            ("ingesta.deployment", "hostile".to_owned()),
            ("ingesta.error.class", (*class).to_owned()),
        ];
        for (name, want) in expect {
            let got = header(m, name);
            ensure!(
                got == Some(want.as_str()),
                "{value:?}: header {name} is {got:?}, expected {want:?}"
            );
        }
        let digest = header(m, "ingesta.module.digest").unwrap_or_default();
        ensure!(
            digest.starts_with("sha256:"),
            "{value:?}: digest {digest:?}"
        );
        ensure!(
            header(m, "ingesta.source.timestamp").is_some_and(|t| t.parse::<i64>().is_ok()),
            "{value:?}: no source timestamp"
        );
        ensure!(
            header(m, "ingesta.error.message").is_some_and(|t| !t.is_empty()),
            "{value:?}: no error message"
        );
        if kind.starts_with("alias") {
            let message = header(m, "ingesta.error.message").unwrap_or_default();
            ensure!(
                message.contains("limits.max_output_bytes"),
                "{value:?}: the refusal should name the output byte cap: {message:?}"
            );
        }
        let attempts: u32 = header(m, "ingesta.error.attempts")
            .context("no attempts header")?
            .parse()?;
        ensure!(attempts >= 1, "{value:?}: attempts {attempts}");
        let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let index = values.iter().position(|v| *v == value).unwrap();
        ensure!(
            key.as_deref() == Some(format!("k{index}").as_str()),
            "{value:?}: the key was not kept: {key:?}"
        );
        *by_value.entry(value).or_default() += 1;
    }
    let twice: Vec<_> = by_value.iter().filter(|(_, n)| **n > 1).collect();
    ensure!(twice.is_empty(), "dead-lettered more than once: {twice:?}");
    for (kind, _) in DEAD {
        let n = by_value.keys().filter(|v| v.starts_with(kind)).count();
        let want = count_of(kind);
        ensure!(n == want, "{n} of {want} {kind} records were dead-lettered");
    }

    // Every other record produced its output (retryable ones after a retry,
    // slow ones within the deadline).
    let outputs = kafka::read_to_end(&output, TIMEOUT)?;
    let mut out_seen: HashMap<&[u8], usize> = HashMap::new();
    for m in &outputs {
        *out_seen.entry(m.payload().unwrap_or_default()).or_default() += 1;
    }
    let expected_out: Vec<&String> = values
        .iter()
        .filter(|v| !DEAD.iter().any(|(k, _)| v.starts_with(k)))
        .collect();
    let lost: Vec<_> = expected_out
        .iter()
        .filter(|v| !out_seen.contains_key(v.as_bytes()))
        .take(10)
        .collect();
    ensure!(
        lost.is_empty(),
        "records without output (first 10): {lost:?}"
    );
    println!(
        "inputs={} dead_lettered={} outputs={} healthy_outputs={}",
        values.len(),
        dead.len(),
        outputs.len(),
        got.len()
    );

    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(status.success(), "ingesta exited with {status}:\n{log}");
    kafka::delete_topics(&[&input, &output, &dlq, &healthy_in, &healthy_out]);
    Ok(())
}
