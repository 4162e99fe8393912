//! The only code that calls the WIT imports.
//!
//! On `wasm32` these functions call the host. Elsewhere they talk to an
//! in-memory stand-in, so the rest of the SDK (and handlers built on it)
//! can be exercised by native `cargo test`.

use crate::__private::bindings::ingesta::runtime::emit::EmitError;
use crate::error::Error;

pub(crate) use imp::{config_entries, emit, log};

/// Turns a refused emit into the batch's error: the call is failed by the
/// host regardless, and no retry can change the deployment's grants or limits.
fn refused(err: EmitError) -> Error {
    Error::permanent(match err {
        EmitError::TopicNotAllowed(topic) => {
            format!("emit refused: topic {topic} is not granted to this deployment")
        }
        EmitError::Malformed(reason) => format!("emit refused: malformed outbox: {reason}"),
        EmitError::LimitExceeded(reason) => {
            format!("emit refused: output limit exceeded: {reason}")
        }
    })
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::__private::bindings::ingesta::runtime::{config, emit as wit_emit, log as wit_log};
    use crate::error::Result;
    use crate::log::Level;
    use crate::wit;

    pub(crate) fn emit(outbox: &wit::Outbox) -> Result<()> {
        wit_emit::emit(outbox).map_err(super::refused)
    }

    pub(crate) fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit_log::Level::Trace,
            Level::Debug => wit_log::Level::Debug,
            Level::Info => wit_log::Level::Info,
            Level::Warn => wit_log::Level::Warn,
            Level::Error => wit_log::Level::Error,
        };
        wit_log::log(level, message);
    }

    pub(crate) fn config_entries() -> Vec<(String, String)> {
        config::entries()
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod imp {
    use std::cell::RefCell;

    use crate::__private::bindings::ingesta::runtime::emit::EmitError;
    use crate::error::Result;
    use crate::log::Level;
    use crate::wit;

    /// What a native "host" has seen and how it should answer.
    #[derive(Default)]
    pub(crate) struct NativeHost {
        pub(crate) config: Vec<(String, String)>,
        pub(crate) emitted: Vec<wit::Outbox>,
        pub(crate) logs: Vec<(Level, String)>,
        /// Refuse emits to this topic, as a host would for an ungranted one.
        pub(crate) deny_topic: Option<String>,
    }

    thread_local! {
        static HOST: RefCell<NativeHost> = RefCell::new(NativeHost::default());
    }

    pub(crate) fn with_host<R>(f: impl FnOnce(&mut NativeHost) -> R) -> R {
        HOST.with_borrow_mut(f)
    }

    pub(crate) fn emit(outbox: &wit::Outbox) -> Result<()> {
        with_host(|host| {
            if let Some(denied) = &host.deny_topic
                && outbox.topics.contains(denied)
            {
                return Err(super::refused(EmitError::TopicNotAllowed(denied.clone())));
            }
            host.emitted.push(outbox.clone());
            Ok(())
        })
    }

    pub(crate) fn log(level: Level, message: &str) {
        with_host(|host| host.logs.push((level, message.to_owned())));
    }

    pub(crate) fn config_entries() -> Vec<(String, String)> {
        with_host(|host| host.config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_say_why() {
        let e = refused(EmitError::TopicNotAllowed("secret".into()));
        assert!(!e.is_retryable());
        assert_eq!(
            e.message(),
            "emit refused: topic secret is not granted to this deployment"
        );
        let e = refused(EmitError::Malformed("span out of range".into()));
        assert_eq!(
            e.message(),
            "emit refused: malformed outbox: span out of range"
        );
        let e = refused(EmitError::LimitExceeded("over 16 MiB".into()));
        assert_eq!(
            e.message(),
            "emit refused: output limit exceeded: over 16 MiB"
        );
    }
}
