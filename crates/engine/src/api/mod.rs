//! The management API, shaped like Redox's Platform API: every body is
//! `{"meta":{"version":"1.0.0"},"payload":...}`; errors carry
//! `{"meta":...,"errors":[{"message":"..."}]}` with a message a person can act on.
//! Requests need `Authorization: Bearer <management key>`, except an auth credential's public
//! JWKS (`/platform/v1/authcredentials/{id}/jwks`).

pub(crate) mod authcredentials;
pub(crate) mod destinations;
mod ingest;
pub(crate) mod logs;
mod organizations;
pub(crate) mod queues;

use crate::config::EngineConfig;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use wharf_serve::metrics::AuthFailure;
use wharf_store::engine::{EngineStore, Organization};

/// The Platform API version this engine speaks.
pub const API_VERSION: &str = "1.0.0";

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct State(Arc<Inner>);

pub(crate) struct Inner {
    pub store: EngineStore,
    pub config: EngineConfig,
    pub organization: Organization,
    /// Wakes the delivery worker when something is queued.
    pub wake: tokio::sync::Notify,
    pub committer: crate::commit::Committer,
    /// Outbound clients per endpoint, pinned to an SSRF-checked address, with their creation
    /// time: reused (keep-alive) for `config.client_ttl` ([`CLIENT_TTL`]), then resolved and
    /// checked again.
    pub clients:
        std::sync::Mutex<std::collections::HashMap<String, (reqwest::Client, std::time::Instant)>>,
    /// Access tokens and keys of auth credentials, for presenting them on requests.
    pub presenter: crate::present::Presenter,
    pub metrics: crate::metrics::EngineMetrics,
    pub alerts: Arc<crate::alerts::Alerts>,
    /// Set by the delivery worker while it runs (for `/readyz`).
    pub worker_running: std::sync::atomic::AtomicBool,
    /// Requests per client on ingestion, the API and sign-in; `None` when turned off.
    pub rate_limiter: Option<crate::rate_limit::RateLimiter>,
}

/// How long a pinned outbound client (and the DNS answer behind it) is reused by default.
pub const CLIENT_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl Inner {
    /// A client for `url`: checked and pinned, reused while fresh.
    pub async fn client_for(&self, url: &reqwest::Url) -> Result<reqwest::Client, String> {
        let key = url.origin().ascii_serialization();
        if let Some((client, made)) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && made.elapsed() < self.config.client_ttl
        {
            return Ok(client.clone());
        }
        let client = self.fresh_client(url).await?;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (client.clone(), std::time::Instant::now()));
        Ok(client)
    }

    /// A new client for `url`: its host resolved now, every address checked, the connection
    /// pinned to the checked one (Verify and Save always uses a fresh one).
    pub async fn fresh_client(&self, url: &reqwest::Url) -> Result<reqwest::Client, String> {
        wharf_delivery::ssrf::pinned_client_with(
            &self.config.resolver,
            url,
            self.config.allow_private_endpoints,
        )
        .await
    }
}

impl State {
    pub fn new(store: EngineStore, config: EngineConfig, organization: Organization) -> Self {
        let metrics = crate::metrics::EngineMetrics::new();
        let alerts = Arc::new(crate::alerts::Alerts::new(
            config.alerts.clone(),
            organization.name.clone(),
        ));
        let rate_limiter = crate::rate_limit::RateLimiter::new(
            config.rate_limit_requests,
            config.rate_limit_window,
        );
        State(Arc::new(Inner {
            rate_limiter,
            store: store.clone(),
            config,
            organization,
            wake: tokio::sync::Notify::new(),
            committer: crate::commit::Committer::start(store.clone(), metrics.batch_sizes.clone()),
            clients: Default::default(),
            presenter: Default::default(),
            metrics,
            alerts,
            worker_running: Default::default(),
        }))
    }

    /// Runs a store operation off the async threads.
    pub(crate) async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EngineStore) -> Result<T, wharf_store::StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || f(&inner.store))
            .await
            .map_err(|e| ApiError::internal(format!("store task failed: {e}")))?
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

impl std::ops::Deref for State {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub(crate) fn router(state: State) -> Router {
    let management = Router::new()
        .merge(organizations::routes())
        .merge(destinations::routes())
        .merge(logs::routes())
        .merge(queues::routes())
        .merge(authcredentials::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .merge(management)
        .merge(ingest::routes())
        // Public keys only: a destination fetches them without a management key.
        .merge(authcredentials::public_routes())
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(readyz))
        .route("/metrics", axum::routing::get(metrics))
        // The operators' web pages: their own sign-in, sessions, CSRF and CSP.
        .merge(crate::dashboard::router(state.clone()))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API route") })
        // Messages up to 40 MiB must be accepted (PROTOCOL.md section 4).
        .layer(axum::extract::DefaultBodyLimit::max(
            wharf_protocol::MAX_BODY_BYTES,
        ))
        // Inside the metrics layer, so refused requests are counted as 429s too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::rate_limit::layer,
        ))
        .layer(middleware::from_fn_with_state(
            state.metrics.registry.clone(),
            wharf_serve::metrics::record,
        ))
        .layer(middleware::from_fn(wharf_serve::request_id::layer))
        .with_state(state)
}

