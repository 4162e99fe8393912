//! Logging into the deployment's log stream.
//!
//! Use the macros, which format only lines that pass [`max_level`]:
//!
//! ```
//! # fn handle(rules: &[&str], record: &ingesta::Record) {
//! ingesta::info!("loaded {} rules", rules.len());
//! ingesta::warn!("skipping record at offset {}", record.offset());
//! # }
//! ```
//!
//! The host bounds and rate-limits lines per deployment, so log per batch
//! rather than per record.

use std::cell::Cell;
use std::fmt;

/// Severity of a log line, from most to least verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Diagnostics useful while developing.
    Debug,
    /// Normal operational messages.
    Info,
    /// Something unexpected that the handler worked around.
    Warn,
    /// A failure.
    Error,
}

thread_local! {
    static MAX_LEVEL: Cell<Level> = const { Cell::new(Level::Trace) };
}

/// Lines below `level` are dropped before they are formatted. Default:
/// [`Level::Trace`] (everything goes to the host, which filters again).
pub fn set_max_level(level: Level) {
    MAX_LEVEL.set(level);
}

/// The least severe level that is forwarded to the host.
pub fn max_level() -> Level {
    MAX_LEVEL.get()
}

/// Whether a line at `level` would be forwarded.
pub fn enabled(level: Level) -> bool {
    level >= max_level()
}

/// Writes one line at `level`.
pub fn log(level: Level, message: &str) {
    if enabled(level) {
        crate::host::log(level, message);
    }
}

/// Backs the macros: formats only when the level is enabled, and not at all
/// for a plain string literal.
#[doc(hidden)]
pub fn __log_fmt(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    match args.as_str() {
        Some(text) => crate::host::log(level, text),
        None => crate::host::log(level, &args.to_string()),
    }
}

/// Logs a line at [`Level::Trace`], `format!`-style.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::__log_fmt($crate::log::Level::Trace, ::core::format_args!($($arg)+)) };
}

/// Logs a line at [`Level::Debug`], `format!`-style.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::__log_fmt($crate::log::Level::Debug, ::core::format_args!($($arg)+)) };
}

/// Logs a line at [`Level::Info`], `format!`-style.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::__log_fmt($crate::log::Level::Info, ::core::format_args!($($arg)+)) };
}

/// Logs a line at [`Level::Warn`], `format!`-style.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::__log_fmt($crate::log::Level::Warn, ::core::format_args!($($arg)+)) };
}

/// Logs a line at [`Level::Error`], `format!`-style.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::__log_fmt($crate::log::Level::Error, ::core::format_args!($($arg)+)) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::imp::with_host;

    fn logged() -> Vec<(Level, String)> {
        with_host(|host| std::mem::take(&mut host.logs))
    }

    #[test]
    fn macros_format_and_forward() {
        crate::info!("plain");
        crate::warn!("{} of {}", 2, 3);
        crate::error!("boom: {reason}", reason = "x");
        log(Level::Debug, "direct");
        assert_eq!(
            logged(),
            vec![
                (Level::Info, "plain".to_owned()),
                (Level::Warn, "2 of 3".to_owned()),
                (Level::Error, "boom: x".to_owned()),
                (Level::Debug, "direct".to_owned()),
            ]
        );
    }

    #[test]
    fn max_level_filters_before_formatting() {
        struct Explodes;
        impl fmt::Display for Explodes {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("formatted a disabled line");
            }
        }
        set_max_level(Level::Info);
        crate::debug!("{}", Explodes);
        crate::trace!("{}", Explodes);
        crate::info!("kept");
        assert_eq!(logged(), vec![(Level::Info, "kept".to_owned())]);
        assert!(!enabled(Level::Debug));
        assert!(enabled(Level::Error));
    }
}
