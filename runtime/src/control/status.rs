//! What the API reports about deployments, built from the supervisor's
//! views and, for the per-partition offsets and lag, the runner's offsets
//! service.

use crate::api::{Counters, DeploymentStatus, Source};
use crate::offsets::Offsets;
use crate::supervisor::View;
use crate::telemetry::metrics::{self, DeploymentMetrics};

/// A deployment's status as this runner knows it, without partitions.
pub fn brief(v: &View) -> DeploymentStatus {
    let (state, reason) = v.state();
    let counters = counters(&v.telemetry.metrics);
    let notes = v.notes();
    match &v.record {
        Some(r) => DeploymentStatus {
            name: r.name.clone(),
            tenant: Some(r.tenant.clone()),
            source: Source::Api,
            state,
            reason,
            module: r.settings.module.to_string(),
            revision: r.revision,
            version: r.version,
            updated_by_runner: r.runner.clone(),
            previous_modules: r
                .previous
                .iter()
                .map(|p| p.settings.module.to_string())
                .collect(),
            settings: Some(r.settings.clone()),
            counters,
            notes,
            partitions: Vec::new(),
            updated_by: Some(r.updated_by.clone()),
            updated_ms: Some(r.updated_ms),
        },
        None => DeploymentStatus {
            name: v.key.clone(),
            tenant: None,
            source: Source::Config,
            state,
            reason,
            module: v.def.spec.module.to_string(),
            revision: 1,
            version: 0,
            updated_by_runner: None,
            previous_modules: Vec::new(),
            settings: None,
            counters,
            notes,
            partitions: Vec::new(),
            updated_by: None,
            updated_ms: None,
        },
    }
}

/// The counters `/metrics` exports, as status shows them.
pub fn counters(m: &DeploymentMetrics) -> Counters {
    Counters {
        records_in: m.records_in_total(),
        records_out: m.records_out.get(),
        bytes_in: metrics::sum_counters(&m.bytes_in),
        bytes_out: m.bytes_out.get(),
        batches: m.batches.get(),
        errors: m.errors_total(),
        retries: m.retries.get(),
        traps: m.instance_restarts.get(),
        dead_lettered: m.dead_lettered.get(),
        guest_log_dropped: m.guest_log_dropped.get(),
    }
}

/// The statuses of `views`, each with its partitions when `lag` (a
/// deployment whose lag is not known is reported without).
pub async fn list(offsets: &Offsets, views: &[View], lag: bool) -> Vec<DeploymentStatus> {
    let mut out: Vec<DeploymentStatus> = views.iter().map(brief).collect();
    if lag {
        let groups: Vec<_> = views.iter().map(|v| v.def.group_and_inputs()).collect();
        for (status, parts) in out.iter_mut().zip(offsets.lag_each(&groups).await) {
            match parts {
                Some(Ok(p)) => status.partitions = p,
                Some(Err(e)) => {
                    tracing::debug!(deployment = %status.key(), error = %e, "consumer lag not available")
                }
                None => {}
            }
        }
    }
    out
}
