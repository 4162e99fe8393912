//! The applier: the state topics' records, applied in log order — module
//! records to the registry, deployment records to the supervisor — so
//! every runner sharing the topics runs the same deployments.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::state::{StateLog, StateRecord, StateTopic};
use crate::deployment::DeploymentRecord;
use crate::modules::ModuleRegistry;
use crate::supervisor::Supervisor;

/// Apply the state topics' records in order, forever.
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
                if let Some(record) = parse_record(&r) {
                    recovered.insert(r.key, record);
                }
            }
        }
    }
    for (key, record) in recovered {
        if record.is_some() {
            supervisor.apply(&key, record, false).await;
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
            StateTopic::Deployments => {
                if let Some(record) = parse_record(&r) {
                    supervisor.apply(&r.key, record, true).await;
                }
            }
        }
        state.mark_applied(r.topic, r.offset + 1);
    }
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
