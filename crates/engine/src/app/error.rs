//! [`EngineError`]: why a use case could not be done, in words a person can act on;
//! [`SendError`]: why the engine could not send to a destination (or get what sending needs),
//! which is recorded on the attempt rather than answered; and [`StoreHealth`], which turns the
//! store's failures into errors and logs them once per state change instead of once per
//! request.
//!
//! The one mapping of these errors to HTTP statuses lives in `crate::http`, shared by the API
//! and the dashboard.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wharf_store::{StoreError, StoreErrorKind};

/// Why a use case failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The request is wrong; the message says what to change.
    #[error("{0}")]
    BadRequest(String),
    /// Missing credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, or none needed, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The request's body is larger than the engine takes (40 MiB).
    #[error("{0}")]
    TooLarge(String),
    /// `{what} not found`.
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts the current state (a taken endpoint, a log that is not pending).
    #[error("{0}")]
    Conflict(String),
    /// Verify and Save sent its challenge and the endpoint did not pass.
    #[error("Verification failed: {0}")]
    VerificationFailed(String),
    /// Too many requests from one client; retry after this many seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// The engine's write queue is full: nothing was queued; retry shortly.
    #[error("the engine is busy, so nothing was queued; retry shortly")]
    Busy,
    /// The store cannot be reached or written now (PostgreSQL down, SQLite locked past its
    /// timeout, disk full): nothing was done; retry later.
    #[error(
        "the engine's store is unavailable right now, so nothing was queued or changed; keep the request and send it again later"
    )]
    Unavailable,
    /// The store refused the write for lack of space: nothing was done; the text names the
    /// database and the space left. Retry later (503), like [`EngineError::Unavailable`].
    #[error(
        "the engine's store refused the write, so nothing was queued or changed: {0}; keep the request and send it again later"
    )]
    NoSpace(String),
    /// A write was sent to the store and the connection broke before its answer: it may or
    /// may not have been committed.
    #[error(
        "the engine lost its store connection while committing, so the message may or may not have been queued; sending it again may deliver it twice"
    )]
    OutcomeUnknown,
    /// A bug or broken data: the details are in the engine's log, not in the answer.
    #[error("the engine could not complete the request; see its log")]
    Internal(String),
}

impl EngineError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        EngineError::BadRequest(message.into())
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        EngineError::NotFound(what.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        EngineError::Conflict(message.into())
    }

    /// An internal failure, logged here with its detail (the answer only says to see the log).
    pub fn internal(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        tracing::error!(error = %detail, "engine failure");
        EngineError::Internal(detail)
    }

    /// Seconds a client should wait before retrying, when retrying can help.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            EngineError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            EngineError::Busy => Some(1),
            EngineError::Unavailable | EngineError::OutcomeUnknown | EngineError::NoSpace(_) => {
                Some(5)
            }
            _ => None,
        }
    }
}

