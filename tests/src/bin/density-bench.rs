//! `density-bench`: what idle deployments cost (results in
//! docs/benchmarks.md, "Density").
//!
//! One runner process with the control plane; N no-op consumer
//! deployments, each with a group of its own, on one idle input topic,
//! created through the API from several client threads. Measured: the
//! time to create (and later delete) them, then, after the runner has
//! settled, over a window with no traffic at all: the runner's RSS and PSS
//! (`/proc/<pid>/smaps_rollup`), its threads, and the CPU of the runner
//! and of the broker (`/proc/<pid>/stat`, user + system), as a share of
//! one core. The same figures before the first deployment are the
//! baseline; the per-deployment cost is the difference over N.

#![allow(
    clippy::too_many_lines,
    reason = "a tool's main flow reads top to bottom"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser;
use ingesta_tests::control::{self, TENANT_A, upload};
use ingesta_tests::kafka;
use ingesta_tests::proc::{Sample, sample};
use ingesta_tests::runner;
use reqwest::Method;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Measure what idle deployments cost a runner and the broker")]
struct Args {
    /// Deployments to create.
    #[arg(long, default_value_t = 200)]
    deployments: usize,
    /// Partitions of the shared idle input topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Seconds to wait after the last deployment runs, before measuring.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Seconds over which idle CPU is measured.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// Client threads creating and deleting deployments.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// `runtime.sleep_after_ms`: 0 keeps every deployment awake (the cost
    /// of idle consumers); otherwise the idle figures are taken once every
    /// deployment sleeps.
    #[arg(long, default_value_t = 0)]
    sleep_after_ms: u64,
    /// Extra TOML appended to the runner's config (e.g. `[kafka.consumer]`
    /// settings to compare; not `[runtime]`, which `--sleep-after-ms` sets).
    #[arg(long, default_value = "")]
    extra: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "INGESTA_TEST_KAFKA", default_value = kafka::DEFAULT_BOOTSTRAP)]
    bootstrap: String,
}

const TIMEOUT: Duration = Duration::from_secs(600);

fn main() -> std::process::ExitCode {
    ingesta_tests::exit_code(run())
}

/// CPU share of one core used by `pid` over `window`, and the sample at
/// its end.
fn cpu_over(pid: u32, window: Duration) -> Result<(f64, Sample)> {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = sample(pid)?;
    let start = Instant::now();
    std::thread::sleep(window);
    let after = sample(pid)?;
    let share = (after.cpu_ticks - before.cpu_ticks) as f64 / hz / start.elapsed().as_secs_f64();
    Ok((share, after))
}

fn broker_pid() -> Result<u32> {
    let out = std::process::Command::new("bash")
        .arg(runner::workspace_root().join("deploy/kafka/kafka.sh"))
        .arg("pid")
        .output()?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// Run `job(i)` for every `i < n` from `clients` threads.
fn in_parallel(n: usize, clients: usize, job: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        job(i)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| anyhow::anyhow!("a client panicked"))?)
    })
}

fn row(what: &str, share_runner: f64, share_broker: f64, s: &Sample) {
    println!(
        "| {what} | {:.1} | {:.1} | {} | {:.3} | {:.3} |",
        s.rss_kib as f64 / 1024.0,
        s.pss_kib as f64 / 1024.0,
        s.threads,
        share_runner,
        share_broker
    );
}

fn run() -> Result<()> {
    let args = Args::parse();
    kafka::set_bootstrap(&args.bootstrap);
    let extra = format!(
        "{}\n[runtime]\nsleep_after_ms = {}\n",
        args.extra, args.sleep_after_ms
    );
    let (mut ingesta, api) = control::start_runner(8, &extra)?;
    let (pid, broker) = (ingesta.pid(), broker_pid()?);
    let a = TENANT_A.token;
    let digest = upload(&api, a, std::fs::read(runner::guest_wasm("noop")?)?)?;
    let [input] = kafka::fresh_topics(["a-dens-in"], args.partitions)?;
    let window = Duration::from_secs(args.window);

    println!(
        "density: {} no-op deployments on one idle {}-partition topic, {} s window",
        args.deployments, args.partitions, args.window
    );
    println!("| | RSS (MiB) | PSS (MiB) | threads | runner CPU (cores) | broker CPU (cores) |");
    println!("|---|---:|---:|---:|---:|---:|");
    std::thread::sleep(Duration::from_secs(args.settle));
    let (r0, base) = cpu_over(pid, window)?;
    let (b0, _) = cpu_over(broker, window)?;
    row("before", r0, b0, &base);

    let started = Instant::now();
    in_parallel(args.deployments, args.clients, |i| {
        control::create(
            &api,
            a,
            &json!({
                "name": format!("dens-{i}"), "module": digest, "inputs": [input],
                "group": kafka::unique("a-dens"),
            }),
        )?;
        Ok(())
    })?;
    let created = started.elapsed();
    control::wait_count(&api, a, &["running", "sleeping"], args.deployments, TIMEOUT)?;
    let all_running = started.elapsed();
    let asleep = args.sleep_after_ms > 0;
    if asleep {
        control::wait_count(&api, a, &["sleeping"], args.deployments, TIMEOUT)?;
    }
    std::thread::sleep(Duration::from_secs(args.settle));
    // Runner and broker over the same window, measured one after the other.
    let (r1, idle) = cpu_over(pid, window)?;
    let (b1, _) = cpu_over(broker, window)?;
    row(
        &format!(
            "{} idle deployments{}",
            args.deployments,
            if asleep { ", asleep" } else { "" }
        ),
        r1,
        b1,
        &idle,
    );

    let started = Instant::now();
    in_parallel(args.deployments, args.clients, |i| {
        let (status, body) = api.call(
            Method::DELETE,
            &format!("/v1/deployments/dens-{i}"),
            Some(a),
            None,
        )?;
        if !status.is_success() {
            bail!("delete dens-{i}: {status} {body}");
        }
        Ok(())
    })?;
    let deleted = started.elapsed();
    std::thread::sleep(Duration::from_secs(args.settle));
    let (r2, after) = cpu_over(pid, window)?;
    row("after deleting them", r2, 0.0, &after);

    let n = args.deployments as f64;
    println!();
    println!(
        "per deployment: {:.2} MiB RSS, {:.2} MiB PSS, {:.1} threads, {:.4} cores (runner), {:.4} cores (broker)",
        (idle.rss_kib as f64 - base.rss_kib as f64) / 1024.0 / n,
        (idle.pss_kib as f64 - base.pss_kib as f64) / 1024.0 / n,
        (idle.threads as f64 - base.threads as f64) / n,
        (r1 - r0) / n,
        (b1 - b0) / n,
    );
    println!(
        "created in {:.1} s ({:.0} ms each, {} clients), all running after {:.1} s, deleted in {:.1} s",
        created.as_secs_f64(),
        created.as_secs_f64() * 1000.0 / n,
        args.clients,
        all_running.as_secs_f64(),
        deleted.as_secs_f64()
    );
    ingesta.sigterm()?;
    ingesta.wait(Duration::from_secs(120))?;
    kafka::delete_topics(&[&input]);
    Ok(())
}
