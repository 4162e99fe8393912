//! The timer of a generator deployment: one task calling the module's tick
//! export every `schedule.interval_ms`, on one instance kept across ticks.
//!
//! A tick's records are published like a request's, but nobody waits on
//! the other end, so a tick keeps retrying its publish (with backoff) until
//! Kafka acknowledges it or the deployment stops: the generator stalls
//! while the broker is away instead of dropping what it made. A late tick
//! delays the next one; missed ticks are not made up in a burst, and
//! `max_records_per_second` spaces ticks by what they published.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use ingesta_abi::OutgoingEntry;

use super::{ProducerDeployment, Program};
use crate::config::ScheduleConfig;
use crate::pipeline::failure::Policy;
use crate::wasm::bindings::ErrorClass;
use crate::wasm::bindings::producer::Tick;
use crate::wasm::{CallOutcome, ProducerInstance};

/// A running timer task.
pub(super) struct Ticker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    pub(super) fn start(deployment: Arc<ProducerDeployment>, schedule: ScheduleConfig) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(deployment, schedule, stopped));
        Self { stop, task }
    }

    /// Stop after the tick in flight (if any); do not wait.
    pub(super) fn stop(self) {
        self.stop.send_replace(true);
    }

    /// Stop after the tick in flight, waiting at most `timeout` for it.
    pub(super) async fn stop_and_wait(self, timeout: Duration) {
        self.stop.send_replace(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            abort.abort();
        }
    }
}

/// The instance ticks run on, and the program it was made from (a swap
/// replaces it at the next tick).
struct TickInstance {
    program: Arc<Program>,
    instance: ProducerInstance,
}

async fn run(
    d: Arc<ProducerDeployment>,
    schedule: ScheduleConfig,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(schedule.interval_ms);
    let mut next = Instant::now();
    let mut current: Option<TickInstance> = None;
    let mut last_error: Option<String> = None;
    for seq in 0u64.. {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        let tick = Tick {
            seq,
            scheduled_ms: now_ms(),
            interval_ms: schedule.interval_ms.min(u64::from(u32::MAX)) as u32,
        };
        d.telemetry.metrics.ticks.inc();
        let published = match tick_once(&d, &mut current, tick, &mut stop).await {
            Ok(n) => {
                last_error = None;
                n
            }
            Err(message) => {
                // Every tick of a broken module fails alike: say it once.
                if last_error.as_ref() != Some(&message) {
                    tracing::warn!(deployment = d.name(), seq, error = %message,
                        "tick failed; the schedule goes on");
                } else {
                    tracing::debug!(deployment = d.name(), seq, error = %message, "tick failed");
                }
                last_error = Some(message);
                0
            }
        };
        let mut due = next + interval;
        if let Some(rate) = schedule.max_records_per_second {
            due = due.max(started + Duration::from_secs_f64(published as f64 / rate as f64));
        }
        next = due.max(Instant::now());
    }
}

/// One tick under the failure policy: retry a retryable error or a trap
/// with backoff up to `max_attempts`, then publish until acknowledged.
/// Returns the records published, or why the tick produced nothing.
async fn tick_once(
    d: &ProducerDeployment,
    current: &mut Option<TickInstance>,
    tick: Tick,
    stop: &mut watch::Receiver<bool>,
) -> Result<usize, String> {
    let program = d.current();
    let policy = Policy::from(&program.config.failure);
    let metrics = &d.telemetry.metrics;
    for attempt in 1..=policy.max_attempts {
        if current
            .as_ref()
            .is_none_or(|c| !Arc::ptr_eq(&c.program, &program))
        {
            let instance = ProducerInstance::new(&program.template)
                .await
                .map_err(|e| format!("cannot instantiate the module: {e:#}"))?;
            *current = Some(TickInstance {
                program: program.clone(),
                instance,
            });
        }
        let instance = &mut current.as_mut().expect("set above").instance;
        let started = std::time::Instant::now();
        let outcome = instance.tick(tick).await;
        metrics
            .call_seconds
            .observe(started.elapsed().as_secs_f64());
        let (retryable, message) = match outcome {
            CallOutcome::Ok((), outboxes) => {
                let records: usize = outboxes
                    .iter()
                    .map(|o| OutgoingEntry::count(&o.records))
                    .sum();
                if records == 0 {
                    return Ok(0);
                }
                return publish_until_acked(d, &outboxes, &policy, stop)
                    .await
                    .map(|()| records);
            }
            CallOutcome::Failed(e) => {
                metrics.count_error(e.class);
                (e.class == ErrorClass::Retryable, e.message)
            }
            CallOutcome::Trapped { kind, message } => {
                *current = None;
                metrics.count_trap(kind);
                (
                    true,
                    format!("the module crashed ({}): {message}", kind.as_str()),
                )
            }
        };
        if !retryable || attempt == policy.max_attempts {
            return Err(format!("tick {}: {message} (attempt {attempt})", tick.seq));
        }
        metrics.retries.inc();
        if sleep_or_stop(policy.backoff(attempt), stop).await {
            return Err(format!(
                "tick {}: stopped while retrying: {message}",
                tick.seq
            ));
        }
    }
    unreachable!("max_attempts is at least 1")
}

/// Publish the tick's records, again and again, until Kafka acknowledges
/// all of them; only stopping gives up (and says so: they may be lost).
async fn publish_until_acked(
    d: &ProducerDeployment,
    outboxes: &[crate::wasm::bindings::Outbox],
    policy: &Policy,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let metrics = &d.telemetry.metrics;
    for attempt in 1u32.. {
        let acks = d.producer.publish(outboxes).await;
        match acks.wait().await {
            Ok(()) => {
                metrics.records_out.inc_by(acks.sent() as u64);
                metrics
                    .bytes_out
                    .inc_by(outboxes.iter().map(|o| o.data.len() as u64).sum());
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(deployment = d.name(), attempt, error = %e,
                    "a tick's records were not acknowledged; publishing them again");
                if sleep_or_stop(policy.backoff(attempt), stop).await {
                    return Err(format!(
                        "stopped before Kafka acknowledged the tick's records: {e}"
                    ));
                }
            }
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
