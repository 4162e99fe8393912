//! The control plane: who may call, what they may change, and how a
//! change travels — API → service → state topic → applier → supervisor →
//! deployment.
//!
//! | module | owns |
//! |---|---|
//! | [`service`] | the rules, free of HTTP: checks of specs against grants, quotas and Kafka; every mutation written to the state topic and audited |
//! | [`state`] | the state in Kafka: compacted topics every runner tails, and writing to them |
//! | [`applier`] | applying the state topics' records, in order, to the module registry and the supervisor |
//! | [`status`] | deployment status as the API reports it, from the supervisor's views and the offsets service |
//! | [`http`] | the axum routes and the OpenAPI document: requests into service calls, [`Error`]s into status codes |
//! | [`ingest`] | `/v1/ingest/<deployment>`: HTTP in and out of a producer deployment |
//!
//! Every object lookup is scoped to the caller's tenant: another tenant's
//! object answers 404, exactly like a missing one, so nothing leaks.

pub mod applier;
pub mod http;
pub mod ingest;
pub mod service;
pub mod state;
pub mod status;

/// Why a control-plane request is refused; each names the object and what
/// to do. (Only [`http`] knows which status code each is.)
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No token, or not one of ours.
    #[error("missing or unknown bearer token: send `Authorization: Bearer <token>`")]
    Unauthenticated,
    /// Outside the caller's grants or maxima.
    #[error("{0}")]
    Forbidden(String),
    /// No such object (or one the caller may not see).
    #[error("{0} not found")]
    NotFound(String),
    /// A request that breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// In conflict with what exists.
    #[error("{0}")]
    Conflict(String),
    /// A body larger than the limit, in bytes.
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// A body not received in full within the limit, in milliseconds.
    #[error(
        "request body was not received within {0} ms (control.body_read_timeout_ms); send it at once"
    )]
    BodyTimeout(u128),
    /// Temporarily out of capacity: retry after a moment.
    #[error("{0}")]
    Busy(String),
    /// Kafka, the runner or the deployment is not available now.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::auth::Refusal> for Error {
    fn from(r: crate::auth::Refusal) -> Self {
        match r {
            crate::auth::Refusal::Unauthenticated => Error::Unauthenticated,
            crate::auth::Refusal::Denied(m) => Error::Forbidden(m),
        }
    }
}

/// What `Retry-After` says on a 429 or 503.
pub const RETRY_AFTER_SECONDS: &str = "1";

impl Error {
    /// A short name of the kind of refusal, for audit lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not-found",
            Error::Invalid(_) => "invalid",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too-large",
            Error::BodyTimeout(_) => "body-timeout",
            Error::Busy(_) => "busy",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}
