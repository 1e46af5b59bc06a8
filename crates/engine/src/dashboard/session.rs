//! Who may use the dashboard: sign-in, sessions, and the checks every request passes.
//!
//! * Sign-in takes an operator account's name and password (verified against its argon2id hash:
//!   `[[operators]]`, or `admin` for `dashboard_password_hash`, the account an empty name
//!   means) or a management key (compared in constant time, as the API does). The session
//!   acts as that account or that named key, which is what the audit log records. A failure is
//!   logged (warn) with the client's address and the account name tried, never the password;
//!   the sign-in's own limits (`signin_limit`) lock an address out after too many failures and
//!   bound the password checks running at once.
//! * A session is a random 256-bit id in a cookie (`HttpOnly`, `SameSite=Strict`,
//!   `Path=/dashboard`, `Secure` when the engine serves TLS or `public_url` is `https://`) and
//!   an entry in memory that expires after 12 hours without use, and in any case
//!   `dashboard_session_lifetime` (12 h by default) after sign-in, however busy. The store keeps
//!   SHA-256 digests of the ids, so a lookup compares digests, never the secret itself. A
//!   restart signs everyone out, which is acceptable for an operator console and keeps
//!   sessions out of the database.
//! * Every POST carries the session's CSRF token in a hidden `csrf` field, compared in constant
//!   time; the sign-in form, which has no session yet, uses a random token that must match a
//!   short-lived cookie (double submit). A POST whose `Origin` or `Sec-Fetch-Site` names
//!   another site is refused before anything else, so a cross-site form cannot reach a handler
//!   even with a token.

use super::{Dash, Failure, random_bytes, render, see_other};
use crate::app::audit::{Access, Actor, ActorKind};
use crate::config::ADMIN_OPERATOR;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// A session unused this long is gone: the operator signs in again.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// The session cookie.
pub const SESSION_COOKIE: &str = "wharf_session";
/// The sign-in form's double-submit cookie.
pub const SIGNIN_COOKIE: &str = "wharf_signin";
/// Largest form body the dashboard reads (a PEM private key is a few KiB).
const FORM_LIMIT: usize = 1024 * 1024;

/// The sessions of signed-in operators, in memory.
pub(crate) struct Sessions {
    idle: Duration,
    /// A session ends this long after sign-in, however busy.
    lifetime: Duration,
    /// Keyed by the SHA-256 digest of the session id.
    map: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Clone)]
struct Session {
    csrf: String,
    who: Actor,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    fn live(&self, now: Instant, idle: Duration, lifetime: Duration) -> bool {
        now.duration_since(self.last_seen) < idle && now.duration_since(self.created) < lifetime
    }
}

/// A request's signed-in operator, as handlers see it.
#[derive(Clone)]
pub(crate) struct SignedIn {
    /// The token every form of this session carries.
    pub csrf: String,
    /// Who is signed in, and from which address this request came: what the audit log records.
    pub access: Access,
}

/// The client's address of a dashboard request (as the listener saw the peer), for every
/// handler, signed in or not.
#[derive(Clone, Copy)]
pub(crate) struct ClientAddress(pub Option<IpAddr>);

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(idle: Duration, lifetime: Duration) -> Sessions {
        Sessions {
            idle,
            lifetime,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session; returns its id (the cookie's value). Expired sessions are dropped
    /// here, so the map holds only live ones plus those expired since the last sign-in.
    fn create(&self, who: Actor, now: Instant) -> String {
        let id = hex::encode(random_bytes::<32>());
        let session = Session {
            csrf: hex::encode(random_bytes::<32>()),
            who,
            created: now,
            last_seen: now,
        };
        let mut map = self.map();
        map.retain(|_, s| s.live(now, self.idle, self.lifetime));
        map.insert(digest(&id), session);
        id
    }

    /// The live session with this id, marked as used now.
    fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let key = digest(id);
        let mut map = self.map();
        let live = map
            .get(&key)
            .is_some_and(|s| s.live(now, self.idle, self.lifetime));
        if !live {
            map.remove(&key);
            return None;
        }
        let session = map.get_mut(&key)?;
        session.last_seen = now;
        Some(session.clone())
    }

    fn remove(&self, id: &str) {
        self.map().remove(&digest(id));
    }
}

pub(super) fn routes() -> Router<Dash> {
    Router::new()
        .route("/dashboard/signin", get(signin_form).post(signin))
        .route("/dashboard/signout", post(signout))
}

/// Hashes a dashboard password for `dashboard_password_hash` (argon2id with the argon2 crate's
/// defaults: 19 MiB, 2 passes, as OWASP recommends).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let params = argon2::Params::default();
    hash_password_with(password, params.m_cost(), params.t_cost())
}

