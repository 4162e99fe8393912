//! A fair share of wasm execution time between deployments.
//!
//! Most calls finish within one epoch tick and never meet this module. A
//! call that has run through a whole tick (its second tick arrives while it
//! still runs) is a *long call*: from then on it
//! runs only while it holds a long-call slot — one of its deployment's (a
//! deployment runs one long call at a time) and one of the runner's
//! (`runtime.long_calls`, by default one fewer than the cores, so a worker
//! is always left for short calls). Slots are handed out first come,
//! first served, and a holder gives its slot back at every tick while
//! someone waits, so long calls of different deployments take turns tick
//! by tick. While one of a deployment's calls is long, its other calls get
//! no first-tick grace (a tenant spinning on every partition would burn a
//! tick per call beside its one long call). While other deployments are
//! making calls, a deployment's long call runs only every other tick,
//! sleeping in between — also right after its slot was handed to it by
//! one of its own calls, or taking turns would be a way to run on
//! without pause. What its neighbours
//! mostly need is not wasm time but the cores it would burn (their Kafka
//! clients, their poll threads), and a call that is still running after
//! one tick is background work by definition. Waiting and sleeping count
//! against the call's wall-clock deadline: a tenant whose every call spins
//! until its deadline gets its turns and no more, and its neighbours'
//! short calls are never queued behind it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::quota::Decrement;
use wasmtime::UpdateDeadline;

/// A semaphore that knows whether anyone waits on it.
struct Turns {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
}

impl Turns {
    fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            waiting: AtomicUsize::new(0),
        }
    }

    async fn take(&self) -> OwnedSemaphorePermit {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return p;
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Decrement(&self.waiting);
        let permit = self.permits.clone().acquire_owned().await;
        permit.expect("the semaphore is never closed")
    }

    fn contended(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }
}

/// The runner's long-call slots.
pub(super) struct CpuShare {
    runner: Arc<Turns>,
    /// Calls started on the runner, all deployments together.
    calls: Arc<AtomicU64>,
    /// The epoch tick: how long a long call sleeps between its turns.
    tick: Duration,
}

impl CpuShare {
    /// `slots` long calls may run at once across the runner, which ticks
    /// every `tick`.
    pub(super) fn new(slots: usize, tick: Duration) -> Self {
        Self {
            runner: Arc::new(Turns::new(slots.max(1))),
            calls: Arc::new(AtomicU64::new(0)),
            tick,
        }
    }

    /// The turns of one more deployment.
    pub(super) fn deployment(&self) -> Arc<DeploymentShare> {
        Arc::new(DeploymentShare {
            own: Turns::new(1),
            runner: self.runner.clone(),
            calls: self.calls.clone(),
            own_calls: AtomicU64::new(0),
            others_seen: AtomicU64::new(0),
            tick: self.tick,
        })
    }
}

/// One deployment's turns at long calls.
pub(super) struct DeploymentShare {
    own: Turns,
    runner: Arc<Turns>,
    /// The runner's count of calls started.
    calls: Arc<AtomicU64>,
    /// This deployment's count of calls started.
    own_calls: AtomicU64,
    /// Other deployments' calls started, as of this deployment's last tick
    /// of a long call.
    others_seen: AtomicU64,
    tick: Duration,
}

/// The slot a long call holds: its deployment's and the runner's.
pub(super) struct LongSlot {
    _own: OwnedSemaphorePermit,
    _runner: OwnedSemaphorePermit,
}

/// Where a call stands: ticks seen and the slot it holds.
#[derive(Default)]
pub(super) struct CallTurn {
    /// Epoch ticks seen by the current call.
    ticks: u32,
    slot: Option<LongSlot>,
    /// Instantiation, which takes no turns: initialisers run once per
    /// instance under the deadline, and one that spins until it fails the
    /// deployment, so it cannot be used to hold a worker for long; making
    /// it wait for turns would fail deployments whose neighbours are busy.
    instantiating: bool,
}

impl CallTurn {
    /// The turn of a store being instantiated.
    pub(super) fn instantiating() -> Self {
        Self {
            instantiating: true,
            ..Self::default()
        }
    }
}

