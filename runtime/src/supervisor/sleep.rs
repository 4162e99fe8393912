//! Sleeping deployments: scale to zero and wake on the first record.
//!
//! An API consumer deployment that has stood caught up, with no record,
//! for `runtime.sleep_after_ms` is stopped like a pause (it commits what
//! it handled and leaves its group, releasing its Kafka client, poll
//! thread and instances) and kept as `sleeping` with where it stood on
//! each partition it held. One task per runner reads the ends of every
//! sleeping deployment's inputs every `runtime.wake_check_ms`, in one
//! request through the offsets service, and starts a deployment again as
//! soon as one of its partitions' end passes where it stood. Nothing is
//! skipped: a woken deployment begins at its group's committed offsets,
//! which are where it stopped. Lag keeps being reported (it is read from
//! the group's commits, which need no member).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Running, Supervisor};
use crate::offsets::{Offsets, Tp};
use crate::pipeline::partitions::Quiet;

/// What a sleeping deployment keeps of where it stood.
#[derive(Debug, Clone)]
pub(super) struct Asleep {
    /// When it fell asleep.
    pub(super) since: Instant,
    /// The next offset to read on each partition it held.
    at: BTreeMap<Tp, i64>,
    /// Where its group stood on its inputs' other partitions when it fell
    /// asleep (committed offset, else the first offset): another member
    /// of the group held them, or nobody did (it had just joined).
    others: HashMap<Tp, i64>,
}

/// Why a sleeping deployment wakes: the first partition found with
/// records past where it stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Woken {
    /// The partition.
    pub(super) tp: Tp,
    /// Where the deployment stood on it.
    pub(super) from: i64,
    /// The partition's end now.
    pub(super) to: i64,
}

impl Asleep {
    /// Asleep now, having stood at `quiet`'s offsets on the partitions it
    /// held and its group at `others` on the rest.
    pub(super) fn new(quiet: Quiet, others: HashMap<Tp, i64>) -> Self {
        Self {
            since: Instant::now(),
            at: quiet.at,
            others,
        }
    }

    /// Whether `ends` (each input partition's watermarks now) show a
    /// record past where it, or its group, stood. A partition it knows
    /// nothing of (added to the topic while it slept) counts from its
    /// first offset, so all its records do.
    pub(super) fn woken_by(&self, ends: &HashMap<Tp, (i64, i64)>) -> Option<Woken> {
        let mut sorted: Vec<(&Tp, &(i64, i64))> = ends.iter().collect();
        sorted.sort();
        sorted.into_iter().find_map(|(tp, &(low, high))| {
            let from = self
                .at
                .get(tp)
                .or_else(|| self.others.get(tp))
                .copied()
                .unwrap_or(low);
            (high > from).then(|| Woken {
                tp: tp.clone(),
                from,
                to: high,
            })
        })
    }
}