/// Why a dashboard password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password is empty: give the passphrase on standard input")]
    Empty,
    /// The costs are outside what argon2 accepts (only tests choose them).
    #[error("argon2 refused the cost parameters: {0}")]
    Params(argon2::Error),
    #[error("argon2 could not hash the password: {0}; a shorter passphrase may help")]
    Hash(argon2::password_hash::Error),
}

/// [`hash_password`] with a given memory (KiB) and time cost; tests use small ones.
pub fn hash_password_with(password: &str, m_cost: u32, t_cost: u32) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    let params = argon2::Params::new(m_cost, t_cost, 1, None).map_err(HashError::Params)?;
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    argon2
        .hash_password_with_salt(password.as_bytes(), &random_bytes::<16>())
        .map(|hash| hash.to_string())
        .map_err(HashError::Hash)
}

/// A hash no password matches, verified for an account name that does not exist so that the
/// answer takes as long as for one that does (the name is not revealed by timing).
static UNKNOWN_ACCOUNT: LazyLock<String> = LazyLock::new(|| {
    hash_password(&hex::encode(random_bytes::<32>())).expect("hashing a random password")
});

/// Whether `password` matches the PHC string (argon2's comparison is constant time).
fn password_matches(password: &str, phc: &str) -> bool {
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value scoped to the dashboard; `max_age` 0 deletes the cookie, `None`
/// makes it last until the browser closes (the server expires the session anyway).
fn set_cookie(dash: &Dash, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/dashboard; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if dash.secure_cookies {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).expect("cookie values are hex or empty")
}

/// Constant-time comparison of a presented token with the expected one.
fn same_token(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.ct_eq(&b)) && !expected.is_empty()
}

/// Whether a state-changing request comes from this dashboard's own pages. A browser's
/// `Sec-Fetch-Site` must say same-origin (or `none`: the user's own action). An `Origin` must
/// be the origin the request was addressed to (`Host`) or the engine's `public_url`; `Origin:
/// null` passes only with `Sec-Fetch-Site: same-origin`, because the dashboard's own
/// `Referrer-Policy: no-referrer` makes browsers send `null` on its same-origin form posts.
fn same_origin(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let fetch_site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if fetch_site.is_some_and(|site| site != b"same-origin" && site != b"none") {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Browsers send Origin on every POST today; without one, the CSRF token decides.
        return true;
    };
    if origin.as_bytes() == b"null" {
        return fetch_site == Some(b"same-origin".as_slice());
    }
    let Some(origin) = origin
        .to_str()
        .ok()
        .and_then(|o| reqwest::Url::parse(o).ok())
    else {
        return false;
    };
    if let Some(public) = public_url.and_then(|u| reqwest::Url::parse(u).ok())
        && public.origin() == origin.origin()
    {
        return true;
    }
    let (Some(host), Some(origin_host)) = (
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
        origin.host_str(),
    ) else {
        return false;
    };
    // The Host header carries the port unless it is the scheme's default.
    let with_port = origin
        .port_or_known_default()
        .map(|p| format!("{origin_host}:{p}"));
    host.eq_ignore_ascii_case(origin_host)
        || with_port.is_some_and(|a| host.eq_ignore_ascii_case(&a))
}

/// A refusal page for requests that fail the session, CSRF or Origin checks.
fn forbidden(message: &str) -> Response {
    Failure::new(StatusCode::FORBIDDEN, message).into_response()
}

/// Reads a form body and checks its `csrf` field against `expected`; hands back the request
/// with the body restored for the handler.
async fn check_csrf(request: Request, expected: Option<&str>) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is larger than the dashboard accepts (1 MiB).",
        )
        .into_response()
    })?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let presented = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    match (presented, expected) {
        (Some(p), Some(e)) if same_token(p, e) => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => {
            tracing::warn!(reason = "csrf", path = %parts.uri.path(), "dashboard form refused");
            Err(forbidden(
                "This form has expired or did not come from this dashboard. Go back, reload the page and try again.",
            ))
        }
    }
}

