//! Rust types generated from `wit/` (package `ingesta:runtime@0.1.0`).
//!
//! Exports are async so a long call yields to the executor at every epoch
//! tick; imports are synchronous because they only touch the store's memory.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "consumer",
    exports: { default: async },
});

pub use exports::ingesta::runtime::handler;
pub use ingesta::runtime::types::{Batch, ErrorClass, HandlerError, Outbox};