impl Supervisor {
    /// Put to sleep every API consumer deployment that has stood caught up
    /// for `after`. Where its group stands on the partitions it does not
    /// hold is read first (from `offsets`); a deployment whose group cannot
    /// be read stays awake.
    pub async fn sleep_idle(self: &Arc<Self>, offsets: &Arc<Offsets>, after: Duration) {
        let due: Vec<String> = {
            let slots = self.slots.lock().unwrap();
            slots
                .iter()
                .filter(|(_, s)| s.record.as_ref().is_some_and(|r| !r.paused))
                .filter(|(_, s)| match &s.running {
                    Some(Running::Consumer(d)) => {
                        d.quiet().is_some_and(|q| q.since.elapsed() >= after)
                    }
                    _ => false,
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        // All at once: stopping one takes a drain and a group leave, and
        // the wake checks wait for this round.
        let mut sleeping = tokio::task::JoinSet::new();
        for key in due {
            let (me, offsets) = (self.clone(), offsets.clone());
            sleeping.spawn(async move { me.sleep_one(&key, &offsets, after).await });
        }
        while sleeping.join_next().await.is_some() {}
    }

    /// Put deployment `key` to sleep if it still stands caught up.
    async fn sleep_one(&self, key: &str, offsets: &Offsets, after: Duration) {
        let _turn = self.turn(key).await;
        let (d, quiet, group) = {
            let slots = self.slots.lock().unwrap();
            let Some(s) = slots.get(key) else { return };
            let (Some(Running::Consumer(d)), Some(group)) =
                (s.running.clone(), s.def.group_and_inputs())
            else {
                return;
            };
            match d.quiet().filter(|q| q.since.elapsed() >= after) {
                Some(q) => (d, q, group),
                None => return,
            }
        };
        let others = match offsets.lag(std::slice::from_ref(&group)).await.pop() {
            Some(Ok(parts)) => parts
                .into_iter()
                .map(|p| ((p.topic, p.partition), p.high_watermark - p.lag))
                .filter(|(tp, _)| !quiet.at.contains_key(tp))
                .collect(),
            Some(Err(e)) => {
                tracing::debug!(deployment = key, error = %e,
                    "not sleeping: where its group stands cannot be read");
                return;
            }
            None => return,
        };
        let idle_ms = quiet.since.elapsed().as_millis() as u64;
        if let crate::deployment::RunState::Failed(_) = d.stop().await {
            // It failed while stopping: it stays listed as failed.
            return;
        }
        let mut slots = self.slots.lock().unwrap();
        if let Some(s) = slots.get_mut(key) {
            s.running = None;
            s.telemetry.metrics.sleeps.inc();
            tracing::info!(deployment = key, idle_ms, at = ?quiet.at, group_at = ?others,
                "deployment sleeping: caught up and idle; its consumer is released until a record arrives");
            s.asleep = Some(Asleep::new(quiet, others));
        }
    }

    /// Read the ends of every sleeping deployment's inputs (one request)
    /// and start again those with records past where they stood, all at
    /// once.
    pub async fn wake_sleepers(self: &Arc<Self>, offsets: &Offsets) {
        let mut topics: Vec<String> = {
            let slots = self.slots.lock().unwrap();
            slots
                .values()
                .filter(|s| s.asleep.is_some())
                .flat_map(inputs_of)
                .collect()
        };
        if topics.is_empty() {
            return;
        }
        topics.sort();
        topics.dedup();
        let ends = match offsets.ends(&topics).await {
            Ok(ends) => ends,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the ends of sleeping deployments' inputs; they wake at the next check that can");
                return;
            }
        };
        let noticed = Instant::now();
        let woken: Vec<(String, Woken)> = {
            let slots = self.slots.lock().unwrap();
            slots
                .iter()
                .filter_map(|(k, s)| {
                    let inputs = inputs_of(s);
                    let asleep = s.asleep.as_ref()?;
                    let mine: HashMap<Tp, (i64, i64)> = ends
                        .iter()
                        .filter(|((t, _), _)| inputs.contains(t))
                        .map(|(tp, e)| (tp.clone(), *e))
                        .collect();
                    Some((k.clone(), asleep.woken_by(&mine)?))
                })
                .collect()
        };
        let mut waking = tokio::task::JoinSet::new();
        for (key, why) in woken {
            let me = self.clone();
            waking.spawn(async move { me.wake(&key, why, noticed).await });
        }
        while waking.join_next().await.is_some() {}
    }

    /// Start the sleeping deployment `key` again.
    async fn wake(&self, key: &str, why: Woken, noticed: Instant) {
        let _turn = self.turn(key).await;
        let (def, telemetry) = {
            let slots = self.slots.lock().unwrap();
            match slots.get(key) {
                Some(s) if s.asleep.is_some() && s.running.is_none() => {
                    (s.def.clone(), s.telemetry.clone())
                }
                _ => return,
            }
        };
        let started = match self.program(&def, &telemetry).await {
            Ok(program) => self.start(program).await,
            Err(e) => Err(e),
        };
        let took_ms = noticed.elapsed().as_millis() as u64;
        let mut slots = self.slots.lock().unwrap();
        let Some(s) = slots.get_mut(key) else { return };
        s.asleep = None;
        match started {
            Ok(d) => {
                s.telemetry.metrics.wakes.inc();
                s.telemetry.metrics.wake_ms.inc_by(took_ms);
                tracing::info!(deployment = key, topic = %why.tp.0, partition = why.tp.1,
                    from = why.from, to = why.to, took_ms, "deployment woken: records arrived");
                s.running = Some(d);
            }
            Err(e) => {
                tracing::warn!(deployment = key, error = %format!("{e:#}"),
                    "a sleeping deployment cannot start again");
                s.problem = Some(format!("{e:#}"));
            }
        }
    }

    /// Put idle deployments to sleep once a second and wake sleeping ones
    /// every `check`, until `closing` turns true (a round under way is
    /// finished first).
    pub async fn keep_sleeping(
        self: Arc<Self>,
        offsets: Arc<Offsets>,
        after: Duration,
        check: Duration,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut next_sleep = Instant::now() + Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(check) => {}
                _ = closing.wait_for(|c| *c) => return,
            }
            self.wake_sleepers(&offsets).await;
            if Instant::now() >= next_sleep {
                next_sleep = Instant::now() + Duration::from_secs(1);
                self.sleep_idle(&offsets, after).await;
            }
        }
    }
}

