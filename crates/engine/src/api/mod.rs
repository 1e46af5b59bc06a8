//! The management API, Redox's Platform API as its reference documents it (`/platform/v1/...`:
//! organizations, environments, destinations, auth credentials, logs), Wharf's own queue
//! routes, and ingestion (`POST /endpoint`).
//!
//! Every answer is `{"meta":{"version":"1.0.0"},"payload":{...}}` with the payload keyed as
//! Redox keys it (`payload.destinations[]`, `payload.destination`, ...); errors carry
//! `{"meta":...,"errors":[{"message":"..."}]}` with a message a person can act on, mapped from
//! the core's [`EngineError`] by `crate::http`. Requests need `Authorization: Bearer
//! <management key>`, except an auth credential's public JWKS, ingestion (a source key) and
//! the OpenAPI document (`/platform/v1/openapi.json`), which is generated from the handlers'
//! own types ([`models`]) and routes, so it describes exactly what is served.
//!
//! Handlers only translate: they parse the request into the core's typed values (strings into
//! enums here, at the edge), call `crate::app`, and shape the answer.

mod alerts;
mod apikeys;
mod audit;
mod authcredentials;
mod destinations;
mod ingest;
mod logs;
pub mod models;
mod organizations;
mod queues;
mod sources;
mod subscriptions;
mod token;

use crate::app::audit::Access;
use crate::app::{Engine, EngineError, find_secret};
pub(crate) use crate::http::bearer;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use models::{Envelope, ErrorBody, ErrorItem, Meta};
use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wharf_serve::metrics::AuthFailure;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/platform/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Wharf Platform API",
        description = "Redox's Platform API (destinations, environments, auth credentials, logs) as Wharf's engine serves it, with Wharf's queue routes and ingestion. Fields Wharf adds to Redox's shapes are marked \"Wharf\".",
    ),
    modifiers(&Security),
    security(("managementKey" = [])),
)]
struct ApiDoc;

/// The management key as a bearer token.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("managementKey", bearer());
        components.add_security_scheme("sourceKey", bearer());
    }
}

/// The routes behind the management key, described in the OpenAPI document.
fn management() -> OpenApiRouter<Engine> {
    OpenApiRouter::new()
        .routes(routes!(organizations::list))
        .routes(routes!(organizations::environments))
        .routes(routes!(destinations::list, destinations::create))
        .routes(routes!(
            destinations::read,
            destinations::update,
            destinations::remove
        ))
        .routes(routes!(destinations::verify))
        .routes(routes!(authcredentials::strategies))
        .routes(routes!(authcredentials::create))
        .routes(routes!(authcredentials::list))
        .routes(routes!(
            authcredentials::read,
            authcredentials::update,
            authcredentials::remove
        ))
        .routes(routes!(logs::list))
        .routes(routes!(logs::read))
        .routes(routes!(logs::stop))
        .routes(routes!(logs::resend))
        .routes(routes!(logs::search_payloads))
        .routes(routes!(logs::search_metadata))
        .routes(routes!(logs::resend_range))
        .routes(routes!(alerts::list, alerts::create))
        .routes(routes!(alerts::read, alerts::update, alerts::remove))
        .routes(routes!(alerts::list_links, alerts::create_link))
        .routes(routes!(
            alerts::read_link,
            alerts::update_link,
            alerts::remove_link
        ))
        .routes(routes!(queues::read))
        .routes(routes!(queues::pause))
        .routes(routes!(queues::resume))
        .routes(routes!(audit::export))
        .routes(routes!(apikeys::list, apikeys::create))
        .routes(routes!(apikeys::read, apikeys::update, apikeys::remove))
        .routes(routes!(sources::list, sources::create))
        .routes(routes!(sources::read, sources::update, sources::remove))
        .routes(routes!(subscriptions::list, subscriptions::create))
        .routes(routes!(
            subscriptions::read,
            subscriptions::update,
            subscriptions::remove
        ))
        .routes(routes!(subscriptions::filters, subscriptions::save_filter))
        .routes(routes!(subscriptions::remove_filter))
}

/// The routes anyone may call (ingestion checks its own source key), also described.
fn public() -> OpenApiRouter<Engine> {
    OpenApiRouter::new()
        .routes(routes!(ingest::ingest))
        .routes(routes!(authcredentials::jwks))
        .routes(routes!(token::issue))
}