/// Ready when the store answers a write transaction and the delivery worker runs; otherwise
/// 503 saying which is not.
async fn readyz(axum::extract::State(state): axum::extract::State<State>) -> Response {
    if !state
        .worker_running
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the delivery worker is not running",
        )
            .into_response();
    }
    match state.db(|s| s.check_writable()).await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the store is not writable").into_response(),
    }
}

/// `/metrics`: Prometheus text, queue numbers read now.
async fn metrics(axum::extract::State(state): axum::extract::State<State>) -> Response {
    let inner = state.0.clone();
    match tokio::task::spawn_blocking(move || inner.metrics.render(&inner.store)).await {
        Ok(Ok(text)) => wharf_serve::metrics::respond(text),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "the store cannot be read").into_response(),
    }
}

/// Refuses requests without a valid management key. Keys are compared as SHA-256 digests in
/// constant time, against every configured key.
async fn require_key(
    axum::extract::State(state): axum::extract::State<State>,
    request: Request,
    next: Next,
) -> Response {
    let Some(presented) = bearer(request.headers()) else {
        let mut response =
            unauthorized("missing management key: send Authorization: Bearer <api key>");
        response
            .extensions_mut()
            .insert(AuthFailure("missing_api_key"));
        return response;
    };
    let valid = find_secret(presented, state.config.api_keys.iter().map(String::as_str)).is_some();
    if !valid {
        tracing::warn!(reason = "wrong_api_key", "management request refused");
        let mut response = unauthorized("the management key is not valid");
        response
            .extensions_mut()
            .insert(AuthFailure("wrong_api_key"));
        return response;
    }
    next.run(request).await
}

pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// A successful answer: the payload in Redox's envelope.
pub(crate) fn ok(status: StatusCode, payload: Value) -> Response {
    (
        status,
        axum::Json(json!({"meta": {"version": API_VERSION}, "payload": payload})),
    )
        .into_response()
}

/// An error answer with a message a person can act on.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message a person reads (the dashboard shows it).
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn internal(detail: String) -> Self {
        tracing::error!(error = %detail, "management API failure");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the engine could not complete the request; see its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({
                "meta": {"version": API_VERSION},
                "errors": [{"message": self.message}],
            })),
        )
            .into_response()
    }
}

/// The request's payload object: `{"payload": {...}}`, or a bare object. Empty bodies are `{}`.
pub(crate) fn payload(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    match object.remove("payload") {
        Some(Value::Object(payload)) => Ok(payload),
        Some(_) => Err(ApiError::bad_request("`payload` must be an object")),
        None => {
            object.remove("meta");
            Ok(object)
        }
    }
}

/// A field that may be absent (leave as is), `null` (clear) or a string.
pub(crate) fn string_field(
    fields: &Map<String, Value>,
    key: &str,
) -> Result<Option<Option<String>>, ApiError> {
    match fields.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(ApiError::bad_request(format!(
            "`{key}` must be a string or null"
        ))),
    }
}

/// Refuses fields the resource does not have, so a typo is an error rather than ignored.
pub(crate) fn only_fields(fields: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "unknown field `{unknown}`; expected one of: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// RFC 3339 text of a millisecond timestamp, as JSON.
pub(crate) fn rfc3339(millis: i64) -> Value {
    Value::String(rfc3339_text(millis))
}

/// RFC 3339 text of a millisecond timestamp.
pub(crate) use wharf_store::rfc3339 as rfc3339_text;

/// The context that seals a destination's verification token (record id and field, so a
/// sealed token copied into another record does not open).
pub(crate) fn token_context(id: &str) -> String {
    format!("destination/{id}/verificationToken")
}

/// Opens a destination's sealed verification token.
pub(crate) fn open_token(
    state: &State,
    record: &wharf_store::engine::DestinationRecord,
    sealed: &[u8],
) -> Result<String, ApiError> {
    let plain = state
        .config
        .master_key
        .open(&token_context(&record.id), sealed)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    String::from_utf8(plain).map_err(|_| ApiError::internal("a stored token is not UTF-8".into()))
}

/// Compares a presented secret with each expected one in constant time (as SHA-256 digests,
/// so lengths do not leak, and always against all of them); returns the index of the match.
pub(crate) fn find_secret<'a>(
    presented: &str,
    expected: impl Iterator<Item = &'a str>,
) -> Option<usize> {
    let presented = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for (i, key) in expected.enumerate() {
        if bool::from(Sha256::digest(key.as_bytes()).ct_eq(&presented)) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// The credentials of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|s| s.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim())
        })
}
