//! The deployment model: one [`Spec`] type for what a deployment runs and
//! how (its kind typed: consumer or producer), the record that keeps its
//! revisions in the state topic, the one decision of what a change means
//! ([`change`]), and the words for how it is doing ([`status`]).
//!
//! | module | owns |
//! |---|---|
//! | [`settings`] | the settings tables (start, batch, limits, failure, ingest, schedule) with their defaults |
//! | [`spec`] | [`Spec`], [`Kind`], [`ModuleRef`], the written form and the one validation |
//! | [`change`] | what following a new spec means: nothing, swap, restart, replay |
//! | [`record`] | the state-topic record: revisions, rollback, pause, replay, PATCH |
//! | [`status`] | run states, reported states, notes about partitions |
//!
//! The config file, the API, the state records and the CLI all map onto
//! these types; nothing below (pipeline, producer, supervisor) re-derives
//! a deployment's kind or re-decides what a change means.

pub mod change;
pub mod record;
pub mod settings;
pub mod spec;
pub mod status;

use std::collections::BTreeMap;

pub use change::{Change, change};
pub use record::{DeploymentRecord, PatchError, Replay, Revision, follows};
pub use settings::{
    BatchConfig, FailureConfig, IngestConfig, LimitsConfig, Scalar, ScheduleConfig, StartPosition,
};
pub use spec::{
    ConsumerSettings, Digest, Fields, InvalidSpec, Kind, ModuleRef, ProducerSettings, Spec, World,
    is_valid_name, is_valid_topic,
};
pub use status::{Notes, RunState, State};

/// A deployment as a runner runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// `<tenant>/<name>` for an API deployment, the config file's name
    /// otherwise: the name in logs, metrics and dead-letter headers.
    pub name: String,
    /// What it runs and how (the current revision, for an API deployment).
    pub spec: Spec,
    /// librdkafka consumer properties for this deployment only. Only the
    /// operator sets them, in the config file: a tenant's deployment has
    /// none (this is why the config file's deployment is not just a spec).
    pub kafka: BTreeMap<String, Scalar>,
    /// A consumer's redrive topic, read beside its inputs (an API
    /// deployment's, once redriven; `None` otherwise).
    pub redrive_topic: Option<String>,
}

impl Definition {
    /// An API deployment's definition: its key and current spec.
    pub fn of_record(record: &DeploymentRecord) -> Self {
        Self {
            name: record.key(),
            spec: record.settings.clone(),
            kafka: BTreeMap::new(),
            redrive_topic: record.redrive_topic.clone(),
        }
    }

    /// A consumer's group and every topic it reads (its inputs, then its
    /// redrive topic): where its offsets and lag are; `None` for a
    /// producer.
    pub fn group_and_inputs(&self) -> Option<(String, Vec<String>)> {
        let (group, mut inputs) = self.spec.group_and_inputs()?;
        inputs.extend(self.redrive_topic.iter().cloned());
        Some((group, inputs))
    }
}

/// A definition with its module linked, ready to start: `T` is the
/// consumer's or the producer's instance template.
pub struct Linked<T> {
    /// The definition the module was linked for.
    pub def: Definition,
    /// The linked module with the definition's grants, from which
    /// instances are made.
    pub template: T,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
