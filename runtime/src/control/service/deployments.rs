//! Deployments: create, change (PATCH, pause, resume, rollback), delete,
//! read — each checked against the caller's grants and maxima, written to
//! the deployments state topic and awaited until applied here.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Error, Service, audit, rules};
use crate::api::{CreateDeployment, DeploymentStatus};
use crate::auth::Caller;
use crate::control::state::StateTopic;
use crate::control::status;
use crate::deployment::{DeploymentRecord, PatchError, Spec, record::key};
use crate::producer::ProducerDeployment;
use crate::supervisor::View;
use crate::telemetry::DeploymentTelemetry;

/// A deployment as the caller names it: tenants name their own; the
/// operator names `<tenant>/<name>`, a name unique across tenants, or a
/// config-file deployment.
pub enum Target {
    /// A deployment created through the API, with its current record.
    Api(Arc<DeploymentRecord>),
    /// A deployment of the runner's config file, by name (operator only;
    /// it cannot be changed through the API).
    Config(String),
}

impl Target {
    /// The supervisor's key for it.
    pub fn key(&self) -> String {
        match self {
            Target::Api(r) => r.key(),
            Target::Config(n) => n.clone(),
        }
    }
}

/// 409 when the caller named a version (`If-Match`) that is not the
/// current one: it read the deployment before someone else changed it.
fn check_version(
    name: &str,
    record: &DeploymentRecord,
    expected: Option<u64>,
) -> Result<(), Error> {
    match expected {
        Some(v) if v != record.version => Err(Error::Conflict(format!(
            "deployment {name:?} is at version {} (revision {}), not the version {v} the request names (If-Match); read it again and retry",
            record.version, record.revision
        ))),
        _ => Ok(()),
    }
}

impl From<PatchError> for Error {
    fn from(e: PatchError) -> Self {
        match e {
            PatchError::Invalid(m) => Error::Invalid(format!("invalid change: {m}")),
            PatchError::NoPrevious(_) => Error::Conflict(e.to_string()),
        }
    }
}

impl Service {
    /// The deployment `name` as `caller` (acting for `tenant`, operator
    /// only) means it. Another tenant's deployment is not found, like a
    /// missing one.
    pub fn find(&self, caller: &Caller, name: &str, tenant: Option<&str>) -> Result<Target, Error> {
        let lookup = match (tenant, caller) {
            (Some(t), Caller::Operator) => key(t, name),
            _ => name.to_owned(),
        };
        let views = self.visible(caller);
        let mut found = views
            .iter()
            .filter_map(|v| v.record.as_ref())
            .filter(|r| r.name == lookup || r.key() == lookup);
        if let (Some(first), None) = (found.next(), found.next()) {
            return Ok(Target::Api(first.clone()));
        }
        let is_static = views.iter().any(|v| v.record.is_none() && v.key == name);
        if matches!(caller, Caller::Operator) && is_static {
            return Ok(Target::Config(name.to_owned()));
        }
        Err(Error::NotFound(format!("deployment {name:?}")))
    }

    pub(super) fn record(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
    ) -> Result<Arc<DeploymentRecord>, Error> {
        match self.find(caller, name, tenant)? {
            Target::Api(r) => Ok(r),
            Target::Config(name) => Err(Error::Conflict(format!(
                "deployment {name:?} is defined in the runner's config file; change it there"
            ))),
        }
    }

    /// Create a deployment for `caller` (the operator acts for `tenant`).
    pub async fn create(
        &self,
        caller: &Caller,
        tenant: Option<String>,
        body: CreateDeployment,
    ) -> Result<DeploymentStatus, Error> {
        let mut object = body.name.clone();
        let result = async {
            self.check_ready()?;
            let tenant = rules::acting_tenant(caller, tenant)?;
            let CreateDeployment { name, spec, paused } = body;
            let key = key(&tenant, &name);
            object = key.clone();
            self.check_spec(caller, &key, &name, &spec).await?;
            if self.supervisor.view(&key).is_some() {
                return Err(Error::Conflict(format!(
                    "deployment {name:?} already exists; change it with PATCH /v1/deployments/{name}"
                )));
            }
            if matches!(caller, Caller::Tenant(_)) {
                let have = self
                    .visible(caller)
                    .iter()
                    .filter(|v| v.record.is_some())
                    .count();
                rules::check_quota(caller, have)?;
            }
            let record = DeploymentRecord::create(&tenant, name.clone(), spec, paused, caller.name());
            self.write(&key, Some(&record)).await?;
            self.brief(&key, &name)
        }
        .await;
        audit(caller, "deployment.create", &object, &result);
        result
    }