/// Runs before every dashboard handler: the Origin and CSRF checks on state-changing requests,
/// and a session for everything but the sign-in page and the static files.
pub(crate) async fn guard(State(dash): State<Dash>, mut request: Request, next: Next) -> Response {
    let address = crate::http::peer_address(&request);
    request.extensions_mut().insert(ClientAddress(address));
    let full = request.uri().path();
    let path = full.strip_prefix("/dashboard").unwrap_or(full).to_owned();
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes_state && !same_origin(request.headers(), dash.config.public_url.as_deref()) {
        tracing::warn!(reason = "origin", %path, "dashboard form refused");
        return forbidden(
            "This request came from another site. Use the dashboard's own pages to make changes.",
        );
    }
    if path.starts_with("/static/") {
        return next.run(request).await;
    }
    if path == "/signin" {
        if !changes_state {
            return next.run(request).await;
        }
        let expected = cookie(request.headers(), SIGNIN_COOKIE).map(str::to_owned);
        return match check_csrf(request, expected.as_deref()).await {
            Ok(request) => next.run(request).await,
            Err(refused) => refused,
        };
    }
    let session = cookie(request.headers(), SESSION_COOKIE)
        .and_then(|id| dash.sessions.get(id, Instant::now()));
    let Some(session) = session else {
        if changes_state {
            return forbidden("You are not signed in, or your session expired. Sign in again.");
        }
        // Back to the page asked for once signed in (a link from an alert, a bookmark).
        let asked = request
            .uri()
            .path_and_query()
            .map_or(full, |p| p.as_str())
            .to_owned();
        return match safe_next(&asked) {
            Some(next) if next != "/dashboard" && next != "/dashboard/" => see_other(&format!(
                "/dashboard/signin?{}",
                serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
            )),
            _ => see_other("/dashboard/signin"),
        };
    };
    let mut request = if changes_state {
        match check_csrf(request, Some(&session.csrf)).await {
            Ok(request) => request,
            Err(refused) => return refused,
        }
    } else {
        request
    };
    request.extensions_mut().insert(SignedIn {
        csrf: session.csrf,
        access: Access {
            actor: session.who,
            address,
        },
    });
    next.run(request).await
}

