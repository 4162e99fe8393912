//! The applier: the state topics' records, applied in log order — module
//! records to the registry, deployment records to the supervisor — so
//! every runner sharing the topics runs the same deployments.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::state::{StateLog, StateRecord, StateTopic};
use crate::auth::Auth;
use crate::deployment::{DeploymentRecord, follows};
use crate::modules::ModuleRegistry;
use crate::supervisor::Supervisor;

/// What every deployment record is checked against as it is applied: the
/// tenants, grants and maxima of this runner's config as it is now.
pub struct Trust {
    /// The tenants and their grants.
    pub auth: Auth,
    /// Whether this runner meters fuel (a record asking for fuel cannot
    /// run otherwise).
    pub fuel_metering: bool,
}

impl Trust {
    /// Apply `record` to deployment `key` if it may run here; otherwise
    /// stop the deployment, with the reason as its failure.
    async fn apply(
        &self,
        state: &StateLog,
        supervisor: &Supervisor,
        key: &str,
        record: Option<DeploymentRecord>,
        live: bool,
    ) {
        let Some(record) = record else {
            return supervisor.apply(key, None, live).await;
        };
        match crate::control::service::check_record(
            &self.auth,
            key,
            &record,
            &state.reserved(),
            self.fuel_metering,
        ) {
            Ok(()) => supervisor.apply(key, Some(record), live).await,
            Err(e) => {
                let reason = format!("its state record may not run on this runner: {e}");
                supervisor.refuse(key, record, reason).await;
            }
        }
    }
}

/// Apply the state topics' records in order, forever, each deployment
/// record checked by `trust` first.
///
/// What was in the deployments topic at start is history until compaction
/// removes it: only each deployment's latest record is applied, once every
/// module is read, so a restart does not replay the history's starts,
/// swaps, pauses and replays.
pub async fn apply_state(
    mut records: tokio::sync::mpsc::UnboundedReceiver<StateRecord>,
    ends: [i64; 2],
    state: Arc<StateLog>,
    modules: Arc<ModuleRegistry>,
    supervisor: Arc<Supervisor>,
    trust: Trust,
) {
    let [deployments_end, modules_end] = ends;
    let mut recovered: BTreeMap<String, Option<DeploymentRecord>> = BTreeMap::new();
    let mut read = [0i64; 2];
    while read[0] < deployments_end || read[1] < modules_end {
        let Some(r) = records.recv().await else {
            return;
        };
        read[r.topic as usize] = r.offset + 1;
        match r.topic {
            StateTopic::Modules => {
                modules.apply(&r.key, r.value.as_deref());
                state.mark_applied(r.topic, r.offset + 1);
            }
            StateTopic::Deployments => {
                let Some(record) = parse_record(&r) else {
                    continue;
                };
                // The oldest record left of a key (after compaction) is
                // taken as it is; each later one must follow it.
                let taken = match (recovered.get(&r.key), &record) {
                    (Some(current), Some(next)) => follows(current.as_ref(), next),
                    _ => true,
                };
                if taken {
                    recovered.insert(r.key, record);
                } else {
                    ignore_stale(&r.key, record.as_ref(), recovered[&r.key].as_ref());
                }
            }
        }
    }
    for (key, record) in recovered {
        if record.is_some() {
            trust.apply(&state, &supervisor, &key, record, false).await;
        }
    }
    state.mark_applied(StateTopic::Deployments, deployments_end);

    while let Some(r) = records.recv().await {
        match r.topic {
            StateTopic::Modules => {
                if let Some(digest) = modules.apply(&r.key, r.value.as_deref()) {
                    supervisor.module_arrived(&digest).await;
                }
            }
            StateTopic::Deployments => match parse_record(&r) {
                Some(Some(next)) => {
                    let current = supervisor.view(&r.key).and_then(|v| v.record);
                    if follows(current.as_deref(), &next) {
                        trust
                            .apply(&state, &supervisor, &r.key, Some(next), true)
                            .await;
                    } else {
                        ignore_stale(&r.key, Some(&next), current.as_deref());
                    }
                }
                Some(None) => trust.apply(&state, &supervisor, &r.key, None, true).await,
                None => {}
            },
        }
        state.mark_applied(r.topic, r.offset + 1);
    }
}

/// Say that a write which lost a race to another is not applied (its
/// writer answers 409).
fn ignore_stale(key: &str, next: Option<&DeploymentRecord>, current: Option<&DeploymentRecord>) {
    tracing::info!(
        deployment = key,
        version = next.map(|r| r.version),
        runner = next.and_then(|r| r.runner.as_deref()),
        current_version = current.map(|r| r.version),
        "a change written at the same time as another is not applied; its writer is told (409)"
    );
}

/// A deployment record (`Some(None)`: a tombstone), or `None` if corrupt.
fn parse_record(r: &StateRecord) -> Option<Option<DeploymentRecord>> {
    match r.value.as_deref().map(serde_json::from_slice) {
        None => Some(None),
        Some(Ok(record)) => Some(Some(record)),
        Some(Err(e)) => {
            tracing::warn!(key = %r.key, offset = r.offset, error = %e,
                "ignoring a corrupt deployment record");
            None
        }
    }
}
