//! What a deployment knows about its assigned input partitions beyond
//! their lanes, so that nothing stops or is skipped without a word:
//! where each began, how far it is handled, whether it stands still with
//! records waiting (a *stall*), which records Kafka no longer had when it
//! got there (a *gap*), and whether its outputs are being refused
//! (*degraded*).
//!
//! The poll thread registers partitions as they are assigned and revoked
//! and runs the stall [`Watchdog`]; lanes advance [`Progress`]; status and
//! metrics read the [`Notes`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::deployment::status::{Degraded, Gap, Notes, Stall};
use crate::telemetry::DeploymentMetrics;

/// A topic and partition.
pub type PartitionKey = (String, i32);

/// Gaps kept for status (the counter keeps the total).
const GAPS_KEPT: usize = 20;

/// How far one assigned partition is handled; shared by the poll thread
/// and the partition's lane.
#[derive(Debug)]
pub struct Progress {
    /// The next offset not yet handled and stored (`-1`: unknown).
    handled_to: AtomicI64,
    /// Set when the partition is revoked or lost: its lane must store
    /// nothing more.
    closed: AtomicBool,
}

impl Progress {
    fn new(start: Option<i64>) -> Self {
        Self {
            handled_to: AtomicI64::new(start.unwrap_or(-1)),
            closed: AtomicBool::new(false),
        }
    }

    /// A batch up to `next_offset` (exclusive) is handled and stored.
    pub fn handled(&self, next_offset: i64) {
        self.handled_to.fetch_max(next_offset, Ordering::AcqRel);
    }

    /// The next offset not yet handled, if known.
    pub fn handled_to(&self) -> Option<i64> {
        Some(self.handled_to.load(Ordering::Acquire)).filter(|o| *o >= 0)
    }

    /// Whether the partition was taken away; its lane stores nothing then.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

use crate::deployment::now_ms;

#[derive(Default)]
struct State {
    assigned: HashMap<PartitionKey, Arc<Progress>>,
    stalled: BTreeMap<PartitionKey, Stall>,
    degraded: BTreeMap<PartitionKey, Degraded>,
    gaps: VecDeque<Gap>,
}

/// The deployment's assigned partitions and what is noted about them.
pub struct Partitions {
    deployment: Arc<str>,
    telemetry: Arc<crate::telemetry::DeploymentTelemetry>,
    state: Mutex<State>,
}

impl Partitions {
    /// Nothing assigned yet. `deployment` names it in log lines;
    /// `telemetry` holds the metrics gaps, stalls and republishes count in.
    pub fn new(
        deployment: Arc<str>,
        telemetry: Arc<crate::telemetry::DeploymentTelemetry>,
    ) -> Self {
        Self {
            deployment,
            telemetry,
            state: Mutex::new(State::default()),
        }
    }

    fn metrics(&self) -> &DeploymentMetrics {
        &self.telemetry.metrics
    }

    /// `key` is now assigned, starting at `start` (if known).
    pub fn assign(&self, key: PartitionKey, start: Option<i64>) -> Arc<Progress> {
        let progress = Arc::new(Progress::new(start));
        let old = self
            .state
            .lock()
            .unwrap()
            .assigned
            .insert(key, progress.clone());
        if let Some(old) = old {
            old.closed.store(true, Ordering::Release);
        }
        progress
    }

    /// `key` is no longer assigned: its lane stores nothing more and what
    /// was noted about it as a live partition (stall, degraded) ends.
    pub fn revoke(&self, key: &PartitionKey) {
        let mut state = self.state.lock().unwrap();
        if let Some(p) = state.assigned.remove(key) {
            p.closed.store(true, Ordering::Release);
        }
        state.stalled.remove(key);
        state.degraded.remove(key);
        drop(state);
        self.set_stalled_gauge(key, false);
    }

    /// Every partition is given up (the deployment stops).
    pub fn revoke_all(&self) {
        let keys: Vec<PartitionKey> = self.assigned().into_iter().map(|(k, _)| k).collect();
        for k in &keys {
            self.revoke(k);
        }
    }