/// Where sign-in may send back to: a dashboard page of this origin (never another site, never
/// the sign-in or sign-out page), or `None`.
fn safe_next(next: &str) -> Option<&str> {
    let page = next.strip_prefix("/dashboard")?;
    let ok = (page.is_empty() || page.starts_with('/') || page.starts_with('?'))
        && !next.contains("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && !page.starts_with("/signin")
        && !page.starts_with("/signout")
        && !page.starts_with("/static/");
    ok.then_some(next)
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage {
    csrf: String,
    organization: String,
    /// Whether any operator account is configured (else only management keys work).
    password_configured: bool,
    error: String,
    /// The page to go to once signed in (checked by [`safe_next`]).
    next: String,
    notice: &'static str,
}

fn signin_page(dash: &Dash, status: StatusCode, csrf: String, error: &str, next: &str) -> Response {
    render(
        status,
        &SigninPage {
            csrf,
            organization: dash.organization.name.clone(),
            password_configured: !dash.config.operators.is_empty(),
            error: error.to_owned(),
            next: safe_next(next).unwrap_or_default().to_owned(),
            notice: "",
        },
    )
}

/// The sign-in page's query: where to go next, or that the operator just signed out.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SigninQuery {
    next: String,
    done: Option<String>,
}

async fn signin_form(
    State(dash): State<Dash>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<SigninQuery>,
) -> Response {
    if cookie(&headers, SESSION_COOKIE)
        .and_then(|id| dash.sessions.get(id, Instant::now()))
        .is_some()
    {
        return see_other(safe_next(&query.next).unwrap_or("/dashboard/destinations"));
    }
    let token = hex::encode(random_bytes::<32>());
    let mut response = render(
        StatusCode::OK,
        &SigninPage {
            csrf: token.clone(),
            organization: dash.organization.name.clone(),
            password_configured: !dash.config.operators.is_empty(),
            error: String::new(),
            next: safe_next(&query.next).unwrap_or_default().to_owned(),
            notice: match query.done.as_deref() {
                Some("signedout") => "You are signed out. Sign in again to continue.",
                _ => "",
            },
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&dash, SIGNIN_COOKIE, &token, Some(3600)),
    );
    response
}

#[derive(serde::Deserialize)]
struct SigninForm {
    /// The operator account; empty means `admin` (`dashboard_password_hash`).
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
    /// The page to go to once signed in.
    #[serde(default)]
    next: String,
}

/// The sign-in form again with `status` and `error`, keeping its double-submit token.
fn signin_refused(
    dash: &Dash,
    headers: &HeaderMap,
    status: StatusCode,
    error: &str,
    next: &str,
) -> Response {
    let csrf = cookie(headers, SIGNIN_COOKIE)
        .unwrap_or_default()
        .to_owned();
    signin_page(dash, status, csrf, error, next)
}

/// 429 with `Retry-After` (whole seconds, rounded up).
fn too_many(dash: &Dash, headers: &HeaderMap, wait: Duration, error: &str) -> Response {
    let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let mut response = signin_refused(dash, headers, StatusCode::TOO_MANY_REQUESTS, error, "");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

async fn signin(
    State(dash): State<Dash>,
    axum::extract::Extension(ClientAddress(address)): axum::extract::Extension<ClientAddress>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SigninForm>,
) -> Response {
    let next = form.next.clone();
    // Without a peer address (never, behind the engine's listener) all share one count.
    let counted = address.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let shown = address.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    if let Err(wait) = dash.signin_limits.check(counted, Instant::now()) {
        dash.metrics.signin_refused("too_many_failures");
        tracing::warn!(address = %shown, retry_after_s = wait.as_secs(), "dashboard sign-in refused: too many failures from this address");
        return too_many(
            &dash,
            &headers,
            wait,
            "Too many failed sign-ins from your address. Wait until the time in Retry-After has passed, then try again with the right password.",
        );
    }
    let name: String = match form.name.trim() {
        "" => ADMIN_OPERATOR.to_owned(),
        typed => typed.chars().take(64).collect(),
    };
    let who = if let Some(index) = crate::app::find_secret(
        &form.secret,
        dash.config.api_keys.iter().map(String::as_str),
    ) {
        Some(Access::api_key(&dash, index, address).actor)
    } else if dash.config.operators.is_empty() || form.secret.is_empty() {
        None
    } else {
        let Some(permit) = dash.signin_limits.hash_permit() else {
            dash.metrics.signin_refused("busy");
            tracing::warn!(address = %shown, "dashboard sign-in refused: as many password checks run already");
            return too_many(
                &dash,
                &headers,
                Duration::from_secs(1),
                "The dashboard is busy checking other sign-ins. Try again in a moment.",
            );
        };
        let operator = dash.config.operators.iter().find(|o| o.name == name);
        let phc = operator.map(|o| o.password_hash.clone());
        // Deliberately slow (argon2): off the async threads, and holding its permit until done
        // even if the client goes away.
        let secret = form.secret;
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match phc {
                Some(phc) => password_matches(&secret, &phc),
                None => {
                    // The same work as for a real account; never a match.
                    let _ = password_matches(&secret, &UNKNOWN_ACCOUNT);
                    false
                }
            }
        })
        .await
        .unwrap_or(false);
        operator.filter(|_| matched).map(|o| Actor {
            kind: ActorKind::Operator,
            name: o.name.clone(),
            may_view_phi: o.may_view_phi,
        })
    };
    let Some(who) = who else {
        dash.metrics.signin_failed();
        let lockout = dash.signin_limits.failed(counted, Instant::now());
        tracing::warn!(
            reason = "wrong_password_or_key",
            address = %shown,
            account = ?name,
            locked_out_s = lockout.map(|d| d.as_secs()),
            "dashboard sign-in refused"
        );
        return signin_refused(
            &dash,
            &headers,
            StatusCode::UNAUTHORIZED,
            "That is neither the password of that operator account nor a management key. Check the account name and the password, and try again.",
            &next,
        );
    };
    dash.signin_limits.succeeded(counted);
    // A fresh id at every sign-in, so an id planted before sign-in is worth nothing.
    tracing::info!(kind = who.kind.as_str(), name = %who.name, address = %shown, "dashboard sign-in");
    let id = dash.sessions.create(who, Instant::now());
    let mut response = see_other(safe_next(&next).unwrap_or("/dashboard/destinations"));
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&dash, SESSION_COOKIE, &id, None),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&dash, SIGNIN_COOKIE, "", Some(0)),
    );
    response
}

