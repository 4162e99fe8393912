//! A running producer deployment: HTTP request or timer tick → instance →
//! outputs → ack → answer.
//!
//! Guarantee (at-least-once, never a silent drop): an ingest request is
//! answered 2xx only after Kafka acknowledged (acks=all, idempotent
//! producer) every record the call emitted. Anything else is an error the
//! caller can act on: the module's own refusal (4xx, nothing published),
//! too many requests in flight (429), or Kafka not acknowledging within
//! `ingest.ack_timeout_ms` (503). After a 503 the records may still arrive
//! later, so a client that retries can cause duplicates, never a loss.
//!
//! Requests run on instances taken from a small per-program pool (at most
//! `ingest.max_concurrency` requests at once, each on its own instance);
//! ticks run on one instance of their own, in [`schedule`], and keep
//! publishing a tick's records until Kafka takes them, so a generator
//! stalls rather than drops while the broker is away.

pub mod owner;
mod schedule;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, watch};

use ingesta_abi::OutgoingEntry;

use crate::deployment::{Definition, Linked, ProducerSettings, RunState};
use crate::kafka::OutputProducer;
use crate::telemetry::DeploymentTelemetry;
use crate::wasm::bindings::producer::{Request, Response};
use crate::wasm::bindings::{ErrorClass, Outbox};
use crate::wasm::{CallOutcome, ProducerInstance, ProducerTemplate};

/// Idle request instances kept per deployment. More requests at once get
/// fresh instances (microseconds from the pooling allocator) that are
/// dropped afterwards, so a burst does not pin pool slots and memory that
/// other deployments share.
const MAX_IDLE_INSTANCES: usize = 8;

/// Everything a producer deployment needs, resolved at start or swap.
pub type ProducerSpec = Linked<ProducerTemplate>;

/// What runs now: the module and settings of one revision and its idle
/// instances. Requests hold it for their whole call, so a swap lets them
/// finish on the revision they started with.
struct Program {
    def: Definition,
    /// The producer settings of `def`.
    settings: ProducerSettings,
    template: ProducerTemplate,
    /// Idle request instances, reused so a module's warm state (parsed
    /// config, caches) survives between requests.
    idle: Mutex<Vec<ProducerInstance>>,
    /// The task that empties `idle` when someone waits for an instance.
    releaser: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Some(task) = self.releaser.get_mut().unwrap().take() {
            task.abort();
        }
    }
}

impl Program {
    fn new(spec: ProducerSpec) -> Arc<Self> {
        let limits = &spec.def.spec.limits;
        spec.template
            .grants()
            .telemetry
            .log
            .set_rate(limits.log_lines_per_second, limits.log_burst_lines);
        let program = Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            releaser: Mutex::new(None),
            settings: spec.def.spec.kind.producer().cloned().unwrap_or_default(),
            def: spec.def,
            template: spec.template,
        });
        Self::release_idle_when_wanted(&program);
        program
    }

    /// An idle instance or a new one; a new one may wait for a slot (the
    /// caller bounds the wait).
    async fn instance(&self) -> anyhow::Result<ProducerInstance> {
        let idle = self.idle.lock().unwrap().pop();
        match idle {
            Some(i) => Ok(i),
            None => ProducerInstance::new(&self.template).await,
        }
    }

    fn put_back(&self, instance: ProducerInstance) {
        // Someone waits for an instance: give this one back rather than
        // keep it idle.
        if self.template.slots().wanted() {
            return;
        }
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < MAX_IDLE_INSTANCES {
            idle.push(instance);
        }
    }

    /// Give the idle instances back whenever someone waits for one, for as
    /// long as the program is in use.
    fn release_idle_when_wanted(program: &Arc<Self>) {
        let slots = program.template.slots().clone();
        let weak = Arc::downgrade(program);
        let task = tokio::spawn(async move {
            let program = weak;
            loop {
                slots.until_wanted().await;
                let Some(program) = program.upgrade() else {
                    return;
                };
                let idle = std::mem::take(&mut *program.idle.lock().unwrap());
                drop(program);
                drop(idle);
                // Let the waiter take what was given back before looking again.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        *program.releaser.lock().unwrap() = Some(task);
    }
}

/// Why an ingest request was not answered by the module.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// `ingest.max_concurrency` requests are in flight already.
    #[error("deployment {deployment:?} is handling its maximum of {max} requests; retry shortly")]
    Busy {
        /// The deployment's name (`<tenant>/<name>`).
        deployment: String,
        /// Its `ingest.max_concurrency`.
        max: u32,
    },
    /// Stopping, paused, or Kafka did not acknowledge in time.
    #[error("{0}")]
    Unavailable(String),
    /// The module refused the request with an error of this class.
    #[error("{message}")]
    Refused {
        /// `retryable` (answered 503) or `permanent` (answered 400).
        class: ErrorClass,
        /// The module's own message, passed on to the caller.
        message: String,
    },
    /// The instance trapped (panic, deadline, memory...) and was discarded;
    /// the detail is in the deployment's log.
    #[error(
        "deployment {deployment:?}: the module crashed handling the request ({kind}); its log has the detail"
    )]
    Trapped {
        /// The deployment's name (`<tenant>/<name>`).
        deployment: String,
        /// The trap's stable name (`deadline`, `panic`, ...; see
        /// [`crate::deployment::status::TrapKind::as_str`]).
        kind: &'static str,
    },
    /// The module answered something the runner cannot pass on.
    #[error("deployment {deployment:?}: {message}")]
    Internal {
        /// The deployment's name (`<tenant>/<name>`).
        deployment: String,
        /// What the module answered and why it cannot be passed on.
        message: String,
    },
    /// Kafka refused the records for good (too large, unknown topic, not
    /// authorized): retrying the same request cannot help.
    #[error("{0}")]
    Rejected(String),
}

