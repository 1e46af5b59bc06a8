//! The destination server's own small status page, at `/_wharf`: its destinations, inbox
//! counts by status, recent messages, malformed ones, forwarder lag, the head of each
//! destination when it is stuck (its age, attempts and last error), and the dead letters,
//! with buttons to skip a stuck head into the dead letters and to replay a dead letter
//! (`POST /_wharf/skip` and `POST /_wharf/replay`, a form field `message_id`).
//!
//! It shows message metadata only (ids, duplicate keys, data models, event types, times,
//! statuses, malformed reasons), never a body. It is off unless `admin_token` (or
//! `admin_token_env`) is configured, and then needs that token as the password of HTTP Basic
//! authentication (any user name) or as `Authorization: Bearer`, compared in constant time.
//! Everything shown is HTML-escaped, and the page is served with a strict
//! Content-Security-Policy (no scripts at all; forms post only to the page itself). A POST
//! must come from the page itself: a browser's `Origin` (which it sends with every form POST)
//! must name this server, so another site cannot make a signed-in browser press the buttons
//! (HTTP Basic credentials go with any request to the server); a client without `Origin`
//! (curl with the bearer token) is not a browser and is let through.

use crate::App;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::fmt::Write as _;
use std::sync::Arc;
use wharf_store::{MessageStatus, MessageSummary, rfc3339};

/// Messages shown in each list.
const LIST_LENGTH: usize = 20;