async fn signout(State(dash): State<Dash>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        if let Some(session) = dash.sessions.get(id, Instant::now()) {
            tracing::info!(kind = session.who.kind.as_str(), name = %session.who.name, "dashboard sign-out");
        }
        dash.sessions.remove(id);
    }
    let mut response = see_other("/dashboard/signin?done=signedout");
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&dash, SESSION_COOKIE, "", Some(0)),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_sends_back_only_to_dashboard_pages() {
        assert_eq!(
            safe_next("/dashboard/logs/x?done=1"),
            Some("/dashboard/logs/x?done=1")
        );
        assert_eq!(safe_next("/dashboard"), Some("/dashboard"));
        for refused in [
            "https://evil.example/",
            "//evil.example/dashboard",
            "/dashboard//evil.example",
            "/dashboardx",
            "/dashboard/\\evil",
            "/dashboard/signout",
            "/dashboard/signin?next=/dashboard",
            "/platform/v1/logs",
        ] {
            assert_eq!(safe_next(refused), None, "{refused}");
        }
    }

    fn actor(name: &str) -> Actor {
        Actor {
            kind: ActorKind::Operator,
            name: name.to_owned(),
            may_view_phi: false,
        }
    }

    #[test]
    fn sessions_expire_when_idle_and_are_kept_alive_by_use() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(3600));
        let start = Instant::now();
        let id = sessions.create(actor("alice"), start);
        assert_eq!(id.len(), 64, "256 bits in hex");
        let first = sessions.get(&id, start + Duration::from_secs(50)).unwrap();
        assert_eq!(first.who, actor("alice"));
        // Used at 50 s, so still alive at 100 s; idle from 100 s, gone at 161 s.
        assert!(
            sessions
                .get(&id, start + Duration::from_secs(100))
                .is_some()
        );
        assert!(
            sessions
                .get(&id, start + Duration::from_secs(161))
                .is_none()
        );
        assert!(sessions.get(&id, start).is_none(), "removed once expired");
        assert!(sessions.get("not-a-session", start).is_none());
        let other = sessions.create(actor("bob"), start);
        assert_ne!(other, id);
        sessions.remove(&other);
        assert!(sessions.get(&other, start).is_none());
    }

    #[test]
    fn sessions_end_at_their_lifetime_however_busy() {
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let start = Instant::now();
        let id = sessions.create(actor("alice"), start);
        // Used every 50 s, never idle for a minute, yet gone 300 s after sign-in.
        for t in (50..300).step_by(50) {
            assert!(
                sessions.get(&id, start + Duration::from_secs(t)).is_some(),
                "{t}"
            );
        }
        assert!(
            sessions
                .get(&id, start + Duration::from_secs(300))
                .is_none()
        );
        assert!(
            sessions
                .get(&id, start + Duration::from_secs(301))
                .is_none()
        );
    }

    #[test]
    fn each_session_has_its_own_csrf_token() {
        let sessions = Sessions::new(IDLE_TIMEOUT, IDLE_TIMEOUT);
        let now = Instant::now();
        let (a, b) = (
            sessions.create(actor("x"), now),
            sessions.create(actor("x"), now),
        );
        let (a, b) = (
            sessions.get(&a, now).unwrap(),
            sessions.get(&b, now).unwrap(),
        );
        assert_ne!(a.csrf, b.csrf);
        assert!(same_token(&a.csrf, &a.csrf));
        assert!(!same_token(&b.csrf, &a.csrf));
        assert!(!same_token("", ""), "an empty expected token never matches");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; wharf_session_x=2; wharf_session=abc"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, SIGNIN_COOKIE), None);
    }

    #[test]
    fn origins_must_match_the_host_or_the_public_url() {
        let headers = |origin: Option<&'static str>, host: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static(host));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_static(o));
            }
            h
        };
        assert!(same_origin(&headers(None, "127.0.0.1:8080"), None));
        assert!(same_origin(
            &headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"),
            None
        ));
        assert!(same_origin(
            &headers(Some("https://engine.example.com"), "engine.example.com"),
            None
        ));
        assert!(same_origin(
            &headers(Some("https://engine.example.com"), "engine.example.com:443"),
            None
        ));
        assert!(!same_origin(
            &headers(Some("http://evil.example"), "127.0.0.1:8080"),
            None
        ));
        assert!(!same_origin(
            &headers(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"),
            None
        ));
        assert!(!same_origin(&headers(Some("null"), "127.0.0.1:8080"), None));
        // What browsers send for the dashboard's own forms under Referrer-Policy: no-referrer.
        let mut own = headers(Some("null"), "127.0.0.1:8080");
        own.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&own, None));
        let mut sibling = headers(Some("null"), "127.0.0.1:8080");
        sibling.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!same_origin(&sibling, None));
        // Behind a proxy that rewrites Host, the public URL is the dashboard's origin.
        assert!(same_origin(
            &headers(Some("https://wharf.example.com"), "10.0.0.5:8080"),
            Some("https://wharf.example.com")
        ));
        let mut cross = headers(None, "127.0.0.1:8080");
        cross.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&cross, None));
    }

    #[test]
    fn passwords_hash_to_argon2id_and_verify() {
        let phc = hash_password_with("correct horse battery", 1024, 1).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(password_matches("correct horse battery", &phc));
        assert!(!password_matches("correct horse batterY", &phc));
        assert!(!password_matches("", &phc));
        assert_ne!(
            phc,
            hash_password_with("correct horse battery", 1024, 1).unwrap()
        );
        assert!(hash_password_with("", 1024, 1).is_err());
    }
}
