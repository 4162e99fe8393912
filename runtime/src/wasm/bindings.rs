//! Rust types generated from `wit/` (package `ingesta:runtime@0.1.0`).
//!
//! Exports are async so a long call yields to the executor at every epoch
//! tick; imports are synchronous because they only touch the store's memory.
//! The `producer` world shares the consumer world's imports and types
//! (`with`), so one [`HostState`](super::HostState) implementation and one
//! linker serve both worlds.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "consumer",
    exports: { default: async },
});

/// The `producer` world: HTTP requests and timer ticks in, records out.
pub mod producer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "producer",
        exports: { default: async },
        with: {
            "ingesta:runtime/types": super::ingesta::runtime::types,
            "ingesta:runtime/emit": super::ingesta::runtime::emit,
            "ingesta:runtime/log": super::ingesta::runtime::log,
            "ingesta:runtime/config": super::ingesta::runtime::config,
        },
    });

    pub use exports::ingesta::runtime::source::{Request, Response, Tick};
}

pub use exports::ingesta::runtime::handler;
pub use ingesta::runtime::types::{Batch, ErrorClass, HandlerError, Outbox};
pub use producer::{Producer, ProducerPre};
