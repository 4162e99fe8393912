//! `ingesta top`: a live table of the caller's deployments — state,
//! records in and out per second, failed calls per second, dead letters and
//! consumer lag — refreshed in place from `GET /v1/deployments?lag=true`.
//! Rates are differences between two samples, so the first frame has none.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::ApiClient;
use crate::api::DeploymentStatus;

/// One refresh: every deployment's counters and lag at one instant.
pub struct Sample {
    at: Instant,
    rows: BTreeMap<String, Row>,
}

struct Row {
    state: crate::api::State,
    records_in: u64,
    records_out: u64,
    errors: u64,
    dead_lettered: u64,
    /// Summed over input partitions; `None` when Kafka did not answer.
    lag: Option<i64>,
}

impl Sample {
    /// A sample from a `GET /v1/deployments?lag=true` answer.
    pub fn new(list: &[DeploymentStatus], at: Instant) -> Self {
        let rows = list
            .iter()
            .map(|d| {
                let c = &d.counters;
                let row = Row {
                    state: d.state,
                    records_in: c.records_in,
                    records_out: c.records_out,
                    errors: c.errors,
                    dead_lettered: c.dead_lettered,
                    lag: d.total_lag(),
                };
                (d.key(), row)
            })
            .collect();
        Self { at, rows }
    }
}

/// The table for `cur`, with rates against `prev`.
pub fn render(prev: Option<&Sample>, cur: &Sample, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    let _ = writeln!(
        out,
        "{:<32} {:<8} {:>10} {:>10} {:>8} {:>10} {:>12}",
        "DEPLOYMENT", "STATE", "IN/s", "OUT/s", "ERR/s", "DEAD", "LAG"
    );
    let secs = prev.map(|p| cur.at.duration_since(p.at).as_secs_f64());
    for (name, row) in &cur.rows {
        let before = prev.and_then(|p| p.rows.get(name));
        let rate = |now: u64, then: fn(&Row) -> u64| match (before, secs) {
            (Some(b), Some(s)) if s > 0.0 => {
                format!("{:.0}", now.saturating_sub(then(b)) as f64 / s)
            }
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<32} {:<8} {:>10} {:>10} {:>8} {:>10} {:>12}",
            name,
            row.state.as_str(),
            rate(row.records_in, |r| r.records_in),
            rate(row.records_out, |r| r.records_out),
            rate(row.errors, |r| r.errors),
            row.dead_lettered,
            row.lag.map_or("-".to_owned(), |l| l.to_string()),
        );
    }
    if cur.rows.is_empty() {
        let _ = writeln!(out, "(no deployments)");
    }
    out
}

/// Refresh every `interval` until interrupted, or `frames` times. On a
/// terminal each frame replaces the last; otherwise frames are appended.
pub fn run(client: &ApiClient, interval: Duration, frames: Option<u32>) -> Result<()> {
    let tty = std::io::stdout().is_terminal();
    let mut prev: Option<Sample> = None;
    let mut shown = 0;
    loop {
        let list = client.list_deployments(true)?;
        let cur = Sample::new(&list, Instant::now());
        let title = format!(
            "ingesta top — {} — every {:.1} s — Ctrl-C quits",
            client.base,
            interval.as_secs_f64()
        );
        let frame = render(prev.as_ref(), &cur, &title);
        let mut stdout = std::io::stdout().lock();
        if tty {
            // Home the cursor and clear, so the table refreshes in place.
            write!(stdout, "\x1b[H\x1b[2J{frame}")?;
        } else {
            writeln!(stdout, "{frame}")?;
        }
        stdout.flush()?;
        shown += 1;
        if frames.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        prev = Some(cur);
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(records_in: u64, errors: u64, lag: i64) -> Vec<DeploymentStatus> {
        let part = |lag: i64| json!({"topic": "t", "partition": 0, "committed": 0, "high_watermark": 0, "lag": lag});
        vec![
            serde_json::from_value(json!({
                "name": "stats", "tenant": "shop", "source": "api", "state": "running",
                "reason": null, "module": "m", "revision": 1, "previous_modules": [],
                "settings": null,
                "counters": {"records_in": records_in, "records_out": records_in / 2,
                    "bytes_in": 0, "bytes_out": 0, "batches": 0, "retries": 0, "traps": 0,
                    "guest_log_dropped": 0, "errors": errors, "dead_lettered": 3},
                "partitions": [part(lag - 1), part(1)],
                "updated_by": null, "updated_ms": null
            }))
            .unwrap(),
        ]
    }

    #[test]
    fn rates_come_from_two_samples() {
        let t0 = Instant::now();
        let first = Sample::new(&list(1000, 0, 50), t0);
        let frame = render(None, &first, "t");
        assert!(frame.contains("shop/stats"), "{frame}");
        assert!(frame.lines().nth(2).unwrap().contains(" - "), "{frame}");
        let second = Sample::new(&list(3000, 10, 7), t0 + Duration::from_secs(2));
        let frame = render(Some(&first), &second, "t");
        let row: Vec<&str> = frame.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(row, ["shop/stats", "running", "1000", "500", "5", "3", "7"]);
    }
}
