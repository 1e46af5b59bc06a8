//! The limit on failed authentication per client address, against online guessing of
//! verification tokens, client secrets, the `/_wharf` admin token and the metrics token.
//!
//! Every route that checks a secret (destinations, token endpoints, `/_wharf`, and `/metrics`
//! when it has a token) goes through [`layer`]: a client address (an IPv6 one by its /64) that
//! has failed `auth_failure_limit` times within `auth_failure_window` is answered 429 with
//! `Retry-After` (whole seconds until one of its failures leaves the window) before anything
//! of its request is read or any secret compared, counted in `wharf_auth_rate_limited_total`.
//! A failure is a response the handlers marked [`AuthFailure`] (401 and 403 for a missing or
//! wrong credential, a refused token request, the status page's challenge), so successes cost
//! nothing, and a sender that authenticates is never slowed by the limit. `/healthz` and
//! `/readyz` (and `/metrics` without a token) check nothing and are not limited.
//!
//! The counting is `wharf-serve`'s sliding window ([`wharf_serve::limit`]), so memory stays
//! bounded under a flood of addresses. Requests of one address already in flight when it
//! reaches the limit finish and count: at most `auth_failure_limit` plus the requests it has
//! in flight at once get a verdict in any window.

use crate::App;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use http::header::RETRY_AFTER;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf_serve::limit::{SlidingWindow, client_address, retry_after_seconds};
use wharf_serve::metrics::{AuthFailure, RouteLabel};

/// Failed authentications per client address.
pub(crate) type AuthLimiter = SlidingWindow<IpAddr>;

/// Whether requests to `path` check a secret (and so are limited).
fn limited(app: &App, path: &str) -> bool {
    match path {
        "/healthz" | "/readyz" => false,
        "/metrics" => app.metrics_token.is_some(),
        _ => true,
    }
}

/// The middleware: refuses an address over its limit with 429, and counts the failures of the
/// others.
pub(crate) async fn layer(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(limiter) = &app.auth_limiter else {
        return next.run(request).await;
    };
    if !limited(&app, request.uri().path()) {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let who = client_address(peer);
    if let Err(wait) = limiter.blocked(who, Instant::now()) {
        app.metrics.auth_rate_limited.inc();
        tracing::warn!(client = %who, "too many failed authentications; answered 429");
        return too_many(limiter, wait);
    }
    let response = next.run(request).await;
    if response.extensions().get::<AuthFailure>().is_some() {
        limiter.count(who, Instant::now());
    }
    response
}

/// The 429: how long to wait, and why.
fn too_many(limiter: &AuthLimiter, wait: Duration) -> Response {
    let seconds = retry_after_seconds(wait);
    let mut response = crate::receive::error(
        http::StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "too many failed authentications from this address: at most {} per {:?} (auth_failure_limit); retry in {seconds} s with the right credentials",
            limiter.limit(),
            limiter.window()
        ),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
        .extensions_mut()
        .insert(RouteLabel("auth_rate_limited"));
    response
}
