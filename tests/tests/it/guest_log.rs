//! A deployment's guest log is bounded: stdout lines and log calls share
//! one budget per deployment; a guest writing thousands of lines gets its
//! burst through, the rest are dropped and reported, and its records still
//! flow.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, Deployment, RunnerProcess};

const TIMEOUT: Duration = Duration::from_secs(60);
const RATE: usize = 20;
const BURST: usize = 100;
/// Stdout lines first (all within the burst), then far more log lines.
const PRINTED: usize = 50;
const LOGGED: usize = 3_000;

#[test]
fn guest_log_and_stdout_are_rate_limited_and_drops_reported() -> Result<()> {
    let [input, output] = kafka::fresh_topics(["chatty-in", "chatty-out"], 1)?;
    let values = [
        format!("print:{PRINTED}"),
        format!("log:{LOGGED}"),
        "good".to_owned(),
    ];
    kafka::produce(&input, values.iter().map(|v| ("k", v.as_str(), Some(0))))?;

    let deployment = Deployment::new(
        "chatty",
        &runner::fixture_wasm("hostile")?,
        &input,
        &kafka::unique("grp"),
    )
    .output(&output)
    .config("output_topic", &output)
    .set("limits", "log_lines_per_second", RATE)
    .set("limits", "log_burst_lines", BURST);
    let started = Instant::now();
    let mut ingesta = RunnerProcess::spawn(&runner::config_toml(&[deployment]))?;
    let out = kafka::read_all(&output, values.len(), TIMEOUT)?;
    let out: Vec<&str> = out.iter().map(kafka::value_str).collect::<Result<_>>()?;
    ensure!(out == values, "records must still flow: got {out:?}");
    ingesta.wait_for_log("guest log lines were dropped", TIMEOUT)?;
    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(status.success(), "ingesta exited with {status}:\n{log}");
    let elapsed = started.elapsed().as_secs_f64();

    let logged = log
        .lines()
        .filter(|l| l.contains("hostile: log line"))
        .count();
    let printed = log
        .lines()
        .filter(|l| l.contains("hostile: stdout line") && l.contains("stdout"))
        .count();
    let allowed = BURST + (RATE as f64 * elapsed).ceil() as usize;
    println!(
        "{printed} of {PRINTED} stdout lines and {logged} of {LOGGED} log lines got through in {elapsed:.1} s (budget {allowed})"
    );
    ensure!(
        printed == PRINTED,
        "all {PRINTED} stdout lines fit in the burst, {printed} reached the runner's log"
    );
    ensure!(logged > 0, "no guest log line reached the runner's log");
    ensure!(
        logged + printed <= allowed,
        "{} guest lines got through, more than the burst of {BURST} plus {RATE}/s over {elapsed:.1} s",
        logged + printed
    );
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
