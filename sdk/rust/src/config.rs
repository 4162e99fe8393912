//! The deployment's configuration map: the only "environment" a handler has.
//!
//! The whole map is fetched from the host once, on first use, and kept for
//! the life of the instance (configuration cannot change under a running
//! instance).
//!
//! ```
//! # fn main() -> ingesta::Result<()> {
//! use ingesta::config;
//!
//! let topic = config::get_or("output_topic", "enriched");
//! let threshold: f64 = config::parse_or("alert_over", 500.0)?;
//! # assert_eq!((topic.as_str(), threshold), ("enriched", 500.0));
//! # Ok(())
//! # }
//! ```

use std::cell::RefCell;
use std::fmt::Display;
use std::str::FromStr;

use crate::error::{Error, Result};

thread_local! {
    static ENTRIES: RefCell<Option<Vec<(String, String)>>> = const { RefCell::new(None) };
}

fn with_entries<R>(f: impl FnOnce(&[(String, String)]) -> R) -> R {
    ENTRIES.with_borrow_mut(|cached| {
        let entries = cached.get_or_insert_with(|| {
            let mut entries = crate::host::config_entries();
            // The host sends them sorted; sorting again is cheap insurance
            // for the binary search below.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries
        });
        f(entries)
    })
}

/// Forgets the cached map so the next lookup asks the host again.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn reset_cache() {
    ENTRIES.set(None);
}

/// The value for `key`, if the deployment sets it.
pub fn get(key: &str) -> Option<String> {
    with_entries(|entries| lookup(entries, key).map(str::to_owned))
}

/// The value for `key`, or `default` if the deployment does not set it.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_owned())
}

/// Parses the value for `key`; `Ok(None)` if the key is not set.
///
/// A value that does not parse is a permanent error naming the key: no
/// retry can fix a deployment's configuration.
pub fn parse<T>(key: &str) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: Display,
{
    with_entries(|entries| {
        lookup(entries, key)
            .map(|raw| {
                raw.parse().map_err(|e| {
                    Error::permanent(format!("config key {key} has invalid value {raw:?}: {e}"))
                })
            })
            .transpose()
    })
}

/// Parses the value for `key`, or returns `default` if the key is not set.
pub fn parse_or<T>(key: &str, default: T) -> Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    Ok(parse(key)?.unwrap_or(default))
}

/// Every key and value, sorted by key.
pub fn entries() -> Vec<(String, String)> {
    with_entries(<[_]>::to_vec)
}

fn lookup<'e>(entries: &'e [(String, String)], key: &str) -> Option<&'e str> {
    entries
        .binary_search_by(|(k, _)| k.as_str().cmp(key))
        .ok()
        .map(|i| entries[i].1.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn reads_values_and_defaults() {
        testing::set_config([("b", "2"), ("a", "1")]);
        assert_eq!(get("a").as_deref(), Some("1"));
        assert_eq!(get("b").as_deref(), Some("2"));
        assert_eq!(get("c"), None);
        assert_eq!(get_or("c", "fallback"), "fallback");
        assert_eq!(
            entries(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn parses_typed_values() {
        testing::set_config([("limit", "500.5"), ("bad", "lots")]);
        assert_eq!(parse::<f64>("limit"), Ok(Some(500.5)));
        assert_eq!(parse::<f64>("missing"), Ok(None));
        assert_eq!(parse_or("missing", 7u32), Ok(7));
        let err = parse::<u32>("bad").unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(
            err.message(),
            "config key bad has invalid value \"lots\": invalid digit found in string"
        );
    }

    #[test]
    fn caches_the_first_answer() {
        testing::set_config([("k", "v1")]);
        assert_eq!(get("k").as_deref(), Some("v1"));
        crate::host::imp::with_host(|host| host.config.clear());
        assert_eq!(get("k").as_deref(), Some("v1"));
    }
}
