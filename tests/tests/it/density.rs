//! Many deployments on one runner: 300 identity consumer deployments
//! (each with a group of its own, all on one input topic) created through
//! the API on one runner process. Awake and idle they cost at most 4 MiB
//! of resident memory each (measured ~1.5 MiB; 9.4 MiB before mimalloc
//! stopped committing whole arenas per thread, which this bound would
//! catch). Once they sleep (`sleep_after_ms` 10 s here) they cost at most
//! 1 MiB each (measured ~0.15 MiB). One record then wakes all 300 and each
//! handles it: 300 outputs, none missing. `density-bench` measures the
//! same at any size, with CPU (docs/benchmarks.md, "Density").

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, TENANT_A, upload, wait_count};
use ingesta_tests::kafka;
use ingesta_tests::runner;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);
const DEPLOYMENTS: usize = 300;
const MAX_MIB_ASLEEP: f64 = 1.0;
const MAX_MIB_AWAKE: f64 = 4.0;

fn rss_mib(pid: u32) -> Result<f64> {
    Ok(ingesta_tests::proc::sample(pid)?.rss_kib as f64 / 1024.0)
}

#[test]
fn three_hundred_deployments_sleep_cheaply_and_all_wake_on_one_record() -> Result<()> {
    let (mut ingesta, api) = control::start_runner(8, "[runtime]\nsleep_after_ms = 10000\n")?;
    let a = TENANT_A.token;
    let digest = upload(&api, a, std::fs::read(runner::guest_wasm("identity")?)?)?;
    let [input, output] = kafka::fresh_topics(["a-dense-in", "a-dense-out"], 2)?;
    std::thread::sleep(Duration::from_secs(2));
    let before = rss_mib(ingesta.pid())?;
    let created = Instant::now();
    for i in 0..DEPLOYMENTS {
        control::create(
            &api,
            a,
            &json!({
                "name": format!("dense-{i}"), "module": digest, "inputs": [input],
                "group": kafka::unique("a-dense"), "outputs": [output],
                "config": { "output_topic": output },
            }),
        )?;
    }
    eprintln!(
        "{DEPLOYMENTS} deployments created in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    // Awake (the first ones may already sleep if creating took long: then
    // this bound is only looser).
    wait_count(&api, a, &["running", "sleeping"], DEPLOYMENTS, TIMEOUT)?;
    std::thread::sleep(Duration::from_secs(2));
    let awake = (rss_mib(ingesta.pid())? - before) / DEPLOYMENTS as f64;
    eprintln!("{DEPLOYMENTS} idle deployments, awake: {awake:.2} MiB of RSS each");
    ensure!(
        awake <= MAX_MIB_AWAKE,
        "{DEPLOYMENTS} awake idle deployments cost {awake:.2} MiB of RSS each (at most {MAX_MIB_AWAKE})"
    );

    wait_count(&api, a, &["sleeping"], DEPLOYMENTS, TIMEOUT)?;
    let asleep = (rss_mib(ingesta.pid())? - before) / DEPLOYMENTS as f64;
    eprintln!("{DEPLOYMENTS} sleeping deployments: {asleep:.2} MiB of RSS each");
    ensure!(
        asleep <= MAX_MIB_ASLEEP,
        "{DEPLOYMENTS} sleeping deployments cost {asleep:.2} MiB of RSS each (at most {MAX_MIB_ASLEEP})"
    );

    // One record wakes every deployment reading the topic.
    let woken = Instant::now();
    kafka::produce(&input, [("k", "n-0", Some(0))])?;
    let outputs = kafka::read_all(&output, DEPLOYMENTS, TIMEOUT)?;
    ensure!(
        outputs.len() == DEPLOYMENTS,
        "one record woke {DEPLOYMENTS} deployments but {} outputs arrived",
        outputs.len()
    );
    eprintln!(
        "one record: {DEPLOYMENTS} outputs {:.1} s later",
        woken.elapsed().as_secs_f64()
    );
    ingesta.stop_cleanly(TIMEOUT)?;
    kafka::delete_topics(&[&input, &output]);
    Ok(())
}