/// Where a store keeps the turn of its current call; reset when a call
/// begins and ends (and dropped with the store).
pub(super) type HeldSlot = Arc<Mutex<CallTurn>>;

impl DeploymentShare {
    fn contended(&self) -> bool {
        self.own.contended() || self.runner.contended()
    }

    /// Whether one of this deployment's calls is long now (holding or
    /// waiting for the deployment's slot). Its other calls then get no
    /// first-tick grace: a tenant spinning on every partition would
    /// otherwise burn a tick per call beside the one long call it may run.
    fn running_long(&self) -> bool {
        self.own.permits.available_permits() == 0 || self.own.contended()
    }

    /// Count a call of this deployment starting (any call, short or long).
    pub(super) fn call_started(&self) {
        self.own_calls.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls other deployments started, so far.
    fn others(&self) -> u64 {
        let own = self.own_calls.load(Ordering::Relaxed);
        self.calls.load(Ordering::Relaxed).wrapping_sub(own)
    }

    fn try_take(&self) -> Option<LongSlot> {
        let own = self.own.permits.clone().try_acquire_owned().ok()?;
        let runner = self.runner.permits.clone().try_acquire_owned().ok()?;
        Some(LongSlot {
            _own: own,
            _runner: runner,
        })
    }

    async fn take(&self) -> LongSlot {
        let own = self.own.take().await;
        let runner = self.runner.take().await;
        LongSlot {
            _own: own,
            _runner: runner,
        }
    }

    /// Whether other deployments started calls since this deployment's
    /// last look (at a tick of one of its long calls).
    fn neighbours_busy(&self) -> bool {
        let now = self.others();
        self.others_seen.swap(now, Ordering::Relaxed) != now
    }

    /// How long a long call that holds its slot sits out before running
    /// its next tick: nothing while it has the runner to itself, else one
    /// tick, which its busy neighbours get first.
    fn sit_out(&self) -> Option<Duration> {
        self.neighbours_busy().then_some(self.tick)
    }

    /// What a call does at an epoch tick (its deadline not yet passed):
    /// run on, sit a tick out, or wait (yielding the worker) for a slot.
    pub(super) fn at_tick(self: &Arc<Self>, held: &HeldSlot) -> UpdateDeadline {
        let queue = {
            let mut turn = held.lock().unwrap();
            turn.ticks += 1;
            if turn.instantiating || (turn.ticks == 1 && !self.running_long()) {
                // The call may have begun just before this tick: it is
                // long only once it has run through a whole one.
                return UpdateDeadline::Yield(1);
            }
            match turn.slot {
                // Others wait: give the slot back and queue behind them.
                Some(_) if self.contended() => {
                    turn.slot = None;
                    true
                }
                Some(_) => false,
                None => match self.try_take() {
                    Some(taken) => {
                        turn.slot = Some(taken);
                        false
                    }
                    None => true,
                },
            }
        };
        if !queue {
            return match self.sit_out() {
                Some(pause) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(pause))),
                // Still yield: the executor's other tasks get a look in.
                None => UpdateDeadline::Yield(1),
            };
        }
        let (share, held) = (self.clone(), held.clone());
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                let taken = share.take().await;
                held.lock().unwrap().slot = Some(taken);
                // A slot handed over is no fresh start: the deployment's
                // neighbours still get their ticks first.
                if let Some(pause) = share.sit_out() {
                    tokio::time::sleep(pause).await;
                }
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(held: &HeldSlot) -> bool {
        held.lock().unwrap().slot.is_some()
    }

    /// The call's first tick: a grace, never a wait.
    fn begun(share: &Arc<DeploymentShare>, held: &HeldSlot) {
        assert!(matches!(share.at_tick(held), UpdateDeadline::Yield(1)));
        assert!(!holds(held));
    }

