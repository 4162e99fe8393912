//! The control plane's rules, free of HTTP: what each caller may see and
//! change, the checks a spec must pass (grants, maxima, modules, Kafka),
//! and every mutation written to the state topic, awaited until this
//! runner applied it, and audited — one line per mutation, by [`audit`].
//!
//! The HTTP layer only translates requests into these calls and their
//! [`Error`]s into status codes; the functions here are unit-tested
//! without a server.

mod dead_letters;
mod deployments;
mod modules;
mod rules;
mod topics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use deployments::Target;
pub(crate) use rules::{Reserved, check_record};

use super::Error;
use super::state::StateLog;
use crate::auth::{Auth, Caller, ScrapeScope};
use crate::modules::ModuleRegistry;
use crate::offsets::Offsets;
use crate::supervisor::{Supervisor, View};
use crate::telemetry::RunnerMetrics;

/// Dead-letter pages read at once on a runner; more are answered 429.
const DEAD_LETTER_READS: usize = 2;

/// What the control plane works with.
pub struct Service {
    /// The token table, from `[control]`: who the caller is, and its
    /// grants and maxima.
    pub auth: Auth,
    /// What runs on this runner: the views status and checks read.
    pub supervisor: Arc<Supervisor>,
    /// The uploaded modules this runner has applied.
    pub modules: Arc<ModuleRegistry>,
    /// Where every change is written.
    pub state: Arc<StateLog>,
    /// Offsets and lag, and which topics exist.
    pub offsets: Arc<Offsets>,
    /// The runner's own metric families.
    pub metrics: Arc<RunnerMetrics>,
    /// Whether deployments may set `limits.fuel`.
    pub fuel_metering: bool,
    /// Largest accepted upload.
    pub max_module_bytes: usize,
    /// How long an upload waits for the compiler before it is answered
    /// 429 (`control.compile_queue_wait_ms`).
    pub compile_queue_wait: std::time::Duration,
    /// Set once the runner has applied the state it found in Kafka.
    ready: AtomicBool,
    /// Uploads compile one at a time (see `modules.rs`).
    compiles: tokio::sync::Semaphore,
    /// Dead-letter pages being read (each with a Kafka client of its own),
    /// so a caller's rate cannot open clients without bound.
    dead_letter_reads: tokio::sync::Semaphore,
    /// Held by the redrive under way (see `dead_letters.rs`).
    redrives: tokio::sync::Mutex<()>,
    /// Replication factor of topics the runner creates
    /// (`control.state_replication_factor`; `None`: the broker's default).
    pub state_replication: Option<i32>,
    /// This runner's name, written into the state records it writes.
    pub runner_id: String,
    /// The other runners sharing this control plane, once joined.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// Open followed logs per caller (`Caller::name`).
    followers: Followers,
}

/// Open followed logs per caller name.
#[derive(Default, Clone)]
struct Followers(Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>);

impl Followers {
    /// A slot for one more followed log of `name`, or 429 at the cap.
    fn take(&self, name: &str) -> Result<FollowerSlot, Error> {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = f.entry(name.to_owned()).or_default();
        if *open >= MAX_FOLLOWERS_PER_CALLER {
            return Err(Error::Busy(format!(
                "{name:?} already follows {MAX_FOLLOWERS_PER_CALLER} logs on this runner; close one (or read without follow)"
            )));
        }
        *open += 1;
        Ok(FollowerSlot {
            caller: name.to_owned(),
            followers: self.clone(),
        })
    }
}

/// Followed logs one caller (a tenant, or the operator) may hold open at
/// once: each holds a connection and a task until the client goes away.
pub const MAX_FOLLOWERS_PER_CALLER: usize = 8;

/// One open followed log, counted against its caller until dropped.
pub struct FollowerSlot {
    caller: String,
    followers: Followers,
}

impl Drop for FollowerSlot {
    fn drop(&mut self) {
        let mut f = self.followers.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = f.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                f.remove(&self.caller);
            }
        }
    }
}