/// The whole API as a router (with the dashboard and the health routes) and its OpenAPI
/// document.
pub(crate) fn router(engine: Engine) -> Router {
    let (management, management_doc) = management()
        .route_layer(middleware::from_fn_with_state(engine.clone(), require_key))
        .split_for_parts();
    let (public, public_doc) = public().split_for_parts();
    let document = std::sync::Arc::new(document(management_doc, public_doc));
    Router::new()
        .merge(management)
        .merge(public)
        .route(
            OPENAPI_PATH,
            axum::routing::get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(readyz))
        .route(
            "/metrics",
            axum::routing::get(metrics).route_layer(middleware::from_fn_with_state(
                engine.config.metrics_token.clone(),
                wharf_serve::metrics::require_token,
            )),
        )
        // The operators' web pages: their own sign-in, sessions, CSRF and CSP.
        .merge(crate::dashboard::router(engine.clone()))
        .fallback(unknown_route)
        // Messages up to 40 MiB must be accepted (docs/PROTOCOL.md section 4).
        .layer(axum::extract::DefaultBodyLimit::max(
            wharf_protocol::MAX_BODY_BYTES,
        ))
        // Inside the metrics layer, so refused requests are counted as 429s too.
        .layer(middleware::from_fn_with_state(
            crate::rate_limit::Limited::new(engine.clone()),
            crate::rate_limit::layer,
        ))
        .layer(middleware::from_fn_with_state(
            engine.metrics.registry.clone(),
            wharf_serve::metrics::record,
        ))
        .layer(middleware::from_fn(wharf_serve::request_id::layer))
        .with_state(engine)
}

/// Any route the engine does not have: a JSON 404 in the API's envelope, except that a
/// browser opening the engine's bare address (`GET /`, asking for HTML) lands on the dashboard,
/// where a person who typed the address wants to be. API clients (`Accept: application/json`,
/// `*/*` or none) keep the JSON error.
async fn unknown_route(request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if request.method() == axum::http::Method::GET && request.uri().path() == "/" && wants_html {
        return axum::response::Redirect::to("/dashboard").into_response();
    }
    EngineError::not_found("no such API route").into_response()
}

/// The OpenAPI document as served (for tests and the CLI).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, management_doc) = management().split_for_parts();
    let (_, public_doc) = public().split_for_parts();
    document(management_doc, public_doc)
}

/// The whole document: the routes' own, and the answers every route may give besides its
/// own (401 without a valid key, 503 while the store is unavailable, 429 beyond the rate limit).
fn document(
    management: utoipa::openapi::OpenApi,
    public: utoipa::openapi::OpenApi,
) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let mut document = ApiDoc::openapi();
    document.merge(management);
    document.merge(public);
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            // `security(())`: anyone may call it (a credential's JWKS).
            let open = operation.security.as_ref().is_some_and(|s| {
                s.iter()
                    .all(|r| *r == utoipa::openapi::security::SecurityRequirement::default())
            });
            let responses = &mut operation.responses.responses;
            for (code, description) in [
                ("401", "missing or wrong key (`WWW-Authenticate: Bearer`)"),
                (
                    "429",
                    "too many requests from this client; retry after `Retry-After` seconds",
                ),
                (
                    "503",
                    "the store is unavailable (or, for ingestion, the engine is busy): retry after `Retry-After` seconds",
                ),
            ] {
                if open && code == "401" {
                    continue;
                }
                responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error(description).into());
            }
        }
    }
    document
}

/// Ready when the store answers a write transaction (and, after a refusal for lack of space,
/// has room again) and the delivery worker runs; otherwise 503 saying which is not.
async fn readyz(axum::extract::State(engine): axum::extract::State<Engine>) -> Response {
    if !engine
        .worker_running
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "the delivery worker is not running",
        )
            .into_response();
    }
    let no_space = engine.store_health.no_space();
    match engine.db(|s| s.check_writable()).await {
        // While the store refuses writes for lack of space, ready again only once a write
        // transaction goes through (PostgreSQL: an insert, rolled back) and, on SQLite, whose
        // empty transaction needs no room, its filesystem has some again.
        Ok(()) if no_space.is_some() && !engine.has_room() => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("the store refuses writes: {}", no_space.unwrap_or_default()),
        )
            .into_response(),
        Ok(()) => {
            engine.store_health.writable();
            (StatusCode::OK, "ready").into_response()
        }
        Err(crate::app::EngineError::NoSpace(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("the store refuses writes: {why}"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "the store is not writable",
        )
            .into_response(),
    }
}

/// `/metrics`: Prometheus text, queue numbers read now.
async fn metrics(axum::extract::State(engine): axum::extract::State<Engine>) -> Response {
    let inner = engine.clone();
    match tokio::task::spawn_blocking(move || inner.metrics.render(&inner.store)).await {
        Ok(Ok(text)) => wharf_serve::metrics::respond(text),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "the store cannot be read",
        )
            .into_response(),
    }
}