    /// The caller's deployment `name` as this runner has it.
    pub(super) fn view(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
    ) -> Result<View, Error> {
        let key = self.find(caller, name, tenant)?.key();
        self.supervisor
            .view(&key)
            .ok_or_else(|| Error::NotFound(format!("deployment {name:?}")))
    }

    /// The statuses of the caller's deployments; with `lag`, each with its
    /// per-partition offsets and lag.
    pub async fn deployments(&self, caller: &Caller, lag: bool) -> Vec<DeploymentStatus> {
        status::list(
            &self.offsets,
            self.fleet.as_deref(),
            &self.visible(caller),
            lag,
        )
        .await
    }

    /// One deployment's status with its per-partition offsets and lag.
    pub async fn deployment(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
    ) -> Result<DeploymentStatus, Error> {
        let view = self.view(caller, name, tenant)?;
        let mut status = status::brief(&view, self.fleet.as_deref());
        if let Some(group) = view.def.group_and_inputs() {
            match self.offsets.lag(&[group]).await.pop() {
                Some(Ok(parts)) => {
                    status.partitions = parts;
                    crate::fleet::report::name_partitions(&mut status);
                }
                Some(Err(e)) => {
                    return Err(Error::Unavailable(format!(
                        "deployment {name:?}: cannot read its offsets from Kafka: {e}"
                    )));
                }
                None => {}
            }
        }
        Ok(status)
    }

    /// Apply a PATCH: the named spec fields are replaced (see
    /// [`DeploymentRecord::patched`]); `start` also replays.
    pub async fn patch(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
        patch: Map<String, Value>,
        expected: Option<u64>,
    ) -> Result<DeploymentStatus, Error> {
        let result = async {
            self.check_ready()?;
            let record = self.record(caller, name, tenant)?;
            check_version(name, &record, expected)?;
            let key = record.key();
            if let Some(next) = record.patched(&patch, caller.name())? {
                if next.settings != record.settings {
                    self.check_spec(caller, &key, &record.name, &next.settings)
                        .await?;
                }
                self.write(&key, Some(&next)).await?;
            }
            self.brief(&key, name)
        }
        .await;
        audit(caller, "deployment.update", name, &result);
        result
    }

    /// Pause (`true`) or resume a deployment.
    pub async fn set_paused(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
        paused: bool,
        expected: Option<u64>,
    ) -> Result<DeploymentStatus, Error> {
        let action = if paused {
            "deployment.pause"
        } else {
            "deployment.resume"
        };
        self.transition(caller, name, tenant, action, expected, |r| {
            Ok(r.with_paused(paused, caller.name()))
        })
        .await
    }

    /// Go back to the previous revision (again: forward).
    pub async fn rollback(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
        expected: Option<u64>,
    ) -> Result<DeploymentStatus, Error> {
        self.transition(caller, name, tenant, "deployment.rollback", expected, |r| {
            Ok(r.rolled_back(caller.name())?)
        })
        .await
    }

    async fn transition(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
        action: &str,
        expected: Option<u64>,
        change: impl FnOnce(&DeploymentRecord) -> Result<DeploymentRecord, Error>,
    ) -> Result<DeploymentStatus, Error> {
        let result = async {
            self.check_ready()?;
            let record = self.record(caller, name, tenant)?;
            check_version(name, &record, expected)?;
            let next = change(&record)?;
            let key = record.key();
            if next != *record {
                self.write(&key, Some(&next)).await?;
            }
            self.brief(&key, name)
        }
        .await;
        audit(caller, action, name, &result);
        result
    }

    /// Write down, as they come, the replays this runner carries out (the
    /// supervisor announces them on `done`).
    pub fn follow_replays(
        self: &Arc<Self>,
        mut done: tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        let service = self.clone();
        tokio::spawn(async move {
            while let Some(key) = done.recv().await {
                service.mark_replayed(&key).await;
            }
        });
    }

