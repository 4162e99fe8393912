//! A deployment's record in the deployments state topic: its current
//! revision, the earlier ones kept for rollback, whether it is paused, and
//! the replay asked for. Every change is a new record; a record is what
//! every runner applies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::settings::StartPosition;
use super::spec::Spec;

/// Earlier revisions kept per deployment for rollback.
const HISTORY: usize = 10;

/// A request to move the group to a position, carried out once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replay {
    /// Increases with every replay request.
    pub seq: u64,
    /// Where the group is moved to on every input partition.
    pub from: StartPosition,
    /// Carried out: the runner that did it wrote the record again with
    /// this set, and the runners waiting for it resume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

/// An earlier revision, kept for rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// The revision number it had while it was current.
    pub revision: u64,
    /// The spec of that revision.
    pub settings: Spec,
}

/// The record in the deployments state topic, keyed `<tenant>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// The owning tenant, the first half of the key.
    pub tenant: String,
    /// The deployment's name, unique within its tenant: the second half of
    /// the key.
    pub name: String,
    /// Increases with every change of settings (rollback included).
    pub revision: u64,
    /// The current revision's spec: what every runner runs.
    pub settings: Spec,
    /// Earlier revisions, newest last; rollback returns to the last one.
    pub previous: Vec<Revision>,
    /// Paused through the API: runners stop it (committing what it
    /// handled) and start it again when this turns false.
    pub paused: bool,
    /// The latest replay asked for (a PATCH naming `start`): a runner
    /// carries it out when it reads the record as it is written, not when
    /// it recovers the state at start (it was done then already).
    pub replay: Option<Replay>,
    /// The deployment's own redrive topic, once a redrive made it: the
    /// deployment reads it beside its inputs (see `kafka::dead_letters`).
    /// Its name is the runner's to choose, and checked as the record is
    /// applied, so a record cannot point a deployment at another topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_topic: Option<String>,
    /// Increases with every write of the record (any change: spec,
    /// pause, replay, redrive topic), so a write names the one it follows:
    /// every runner applies a record only if it follows the one it has
    /// ([`follows`]), and a write that lost a race is refused, not lost
    /// unseen. 0 in records from before versions (applied as they come).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u64,
    /// The runner that wrote it (its `runtime.runner_id`), for the audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// Who changed it last: the tenant's name, or `*` for the operator.
    pub updated_by: String,
    /// When it was changed last, in ms since the Unix epoch.
    pub updated_ms: u64,
}

/// A PATCH that cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The changed spec is not a spec (a wrong type, an unknown key, a
    /// setting of the other kind).
    #[error("{0}")]
    Invalid(String),
    /// Rollback without an earlier revision.
    #[error("deployment {0:?} has no previous revision to roll back to")]
    NoPrevious(String),
}

impl DeploymentRecord {
    /// The state-topic key, `<tenant>/<name>`, which is also the name the
    /// runner uses in logs, metrics and dead-letter headers.
    pub fn key(&self) -> String {
        key(&self.tenant, &self.name)
    }

