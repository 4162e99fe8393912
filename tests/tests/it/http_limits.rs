//! The control API's accept loop on a runner process: a client that
//! trickles its headers is disconnected at the header read timeout, and
//! past `control.max_connections` new connections wait (unserved) until
//! one closes, after which the API answers again.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use ingesta_tests::control::{self, Api};
use ingesta_tests::runner::RunnerProcess;
use reqwest::Method;

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
