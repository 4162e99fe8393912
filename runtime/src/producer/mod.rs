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

mod schedule;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use ingesta_abi::OutgoingEntry;

use crate::config::DeploymentConfig;
use crate::kafka::OutputProducer;
use crate::pipeline::DeploymentState;
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
pub struct ProducerSpec {
    pub config: DeploymentConfig,
    pub template: ProducerTemplate,
}

/// What runs now: the module and settings of one revision, its instance
/// pool and its concurrency bound. Requests hold it for their whole call,
/// so a swap lets them finish on the revision they started with.
struct Program {
    config: DeploymentConfig,
    template: ProducerTemplate,
    /// Idle request instances, reused so a module's warm state (parsed
    /// config, caches) survives between requests.
    idle: Mutex<Vec<ProducerInstance>>,
    /// One permit per request in flight.
    permits: Arc<Semaphore>,
}

impl Program {
    fn new(spec: ProducerSpec) -> Arc<Self> {
        let limits = &spec.config.limits;
        spec.template
            .grants()
            .telemetry
            .log
            .set_rate(limits.log_lines_per_second, limits.log_burst_lines);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(spec.config.ingest.max_concurrency as usize)),
            idle: Mutex::new(Vec::new()),
            config: spec.config,
            template: spec.template,
        })
    }

    async fn instance(&self) -> anyhow::Result<ProducerInstance> {
        let idle = self.idle.lock().unwrap().pop();
        match idle {
            Some(i) => Ok(i),
            None => ProducerInstance::new(&self.template).await,
        }
    }

    fn put_back(&self, instance: ProducerInstance) {
        let mut idle = self.idle.lock().unwrap();
        if idle.len() < MAX_IDLE_INSTANCES {
            idle.push(instance);
        }
    }
}

/// Why an ingest request was not answered by the module.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// `ingest.max_concurrency` requests are in flight already.
    #[error("deployment {deployment:?} is handling its maximum of {max} requests; retry shortly")]
    Busy { deployment: String, max: u32 },
    /// Stopping, paused, or Kafka did not acknowledge in time.
    #[error("{0}")]
    Unavailable(String),
    /// The module refused the request with an error of this class.
    #[error("{message}")]
    Refused { class: ErrorClass, message: String },
    /// The instance trapped (panic, deadline, memory...) and was discarded.
    #[error(
        "deployment {deployment:?}: the module crashed handling the request ({kind}): {message}"
    )]
    Trapped {
        deployment: String,
        kind: &'static str,
        message: String,
    },
    /// The module could not be instantiated.
    #[error("deployment {deployment:?}: {message}")]
    Internal { deployment: String, message: String },
}

/// The module's answer, sent once its records are acknowledged.
pub struct IngestReply {
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
    /// The timer task and its stop signal, if the program has a schedule.
    ticker: Mutex<Option<schedule::Ticker>>,
    /// How long stopping waits for requests in flight.
    drain_timeout: Duration,
    state: watch::Sender<DeploymentState>,
}

