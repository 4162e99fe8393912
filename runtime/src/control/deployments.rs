//! Deployments as the API sees them: the request bodies, the record kept
//! in the deployments state topic (current revision, earlier revisions for
//! rollback, paused flag, replay requests), and the checks a caller's
//! request must pass before anything is written: valid settings, a module
//! the caller owns, topics and groups within its grants, limits within its
//! tenant's maxima.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Caller;
use crate::config::{
    BatchConfig, DeploymentConfig, FailureConfig, IngestConfig, LimitsConfig, Scalar,
    ScheduleConfig, StartPosition, is_valid_name,
};

/// Earlier revisions kept per deployment for rollback.
const HISTORY: usize = 10;

/// One revision of a deployment: what runs and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Module digest (`sha256:<hex>`), as returned by the upload.
    pub module: String,
    /// Topics to consume (consumer modules; a producer has none).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// The Kafka consumer group (required for consumer modules, never
    /// derived; a producer has none).
    #[serde(default)]
    pub group: String,
    /// Topics the module may emit to.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Where to start where the group has no committed offset.
    #[serde(default)]
    pub start: StartPosition,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub failure: FailureConfig,
    /// Values the module reads through the `config` import.
    #[serde(default)]
    pub config: BTreeMap<String, Scalar>,
    /// Producer modules: the HTTP ingestion endpoint `/v1/ingest/<name>`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub ingest: IngestConfig,
    /// Producer modules: call the module on a timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleConfig>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `POST /v1/deployments`: a name, the first revision's [`Settings`] (at
/// the same level) and whether to start paused.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreateDeployment {
    /// Unique among the tenant's deployments: 1-63 of a-z, 0-9, '-', '_'.
    pub name: String,
    #[serde(flatten)]
    pub settings: Settings,
    /// Create it paused (nothing is consumed until resumed).
    #[serde(default)]
    pub paused: bool,
}

/// By hand rather than with `#[serde(flatten)]`, which would let unknown
/// (misspelt) keys through: `name` and `paused` are taken out and the rest
/// must be exactly [`Settings`].
impl<'de> Deserialize<'de> for CreateDeployment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let name = match fields.remove("name") {
            Some(serde_json::Value::String(n)) => n,
            Some(_) => return Err(D::Error::custom("`name` must be a string")),
            None => return Err(D::Error::missing_field("name")),
        };
        let paused = match fields.remove("paused") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| D::Error::custom("`paused` must be true or false"))?,
        };
        let settings =
            Settings::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(Self {
            name,
            settings,
            paused,
        })
    }
}

/// `PATCH /v1/deployments/{name}`: only the fields given change. A new
/// `module`, `outputs`, `limits`, `failure`, `config` or `ingest` is
/// swapped in at each partition's next batch (a producer's next request or
/// tick; a new `schedule` restarts its timer); new `inputs`, `group` or `batch` restart
/// the deployment (drain, commit, start). Giving `start` replays: the
/// group is moved to that position (even backwards) and consumption
/// resumes from there.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDeployment {
    pub module: Option<String>,
    pub inputs: Option<Vec<String>>,
    pub group: Option<String>,
    pub outputs: Option<Vec<String>>,
    pub start: Option<StartPosition>,
    pub batch: Option<BatchConfig>,
    pub limits: Option<LimitsConfig>,
    pub failure: Option<FailureConfig>,
    pub config: Option<BTreeMap<String, Scalar>>,
    pub ingest: Option<IngestConfig>,
    pub schedule: Option<ScheduleConfig>,
}

/// A request to move the group to a position, applied once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replay {
    /// Increases with every replay request.
    pub seq: u64,
    pub from: StartPosition,
}

/// An earlier revision, kept for rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revision {
    pub revision: u64,
    pub settings: Settings,
}

/// The record in the deployments state topic, keyed `<tenant>/<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentRecord {
    pub tenant: String,
    pub name: String,
    /// Increases with every change of settings (rollback included).
    pub revision: u64,
    pub settings: Settings,
    /// Earlier revisions, newest last; rollback returns to the last one.
    pub previous: Vec<Revision>,
    pub paused: bool,
    pub replay: Option<Replay>,
    /// Who changed it last (tenant name, `*` for the operator) and when
    /// (ms since the Unix epoch).
    pub updated_by: String,
    pub updated_ms: u64,
}

