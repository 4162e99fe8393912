//! What a runner reports about its deployments to the rest of the fleet
//! ([`RunnerReport`]), and how status on any runner merges the reports:
//! one [`RunnerStatus`] per live runner, counters summed, each partition
//! named with the runner consuming it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::api::{AssignedPartition, Counters, DeploymentStatus, RunnerStatus};
use crate::deployment::State;
use crate::supervisor::View;

/// One runner's report, the value of its key in `<prefix>runners`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerReport {
    /// The runner (`runtime.runner_id`).
    pub runner: String,
    /// When it was made, in ms since the Unix epoch (the reporter's clock).
    pub at_ms: u64,
    /// How often the runner reports, in ms.
    pub every_ms: u64,
    /// Its deployments, by key.
    pub deployments: BTreeMap<String, Here>,
}

/// A deployment on the reporting runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Here {
    /// Its state there.
    pub state: State,
    /// Why, when failed, degraded or waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The input partitions it consumes there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<AssignedPartition>,
    /// Whether its schedule ticks there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ticking: bool,
    /// Its counters there.
    pub counters: Counters,
}

impl Here {
    /// The deployment of `view` on this runner, now.
    pub fn of(view: &View) -> Here {
        let (state, reason) = view.state();
        let mut partitions: Vec<AssignedPartition> = view
            .running
            .as_ref()
            .map(crate::supervisor::Running::assigned)
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partition)| AssignedPartition { topic, partition })
            .collect();
        partitions.sort();
        Here {
            state,
            reason,
            partitions,
            ticking: view.producer().is_some_and(|p| p.ticking()),
            counters: Counters::of(&view.telemetry.metrics),
        }
    }

    fn status(self, runner: &str, reported_ms: Option<u64>) -> RunnerStatus {
        RunnerStatus {
            runner: runner.to_owned(),
            state: self.state,
            reason: self.reason,
            partitions: self.partitions,
            ticking: self.ticking,
            counters: self.counters,
            reported_ms,
        }
    }
}

/// A report as this runner received it.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) report: RunnerReport,
    pub(super) at: Instant,
}

/// How far apart two runners' clocks may be for a report read back from
/// the topic (written before this runner started) to count as live.
const CLOCK_SKEW: Duration = Duration::from_secs(5);

impl Received {
    /// Whether its runner is still there: it reported within three of its
    /// intervals (a runner that stops removes its report; one that dies
    /// stops reporting).
    pub(super) fn is_live(&self, now_ms: u64) -> bool {
        let every = Duration::from_millis(self.report.every_ms);
        let window = every * 3 + Duration::from_secs(1);
        let written = Duration::from_millis(now_ms.saturating_sub(self.report.at_ms));
        self.at.elapsed() <= window && written <= window + CLOCK_SKEW
    }
}

/// Fill `status` with the fleet's view of its deployment: this runner's
/// `here` first, then every live runner's report of `key` (sorted by
/// runner), counters summed over them, and each partition of
/// `status.partitions` named with the runner that consumes it.
pub fn merge<'r>(
    status: &mut DeploymentStatus,
    key: &str,
    me: &str,
    here: Here,
    others: impl IntoIterator<Item = &'r RunnerReport>,
) {
    let mut runners = vec![here.status(me, None)];
    let mut rest: Vec<RunnerStatus> = others
        .into_iter()
        .filter(|r| r.runner != me)
        .filter_map(|r| {
            let h = r.deployments.get(key)?.clone();
            Some(h.status(&r.runner, Some(r.at_ms)))
        })
        .collect();
    rest.sort_by(|a, b| a.runner.cmp(&b.runner));
    runners.extend(rest);
    let mut sum = Counters::default();
    for r in &runners {
        sum += &r.counters;
    }
    status.counters = sum;
    status.runners = runners;
    name_partitions(status);
}

/// Name each of `status.partitions` with the runner in `status.runners`
/// that consumes it.
pub fn name_partitions(status: &mut DeploymentStatus) {
    for p in &mut status.partitions {
        p.runner = status
            .runners
            .iter()
            .find(|r| {
                r.partitions
                    .iter()
                    .any(|a| a.topic == p.topic && a.partition == p.partition)
            })
            .map(|r| r.runner.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PartitionStatus;

    fn here(records_in: u64, partitions: &[i32]) -> Here {
        Here {
            state: State::Running,
            reason: None,
            partitions: partitions
                .iter()
                .map(|&partition| AssignedPartition {
                    topic: "t".into(),
                    partition,
                })
                .collect(),
            ticking: false,
            counters: Counters {
                records_in,
                ..Counters::default()
            },
        }
    }

    fn report(runner: &str, key: &str, h: Here) -> RunnerReport {
        RunnerReport {
            runner: runner.into(),
            at_ms: 1,
            every_ms: 1000,
            deployments: [(key.to_owned(), h)].into(),
        }
    }

    fn partition(partition: i32) -> PartitionStatus {
        PartitionStatus {
            topic: "t".into(),
            partition,
            committed: Some(0),
            high_watermark: 0,
            lag: 0,
            runner: None,
        }
    }

    #[test]
    fn merge_sums_counters_lists_runners_and_names_partitions() {
        let mut status: DeploymentStatus = serde_json::from_value(serde_json::json!({
            "name": "d", "tenant": "shop", "source": "api", "state": "running",
            "reason": null, "module": "m", "revision": 1, "previous_modules": [],
            "settings": null, "counters": Counters::default(), "updated_by": null,
            "updated_ms": null,
        }))
        .unwrap();
        status.partitions = (0..4).map(partition).collect();
        let others = [
            report("c", "shop/d", here(5, &[2, 3])),
            report("b", "shop/d", here(7, &[1])),
            report("z", "shop/other", here(100, &[0])),
            report("a", "shop/d", here(1000, &[])),
        ];
        merge(&mut status, "shop/d", "a", here(3, &[0]), &others);
        let runners: Vec<_> = status.runners.iter().map(|r| r.runner.as_str()).collect();
        assert_eq!(
            runners,
            ["a", "b", "c"],
            "this runner first (its own report ignored), then the others by id"
        );
        assert_eq!(status.runners[0].reported_ms, None);
        assert_eq!(status.counters.records_in, 3 + 7 + 5);
        let owners: Vec<_> = status
            .partitions
            .iter()
            .map(|p| p.runner.as_deref())
            .collect();
        assert_eq!(owners, [Some("a"), Some("b"), Some("c"), Some("c")]);
    }

    #[test]
    fn a_report_is_live_for_three_intervals() {
        let now_ms = 1_000_000;
        let mut r = Received {
            report: report("b", "k", here(0, &[])),
            at: Instant::now(),
        };
        r.report.at_ms = now_ms - 500;
        assert!(r.is_live(now_ms));
        r.report.at_ms = now_ms - 60_000;
        assert!(
            !r.is_live(now_ms),
            "read back at start, written long ago: a runner that died"
        );
        r.report.at_ms = now_ms;
        r.at = Instant::now() - Duration::from_secs(5);
        assert!(
            !r.is_live(now_ms),
            "not heard from for 5 s at 1 s intervals"
        );
    }
}
