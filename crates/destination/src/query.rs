//! Synchronous queries (docs/PROTOCOL.md section 6): relayed to the application's `query_url`, whose
//! answer goes back in the same HTTP response, within `query_timeout`.
//!
//! Queries are never kept or forwarded: they are questions, not events. When the application
//! cannot answer, the requester gets an error status and a Redox-shaped `Meta.Errors` body, so
//! whatever reads Redox's format finds the reason where it expects it.

use crate::config::DestinationConfig;
use crate::error_chain;
use crate::forward::{DESTINATION_HEADER, header_safe};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use wharf_protocol::Envelope;
use wharf_protocol::errors::{has_meta_errors, meta_errors};

const MODULE: &str = "wharf-destination";

/// Relays a query to the application and turns its answer, or its failure, into the response.
pub(crate) async fn relay(
    http: &reqwest::Client,
    destination: &DestinationConfig,
    content_type: &str,
    body: Bytes,
    envelope: &Envelope,
) -> Response {
    let fail = |status: StatusCode, text: String| {
        tracing::warn!(destination = %destination.name, %status, reason = %text, "query failed");
        let body = meta_errors(
            envelope.data_model.as_deref(),
            envelope.event_type.as_deref(),
            "query",
            MODULE,
            &text,
        );
        (status, axum::Json(body)).into_response()
    };
    let Some(url) = &destination.query_url else {
        return fail(
            StatusCode::NOT_IMPLEMENTED,
            "this destination does not answer queries: no query_url is configured".into(),
        );
    };
    let request = http
        .post(url.clone())
        .timeout(destination.query_timeout)
        .header(CONTENT_TYPE, content_type)
        .header(DESTINATION_HEADER, header_safe(&destination.name))
        .body(body);
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return fail(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the application did not answer the query within {:?}",
                    destination.query_timeout
                ),
            );
        }
        Err(e) => {
            return fail(
                StatusCode::BAD_GATEWAY,
                format!(
                    "could not reach the application at query_url: {}",
                    error_chain(&e)
                ),
            );
        }
    };
    let status = response.status();
    let app_content_type = response.headers().get(CONTENT_TYPE).cloned();
    let answer = match read_capped(response, destination.max_body_bytes).await {
        Ok(answer) => answer,
        Err(ReadError::TooLarge) => {
            return fail(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the application's answer is larger than max_body_bytes ({} bytes)",
                    destination.max_body_bytes
                ),
            );
        }
        Err(ReadError::Timeout) => {
            return fail(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the application did not finish its answer within {:?}",
                    destination.query_timeout
                ),
            );
        }
        Err(ReadError::Other(e)) => {
            return fail(
                StatusCode::BAD_GATEWAY,
                format!("the application's answer could not be read: {e}"),
            );
        }
    };
    if !status.is_success() && !has_meta_errors(&answer) {
        return fail(
            status,
            format!("the application answered the query with HTTP {status}"),
        );
    }
    let mut relayed = (status, answer).into_response();
    relayed.headers_mut().insert(
        CONTENT_TYPE,
        app_content_type.unwrap_or_else(|| HeaderValue::from_static("application/json")),
    );
    relayed
}

enum ReadError {
    TooLarge,
    Timeout,
    Other(String),
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Bytes, ReadError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > cap {
                    return Err(ReadError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(e) if e.is_timeout() => return Err(ReadError::Timeout),
            Err(e) => return Err(ReadError::Other(error_chain(&e))),
        }
    }
}