impl ProducerDeployment {
    /// Start serving requests and, with a schedule, ticking.
    pub fn start(
        spec: ProducerSpec,
        producer: Arc<OutputProducer>,
        drain_timeout: Duration,
    ) -> Arc<Self> {
        let name: Arc<str> = spec.config.name.as_str().into();
        let telemetry = spec.template.grants().telemetry.clone();
        let d = Arc::new(Self {
            name: name.clone(),
            program: Mutex::new(Program::new(spec)),
            producer,
            telemetry,
            stopping: AtomicBool::new(false),
            ticker: Mutex::new(None),
            drain_timeout,
            state: watch::channel(DeploymentState::Running).0,
        });
        d.restart_ticker();
        let config = d.config();
        tracing::info!(deployment = &*name, outputs = ?config.outputs,
            schedule_ms = config.schedule.as_ref().map(|s| s.interval_ms),
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
        self.current().config.ingest.max_body_bytes
    }

    /// The settings it runs with.
    pub fn config(&self) -> DeploymentConfig {
        self.current().config.clone()
    }

    /// The current state.
    pub fn state(&self) -> DeploymentState {
        self.state.borrow().clone()
    }

    /// Resolves when the deployment has stopped.
    pub async fn finished(&self) -> DeploymentState {
        let mut rx = self.state.subscribe();
        let state = rx
            .wait_for(|s| matches!(s, DeploymentState::Stopped | DeploymentState::Failed(_)))
            .await
            .map(|s| s.clone());
        state.unwrap_or_else(|_| self.state())
    }

    fn current(&self) -> Arc<Program> {
        self.program.lock().unwrap().clone()
    }

    /// Hot swap: requests and ticks that start from now on run `spec`;
    /// those in flight finish on the old program. A changed schedule
    /// restarts the timer.
    pub fn swap(self: &Arc<Self>, spec: ProducerSpec) {
        tracing::info!(deployment = self.name(), module = %spec.template.grants().module_digest,
            outputs = ?spec.config.outputs, "swapping the producer deployment's program");
        let new = Program::new(spec);
        let old = std::mem::replace(&mut *self.program.lock().unwrap(), new.clone());
        if old.config.schedule != new.config.schedule {
            self.restart_ticker();
        }
    }

    fn restart_ticker(self: &Arc<Self>) {
        let schedule = self.current().config.schedule.clone();
        let mut ticker = self.ticker.lock().unwrap();
        if let Some(old) = ticker.take() {
            old.stop();
        }
        if let Some(schedule) = schedule.filter(|_| !self.stopping.load(Ordering::Acquire)) {
            *ticker = Some(schedule::Ticker::start(self.clone(), schedule));
        }
    }

    /// Refuse new requests, stop the timer (a tick in flight finishes and
    /// publishes), and wait for requests in flight, at most the drain
    /// timeout.
    pub async fn stop(&self) -> DeploymentState {
        self.stopping.store(true, Ordering::Release);
        let ticker = self.ticker.lock().unwrap().take();
        if let Some(t) = ticker {
            t.stop_and_wait(self.drain_timeout).await;
        }
        let program = self.current();
        let all = program.config.ingest.max_concurrency;
        match tokio::time::timeout(self.drain_timeout, program.permits.acquire_many(all)).await {
            Ok(_) => {}
            Err(_) => tracing::warn!(
                deployment = self.name(),
                "requests still in flight at the drain timeout; their callers get no answer"
            ),
        }
        self.state.send_replace(DeploymentState::Stopped);
        tracing::info!(deployment = self.name(), "producer deployment stopped");
        self.state()
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Run one HTTP request through the module and publish what it emitted;
    /// the reply is ready only once Kafka acknowledged all of it.
    pub async fn ingest(&self, request: Request) -> Result<IngestReply, IngestError> {
        if self.stopping() {
            return Err(IngestError::Unavailable(format!(
                "deployment {:?} is stopping; retry shortly",
                self.name()
            )));
        }
        let program = self.current();
        let Ok(_permit): Result<OwnedSemaphorePermit, _> =
            program.permits.clone().try_acquire_owned()
        else {
            return Err(IngestError::Busy {
                deployment: self.name().to_owned(),
                max: program.config.ingest.max_concurrency,
            });
        };
        let metrics = &self.telemetry.metrics;
        let mut instance = program
            .instance()
            .await
            .map_err(|e| IngestError::Internal {
                deployment: self.name().to_owned(),
                message: format!("cannot instantiate the module: {e:#}"),
            })?;
        let started = Instant::now();
        let outcome = instance.request(&request).await;
        metrics
            .call_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            CallOutcome::Ok(response, outboxes) => {
                program.put_back(instance);
                if response.status >= 400 {
                    return Ok(IngestReply {
                        response,
                        published: 0,
                    });
                }
                let timeout = Duration::from_millis(program.config.ingest.ack_timeout_ms);
                let published = self.publish(&outboxes, timeout).await?;
                Ok(IngestReply {
                    response,
                    published,
                })
            }
            CallOutcome::Failed(e) => {
                program.put_back(instance);
                metrics.count_error(e.class);
                Err(IngestError::Refused {
                    class: e.class,
                    message: e.message,
                })
            }
            CallOutcome::Trapped { kind, message } => {
                metrics.count_trap(kind);
                Err(IngestError::Trapped {
                    deployment: self.name().to_owned(),
                    kind: kind.as_str(),
                    message,
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
                    .inc_by(outboxes.iter().map(|o| o.data.len() as u64).sum());
                Ok(records)
            }
            Ok(Err(e)) => Err(IngestError::Unavailable(format!(
                "deployment {:?}: {e}; nothing was acknowledged, retry later",
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