/// A request let in: it holds one of the deployment's `max_concurrency`
/// permits (taken before its body is read, so bodies in memory are bounded
/// too) and the program it will run on.
pub struct Admission {
    program: Arc<Program>,
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    /// The largest body this request may carry.
    pub fn max_body_bytes(&self) -> usize {
        self.program.settings.ingest.max_body_bytes
    }
}

/// The module's answer, sent once its records are acknowledged.
pub struct IngestReply {
    /// The module's HTTP response (status, headers, body), passed on to
    /// the caller.
    pub response: Response,
    /// Records published for this request (0 for a status of 400 or more).
    pub published: usize,
}

/// A started producer deployment.
pub struct ProducerDeployment {
    name: Arc<str>,
    program: Mutex<Arc<Program>>,
    producer: Arc<OutputProducer>,
    telemetry: Arc<DeploymentTelemetry>,
    /// Set when stopping: new requests are refused, the timer ends.
    stopping: AtomicBool,
    /// One permit per request in flight, across swaps; closed on stop.
    permits: Arc<Semaphore>,
    /// `max_concurrency` as the permits are sized now.
    capacity: Mutex<u32>,
    /// The timer task, which follows the current program's schedule.
    ticker: Mutex<Option<schedule::Ticker>>,
    /// Bumped on every swap, so the timer picks up a new schedule at once.
    swapped: watch::Sender<u64>,
    /// How long stopping waits for requests in flight.
    drain_timeout: Duration,
    state: watch::Sender<RunState>,
    /// Where the schedule's owner is elected, in a fleet (`None`: this
    /// runner ticks on its own).
    coordination: Option<(crate::config::KafkaConfig, owner::Coordination)>,
    /// Whether its schedule ticks on this runner now.
    ticking: AtomicBool,
}

impl ProducerDeployment {
    /// Start serving requests and, with a schedule, ticking.
    pub fn start(
        spec: ProducerSpec,
        producer: Arc<OutputProducer>,
        drain_timeout: Duration,
        coordination: Option<(crate::config::KafkaConfig, owner::Coordination)>,
    ) -> Arc<Self> {
        let name: Arc<str> = spec.def.name.as_str().into();
        let telemetry = spec.template.grants().telemetry.clone();
        let capacity = spec
            .def
            .spec
            .kind
            .producer()
            .map_or(1, |p| p.ingest.max_concurrency);
        let d = Arc::new(Self {
            name: name.clone(),
            program: Mutex::new(Program::new(spec)),
            producer,
            telemetry,
            stopping: AtomicBool::new(false),
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity: Mutex::new(capacity),
            ticker: Mutex::new(None),
            swapped: watch::channel(0).0,
            drain_timeout,
            state: watch::channel(RunState::Running).0,
            coordination,
            ticking: AtomicBool::new(false),
        });
        *d.ticker.lock().unwrap() = Some(schedule::Ticker::start(&d));
        let program = d.current();
        tracing::info!(deployment = &*name, outputs = ?program.def.spec.outputs,
            schedule_ms = program.settings.schedule.as_ref().map(|s| s.interval_ms),
            "producer deployment started");
        d
    }