    #[tokio::test]
    async fn long_calls_take_turns_across_deployments() {
        let share = CpuShare::new(1, Duration::from_millis(10));
        let (a, b) = (share.deployment(), share.deployment());
        let (held_a, held_b): (HeldSlot, HeldSlot) = Default::default();
        begun(&a, &held_a);
        begun(&b, &held_b);
        // A's call becomes long and gets the runner's only slot.
        assert!(matches!(a.at_tick(&held_a), UpdateDeadline::Yield(1)));
        assert!(holds(&held_a));
        // B's must wait for it.
        let UpdateDeadline::YieldCustom(1, wait_b) = b.at_tick(&held_b) else {
            panic!("B should wait for the slot");
        };
        let wait_b = tokio::spawn(wait_b);
        tokio::task::yield_now().await;
        // At A's next tick someone waits: A hands over and queues.
        let UpdateDeadline::YieldCustom(1, wait_a) = a.at_tick(&held_a) else {
            panic!("A should give its slot back while B waits");
        };
        wait_b.await.unwrap();
        assert!(holds(&held_b) && !holds(&held_a));
        // The call ends: its slot goes back, and A's turn comes.
        *held_b.lock().unwrap() = CallTurn::default();
        tokio::time::timeout(Duration::from_secs(5), wait_a)
            .await
            .expect("A gets the slot once B's call ended");
        assert!(holds(&held_a));
    }

    #[tokio::test]
    async fn a_long_call_sits_out_every_other_tick_while_neighbours_make_calls() {
        let share = CpuShare::new(1, Duration::from_millis(10));
        let (a, b) = (share.deployment(), share.deployment());
        let held = HeldSlot::default();
        a.call_started();
        begun(&a, &held);
        assert!(matches!(a.at_tick(&held), UpdateDeadline::Yield(1)));
        // Alone (its own calls do not count): it runs on.
        a.call_started();
        assert!(matches!(a.at_tick(&held), UpdateDeadline::Yield(1)));
        // A neighbour made a call since the last tick: it sleeps one tick,
        // keeping its slot.
        b.call_started();
        assert!(matches!(
            a.at_tick(&held),
            UpdateDeadline::YieldCustom(1, _)
        ));
        assert!(holds(&held));
        assert!(matches!(a.at_tick(&held), UpdateDeadline::Yield(1)));
    }

    #[tokio::test]
    async fn one_deployment_runs_one_long_call_at_a_time() {
        let share = CpuShare::new(4, Duration::from_millis(10));
        let a = share.deployment();
        let (first, second): (HeldSlot, HeldSlot) = Default::default();
        begun(&a, &first);
        begun(&a, &second);
        assert!(matches!(a.at_tick(&first), UpdateDeadline::Yield(1)));
        assert!(matches!(
            a.at_tick(&second),
            UpdateDeadline::YieldCustom(..)
        ));
    }

    #[tokio::test]
    async fn no_grace_beside_a_long_call_of_the_same_deployment() {
        let share = CpuShare::new(1, Duration::from_millis(10));
        let a = share.deployment();
        let (first, second): (HeldSlot, HeldSlot) = Default::default();
        begun(&a, &first);
        assert!(matches!(a.at_tick(&first), UpdateDeadline::Yield(1)));
        assert!(holds(&first));
        // A's second call, at its very first tick, queues behind the first
        // instead of spinning a tick of its own.
        assert!(matches!(
            a.at_tick(&second),
            UpdateDeadline::YieldCustom(1, _)
        ));
    }

    #[tokio::test]
    async fn a_slot_handed_over_within_a_deployment_still_sits_out() {
        let share = CpuShare::new(1, Duration::from_millis(10));
        let (a, b) = (share.deployment(), share.deployment());
        let (first, second): (HeldSlot, HeldSlot) = Default::default();
        begun(&a, &first);
        assert!(matches!(a.at_tick(&first), UpdateDeadline::Yield(1)));
        let UpdateDeadline::YieldCustom(1, wait) = a.at_tick(&second) else {
            panic!("the second call should queue");
        };
        let wait = tokio::spawn(wait);
        tokio::task::yield_now().await;
        // A neighbour is busy; the first call hands over at its tick.
        b.call_started();
        assert!(matches!(
            a.at_tick(&first),
            UpdateDeadline::YieldCustom(1, _)
        ));
        // The second call gets the slot, and sits a tick out before running.
        for _ in 0..100 {
            if holds(&second) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(holds(&second) && !wait.is_finished());
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the sit-out lasts one tick")
            .unwrap();
    }
}
