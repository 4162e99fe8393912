//! Failure policy: how a failing batch is retried, split and dead-lettered.
//!
//! - A *retryable* error retries the same records with exponential backoff,
//!   up to `max_attempts`; then the records are split in two and each half is
//!   handled on its own.
//! - A *permanent* error naming its record (`record-index`) dead-letters that
//!   record at once and handles the records around it again; without an index
//!   the records are split until the culprit is alone.
//! - A *trap* discards the instance. Several records are split at once (each
//!   half is a retry); a single trapping record is retried up to
//!   `max_attempts`, then dead-lettered.
//!
//! So only poison records reach the dead-letter topic and their neighbours
//! are processed normally. A dead-lettered record keeps its key, value and
//! headers and gains `ingesta.*` headers saying where it came from and why it
//! failed. Without a dead-letter topic the deployment fails instead: a record
//! is never skipped.

use std::time::Duration;

use ingesta_abi::{HeaderEntry, OUTGOING_ENTRY_SIZE, OutgoingEntry, RecordEntry, Span, Timestamp};

use crate::deployment::FailureConfig;
use crate::deployment::status::{FailureClass, TrapKind};
use crate::wasm::bindings::{Batch, Outbox};

/// Why a record could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub class: FailureClass,
    pub message: String,
    /// Calls made with this record before giving up on it.
    pub attempts: u32,
}

/// The failure settings of one deployment, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub dead_letter_topic: Option<String>,
    pub max_attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl From<&FailureConfig> for Policy {
    fn from(c: &FailureConfig) -> Self {
        Self {
            dead_letter_topic: c.dead_letter_topic.clone(),
            max_attempts: c.max_attempts,
            backoff_initial: Duration::from_millis(c.backoff_initial_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms),
        }
    }
}

impl Policy {
    /// Delay before attempt `attempt + 1` (attempt counts from 1).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// How one call of the handler ended, as the policy needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Returned success.
    Ok,
    /// Returned an error (of class retryable or permanent).
    Failed {
        class: FailureClass,
        message: String,
        /// The record the guest blamed, relative to the records it was given.
        record_index: Option<u32>,
    },
    /// Trapped (the instance is gone).
    Trapped { kind: TrapKind, message: String },
}

/// What to do next with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Call the handler with these records of the batch. `first` is the
    /// whole batch's first call (the only one made while the lane closes).
    Call {
        range: std::ops::Range<usize>,
        attempt: u32,
        first: bool,
    },
    /// Dead-letter this record of the batch.
    DeadLetter { index: usize, failure: Failure },
    /// Every record is handled or dead-lettered.
    Done,
}

/// After a failed call: the same records again (after `backoff`), or
/// something else (a split, a dead letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Retry { backoff: Duration },
    Moved,
}

/// Pending work, on a stack in reverse record order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Work {
    Range(usize, usize),
    DeadLetter(usize, Failure),
}

/// The failure policy applied to one batch of `count` records, as a state
/// machine: [`Plan::next`] says what to do, the lane does it and reports
/// a call's [`Outcome`] with [`Plan::outcome`]. Outputs and dead letters
/// come out in record order. Pure: no I/O, no clock.
#[derive(Debug)]
pub(crate) struct Plan {
    count: usize,
    work: Vec<Work>,
    /// The range being called and its attempt number.
    current: Option<(usize, usize, u32)>,
}

impl Plan {
    pub(crate) fn new(count: usize) -> Self {
        Self {
            count,
            work: if count == 0 {
                Vec::new()
            } else {
                vec![Work::Range(0, count)]
            },
            current: None,
        }
    }

    /// What to do next.
    pub(crate) fn next(&mut self) -> Step {
        if let Some((lo, hi, attempt)) = self.current {
            return Step::Call {
                range: lo..hi,
                attempt,
                first: false,
            };
        }
        match self.work.pop() {
            None => Step::Done,
            Some(Work::DeadLetter(index, failure)) => Step::DeadLetter { index, failure },
            Some(Work::Range(lo, hi)) => {
                self.current = Some((lo, hi, 1));
                Step::Call {
                    range: lo..hi,
                    attempt: 1,
                    first: (lo, hi) == (0, self.count),
                }
            }
        }
    }

