//! Quotas of live instances: the runner's pool, each tenant's share and
//! each deployment's share.
//!
//! Every instance holds one [`Slot`]: a permit of its deployment's quota,
//! of its tenant's and of the runner's, taken in that order (so waiters
//! cannot deadlock) and given back when the instance is dropped. A holder
//! that runs out waits, first-come first-served, with back-off and a
//! metric; it never fails. Holders give their instance back when someone
//! waits on one of their quotas: a consumer lane at its next batch
//! boundary or as soon as it is idle, a producer's idle pool at once — so
//! a quota below the partition count still makes progress, by rotation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec};

use super::share::{CpuShare, DeploymentShare};
use crate::telemetry::DeploymentMetrics;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The first wait before a holder is asked again to give an instance back.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest wait between two such asks.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A wait longer than this is logged (once per wait).
const LOG_AFTER: Duration = Duration::from_secs(5);

/// One quota: at most `limit` instances at once.
struct Quota {
    /// `deployment`, `tenant` or `runner`: the metric's `scope` label.
    scope: &'static str,
    /// What it belongs to, for logs.
    owner: String,
    limit: usize,
    permits: Arc<Semaphore>,
    /// Holders waiting for a permit right now.
    waiting: AtomicUsize,
    /// Wakes idle holders when someone starts waiting.
    wanted: Notify,
}

impl Quota {
    fn new(scope: &'static str, owner: String, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            scope,
            owner,
            limit,
            permits: Arc::new(Semaphore::new(limit)),
            waiting: AtomicUsize::new(0),
            wanted: Notify::new(),
        })
    }

    /// A permit, waiting (and asking holders to let go, with back-off)
    /// while there is none.
    async fn take(&self, deployment: &str, waits: &WaitMetrics) -> OwnedSemaphorePermit {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return p;
        }
        waits.count.with_label_values(&[self.scope]).inc();
        let started = Instant::now();
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Decrement(&self.waiting);
        let mut backoff = FIRST_BACKOFF;
        let mut logged = false;
        let permit = loop {
            self.wanted.notify_waiters();
            let acquire = self.permits.clone().acquire_owned();
            if let Ok(Ok(p)) = tokio::time::timeout(backoff, acquire).await {
                break p;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if !logged && started.elapsed() >= LOG_AFTER {
                logged = true;
                tracing::warn!(deployment, scope = self.scope, owner = %self.owner,
                    limit = self.limit, "waiting for an instance: the quota is in use; it is handed over as holders finish their batches");
            }
        };
        waits
            .millis
            .inc_by(started.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
        permit
    }
}

/// Decrements a counter when dropped (a waiter that is cancelled stops
/// counting as waiting).
pub(super) struct Decrement<'a>(pub(super) &'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A deployment's counters of waits for an instance.
#[derive(Clone)]
struct WaitMetrics {
    /// Waits, by the `scope` whose quota was used up.
    count: IntCounterVec,
    /// Time spent waiting, in milliseconds.
    millis: IntCounter,
}

impl From<&DeploymentMetrics> for WaitMetrics {
    fn from(m: &DeploymentMetrics) -> Self {
        Self {
            count: m.instance_waits.clone(),
            millis: m.instance_wait_ms.clone(),
        }
    }
}

/// The runner's quotas: its pool, and one per tenant with a cap.
pub struct InstanceQuotas {
    runner: Arc<Quota>,
    /// Turns at long calls, handed to each deployment with its slots.
    cpu: CpuShare,
    tenant_limits: HashMap<String, usize>,
    tenants: Mutex<HashMap<String, Arc<Quota>>>,
}

