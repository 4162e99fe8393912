//! What the API reports about deployments, built from the supervisor's
//! views and, for the per-partition offsets and lag, the runner's offsets
//! service.

use crate::api::{Counters, DeploymentStatus, Source};
use crate::fleet::Fleet;
use crate::offsets::Offsets;
use crate::supervisor::View;

/// A deployment's status, without partitions: with `fleet`, every live
/// runner's view of it and counters summed over them.
pub fn brief(v: &View, fleet: Option<&Fleet>) -> DeploymentStatus {
    let mut status = here(v);
    if let Some(f) = fleet {
        f.merge(v, &mut status);
    }
    status
}

/// A deployment's status as this runner knows it, without partitions.
fn here(v: &View) -> DeploymentStatus {
    let (state, reason) = v.state();
    let counters = Counters::of(&v.telemetry.metrics);
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
            runners: Vec::new(),
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
            runners: Vec::new(),
            notes,
            partitions: Vec::new(),
            updated_by: None,
            updated_ms: None,
        },
    }
}

/// The statuses of `views`, each with its partitions when `lag` (a
/// deployment whose lag is not known is reported without).
pub async fn list(
    offsets: &Offsets,
    fleet: Option<&Fleet>,
    views: &[View],
    lag: bool,
) -> Vec<DeploymentStatus> {
    let mut out: Vec<DeploymentStatus> = views.iter().map(|v| brief(v, fleet)).collect();
    if lag {
        let groups: Vec<_> = views.iter().map(|v| v.def.group_and_inputs()).collect();
        for (status, parts) in out.iter_mut().zip(offsets.lag_each(&groups).await) {
            match parts {
                Some(Ok(p)) => {
                    status.partitions = p;
                    crate::fleet::report::name_partitions(status);
                }
                Some(Err(e)) => {
                    tracing::debug!(deployment = %status.key(), error = %e, "consumer lag not available")
                }
                None => {}
            }
        }
    }
    out
}
