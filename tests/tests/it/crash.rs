//! Crash safety: SIGKILL the runner mid-stream, restart it, and prove that
//! nothing is missing (at-least-once: duplicates are allowed and reported).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, Deployment, RunnerProcess};
use rdkafka::Message;

const TIMEOUT: Duration = Duration::from_secs(90);
const RECORDS: usize = 50_000;
/// Kill once this share of the records has been output.
const KILL_AT: i64 = RECORDS as i64 / 5;

/// A unique value of about 100 bytes for record `i`.
fn value(i: usize) -> String {
    format!("rec-{i:06}-{}", "x".repeat(89))
}

#[test]
fn sigkill_mid_stream_then_restart_loses_nothing() -> Result<()> {
    let input = kafka::unique("crash-in");
    let output = kafka::unique("crash-out");
    let group = kafka::unique("grp");
    kafka::create_topic(&input, 4)?;
    kafka::create_topic(&output, 4)?;
    let values: Vec<String> = (0..RECORDS).map(value).collect();
    let keys: Vec<String> = (0..RECORDS).map(|i| format!("key-{i}")).collect();
    let produced = kafka::produce(&input, keys.iter().zip(&values).map(|(k, v)| (k, v, None)))?;
    ensure!(produced.count() == RECORDS);

    // Small batches so that there are many commits and the kill lands
    // between them.
    let deployment = Deployment::new("identity", &runner::guest_wasm("identity")?, &input, &group)
        .output(&output)
        .batch(100, 5)
        .config("output_topic", &output);
    // Commit often, so the kill lands between commits well before the end.
    // The killed runner's consumer stays a group member until its session
    // times out, and the restarted one waits for that rebalance: keep the
    // session short (the broker's minimum) so the test does not idle 45 s.
    let config = runner::config_toml_with_consumer(
        &[
            ("auto.commit.interval.ms", "100"),
            ("session.timeout.ms", "6000"),
        ],
        &[deployment],
    );

    let mut first = RunnerProcess::spawn(&config)?;
    let out_watch = kafka::Watcher::new(&output, None)?;
    let in_watch = kafka::Watcher::new(&input, Some(&group))?;
    let deadline = Instant::now() + TIMEOUT;
    let started = Instant::now();
    let out_at_kill = loop {
        let n = out_watch.total()?;
        // Kill once a fair share was output and at least one commit landed,
        // so the restart resumes from a committed position mid-stream.
        if n >= KILL_AT && kafka::committed_total(&in_watch.committed()?) > 0 {
            first.sigkill()?;
            break n;
        }
        if first.try_status()?.is_some() {
            bail!("ingesta exited before the kill; log:\n{}", first.log());
        }
        if Instant::now() >= deadline {
            bail!("only {n} outputs within {TIMEOUT:?}; log:\n{}", first.log());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    first.wait(TIMEOUT)?;
    // The kill must have landed mid-stream, or the test proves nothing.
    let committed_at_kill = in_watch.committed()?;
    let committed_total = kafka::committed_total(&committed_at_kill);
    ensure!(
        committed_total < RECORDS as i64,
        "the runner had already committed everything ({committed_at_kill:?}) when it was killed; \
         the test needs more records or smaller batches"
    );
    println!(
        "killed after {out_at_kill} outputs ({:.1}s after start); committed {committed_total} \
         of {RECORDS} ({committed_at_kill:?})",
        started.elapsed().as_secs_f64()
    );

    let mut second = RunnerProcess::spawn(&config)?;
    second.wait_until_committed_to_end(&group, &input, TIMEOUT)?;

    let out = kafka::read_to_end(&output, TIMEOUT)?;
    let mut seen: HashMap<&[u8], usize> = HashMap::with_capacity(RECORDS);
    let key_of: HashMap<&str, &str> = values
        .iter()
        .map(String::as_str)
        .zip(keys.iter().map(String::as_str))
        .collect();
    for m in &out {
        let v = m.payload().unwrap_or_default();
        let text = std::str::from_utf8(v).unwrap_or("<not utf-8>");
        let Some(key) = key_of.get(text) else {
            bail!("output {text:?} was never input");
        };
        ensure!(
            m.key() == Some(key.as_bytes()),
            "output {text:?} lost its key {key:?}"
        );
        *seen.entry(v).or_default() += 1;
    }
    let missing = values
        .iter()
        .filter(|v| !seen.contains_key(v.as_bytes()))
        .count();
    let duplicates = out.len() - seen.len();
    println!(
        "inputs={RECORDS} outputs={} missing={missing} duplicates={duplicates}",
        out.len()
    );
    ensure!(
        missing == 0,
        "{missing} records are missing after the restart"
    );

    second.sigterm()?;
    let (status, log) = second.wait(TIMEOUT)?;
    ensure!(
        status.success(),
        "restarted ingesta exited with {status}:\n{log}"
    );
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
