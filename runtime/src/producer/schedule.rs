//! The timer of a generator deployment: one task for the deployment's
//! life, calling the module's tick export every `schedule.interval_ms` of
//! the current program (none while it has no schedule), on one instance
//! kept across ticks until a swap brings a new program.
//!
//! A tick's records are published like a request's, but nobody waits on
//! the other end, so a tick keeps retrying its publish (with backoff) until
//! Kafka acknowledges it: the generator stalls while the broker is away
//! instead of dropping what it made. Only two things end that: Kafka
//! refusing the records for good (too large, unknown topic, not
//! authorized), and the deployment stopping; both are logged as errors
//! with the records concerned. A late tick delays the next one; missed
//! ticks are not made up in a burst, and `max_records_per_second` spaces
//! ticks by what they published. The task holds only a weak reference to
//! its deployment, so it can never outlive it.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use ingesta_abi::OutgoingEntry;

use super::owner::ScheduleOwner;
use super::{ProducerDeployment, Program};
use crate::pipeline::failure::Policy;
use crate::wasm::bindings::producer::Tick;
use crate::wasm::bindings::{ErrorClass, Outbox};
use crate::wasm::{CallOutcome, ProducerInstance};

/// Shortest wait between two publishes of the same tick's records, whatever
/// the failure policy says (a zero backoff must not become a hot loop).
const MIN_REPUBLISH_DELAY: Duration = Duration::from_millis(100);

/// The running timer task.
pub(super) struct Ticker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    pub(super) fn start(deployment: &Arc<ProducerDeployment>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let swapped = deployment.swapped.subscribe();
        let task = tokio::spawn(run(Arc::downgrade(deployment), stopped, swapped));
        Self { stop, task }
    }

    /// Stop after the tick in flight, waiting at most `timeout` for it.
    pub(super) async fn stop_and_wait(self, timeout: Duration) {
        self.stop.send_replace(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            tracing::error!(
                "a tick was still running at the drain timeout; it was abandoned and its records may be lost"
            );
            abort.abort();
        }
    }
}

/// The instance ticks run on, and the program it was made from.
struct TickInstance {
    program: Arc<Program>,
    instance: ProducerInstance,
}

/// How one tick ended.
enum TickEnd {
    /// Its records (this many) were acknowledged.
    Published(usize),
    /// It produced nothing (an error, or records Kafka refused for good).
    Failed(String),
    /// The deployment stopped meanwhile.
    Stopped,
}