    /// The progress of `key`, if assigned.
    pub fn progress(&self, key: &PartitionKey) -> Option<Arc<Progress>> {
        self.state.lock().unwrap().assigned.get(key).cloned()
    }

    /// Every assigned partition and its progress.
    pub fn assigned(&self) -> Vec<(PartitionKey, Arc<Progress>)> {
        let state = self.state.lock().unwrap();
        state
            .assigned
            .iter()
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect()
    }

    /// Records `from..to` of `key` are gone from Kafka and were skipped:
    /// counted, noted and logged (once, here).
    pub fn gap(&self, key: &PartitionKey, from: i64, to: i64, reason: &str) {
        if to <= from {
            return;
        }
        let (topic, partition) = (key.0.as_str(), key.1);
        tracing::warn!(
            deployment = &*self.deployment,
            topic,
            partition,
            from,
            to,
            skipped = to - from,
            reason,
            "records skipped: Kafka no longer has them; resuming at the earliest offset still there"
        );
        self.metrics()
            .skipped_records
            .with_label_values(&[topic, &partition.to_string()])
            .inc_by((to - from) as u64);
        let mut state = self.state.lock().unwrap();
        if state.gaps.len() == GAPS_KEPT {
            state.gaps.pop_front();
        }
        state.gaps.push_back(Gap {
            topic: topic.to_owned(),
            partition,
            from,
            to,
            at_ms: now_ms(),
            reason: reason.to_owned(),
        });
    }

    /// Outputs of `key` were refused for a passing reason and are being
    /// published again. Returns whether this is news (first refusal).
    pub fn degrade(&self, key: &PartitionKey, reason: &str) -> bool {
        self.metrics().republishes.inc();
        let mut state = self.state.lock().unwrap();
        match state.degraded.get_mut(key) {
            Some(d) => {
                d.reason = reason.to_owned();
                false
            }
            None => {
                state.degraded.insert(
                    key.clone(),
                    Degraded {
                        topic: key.0.clone(),
                        partition: key.1,
                        reason: reason.to_owned(),
                        since_ms: now_ms(),
                    },
                );
                true
            }
        }
    }

    /// Outputs of `key` are acknowledged again. Returns whether it was
    /// degraded.
    pub fn recovered(&self, key: &PartitionKey) -> bool {
        self.state.lock().unwrap().degraded.remove(key).is_some()
    }

    /// Why the deployment is degraded, if it is (the first partition's
    /// reason).
    pub fn degraded_reason(&self) -> Option<String> {
        let state = self.state.lock().unwrap();
        let (key, d) = state.degraded.iter().next()?;
        let more = state.degraded.len() - 1;
        let others = if more > 0 {
            format!(" (and {more} other partition(s))")
        } else {
            String::new()
        };
        Some(format!(
            "outputs of topic {:?} partition {} are not acknowledged by Kafka and are being published again{others}: {}",
            key.0, key.1, d.reason
        ))
    }

    /// What status shows.
    pub fn notes(&self) -> Notes {
        let state = self.state.lock().unwrap();
        Notes {
            stalled: state.stalled.values().cloned().collect(),
            skipped: state.gaps.iter().cloned().collect(),
            degraded: state.degraded.values().cloned().collect(),
        }
    }

    fn set_stalled_gauge(&self, key: &PartitionKey, stalled: bool) {
        let gauge = &self.metrics().partition_stalled;
        let labels = [key.0.as_str(), &key.1.to_string()];
        if stalled {
            gauge.with_label_values(&labels).set(1);
        } else {
            // Only partitions that ever stalled have a series; a series
            // that is not there needs no reset.
            if let Ok(g) = gauge.get_metric_with_label_values(&labels) {
                g.set(0);
            }
        }
    }

