//! The request path of a destination: route by URL path, answer challenges, authenticate,
//! classify, keep, answer.
//!
//! Order matters and is the security of the server:
//! 1. The URL path picks the destination; an unknown path is 404 before anything else.
//! 2. A token endpoint path (`[destinations.auth] token_path`) is answered by the strategy's
//!    token endpoint.
//! 3. Token headers and the auth strategy (all of it but a SigV4 signature, which covers the
//!    body) are checked before the body is read: a wrong token is 403 at once, and a
//!    request with no token may only send a small body (a POST challenge carries its token
//!    inside), so strangers cannot make the server buffer 40 MB.
//! 4. A challenge is answered with the bare challenge; anything else needs a valid token.
//! 5. Notifications are kept through the group-commit writer and answered 200 only after the
//!    commit; queries are relayed to the application and never kept.

use crate::App;
use crate::auth::{self, TokenCheck};
use crate::config::DestinationConfig;
use crate::query;
use crate::strategy::{Guard, Refusal};
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::sync::Arc;
use wharf_protocol::challenge::{self, ChallengeRequest};
use wharf_protocol::envelope::{self, Interaction};
use wharf_protocol::{CONTENT_TYPE_JSON, DuplicateKey};
use wharf_serve::metrics::{AuthFailure, RouteLabel};
use wharf_store::{KeepError, MessageStatus, NewMessage};

/// The most a sender without a token header may send: enough for a POST challenge, far too
/// little to be a burden.
pub const UNAUTHENTICATED_BODY_LIMIT: usize = 64 * 1024;

/// Handles every request that is not one of the server's own routes, labelling the response
/// for the request metrics.
pub(crate) async fn receive(State(app): State<Arc<App>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (label, mut response) = if let Some(guard) = app.token_endpoints.get(parts.uri.path()) {
        (
            "token_endpoint",
            token_endpoint(&app, guard, &parts, body).await,
        )
    } else if app.destinations.contains_key(parts.uri.path()) {
        ("destination", route(&app, &parts, body).await)
    } else {
        (
            "unknown_path",
            error(
                StatusCode::NOT_FOUND,
                "no destination is configured at this path",
            ),
        )
    };
    response.extensions_mut().insert(RouteLabel(label));
    response
}

/// A request to a destination's path.
async fn route(app: &App, parts: &Parts, body: Body) -> Response {
    let Some(destination) = app.destinations.get(parts.uri.path()) else {
        return error(
            StatusCode::NOT_FOUND,
            "no destination is configured at this path",
        );
    };
    let guard = app.guards.get(parts.uri.path()).map(Arc::as_ref);
    match parts.method {
        Method::POST => post(app, destination, guard, parts, body).await,
        Method::GET => challenge_by_get(app, destination, guard, parts).await,
        _ => {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "destinations accept POST (messages and challenges) and GET (challenges)",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            response
        }
    }
}

/// A request to a token endpoint: POST only, body at most [`UNAUTHENTICATED_BODY_LIMIT`].
async fn token_endpoint(app: &App, guard: &Guard, parts: &Parts, body: Body) -> Response {
    if parts.method != Method::POST {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the token endpoint accepts POST only",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let body = match http_body_util::Limited::new(body, UNAUTHENTICATED_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if wharf_serve::is_body_read_timeout(&*e) => return body_too_slow(&*e),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a token request is at most 64 KiB",
            );
        }
    };
    guard.token_endpoint(&app.http, &parts.headers, &body).await
}

/// A GET verification: token in the query or in a header, challenge in the query; the auth
/// strategy, if any, must pass too.
async fn challenge_by_get(
    app: &App,
    destination: &DestinationConfig,
    guard: Option<&Guard>,
    parts: &Parts,
) -> Response {
    let Ok(Query(query)) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri) else {
        return error(StatusCode::BAD_REQUEST, "the query string is not valid");
    };
    if let Some(token) = &destination.verification_token {
        let by_query = query
            .get(challenge::TOKEN_FIELD)
            .map(|t| token.matches(t.as_bytes()));
        let by_header = auth::check(&parts.headers, Some(token), guard.is_some());
        match (by_query, by_header) {
            (Some(false), _) | (_, TokenCheck::Wrong) => {
                return refused(&destination.name, TokenCheck::Wrong);
            }
            (None, TokenCheck::Missing) => {
                return refused(&destination.name, TokenCheck::Missing);
            }
            _ => {}
        }
    }
    if let Some(guard) = guard
        && let Err(refusal) = check_strategy(app, guard, parts, b"").await
    {
        return refusal.respond(&destination.name, guard.config.strategy);
    }
    match query.get(challenge::CHALLENGE_FIELD) {
        Some(c) => answer_challenge(&destination.name, c),
        None => error(
            StatusCode::BAD_REQUEST,
            "a GET to a destination is a verification challenge: add ?challenge=<value>",
        ),
    }
}