impl Service {
    /// A service not ready for changes until [`Service::set_ready`].
    #[allow(
        clippy::too_many_arguments,
        reason = "each is a part of the runner it works with"
    )]
    pub fn new(
        auth: Auth,
        supervisor: Arc<Supervisor>,
        modules: Arc<ModuleRegistry>,
        state: Arc<StateLog>,
        offsets: Arc<Offsets>,
        metrics: Arc<RunnerMetrics>,
        fuel_metering: bool,
        max_module_bytes: usize,
    ) -> Self {
        Self {
            auth,
            supervisor,
            modules,
            state,
            offsets,
            metrics,
            fuel_metering,
            max_module_bytes,
            compile_queue_wait: std::time::Duration::from_secs(30),
            ready: AtomicBool::new(false),
            compiles: tokio::sync::Semaphore::new(1),
            dead_letter_reads: tokio::sync::Semaphore::new(DEAD_LETTER_READS),
            redrives: tokio::sync::Mutex::new(()),
            state_replication: None,
            runner_id: "runner".to_owned(),
            fleet: None,
            followers: Followers::default(),
        }
    }

    /// A slot for one more followed log of `caller`, or 429 if it holds
    /// [`MAX_FOLLOWERS_PER_CALLER`] already.
    pub fn follow_slot(&self, caller: &Caller) -> Result<FollowerSlot, Error> {
        self.followers.take(caller.name())
    }

    /// The runner has applied the state it found in Kafka.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether changes may be made: until the runner has applied the state
    /// it found, a change would be checked against (and could overwrite)
    /// state it has not read yet.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Refuse a change before the runner is ready.
    pub fn check_ready(&self) -> Result<(), Error> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(Error::Unavailable(
                "the runner is still recovering the control plane's state from Kafka; retry in a moment"
                    .into(),
            ))
        }
    }

    /// The deployments the caller may see: its own (every tenant's and the
    /// config file's, for the operator).
    pub fn visible(&self, caller: &Caller) -> Vec<View> {
        self.supervisor
            .snapshot()
            .into_iter()
            .filter(|v| match &v.record {
                Some(r) => caller.sees(&r.tenant),
                None => matches!(caller, Caller::Operator),
            })
            .collect()
    }

    /// The Prometheus exposition: the runner's families, every
    /// deployment's, their states and lag.
    pub async fn metrics_text(&self, scope: &ScrapeScope) -> String {
        let views: Vec<View> = match scope {
            ScrapeScope::All => self.supervisor.snapshot(),
            ScrapeScope::Tenant(tenant) => self
                .supervisor
                .snapshot()
                .into_iter()
                .filter(|v| v.record.as_ref().is_some_and(|r| &r.tenant == tenant))
                .collect(),
        };
        let groups: Vec<_> = views.iter().map(|v| v.def.group_and_inputs()).collect();
        let lags = self.offsets.lag_each(&groups).await;
        let entries: Vec<crate::telemetry::scrape::Entry> = views
            .into_iter()
            .zip(lags)
            .map(|(v, lag)| {
                let lag = match lag {
                    Some(Ok(parts)) => parts
                        .into_iter()
                        .map(|p| (p.topic, p.partition, p.lag))
                        .collect(),
                    Some(Err(e)) => {
                        tracing::debug!(deployment = %v.key, error = %e, "consumer lag not available for the scrape");
                        Vec::new()
                    }
                    None => Vec::new(),
                };
                crate::telemetry::scrape::Entry {
                    state: v.state().0,
                    assigned: v
                        .running
                        .as_ref()
                        .map(crate::supervisor::Running::assigned)
                        .unwrap_or_default(),
                    key: v.key,
                    telemetry: v.telemetry,
                    lag,
                }
            })
            .collect();
        // A tenant sees its deployments' series, not the runner's.
        let runner = matches!(scope, ScrapeScope::All).then_some(&*self.metrics);
        crate::telemetry::scrape::metrics_text(runner, &self.runner_id, &entries)
    }
}

/// One structured line per mutation: who, tenant, action, object, outcome.
pub fn audit<T>(caller: &Caller, action: &str, object: &str, result: &Result<T, Error>) {
    let who = match caller {
        Caller::Operator => "operator",
        Caller::Tenant(_) => "tenant",
    };
    let (outcome, error) = match result {
        Ok(_) => ("ok", String::new()),
        Err(e) => (e.kind(), e.to_string()),
    };
    tracing::info!(target: "ingesta::audit", who, tenant = caller.name(), action, object,
        outcome, error, "control-plane mutation");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_logs_are_capped_per_caller_and_freed_when_dropped() {
        let followers = Followers::default();
        let mut held: Vec<FollowerSlot> = (0..MAX_FOLLOWERS_PER_CALLER)
            .map(|_| followers.take("shop").unwrap())
            .collect();
        let refused = followers.take("shop").err().unwrap();
        assert_eq!(refused.kind(), "busy", "{refused}");
        // Other callers have their own share.
        let other = followers.take("other").unwrap();
        held.pop();
        held.push(followers.take("shop").unwrap());
        drop(held);
        drop(other);
        assert!(
            followers.0.lock().unwrap().is_empty(),
            "every slot given back"
        );
    }
}