/// Every topic a slot's deployment reads (none for a producer).
fn inputs_of(s: &super::Slot) -> Vec<String> {
    s.def.group_and_inputs().map(|(_, t)| t).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        ("in".to_owned(), p)
    }

    fn asleep_at(at: &[(i32, i64)], others: &[(i32, i64)]) -> Asleep {
        let quiet = Quiet {
            since: Instant::now(),
            at: at.iter().map(|&(p, o)| (tp(p), o)).collect(),
        };
        Asleep::new(quiet, others.iter().map(|&(p, o)| (tp(p), o)).collect())
    }

    #[test]
    fn wakes_only_for_records_past_where_it_or_its_group_stood() {
        // Partition 1 was another member's, committed to 7.
        let a = asleep_at(&[(0, 10)], &[(1, 7)]);
        let mut ends = HashMap::from([(tp(0), (0, 10)), (tp(1), (0, 7))]);
        assert_eq!(a.woken_by(&ends), None);
        ends.insert(tp(1), (0, 8));
        assert_eq!(
            a.woken_by(&ends),
            Some(Woken {
                tp: tp(1),
                from: 7,
                to: 8
            })
        );
        ends.insert(tp(1), (0, 7));
        ends.insert(tp(0), (0, 11));
        assert_eq!(
            a.woken_by(&ends),
            Some(Woken {
                tp: tp(0),
                from: 10,
                to: 11
            })
        );
    }

    #[test]
    fn asleep_before_it_held_anything_it_wakes_for_what_its_group_did_not_handle() {
        // Put to sleep between joining and its first assignment: records
        // already there but not committed by the group still wake it.
        let a = asleep_at(&[], &[(0, 4)]);
        let ends = HashMap::from([(tp(0), (0, 9))]);
        assert_eq!(
            a.woken_by(&ends),
            Some(Woken {
                tp: tp(0),
                from: 4,
                to: 9
            })
        );
    }

    #[test]
    fn a_partition_added_while_asleep_counts_from_its_start() {
        let a = asleep_at(&[(0, 3)], &[]);
        let mut ends = HashMap::from([(tp(0), (0, 3))]);
        assert_eq!(a.woken_by(&ends), None);
        ends.insert(tp(1), (0, 0));
        assert_eq!(a.woken_by(&ends), None, "empty new partition");
        ends.insert(tp(2), (0, 2));
        assert_eq!(
            a.woken_by(&ends),
            Some(Woken {
                tp: tp(2),
                from: 0,
                to: 2
            })
        );
    }

    #[test]
    fn records_that_arrived_before_it_slept_wake_it_at_once() {
        let a = asleep_at(&[(0, 3)], &[]);
        let ends = HashMap::from([(tp(0), (0, 5))]);
        assert_eq!(
            a.woken_by(&ends),
            Some(Woken {
                tp: tp(0),
                from: 3,
                to: 5
            })
        );
    }
}