/// The whole strategy check for a request whose body is known.
async fn check_strategy(
    app: &App,
    guard: &Guard,
    parts: &Parts,
    body: &[u8],
) -> Result<(), Refusal> {
    guard.check_headers(&app.http, &parts.headers).await?;
    guard
        .check_signature(&parts.method, &parts.uri, &parts.headers, body)
        .await
}

async fn post(
    app: &App,
    destination: &DestinationConfig,
    guard: Option<&Guard>,
    parts: &Parts,
    body: Body,
) -> Response {
    let headers = &parts.headers;
    let by_header = auth::check(
        headers,
        destination.verification_token.as_ref(),
        guard.is_some(),
    );
    if by_header == TokenCheck::Wrong {
        return refused(&destination.name, TokenCheck::Wrong);
    }
    // Everything but a SigV4 signature is checked before the body is read, so a stranger
    // cannot make the server buffer a large body.
    if let Some(guard) = guard
        && let Err(refusal) = guard.check_headers(&app.http, headers).await
    {
        return refusal.respond(&destination.name, guard.config.strategy);
    }
    let authenticated = by_header == TokenCheck::Valid;
    let limit = if authenticated {
        destination.max_body_bytes
    } else {
        UNAUTHENTICATED_BODY_LIMIT
    };
    let too_large = || {
        if authenticated {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the body is larger than this destination's limit of {} bytes",
                    destination.max_body_bytes
                ),
            )
        } else {
            refused(&destination.name, TokenCheck::Missing)
        }
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) if wharf_serve::is_body_read_timeout(&*e) => {
            tracing::warn!(destination = %destination.name, "request body too slow; answered 408 and closed the connection");
            return body_too_slow(&*e);
        }
        Err(e) => {
            tracing::debug!(destination = %destination.name, error = %e, "request body could not be read");
            return error(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            );
        }
    };
    if let Some(guard) = guard
        && let Err(refusal) = guard
            .check_signature(&parts.method, &parts.uri, headers, &body)
            .await
    {
        return refusal.respond(&destination.name, guard.config.strategy);
    }

    if challenge::may_be_challenge(&body)
        && let Some(request) = challenge::parse_post_body(&body)
    {
        return challenge_by_post(destination, by_header, request);
    }
    if !authenticated {
        return refused(&destination.name, TokenCheck::Missing);
    }
    message(app, destination, headers, body).await
}

/// A POST verification: the token is in the body; a token header, if sent, was checked
/// already, and so was the auth strategy.
fn challenge_by_post(
    destination: &DestinationConfig,
    by_header: TokenCheck,
    request: ChallengeRequest,
) -> Response {
    let Some(token) = &destination.verification_token else {
        // No token configured: the auth strategy alone authenticated this request.
        return answer_challenge(&destination.name, &request.challenge);
    };
    let by_body = request.token.as_ref().map(|t| token.matches(t.as_bytes()));
    match (by_body, by_header) {
        (Some(false), _) | (_, TokenCheck::Wrong) => refused(&destination.name, TokenCheck::Wrong),
        (None, TokenCheck::Missing) => refused(&destination.name, TokenCheck::Missing),
        _ => answer_challenge(&destination.name, &request.challenge),
    }
}

fn answer_challenge(destination: &str, value: &str) -> Response {
    if let Err(e) = challenge::validate_challenge(value) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("cannot answer this challenge: {e}"),
        );
    }
    tracing::info!(destination, "verification challenge answered");
    let mut response = (StatusCode::OK, value.to_owned()).into_response();
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The challenge is the sender's text: never let a browser sniff it into HTML.
    h.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An authenticated message: classify it, then keep it or relay the query.
