//! The handler error type and its mapping to the WIT `handler-error`.

use std::fmt;

use crate::wit;

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the runner should treat a failed batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Transient (a dependency was down, a rate limit): retry the batch with backoff.
    Retryable,
    /// The input can never succeed (malformed event, failed validation): the
    /// record is dead-lettered or the deployment stops, per its failure policy.
    Permanent,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
        })
    }
}

/// Why a handler failed: a class, a human-readable message and, when known,
/// the index of the offending record within the batch.
///
/// The record index lets the runner isolate a poison record without
/// bisecting the batch; records before it are taken to be good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    class: ErrorClass,
    message: String,
    record_index: Option<u32>,
}

impl Error {
    /// A transient failure; the runner retries the batch.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable, message)
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }

    /// An error of the given class.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            record_index: None,
        }
    }

    /// Blames the record at `index` (its position in the batch, as given by
    /// [`Record::index`](crate::Record::index)).
    pub fn at_record(mut self, index: usize) -> Self {
        // Batches never come near u32::MAX records; if one did, an absent
        // index is still correct (the runner bisects instead).
        self.record_index = u32::try_from(index).ok();
        self
    }

    /// Retry or give up.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// Whether the runner will retry the batch.
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }

    /// The human-readable reason.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The index of the failed record in its batch, if known.
    pub fn record_index(&self) -> Option<usize> {
        self.record_index.map(|i| i as usize)
    }

    pub(crate) fn into_wit(self) -> wit::HandlerError {
        wit::HandlerError {
            class: match self.class {
                ErrorClass::Retryable => wit::ErrorClass::Retryable,
                ErrorClass::Permanent => wit::ErrorClass::Permanent,
            },
            message: self.message,
            record_index: self.record_index,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)?;
        if let Some(index) = self.record_index {
            write!(f, " (record {index})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    /// Malformed or mistyped JSON never gets better on retry.
    fn from(err: serde_json::Error) -> Self {
        Error::permanent(format!("invalid JSON: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_set_class_and_message() {
        let e = Error::retryable("db down");
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert!(e.is_retryable());
        assert_eq!(e.message(), "db down");
        assert_eq!(e.record_index(), None);
        assert_eq!(Error::permanent("x").class(), ErrorClass::Permanent);
    }

    #[test]
    fn display_names_class_and_record() {
        assert_eq!(
            Error::retryable("db down").to_string(),
            "retryable: db down"
        );
        assert_eq!(
            Error::permanent("bad price").at_record(7).to_string(),
            "permanent: bad price (record 7)"
        );
    }

    #[test]
    fn maps_to_wit_handler_error() {
        let wit = Error::permanent("bad").at_record(3).into_wit();
        assert_eq!(wit.class, wit::ErrorClass::Permanent);
        assert_eq!(wit.message, "bad");
        assert_eq!(wit.record_index, Some(3));

        let wit = Error::retryable("later").into_wit();
        assert_eq!(wit.class, wit::ErrorClass::Retryable);
        assert_eq!(wit.record_index, None);
    }

    #[test]
    fn huge_record_index_is_dropped_not_truncated() {
        let e = Error::permanent("x").at_record(u32::MAX as usize + 1);
        assert_eq!(e.record_index(), None);
    }

    #[test]
    fn serde_json_errors_are_permanent() {
        let err = serde_json::from_str::<u32>("\"nope\"").unwrap_err();
        let e = Error::from(err);
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.message().starts_with("invalid JSON: invalid type"), "{e}");
    }
}
