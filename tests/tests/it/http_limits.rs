//! The control API's accept loop on a runner process: a client that
//! trickles its headers is disconnected at the header read timeout, and
//! past `control.max_connections` new connections wait (unserved) until
//! one closes, after which the API answers again; an ingest body that
//! trickles in is answered 408 at the body read timeout and frees its
//! permit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use ingesta_tests::control::{self, Api, TENANT_A};
use ingesta_tests::kafka;
use ingesta_tests::runner::{self, RunnerProcess};
use reqwest::Method;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);
const HEADER_TIMEOUT_MS: u64 = 2000;
const MAX_CONNECTIONS: usize = 4;

/// Reads until the server closes `stream` (EOF or reset); fails after
/// `within`.
fn wait_closed(stream: &mut TcpStream, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Ok(()),
        }
        if Instant::now() > deadline {
            bail!("the server kept a stalled connection open for {within:?}");
        }
    }
}

#[test]
fn slow_clients_are_cut_off_and_connections_are_capped() -> Result<()> {
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 8).replacen(
        "[control]\n",
        &format!(
            "[control]\nmax_connections = {MAX_CONNECTIONS}\nheader_read_timeout_ms = {HEADER_TIMEOUT_MS}\n"
        ),
        1,
    );
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;

    // Slowloris: half a request, then nothing. Every slot is taken.
    let mut stalled: Vec<TcpStream> = (0..MAX_CONNECTIONS)
        .map(|_| -> Result<TcpStream> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")?;
            Ok(s)
        })
        .collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_millis(300));
    // One more connection is not served while they hold every slot (well
    // before the header timeout frees them).
    let quick = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()?;
    let refused = quick.get(format!("{}/healthz", api.base())).send();
    ensure!(
        refused.is_err(),
        "a connection past max_connections was served: {refused:?}"
    );
    // The header timeout disconnects the stalled clients...
    for s in &mut stalled {
        wait_closed(s, Duration::from_millis(HEADER_TIMEOUT_MS) * 5)?;
    }
    // ...and the API answers again.
    let (status, _) = api.call(Method::GET, "/healthz", None, None)?;
    ensure!(
        status.is_success(),
        "healthz after the stalled clients left: {status}"
    );

    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");
    Ok(())
}

/// An ingest request whose body trickles in is answered 408 at the body
/// read timeout and gives its concurrency permit back: the deployment's
/// only permit serves the next request at once.
#[test]
fn a_trickled_ingest_body_is_cut_off_and_frees_its_permit() -> Result<()> {
    const BODY_TIMEOUT_MS: u64 = 1000;
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 8).replacen(
        "[control]\n",
        &format!("[control]\nbody_read_timeout_ms = {BODY_TIMEOUT_MS}\n"),
        1,
    );
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let [topic] = kafka::fresh_topics(["a-trickle"], 1)?;
    control::deploy_module(
        &api,
        TENANT_A.token,
        &runner::fixture_wasm("hostile_producer")?,
        json!({
            "name": "trickle", "outputs": [topic], "config": { "output_topic": topic },
            "ingest": { "max_concurrency": 1 }
        }),
    )?;

    let mut slow = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        slow,
        "POST /v1/ingest/trickle HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n0123456789",
        TENANT_A.token
    )?;
    let started = Instant::now();
    slow.set_read_timeout(Some(Duration::from_millis(BODY_TIMEOUT_MS * 10)))?;
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    while !answer.contains("\r\n\r\n") {
        let n = slow.read(&mut buf)?;
        ensure!(n > 0, "the connection closed without an answer: {answer:?}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let waited = started.elapsed();
    ensure!(
        answer.starts_with("HTTP/1.1 408"),
        "a trickled body was answered: {answer}"
    );
    ensure!(
        waited >= Duration::from_millis(BODY_TIMEOUT_MS / 2),
        "answered after {waited:?}, before the body timeout"
    );
    // The permit is free again: a whole request is served.
    let (status, body) = api.call(
        Method::POST,
        "/v1/ingest/trickle",
        Some(TENANT_A.token),
        Some(b"whole".to_vec()),
    )?;
    ensure!(
        status == reqwest::StatusCode::ACCEPTED,
        "the next request: {status} {body}"
    );
    let out = kafka::read_all(&topic, 1, TIMEOUT)?;
    ensure!(out.len() == 1, "published: {}", out.len());

    ingesta.sigterm()?;
    let (exit, log) = ingesta.wait(TIMEOUT)?;
    ensure!(exit.success(), "ingesta exited with {exit}:\n{log}");
    Ok(())
}