    /// A new deployment at revision 1, made by `by`.
    pub fn create(tenant: &str, name: String, settings: Spec, paused: bool, by: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            name,
            revision: 1,
            settings,
            previous: Vec::new(),
            paused,
            replay: None,
            redrive_topic: None,
            version: 1,
            runner: None,
            updated_by: by.to_owned(),
            updated_ms: super::now_ms(),
        }
    }

    /// This record with `patch` applied; `Ok(None)` when nothing changes.
    ///
    /// A patch names spec fields, each replacing the field's whole value
    /// (a table too: `limits` replaces every limit, the ones not given at
    /// their defaults); `null` or a field not named leaves it as it is.
    /// Naming `start` also replays from that position.
    pub fn patched(
        &self,
        patch: &Map<String, Value>,
        by: &str,
    ) -> Result<Option<Self>, PatchError> {
        let mut fields = self.settings.to_json();
        for (k, v) in patch {
            if !v.is_null() {
                fields.insert(k.clone(), v.clone());
            }
        }
        let settings = super::spec::read(Value::Object(fields)).map_err(PatchError::Invalid)?;
        let mut next = self.clone();
        if settings != self.settings {
            next.remember(settings);
        }
        if let Some(from) = patch.get("start").filter(|v| !v.is_null()) {
            let from: StartPosition = serde_json::from_value(from.clone())
                .map_err(|e| PatchError::Invalid(format!("start: {e}")))?;
            let seq = self.replay.as_ref().map_or(0, |r| r.seq) + 1;
            next.replay = Some(Replay {
                seq,
                from,
                done: false,
            });
        }
        Ok((next != *self).then(|| next.touched(by)))
    }

    /// Make `settings` the current revision, keeping this one for rollback.
    fn remember(&mut self, settings: Spec) {
        self.previous.push(Revision {
            revision: self.revision,
            settings: std::mem::replace(&mut self.settings, settings),
        });
        if self.previous.len() > HISTORY {
            self.previous.remove(0);
        }
        self.revision += 1;
    }

    /// Back to the previous revision (which then becomes the latest, and
    /// the one rolled back from becomes the previous: rolling back twice
    /// rolls forward again).
    pub fn rolled_back(&self, by: &str) -> Result<Self, PatchError> {
        let mut next = self.clone();
        let Some(back) = next.previous.pop() else {
            return Err(PatchError::NoPrevious(self.name.clone()));
        };
        next.previous.push(Revision {
            revision: self.revision,
            settings: std::mem::replace(&mut next.settings, back.settings),
        });
        next.revision += 1;
        Ok(next.touched(by))
    }

    /// Replay `seq` marked carried out; `None` if the record asks for
    /// another replay (or none) by now.
    pub fn with_replay_done(&self, seq: u64, by: &str) -> Option<Self> {
        let replay = self.replay.as_ref().filter(|r| r.seq == seq && !r.done)?;
        let mut next = self.clone();
        next.replay = Some(Replay {
            done: true,
            ..replay.clone()
        });
        Some(next.touched(by))
    }

    /// Replay `seq`, which the runner that took it did not carry out (it
    /// is gone), asked again: the next replay, to the same position, for
    /// `runner` (the writer) to carry out. `None` if the record asks for
    /// another replay (or none) by now, or `seq` is done.
    pub fn with_replay_taken_over(&self, seq: u64, by: &str) -> Option<Self> {
        let replay = self.replay.as_ref().filter(|r| r.seq == seq && !r.done)?;
        let mut next = self.clone();
        next.replay = Some(Replay {
            seq: seq + 1,
            from: replay.from,
            done: false,
        });
        Some(next.touched(by))
    }

    /// Reading `topic` beside its inputs from now on.
    pub fn with_redrive_topic(&self, topic: String, by: &str) -> Self {
        let mut next = self.clone();
        next.redrive_topic = Some(topic);
        next.touched(by)
    }

    /// Paused or resumed.
    pub fn with_paused(&self, paused: bool, by: &str) -> Self {
        let mut next = self.clone();
        next.paused = paused;
        next.touched(by)
    }

    fn touched(mut self, by: &str) -> Self {
        self.version += 1;
        by.clone_into(&mut self.updated_by);
        self.updated_ms = super::now_ms();
        self
    }

    /// Every module it depends on: the current one and the ones kept for
    /// rollback.
    pub fn modules(&self) -> impl Iterator<Item = &super::ModuleRef> {
        std::iter::once(&self.settings.module)
            .chain(self.previous.iter().map(|r| &r.settings.module))
    }
}

