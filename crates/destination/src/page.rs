//! The destination server's own small status page, at `/_wharf`: its destinations, inbox
//! counts by status, recent messages, malformed ones, and forwarder lag.
//!
//! It shows message metadata only (ids, duplicate keys, data models, event types, times,
//! statuses, malformed reasons), never a body. It is off unless `admin_token` (or
//! `admin_token_env`) is configured, and then needs that token as the password of HTTP Basic
//! authentication (any user name) or as `Authorization: Bearer`, compared in constant time.
//! Everything shown is HTML-escaped, and the page is served with a strict
//! Content-Security-Policy (no scripts at all).

use crate::App;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::fmt::Write as _;
use std::sync::Arc;
use wharf_store::{MessageStatus, MessageSummary, rfc3339};

/// Messages shown in each list.
const LIST_LENGTH: usize = 20;

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The password presented by Basic or Bearer authentication.
fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

fn challenge() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "sign in with the admin token as the password",
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"wharf destination\", charset=\"UTF-8\""),
    );
    response
        .extensions_mut()
        .insert(wharf_serve::metrics::AuthFailure("admin_token"));
    response
}

/// `GET /_wharf`.
pub(crate) async fn page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(token) = &app.admin_token else {
        return (
            StatusCode::NOT_FOUND,
            "the status page is off: set admin_token (or admin_token_env) to turn it on",
        )
            .into_response();
    };
    match presented(&headers) {
        Some(password) if token.matches(&password) => {}
        _ => return challenge(),
    }
    let app2 = app.clone();
    let html = match tokio::task::spawn_blocking(move || render(&app2)).await {
        Ok(Ok(html)) => html,
        _ => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the inbox cannot be read").into_response();
        }
    };
    let mut response = (StatusCode::OK, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn messages_table(out: &mut String, messages: &[MessageSummary], reason: bool) {
    out.push_str("<table><tr><th>received</th><th>message id</th><th>destination</th><th>data model</th><th>event type</th><th>status</th>");
    if reason {
        out.push_str("<th>why malformed</th>");
    }
    out.push_str("</tr>");
    for m in messages {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            escape(&rfc3339(m.received_at)),
            escape(&m.message_id),
            escape(&m.destination),
            escape(m.data_model.as_deref().unwrap_or("")),
            escape(m.event_type.as_deref().unwrap_or("")),
            escape(m.status.as_str()),
        );
        if reason {
            let _ = write!(
                out,
                "<td>{}</td>",
                escape(m.malformed_reason.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</tr>");
    }
    if messages.is_empty() {
        out.push_str("<tr><td colspan=\"7\">none</td></tr>");
    }
    out.push_str("</table>");
}

fn render(app: &App) -> Result<String, wharf_store::StoreError> {
    let reader = app.inbox.reader();
    let now = wharf_store::now_millis();
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Wharf destination</title>\
         <style>body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2733}table{border-collapse:collapse;margin-bottom:2rem}\
         th,td{border:1px solid #c8d1dc;padding:.3rem .6rem;text-align:left;font-size:.9rem}th{background:#eef2f6}\
         .lag{color:#a33;font-weight:600}</style></head><body><h1>Wharf destination</h1>",
    );
    out.push_str("<h2>Destinations</h2><table><tr><th>name</th><th>path</th><th>environment</th><th>authentication</th><th>received</th><th>forwarded</th><th>malformed</th><th>forwarding</th><th>forwarder lag</th></tr>");
    let mut destinations: Vec<_> = app.destinations.values().collect();
    destinations.sort_by(|a, b| a.name.cmp(&b.name));
    for d in destinations {
        let counts = reader.count_by_status(&d.name)?;
        let count = |s: MessageStatus| {
            counts
                .iter()
                .find(|(status, _)| *status == s)
                .map_or(0, |(_, n)| *n)
        };
        let auth = match (&d.auth, &d.verification_token) {
            (Some(a), Some(_)) => format!("{} + verification token", a.strategy),
            (Some(a), None) => a.strategy.to_string(),
            (None, _) => "verification token".to_string(),
        };
        let (forwarding, lag) = match &d.forward_url {
            None => ("no (inbox only)".to_string(), String::from("-")),
            Some(url) => {
                let lag = match reader.oldest_unforwarded(&d.name)? {
                    Some(at) => format!(
                        "<span class=\"lag\">{} s behind</span>",
                        (now - at).max(0) / 1000
                    ),
                    None => "up to date".to_string(),
                };
                (escape(url.as_str()), lag)
            }
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.name),
            escape(&d.path),
            escape(&d.environment.to_string()),
            escape(&auth),
            count(MessageStatus::Received),
            count(MessageStatus::Forwarded),
            count(MessageStatus::Malformed),
            forwarding,
            lag,
        );
    }
    out.push_str("</table><h2>Recent messages</h2>");
    messages_table(&mut out, &reader.recent(None, LIST_LENGTH)?, false);
    out.push_str("<h2>Malformed messages</h2><p>Kept and answered 200, never forwarded: look at them with <code>wharf destination inbox</code>.</p>");
    messages_table(
        &mut out,
        &reader.recent(Some(MessageStatus::Malformed), LIST_LENGTH)?,
        true,
    );
    out.push_str("</body></html>");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<script>\"x\"&'y'</script>"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn basic_and_bearer_passwords_are_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWRtaW46czNjcmV0"),
        );
        assert_eq!(presented(&h).unwrap(), b"s3cret");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(presented(&h).unwrap(), b"abc");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Digest x"));
        assert!(presented(&h).is_none());
    }
}