    /// Take over replays whose runner is gone: every report interval, a
    /// deployment waiting here for a replay by a runner the fleet has not
    /// heard from for three more intervals is asked to replay again by the
    /// first (by id) of the live runners waiting for it, which then
    /// carries it out (a race between two is settled by the versions: one
    /// write wins).
    pub fn adopt_orphaned_replays(self: &Arc<Self>) {
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        let service = self.clone();
        tokio::spawn(async move {
            let mut gone_since: std::collections::HashMap<String, std::time::Instant> =
                std::collections::HashMap::new();
            loop {
                tokio::time::sleep(fleet.every()).await;
                for v in service.supervisor.snapshot() {
                    let orphan = v.waiting.as_ref().and(v.record.as_ref()).and_then(|r| {
                        let replay = r.replay.as_ref().filter(|p| !p.done)?;
                        let by = r.runner.as_ref().filter(|by| !fleet.is_live(by))?;
                        Some((r.clone(), replay.seq, by.clone()))
                    });
                    let Some((record, seq, by)) = orphan else {
                        gone_since.remove(&v.key);
                        continue;
                    };
                    let since = *gone_since
                        .entry(v.key.clone())
                        .or_insert_with(std::time::Instant::now);
                    let first = fleet.starting(&v.key, true).into_iter().next();
                    if since.elapsed() < fleet.every() * 3
                        || first.as_deref() != Some(fleet.runner())
                    {
                        continue;
                    }
                    gone_since.remove(&v.key);
                    service.adopt_replay(&v.key, &record, seq, &by).await;
                }
            }
        });
    }

    async fn adopt_replay(&self, key: &str, record: &DeploymentRecord, seq: u64, gone: &str) {
        let Some(next) = record.with_replay_taken_over(seq, &record.updated_by) else {
            return;
        };
        tracing::warn!(
            deployment = key,
            runner = gone,
            replay = seq,
            "the runner carrying out the replay is gone; this runner carries it out"
        );
        if let Err(e) = self.write(key, Some(&next)).await {
            tracing::warn!(deployment = key, error = %e,
                "cannot take over the replay; the next interval tries again");
        }
    }

    /// Write down that this runner carried out deployment `key`'s pending
    /// replay, so the runners waiting for it resume. A failure is logged:
    /// those runners then wait until the deployment is paused and resumed.
    pub async fn mark_replayed(&self, key: &str) {
        let Some(record) = self.supervisor.view(key).and_then(|v| v.record) else {
            return;
        };
        let Some(seq) = record.replay.as_ref().map(|r| r.seq) else {
            return;
        };
        let Some(next) = record.with_replay_done(seq, &record.updated_by) else {
            return;
        };
        if let Err(e) = self.write(key, Some(&next)).await {
            tracing::warn!(deployment = key, error = %e,
                "cannot write down that the replay is done; the other runners resume once the deployment is paused and resumed");
        }
    }

    /// Stop and forget a deployment (its group's offsets stay in Kafka).
    pub async fn delete(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
        expected: Option<u64>,
    ) -> Result<(), Error> {
        let result = async {
            self.check_ready()?;
            let record = self.record(caller, name, tenant)?;
            check_version(name, &record, expected)?;
            self.write(&record.key(), None).await?;
            // Its copies are its own: nothing else reads them.
            if let Some(topic) = &record.redrive_topic {
                crate::kafka::dead_letters::delete_redrive_topic(self.offsets.kafka(), topic).await;
            }
            Ok(())
        }
        .await;
        audit(caller, "deployment.delete", name, &result);
        result
    }

    /// The key and telemetry (metrics, guest log) of a deployment.
    pub fn telemetry(
        &self,
        caller: &Caller,
        name: &str,
        tenant: Option<&str>,
    ) -> Result<(String, Arc<DeploymentTelemetry>), Error> {
        let view = self.view(caller, name, tenant)?;
        Ok((view.key, view.telemetry))
    }

    /// The running producer deployment `key`, or why it takes no requests.
    pub fn producer(&self, key: &str, name: &str) -> Result<Arc<ProducerDeployment>, Error> {
        let view = self
            .supervisor
            .view(key)
            .ok_or_else(|| Error::NotFound(format!("deployment {name:?}")))?;
        if let Some(p) = view.producer() {
            return Ok(p);
        }
        if view.def.spec.kind.consumer().is_some() {
            return Err(Error::NotFound(format!(
                "ingest endpoint of deployment {name:?} (it is a consumer; only producer deployments take requests)"
            )));
        }
        Err(match view.state() {
            (crate::deployment::State::Paused, _) => Error::Unavailable(format!(
                "deployment {name:?} is paused; it takes requests again once resumed"
            )),
            (state, reason) => Error::Unavailable(format!(
                "deployment {name:?} is {state}{}",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            )),
        })
    }