    fn stall(&self, key: &PartitionKey, stall: Stall) {
        tracing::warn!(deployment = &*self.deployment, topic = %key.0, partition = key.1,
            handled_to = ?stall.handled_to, high_watermark = ?stall.high_watermark,
            "partition stalled: records are waiting but nothing was handled for the stall timeout (a handler call that does not return, a retry or an output that Kafka keeps refusing, or a consumer that does not fetch); see the deployment's status");
        self.metrics().stalls.inc();
        self.set_stalled_gauge(key, true);
        self.state
            .lock()
            .unwrap()
            .stalled
            .insert(key.clone(), stall);
    }

    fn unstall(&self, key: &PartitionKey) {
        if self.state.lock().unwrap().stalled.remove(key).is_some() {
            tracing::info!(deployment = &*self.deployment, topic = %key.0, partition = key.1,
                "partition is making progress again");
            self.set_stalled_gauge(key, false);
        }
    }
}

/// What the watchdog sees of one partition at a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// The next offset not yet handled and stored.
    pub handled_to: Option<i64>,
    /// The next offset after the last record the poll loop received.
    pub received_to: Option<i64>,
    /// How far the consumer has delivered (librdkafka's application
    /// position, which also moves past transaction markers).
    pub delivered_to: Option<i64>,
    /// The partition's end as the consumer last saw it.
    pub high_watermark: Option<i64>,
    /// Whether `delivered_to` and `high_watermark` were looked at (they
    /// are only for partitions that may be standing still).
    pub detailed: bool,
}

impl Observation {
    /// Whether records are waiting: received but not handled, or in Kafka
    /// but not yet delivered. `None`: not known without the details.
    pub fn has_work(&self) -> Option<bool> {
        let handled = self.handled_to.unwrap_or(-1);
        let received = self.received_to.unwrap_or(-1).max(handled);
        if received > handled {
            return Some(true);
        }
        if !self.detailed {
            return None;
        }
        let delivered = self.delivered_to.unwrap_or(-1).max(received);
        Some(self.high_watermark.is_some_and(|h| h > delivered))
    }

    /// The positions that count as progress when they move (the others
    /// are read only for partitions that may be standing still).
    fn marks(&self) -> (Option<i64>, Option<i64>) {
        (self.handled_to, self.received_to)
    }
}

/// Finds partitions that have work and make no progress for `after`.
/// Pure bookkeeping: the caller observes and the watchdog decides, so it
/// is unit-tested without Kafka.
pub struct Watchdog {
    after: Duration,
    seen: HashMap<PartitionKey, Seen>,
}

struct Seen {
    marks: (Option<i64>, Option<i64>),
    /// When it last moved, or last had nothing to do.
    moved_at: Instant,
    moved_ms: u64,
    /// Whether it had work at the last observation that could tell:
    /// standing still counts from when work was first seen.
    had_work: bool,
    stalled: bool,
}

impl Seen {
    fn moved(&mut self, now: Instant) -> Verdict {
        self.moved_at = now;
        self.moved_ms = now_ms();
        if std::mem::take(&mut self.stalled) {
            Verdict::Recovered
        } else {
            Verdict::Fine
        }
    }
}

/// What the watchdog concluded about a partition at a check.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Moving, idle, or not standing still for long enough.
    Fine,
    /// Newly stalled (report it).
    Stalled {
        /// When it last made progress, or when its waiting records were
        /// first seen (ms since the Unix epoch): the stall's start.
        since_ms: u64,
    },
    /// Was stalled and moves again (clear the report).
    Recovered,
}

