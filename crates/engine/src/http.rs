//! The one mapping from [`EngineError`] to HTTP: its status and, when retrying can help, its
//! `Retry-After`; and reading the bearer credentials and the client address of a request. The management API (JSON), the dashboard (HTML) and the rate limiter all
//! answer through it, so an unavailable store is 503 with `Retry-After` everywhere, never 500.

use crate::app::EngineError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

/// The HTTP status of an error.
pub fn status(e: &EngineError) -> StatusCode {
    match e {
        EngineError::BadRequest(_) => StatusCode::BAD_REQUEST,
        EngineError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
        EngineError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        EngineError::NotFound(_) => StatusCode::NOT_FOUND,
        EngineError::Conflict(_) => StatusCode::CONFLICT,
        EngineError::VerificationFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
        EngineError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        EngineError::Busy
        | EngineError::Unavailable
        | EngineError::OutcomeUnknown
        | EngineError::NoSpace(_) => StatusCode::SERVICE_UNAVAILABLE,
        EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Adds what every error answer carries besides its body: `Retry-After` when a retry can
/// help, `WWW-Authenticate` when credentials are missing or wrong.
pub fn decorate(e: &EngineError, response: &mut Response) {
    if let Some(seconds) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if matches!(e, EngineError::Unauthorized(_)) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
}

/// The client's address of a request, as the listener recorded its peer.
pub fn peer_address(request: &axum::extract::Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|axum::extract::ConnectInfo(a)| a.ip())
}

/// The credentials of an `Authorization: Bearer` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.get(..7)
                .filter(|s| s.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim())
        })
}
