//! The dashboard: the engine's web pages for operators, under `/dashboard`.
//!
//! Server-rendered HTML (askama templates in `crates/engine/templates/`, every value escaped),
//! one stylesheet and one small script served from the binary, no build step. Every page goes
//! through the engine's core (`crate::app`), as the management API does, so a form is checked
//! exactly as a JSON body would be and the dashboard cannot do what the API refuses. It never
//! imports the API.
//!
//! * `session`: sign-in (an operator account or a management key), sessions, CSRF and Origin
//!   checks on every POST.
//! * `signin_limit`: the sign-in's own limits (failures per address, password checks at once).
//! * `destinations`: destinations per environment and the seven-step setup wizard.
//! * `credentials`: auth credentials, a form per strategy, secrets write-only.
//! * `logs`: log search, one log with its attempts, stop and resend; its PHI (body, the
//!   destination's answers) only on its own page, for operators allowed to see it, recorded in
//!   the audit log.
//! * `audit`: the audit log, newest first.
//! * `queues`: queue state per destination, pause and resume.
//! * `sources`: sources (the API key shown once), subscriptions (pause, resume) and their
//!   filters.
//!
//! Every answer carries a strict Content-Security-Policy (no inline script or style), and pages
//! are `Cache-Control: no-store`: they show PHI and must not linger in caches.

mod audit;
mod credentials;
mod destinations;
mod logs;
mod queues;
mod session;
mod signin_limit;
mod sources;
mod traffic;

use crate::app::{Engine as EngineState, EngineError};
use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use std::sync::Arc;

pub use session::{HashError, hash_password, hash_password_with};

/// The Content-Security-Policy of every dashboard answer: only this origin's stylesheet and
/// script, no inline code, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("../../static/dashboard.css");
const SCRIPT: &str = include_str!("../../static/dashboard.js");

/// What the dashboard's handlers share.
#[derive(Clone)]
pub(crate) struct Dash {
    engine: EngineState,
    sessions: Arc<session::Sessions>,
    signin_limits: Arc<signin_limit::SigninLimits>,
    /// Cookies get `Secure` when the engine serves TLS or is reached over HTTPS (`public_url`,
    /// e.g. behind a TLS-terminating proxy).
    secure_cookies: bool,
}

impl std::ops::Deref for Dash {
    type Target = EngineState;
    fn deref(&self) -> &EngineState {
        &self.engine
    }
}

/// The dashboard's routes, all under `/dashboard`, to be merged into the engine's router.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(engine: EngineState) -> Router<S> {
    let secure_cookies = engine.config.tls.is_some()
        || engine
            .config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
    let config = &engine.config;
    let signin_limits = Arc::new(signin_limit::SigninLimits::new(
        config.signin_max_failures,
        config.signin_failure_window,
        config.signin_concurrent_hashes,
    ));
    let sessions = Arc::new(session::Sessions::new(
        session::IDLE_TIMEOUT,
        config.dashboard_session_lifetime,
    ));
    let dash = Dash {
        engine,
        sessions,
        signin_limits,
        secure_cookies,
    };
    Router::new()
        .route("/dashboard/static/{file}", get(static_file))
        .merge(traffic::routes())
        .merge(session::routes())
        .merge(destinations::routes())
        .merge(credentials::routes())
        .merge(logs::routes())
        .merge(queues::routes())
        .merge(sources::routes())
        .merge(audit::routes())
        // The engine's fallback answers in JSON; under /dashboard a person reads the answer.
        .route("/dashboard/{*rest}", axum::routing::any(not_found))
        .layer(middleware::from_fn_with_state(dash.clone(), session::guard))
        .layer(middleware::from_fn(security_headers))
        .with_state(dash)
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundPage {
    page: Page,
}

/// 404 inside the dashboard: with its navigation for a signed-in operator (who followed a
/// stale link and wants to go on), as a plain error page otherwise.
async fn not_found(
    axum::extract::State(dash): axum::extract::State<Dash>,
    signed_in: Option<axum::extract::Extension<session::SignedIn>>,
) -> Response {
    match signed_in {
        Some(axum::extract::Extension(signed_in)) => render(
            StatusCode::NOT_FOUND,
            &NotFoundPage {
                page: Page::new(&dash, &signed_in, ""),
            },
        ),
        None => {
            Failure::new(StatusCode::NOT_FOUND, "There is no such dashboard page.").into_response()
        }
    }
}

/// Headers on every dashboard answer, including refusals and static files.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    wharf_serve::page::security_headers(response.headers_mut(), CONTENT_SECURITY_POLICY);
    response
}

/// The stylesheet and the script, compiled into the binary.
async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "dashboard.css" => (STYLESHEET, "text/css; charset=utf-8"),
        "dashboard.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return Failure::new(StatusCode::NOT_FOUND, "There is no such file.").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Not secret, and changes only with the binary.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `?done=...`: what the page just did, for the notice a redirect after a form shows.
#[derive(serde::Deserialize)]
pub(super) struct Notice {
    pub done: Option<String>,
}

/// What every signed-in page shows in its frame: the organization, the navigation, and the
/// sign-out form (which needs the CSRF token).
pub(crate) struct Page {
    pub organization: String,
    pub csrf: String,
    /// Which navigation entry is current: `destinations`, `credentials`, `logs`, `queues`,
    /// `sources`, `audit`.
    pub nav: &'static str,
}

impl Page {
    pub fn new(dash: &Dash, signed_in: &session::SignedIn, nav: &'static str) -> Page {
        Page {
            organization: dash.organization.name.clone(),
            csrf: signed_in.csrf.clone(),
            nav,
        }
    }
}

/// Renders a template as an HTML answer with `status`.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the engine's log",
            )
                .into_response()
        }
    }
}

/// A dashboard page that could not be shown, with the reason a person can act on.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
    /// `Retry-After` seconds, when retrying can help (the store is unavailable).
    retry_after: Option<u64>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Failure {
        Failure {
            status: crate::http::status(&e),
            message: e.to_string(),
            retry_after: e.retry_after(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = render(
            self.status,
            &ErrorPage {
                status: self.status.as_u16(),
                message: &self.message,
            },
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A message of the core in the dashboard's words: an API field it quotes in backticks
/// (`verificationToken`) becomes the label the form shows (Verification token), and other
/// backticks go.
pub(crate) fn plain_words(message: &str, labels: &[(&str, &str)]) -> String {
    let mut plain = message.to_owned();
    for (field, label) in labels {
        plain = plain.replace(&format!("`{field}`"), label);
    }
    plain.replace('`', "")
}

/// 303 See Other: after a successful POST, the browser GETs the result (reloading does not
/// post again).
pub(crate) fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// Random bytes from the system's generator (aws-lc-rs).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // Fails only when the operating system has no entropy source, where nothing is safe.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator failed");
    bytes
}

/// Readable UTC time of a millisecond timestamp, e.g. `2026-11-23 14:00:05 UTC`.
pub(crate) fn when(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| millis.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_in_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_795_442_405_123), "2026-11-23 14:00:05 UTC");
    }

    #[test]
    fn messages_name_fields_by_their_labels() {
        assert_eq!(
            plain_words(
                "`verificationToken`: too short; see `docs`",
                &[("verificationToken", "Verification token")]
            ),
            "Verification token: too short; see docs"
        );
    }

    #[test]
    fn random_bytes_differ() {
        let (a, b) = (random_bytes::<32>(), random_bytes::<32>());
        assert_ne!(a, b);
    }
}