impl Watchdog {
    /// A watchdog that reports a partition once it has had work and made no
    /// progress for `after` (`runtime.stall_timeout_ms`).
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            seen: HashMap::new(),
        }
    }

    /// Whether the next observation of `key` needs the details (positions
    /// and watermarks): a partition not seen yet, one with work, or one
    /// that has not moved for the stall timeout.
    pub fn needs_detail(&self, key: &PartitionKey, now: Instant) -> bool {
        self.seen
            .get(key)
            .is_none_or(|s| s.had_work || now.duration_since(s.moved_at) >= self.after)
    }

    /// Take in an observation of `key` made at `now`.
    pub fn observe(&mut self, key: &PartitionKey, obs: Observation, now: Instant) -> Verdict {
        let seen = self.seen.entry(key.clone()).or_insert_with(|| Seen {
            marks: obs.marks(),
            moved_at: now,
            moved_ms: now_ms(),
            had_work: false,
            stalled: false,
        });
        if seen.marks != obs.marks() {
            seen.marks = obs.marks();
            return seen.moved(now);
        }
        match obs.has_work() {
            // Cannot tell from this look alone.
            None => Verdict::Fine,
            // Idle: waiting for records is not a stall.
            Some(false) => {
                seen.had_work = false;
                seen.moved(now)
            }
            // Work that just appeared has not waited yet.
            Some(true) if !seen.had_work => {
                seen.had_work = true;
                seen.moved(now)
            }
            Some(true) => {
                if !seen.stalled && now.duration_since(seen.moved_at) >= self.after {
                    seen.stalled = true;
                    return Verdict::Stalled {
                        since_ms: seen.moved_ms,
                    };
                }
                Verdict::Fine
            }
        }
    }

    /// Forget partitions that are no longer assigned.
    pub fn retain(&mut self, assigned: impl Fn(&PartitionKey) -> bool) {
        self.seen.retain(|k, _| assigned(k));
    }
}

/// Act on a verdict: note, count and log it.
pub fn report(partitions: &Partitions, key: &PartitionKey, obs: Observation, verdict: Verdict) {
    match verdict {
        Verdict::Fine => {}
        Verdict::Stalled { since_ms } => partitions.stall(
            key,
            Stall {
                topic: key.0.clone(),
                partition: key.1,
                since_ms,
                handled_to: obs.handled_to,
                high_watermark: obs.high_watermark,
            },
        ),
        Verdict::Recovered => partitions.unstall(key),
    }
}

/// Where a deployment stood when it was last caught up on every assigned
/// partition (everything received handled, nothing cut or waiting), and
/// since when it has stood there. The supervisor puts a deployment quiet
/// for `runtime.sleep_after_ms` to sleep and wakes it when a partition's
/// end passes where it stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quiet {
    /// The first check that found it caught up at `at`.
    pub since: Instant,
    /// The next offset to read on each assigned partition.
    pub at: BTreeMap<PartitionKey, i64>,
}

