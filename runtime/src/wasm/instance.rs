//! Live instances (consumer and producer) and the outcome of calling them.
//!
//! Errors are split the way the failure policy needs them: a guest's own
//! `handler-error` (retryable or permanent) leaves the instance usable; a
//! trap (panic, out of memory, deadline, stack overflow...) means the
//! instance's state can no longer be trusted and it must be replaced.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::producer::{Request, Response, Tick};
use super::bindings::{
    Batch, Consumer, ConsumerPre, ErrorClass, HandlerError, Outbox, Producer, ProducerPre,
};
use super::host::{DeploymentGrants, HostState, MAX_HOSTCALL_BYTES, MAX_RESOURCE_HANDLES};
use super::quota::{Slot, Slots};

pub use crate::deployment::status::TrapKind;

impl From<ErrorClass> for crate::deployment::status::FailureClass {
    fn from(class: ErrorClass) -> Self {
        match class {
            ErrorClass::Retryable => Self::Retryable,
            ErrorClass::Permanent => Self::Permanent,
        }
    }
}

/// What one call produced.
pub enum CallOutcome<T = ()> {
    /// The call succeeded with `T`; these outboxes must be published.
    Ok(T, Vec<Outbox>),
    /// The guest returned an error; the instance is still usable.
    Failed(HandlerError),
    /// The instance trapped and must be discarded.
    Trapped {
        /// What went wrong, for the failure policy and the metrics' class.
        kind: TrapKind,
        /// The root cause's first line (for memory and host-call limits,
        /// with the limit); goes into status and dead-letter headers.
        message: String,
    },
}

/// Raised from the epoch callback when a call overruns its budget.
#[derive(Debug, thiserror::Error)]
#[error("call exceeded its deadline of {0} ms")]
struct DeadlineExceeded(u128);

/// A deployment's linked component of world `P` (the bindings'
/// `ConsumerPre` or `ProducerPre`), ready to instantiate.
#[derive(Clone)]
pub struct Template<P> {
    pre: P,
    grants: Arc<DeploymentGrants>,
    /// The quotas every instance of the deployment counts against.
    slots: Arc<Slots>,
}

/// A linked consumer component.
pub type ConsumerTemplate = Template<ConsumerPre<HostState>>;
/// A linked producer component.
pub type ProducerTemplate = Template<ProducerPre<HostState>>;

impl<P> Template<P> {
    /// The deployment's grants.
    pub fn grants(&self) -> &Arc<DeploymentGrants> {
        &self.grants
    }

    /// The quotas of the deployment's instances.
    pub fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }
}

/// A linked component of either world, as the bindings generate them.
trait Instantiable {
    /// The instance's bindings (`Consumer` or `Producer`).
    type Bindings;
    fn engine(&self) -> &wasmtime::Engine;
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Self::Bindings>> + 'a;
}

impl Instantiable for ConsumerPre<HostState> {
    type Bindings = Consumer;
    fn engine(&self) -> &wasmtime::Engine {
        ConsumerPre::engine(self)
    }
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Consumer>> + 'a {
        self.instantiate_async(store)
    }
}

impl Instantiable for ProducerPre<HostState> {
    type Bindings = Producer;
    fn engine(&self) -> &wasmtime::Engine {
        ProducerPre::engine(self)
    }
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<HostState>,
    ) -> impl Future<Output = wasmtime::Result<Producer>> + 'a {
        self.instantiate_async(store)
    }
}

#[allow(
    private_bounds,
    reason = "the bound only serves this private method; both worlds implement it"
)]
impl<P: Instantiable> Template<P> {
    /// A store for one more instance, its bindings and the slot it holds:
    /// waits while a quota is used up, and while the pooling allocator is
    /// out of some resource (memories, tables, core instances) that the
    /// quotas do not count. Initialisers run guest code too: the call
    /// deadline bounds them.
    async fn instantiate(&self) -> Result<(Store<HostState>, P::Bindings, Slot)> {
        let mut backoff = std::time::Duration::from_millis(10);
        loop {
            let slot = self.slots.acquire().await;
            let mut store = new_store(self.pre.engine(), &self.grants, &self.slots)?;
            let instantiate = self.pre.instantiate(&mut store);
            match within_deadline(self.grants.deadline, instantiate).await {
                Ok(bindings) => return Ok((store, bindings, slot)),
                Err(e)
                    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                        .is_some() =>
                {
                    drop(slot);
                    self.slots.pool_exhausted(&e.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e).context("failed to instantiate the module"));
                }
            }
        }
    }
}

impl ConsumerTemplate {
    /// Link `pre` once per deployment; instantiation then only allocates.
    pub fn new(
        pre: InstancePre<HostState>,
        grants: Arc<DeploymentGrants>,
        slots: Arc<Slots>,
    ) -> Result<Self> {
        let pre = ConsumerPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("component does not match the consumer world")?;
        Ok(Self { pre, grants, slots })
    }
}

