//! Write [ingesta](https://example.invalid/ingesta) stream handlers in Rust.
//!
//! An ingesta deployment consumes Kafka partitions and hands each batch of
//! records to a WebAssembly component. This crate turns a plain Rust type
//! into that component: implement [`Handler`], export it with
//! [`export_handler!`], and build for `wasm32-wasip2`.
//!
//! ```
//! use ingesta::prelude::*;
//!
//! #[derive(Default)]
//! struct Upper;
//!
//! impl Handler for Upper {
//!     fn on_record(&mut self, record: &Record) -> Result<()> {
//!         let text = record.value_str()?.to_uppercase();
//!         emit("shouty", record.key(), text);
//!         Ok(())
//!     }
//! }
//!
//! ingesta::export_handler!(Upper);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --profile guest` (or
//! `--release`); the `.wasm` file in `target/wasm32-wasip2/<profile>/` is the
//! component to deploy.
//!
//! # Semantics
//!
//! * Delivery is at-least-once: a batch may be handled again after a failure
//!   or a restart, so handlers should tolerate redelivery.
//! * One handler value lives per partition instance and sees that partition's
//!   batches in offset order. Its in-memory state is lost when the instance is
//!   recycled (trap, rebalance, restart).
//! * Records passed to [`emit`] and friends are published only if the whole
//!   call succeeds; a failed call publishes nothing.
//! * [`Error::retryable`] asks the runner to retry the batch with backoff;
//!   [`Error::permanent`] says the input can never succeed, so the runner
//!   dead-letters the record or stops the deployment. A panic traps the
//!   instance, which the runner treats like a crash.
//!
//! On native targets the crate also builds, and [`testing`] runs handlers
//! against hand-made batches so they can be unit-tested with `cargo test`.

mod batch;
pub mod config;
mod emit;
mod error;
mod handler;
mod host;
pub mod log;
mod producer;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use batch::{Batch, Headers, Record, Records, TimestampType};
pub use emit::{Message, Payload, emit, emit_json, forward};
pub use error::{Error, ErrorClass, Result};
pub use handler::Handler;
pub use producer::{Producer, Request, Response, Tick};

/// Everything a handler usually needs: `use ingesta::prelude::*;`.
pub mod prelude {
    pub use crate::config;
    pub use crate::{Batch, Error, Handler, Message, Record, Result, emit, emit_json, forward};
    pub use crate::{Producer, Request, Response, Tick};
    pub use crate::{debug, error, info, trace, warn};
}

/// Exports a [`Handler`] type as the component's `handler` interface.
///
/// Invoke it once, at the top level of the handler's `cdylib` crate:
///
/// ```
/// # #[derive(Default)]
/// # struct MyHandler;
/// # impl ingesta::Handler for MyHandler {}
/// ingesta::export_handler!(MyHandler);
/// ```
///
/// The handler value is created with [`Default`] on the first call and then
/// kept for the lifetime of the instance, so it can carry state from one
/// batch to the next.
#[macro_export]
macro_rules! export_handler {
    ($handler:ty) => {
        const _: () = {
            ::std::thread_local! {
                static INGESTA_HANDLER: ::core::cell::RefCell<::core::option::Option<$handler>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct IngestaExport;

            impl $crate::__private::Guest for IngestaExport {
                fn handle(
                    batch: $crate::__private::WitBatch,
                ) -> ::core::result::Result<(), $crate::__private::WitHandlerError> {
                    $crate::__private::handle(&INGESTA_HANDLER, batch)
                }
            }

            $crate::__private::bindings::__export_consumer!(
                IngestaExport with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Exports a [`Producer`] type as the component's `source` interface (WIT
/// world `producer`): HTTP ingestion endpoints and scheduled generators.
///
/// Invoke it once, at the top level of the module's `cdylib` crate, instead
/// of [`export_handler!`]:
///
/// ```
/// use ingesta::prelude::*;
///
/// #[derive(Default)]
/// struct Beacon;
///
/// impl Producer for Beacon {
///     fn on_request(&mut self, request: &Request) -> Result<Response> {
///         emit("page-views", request.header("x-user"), request.body());
///         Ok(Response::accepted())
///     }
/// }
///
/// ingesta::export_producer!(Beacon);
/// ```
#[macro_export]
macro_rules! export_producer {
    ($producer:ty) => {
        const _: () = {
            ::std::thread_local! {
                static INGESTA_PRODUCER: ::core::cell::RefCell<::core::option::Option<$producer>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            struct IngestaExport;

            impl $crate::__private::SourceGuest for IngestaExport {
                fn handle_request(
                    request: $crate::__private::WitRequest,
                ) -> ::core::result::Result<
                    $crate::__private::WitResponse,
                    $crate::__private::WitHandlerError,
                > {
                    $crate::__private::handle_request(&INGESTA_PRODUCER, request)
                }

                fn handle_tick(
                    tick: $crate::__private::WitTick,
                ) -> ::core::result::Result<(), $crate::__private::WitHandlerError> {
                    $crate::__private::handle_tick(&INGESTA_PRODUCER, tick)
                }
            }

            $crate::__private::producer_bindings::__export_producer!(
                IngestaExport with_types_in $crate::__private::producer_bindings
            );
        };
    };
}

/// Implementation details used by [`export_handler!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    /// Bindings generated from the `consumer` world in `wit/`.
    #[allow(missing_docs, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "consumer",
            pub_export_macro: true,
            export_macro_name: "__export_consumer",
            // Only reached through `with_types_in`, which `export_handler!`
            // always passes; this keeps the default arm pointing somewhere sane.
            default_bindings_module: "$crate::__private::bindings",
        });
    }

    /// Bindings generated from the `producer` world; its imports and
    /// shared types are the consumer bindings' own (`with`), so both worlds
    /// call the host through one set of import shims.
    #[allow(missing_docs, clippy::all)]
    pub mod producer_bindings {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "producer",
            pub_export_macro: true,
            export_macro_name: "__export_producer",
            default_bindings_module: "$crate::__private::producer_bindings",
            with: {
                "ingesta:runtime/types@0.1.0": crate::__private::bindings::ingesta::runtime::types,
                "ingesta:runtime/emit@0.1.0": crate::__private::bindings::ingesta::runtime::emit,
                "ingesta:runtime/log@0.1.0": crate::__private::bindings::ingesta::runtime::log,
                "ingesta:runtime/config@0.1.0": crate::__private::bindings::ingesta::runtime::config,
            },
        });
    }

    pub use crate::handler::handle;
    pub use crate::producer::{handle_request, handle_tick};
    pub use bindings::exports::ingesta::runtime::handler::Guest;
    pub use bindings::ingesta::runtime::types::{
        Batch as WitBatch, HandlerError as WitHandlerError,
    };
    pub use producer_bindings::exports::ingesta::runtime::source::{
        Guest as SourceGuest, Request as WitRequest, Response as WitResponse, Tick as WitTick,
    };
}

/// The WIT types the SDK translates to and from.
pub(crate) use __private::bindings::ingesta::runtime::types as wit;
