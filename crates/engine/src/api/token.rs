//! `POST /v2/auth/token`: Redox's token endpoint (at the root, as Redox serves it). The form
//! and its checks are `crate::app::token`'s; this answers `{access_token, token_type,
//! expires_in}` (RFC 6749, as Redox does not show its own) or Redox's refusal body
//! `{error, error_description, error_uri}`, never cached.

use crate::app::Engine;
use crate::app::token::{self as core, ERROR_URI};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use wharf_serve::metrics::AuthFailure;

/// A granted token (RFC 6749 section 5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds: 300.
    pub expires_in: u64,
}

/// A refused token request, as Redox answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenError {
    /// `invalid_request`, `invalid_client` or `temporarily_unavailable`.
    pub error: &'static str,
    pub error_description: String,
    pub error_uri: &'static str,
}

/// Exchanges a signed client assertion (an OAuth API key's) for a five-minute bearer token,
/// good on the Platform API and for sending data.
#[utoipa::path(operation_id = "token_issue", post, path = "/v2/auth/token", tag = "Authentication", security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=<signed JWT>"),
    responses((status = 200, body = TokenAnswer), (status = 400, body = TokenError), (status = 401, body = TokenError),
        (status = 503, body = TokenError)))]
pub(super) async fn issue(
    State(engine): State<Engine>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut response = match core::issue(&engine, content_type, &body).await {
        Ok(granted) => axum::Json(TokenAnswer {
            access_token: granted.access_token,
            token_type: "Bearer",
            expires_in: granted.expires_in,
        })
        .into_response(),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
            if status != StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(reason = %refusal.description, "token request refused");
            }
            let mut response = (
                status,
                axum::Json(TokenError {
                    error: refusal.error,
                    error_description: refusal.description,
                    error_uri: ERROR_URI,
                }),
            )
                .into_response();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(5));
            } else {
                response
                    .extensions_mut()
                    .insert(AuthFailure("token_request_refused"));
            }
            response
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
