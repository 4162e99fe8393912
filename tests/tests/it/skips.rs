//! Where partitions begin, and what is said when records are skipped, on
//! the real broker:
//! - records deleted below a paused deployment's committed offset (as
//!   retention does): on resume the skipped range is reported exactly
//!   (status note, `ingesta_skipped_records_total`, one warning naming
//!   deployment, topic, partition and offsets) and nothing else is skipped;
//! - a partition added to an input topic while it is consumed, under a
//!   deployment that starts at `latest`: its records are all handled (it
//!   begins at its first offset), while the records before the deployment
//!   was created are not.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, TENANT_A};
use ingesta_tests::fleet::Member;
use ingesta_tests::kafka;
use ingesta_tests::metrics;
use ingesta_tests::runner;
use rdkafka::Message;
use reqwest::Method;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

fn keys(topic: &str, expected: usize) -> Result<BTreeSet<String>> {
    Ok(kafka::read_all(topic, expected, TIMEOUT)?
        .iter()
        .filter_map(|m| m.key().map(|k| String::from_utf8_lossy(k).into_owned()))
        .collect())
}

fn numbered(range: std::ops::Range<usize>, partition: i32) -> Vec<(String, String, Option<i32>)> {
    range
        .map(|i| (format!("k{i}"), format!("v{i}"), Some(partition)))
        .collect()
}

#[test]
fn records_deleted_below_the_committed_offset_are_reported_exactly() -> Result<()> {
    let mut member = Member::start(&control::state_prefix(), "", TIMEOUT)?;
    let api = &member.api;
    let token = TENANT_A.token;
    let [input, output] = kafka::fresh_topics(["a-gap-in", "a-gap-out"], 1)?;
    let group = kafka::unique("a-gap");
    kafka::produce(&input, numbered(0..100, 0))?;
    control::deploy_module(
        api,
        token,
        &runner::fixture_wasm("hostile")?,
        json!({
            "name": "gap",
            "inputs": [input],
            "group": group,
            "outputs": [output],
            "config": { "output_topic": output },
        }),
    )?;
    member
        .process
        .wait_until_committed_to_end(&group, &input, TIMEOUT)?;
    let (status, body) = api.call(Method::POST, "/v1/deployments/gap/pause", Some(token), None)?;
    ensure!(status.is_success(), "pause: {status} {body}");

    // While it is paused: 100 more records, and the first half of them
    // deleted, as retention would.
    kafka::produce(&input, numbered(100..200, 0))?;
    let low = kafka::delete_records_before(&input, 0, 150)?;
    ensure!(low == 150, "the first offset is {low} after deleting");
    let (status, body) = api.call(
        Method::POST,
        "/v1/deployments/gap/resume",
        Some(token),
        None,
    )?;
    ensure!(status.is_success(), "resume: {status} {body}");
    member
        .process
        .wait_until_committed_to_end(&group, &input, TIMEOUT)?;

    let status = control::wait_status(api, token, "gap", "showing the gap", TIMEOUT, |s| {
        !s.notes.skipped.is_empty()
    })?;
    let gaps = &status.notes.skipped;
    ensure!(
        gaps.len() == 1
            && gaps[0].topic == input
            && gaps[0].partition == 0
            && gaps[0].from == 100
            && gaps[0].to == 150,
        "the gap should be exactly offsets 100..150 of partition 0: {gaps:?}"
    );
    let scrape = metrics::scrape(api)?;
    let skipped = scrape.sum(
        "ingesta_skipped_records_total",
        &[("deployment", "tenant-a/gap"), ("partition", "0")],
    );
    ensure!(
        skipped == 50.0,
        "ingesta_skipped_records_total is {skipped}"
    );
    let log = member.process.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("records skipped"))
        .collect();
    ensure!(
        warned.len() == 1
            && warned[0].contains("tenant-a/gap")
            && warned[0].contains(&input)
            && warned[0].contains("from=100")
            && warned[0].contains("to=150"),
        "one warning naming deployment, topic, partition and offsets: {warned:?}"
    );

    // Nothing but the deleted records is missing.
    let seen = keys(&output, 150)?;
    let expected: BTreeSet<String> = (0..100).chain(150..200).map(|i| format!("k{i}")).collect();
    let missing: Vec<&String> = expected.difference(&seen).collect();
    let extra: Vec<&String> = seen.difference(&expected).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?}"
    );
    member.stop(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}

#[test]
fn a_partition_added_while_consuming_is_handled_from_its_first_record() -> Result<()> {
    // New partitions are noticed at the metadata refresh (30 s by default;
    // 2 s here to keep the test short).
    let mut member = Member::start(
        &control::state_prefix(),
        "[kafka.consumer]\n\"topic.metadata.refresh.interval.ms\" = 2000\n",
        TIMEOUT,
    )?;
    let api = &member.api;
    let [input, output] = kafka::fresh_topics(["a-grow-in", "a-grow-out"], 1)?;
    let group = kafka::unique("a-grow");
    // Before the deployment exists: not for a deployment starting at
    // `latest`.
    kafka::produce(&input, numbered(0..5, 0))?;
    control::deploy_module(
        api,
        TENANT_A.token,
        &runner::fixture_wasm("hostile")?,
        json!({
            "name": "grow",
            "inputs": [input],
            "group": group,
            "outputs": [output],
            "start": "latest",
            "config": { "output_topic": output },
        }),
    )?;
    kafka::produce(&input, numbered(5..10, 0))?;
    member
        .process
        .wait_until_committed_to_end(&group, &input, TIMEOUT)?;

    // A second partition, written at once, before the deployment can have
    // noticed it.
    kafka::add_partitions(&input, 2)?;
    kafka::produce(&input, numbered(10..20, 1))?;
    member
        .process
        .wait_until_committed_to_end(&group, &input, TIMEOUT)?;

    let seen = keys(&output, 15)?;
    let expected: BTreeSet<String> = (5..20).map(|i| format!("k{i}")).collect();
    ensure!(
        seen == expected,
        "the output should hold k5..k19 (not k0..k4, written before the deployment): {seen:?}"
    );
    member.stop(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
