//! The Prometheus exposition of a runner: its own families, every
//! deployment's, their states, and each consumer deployment's lag. Pure
//! formatting of what the caller gathered (the control plane reads the
//! supervisor's views and the runner's offsets service): a scrape does no
//! other work.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::DeploymentTelemetry;
use super::metrics::{self, RunnerMetrics, ScrapeFamilies};
use crate::deployment::State;

/// One deployment, as a scrape shows it.
pub struct Entry {
    /// `<tenant>/<name>` or the config-file name.
    pub key: String,
    /// Its current state; its series of `ingesta_deployment_state` is 1
    /// and it counts towards `ingesta_deployments` for that state.
    pub state: State,
    /// Its families, exported with the runner's.
    pub telemetry: Arc<DeploymentTelemetry>,
    /// `(topic, partition, lag)` per input partition, if known.
    pub lag: Vec<(String, i32, i64)>,
    /// `(topic, partition)` of each input partition this runner consumes.
    pub assigned: Vec<(String, i32)>,
}

/// The text exposition of `runner` and `entries`, on the runner named
/// `runner_id`.
pub fn metrics_text(runner: Option<&RunnerMetrics>, runner_id: &str, entries: &[Entry]) -> String {
    let scrape = ScrapeFamilies::new();
    let mut families = runner.map(RunnerMetrics::collect).unwrap_or_default();
    let mut by_state: BTreeMap<State, i64> = State::ALL.iter().map(|s| (*s, 0)).collect();
    for e in entries {
        scrape
            .state
            .with_label_values(&[e.key.as_str(), e.state.as_str()])
            .set(1);
        *by_state.entry(e.state).or_default() += 1;
        families.extend(e.telemetry.metrics.collect());
        for (topic, partition, lag) in &e.lag {
            scrape
                .lag
                .with_label_values(&[e.key.as_str(), topic, &partition.to_string()])
                .set(*lag);
        }
        for (topic, partition) in &e.assigned {
            scrape
                .assigned
                .with_label_values(&[e.key.as_str(), topic, &partition.to_string(), runner_id])
                .set(1);
        }
    }
    for (state, n) in by_state {
        scrape.by_state.with_label_values(&[state.as_str()]).set(n);
    }
    families.extend(scrape.collect());
    metrics::encode(families)
}