/// `<tenant>/<name>`.
pub fn key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{name}")
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Whether `next` may follow `current` (`None`: no record, or deleted) in
/// the deployments state topic: a create has version 1, a change the
/// version after the current one; writing the current record again (a
/// loser of a race putting the winner back on top of the log) changes
/// nothing and is taken. Every runner applies the log in one order with
/// this rule, so all agree on which of two racing writes won. A record
/// without a version (written before versions) is taken as it comes.
pub fn follows(current: Option<&DeploymentRecord>, next: &DeploymentRecord) -> bool {
    if next.version == 0 {
        return true;
    }
    match current {
        None => next.version == 1,
        Some(c) => next == c || next.version == c.version + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const M1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const M2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn spec(module: &str) -> Spec {
        serde_json::from_value(json!({
            "module": module, "inputs": ["a-in"], "group": "a-group", "outputs": ["a-out"]
        }))
        .unwrap()
    }

    fn patch(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn patch_keeps_history_and_rollback_toggles() {
        let v1 = DeploymentRecord::create("t", "d".into(), spec(M1), false, "*");
        let to_m2 = patch(json!({"module": M2}));
        let v2 = v1.patched(&to_m2, "*").unwrap().unwrap();
        assert_eq!(
            (v2.revision, v2.settings.module.to_string()),
            (2, M2.to_owned())
        );
        assert_eq!(v2.previous[0].settings.module.to_string(), M1);
        assert!(
            v2.patched(&to_m2, "*").unwrap().is_none(),
            "no change, no new revision"
        );
        let back = v2.rolled_back("*").unwrap();
        assert_eq!(
            (back.revision, back.settings.module.to_string()),
            (3, M1.to_owned())
        );
        let forward = back.rolled_back("*").unwrap();
        assert_eq!(forward.settings.module.to_string(), M2);
        assert!(v1.rolled_back("*").is_err());
        let replay = v2
            .patched(&patch(json!({"start": "earliest"})), "*")
            .unwrap()
            .unwrap();
        assert_eq!(replay.replay.as_ref().unwrap().seq, 1);
        assert_eq!(replay.revision, 2, "a replay alone is not a new revision");
    }

    #[test]
    fn of_two_writes_following_one_record_only_the_first_follows() {
        let v1 = DeploymentRecord::create("t", "d".into(), spec(M1), false, "a");
        assert!(follows(None, &v1));
        let a = v1
            .patched(&patch(json!({"module": M2})), "a")
            .unwrap()
            .unwrap();
        let b = v1.with_paused(true, "b");
        assert_eq!((a.version, b.version), (2, 2));
        assert!(follows(Some(&v1), &a) && follows(Some(&v1), &b));
        assert!(
            !follows(Some(&a), &b),
            "b was based on v1, which a replaced"
        );
        assert!(follows(Some(&a), &a), "the winner written again");
        assert!(!follows(None, &a), "a change of a deleted deployment");
        assert!(!follows(Some(&a), &v1), "an older record");
        let mut legacy = a.clone();
        legacy.version = 0;
        assert!(follows(Some(&b), &legacy), "records from before versions");
    }

    #[test]
    fn a_patched_table_is_replaced_whole_and_null_changes_nothing() {
        let v1 = DeploymentRecord::create("t", "d".into(), spec(M1), false, "a");
        let v2 = v1
            .patched(
                &patch(json!({"limits": {"memory_mib": 8, "deadline_ms": 100}})),
                "a",
            )
            .unwrap()
            .unwrap();
        let v3 = v2
            .patched(
                &patch(json!({"limits": {"deadline_ms": 200}, "outputs": null})),
                "a",
            )
            .unwrap()
            .unwrap();
        assert_eq!(v3.settings.limits.memory_mib, 64, "not given: the default");
        assert_eq!(v3.settings.limits.deadline_ms, 200);
        assert_eq!(v3.settings.outputs, ["a-out"], "null: unchanged");
    }

    #[test]
    fn a_bad_patch_names_the_key() {
        let v1 = DeploymentRecord::create("t", "d".into(), spec(M1), false, "a");
        for (p, expected) in [
            (json!({"grup": "x"}), "grup"),
            (json!({"name": "x"}), "name"),
            (
                json!({"schedule": {"interval_ms": 100}}),
                "for producer modules",
            ),
            (json!({"start": "soon"}), "start"),
        ] {
            let err = v1.patched(&patch(p.clone()), "a").unwrap_err().to_string();
            assert!(err.contains(expected), "{p}: {err}");
        }
    }

    /// Records written by the 0.1 release (tests/data/state) still load.
    #[test]
    fn records_of_the_previous_release_load() {
        let fixture = include_str!("../../../tests/data/state/deployments-0.1.jsonl");
        let mut kinds = std::collections::BTreeSet::new();
        for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
            let r: DeploymentRecord =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            kinds.insert(format!("{:?}", r.settings.kind.world()));
            let again: Value = serde_json::to_value(&r).unwrap();
            let was: Value = serde_json::from_str(line).unwrap();
            assert_eq!(again, was, "written back unchanged");
        }
        assert_eq!(kinds.len(), 2, "the fixture has a consumer and a producer");
    }
}
