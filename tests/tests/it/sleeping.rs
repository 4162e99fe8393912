//! Scale to zero and back: a consumer deployment caught up and idle for
//! `runtime.sleep_after_ms` (1.5 s here; 60 s by default) sleeps — its
//! consumer released, `sleeping` in status, `ingesta ls` and the metrics,
//! its lag still reported — and wakes when records arrive. Over five
//! rounds of sleep and wake every input has its output, none twice (a
//! sleep commits what was handled, so a wake redelivers nothing).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, State, TENANT_A, deploy_module, wait_status};
use ingesta_tests::fleet::check_outputs;
use ingesta_tests::{kafka, metrics, runner};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);
const ROUNDS: usize = 5;
const PER_ROUND: usize = 30;

#[test]
fn a_sleeping_deployment_wakes_on_new_records_and_loses_nothing() -> Result<()> {
    let (mut ingesta, api) =
        control::start_runner(8, "[runtime]\nsleep_after_ms = 1500\nwake_check_ms = 100\n")?;
    let a = TENANT_A.token;
    let [input, output] = kafka::fresh_topics(["a-sleep-in", "a-sleep-out"], 3)?;
    let name = "sleepy";
    deploy_module(
        &api,
        a,
        &runner::guest_wasm("identity")?,
        json!({
            "name": name, "inputs": [input], "group": kafka::unique("a-sleep"),
            "outputs": [output], "config": { "output_topic": output },
        }),
    )?;
    let mut sent = 0;
    for round in 0..ROUNDS {
        let asleep = wait_status(&api, a, name, "sleeping", TIMEOUT, |s| {
            s.state == State::Sleeping
        })?;
        // Asleep, and still accounted for: every partition's lag is read
        // from the group's commits, which are at the end.
        ensure!(
            asleep.partitions.len() == 3 && asleep.total_lag() == Some(0),
            "round {round}: a sleeping deployment's lag: {:?}",
            asleep.partitions
        );
        if round == 0 {
            let ls = control::cli(api.base(), Some(a), &["ls"])?;
            let text = String::from_utf8_lossy(&ls.stdout);
            ensure!(
                text.lines()
                    .any(|l| l.contains(name) && l.contains("sleeping")),
                "ingesta ls does not say the deployment sleeps:\n{text}"
            );
            let scrape = metrics::scrape(&api)?;
            ensure!(
                scrape.sum(
                    "ingesta_deployment_state",
                    &[("deployment", "tenant-a/sleepy"), ("state", "sleeping")]
                ) == 1.0,
                "the state metric does not say the deployment sleeps"
            );
        }
        let records: Vec<(String, String, Option<i32>)> = (sent..sent + PER_ROUND)
            .map(|i| (format!("k-{i}"), format!("n-{i}"), None))
            .collect();
        kafka::produce(&input, records)?;
        sent += PER_ROUND;
        // The outputs arrive once the deployment has woken and handled
        // the records: read the output topic until they are all there.
        let deadline = Instant::now() + TIMEOUT;
        let duplicates = loop {
            match check_outputs(&output, sent, TIMEOUT) {
                Ok(duplicates) => break duplicates,
                Err(e) if Instant::now() > deadline => {
                    let log = ingesta.log();
                    let ours: Vec<&str> = log.lines().filter(|l| l.contains(name)).collect();
                    return Err(e.context(format!(
                        "round {round}, {TIMEOUT:?} after producing; the runner's lines about the deployment:\n{}",
                        ours[ours.len().saturating_sub(40)..].join("\n")
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        ensure!(
            duplicates == 0,
            "round {round}: {duplicates} outputs arrived twice across sleep and wake"
        );
    }
    let scrape = metrics::scrape(&api)?;
    let of = |metric: &str| scrape.sum(metric, &[("deployment", "tenant-a/sleepy")]);
    let (sleeps, wakes) = (
        of("ingesta_deployment_sleeps_total"),
        of("ingesta_deployment_wakes_total"),
    );
    eprintln!(
        "{ROUNDS} rounds: {sleeps} sleeps, {wakes} wakes, {:.0} ms from noticing records to a started consumer on average",
        of("ingesta_deployment_wake_milliseconds_total") / wakes.max(1.0)
    );
    ensure!(
        sleeps >= ROUNDS as f64 && wakes >= ROUNDS as f64,
        "{sleeps} sleeps and {wakes} wakes over {ROUNDS} rounds"
    );
    ingesta.stop_cleanly(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
