//! Ingestion while the broker stops answering, on a runner process and the
//! real broker, in two outages: frozen (SIGSTOP: connections hang) and
//! stopped (`kafka.sh stop`: connections refused; then `kafka.sh start`).
//! Clients posting shop events get 503 or 429 with `Retry-After` during
//! each outage, never a 2xx for an event Kafka did not take; once the
//! broker is back requests succeed again, and every event that was ever
//! answered 2xx is in Kafka. (A restart can leave the idempotent ingest
//! producer in librdkafka's fatal state; the runner then replaces it, see
//! `producer.rs` for that case on its own.)
//!
//! And a consumer deployment under a steady load while the broker is
//! stopped and started again: it recovers by itself (no operator action),
//! every input has its output, duplicates are reported.
//!
//! Its own test binary: the outages would stall tests running beside it,
//! and cargo runs test binaries one at a time. Its cases take turns
//! ([`OUTAGE`]).

#![allow(
    clippy::too_many_lines,
    reason = "end-to-end scenarios read top to bottom, step by step"
)]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ingesta_tests::control::{self, TENANT_A};
use ingesta_tests::fleet::{self, Load};
use ingesta_tests::kafka;
use ingesta_tests::metrics;
use ingesta_tests::runner;
use ingesta_tests::shop::{self, Event};
use reqwest::{Method, StatusCode};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

/// Held by the case whose outage is under way: one broker, one outage at
/// a time.
static OUTAGE: Mutex<()> = Mutex::new(());

/// `deploy/kafka/kafka.sh <command>`; its standard output.
fn kafka_sh(command: &str) -> Result<String> {
    let out = Command::new("bash")
        .arg(runner::workspace_root().join("deploy/kafka/kafka.sh"))
        .arg(command)
        .output()
        .with_context(|| format!("cannot run kafka.sh {command}"))?;
    ensure!(
        out.status.success(),
        "kafka.sh {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The broker, frozen with SIGSTOP until dropped (SIGCONT), so a failing
/// test cannot leave it stopped for the rest of the suite.
struct Frozen(i32);

impl Frozen {
    fn broker() -> Result<Self> {
        let pid: i32 = kafka_sh("pid")?.trim().parse()?;
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

/// The broker, stopped until [`Stopped::start`] or drop (which starts it
/// again for the rest of the suite).
struct Stopped(bool);

impl Stopped {
    fn broker() -> Result<Self> {
        kafka_sh("stop")?;
        Ok(Self(true))
    }

    fn start(mut self) -> Result<()> {
        self.0 = false;
        kafka_sh("start").map(drop)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.0 {
            let _ = kafka_sh("start");
        }
    }
}

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Before,
    Frozen,
    Thawed,
    Stopped,
    Restarted,
}

const PHASES: [Phase; 5] = [
    Phase::Before,
    Phase::Frozen,
    Phase::Thawed,
    Phase::Stopped,
    Phase::Restarted,
];

/// What the clients saw, by the phase a request was sent in.
#[derive(Default)]
struct Seen {
    /// Events answered 2xx.
    acked: BTreeSet<usize>,
    /// Answers that were neither 2xx nor a 429/503 with `Retry-After`.
    unexpected: Vec<String>,
    /// 2xx answers per phase. A request sent near the end of an outage
    /// may still be answered 2xx: its ack arrived within `ack_timeout_ms`
    /// once the broker was back.
    ok: [usize; 5],
    /// 429 and 503 answers per phase.
    retry_later: [usize; 5],
    /// The body of the latest 503, which says why (for a failure's report).
    last_unavailable: String,
}

#[test]
fn outages_get_retry_later_answers_and_lose_no_acknowledged_event() -> Result<()> {
    let _turn = OUTAGE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ingesta, api) = control::start_runner(8, "")?;
    let [topic] = kafka::fresh_topics(["a-activity"], 2)?;
    control::deploy_module(
        &api,
        TENANT_A.token,
        &runner::guest_wasm("shop-ingest")?,
        json!({
            "name": "ingest", "outputs": [topic], "config": { "topic": topic },
            "ingest": { "ack_timeout_ms": 1500, "max_concurrency": 4 }
        }),
    )?;

    // Bounded: at most EVENTS requests from CLIENTS threads, each pausing
    // PACE between requests, for at most the run's length.
    const EVENTS: usize = 150_000;
    const CLIENTS: usize = 8;
    const PACE: Duration = Duration::from_millis(10);
    let events = shop::numbered_events(11, EVENTS);
    let next = AtomicUsize::new(0);
    let phase = Mutex::new(Phase::Before);
    let done = AtomicBool::new(false);
    let seen = Mutex::new(Seen::default());
    let wait_for_ok = |p: Phase| -> Result<()> {
        let started = Instant::now();
        while seen.lock().unwrap().ok[p as usize] < 100 {
            ensure!(
                started.elapsed() < TIMEOUT,
                "{p:?}: fewer than 100 requests succeeded within {TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    };
    let set = |p: Phase| *phase.lock().unwrap() = p;
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..CLIENTS {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = events.get(i) else { return };
                    let sent_in = *phase.lock().unwrap() as usize;
                    let answer = api
                        .request(Method::POST, "/v1/ingest/ingest", Some(TENANT_A.token))
                        .body(e.to_json())
                        .send();
                    // (status, has Retry-After, body) or the transport error.
                    let answer = answer.map(|r| {
                        let status = r.status();
                        let retry_after = r.headers().contains_key("retry-after");
                        (status, retry_after, r.text().unwrap_or_default())
                    });
                    let mut seen = seen.lock().unwrap();
                    match answer {
                        Ok((status, ..)) if status.is_success() => {
                            seen.acked.insert(i);
                            seen.ok[sent_in] += 1;
                        }
                        Ok((status, true, body))
                            if matches!(
                                status,
                                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                            ) =>
                        {
                            seen.retry_later[sent_in] += 1;
                            if status == StatusCode::SERVICE_UNAVAILABLE {
                                seen.last_unavailable = body;
                            }
                        }
                        Ok((status, _, body)) => {
                            seen.unexpected.push(format!("event {i}: {status} {body}"))
                        }
                        Err(e) => seen.unexpected.push(format!("event {i}: {e:#}")),
                    }
                    drop(seen);
                    std::thread::sleep(PACE);
                }
            });
        }
        let run = || -> Result<()> {
            wait_for_ok(Phase::Before)?;
            {
                let _frozen = Frozen::broker()?;
                set(Phase::Frozen);
                std::thread::sleep(Duration::from_secs(5));
            }
            set(Phase::Thawed);
            wait_for_ok(Phase::Thawed)?;
            let stopped = Stopped::broker()?;
            set(Phase::Stopped);
            std::thread::sleep(Duration::from_secs(3));
            // From here the broker is coming back.
            set(Phase::Restarted);
            stopped.start()?;
            wait_for_ok(Phase::Restarted)
        };
        let result = run();
        done.store(true, Ordering::Relaxed);
        result
    })
    .with_context(|| {
        let seen = seen.lock().unwrap();
        format!(
            "per phase {PHASES:?}: ok {:?}, retry-later {:?}; the latest 503 said {:?}; other answers {:?}; runner log:\n{}",
            seen.ok,
            seen.retry_later,
            seen.last_unavailable,
            &seen.unexpected[..seen.unexpected.len().min(5)],
            ingesta.log()
        )
    })?;

    let seen = seen.into_inner().unwrap();
    // Whether librdkafka declared the ingest producer's client fatal (it
    // happens after some restarts) and the runner replaced it.
    let replaced = metrics::scrape(&api)?.sum(
        "ingesta_kafka_producer_replacements_total",
        &[("producer", "ingest")],
    ) as u64;
    eprintln!(
        "per phase {:?}: ok {:?}, retry-later {:?}; acknowledged {}; ingest producer replaced {replaced} times",
        PHASES,
        seen.ok,
        seen.retry_later,
        seen.acked.len()
    );
    ensure!(
        seen.unexpected.is_empty(),
        "answers other than 2xx, 429 or 503 with Retry-After: {:?}",
        &seen.unexpected[..seen.unexpected.len().min(5)]
    );
    for p in [Phase::Frozen, Phase::Stopped] {
        ensure!(
            seen.retry_later[p as usize] > 0,
            "no 503/429 while the broker was {p:?}"
        );
    }

    // Every acknowledged event is in Kafka (a 503'd one may be too: the
    // records can arrive after their request gave up).
    let mut present = BTreeSet::new();
    for m in kafka::read_to_end(&topic, TIMEOUT)? {
        let e: Event = serde_json::from_str(kafka::value_str(&m)?)?;
        present.insert(shop::event_number(&e));
    }
    let missing: Vec<&usize> = seen.acked.difference(&present).collect();
    ensure!(
        missing.is_empty(),
        "{} of {} acknowledged events are missing from Kafka, e.g. {:?}",
        missing.len(),
        seen.acked.len(),
        &missing[..missing.len().min(5)]
    );
    Ok(())
}