    /// The keys of the deployments (of any tenant) whose ingest key hashes
    /// to `key_sha256`. The API keeps ingest keys unique.
    pub fn ingest_key_users(&self, key_sha256: &str) -> Vec<String> {
        self.supervisor
            .snapshot()
            .into_iter()
            .filter(|v| {
                let ingest = v.record.as_ref().and_then(|r| {
                    r.settings
                        .kind
                        .producer()
                        .map(|p| p.ingest.key_sha256.clone())
                });
                ingest
                    .flatten()
                    .is_some_and(|k| k.eq_ignore_ascii_case(key_sha256))
            })
            .map(|v| v.key)
            .collect()
    }

    /// The checks a spec must pass before anything is written: valid,
    /// within the caller's grants and maxima, a module the caller can see
    /// of the spec's kind, an ingest key of its own, topics that exist.
    async fn check_spec(
        &self,
        caller: &Caller,
        key: &str,
        name: &str,
        spec: &Spec,
    ) -> Result<(), Error> {
        let digest = rules::check_spec(caller, name, spec, self.fuel_metering)?;
        rules::check_reserved(name, spec, &self.state.reserved())?;
        let module = self.module(caller, digest.as_str()).ok();
        rules::check_module(name, spec, digest, module.as_ref())?;
        if let Some(hash) = spec
            .kind
            .producer()
            .and_then(|p| p.ingest.key_sha256.as_deref())
        {
            rules::check_ingest_key(name, key, &self.ingest_key_users(hash))?;
        }
        self.check_topics(name, spec).await
    }

    /// Refuse, naming it, a topic the spec names that is not in Kafka, and
    /// a dead-letter topic that takes smaller records than an input.
    async fn check_topics(&self, name: &str, spec: &Spec) -> Result<(), Error> {
        let topics: Vec<String> = spec.topics().map(|(_, t)| t.to_owned()).collect();
        let exist = self
            .offsets
            .existing(&topics)
            .await
            .map_err(|e| Error::Unavailable(format!("deployment {name:?}: {e}")))?;
        rules::check_topics(name, spec, &exist)?;
        if let Some(dlq) = &spec.failure.dead_letter_topic {
            // Each topic once: Kafka refuses a request naming a resource
            // twice (an input may also be an output).
            let wanted: Vec<String> = spec
                .inputs()
                .iter()
                .chain(std::iter::once(dlq))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let sizes = self
                .offsets
                .max_message_bytes(&wanted)
                .await
                .map_err(|e| Error::Unavailable(format!("deployment {name:?}: {e}")))?;
            rules::check_dead_letter_size(name, spec, &sizes)?;
        }
        Ok(())
    }

    /// Write the record (`None`: delete it), signed with this runner's id,
    /// and wait until this runner has applied it. A record another write
    /// beat to the log is not applied anywhere ([`crate::deployment::follows`]):
    /// then the winner is written again (so compaction keeps it, not the
    /// loser) and the caller gets 409.
    pub(super) async fn write(
        &self,
        key: &str,
        record: Option<&DeploymentRecord>,
    ) -> Result<(), Error> {
        let record = record.map(|r| DeploymentRecord {
            runner: Some(self.runner_id.clone()),
            ..r.clone()
        });
        self.put_and_wait(key, record.as_ref()).await?;
        let Some(written) = record else {
            return Ok(());
        };
        let now = self.supervisor.view(key).and_then(|v| v.record);
        if now.as_deref() == Some(&written) {
            return Ok(());
        }
        if let Some(winner) = &now {
            self.put_and_wait(key, Some(winner)).await?;
        }
        Err(Error::Conflict(match now {
            Some(w) => format!(
                "deployment {:?} was changed by another request at the same time and is now at version {} (revision {}); read it again and retry",
                written.name, w.version, w.revision
            ),
            None => format!(
                "deployment {:?} was deleted or created by another request at the same time; read it again and retry",
                written.name
            ),
        }))
    }

    async fn put_and_wait(
        &self,
        key: &str,
        record: Option<&DeploymentRecord>,
    ) -> Result<(), Error> {
        let value = record
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let offset = self
            .state
            .put(StateTopic::Deployments, key, value.as_deref())
            .await?;
        self.state
            .wait_applied(StateTopic::Deployments, offset)
            .await
    }

    /// The status after a change: from memory, without the per-partition
    /// offsets.
    fn brief(&self, key: &str, name: &str) -> Result<DeploymentStatus, Error> {
        self.supervisor
            .view(key)
            .map(|v| status::brief(&v, self.fleet.as_deref()))
            .ok_or_else(|| Error::NotFound(format!("deployment {name:?}")))
    }
}
