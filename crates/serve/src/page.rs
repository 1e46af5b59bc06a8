//! The headers every HTML page of both servers carries (the engine's dashboard, the
//! destination's status page): each server's own Content-Security-Policy, and the rest alike.

use http::{HeaderMap, HeaderValue, header};

/// Sets `csp` as the Content-Security-Policy, forbids sniffing, referrers and framing, and
/// keeps the page out of caches unless the handler chose a cache policy itself (pages show
/// metadata an operator signed in to see).
pub fn security_headers(headers: &mut HeaderMap, csp: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}
