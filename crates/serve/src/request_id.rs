//! Request ids: every request gets an `x-request-id` (the caller's, if it sent a sane one, else
//! a new UUID), echoed on the response and recorded on the request's tracing span, so one
//! request's log lines can be found together and matched with what the caller saw.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tracing::Instrument;

/// The header carrying the id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An id the caller sent is kept only if it is short and plain, so it cannot inject log lines.
fn acceptable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Middleware: assigns the id, runs the request inside a span carrying it, echoes it.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .filter(|v| acceptable(v))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header value")
        });
    request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %id.to_str().unwrap_or_default(),
        method = %request.method(),
    );
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_ids_are_kept() {
        assert!(acceptable(&HeaderValue::from_static("abc-123_x.y")));
        assert!(!acceptable(&HeaderValue::from_static("a b")));
        assert!(!acceptable(&HeaderValue::from_static("")));
        assert!(!acceptable(
            &HeaderValue::from_str(&"a".repeat(129)).unwrap()
        ));
    }
}