async fn run(
    d: Weak<ProducerDeployment>,
    mut stop: watch::Receiver<bool>,
    mut swapped: watch::Receiver<u64>,
) {
    let mut next = Instant::now();
    let mut current: Option<TickInstance> = None;
    let mut last_error: Option<String> = None;
    let mut seq = 0u64;
    let mut owner: Option<ScheduleOwner> = None;
    loop {
        let (schedule, coordination, name) = match d.upgrade() {
            Some(d) => (
                d.current().settings.schedule.clone(),
                d.coordination.clone(),
                d.name.to_string(),
            ),
            None => return,
        };
        let Some(schedule) = schedule else {
            // No schedule now: wait for a swap that may bring one (and
            // leave the coordination group meanwhile).
            set_ticking(&d, false);
            current = None;
            owner = None;
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                changed = swapped.changed() => if changed.is_err() { return },
            }
            next = Instant::now();
            continue;
        };
        // In a fleet, tick only while this runner owns the schedule.
        if !ticks_here(&d, &mut owner, coordination, &name).await {
            let wait = if owner.is_some() { 100 } else { 5_000 };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = swapped.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
            // The new owner starts its interval when it takes over.
            next = Instant::now();
            continue;
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            // A new program may have a new interval: start over from now.
            _ = swapped.changed() => {
                next = Instant::now();
                continue;
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        let Some(d) = d.upgrade() else { return };
        let started = Instant::now();
        let tick = Tick {
            seq,
            scheduled_ms: now_ms(),
            interval_ms: schedule.interval_ms.min(u64::from(u32::MAX)) as u32,
        };
        seq += 1;
        d.telemetry.metrics.ticks.inc();
        let ended = tick_once(&d, &mut current, tick, &mut stop).await;
        if current
            .as_ref()
            .is_some_and(|c| c.program.template.slots().wanted())
        {
            // Someone waits for an instance: the timer gives its back
            // between ticks.
            current = None;
        }
        let published = match ended {
            TickEnd::Published(n) => {
                last_error = None;
                n
            }
            TickEnd::Stopped => return,
            TickEnd::Failed(message) => {
                note_failure(&d, tick.seq, message, &mut last_error);
                0
            }
        };
        let mut due = next + Duration::from_millis(schedule.interval_ms);
        if let Some(rate) = schedule.max_records_per_second {
            due = due.max(started + Duration::from_secs_f64(published as f64 / rate as f64));
        }
        next = due.max(Instant::now());
    }
}

/// A failed tick, logged once per distinct message: every tick of a
/// broken module fails alike.
fn note_failure(d: &ProducerDeployment, seq: u64, message: String, last: &mut Option<String>) {
    if last.as_ref() != Some(&message) {
        tracing::warn!(deployment = d.name(), seq, error = %message,
            "tick failed; the schedule goes on");
    } else {
        tracing::debug!(deployment = d.name(), seq, error = %message, "tick failed");
    }
    *last = Some(message);
}

/// Whether the schedule ticks on this runner (always, outside a fleet),
/// as the deployment's status reports it.
async fn ticks_here(
    d: &Weak<ProducerDeployment>,
    owner: &mut Option<ScheduleOwner>,
    coordination: Option<(crate::config::KafkaConfig, super::owner::Coordination)>,
    name: &str,
) -> bool {
    let owned = match coordination {
        Some(coordination) => owns(owner, coordination, name).await,
        None => true,
    };
    set_ticking(d, owned);
    owned
}

fn set_ticking(d: &Weak<ProducerDeployment>, ticking: bool) {
    if let Some(d) = d.upgrade() {
        d.set_ticking(ticking);
    }
}

/// Whether this runner owns the schedule, joining its coordination group
/// first if it has not (a failure to join is logged; the caller retries).
async fn owns(
    owner: &mut Option<ScheduleOwner>,
    (kafka, coordination): (crate::config::KafkaConfig, super::owner::Coordination),
    name: &str,
) -> bool {
    if owner.is_none() {
        let key = name.to_owned();
        let joined =
            tokio::task::spawn_blocking(move || ScheduleOwner::join(&kafka, &coordination, &key))
                .await;
        match joined {
            Ok(Ok(o)) => *owner = Some(o),
            Ok(Err(e)) => tracing::error!(deployment = %name, error = %format!("{e:#}"),
                "cannot join the schedule's coordination group; not ticking, trying again in 5 s"),
            Err(e) => tracing::error!(deployment = %name, error = %e,
                "joining the schedule's coordination group panicked; trying again in 5 s"),
        }
    }
    owner.as_ref().is_some_and(ScheduleOwner::holds)
}

/// One tick under the failure policy: retry a retryable error or a trap
/// with backoff up to `max_attempts`, then publish until acknowledged.
async fn tick_once(
    d: &ProducerDeployment,
    current: &mut Option<TickInstance>,
    tick: Tick,
    stop: &mut watch::Receiver<bool>,
) -> TickEnd {
    let program = d.current();
    let policy = Policy::from(&program.def.spec.failure);
    let metrics = &d.telemetry.metrics;
    for attempt in 1..=policy.max_attempts {
        if current
            .as_ref()
            .is_none_or(|c| !Arc::ptr_eq(&c.program, &program))
        {
            let fresh = tokio::select! {
                fresh = ProducerInstance::new(&program.template) => fresh,
                _ = stop.wait_for(|s| *s) => return TickEnd::Stopped,
            };
            match fresh {
                Ok(instance) => {
                    *current = Some(TickInstance {
                        program: program.clone(),
                        instance,
                    })
                }
                Err(e) => return TickEnd::Failed(format!("cannot instantiate the module: {e:#}")),
            }
        }
        let instance = &mut current.as_mut().expect("set above").instance;
        let started = std::time::Instant::now();
        let outcome = instance.tick(tick).await;
        metrics
            .call_seconds
            .observe(started.elapsed().as_secs_f64());
        let (retryable, message) = match outcome {
            CallOutcome::Ok((), outboxes) => {
                return publish_until_acked(d, &outboxes, tick.seq, &policy, stop).await;
            }
            CallOutcome::Failed(e) => {
                metrics.count_failure(e.class.into());
                (e.class == ErrorClass::Retryable, e.message)
            }
            CallOutcome::Trapped { kind, message } => {
                *current = None;
                metrics.count_failure(crate::deployment::status::FailureClass::Trap(kind));
                (
                    true,
                    format!("the module crashed ({}): {message}", kind.as_str()),
                )
            }
        };
        if !retryable || attempt == policy.max_attempts {
            return TickEnd::Failed(format!("tick {}: {message} (attempt {attempt})", tick.seq));
        }
        metrics.retries.inc();
        if sleep_or_stop(policy.backoff(attempt), stop).await {
            return TickEnd::Stopped;
        }
    }
    unreachable!("max_attempts is at least 1")
}

/// Publish the tick's records, again and again, until Kafka acknowledges
/// all of them. Gives up only when Kafka refuses them for good or the
/// deployment stops, and logs either as an error with the count.
async fn publish_until_acked(
    d: &ProducerDeployment,
    outboxes: &[Outbox],
    seq: u64,
    policy: &Policy,
    stop: &mut watch::Receiver<bool>,
) -> TickEnd {
    let records: usize = outboxes
        .iter()
        .map(|o| OutgoingEntry::count(&o.records))
        .sum();
    if records == 0 {
        return TickEnd::Published(0);
    }
    let metrics = &d.telemetry.metrics;
    for attempt in 1u32.. {
        let acks = d.producer.publish(outboxes).await;
        // Stopping does not cut a publish short; the drain timeout does.
        let failure = match acks.wait().await {
            Ok(()) => {
                metrics.records_out.inc_by(records as u64);
                metrics
                    .bytes_out
                    .inc_by(crate::wasm::produced_bytes(outboxes));
                return TickEnd::Published(records);
            }
            Err(e) => e,
        };
        if failure.permanent {
            tracing::error!(deployment = d.name(), seq, records, error = %failure,
                "Kafka refused a tick's records for good; the tick is given up (some of its records may have been published)");
            return TickEnd::Failed(format!("tick {seq}: {failure}"));
        }
        if attempt == 1 {
            tracing::warn!(deployment = d.name(), seq, records, error = %failure,
                "a tick's records were not acknowledged; publishing them again until they are");
        } else {
            tracing::debug!(deployment = d.name(), seq, attempt, error = %failure,
                "a tick's records were not acknowledged again");
        }
        let delay = policy.backoff(attempt).max(MIN_REPUBLISH_DELAY);
        if sleep_or_stop(delay, stop).await {
            tracing::error!(deployment = d.name(), seq, records, error = %failure,
                "the deployment stopped before Kafka acknowledged a tick's records; they may be lost");
            return TickEnd::Stopped;
        }
    }
    unreachable!("the loop returns")
}

/// Sleep `delay`; true if asked to stop meanwhile.
async fn sleep_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