impl DeploymentRecord {
    /// The state-topic key, `<tenant>/<name>`, which is also the name the
    /// runner uses in logs, metrics and dead-letter headers.
    pub fn key(&self) -> String {
        key(&self.tenant, &self.name)
    }

    /// A new deployment at revision 1.
    pub fn create(
        tenant: &str,
        name: String,
        settings: Settings,
        paused: bool,
        by: &Caller,
    ) -> Self {
        Self {
            tenant: tenant.to_owned(),
            name,
            revision: 1,
            settings,
            previous: Vec::new(),
            paused,
            replay: None,
            updated_by: by.name().to_owned(),
            updated_ms: super::modules::now_ms(),
        }
    }

    /// This record with `patch` applied; `None` when nothing changes.
    pub fn patched(&self, patch: PatchDeployment, by: &Caller) -> Option<Self> {
        let mut settings = self.settings.clone();
        let s = &mut settings;
        fn set<T>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut s.module, patch.module);
        set(&mut s.inputs, patch.inputs);
        set(&mut s.group, patch.group);
        set(&mut s.outputs, patch.outputs);
        set(&mut s.batch, patch.batch);
        set(&mut s.limits, patch.limits);
        set(&mut s.failure, patch.failure);
        set(&mut s.config, patch.config);
        set(&mut s.start, patch.start);
        set(&mut s.ingest, patch.ingest);
        if patch.schedule.is_some() {
            s.schedule = patch.schedule;
        }
        let mut next = self.clone();
        if settings != self.settings {
            next.previous.push(Revision {
                revision: self.revision,
                settings: self.settings.clone(),
            });
            if next.previous.len() > HISTORY {
                next.previous.remove(0);
            }
            next.settings = settings;
            next.revision += 1;
        }
        if let Some(from) = patch.start {
            let seq = self.replay.as_ref().map_or(0, |r| r.seq) + 1;
            next.replay = Some(Replay { seq, from });
        }
        (next != *self).then(|| next.touched(by))
    }

    /// Back to the previous revision (which then becomes the latest, and
    /// the one rolled back from becomes the previous: rolling back twice
    /// rolls forward again).
    pub fn rolled_back(&self, by: &Caller) -> Result<Self, ApiError> {
        let mut next = self.clone();
        let Some(back) = next.previous.pop() else {
            return Err(ApiError::Conflict(format!(
                "deployment {:?} has no previous revision to roll back to",
                self.name
            )));
        };
        next.previous.push(Revision {
            revision: self.revision,
            settings: std::mem::replace(&mut next.settings, back.settings),
        });
        next.revision += 1;
        Ok(next.touched(by))
    }

    /// Paused or resumed.
    pub fn with_paused(&self, paused: bool, by: &Caller) -> Self {
        let mut next = self.clone();
        next.paused = paused;
        next.touched(by)
    }

    fn touched(mut self, by: &Caller) -> Self {
        self.updated_by = by.name().to_owned();
        self.updated_ms = super::modules::now_ms();
        self
    }

    /// Every module digest it depends on: the current one and the ones
    /// kept for rollback.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.settings.module.as_str())
            .chain(self.previous.iter().map(|r| r.settings.module.as_str()))
    }
}

/// `<tenant>/<name>`.
pub fn key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

impl Settings {
    /// The runner-side config of a deployment named `name`.
    pub fn to_config(&self, name: &str) -> DeploymentConfig {
        DeploymentConfig {
            name: name.to_owned(),
            module: PathBuf::from(&self.module),
            inputs: self.inputs.clone(),
            group: self.group.clone(),
            outputs: self.outputs.clone(),
            start: self.start,
            batch: self.batch.clone(),
            limits: self.limits.clone(),
            failure: self.failure.clone(),
            config: self.config.clone(),
            kafka: BTreeMap::new(),
            ingest: self.ingest.clone(),
            schedule: self.schedule.clone(),
        }
    }

    /// Whether going from `self` to `next` needs a restart (a new consumer)
    /// rather than a swap at the next batch.
    pub fn needs_restart(&self, next: &Settings) -> bool {
        self.inputs != next.inputs || self.group != next.group || self.batch != next.batch
    }

