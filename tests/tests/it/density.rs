//! Idle deployments are cheap: 100 no-op consumer deployments (each with
//! a group of its own, on one idle topic) on one runner process cost at
//! most 4 MiB of resident memory each (measured 1.5 MiB; 9.6 MiB before
//! mimalloc stopped committing whole arenas per thread, which this bound
//! would catch), and every one of them runs. `density-bench` measures the
//! same at any size, with CPU (docs/benchmarks.md, "Density").

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, TENANT_A, upload};
use ingesta_tests::kafka;
use ingesta_tests::runner;
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
const DEPLOYMENTS: usize = 100;
const MAX_MIB_EACH: f64 = 4.0;

fn rss_mib(pid: u32) -> Result<f64> {
    Ok(ingesta_tests::proc::sample(pid)?.rss_kib as f64 / 1024.0)
}

#[test]
fn a_hundred_idle_deployments_cost_little_memory() -> Result<()> {
    let (mut ingesta, api) = control::start_runner(8, "")?;
    let a = TENANT_A.token;
    let digest = upload(&api, a, std::fs::read(runner::guest_wasm("noop")?)?)?;
    let [input] = kafka::fresh_topics(["a-dense-in"], 2)?;
    std::thread::sleep(Duration::from_secs(2));
    let before = rss_mib(ingesta.pid())?;
    for i in 0..DEPLOYMENTS {
        let (status, body) = api.json(
            Method::POST,
            "/v1/deployments",
            Some(a),
            &json!({
                "name": format!("dense-{i}"), "module": digest, "inputs": [input],
                "group": kafka::unique("a-dense"),
            }),
        )?;
        ensure!(
            status == StatusCode::CREATED,
            "create dense-{i}: {status} {body}"
        );
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (_, list) = api.call(Method::GET, "/v1/deployments", Some(a), None)?;
        let running = list
            .as_array()
            .map_or(0, |l| l.iter().filter(|d| d["state"] == "running").count());
        if running == DEPLOYMENTS {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{running} of {DEPLOYMENTS} running"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every consumer has joined its group and gone idle.
    std::thread::sleep(Duration::from_secs(5));
    let each = (rss_mib(ingesta.pid())? - before) / DEPLOYMENTS as f64;
    eprintln!("{DEPLOYMENTS} idle deployments: {each:.2} MiB of RSS each");
    ensure!(
        each <= MAX_MIB_EACH,
        "{DEPLOYMENTS} idle deployments cost {each:.2} MiB of RSS each (at most {MAX_MIB_EACH})"
    );
    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(
        exit.success(),
        "the runner did not stop cleanly: {exit}\n{log}"
    );
    kafka::delete_topics(&[&input]);
    Ok(())
}