    /// The deployment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The deployment's metrics.
    pub fn metrics(&self) -> &crate::telemetry::DeploymentMetrics {
        &self.telemetry.metrics
    }

    /// The largest request body the current program accepts.
    pub fn max_body_bytes(&self) -> usize {
        self.current().settings.ingest.max_body_bytes
    }

    /// The definition it runs.
    pub fn def(&self) -> Definition {
        self.current().def.clone()
    }

    /// The current state.
    pub fn state(&self) -> RunState {
        self.state.borrow().clone()
    }

    /// Whether its schedule ticks on this runner now (in a fleet, on one
    /// runner at a time).
    pub fn ticking(&self) -> bool {
        self.ticking.load(Ordering::Acquire)
    }

    fn set_ticking(&self, ticking: bool) {
        self.ticking.store(ticking, Ordering::Release);
    }

    /// Resolves when the deployment has stopped.
    pub async fn finished(&self) -> RunState {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| matches!(s, RunState::Stopped | RunState::Failed(_)))
            .await
            .map(|s| s.clone());
        state.unwrap_or_else(|_| self.state())
    }

    fn current(&self) -> Arc<Program> {
        self.program.lock().unwrap().clone()
    }

    /// Hot swap: requests and ticks that start from now on run `spec`;
    /// those in flight finish on the old program. The timer follows the
    /// new schedule from its next tick.
    pub fn swap(&self, spec: ProducerSpec) {
        tracing::info!(deployment = self.name(), module = %spec.template.grants().module_digest,
            outputs = ?spec.def.spec.outputs, "swapping the producer deployment's program");
        let wanted = spec
            .def
            .spec
            .kind
            .producer()
            .map_or(1, |p| p.ingest.max_concurrency);
        *self.program.lock().unwrap() = Program::new(spec);
        let mut capacity = self.capacity.lock().unwrap();
        if wanted > *capacity {
            self.permits.add_permits((wanted - *capacity) as usize);
        } else if wanted < *capacity {
            // Free permits go now; those held by requests in flight go as
            // they come back.
            let fewer = (*capacity - wanted) as usize;
            let gone = self.permits.forget_permits(fewer);
            if gone < fewer {
                let permits = self.permits.clone();
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many_owned((fewer - gone) as u32).await {
                        p.forget();
                    }
                });
            }
        }
        *capacity = wanted;
        self.swapped.send_modify(|n| *n += 1);
    }

    /// Refuse new requests, stop the timer (a tick in flight finishes and
    /// publishes), and wait for requests in flight, at most the drain
    /// timeout.
    pub async fn stop(&self) -> RunState {
        self.stopping.store(true, Ordering::Release);
        let ticker = self.ticker.lock().unwrap().take();
        if let Some(t) = ticker {
            t.stop_and_wait(self.drain_timeout).await;
        }
        let all = *self.capacity.lock().unwrap();
        let drained =
            tokio::time::timeout(self.drain_timeout, self.permits.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!(
                deployment = self.name(),
                "requests still in flight at the drain timeout; they finish on their own"
            );
        }
        self.permits.close();
        self.state.send_replace(RunState::Stopped);
        tracing::info!(deployment = self.name(), "producer deployment stopped");
        self.state()
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Let a request in, or say why not: stopping (503) or
    /// `ingest.max_concurrency` requests in flight (429). Called before the
    /// body is read.
    pub fn admit(&self) -> Result<Admission, IngestError> {
        let stopping = || {
            IngestError::Unavailable(format!(
                "deployment {:?} is stopping; retry shortly",
                self.name()
            ))
        };
        if self.stopping() {
            return Err(stopping());
        }
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(stopping()),
            Err(TryAcquireError::NoPermits) => {
                return Err(IngestError::Busy {
                    deployment: self.name().to_owned(),
                    max: *self.capacity.lock().unwrap(),
                });
            }
        };
        // Stopping may have begun between the check and the permit.
        if self.stopping() {
            return Err(stopping());
        }
        Ok(Admission {
            program: self.current(),
            _permit: permit,
        })
    }

    /// Run one admitted HTTP request through the module and publish what it
    /// emitted; the reply is ready only once Kafka acknowledged all of it.
    pub async fn ingest(
        &self,
        admission: Admission,
        request: Request,
    ) -> Result<IngestReply, IngestError> {
        let program = &admission.program;
        let metrics = &self.telemetry.metrics;
        // A request waits for an instance slot at most as long as its call
        // may take; the caller is then told to come back.
        let wait = Duration::from_millis(program.def.spec.limits.deadline_ms);
        let mut instance = match tokio::time::timeout(wait, program.instance()).await {
            Ok(Ok(instance)) => instance,
            Ok(Err(e)) => {
                return Err(IngestError::Unavailable(format!(
                    "deployment {:?}: cannot instantiate the module now ({e:#}); retry shortly",
                    self.name()
                )));
            }
            Err(_) => {
                return Err(IngestError::Unavailable(format!(
                    "deployment {:?}: every instance its quotas allow is in use (waited {} ms); retry shortly",
                    self.name(),
                    wait.as_millis()
                )));
            }
        };
        let started = Instant::now();
        let outcome = instance.request(&request).await;
        metrics
            .call_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            CallOutcome::Ok(response, outboxes) => {
                program.put_back(instance);
                match response.status {
                    // Success: publish first, answer after the acks.
                    200..=399 => {}
                    // The module's own refusal: passed on, nothing published.
                    400..=599 => {
                        return Ok(IngestReply {
                            response,
                            published: 0,
                        });
                    }
                    other => {
                        return Err(IngestError::Internal {
                            deployment: self.name().to_owned(),
                            message: format!(
                                "the module answered with status {other}, which is not a final HTTP status (200-599); nothing was published"
                            ),
                        });
                    }
                }
                let timeout = Duration::from_millis(program.settings.ingest.ack_timeout_ms);
                let published = self.publish(&outboxes, timeout).await?;
                Ok(IngestReply {
                    response,
                    published,
                })
            }
            CallOutcome::Failed(e) => {
                program.put_back(instance);
                metrics.count_failure(e.class.into());
                Err(IngestError::Refused {
                    class: e.class,
                    message: e.message,
                })
            }
            CallOutcome::Trapped { kind, message } => {
                metrics.count_failure(crate::deployment::status::FailureClass::Trap(kind));
                // The caller learns the kind; the tenant's log gets the detail.
                self.telemetry.log.line(
                    crate::telemetry::GuestLevel::Error,
                    crate::telemetry::guest_log::Stream::Ingesta,
                    &format!(
                        "a request trapped the module ({}): {message}",
                        kind.as_str()
                    ),
                );
                Err(IngestError::Trapped {
                    deployment: self.name().to_owned(),
                    kind: kind.as_str(),
                })
            }
        }
    }

    /// Publish `outboxes` and wait for every acknowledgement, at most
    /// `timeout`. Returns how many records were published.
    async fn publish(&self, outboxes: &[Outbox], timeout: Duration) -> Result<usize, IngestError> {
        let records: usize = outboxes
            .iter()
            .map(|o| OutgoingEntry::count(&o.records))
            .sum();
        if records == 0 {
            return Ok(0);
        }
        let acked = tokio::time::timeout(timeout, async {
            self.producer.publish(outboxes).await.wait().await
        })
        .await;
        match acked {
            Ok(Ok(())) => {
                let metrics = &self.telemetry.metrics;
                metrics.records_out.inc_by(records as u64);
                metrics
                    .bytes_out
                    .inc_by(crate::wasm::produced_bytes(outboxes));
                Ok(records)
            }
            Ok(Err(e)) if e.permanent => Err(IngestError::Rejected(format!(
                "deployment {:?}: {e}; some of the request's records may have been published, and sending it again cannot help",
                self.name()
            ))),
            Ok(Err(e)) => Err(IngestError::Unavailable(format!(
                "deployment {:?}: {e}; retry later (records of this request that did arrive may then be duplicated)",
                self.name()
            ))),
            Err(_) => Err(IngestError::Unavailable(format!(
                "deployment {:?}: Kafka did not acknowledge the records within {} ms (ingest.ack_timeout_ms); retry later (a retry may duplicate records that arrive late)",
                self.name(),
                timeout.as_millis()
            ))),
        }
    }
}