    /// The call [`Plan::next`] asked for ended with `outcome`.
    pub(crate) fn outcome(&mut self, outcome: Outcome, policy: &Policy) -> Next {
        let Some((lo, hi, attempt)) = self.current.take() else {
            return Next::Moved;
        };
        let retry = |plan: &mut Self, backoff: Duration| {
            plan.current = Some((lo, hi, attempt + 1));
            Next::Retry { backoff }
        };
        match outcome {
            Outcome::Ok => Next::Moved,
            Outcome::Failed {
                class,
                message,
                record_index,
            } => {
                let retryable = class == FailureClass::Retryable;
                if retryable && attempt < policy.max_attempts {
                    return retry(self, policy.backoff(attempt));
                }
                let failure = Failure {
                    class,
                    message,
                    attempts: attempt,
                };
                let culprit = record_index
                    .map(|i| i as usize)
                    .filter(|&i| !retryable && i < hi - lo);
                match culprit {
                    Some(i) => {
                        if lo + i + 1 < hi {
                            self.work.push(Work::Range(lo + i + 1, hi));
                        }
                        self.work.push(Work::DeadLetter(lo + i, failure));
                        if i > 0 {
                            self.work.push(Work::Range(lo, lo + i));
                        }
                    }
                    None if hi - lo > 1 => self.split(lo, hi),
                    None => self.work.push(Work::DeadLetter(lo, failure)),
                }
                Next::Moved
            }
            Outcome::Trapped { kind, message } => {
                if hi - lo > 1 {
                    self.split(lo, hi);
                    return Next::Moved;
                }
                if attempt < policy.max_attempts {
                    // A fresh instance is the change a retry needs.
                    return retry(self, Duration::ZERO);
                }
                self.work.push(Work::DeadLetter(
                    lo,
                    Failure {
                        class: FailureClass::Trap(kind),
                        message,
                        attempts: attempt,
                    },
                ));
                Next::Moved
            }
        }
    }

    fn split(&mut self, lo: usize, hi: usize) {
        let mid = lo + (hi - lo) / 2;
        self.work.push(Work::Range(mid, hi));
        self.work.push(Work::Range(lo, mid));
    }
}

/// The records `range` of `batch` as a batch of their own. The data and
/// header buffers are shared by every entry, so only the entries are cut.
pub(crate) fn slice(batch: &Batch, range: std::ops::Range<usize>) -> Batch {
    Batch {
        topic: batch.topic.clone(),
        partition: batch.partition,
        data: batch.data.clone(),
        records: batch.records[range.start * ingesta_abi::RECORD_ENTRY_SIZE
            ..range.end * ingesta_abi::RECORD_ENTRY_SIZE]
            .to_vec(),
        headers: batch.headers.clone(),
    }
}

/// Identity of the deployment, for dead-letter headers.
pub(crate) struct Origin<'a> {
    pub deployment: &'a str,
    pub module_digest: &'a str,
}

