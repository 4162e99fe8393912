//! A process's memory, threads and CPU time as Linux's `/proc` tells
//! them, for the density test and benchmark.

use anyhow::{Context, Result};

/// A process's memory, threads and CPU time so far.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Proportional share of memory (`smaps_rollup`'s `Pss`), KiB.
    pub pss_kib: u64,
    /// Threads.
    pub threads: u64,
    /// User + system CPU time, in clock ticks.
    pub cpu_ticks: u64,
}

fn field_kib(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `pid`'s figures now, from `/proc`.
pub fn sample(pid: u32) -> Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field of the line, stime the 15th.
    let after = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Sample {
        rss_kib: field_kib(&status, "VmRSS:"),
        pss_kib: field_kib(&rollup, "Pss:"),
        threads: field_kib(&status, "Threads:"),
        cpu_ticks: ticks,
    })
}
