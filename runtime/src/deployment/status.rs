//! How a deployment is doing, in words every layer shares: its life-cycle
//! state while it runs ([`RunState`]), the state status reports
//! ([`State`]), and what is noted about its partitions ([`Notes`]).

use serde::{Deserialize, Serialize};

/// Where a started deployment is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// Being started: a consumer's client is being created and subscribed
    /// and its poll thread has not started yet.
    Starting,
    /// Consuming its inputs (consumer) or taking requests and ticks
    /// (producer), with nothing to report.
    Running,
    /// Running, but Kafka keeps refusing some outputs for a passing reason
    /// (they are published again; nothing is committed past them). Carries
    /// the reason; returns to `Running` by itself.
    Degraded(String),
    /// Stopped on request; everything handled was committed.
    Stopped,
    /// Stopped by a failure that needs an operator; carries the reason.
    Failed(String),
}

impl RunState {
    /// Consuming (degraded or not).
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running | Self::Degraded(_))
    }

    /// Stopped or failed: it does nothing any more.
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Stopped | Self::Failed(_))
    }

    /// The state status reports, and the reason that goes with it.
    pub fn reported(&self) -> (State, Option<String>) {
        match self {
            Self::Starting => (State::Starting, None),
            Self::Running => (State::Running, None),
            Self::Degraded(r) => (State::Degraded, Some(r.clone())),
            Self::Stopped => (State::Stopped, None),
            Self::Failed(r) => (State::Failed, Some(r.clone())),
        }
    }
}

/// A deployment's state as status, `ingesta ls` and the metrics name it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Consuming its inputs (consumer) or taking requests and ticks
    /// (producer), with nothing to report.
    Running,
    /// Running, but Kafka keeps refusing some of its outputs for a passing
    /// reason (`reason` says which and why): they are published again and
    /// nothing is committed past them. Returns to `running` by itself.
    Degraded,
    /// Paused through the API: nothing runs until it is resumed; what it
    /// handled before was committed.
    Paused,
    /// Not running because of a failure that needs someone to act (a module
    /// that cannot be loaded or linked, a record that could not be handled
    /// nor dead-lettered...); `reason` says why. A change to an API
    /// deployment (PATCH, pause and resume, rollback) starts it again.
    Failed,
    /// Being started; becomes `running` once it consumes.
    Starting,
    /// Stopped on request (the runner shutting down, or between the stop
    /// and the start of a restart); what it handled was committed.
    Stopped,
    /// Caught up and idle for `runtime.sleep_after_ms`: its consumer,
    /// threads and instances are released and what it handled is
    /// committed; the runner watches its inputs' ends and starts it again
    /// when a record arrives. Lag is still reported.
    Sleeping,
}

impl State {
    /// Every state, for metrics that list them up front.
    pub const ALL: [State; 7] = [
        State::Running,
        State::Degraded,
        State::Paused,
        State::Failed,
        State::Starting,
        State::Stopped,
        State::Sleeping,
    ];

    /// The name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Degraded => "degraded",
            State::Paused => "paused",
            State::Failed => "failed",
            State::Starting => "starting",
            State::Stopped => "stopped",
            State::Sleeping => "sleeping",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an instance stopped abruptly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// The call ran past its wall-clock budget.
    Deadline,
    /// The guest tried to grow memory past its cap.
    OutOfMemory,
    /// The guest's call stack overflowed.
    StackOverflow,
    /// `unreachable` — what a Rust panic, Go panic or Python abort becomes.
    Panic,
    /// The call burned its fuel budget.
    OutOfFuel,
    /// One host call tried to carry more than the component-model limits
    /// allow (data copied to the host, live resource handles).
    HostCallLimit,
    /// Any other trap (out-of-bounds access, division by zero...).
    Other,
}

impl TrapKind {
    /// Every kind, for metrics that list them up front.
    pub const ALL: [TrapKind; 7] = [
        TrapKind::Deadline,
        TrapKind::OutOfMemory,
        TrapKind::StackOverflow,
        TrapKind::Panic,
        TrapKind::OutOfFuel,
        TrapKind::HostCallLimit,
        TrapKind::Other,
    ];

    /// Short stable name for logs, metrics and dead-letter headers.
    pub fn as_str(self) -> &'static str {
        match self {
            TrapKind::Deadline => "deadline",
            TrapKind::OutOfMemory => "out-of-memory",
            TrapKind::StackOverflow => "stack-overflow",
            TrapKind::Panic => "panic",
            TrapKind::OutOfFuel => "out-of-fuel",
            TrapKind::HostCallLimit => "host-call-limit",
            TrapKind::Other => "trap",
        }
    }
}

/// Why a call failed, as metrics and dead-letter headers name it
/// (`retryable`, `permanent`, `trap:<kind>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The guest returned an error it may succeed after.
    Retryable,
    /// The guest returned an error it will not succeed after.
    Permanent,
    /// The instance trapped and was discarded.
    Trap(TrapKind),
}

impl FailureClass {
    /// Every class, for metrics that list them up front.
    pub fn all() -> impl Iterator<Item = FailureClass> {
        [FailureClass::Retryable, FailureClass::Permanent]
            .into_iter()
            .chain(TrapKind::ALL.into_iter().map(FailureClass::Trap))
    }

    /// The label: `retryable`, `permanent` or `trap:<kind>`.
    pub fn label(self) -> String {
        match self {
            FailureClass::Retryable => "retryable".into(),
            FailureClass::Permanent => "permanent".into(),
            FailureClass::Trap(kind) => format!("trap:{}", kind.as_str()),
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// A partition that stands still with records waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stall {
    /// Input topic of the stalled partition.
    pub topic: String,
    /// Partition number within `topic`.
    pub partition: i32,
    /// When it was last seen moving (ms since the Unix epoch).
    pub since_ms: u64,
    /// The next offset it has not handled.
    pub handled_to: Option<i64>,
    /// The partition's end as the consumer last saw it.
    pub high_watermark: Option<i64>,
}

/// Records a partition skipped because Kafka no longer had them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Gap {
    /// Input topic of the partition that skipped records.
    pub topic: String,
    /// Partition number within `topic`.
    pub partition: i32,
    /// The first offset skipped.
    pub from: i64,
    /// The offset it resumed at (exclusive end of the skipped range).
    pub to: i64,
    /// When it was found (ms since the Unix epoch).
    pub at_ms: u64,
    /// Why, in words.
    pub reason: String,
}

/// A partition whose outputs Kafka keeps refusing for a passing reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Degraded {
    /// Input topic of the partition whose outputs are refused.
    pub topic: String,
    /// Partition number within `topic`.
    pub partition: i32,
    /// Kafka's latest refusal, in words (updated on every refusal).
    pub reason: String,
    /// When its outputs were first refused in this episode (ms since the
    /// Unix epoch); the entry goes away once they are acknowledged again.
    pub since_ms: u64,
}

/// What status shows about a deployment's partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Notes {
    /// Partitions standing still with records waiting.
    pub stalled: Vec<Stall>,
    /// The latest ranges of records skipped because Kafka no longer had
    /// them (newest last).
    pub skipped: Vec<Gap>,
    /// Partitions whose outputs are being published again.
    pub degraded: Vec<Degraded>,
}

impl Notes {
    /// Nothing to report.
    pub fn is_empty(&self) -> bool {
        self.stalled.is_empty() && self.skipped.is_empty() && self.degraded.is_empty()
    }
}