#[test]
fn a_consumer_deployment_recovers_from_a_broker_restart_losing_nothing() -> Result<()> {
    let _turn = OUTAGE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (mut ingesta, api) = control::start_runner(8, "")?;
    let [input, output] = kafka::fresh_topics(["a-bounce-in", "a-bounce-out"], 3)?;
    let group = kafka::unique("a-bounce");
    control::deploy_module(
        &api,
        TENANT_A.token,
        &runner::guest_wasm("identity")?,
        json!({
            "name": "bounce", "inputs": [input], "group": group,
            "outputs": [output], "config": { "output_topic": output },
        }),
    )?;
    let load = Load::start(&input, 3, 200);
    std::thread::sleep(Duration::from_secs(3));
    let stopped = Stopped::broker()?;
    std::thread::sleep(Duration::from_secs(5));
    stopped.start()?;
    std::thread::sleep(Duration::from_secs(5));
    let sent = load.stop()?;
    kafka::wait_until_committed_to_end_while(&group, &input, Duration::from_secs(120), || {
        if let Some(exit) = ingesta.try_status()? {
            anyhow::bail!("the runner exited ({exit}):\n{}", ingesta.log());
        }
        Ok(())
    })?;
    let duplicates = fleet::check_outputs(&output, sent, TIMEOUT)?;
    let status = control::wait_status(&api, TENANT_A.token, "bounce", "running", TIMEOUT, |s| {
        s.state.as_str() == "running"
    })?;
    ensure!(
        status.counters.records_in >= sent as u64,
        "handled {} of {sent}",
        status.counters.records_in
    );
    eprintln!(
        "broker restart under a consumer deployment: {sent} records, nothing missing, {duplicates} duplicates, running again by itself"
    );
    Ok(())
}
