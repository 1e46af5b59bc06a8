//! The destination server: the HTTPS endpoint a Redox customer runs.
//!
//! It answers Verify and Save challenges, authenticates every request with the destination's
//! verification token, keeps each notification durably before answering 200, relays queries to
//! the application synchronously, and forwards kept messages to the application in arrival
//! order. See `docs/ARCHITECTURE.md` for how the pieces fit.
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`server`]: listening (TCP/TLS), HTTP, graceful shutdown.
//! * `receive`: the request path: routing, challenge, authentication, keep.
//! * [`auth`]: the verification token check.
//! * [`strategy`]: the auth credential strategies (`[destinations.auth]`) and token endpoint.
//! * `query`: relaying synchronous queries.
//! * [`forward`]: feeding the application in order; `alerts`: telling the operator when a
//!   poison message holds it.
//! * `retention`: deleting forwarded messages after `forwarded_retention`.
//! * `metrics`, `page`: `/metrics` and the `/_wharf` status page.
//! * `throttle`: the limit on failed authentication per client address.

mod alerts;
pub mod auth;
pub mod config;
pub mod forward;
mod metrics;
mod page;
mod query;
mod receive;
mod retention;
pub mod server;
pub mod strategy;
mod throttle;

pub use config::{Config, ConfigError, DestinationConfig};
pub use server::{Running, StartError, start};

use std::collections::HashMap;
pub use wharf_delivery::error_chain;

/// What every request handler shares.
pub(crate) struct App {
    pub metrics: metrics::DestinationMetrics,
    /// Forwarder tasks still running (for `/readyz`).
    pub forwarders_running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The status page's password (`admin_token`); the page is off without one.
    pub admin_token: Option<wharf_protocol::VerificationToken>,
    /// The token `/metrics` requires (`metrics_token`); open without one.
    pub metrics_token: Option<std::sync::Arc<wharf_protocol::VerificationToken>>,
    /// Failed authentications per client address (`auth_failure_limit`); `None`: off.
    pub auth_limiter: Option<throttle::AuthLimiter>,
    /// Destinations by their URL path.
    pub destinations: HashMap<String, DestinationConfig>,
    /// Auth strategies by destination path.
    pub guards: HashMap<String, std::sync::Arc<strategy::Guard>>,
    /// The same strategies by token endpoint path.
    pub token_endpoints: HashMap<String, std::sync::Arc<strategy::Guard>>,
    pub inbox: wharf_store::Inbox,
    /// Whether the inbox is refusing writes for lack of space (for `/readyz`).
    pub no_space: NoSpace,
    /// Outbound client for queries (no redirects followed).
    pub http: reqwest::Client,
}

/// Whether the inbox refuses writes for lack of space: set by a keep refused so, cleared by
/// the next keep (or `/readyz`'s probe write) that succeeds. While set, `/readyz` answers 503
/// so a load balancer sends elsewhere.
#[derive(Default)]
pub(crate) struct NoSpace {
    /// Why (the refusal's text), and the bytes the refused message needed.
    refused: std::sync::Mutex<Option<(String, usize)>>,
}

impl NoSpace {
    /// The store refused a write of `needed` bytes for lack of space.
    pub fn refused(&self, why: String, needed: usize) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.is_none() {
            tracing::error!(error = %why, "the inbox refuses writes for lack of space: answering 503 to senders and not ready until a write succeeds");
        }
        *refused = Some((why, needed));
    }

    /// A write succeeded.
    pub fn cleared(&self) {
        if self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
        {
            tracing::info!("the inbox accepts writes again");
        }
    }

    /// The last refusal, while the store refuses writes.
    pub fn current(&self) -> Option<(String, usize)> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
