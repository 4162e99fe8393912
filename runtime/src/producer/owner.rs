//! One owner per schedule in a fleet: every runner sharing the control
//! plane runs a generator deployment (it takes ingest requests on any
//! runner), but only the runner that holds the deployment's coordination
//! group ticks. Kafka elects it: each runner's [`ScheduleOwner`] joins a
//! group of its own per deployment on a one-partition coordination topic,
//! and the member assigned that partition owns the schedule. A runner
//! stopping leaves the group (another takes over at once); one that dies
//! is replaced once its session times out ([`SESSION_TIMEOUT_MS`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};

use crate::config::KafkaConfig;

/// How long a dead owner keeps its schedule: the coordination group's
/// session timeout (the broker's least by default), with heartbeats every
/// second.
pub const SESSION_TIMEOUT_MS: u32 = 6_000;

/// Where schedules are coordinated: set when the runner has a control
/// plane (config-file deployments run on one runner and need none).
#[derive(Debug, Clone)]
pub struct Coordination {
    /// The one-partition topic every coordination group reads
    /// (`<state prefix>schedules`).
    pub topic: String,
    /// Start of every coordination group's id (`<state prefix>schedule.`).
    pub group_prefix: String,
}

impl Coordination {
    /// The group electing the owner of deployment `key`'s schedule.
    pub fn group(&self, key: &str) -> String {
        format!("{}{}", self.group_prefix, key.replace('/', "."))
    }
}

struct OwnerContext {
    deployment: String,
    holds: Arc<AtomicBool>,
}

impl ClientContext for OwnerContext {}

impl ConsumerContext for OwnerContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Incremental: an assignment names what is added (nothing, for a
        // member that does not get the partition), a revocation what goes.
        let holds = match rebalance {
            Rebalance::Assign(tpl) if tpl.count() == 0 => return,
            Rebalance::Assign(_) => true,
            Rebalance::Revoke(_) | Rebalance::Error(_) => false,
        };
        if self.holds.swap(holds, Ordering::AcqRel) != holds {
            tracing::info!(deployment = %self.deployment, owner = holds,
                "{}", if holds { "this runner now runs the schedule" } else { "this runner no longer runs the schedule" });
        }
    }
}

/// This runner's membership in a schedule's coordination group.
pub struct ScheduleOwner {
    holds: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScheduleOwner {
    /// Join the coordination group of deployment `key`. Blocking (creates
    /// a Kafka client).
    pub fn join(kafka: &KafkaConfig, coordination: &Coordination, key: &str) -> Result<Self> {
        let holds = Arc::new(AtomicBool::new(false));
        let group = coordination.group(key);
        let consumer: BaseConsumer<OwnerContext> = crate::kafka::group_admin_config(kafka, &group)
            .set("client.id", "ingesta-schedule")
            .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
            .set("heartbeat.interval.ms", "1000")
            // Sticky: a runner joining does not take the schedule from
            // its owner; only the owner leaving or dying moves it.
            .set("partition.assignment.strategy", "cooperative-sticky")
            .create_with_context(OwnerContext {
                deployment: key.to_owned(),
                holds: holds.clone(),
            })
            .with_context(|| {
                format!("deployment {key:?}: cannot create the schedule's coordination client")
            })?;
        consumer
            .subscribe(&[&coordination.topic])
            .with_context(|| {
                format!("deployment {key:?}: cannot join coordination group {group:?}")
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name(format!("schedule-{key}"))
            .spawn({
                let stop = stop.clone();
                move || {
                    // Polling serves the group's heartbeats and rebalances;
                    // the topic has no records.
                    while !stop.load(Ordering::Acquire) {
                        let _ = consumer.poll(Duration::from_millis(200));
                    }
                    // Leave the group now, so another runner takes over at
                    // once rather than after the session timeout.
                    consumer.unsubscribe();
                    drop(consumer);
                }
            })
            .context("cannot start the schedule coordination thread")?;
        Ok(Self {
            holds,
            stop,
            thread: Some(thread),
        })
    }

    /// Whether this runner owns the schedule now.
    pub fn holds(&self) -> bool {
        self.holds.load(Ordering::Acquire)
    }
}

impl Drop for ScheduleOwner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.holds.store(false, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // Leaving takes a round trip; do not hold up the caller (an
            // async task) on it.
            std::thread::spawn(move || {
                let _ = t.join();
            });
        }
    }
}
