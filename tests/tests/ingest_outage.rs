//! Ingestion while the broker stops answering, on a runner process and the
//! real broker: clients posting shop events get 503 or 429 with
//! `Retry-After` while the broker is frozen (SIGSTOP), never a 2xx for
//! an event Kafka did not take; once it continues (SIGCONT) requests
//! succeed again, and every event that was ever answered 2xx is in Kafka.
//!
//! Its own test binary: freezing the shared broker would stall tests
//! running beside it, and cargo runs test binaries one at a time.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, Api, TENANT_A, upload};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, RunnerProcess};
use ingesta_tests::shop::{self, Event};
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The broker, frozen with SIGSTOP until dropped (SIGCONT), so a failing
/// test cannot leave it stopped for the rest of the suite.
struct Frozen(i32);

impl Frozen {
    fn broker() -> Result<Self> {
        let out = Command::new("bash")
            .arg(runner::workspace_root().join("deploy/kafka/kafka.sh"))
            .arg("pid")
            .output()
            .context("cannot run kafka.sh pid")?;
        ensure!(
            out.status.success(),
            "kafka.sh pid: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid: i32 = String::from_utf8(out.stdout)?.trim().parse()?;
        // SAFETY: sending a signal to a process id has no memory effects.
        ensure!(
            unsafe { libc::kill(pid, libc::SIGSTOP) } == 0,
            "SIGSTOP {pid}"
        );
        Ok(Self(pid))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Events answered 2xx.
    acked: BTreeSet<usize>,
    /// Answers that were neither 2xx nor a 429/503 with `Retry-After`.
    unexpected: Vec<String>,
    /// 429 and 503 answers.
    retry_later: usize,
    /// Answers received while the broker was frozen.
    during_freeze: usize,
    /// 2xx answers to requests sent after the broker continued.
    ok_after: usize,
}

#[test]
fn a_frozen_broker_gets_retry_later_answers_and_loses_no_acknowledged_event() -> Result<()> {
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 8);
    let _ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    api.wait_ready(TIMEOUT)?;
    let [topic] = kafka::fresh_topics(["a-activity"], 2)?;
    let module = upload(
        &api,
        TENANT_A.token,
        std::fs::read(runner::guest_wasm("shop-ingest")?)?,
    )?;
    let body = json!({
        "name": "ingest", "module": module, "outputs": [topic], "config": { "topic": topic },
        "ingest": { "ack_timeout_ms": 1500, "max_concurrency": 4 }
    });
    let (status, answer) =
        api.json(Method::POST, "/v1/deployments", Some(TENANT_A.token), &body)?;
    ensure!(status == StatusCode::CREATED, "{status} {answer}");

    // Bounded: at most EVENTS requests from CLIENTS threads, for at most
    // the run's length.
    const EVENTS: usize = 20_000;
    const CLIENTS: usize = 8;
    let events: Vec<Event> = shop::Generator::new(11)
        .take_events(EVENTS)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.ts = shop::START_TS + i as i64;
            e
        })
        .collect();
    let next = AtomicUsize::new(0);
    let frozen = AtomicBool::new(false);
    let resumed = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = events.get(i) else { return };
                    let after_resume = resumed.load(Ordering::Relaxed);
                    let answer = api
                        .request(Method::POST, "/v1/ingest/ingest", Some(TENANT_A.token))
                        .body(e.to_json())
                        .send();
                    let mut seen = seen.lock().unwrap();
                    if frozen.load(Ordering::Relaxed) {
                        seen.during_freeze += 1;
                    }
                    match answer {
                        Ok(r) if r.status().is_success() => {
                            seen.acked.insert(i);
                            if after_resume {
                                seen.ok_after += 1;
                            }
                        }
                        Ok(r)
                            if matches!(
                                r.status(),
                                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                            ) && r.headers().contains_key("retry-after") =>
                        {
                            seen.retry_later += 1;
                            drop(seen);
                            // As a well-behaved client would, briefly.
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Ok(r) => seen.unexpected.push(format!("event {i}: {}", r.status())),
                        Err(e) => seen.unexpected.push(format!("event {i}: {e:#}")),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(2));
        let before = seen.lock().unwrap().acked.len();
        {
            let _frozen = Frozen::broker()?;
            frozen.store(true, Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs(6));
            frozen.store(false, Ordering::Relaxed);
        }
        resumed.store(true, Ordering::Relaxed);
        let resumed_at = Instant::now();
        while seen.lock().unwrap().ok_after < 100 && resumed_at.elapsed() < TIMEOUT {
            std::thread::sleep(Duration::from_millis(100));
        }
        done.store(true, Ordering::Relaxed);
        ensure!(before > 0, "nothing was accepted before the freeze");
        Ok(())
    })?;

    let seen = seen.into_inner().unwrap();
    ensure!(
        seen.unexpected.is_empty(),
        "answers other than 2xx, 429 or 503 with Retry-After: {:?}",
        &seen.unexpected[..seen.unexpected.len().min(5)]
    );
    ensure!(
        seen.retry_later > 0 && seen.during_freeze > 0,
        "the frozen broker never showed: {} retry-later answers, {} during the freeze",
        seen.retry_later,
        seen.during_freeze
    );
    ensure!(
        seen.ok_after >= 100,
        "after the broker continued only {} requests succeeded",
        seen.ok_after
    );

    // Every acknowledged event is in Kafka (a 503'd one may be too: the
    // records can arrive after their request gave up).
    let mut present = BTreeSet::new();
    for m in kafka::read_to_end(&topic, TIMEOUT)? {
        let e: Event = serde_json::from_str(kafka::value_str(&m)?)?;
        present.insert((e.ts - shop::START_TS) as usize);
    }
    let missing: Vec<&usize> = seen.acked.difference(&present).collect();
    ensure!(
        missing.is_empty(),
        "{} of {} acknowledged events are missing from Kafka, e.g. {:?}",
        missing.len(),
        seen.acked.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "acknowledged {}, retry-later answers {}, in Kafka {} distinct",
        seen.acked.len(),
        seen.retry_later,
        present.len()
    );
    Ok(())
}
