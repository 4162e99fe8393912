//! Everything that touches wasmtime: the shared engine, loading and checking
//! components, the host side of our WIT imports, and running calls.
//!
//! Cost model: the [`Engine`](wasmtime::Engine) is created once per runner;
//! each component is compiled once per content digest (and cached on disk);
//! each deployment links it once into a [`ConsumerPre`](bindings::ConsumerPre);
//! instances come from the pooling allocator, so creating one costs tens of
//! microseconds and a trapped instance is simply replaced.

pub mod bindings;
mod engine;
mod host;
mod instance;
mod module;
mod quota;
mod shape;
mod share;

pub use engine::{WasmEngine, WasmEngineConfig};
pub use host::{
    DeploymentGrants, HostState, MAX_HOSTCALL_BYTES, MAX_RESOURCE_HANDLES, consumer_linker,
    produced_bytes,
};
pub use instance::{
    CallOutcome, ConsumerInstance, ConsumerTemplate, ProducerInstance, ProducerTemplate, Template,
    TrapKind,
};
pub use module::{LoadedModule, ModuleError, World, prepare_cache_dir, remove_cached};
pub use quota::{InstanceQuotas, Slots};
