//! Prometheus metrics: one registry per server, the HTTP metrics both servers record, and the
//! text exposition served at `/metrics`.
//!
//! Names and labels are kept to small, bounded sets (route templates, status codes, reasons
//! from a fixed list, destination ids an operator created) so the series count cannot be
//! driven up by a client. Values that live in the store (inbox and queue depths) are read
//! when scraped, through the `refresh` hook each server passes to [`Metrics::render`].
//!
//! `/metrics` is open unless the operator sets a `metrics_token`: then [`require_token`]
//! (a middleware for the `/metrics` route) wants it as `Authorization: Bearer`, compared in
//! constant time. Metric names, destination names and counts say a lot about a deployment.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Instant;
use wharf_protocol::VerificationToken;

/// Label pairs of one series.
pub type Labels = Vec<(String, String)>;
/// A counter per label set.
pub type CounterFamily = Family<Labels, Counter>;
/// A gauge per label set.
pub type GaugeFamily = Family<Labels, Gauge>;
/// A histogram per label set.
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The content type of the text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Buckets for group-commit batch sizes: 1, 2, 4 ... 512.
pub fn batch_size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 10))
}

/// Names a response's route for the request metrics when the router has no route template
/// for it (a handler behind a fallback inserts it into the response's extensions).
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

/// Marks a response as an authentication failure, with a reason from a fixed list
/// (`missing_token`, `wrong_token`, ...), counted in `wharf_auth_failures_total{reason}`.
#[derive(Debug, Clone, Copy)]
pub struct AuthFailure(pub &'static str);

/// A server's metrics registry with the HTTP metrics every server records.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: CounterFamily,
    latency: HistogramFamily,
    auth_failures: CounterFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with `wharf_http_requests_total{route,status}`,
    /// `wharf_http_request_duration_seconds{route}` and `wharf_auth_failures_total{reason}`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wharf");
        let requests = CounterFamily::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the response head), by route",
            latency.clone(),
        );
        let auth_failures = CounterFamily::default();
        registry.register(
            "auth_failures",
            "Requests refused for authentication, by reason",
            auth_failures.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            auth_failures,
        }
    }

    /// Registers a labelled counter (`wharf_<name>_total`).
    pub fn counter_family(&mut self, name: &str, help: &str) -> CounterFamily {
        let family = CounterFamily::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// Registers an unlabelled counter (`wharf_<name>_total`).
    pub fn counter(&mut self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        self.registry.register(name, help, counter.clone());
        counter
    }

    /// Registers a labelled gauge (`wharf_<name>`).
    pub fn gauge_family(&mut self, name: &str, help: &str) -> GaugeFamily {
        let family = GaugeFamily::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// Registers an unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        let gauge = Gauge::default();
        self.registry.register(name, help, gauge.clone());
        gauge
    }

    /// Registers an unlabelled histogram.
    pub fn histogram(&mut self, name: &str, help: &str, histogram: Histogram) -> Histogram {
        self.registry.register(name, help, histogram.clone());
        histogram
    }

    /// Registers a labelled latency histogram (seconds, 0.5 ms .. 16 s).
    pub fn latency_family(&mut self, name: &str, help: &str) -> HistogramFamily {
        let family = HistogramFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        self.registry.register(name, help, family.clone());
        family
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// Counts one refused request.
    pub fn record_auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&vec![("reason".into(), reason.to_owned())])
            .inc();
    }

    /// Records one answered request.
    pub fn record_request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("route".into(), route.to_owned()),
                ("status".into(), status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("route".into(), route.to_owned())])
            .observe(seconds);
    }
}

/// Middleware recording every request by route (the router's template, else the
/// [`RouteLabel`] a fallback handler set, else `unmatched`) and status, and every response
/// marked [`AuthFailure`].
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let route = template.unwrap_or_else(|| {
        response
            .extensions()
            .get::<RouteLabel>()
            .map(|l| l.0)
            .unwrap_or("unmatched")
            .to_owned()
    });
    metrics.record_request(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    if let Some(AuthFailure(reason)) = response.extensions().get::<AuthFailure>() {
        metrics.record_auth_failure(reason);
    }
    response
}

/// Middleware for the `/metrics` route: with a token configured, only a request carrying it as
/// `Authorization: Bearer <token>` (compared in constant time) passes; others get 401 with
/// `WWW-Authenticate: Bearer`, marked [`AuthFailure`]`("metrics_token")`. Without a token
/// everything passes. Use with `route_layer(from_fn_with_state(token, require_token))`.
pub async fn require_token(
    State(token): State<Option<Arc<VerificationToken>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    if bearer_matches(request.headers(), &token) {
        return next.run(request).await;
    }
    let mut response = (
        http::StatusCode::UNAUTHORIZED,
        "/metrics needs the metrics token: send Authorization: Bearer <metrics_token>",
    )
        .into_response();
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"metrics\""),
    );
    response
        .extensions_mut()
        .insert(AuthFailure("metrics_token"));
    response
}

/// Whether the request's `Authorization: Bearer` credentials (scheme case-insensitive) are
/// `token`; every `Authorization` header must match.
fn bearer_matches(headers: &http::HeaderMap, token: &VerificationToken) -> bool {
    let mut presented = 0;
    let mut all_match = true;
    for value in headers.get_all(http::header::AUTHORIZATION) {
        let value = value.as_bytes();
        let credentials = match value.split_at_checked(7) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
            _ => return false,
        };
        presented += 1;
        all_match &= token.matches(credentials);
    }
    presented > 0 && all_match
}

/// Answers `/metrics` with the rendered registry.
pub fn respond(text: String) -> Response {
    ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bearer_metrics_token_matches() {
        let token = VerificationToken::new("m".repeat(32)).unwrap();
        let headers = |values: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append(
                    http::header::AUTHORIZATION,
                    http::HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        };
        let right = format!("Bearer {}", "m".repeat(32));
        assert!(bearer_matches(&headers(&[&right]), &token));
        assert!(bearer_matches(
            &headers(&[&right.replace("Bearer", "bearer")]),
            &token
        ));
        assert!(!bearer_matches(&headers(&[]), &token));
        assert!(!bearer_matches(&headers(&["Bearer nope"]), &token));
        assert!(!bearer_matches(&headers(&[&right, "Bearer nope"]), &token));
        let basic = format!("Basic {}", "m".repeat(32));
        assert!(!bearer_matches(&headers(&[&basic]), &token));
    }

    #[test]
    fn requests_render_with_route_and_status() {
        let metrics = Metrics::new();
        metrics.record_request("/healthz", 200, 0.001);
        metrics.record_auth_failure("wrong_token");
        let text = metrics.render();
        assert!(
            text.contains(r#"wharf_http_requests_total{route="/healthz",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("wharf_http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains(r#"wharf_auth_failures_total{reason="wrong_token"} 1"#),
            "{text}"
        );
    }
}