impl ProducerTemplate {
    /// Link `pre` once per deployment; instantiation then only allocates.
    pub fn new(
        pre: InstancePre<HostState>,
        grants: Arc<DeploymentGrants>,
        slots: Arc<Slots>,
    ) -> Result<Self> {
        let pre = ProducerPre::new(pre)
            .map_err(anyhow::Error::from)
            .context("component does not match the producer world")?;
        Ok(Self { pre, grants, slots })
    }
}

/// A store with the deployment's limits: memory cap, host-call limits,
/// deadline (checked at every epoch tick, yielding in between) and fuel.
fn new_store(
    engine: &wasmtime::Engine,
    grants: &Arc<DeploymentGrants>,
    slots: &Slots,
) -> Result<Store<HostState>> {
    let mut store = Store::new(engine, HostState::new(grants.clone()));
    store.limiter(|s| s.limits_mut());
    store.set_hostcall_fuel(MAX_HOSTCALL_BYTES);
    store.set_max_component_handles(MAX_RESOURCE_HANDLES);
    let (cpu, held) = (slots.cpu().clone(), store.data().long_slot().clone());
    store.epoch_deadline_callback(move |ctx| {
        let host = ctx.data();
        if host.deadline_passed() {
            return Err(DeadlineExceeded(host.grants().deadline.as_millis()).into());
        }
        // A call still running at a tick yields its executor thread and
        // runs on only in its turn (see `share`), so one long call cannot
        // monopolise threads that other partitions and tenants share.
        Ok(cpu.at_tick(&held))
    });
    // Instantiation runs guest code too (initialisers); under fuel
    // metering it gets the same budget as a call.
    if store.get_fuel().is_ok() {
        store
            .set_fuel(grants.fuel.unwrap_or(u64::MAX))
            .map_err(anyhow::Error::from)?;
    }
    Ok(store)
}

/// Resets the store's per-call state and budgets before a call; `Err` is
/// the outcome to report instead of calling.
fn begin_call<T>(store: &mut Store<HostState>, slots: &Slots) -> Result<(), CallOutcome<T>> {
    slots.cpu().call_started();
    store.data_mut().begin_call();
    store.set_epoch_deadline(1);
    // `get_fuel` fails exactly when the engine does not meter fuel.
    if store.get_fuel().is_ok() {
        let fuel = store.data().grants().fuel.unwrap_or(u64::MAX);
        if let Err(e) = store.set_fuel(fuel) {
            return Err(CallOutcome::Trapped {
                kind: TrapKind::Other,
                message: format!("cannot set fuel: {e}"),
            });
        }
    }
    Ok(())
}

/// Run `call` under the wall-clock `deadline` (the call started just
/// now). The epoch callback traps wasm code that runs past it; this bounds
/// everything else a call does — host calls and WASI waits (a sleep, a
/// poll), during which no wasm runs and no epoch check happens. A call cut
/// off here is dropped mid-way, leaving its store mid-call: like any trap,
/// the instance must be discarded, which every caller does on `Trapped`.
async fn within_deadline<T>(
    deadline: std::time::Duration,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => Err(DeadlineExceeded(deadline.as_millis()).into()),
    }
}

/// The most bytes of a guest's error text the runner keeps: it travels in
/// status, logs and dead-letter headers, and a dead letter must fit the
/// same size limit as the record it carries.
const MAX_ERROR_MESSAGE_BYTES: usize = 2048;

/// `message` cut to [`MAX_ERROR_MESSAGE_BYTES`] at a character boundary,
/// saying how much was cut.
fn clip_message(mut message: String) -> String {
    if message.len() <= MAX_ERROR_MESSAGE_BYTES {
        return message;
    }
    let total = message.len();
    let mut end = MAX_ERROR_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(&format!("… ({} of {total} bytes cut)", total - end));
    message
}

/// The outcome of a call that returned `result`, with what it emitted.
fn finish_call<T>(
    store: &mut Store<HostState>,
    result: wasmtime::Result<Result<T, HandlerError>>,
) -> CallOutcome<T> {
    let (outboxes, refused) = store.data_mut().finish_call();
    // Both may carry guest-chosen text (an error message, a topic name).
    let refused = refused.map(clip_message);
    let result = result.map(|r| {
        r.map_err(|e| HandlerError {
            message: clip_message(e.message),
            ..e
        })
    });
    match result {
        Ok(Ok(value)) => match refused {
            None => CallOutcome::Ok(value, outboxes),
            Some(message) => CallOutcome::Failed(HandlerError {
                class: ErrorClass::Permanent,
                message,
                record_index: None,
            }),
        },
        Ok(Err(e)) => CallOutcome::Failed(match refused {
            // The refusal is the root cause; the guest's error is usually
            // just the SDK passing it on. Its record index is not the
            // refused record's (the emit may have come from any earlier
            // record), so the policy must isolate the culprit itself.
            Some(message) => HandlerError {
                class: ErrorClass::Permanent,
                message,
                record_index: None,
            },
            None => e,
        }),
        Err(e) => {
            let (kind, message) = classify_trap(&e);
            CallOutcome::Trapped { kind, message }
        }
    }
}