    /// Checks a tenant's settings before anything is written: valid values
    /// (400), topics and group within the grants and limits within the
    /// tenant's maxima (403), fuel only where the runner meters it (400).
    pub fn check(&self, name: &str, caller: &Caller, fuel_metering: bool) -> Result<(), ApiError> {
        if !is_valid_name(name) {
            return Err(ApiError::BadRequest(format!(
                "deployment name {name:?} must be 1-63 characters of a-z, 0-9, '-' or '_'"
            )));
        }
        self.to_config(name)
            .validate()
            .map_err(ApiError::BadRequest)?;
        if self.limits.fuel.is_some() && !fuel_metering {
            return Err(ApiError::BadRequest(format!(
                "deployment {name:?}: limits.fuel is set but this runner does not meter fuel; ask the operator to set [runtime] fuel_metering = true, or use limits.deadline_ms"
            )));
        }
        for t in &self.inputs {
            caller.check_read_topic(t)?;
        }
        for t in self.outputs.iter().chain(&self.failure.dead_letter_topic) {
            caller.check_write_topic(t)?;
        }
        if !self.group.is_empty() {
            caller.check_group(&self.group)?;
        }
        if let Caller::Tenant(t) = caller {
            let over = |what: &str, asked: u64, max: Option<u64>| match max {
                Some(max) if asked > max => Err(ApiError::Forbidden(format!(
                    "deployment {name:?}: {what} {asked} is over tenant {:?}'s maximum of {max}",
                    t.name
                ))),
                _ => Ok(()),
            };
            over(
                "limits.memory_mib",
                self.limits.memory_mib,
                t.max_memory_mib,
            )?;
            over(
                "limits.deadline_ms",
                self.limits.deadline_ms,
                t.max_deadline_ms,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(module: &str) -> Settings {
        Settings {
            module: module.into(),
            inputs: vec!["a-in".into()],
            group: "a-group".into(),
            outputs: vec!["a-out".into()],
            start: StartPosition::Earliest,
            batch: BatchConfig::default(),
            limits: LimitsConfig::default(),
            failure: FailureConfig::default(),
            config: BTreeMap::new(),
            ingest: IngestConfig::default(),
            schedule: None,
        }
    }

    #[test]
    fn create_body_takes_name_and_paused_and_refuses_unknown_keys() {
        let body =
            r#"{"name": "d", "module": "m", "inputs": ["a-in"], "group": "g", "paused": true}"#;
        let c: CreateDeployment = serde_json::from_str(body).unwrap();
        assert_eq!((c.name.as_str(), c.paused), ("d", true));
        assert_eq!(c.settings.group, "g");
        let typo = body.replace("\"group\"", "\"grup\"");
        let err = serde_json::from_str::<CreateDeployment>(&typo).unwrap_err();
        assert!(err.to_string().contains("grup"), "{err}");
        let nameless = body.replace("\"name\": \"d\", ", "");
        let err = serde_json::from_str::<CreateDeployment>(&nameless).unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
    }

    #[test]
    fn patch_keeps_history_and_rollback_toggles() {
        let op = Caller::Operator;
        let v1 = DeploymentRecord::create("t", "d".into(), settings("m1"), false, &op);
        let patch = PatchDeployment {
            module: Some("m2".into()),
            ..Default::default()
        };
        let v2 = v1.patched(patch.clone(), &op).unwrap();
        assert_eq!((v2.revision, v2.settings.module.as_str()), (2, "m2"));
        assert_eq!(v2.previous[0].settings.module, "m1");
        assert!(
            v2.patched(patch, &op).is_none(),
            "no change, no new revision"
        );
        let back = v2.rolled_back(&op).unwrap();
        assert_eq!((back.revision, back.settings.module.as_str()), (3, "m1"));
        let forward = back.rolled_back(&op).unwrap();
        assert_eq!(forward.settings.module, "m2");
        assert!(v1.rolled_back(&op).is_err());
        let replay = v2
            .patched(
                PatchDeployment {
                    start: Some(StartPosition::Earliest),
                    ..Default::default()
                },
                &op,
            )
            .unwrap();
        assert_eq!(replay.replay.as_ref().unwrap().seq, 1);
        assert_eq!(replay.revision, 2, "a replay alone is not a new revision");
    }
}
