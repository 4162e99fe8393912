//! `deploy/monitoring/` matches the runner: every metric a Grafana panel
//! or an alert rule queries is one the runner exports (the list comes from
//! the metric definitions themselves), the dashboard covers lag,
//! throughput, latency, errors and dead letters, and promtool accepts the
//! Prometheus config and rules and passes the alert rules' unit tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use ingesta_runtime::telemetry::metrics::exported_names;
use ingesta_tests::runner::workspace_root;
use serde_json::Value;

fn monitoring() -> PathBuf {
    workspace_root().join("deploy").join("monitoring")
}

/// Every `ingesta_*` metric named in `query`, histogram suffixes removed.
fn metric_names(query: &str) -> Vec<String> {
    let known = exported_names();
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(at) = rest.find("ingesta_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| known.iter().any(|k| k == base))
            .unwrap_or(name);
        out.push(family.to_owned());
        rest = &tail[end..];
    }
    out
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(p);
        all.extend(p["panels"].as_array().into_iter().flatten());
    }
    all
}

#[test]
fn every_dashboard_panel_queries_exported_metrics() -> Result<()> {
    let file = monitoring().join("grafana/dashboards/ingesta.json");
    let text = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
    let dashboard: Value = serde_json::from_str(&text).context("dashboard is not JSON")?;
    let known = exported_names();
    let mut used = Vec::new();
    let mut graphs = 0;
    for panel in panels(&dashboard)
        .into_iter()
        .filter(|p| p["type"] != "row")
    {
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        ensure!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"].as_str().context("a target without expr")?;
            let names = metric_names(expr);
            ensure!(
                !names.is_empty(),
                "panel {title:?} queries no ingesta metric: {expr}"
            );
            for n in names {
                ensure!(
                    known.contains(&n),
                    "panel {title:?} queries {n}, which the runner does not export"
                );
                used.push(n);
            }
        }
        graphs += 1;
    }
    for needed in [
        "ingesta_consumer_lag",
        "ingesta_records_in_total",
        "ingesta_records_out_total",
        "ingesta_handler_seconds",
        "ingesta_handler_errors_total",
        "ingesta_dead_lettered_total",
        "ingesta_deployment_state",
    ] {
        ensure!(used.iter().any(|u| u == needed), "no panel shows {needed}");
    }
    println!("{graphs} panels, all querying exported metrics");
    Ok(())
}

#[test]
fn alert_rules_query_exported_metrics() -> Result<()> {
    let file = monitoring().join("prometheus/alerts.yml");
    let text = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
    let known = exported_names();
    let names = metric_names(&text);
    ensure!(
        names.len() >= 4,
        "the rules name too few metrics: {names:?}"
    );
    for n in names {
        ensure!(
            known.contains(&n),
            "alerts.yml queries {n}, which the runner does not export"
        );
    }
    Ok(())
}

fn promtool(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .context("promtool is missing: `make setup` installs it (Debian package prometheus)")?;
    ensure!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn promtool_accepts_the_config_and_the_alert_tests_pass() -> Result<()> {
    let dir = monitoring().join("prometheus");
    promtool(&dir, &["check", "config", "prometheus.yml"])?;
    promtool(&dir, &["check", "rules", "alerts.yml"])?;
    promtool(&dir, &["test", "rules", "alerts.test.yml"])
}