impl InstanceQuotas {
    /// `runner` instances in all; each tenant named in `tenant_limits` at
    /// most its value; `long_calls` long calls at once, the epoch advancing
    /// every `tick` (see [`super::share`]).
    pub fn new(
        runner: usize,
        tenant_limits: HashMap<String, usize>,
        long_calls: usize,
        tick: Duration,
    ) -> Self {
        Self {
            runner: Quota::new("runner", "this runner".into(), runner),
            cpu: CpuShare::new(long_calls, tick),
            tenant_limits,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// The slots of deployment `name` (`<tenant>/<name>` over the API; a
    /// config-file deployment has no tenant), at most `own_limit` of its
    /// own; its waits are counted in `metrics`.
    pub fn slots(
        &self,
        name: &str,
        own_limit: Option<u32>,
        metrics: &DeploymentMetrics,
    ) -> Arc<Slots> {
        let mut quotas = Vec::with_capacity(3);
        if let Some(limit) = own_limit {
            quotas.push(Quota::new("deployment", name.to_owned(), limit as usize));
        }
        let tenant = name.split_once('/').map(|(t, _)| t);
        if let Some((tenant, &limit)) = tenant.and_then(|t| self.tenant_limits.get_key_value(t)) {
            let quota = self
                .tenants
                .lock()
                .unwrap()
                .entry(tenant.clone())
                .or_insert_with(|| Quota::new("tenant", format!("tenant {tenant:?}"), limit))
                .clone();
            quotas.push(quota);
        }
        quotas.push(self.runner.clone());
        Arc::new(Slots {
            deployment: name.into(),
            quotas,
            waits: metrics.into(),
            cpu: self.cpu.deployment(),
        })
    }
}

/// A deployment's share of the runner: the quotas its instances count
/// against, narrowest first, and its turns at long calls.
pub struct Slots {
    deployment: Arc<str>,
    quotas: Vec<Arc<Quota>>,
    waits: WaitMetrics,
    cpu: Arc<DeploymentShare>,
}

/// The permits one live instance holds; dropping it gives them back.
pub struct Slot {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Slots {
    /// The deployment's turns at long calls.
    pub(super) fn cpu(&self) -> &Arc<DeploymentShare> {
        &self.cpu
    }

    /// A slot for one more instance, waiting as long as it takes (the
    /// caller bounds the wait if it must: dropping the future is safe).
    pub async fn acquire(&self) -> Slot {
        let mut permits = Vec::with_capacity(self.quotas.len());
        for q in &self.quotas {
            permits.push(q.take(&self.deployment, &self.waits).await);
        }
        Slot { _permits: permits }
    }

    /// The pooling allocator had no room for the instance's memories,
    /// tables or core instances (`error`); the caller waits and retries.
    pub fn pool_exhausted(&self, error: &str) {
        self.waits.count.with_label_values(&["pool"]).inc();
        tracing::debug!(deployment = %self.deployment, error, "instance pool full; retrying shortly");
    }

    /// Whether someone waits on one of these quotas: a holder should give
    /// its instance back at the next opportunity.
    pub fn wanted(&self) -> bool {
        self.quotas
            .iter()
            .any(|q| q.waiting.load(Ordering::Acquire) > 0)
    }

    /// Resolves when someone starts waiting on one of these quotas (or
    /// already waits).
    pub async fn until_wanted(&self) {
        loop {
            let notified: Vec<_> = self.quotas.iter().map(|q| q.wanted.notified()).collect();
            let mut notified: Vec<_> = notified.into_iter().map(Box::pin).collect();
            for n in &mut notified {
                n.as_mut().enable();
            }
            if self.wanted() {
                return;
            }
            futures_util::future::select_all(notified).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits() -> DeploymentMetrics {
        DeploymentMetrics::new("d")
    }

    #[tokio::test]
    async fn a_tenant_quota_is_shared_by_its_deployments_and_waits_are_counted() {
        let quotas =
            InstanceQuotas::new(10, HashMap::from([("a".to_owned(), 2)]), 1, FIRST_BACKOFF);
        let one = quotas.slots("a/one", None, &waits());
        let two_waits = waits();
        let two = quotas.slots("a/two", None, &two_waits);
        let other = quotas.slots("b/x", Some(1), &waits());
        let held = [one.acquire().await, one.acquire().await];
        // Another tenant is not affected.
        let _b = other.acquire().await;
        assert!(!one.wanted());
        let waiting = tokio::spawn(async move {
            let slot = two.acquire().await;
            drop(slot);
        });
        // The waiter makes the holders' quota wanted, and is counted.
        tokio::time::timeout(Duration::from_secs(5), one.until_wanted())
            .await
            .expect("a waiter is seen by the holders");
        assert!(one.wanted());
        assert_eq!(
            two_waits
                .instance_waits
                .with_label_values(&["tenant"])
                .get(),
            1
        );
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiter gets a slot once one is given back")
            .unwrap();
        assert!(!one.wanted());
    }

    #[tokio::test]
    async fn a_cancelled_wait_stops_counting() {
        let quotas = InstanceQuotas::new(1, HashMap::new(), 1, FIRST_BACKOFF);
        let slots = quotas.slots("d", None, &waits());
        let _held = slots.acquire().await;
        let wait = tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await;
        assert!(wait.is_err(), "the runner's only slot is held");
        assert!(!slots.wanted());
    }
}