/// Escapes text for HTML content and attribute values, with the template engine's own HTML
/// escaper (the engine's dashboard escapes through it too): `& < > " '` as numeric entities.
pub fn escape(text: &str) -> String {
    match askama::filters::escape(text, askama::filters::Html) {
        Ok(safe) => safe.to_string(),
        Err(never) => match never {},
    }
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

/// The admin token check every `/_wharf` route makes: `None` when the request may go on.
fn admin(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &app.admin_token else {
        return Some(
            (
                StatusCode::NOT_FOUND,
                "the status page is off: set admin_token (or admin_token_env) to turn it on",
            )
                .into_response(),
        );
    };
    match presented(headers) {
        Some(password) if token.matches(&password) => None,
        _ => Some(challenge()),
    }
}

/// Whether a POST came from this server's own page, or from a client that is not a browser.
/// The server's own name is the request's `Host` (HTTP/1.1) or its URI's authority (HTTP/2's
/// `:authority`).
fn same_origin(headers: &HeaderMap, uri: &http::Uri) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The form of the page's buttons.
#[derive(serde::Deserialize)]
pub(crate) struct MessageForm {
    message_id: String,
}

/// `POST /_wharf/skip`: moves a message waiting to be forwarded to the dead letters.
pub(crate) async fn skip(
    State(app): State<Arc<App>>,
    uri: http::Uri,
    headers: HeaderMap,
    form: Result<axum::Form<MessageForm>, FormRejection>,
) -> Response {
    act(app, &uri, headers, form, Act::Skip).await
}

/// `POST /_wharf/replay`: puts a dead letter back in the forwarding order.
pub(crate) async fn replay(
    State(app): State<Arc<App>>,
    uri: http::Uri,
    headers: HeaderMap,
    form: Result<axum::Form<MessageForm>, FormRejection>,
) -> Response {
    act(app, &uri, headers, form, Act::Replay).await
}

#[derive(Clone, Copy)]
enum Act {
    Skip,
    Replay,
}

async fn act(
    app: Arc<App>,
    uri: &http::Uri,
    headers: HeaderMap,
    form: Result<axum::Form<MessageForm>, FormRejection>,
    act: Act,
) -> Response {
    // Authentication first: nothing about the form is said to a stranger.
    if let Some(refused) = admin(&app, &headers) {
        return refused;
    }
    let message_id = match form {
        Ok(form) => form.0.message_id,
        Err(rejection) => return rejection.into_response(),
    };
    if !same_origin(&headers, uri) {
        return (
            StatusCode::FORBIDDEN,
            "this form posts only from the server's own /_wharf page",
        )
            .into_response();
    }
    let ids = vec![message_id.clone()];
    let inbox = app.inbox.clone();
    let done = tokio::task::spawn_blocking(move || match act {
        Act::Skip => inbox.dead_letter(&ids, "skipped by an operator on /_wharf"),
        Act::Replay => inbox.replay_dead_letters(&ids),
    })
    .await;
    let (verb, state) = match act {
        Act::Skip => ("moved to the dead letters", "waiting to be forwarded"),
        Act::Replay => ("replayed", "a dead letter"),
    };
    match done {
        Ok(Ok(done)) if !done.is_empty() => {
            tracing::info!(%message_id, "{verb} from /_wharf");
            let mut response =
                (StatusCode::SEE_OTHER, format!("{verb}: {message_id}")).into_response();
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/_wharf"));
            response
        }
        Ok(Ok(_)) => (
            StatusCode::CONFLICT,
            format!("{message_id} is not {state} (any more): nothing was changed"),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, %message_id, "could not change the inbox from /_wharf");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the inbox could not be changed: {e}"),
            )
                .into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /_wharf`.
pub(crate) async fn page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(refused) = admin(&app, &headers) {
        return refused;
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
    wharf_serve::page::security_headers(
        h,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
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

/// The head column: nothing while it has not failed; its age, attempts and last error, and
/// a button to skip it, once it has.
fn stuck_head(head: Option<&MessageSummary>, now: i64) -> String {
    let Some(h) = head else {
        return "-".to_string();
    };
    let Some(first) = h.first_failed_at else {
        return "ok".to_string();
    };
    format!(
        "<span class=\"lag\">failing for {} s, {} attempts</span><br><code>{}</code><br>{}{}",
        (now - first).max(0) / 1000,
        h.forward_attempts,
        escape(&h.message_id),
        escape(h.last_error.as_deref().unwrap_or("")),
        button("/_wharf/skip", &h.message_id, "skip into the dead letters"),
    )
}

/// A form posting `message_id` to `action`.
fn button(action: &str, message_id: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"message_id\" value=\"{}\"><button>{label}</button></form>",
        escape(message_id)
    )
}

fn dead_letters_table(out: &mut String, messages: &[MessageSummary]) {
    out.push_str("<table><tr><th>moved</th><th>message id</th><th>destination</th><th>data model</th><th>event type</th><th>attempts</th><th>last error</th><th>why</th><th></th></tr>");
    for m in messages {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.dead_lettered_at.map(rfc3339).unwrap_or_default()),
            escape(&m.message_id),
            escape(&m.destination),
            escape(m.data_model.as_deref().unwrap_or("")),
            escape(m.event_type.as_deref().unwrap_or("")),
            m.forward_attempts,
            escape(m.last_error.as_deref().unwrap_or("")),
            escape(m.dead_letter_reason.as_deref().unwrap_or("")),
            button("/_wharf/replay", &m.message_id, "replay"),
        );
    }
    if messages.is_empty() {
        out.push_str("<tr><td colspan=\"9\">none</td></tr>");
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
    out.push_str("<h2>Destinations</h2><table><tr><th>name</th><th>path</th><th>environment</th><th>authentication</th><th>received</th><th>forwarded</th><th>malformed</th><th>dead letters</th><th>forwarding</th><th>forwarder lag</th><th>head</th></tr>");
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
        let (forwarding, lag, head) = match &d.forward_url {
            None => (
                "no (inbox only)".to_string(),
                String::from("-"),
                String::from("-"),
            ),
            Some(url) => {
                let head = reader.head(&d.name)?;
                let lag = match &head {
                    Some(h) => format!(
                        "<span class=\"lag\">{} s behind</span>",
                        (now - h.received_at).max(0) / 1000
                    ),
                    None => "up to date".to_string(),
                };
                (escape(url.as_str()), lag, stuck_head(head.as_ref(), now))
            }
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.name),
            escape(&d.path),
            escape(&d.environment.to_string()),
            escape(&auth),
            count(MessageStatus::Received),
            count(MessageStatus::Forwarded),
            count(MessageStatus::Malformed),
            count(MessageStatus::DeadLetter),
            forwarding,
            lag,
            head,
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
    out.push_str("<h2>Dead letters</h2><p>Taken out of the forwarding order (skipped by an operator, or by <code>dead_letter_after</code>); kept until replayed. A replayed message goes back where it arrived: it is sent before everything of its destination that arrived after it and still waits. All of them: <code>wharf destination dead-letters</code>.</p>");
    dead_letters_table(
        &mut out,
        &reader.recent(Some(MessageStatus::DeadLetter), LIST_LENGTH)?,
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
            "&#60;script&#62;&#34;x&#34;&#38;&#39;y&#39;&#60;/script&#62;"
        );
    }

    #[test]
    fn posts_from_another_origin_are_refused() {
        let uri: http::Uri = "/_wharf/skip".parse().unwrap();
        let h2: http::Uri = "https://dest.example.com:8443/_wharf/skip".parse().unwrap();
        let with = |pairs: &[(header::HeaderName, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(name.clone(), HeaderValue::from_static(value));
            }
            h
        };
        assert!(same_origin(&with(&[]), &uri), "not a browser");
        let own = with(&[
            (header::HOST, "dest.example.com:8443"),
            (header::ORIGIN, "https://dest.example.com:8443"),
        ]);
        assert!(same_origin(&own, &uri));
        let other = with(&[
            (header::HOST, "dest.example.com:8443"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert!(!same_origin(&other, &uri));
        let null = with(&[
            (header::HOST, "dest.example.com:8443"),
            (header::ORIGIN, "null"),
        ]);
        assert!(!same_origin(&null, &uri));
        // HTTP/2 carries the server's name in the URI, not in Host.
        let h2_own = with(&[(header::ORIGIN, "https://dest.example.com:8443")]);
        assert!(same_origin(&h2_own, &h2));
        assert!(!same_origin(&h2_own, &uri));
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
