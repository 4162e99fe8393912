//! How the CLI prints statuses, lists and guest log lines.

use crate::api::{DeploymentStatus, LogLine};

/// `HH:MM:SS.mmm` (UTC) of a time in ms since the Unix epoch.
pub(super) fn clock(ms: u64) -> String {
    let ms = ms % 86_400_000;
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

/// `HH:MM:SS.mmm LEVEL [stream] message` (UTC).
pub(super) fn log_line(l: &LogLine) -> String {
    let level = format!("{:?}", l.level).to_uppercase();
    let truncated = if l.truncated { " [truncated]" } else { "" };
    format!(
        "{} {level:<5} [{}] {}{truncated}",
        clock(l.time_ms),
        l.stream.as_str(),
        l.message
    )
}

fn short_digest(d: &str) -> &str {
    d.get(..19).unwrap_or(d)
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `ingesta ls`: a line per deployment.
pub(super) fn list(list: &[DeploymentStatus]) {
    println!(
        "{:<28}  {:<12}  {:<8}  {:>4}  {:<20}  {:>10}",
        "name", "tenant", "state", "rev", "module", "records_in"
    );
    for d in list {
        println!(
            "{:<28}  {:<12}  {:<8}  {:>4}  {:<20}  {:>10}",
            d.name,
            d.tenant.as_deref().unwrap_or("-"),
            d.state.as_str(),
            d.revision,
            short_digest(&d.module),
            d.counters.records_in,
        );
    }
}

/// The status as a short report, its notes and a per-partition lag table.
pub(super) fn status(s: &DeploymentStatus) {
    println!("deployment  {}", s.name);
    println!("tenant      {}", s.tenant.as_deref().unwrap_or("-"));
    let reason = s
        .reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    println!("state       {}{reason}", s.state);
    println!("revision    {}", s.revision);
    println!("module      {}", s.module);
    if let Some(prev) = s.previous_modules.last() {
        println!("rollback to {prev}");
    }
    let c = &s.counters;
    println!(
        "counters    in={} out={} batches={} errors={} retries={} traps={} dead_lettered={} log_dropped={}",
        c.records_in,
        c.records_out,
        c.batches,
        c.errors,
        c.retries,
        c.traps,
        c.dead_lettered,
        c.guest_log_dropped
    );
    notes(s);
    runners(s);
    if s.partitions.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<32}  {:>9}  {:>12}  {:>12}  {:>10}  runner",
        "topic", "partition", "committed", "high", "lag"
    );
    for p in &s.partitions {
        println!(
            "{:<32}  {:>9}  {:>12}  {:>12}  {:>10}  {}",
            p.topic,
            p.partition,
            or_dash(p.committed),
            p.high_watermark,
            p.lag,
            p.runner.as_deref().unwrap_or("-")
        );
    }
    println!(
        "{:<32}  {:>9}  {:>12}  {:>12}  {:>10}",
        "total",
        "",
        "",
        "",
        s.total_lag().unwrap_or(0)
    );
}

/// One line per runner of the fleet (when there is more than one).
fn runners(s: &DeploymentStatus) {
    if s.runners.len() < 2 {
        return;
    }
    println!();
    println!(
        "{:<24}  {:<9}  {:>10}  {:>10}  {:>10}  partitions",
        "runner", "state", "in", "out", "errors"
    );
    for r in &s.runners {
        let parts: Vec<String> = r
            .partitions
            .iter()
            .map(|p| p.partition.to_string())
            .collect();
        let mut state = r.state.to_string();
        if r.ticking {
            state.push('*');
        }
        println!(
            "{:<24}  {:<9}  {:>10}  {:>10}  {:>10}  {}",
            r.runner,
            state,
            r.counters.records_in,
            r.counters.records_out,
            r.counters.errors,
            if parts.is_empty() {
                "-".to_owned()
            } else {
                parts.join(",")
            }
        );
    }
    if s.runners.iter().any(|r| r.ticking) {
        println!("(* ticks the schedule)");
    }
}

fn notes(s: &DeploymentStatus) {
    for st in &s.notes.stalled {
        println!(
            "stalled     topic {} partition {}: records waiting, handled to offset {}, end {}, no progress since {}",
            st.topic,
            st.partition,
            or_dash(st.handled_to),
            or_dash(st.high_watermark),
            clock(st.since_ms)
        );
    }
    for d in &s.notes.degraded {
        println!(
            "degraded    topic {} partition {} since {}: {}",
            d.topic,
            d.partition,
            clock(d.since_ms),
            d.reason
        );
    }
    for g in &s.notes.skipped {
        println!(
            "skipped     topic {} partition {} offsets {}..{} ({} records) at {}: {}",
            g.topic,
            g.partition,
            g.from,
            g.to,
            g.to - g.from,
            clock(g.at_ms),
            g.reason
        );
    }
}