/// A consumer instance with its own store (memory, limits, buffered outputs).
pub struct ConsumerInstance {
    store: Store<HostState>,
    bindings: Consumer,
    /// Given back to the quotas when the instance is dropped.
    _slot: Slot,
    /// The deployment's share, told of every call.
    slots: Arc<Slots>,
}

impl ConsumerInstance {
    /// Instantiate from the deployment's template.
    /// Waits while a quota of live instances is used up.
    pub async fn new(template: &ConsumerTemplate) -> Result<Self> {
        let (store, bindings, _slot) = template.instantiate().await?;
        let slots = template.slots.clone();
        Ok(Self {
            store,
            bindings,
            _slot,
            slots,
        })
    }

    /// Call the handler with one batch.
    pub async fn handle(&mut self, batch: &Batch) -> CallOutcome {
        if let Err(outcome) = begin_call(&mut self.store, &self.slots) {
            return outcome;
        }
        let deadline = self.store.data().grants().deadline;
        let call = self
            .bindings
            .ingesta_runtime_handler()
            .call_handle(&mut self.store, batch);
        let result = within_deadline(deadline, call).await;

        finish_call(&mut self.store, result)
    }
}

/// A producer instance with its own store.
pub struct ProducerInstance {
    store: Store<HostState>,
    bindings: Producer,
    /// Given back to the quotas when the instance is dropped.
    _slot: Slot,
    /// The deployment's share, told of every call.
    slots: Arc<Slots>,
}

impl ProducerInstance {
    /// Instantiate from the deployment's template.
    /// Waits while a quota of live instances is used up.
    pub async fn new(template: &ProducerTemplate) -> Result<Self> {
        let (store, bindings, _slot) = template.instantiate().await?;
        let slots = template.slots.clone();
        Ok(Self {
            store,
            bindings,
            _slot,
            slots,
        })
    }

    /// Call the module with one HTTP request.
    pub async fn request(&mut self, request: &Request) -> CallOutcome<Response> {
        if let Err(outcome) = begin_call(&mut self.store, &self.slots) {
            return outcome;
        }
        let deadline = self.store.data().grants().deadline;
        let call = self
            .bindings
            .ingesta_runtime_source()
            .call_handle_request(&mut self.store, request);
        let result = within_deadline(deadline, call).await;

        finish_call(&mut self.store, result)
    }

    /// Call the module with one tick.
    pub async fn tick(&mut self, tick: Tick) -> CallOutcome {
        if let Err(outcome) = begin_call(&mut self.store, &self.slots) {
            return outcome;
        }
        let deadline = self.store.data().grants().deadline;
        let call = self
            .bindings
            .ingesta_runtime_source()
            .call_handle_tick(&mut self.store, tick);
        let result = within_deadline(deadline, call).await;

        finish_call(&mut self.store, result)
    }
}

fn classify_trap(e: &wasmtime::Error) -> (TrapKind, String) {
    if let Some(d) = e.downcast_ref::<DeadlineExceeded>() {
        return (TrapKind::Deadline, d.to_string());
    }
    let text = format!("{e:#}");
    // wasmtime's error types for these are private, so they are told apart
    // by message; tests/tests/ambient.rs pins the hostcall-fuel one.
    let kind = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::StackOverflow) => TrapKind::StackOverflow,
        Some(wasmtime::Trap::UnreachableCodeReached) => TrapKind::Panic,
        Some(wasmtime::Trap::OutOfFuel) => TrapKind::OutOfFuel,
        Some(_) => TrapKind::Other,
        None if text.contains("growing memory") => TrapKind::OutOfMemory,
        None if text.contains("fuel allocated for hostcalls")
            || text.contains("store handle limit exceeded")
            || text.contains("resource table has no free keys") =>
        {
            TrapKind::HostCallLimit
        }
        None => TrapKind::Other,
    };
    // The root cause, not the "error while executing at wasm backtrace"
    // wrapper: this text goes into status and dead-letter headers.
    let cause = e.root_cause().to_string();
    let message = match kind {
        TrapKind::OutOfMemory => format!("memory limit exceeded: {cause}"),
        TrapKind::HostCallLimit => format!(
            "component-model limit hit (at most {} MiB per host call, {} live handles): {cause}",
            MAX_HOSTCALL_BYTES >> 20,
            MAX_RESOURCE_HANDLES
        ),
        _ => cause,
    };
    (kind, message.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_error_text_is_clipped_at_a_character_boundary() {
        assert_eq!(clip_message("short".into()), "short");
        let exact = "x".repeat(MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(clip_message(exact.clone()), exact);
        // 'é' is two bytes: the cut must not split it.
        let long = format!(
            "{}{}",
            "x".repeat(MAX_ERROR_MESSAGE_BYTES - 1),
            "é".repeat(500_000)
        );
        let clipped = clip_message(long);
        assert!(clipped.starts_with(&"x".repeat(MAX_ERROR_MESSAGE_BYTES - 1)));
        assert!(
            clipped.ends_with("… (1000000 of 1002047 bytes cut)"),
            "{}",
            &clipped[2000..]
        );
        assert!(clipped.len() < MAX_ERROR_MESSAGE_BYTES + 64);
    }
}