async fn message(
    app: &App,
    destination: &DestinationConfig,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(CONTENT_TYPE_JSON)
        .to_owned();
    let resend = resend_mark(headers);
    let new = match envelope::parse(&body) {
        Ok(env) if env.interaction == Interaction::Query => {
            return query::relay(&app.http, destination, &content_type, body, &env).await;
        }
        Ok(env) => NewMessage {
            destination: destination.name.clone(),
            duplicate_key: resend_key(env.duplicate_key.as_str(), resend),
            kind: env.kind.as_str().to_owned(),
            status: MessageStatus::Received,
            data_model: env.data_model,
            event_type: env.event_type,
            log_id: env.log_id,
            content_type,
            body,
            malformed_reason: None,
        },
        Err(problem) => NewMessage {
            destination: destination.name.clone(),
            duplicate_key: resend_key(DuplicateKey::of_bytes(&body).as_str(), resend),
            kind: "malformed".to_owned(),
            status: MessageStatus::Malformed,
            data_model: None,
            event_type: None,
            log_id: None,
            content_type,
            body,
            malformed_reason: Some(problem.to_string()),
        },
    };
    let malformed = new.malformed_reason.clone();
    let size = new.body.len();
    match app.inbox.keep(new).await {
        Ok(kept) => {
            app.no_space.cleared();
            if let Some(reason) = malformed.filter(|_| !kept.duplicate) {
                tracing::warn!(
                    destination = %destination.name, message_id = %kept.message_id, %reason,
                    "kept a malformed message; it will not be forwarded (see `wharf destination inbox`)"
                );
            } else {
                tracing::debug!(destination = %destination.name, message_id = %kept.message_id, duplicate = kept.duplicate, "message kept");
            }
            let body =
                serde_json::json!({"messageId": kept.message_id, "duplicate": kept.duplicate});
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(KeepError::Busy) => unavailable("the inbox is busy; retry shortly", 1),
        Err(KeepError::Store(e)) if e.is_no_space() => {
            // Said plainly to the sender too: the cause, the database and the bytes needed.
            app.metrics.refused_no_space.inc();
            let why = e.to_string();
            app.no_space.refused(why.clone(), size);
            unavailable(
                &format!("the inbox could not store the message: {why}; retry later"),
                5,
            )
        }
        Err(KeepError::Store(e)) => {
            tracing::error!(destination = %destination.name, error = %e, "could not keep a message; answered 503 so the sender retries");
            unavailable("the inbox could not store the message; retry later", 5)
        }
    }
}

/// 408 for a body that did not arrive within `body_read_timeout`, closing the connection: the
/// rest of a body that slow is not worth reading.
fn body_too_slow(e: &(dyn std::error::Error + Send + Sync)) -> Response {
    let mut response = error(StatusCode::REQUEST_TIMEOUT, &e.to_string());
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn unavailable(message: &str, retry_after_secs: u32) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

fn refused(destination: &str, check: TokenCheck) -> Response {
    let (reason, mut response) = match check {
        TokenCheck::Missing => (
            "missing_token",
            error(
                StatusCode::UNAUTHORIZED,
                "missing verification token: send it in the verification-token header (or as Authorization: Bearer when the destination has no auth strategy)",
            ),
        ),
        _ => (
            "wrong_token",
            error(
                StatusCode::FORBIDDEN,
                "the verification token does not match this destination's",
            ),
        ),
    };
    tracing::warn!(destination, reason, "request refused");
    response.extensions_mut().insert(AuthFailure(reason));
    response
}

/// Which resend of its log a message is (`wharf-resend`, docs/PROTOCOL.md section 4): 0 for
/// a first delivery or a retry, and for a value that is not a positive number.
fn resend_mark(headers: &HeaderMap) -> u64 {
    headers
        .get(wharf_protocol::RESEND_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}

/// The duplicate key of resend `resend` of a message keyed `key`: a resend is kept (and so
/// delivered to the application) once more, while retries of it, which carry the same count,
/// are dropped like any retry.
fn resend_key(key: &str, resend: u64) -> String {
    match resend {
        0 => key.to_owned(),
        n => format!("{key}#resend-{n}"),
    }
}

/// A JSON error body: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}