/// Why the engine could not send to a destination, or fetch what sending needs (a credential, an
/// access token, a key set). Never mapped to an HTTP status of its own: the delivery worker
/// records it as the attempt's error, a query answers it in `Meta.Errors`, and Verify and Save
/// says it as [`EngineError::VerificationFailed`]. Each says what failed and what to change.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the destination is not verified: run Verify and Save")]
    NotVerified,
    #[error("the destination has no endpoint: give it one and run Verify and Save")]
    NoEndpoint,
    #[error("the destination has no verification token: give it one and run Verify and Save")]
    NoVerificationToken,
    /// The sealed token does not open under this engine's master key.
    #[error(
        "the verification token cannot be opened: start the engine with the master_key it was sealed with, or set the destination's token again"
    )]
    SealedToken,
    /// A URL the engine was given (an endpoint, a token endpoint, a JWKS URL) does not parse.
    #[error("{what} {url:?} is not a URL: {reason}; correct it")]
    NotUrl {
        what: &'static str,
        url: String,
        reason: String,
    },
    /// The store did not answer; the store's own error is in the engine's log.
    #[error("the destination record could not be read; the attempt is made again later")]
    RecordUnreadable,
    #[error("the destination was deleted")]
    Deleted,
    #[error("the auth credential {0} could not be read; the attempt is made again later")]
    CredentialUnreadable(String),
    #[error(
        "the linked auth credential {0} no longer exists: link another one to the destination, or none"
    )]
    CredentialGone(String),
    /// The address may not be called (SSRF rules), or no client could be made for it.
    #[error(transparent)]
    Refused(#[from] wharf_delivery::ssrf::Refused),
    #[error("the auth credential's key cannot be used: {0}; give the credential a valid key")]
    Key(wharf_auth::keys::KeyError),
    #[error("the auth credential has no private key: give it one")]
    NoKey,
    #[error(transparent)]
    Sign(#[from] wharf_auth::sigv4::SignError),
    /// The credential's fields cannot make a token request (the message names the field), or
    /// the token endpoint's answer has no token.
    #[error(transparent)]
    Credential(#[from] wharf_auth::client::ClientError),
    /// A token-based strategy's token endpoint could not be reached.
    #[error("could not reach the token endpoint {url}: {source}")]
    TokenEndpointRefused {
        url: String,
        source: wharf_delivery::ssrf::Refused,
    },
    /// The token endpoint gave no usable answer; `reason` says which part failed.
    #[error("could not get an access token from {url}: {reason}")]
    TokenEndpointFailed { url: String, reason: String },
    /// The token endpoint answered with an error status (an OAuth error body says why).
    #[error(
        "could not get an access token: the token endpoint {url} answered HTTP {status}: {excerpt}"
    )]
    TokenEndpointStatus {
        url: String,
        status: u16,
        excerpt: String,
    },
    /// The token (or impersonation) endpoint's answer is not the token response expected.
    #[error("the {endpoint} {url}: {source}")]
    TokenAnswer {
        endpoint: &'static str,
        url: String,
        source: wharf_auth::client::ClientError,
    },
    /// Asked for an access token of a strategy that has none (a bug in the caller).
    #[error("the {0} strategy fetches no access token")]
    NoAccessToken(&'static str),
    /// Verify and Save's challenge was not passed.
    #[error("{0}")]
    Verify(wharf_delivery::VerifyFailure),
    /// A JWKS (an OAuth API key's key set) could not be fetched.
    #[error(transparent)]
    Jwks(#[from] wharf_delivery::client::JwksFetchError),
}

/// How often a continuing store outage is summed up in the log.
const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// The store's health as the engine last saw it: one ERROR line when it starts failing, a
/// count every [`SUMMARY_EVERY`] while it keeps failing, and one INFO line when it recovers.
/// Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct StoreHealth(Arc<Mutex<Health>>);

#[derive(Default)]
struct Health {
    /// Since when, and how many failures since the last line, while failing.
    failing: Option<(Instant, Instant, u64)>,
    /// The last refusal for lack of space, until `/readyz` finds the store writable again.
    no_space: Option<String>,
    /// Refusals for lack of space (`wharf_store_refused_no_space_total`).
    refused_no_space: prometheus_client::metrics::counter::Counter,
    /// The database as refusals name it, and SQLite's data directory (for the space left).
    database: Option<(String, Option<std::path::PathBuf>)>,
}

impl StoreHealth {
    /// Health that names `database` in refusals for lack of space and counts them in
    /// `refused_no_space`.
    pub fn new(
        database: &wharf_store::Database,
        refused_no_space: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        let dir = match database {
            wharf_store::Database::Sqlite(dir) => Some(dir.clone()),
            wharf_store::Database::Postgres(_) => None,
        };
        StoreHealth(Arc::new(Mutex::new(Health {
            refused_no_space,
            database: Some((database.describe(), dir)),
            ..Health::default()
        })))
    }

    /// The last refusal for lack of space, while the store has not been found writable since
    /// (`/readyz` answers 503 meanwhile).
    pub fn no_space(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .no_space
            .clone()
    }

    /// The store took a write again (`/readyz`'s check).
    pub fn writable(&self) {
        if self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .no_space
            .take()
            .is_some()
        {
            tracing::info!("the engine's store has room again");
        }
    }

    /// Records a successful store operation.
    pub fn succeeded(&self) {
        let mut health = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((since, _, _)) = health.failing.take() {
            tracing::info!(
                outage_seconds = since.elapsed().as_secs_f64(),
                "the engine's store answers again"
            );
        }
    }

    /// Records a failed store operation and returns the error to answer with. Failures that
    /// are not the store being unavailable (bugs, broken data) are logged every time.
    pub fn failed(&self, error: StoreError) -> EngineError {
        let mut health = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let error = match &health.database {
            Some((name, dir)) => error.no_space_in(name.clone(), dir.as_deref(), None),
            None => error,
        };
        let engine_error = match error.kind() {
            _ if error.is_no_space() => {
                health.refused_no_space.inc();
                health.no_space = Some(error.to_string());
                EngineError::NoSpace(error.to_string())
            }
            StoreErrorKind::Unavailable => EngineError::Unavailable,
            StoreErrorKind::OutcomeUnknown => EngineError::OutcomeUnknown,
            StoreErrorKind::Other => return EngineError::internal(error.to_string()),
        };
        let now = Instant::now();
        match &mut health.failing {
            None => {
                tracing::error!(error = %error, "the engine's store is unavailable; answering 503 until it is back");
                health.failing = Some((now, now, 0));
            }
            Some((since, last_line, count)) => {
                *count += 1;
                if now.duration_since(*last_line) >= SUMMARY_EVERY {
                    tracing::error!(
                        error = %error,
                        failures = *count,
                        outage_seconds = now.duration_since(*since).as_secs_f64(),
                        "the engine's store is still unavailable"
                    );
                    *last_line = now;
                    *count = 0;
                }
            }
        }
        engine_error
    }
}

#[cfg(test)]
mod tests {
    use super::SendError;

    /// What an operator reads on a failed attempt: each reason the engine finds before sending
    /// says what to change, not only what is wrong.
    #[test]
    fn reasons_found_before_sending_say_what_to_do() {
        let cases = [
            (SendError::NotVerified, "run Verify and Save"),
            (SendError::NoEndpoint, "give it one and run Verify and Save"),
            (
                SendError::NoVerificationToken,
                "give it one and run Verify and Save",
            ),
            (SendError::SealedToken, "master_key it was sealed with"),
            (
                SendError::NotUrl {
                    what: "the endpoint",
                    url: "dest example".into(),
                    reason: "relative URL without a base".into(),
                },
                "\"dest example\" is not a URL: relative URL without a base; correct it",
            ),
            (SendError::CredentialGone("c1".into()), "link another one"),
            (SendError::NoKey, "give it one"),
            (
                SendError::TokenEndpointStatus {
                    url: "https://auth.example/token".into(),
                    status: 401,
                    excerpt: "{\"error\":\"invalid_client\"}".into(),
                },
                "the token endpoint https://auth.example/token answered HTTP 401: {\"error\":\"invalid_client\"}",
            ),
        ];
        for (error, says) in cases {
            let text = error.to_string();
            assert!(text.contains(says), "{text:?} does not say {says:?}");
        }
    }
}