/// An outbox holding one dead-letter record: record `index` of `batch`
/// with its key, value and headers, plus provenance headers.
pub(crate) fn dead_letter(
    batch: &Batch,
    index: usize,
    topic: &str,
    origin: &Origin<'_>,
    failure: &Failure,
) -> Outbox {
    let entry = RecordEntry::read(&batch.records, index).expect("index is within the batch");
    let mut data = Vec::new();
    let mut headers = Vec::new();
    let mut header_count = 0u32;
    let copy = |data: &mut Vec<u8>, span: Span| {
        Span::append(data, span.get(&batch.data).unwrap_or_default())
    };
    let key = entry.key.map(|s| copy(&mut data, s));
    let value = entry.value.map(|s| copy(&mut data, s));
    for h in entry.header_start..entry.header_start + entry.header_count {
        let Some(h) = HeaderEntry::read(&batch.headers, h as usize) else {
            break;
        };
        HeaderEntry {
            name: copy(&mut data, h.name),
            value: h.value.map(|v| copy(&mut data, v)),
        }
        .encode(&mut headers);
        header_count += 1;
    }
    let timestamp = match entry.timestamp {
        Timestamp::NotAvailable => String::new(),
        Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t.to_string(),
    };
    let provenance: [(&str, &str); 9] = [
        ("ingesta.source.topic", &batch.topic),
        ("ingesta.source.partition", &batch.partition.to_string()),
        ("ingesta.source.offset", &entry.offset.to_string()),
        ("ingesta.source.timestamp", &timestamp),
        ("ingesta.deployment", origin.deployment),
        ("ingesta.module.digest", origin.module_digest),
        ("ingesta.error.class", &failure.class.label()),
        ("ingesta.error.message", &failure.message),
        ("ingesta.error.attempts", &failure.attempts.to_string()),
    ];
    for (name, value) in provenance {
        HeaderEntry {
            name: Span::append(&mut data, name.as_bytes()),
            value: Some(Span::append(&mut data, value.as_bytes())),
        }
        .encode(&mut headers);
        header_count += 1;
    }
    let mut records = Vec::with_capacity(OUTGOING_ENTRY_SIZE);
    OutgoingEntry {
        topic: 0,
        key,
        value,
        header_start: 0,
        header_count,
    }
    .encode(&mut records);
    Outbox {
        topics: vec![topic.to_owned()],
        data,
        records,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = Policy {
            dead_letter_topic: None,
            max_attempts: 10,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
        };
        let ms: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 500, 500]);
        assert_eq!(p.backoff(64), Duration::from_millis(500));
    }

    fn policy(max_attempts: u32) -> Policy {
        Policy {
            dead_letter_topic: Some("dlq".into()),
            max_attempts,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(40),
        }
    }

    /// A guest that fails on some records, as the plan sees it.
    #[derive(Clone, Copy)]
    enum Guest {
        /// Permanent error on these records, naming the record.
        Blames(&'static [usize]),
        /// Permanent error on these records, naming none.
        Anonymous(&'static [usize]),
        /// Traps whenever one of these records is in the call.
        Traps(&'static [usize]),
        /// Retryable error the first `n` calls, then success.
        Flaky(u32),
        /// Always retryable.
        Down,
    }

    /// Drives a plan over `count` records against `guest`; returns the
    /// log of steps: `call lo..hi #attempt`, `wait ms`, `dead i (class,
    /// attempts)`.
    fn run(count: usize, guest: Guest, max_attempts: u32) -> Vec<String> {
        let policy = policy(max_attempts);
        let mut plan = Plan::new(count);
        let mut log = Vec::new();
        let mut calls = 0u32;
        loop {
            match plan.next() {
                Step::Done => return log,
                Step::DeadLetter { index, failure } => log.push(format!(
                    "dead {index} ({}, {})",
                    failure.class, failure.attempts
                )),
                Step::Call { range, attempt, .. } => {
                    calls += 1;
                    assert!(calls < 1000, "runaway plan: {log:?}");
                    log.push(format!("call {}..{} #{attempt}", range.start, range.end));
                    let hit = |bad: &[usize]| bad.iter().copied().find(|i| range.contains(i));
                    let outcome = match guest {
                        Guest::Blames(bad) => match hit(bad) {
                            Some(i) => Outcome::Failed {
                                class: FailureClass::Permanent,
                                message: "bad".into(),
                                record_index: Some((i - range.start) as u32),
                            },
                            None => Outcome::Ok,
                        },
                        Guest::Anonymous(bad) => match hit(bad) {
                            Some(_) => Outcome::Failed {
                                class: FailureClass::Permanent,
                                message: "bad".into(),
                                record_index: None,
                            },
                            None => Outcome::Ok,
                        },
                        Guest::Traps(bad) => match hit(bad) {
                            Some(_) => Outcome::Trapped {
                                kind: TrapKind::Panic,
                                message: "boom".into(),
                            },
                            None => Outcome::Ok,
                        },
                        Guest::Flaky(n) if calls <= n => Outcome::Failed {
                            class: FailureClass::Retryable,
                            message: "later".into(),
                            record_index: None,
                        },
                        Guest::Flaky(_) => Outcome::Ok,
                        Guest::Down => Outcome::Failed {
                            class: FailureClass::Retryable,
                            message: "later".into(),
                            record_index: Some(0),
                        },
                    };
                    if let Next::Retry { backoff } = plan.outcome(outcome, &policy)
                        && !backoff.is_zero()
                    {
                        log.push(format!("wait {}", backoff.as_millis()));
                    }
                }
            }
        }
    }

    #[test]
    #[allow(clippy::too_many_lines, reason = "one table of cases and its check")]
    fn the_policy_as_a_table() {
        let cases: [(&str, usize, Guest, u32, &[&str]); 8] = [
            ("all good", 4, Guest::Flaky(0), 3, &["call 0..4 #1"]),
            (
                "a blamed record is dead-lettered at once, its neighbours go on",
                5,
                Guest::Blames(&[2]),
                3,
                &[
                    "call 0..5 #1",
                    "call 0..2 #1",
                    "dead 2 (permanent, 1)",
                    "call 3..5 #1",
                ],
            ),
            (
                "an anonymous error bisects down to the culprit",
                4,
                Guest::Anonymous(&[3]),
                3,
                &[
                    "call 0..4 #1",
                    "call 0..2 #1",
                    "call 2..4 #1",
                    "call 2..3 #1",
                    "call 3..4 #1",
                    "dead 3 (permanent, 1)",
                ],
            ),
            (
                "a trap splits at once; a lone trapping record is retried, then dead-lettered",
                2,
                Guest::Traps(&[0]),
                2,
                &[
                    "call 0..2 #1",
                    "call 0..1 #1",
                    "call 0..1 #2",
                    "dead 0 (trap:panic, 2)",
                    "call 1..2 #1",
                ],
            ),
            (
                "retryable errors back off, doubling to the cap",
                3,
                Guest::Flaky(3),
                5,
                &[
                    "call 0..3 #1",
                    "wait 10",
                    "call 0..3 #2",
                    "wait 20",
                    "call 0..3 #3",
                    "wait 40",
                    "call 0..3 #4",
                ],
            ),
            (
                "retryable to the last attempt, then split; a retryable index is no blame",
                2,
                Guest::Down,
                2,
                &[
                    "call 0..2 #1",
                    "wait 10",
                    "call 0..2 #2",
                    "call 0..1 #1",
                    "wait 10",
                    "call 0..1 #2",
                    "dead 0 (retryable, 2)",
                    "call 1..2 #1",
                    "wait 10",
                    "call 1..2 #2",
                    "dead 1 (retryable, 2)",
                ],
            ),
            (
                "a blamed first record: only the rest is called again",
                3,
                Guest::Blames(&[0]),
                1,
                &["call 0..3 #1", "dead 0 (permanent, 1)", "call 1..3 #1"],
            ),
            ("nothing to do", 0, Guest::Flaky(0), 3, &[]),
        ];
        for (what, count, guest, attempts, expected) in cases {
            assert_eq!(run(count, guest, attempts), expected, "{what}");
        }
    }

    #[test]
    fn only_the_whole_batch_first_call_is_first() {
        let mut plan = Plan::new(2);
        assert!(matches!(plan.next(), Step::Call { first: true, .. }));
        let policy = policy(3);
        let trapped = Outcome::Trapped {
            kind: TrapKind::Panic,
            message: "x".into(),
        };
        assert_eq!(plan.outcome(trapped, &policy), Next::Moved);
        assert!(matches!(plan.next(), Step::Call { first: false, .. }));
    }

    #[test]
    fn a_blame_out_of_range_bisects() {
        let policy = policy(1);
        let mut plan = Plan::new(2);
        plan.next();
        plan.outcome(
            Outcome::Failed {
                class: FailureClass::Permanent,
                message: "x".into(),
                record_index: Some(u32::MAX),
            },
            &policy,
        );
        assert_eq!(
            plan.next(),
            Step::Call {
                range: 0..1,
                attempt: 1,
                first: false
            }
        );
    }

    #[test]
    fn dead_letter_keeps_the_record_and_adds_provenance() {
        let mut data = Vec::new();
        let mut records = Vec::new();
        let mut headers = Vec::new();
        for (i, v) in ["good", "poison"].iter().enumerate() {
            let key = Span::append(&mut data, format!("k{i}").as_bytes());
            let value = Span::append(&mut data, v.as_bytes());
            HeaderEntry {
                name: Span::append(&mut data, b"trace"),
                value: Some(Span::append(&mut data, format!("t{i}").as_bytes())),
            }
            .encode(&mut headers);
            RecordEntry {
                offset: 40 + i as i64,
                timestamp: Timestamp::CreateTime(1_000 + i as i64),
                key: Some(key),
                value: Some(value),
                header_start: i as u32,
                header_count: 1,
            }
            .encode(&mut records);
        }
        let batch = Batch {
            topic: "in".into(),
            partition: 3,
            data,
            records,
            headers,
        };
        let failure = Failure {
            class: FailureClass::Trap(TrapKind::Panic),
            message: "boom".into(),
            attempts: 3,
        };
        let origin = Origin {
            deployment: "d",
            module_digest: "sha256:ab",
        };
        let out = dead_letter(&batch, 1, "dlq", &origin, &failure);
        assert_eq!(out.topics, ["dlq"]);
        let e = OutgoingEntry::read(&out.records, 0).unwrap();
        let text = |s: Span| String::from_utf8(s.get(&out.data).unwrap().to_vec()).unwrap();
        assert_eq!(text(e.key.unwrap()), "k1");
        assert_eq!(text(e.value.unwrap()), "poison");
        let hs: Vec<(String, String)> = (0..e.header_count as usize)
            .map(|i| {
                let h = HeaderEntry::read(&out.headers, i).unwrap();
                (text(h.name), text(h.value.unwrap()))
            })
            .collect();
        let get = |n: &str| hs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("trace"), Some("t1"), "original headers are kept");
        assert_eq!(get("ingesta.source.topic"), Some("in"));
        assert_eq!(get("ingesta.source.partition"), Some("3"));
        assert_eq!(get("ingesta.source.offset"), Some("41"));
        assert_eq!(get("ingesta.source.timestamp"), Some("1001"));
        assert_eq!(get("ingesta.deployment"), Some("d"));
        assert_eq!(get("ingesta.module.digest"), Some("sha256:ab"));
        assert_eq!(get("ingesta.error.class"), Some("trap:panic"));
        assert_eq!(get("ingesta.error.message"), Some("boom"));
        assert_eq!(get("ingesta.error.attempts"), Some("3"));
    }
}
