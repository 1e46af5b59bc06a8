//! Rate limits on what the engine serves to others: ingestion (`POST /endpoint`), the
//! management API (`/platform/v1/...`) and the dashboard's sign-in form. Each client may make
//! `rate_limit_requests` requests per `rate_limit_window` (Redox's limit, docs/PROTOCOL.md section 6:
//! 10,000 per 5 minutes); beyond that it gets 429 with `Retry-After` (whole seconds until its
//! next request would pass) and an error body in the API's envelope, counted in
//! `wharf_rate_limited_total{kind}`.
//!
//! **Who is a client.** The key a request authenticates with, when it is a valid source or
//! management key: many systems behind one NAT or proxy then keep a budget each. Otherwise the
//! peer address, an IPv6 peer by its /64 (one subscriber usually holds a whole /64, so per
//! address it could take a fresh budget for every request). A key that is not valid counts as
//! its address, or a stranger could make up a new key for every request.
//!
//! **The algorithm** and its bounded memory are `wharf-serve`'s sliding window
//! ([`wharf_serve::limit`]), which the destination's failed-authentication limit uses too:
//! no client ever gets more than the limit into any window, refused requests are not counted,
//! and a flood of distinct addresses is capped at [`wharf_serve::limit::MAX_CLIENTS`] entries.

use crate::app::{Engine, EngineError, find_secret};
use crate::http::bearer;
use axum::extract::{ConnectInfo, Request};

use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use wharf_serve::limit::SlidingWindow;

/// One client, as the limit counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    /// The n-th configured source key.
    SourceKey(usize),
    /// The n-th configured management key.
    ManagementKey(usize),
    /// A peer address (IPv6: its /64).
    Address(IpAddr),
}

impl Client {
    /// A peer address as a client: IPv4 (also when IPv4-mapped) as is, IPv6 by its /64.
    pub fn address(ip: IpAddr) -> Client {
        Client::Address(wharf_serve::limit::client_address(ip))
    }
}

/// The limiter: `wharf-serve`'s sliding window per client.
pub(crate) type RateLimiter = SlidingWindow<Client>;

/// What a refused client is told.
fn message(limiter: &RateLimiter, retry_after: u64) -> String {
    let window = limiter.window().as_secs();
    let window = if window >= 60 && window.is_multiple_of(60) {
        format!("{} minutes", window / 60)
    } else {
        format!("{:?}", limiter.window())
    };
    format!(
        "too many requests: each client may make {} requests per {window}; retry in {retry_after} s",
        limiter.limit()
    )
}

/// Which limited surface a request is for, as the metric's `kind` label; `None` for what is
/// not limited (health, readiness and metrics for monitoring; the dashboard's pages behind a
/// session).
fn kind(path: &str) -> Option<&'static str> {
    if path == "/endpoint" {
        Some("ingestion")
    } else if path == "/platform/v1" || path.starts_with("/platform/v1/") {
        Some("management")
    } else if path == "/dashboard/signin" {
        Some("dashboard_signin")
    } else {
        None
    }
}

/// Who sent `request`: its valid key, else its peer address.
fn client(engine: &Engine, request: &Request) -> Client {
    if let Some(presented) = bearer(request.headers()) {
        let sources = engine.config.sources.iter().map(|s| s.api_key.as_str());
        if let Some(i) = find_secret(presented, sources) {
            return Client::SourceKey(i);
        }
        let managers = engine.config.api_keys.iter().map(String::as_str);
        if let Some(i) = find_secret(presented, managers) {
            return Client::ManagementKey(i);
        }
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    Client::address(peer)
}

/// What the middleware holds: the engine (its keys and metrics) and the limiter.
#[derive(Clone)]
pub(crate) struct Limited {
    pub engine: Engine,
    /// `None` when the limit is turned off.
    pub limiter: Option<std::sync::Arc<RateLimiter>>,
}

impl Limited {
    pub fn new(engine: Engine) -> Limited {
        let limiter = RateLimiter::new(
            engine.config.rate_limit_requests,
            engine.config.rate_limit_window,
        )
        .map(std::sync::Arc::new);
        Limited { engine, limiter }
    }
}

/// The middleware: refuses a limited client's request with 429 before anything reads it.
pub(crate) async fn layer(
    axum::extract::State(Limited { engine, limiter }): axum::extract::State<Limited>,
    request: Request,
    next: Next,
) -> Response {
    let (Some(limiter), Some(kind)) = (&limiter, kind(request.uri().path())) else {
        return next.run(request).await;
    };
    let who = client(&engine, &request);
    let Err(wait) = limiter.check(who, Instant::now()) else {
        return next.run(request).await;
    };
    // Whole seconds, rounded up: a client that waits exactly this long gets through.
    let seconds = wharf_serve::limit::retry_after_seconds(wait);
    engine.metrics.rate_limited(kind);
    tracing::debug!(?who, kind, retry_after = seconds, "rate limited");
    EngineError::TooManyRequests {
        message: message(limiter, seconds),
        retry_after: seconds,
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // The sliding window itself is tested in `wharf_serve::limit`.

    #[test]
    fn ipv6_peers_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::address(a), Client::address(b));
        assert_ne!(Client::address(a), Client::address(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            Client::address(mapped),
            Client::Address("192.0.2.7".parse().unwrap())
        );
    }

    #[test]
    fn zero_turns_the_limit_off_and_kinds_are_by_path() {
        assert!(RateLimiter::new(0, Duration::from_secs(1)).is_none());
        assert_eq!(kind("/endpoint"), Some("ingestion"));
        assert_eq!(kind("/platform/v1/organizations"), Some("management"));
        assert_eq!(kind("/dashboard/signin"), Some("dashboard_signin"));
        for free in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/dashboard/logs",
            "/platform/v10",
        ] {
            assert_eq!(kind(free), None, "{free}");
        }
    }
}