impl Quiet {
    /// The state after a check that found the deployment caught up at
    /// `at` (`None`: not caught up): quiet since the first of consecutive
    /// checks that found it at the same place.
    pub fn next(
        prev: Option<Quiet>,
        at: Option<BTreeMap<PartitionKey, i64>>,
        now: Instant,
    ) -> Option<Quiet> {
        let at = at?;
        match prev {
            Some(q) if q.at == at => Some(q),
            _ => Some(Quiet { since: now, at }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_lasts_while_the_deployment_stands_still() {
        let t0 = Instant::now();
        let at = |o: i64| Some(BTreeMap::from([(("t".to_owned(), 0), o)]));
        let q = Quiet::next(None, at(5), t0).unwrap();
        let later = t0 + Duration::from_secs(3);
        assert_eq!(
            Quiet::next(Some(q.clone()), at(5), later).unwrap().since,
            t0
        );
        assert_eq!(
            Quiet::next(Some(q.clone()), at(6), later).unwrap().since,
            later,
            "handled more: quiet from now"
        );
        assert_eq!(
            Quiet::next(Some(q), None, later),
            None,
            "work waiting: not quiet"
        );
    }

    fn key() -> PartitionKey {
        ("in".into(), 0)
    }

    fn obs(handled: i64, received: i64, delivered: i64, high: i64) -> Observation {
        let known = |o: i64| (o >= 0).then_some(o);
        Observation {
            handled_to: known(handled),
            received_to: known(received),
            delivered_to: known(delivered),
            high_watermark: known(high),
            detailed: true,
        }
    }

    fn cheap(handled: i64, received: i64) -> Observation {
        Observation {
            detailed: false,
            delivered_to: None,
            high_watermark: None,
            ..obs(handled, received, -1, -1)
        }
    }

    #[test]
    fn work_is_what_was_received_or_is_in_kafka_but_not_handled() {
        // (handled, received, delivered, high) -> has work
        let cases = [
            ((10, 10, 10, 10), false, "caught up"),
            ((10, 12, 12, 12), true, "received, not handled"),
            ((10, 10, 10, 15), true, "in Kafka, not delivered"),
            (
                (10, 10, 11, 11),
                false,
                "a transaction marker after the last record",
            ),
            (
                (-1, -1, -1, 7),
                true,
                "never delivered anything, records there",
            ),
            ((-1, -1, -1, -1), false, "nothing known"),
            ((5, -1, -1, 5), false, "started at the end"),
        ];
        for ((h, r, d, w), expected, what) in cases {
            assert_eq!(obs(h, r, d, w).has_work(), Some(expected), "{what}");
        }
        assert_eq!(cheap(10, 12).has_work(), Some(true));
        assert_eq!(cheap(10, 10).has_work(), None, "not known without details");
    }

    #[test]
    fn a_partition_with_work_and_no_progress_stalls_once_and_recovers() {
        let mut w = Watchdog::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let stuck = obs(10, 20, 20, 30);
        assert_eq!(w.observe(&key(), stuck, at(0)), Verdict::Fine);
        assert!(
            w.needs_detail(&key(), at(1)),
            "a partition with work is looked at"
        );
        assert_eq!(w.observe(&key(), stuck, at(29)), Verdict::Fine);
        assert!(matches!(
            w.observe(&key(), stuck, at(30)),
            Verdict::Stalled { .. }
        ));
        assert_eq!(
            w.observe(&key(), stuck, at(31)),
            Verdict::Fine,
            "reported once"
        );
        assert_eq!(
            w.observe(&key(), obs(11, 20, 20, 30), at(32)),
            Verdict::Recovered
        );
        assert_eq!(
            w.observe(&key(), obs(11, 20, 20, 30), at(40)),
            Verdict::Fine
        );
    }

    #[test]
    fn idle_and_moving_partitions_never_stall() {
        let mut w = Watchdog::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for s in 0..10 {
            let t = t0 + Duration::from_secs(s);
            assert_eq!(w.observe(&key(), obs(5, 5, 5, 5), t), Verdict::Fine);
            let moving = obs(s as i64, s as i64 + 1, 100, 100);
            assert_eq!(w.observe(&("m".into(), 1), moving, t), Verdict::Fine);
        }
        // Idle for long (looked at cheaply), then records arrive in Kafka
        // and are never delivered: stalled one timeout after they appeared.
        assert!(!w.needs_detail(&key(), t0 + Duration::from_millis(9500)));
        assert_eq!(
            w.observe(&key(), cheap(5, 5), t0 + Duration::from_secs(15)),
            Verdict::Fine
        );
        let t = t0 + Duration::from_secs(20);
        assert!(
            w.needs_detail(&key(), t),
            "quiet for long: looked at in detail"
        );
        assert_eq!(w.observe(&key(), obs(5, 5, 5, 9), t), Verdict::Fine);
        assert_eq!(
            w.observe(&key(), cheap(5, 5), t + Duration::from_millis(500)),
            Verdict::Fine
        );
        assert!(matches!(
            w.observe(&key(), obs(5, 5, 5, 9), t + Duration::from_secs(1)),
            Verdict::Stalled { .. }
        ));
    }

    #[test]
    fn revoked_partitions_are_forgotten() {
        let mut w = Watchdog::new(Duration::from_secs(1));
        let t0 = Instant::now();
        w.observe(&key(), obs(1, 2, 2, 3), t0);
        w.retain(|_| false);
        assert!(
            w.needs_detail(&key(), t0),
            "unknown partitions are looked at"
        );
        assert_eq!(w.observe(&key(), obs(1, 2, 2, 3), t0), Verdict::Fine);
    }
}