/// Refuses requests without a valid management key. Keys are compared as SHA-256 digests in
/// constant time, against every configured key.
async fn require_key(
    axum::extract::State(engine): axum::extract::State<Engine>,
    request: Request,
    next: Next,
) -> Response {
    let refused = |reason: &'static str, message: &str| {
        let mut response = EngineError::Unauthorized(message.to_owned()).into_response();
        response.extensions_mut().insert(AuthFailure(reason));
        response
    };
    let Some(presented) = bearer(request.headers()) else {
        return refused(
            "missing_api_key",
            "missing management key: send Authorization: Bearer <api key>",
        );
    };
    // An access token from `/v2/auth/token` (an OAuth API key's): Wharf has no user-level
    // keys, so it authorizes the Platform API as a management key does.
    if crate::app::token::is_token(presented) {
        return match crate::app::token::check(&engine, presented) {
            Ok(holder) => {
                let access =
                    Access::oauth_client(&holder.client_id, crate::http::peer_address(&request));
                let mut request = request;
                request.extensions_mut().insert(access);
                next.run(request).await
            }
            Err(e) => {
                tracing::warn!(reason = "wrong_access_token", "management request refused");
                let mut response = e.into_response();
                response
                    .extensions_mut()
                    .insert(AuthFailure("wrong_access_token"));
                response
            }
        };
    }
    let Some(index) = find_secret(presented, engine.config.api_keys.iter().map(String::as_str))
    else {
        tracing::warn!(reason = "wrong_api_key", "management request refused");
        return refused("wrong_api_key", "the management key is not valid");
    };
    // Who is calling, for the audit log: the key's name and the client's address.
    let access = Access::api_key(&engine, index, crate::http::peer_address(&request));
    let mut request = request;
    request.extensions_mut().insert(access);
    next.run(request).await
}

/// A successful answer: the payload in Redox's envelope, 200.
pub(crate) fn ok<T>(payload: T) -> axum::Json<Envelope<T>> {
    axum::Json(Envelope {
        meta: Meta::new(),
        payload,
    })
}

impl IntoResponse for EngineError {
    fn into_response(self) -> Response {
        let status = crate::http::status(&self);
        let mut response = (
            status,
            axum::Json(ErrorBody {
                meta: Meta::new(),
                errors: vec![ErrorItem {
                    message: self.to_string(),
                }],
            }),
        )
            .into_response();
        crate::http::decorate(&self, &mut response);
        response
    }
}

/// A JSON request body in Redox's shape: the object itself, or wrapped as
/// `{"payload": {...}}` (with an optional `meta`). An empty body is `{}`. Unknown fields and
/// wrong types are a 400 naming the field.
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = EngineError;

    async fn from_request(request: Request, state: &S) -> Result<Self, EngineError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| EngineError::bad_request(format!("the body could not be read: {e}")))?;
        parse_body(&bytes).map(Body)
    }
}

/// Parses a Redox-shaped request body into `T`.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, EngineError> {
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| EngineError::bad_request(format!("the body is not valid JSON: {e}")))?
    };
    let Value::Object(mut object) = value else {
        return Err(EngineError::bad_request("the body must be a JSON object"));
    };
    let inner = match object.remove("payload") {
        Some(Value::Object(payload)) if object.keys().all(|k| k == "meta") => payload,
        Some(Value::Object(_)) => {
            return Err(EngineError::bad_request(
                "a body with `payload` may carry only `meta` beside it",
            ));
        }
        Some(_) => return Err(EngineError::bad_request("`payload` must be an object")),
        None => object,
    };
    serde_json::from_value(Value::Object(inner))
        .map_err(|e| EngineError::bad_request(format!("the body does not fit: {e}")))
}

/// A path parameter that must name this organization.
pub(crate) fn check_organization(engine: &Engine, org_id: &str) -> Result<(), EngineError> {
    if org_id == engine.organization.id {
        Ok(())
    } else {
        Err(EngineError::not_found(format!("organization {org_id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_documents_the_answers_any_route_may_give() {
        let document = serde_json::to_value(openapi_document()).unwrap();
        let paths = &document["paths"];
        let list = &paths["/platform/v1/environments/{environmentId}/destinations"]["get"];
        for code in ["200", "401", "429", "503"] {
            assert!(list["responses"][code].is_object(), "{code}: {list}");
        }
        let jwks = &paths["/platform/v1/authcredentials/{id}/jwks"]["get"];
        assert!(jwks["responses"]["503"].is_object(), "{jwks}");
        assert!(
            jwks["responses"]["401"].is_null(),
            "the JWKS needs no key: {jwks}"
        );
    }
}
