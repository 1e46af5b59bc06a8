//! The destination server's configuration: the TOML file, its validation, and its defaults.
//!
//! Every key is documented in `docs/CONFIG.md` and in `config/destination.toml`. Loading never
//! half-succeeds: either every key is valid, or the error names the key and what is wrong with
//! it, so `wharf` can exit with status 2 and a message the operator can act on.

pub use crate::strategy::AuthConfig;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use wharf_config::{ConfigError, Env, ProcessEnv};
use wharf_config::{err, toml_error};
pub use wharf_protocol::ladder::parse_duration;
use wharf_protocol::{Environment, VerificationToken};

/// Default largest accepted body: 40 MiB (docs/PROTOCOL.md section 4).
pub const DEFAULT_MAX_BODY_BYTES: usize = wharf_protocol::MAX_BODY_BYTES;
/// Default time the application has to answer a query. Redox gives the whole round trip 120 s;
/// 110 s leaves it time to relay our answer.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(110);
/// Default time the application has to accept one forwarded message.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap of the forwarder's exponential backoff.
pub const DEFAULT_FORWARD_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Default number of messages that may wait for the inbox writer before 503.
pub const DEFAULT_WRITER_QUEUE_CAPACITY: usize = 4096;
/// Default time a forwarded message stays in the inbox before the retention task deletes it.
pub const DEFAULT_FORWARDED_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// Default most failed authentications per client address per window before 429.
pub const DEFAULT_AUTH_FAILURE_LIMIT: u32 = 20;
/// Default window of `auth_failure_limit`.
pub const DEFAULT_AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Default time the head of a destination may keep failing before the forwarder says it is
/// stuck (a warning in the log, and `alert_webhook_url`).
pub const DEFAULT_STUCK_ALERT_AFTER: Duration = Duration::from_secs(300);
/// Paths the server answers itself; no destination may take them.
pub const RESERVED_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/_wharf",
    "/_wharf/skip",
    "/_wharf/replay",
];

/// A validated destination server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `database_url` (or `database_url_env`): PostgreSQL, shared by several destination servers;
    /// `None`: SQLite files in `data_dir`.
    pub database_url: Option<wharf_config::DatabaseUrl>,
    /// Most connections to the PostgreSQL database (`database_max_connections`).
    pub database_max_connections: usize,
    pub tls: Option<TlsFiles>,
    pub writer_queue_capacity: usize,
    /// WAL size past which the SQLite inbox's writer restarts the WAL (`wal_reset_bytes`).
    pub wal_reset_bytes: u64,
    /// How long a forwarded message stays in the inbox (`forwarded_retention`); `None`:
    /// for ever.
    pub forwarded_retention: Option<Duration>,
    /// Password of the `/_wharf` status page; the page is off without one.
    pub admin_token: Option<VerificationToken>,
    /// Bearer token `/metrics` requires (`metrics_token`); open without one.
    pub metrics_token: Option<VerificationToken>,
    /// The server's public base URL as senders reach it (`public_url`), like
    /// `https://dest.example.com`: token endpoints' URLs (what client assertions name as
    /// `aud`) are built from it when `token_url` is not set.
    pub public_url: Option<reqwest::Url>,
    /// Failed authentications a client address may make per `auth_failure_window` before it
    /// is answered 429 (`auth_failure_limit`); 0 turns the limit off.
    pub auth_failure_limit: u32,
    pub auth_failure_window: Duration,
    /// Connection cap and read timeouts (`max_connections`, `header_read_timeout`,
    /// `idle_timeout`, `body_read_timeout`).
    pub serve: wharf_serve::ServeOptions,
    /// How long the head of a destination may keep failing before it is reported stuck
    /// (`stuck_alert_after`).
    pub stuck_alert_after: Duration,
    /// Where stuck, recovered and dead-lettered forwarding is POSTed as JSON
    /// (`alert_webhook_url`); the log says it either way.
    pub alert_webhook_url: Option<reqwest::Url>,
    pub destinations: Vec<DestinationConfig>,
}

pub use wharf_serve::TlsFiles;

/// One destination: a URL path Redox POSTs to, and what to do with what arrives there.
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    pub name: String,
    pub path: String,
    pub environment: Environment,
    /// Optional only when `auth` is set; when configured it is checked as well.
    pub verification_token: Option<VerificationToken>,
    /// The auth strategy every request must also satisfy (`[destinations.auth]`).
    pub auth: Option<AuthConfig>,
    pub forward_url: Option<reqwest::Url>,
    pub query_url: Option<reqwest::Url>,
    pub max_body_bytes: usize,
    pub query_timeout: Duration,
    pub forward_timeout: Duration,
    pub forward_max_backoff: Duration,
    /// When the forwarder gives up on a message and moves it to the dead letters
    /// (`dead_letter_after`); `None`: never, strict order holds until an operator skips it.
    pub dead_letter_after: Option<DeadLetterAfter>,
}

/// `dead_letter_after = { attempts = 50, age = "6h" }`: a message is moved to the dead letters
/// after this many failed attempts, or once its first failed attempt is this old, whichever
/// comes first (either may be left out, not both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterAfter {
    pub attempts: Option<u32>,
    pub age: Option<Duration>,
}

impl DeadLetterAfter {
    /// Why a message with `attempts` failed attempts, the first `failing_for` ago, goes to
    /// the dead letters now; `None` while it is still retried.
    pub fn reason(&self, attempts: i64, failing_for: Duration) -> Option<String> {
        if let Some(max) = self.attempts
            && attempts >= i64::from(max)
        {
            return Some(format!(
                "dead_letter_after: {attempts} forwarding attempts failed (attempts = {max})"
            ));
        }
        if let Some(age) = self.age
            && failing_for >= age
        {
            return Some(format!(
                "dead_letter_after: forwarding failed for {} s (age = {} s)",
                failing_for.as_secs(),
                age.as_secs()
            ));
        }
        None
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadLetterAfter {
    attempts: Option<u32>,
    age: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_url_env: Option<String>,
    database_max_connections: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    writer_queue_capacity: Option<usize>,
    wal_reset_bytes: Option<u64>,
    forwarded_retention: Option<String>,
    admin_token: Option<String>,
    admin_token_env: Option<String>,
    metrics_token: Option<String>,
    metrics_token_env: Option<String>,
    public_url: Option<String>,
    auth_failure_limit: Option<u32>,
    auth_failure_window: Option<String>,
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    body_read_timeout: Option<String>,
    stuck_alert_after: Option<String>,
    alert_webhook_url: Option<String>,
    #[serde(default)]
    destinations: Vec<RawDestination>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    name: Option<String>,
    path: Option<String>,
    environment: Option<String>,
    verification_token: Option<String>,
    verification_token_env: Option<String>,
    forward_url: Option<String>,
    query_url: Option<String>,
    max_body_bytes: Option<usize>,
    query_timeout: Option<String>,
    forward_timeout: Option<String>,
    forward_max_backoff: Option<String>,
    dead_letter_after: Option<RawDeadLetterAfter>,
    auth: Option<crate::strategy::config::RawAuth>,
}

impl Config {
    /// Reads, parses and validates a configuration file, applying `WHARF_LISTEN` and
    /// `WHARF_DATA_DIR` overrides from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        wharf_config::load(path, Config::parse)
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, e))?;
        let (listen, data_dir) = wharf_config::listen_and_data_dir(
            env,
            raw.listen,
            raw.data_dir,
            "127.0.0.1:8443",
            "wharf-data/destination",
        )?;
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(err("tls_key", "is missing: tls_cert needs tls_key")),
            (None, Some(_)) => return Err(err("tls_cert", "is missing: tls_key needs tls_cert")),
        };
        let writer_queue_capacity = raw
            .writer_queue_capacity
            .unwrap_or(DEFAULT_WRITER_QUEUE_CAPACITY);
        if writer_queue_capacity == 0 {
            return Err(err("writer_queue_capacity", "must be at least 1"));
        }
        let forwarded_retention = match raw.forwarded_retention.as_deref() {
            None => Some(DEFAULT_FORWARDED_RETENTION),
            Some("forever") => None,
            Some(text) => Some(parse_duration(text).filter(|d| !d.is_zero()).ok_or_else(|| {
                err(
                    "forwarded_retention",
                    format!(
                        "{text:?} is neither a positive duration like \"30d\" or \"12h\" nor \"forever\""
                    ),
                )
            })?),
        };
        let serve = wharf_serve::ServeOptions::from_config(
            raw.max_connections,
            raw.header_read_timeout.as_deref(),
            raw.idle_timeout.as_deref(),
            raw.body_read_timeout.as_deref(),
        )?;
        let admin_token =
            wharf_config::secret_token(env, "admin_token", raw.admin_token, raw.admin_token_env)?;
        let metrics_token = wharf_config::secret_token(
            env,
            "metrics_token",
            raw.metrics_token,
            raw.metrics_token_env,
        )?;
        let public_url = raw
            .public_url
            .map(|u| public_url("public_url", &u))
            .transpose()?;
        let auth_failure_limit = raw.auth_failure_limit.unwrap_or(DEFAULT_AUTH_FAILURE_LIMIT);
        let auth_failure_window = wharf_config::duration(
            "auth_failure_window",
            raw.auth_failure_window.as_deref(),
            DEFAULT_AUTH_FAILURE_WINDOW,
        )?;
        if auth_failure_window > Duration::from_secs(86_400) {
            return Err(err("auth_failure_window", "must be at most 24h"));
        }
        if raw.destinations.is_empty() {
            return Err(err(
                "destinations",
                "no [[destinations]] configured: add at least one with name, path, environment and verification_token",
            ));
        }
        let mut destinations = Vec::with_capacity(raw.destinations.len());
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        for (i, raw) in raw.destinations.into_iter().enumerate() {
            let mut d = destination(i, raw, env)?;
            if let Some(auth) = &mut d.auth {
                token_url(i, auth, public_url.as_ref())?;
            }
            if !names.insert(d.name.clone()) {
                return Err(err(
                    format!("destinations[{i}].name"),
                    format!(
                        "{:?} is used by another destination; names must be unique",
                        d.name
                    ),
                ));
            }
            if !paths.insert(d.path.clone()) {
                return Err(err(
                    format!("destinations[{i}].path"),
                    format!(
                        "{:?} is used by another destination; paths must be unique",
                        d.path
                    ),
                ));
            }
            if let Some(token_path) = d.auth.as_ref().and_then(|a| a.token_path.clone())
                && (RESERVED_PATHS.contains(&token_path.as_str())
                    || !paths.insert(token_path.clone()))
            {
                return Err(err(
                    format!("destinations[{i}].auth.token_path"),
                    format!(
                        "{token_path:?} is already used by a destination, another token endpoint or the server itself; choose another path"
                    ),
                ));
            }
            if d.environment.requires_tls() && tls.is_none() {
                return Err(err(
                    format!("destinations[{i}].environment"),
                    format!(
                        "{} destinations carry PHI and must be served over HTTPS: set tls_cert and tls_key, or use environment = \"Development\"",
                        d.environment
                    ),
                ));
            }
            destinations.push(d);
        }
        let stuck_alert_after = wharf_config::duration(
            "stuck_alert_after",
            raw.stuck_alert_after.as_deref(),
            DEFAULT_STUCK_ALERT_AFTER,
        )?;
        let alert_webhook_url = raw
            .alert_webhook_url
            .map(|u| http_url("alert_webhook_url", &u))
            .transpose()?;
        let database_url = wharf_config::database_url(env, raw.database_url, raw.database_url_env)?;
        let wal_reset_bytes = wal_reset_bytes(raw.wal_reset_bytes, database_url.is_some())?;
        Ok(Config {
            listen,
            data_dir,
            database_max_connections: wharf_config::database_max_connections(
                raw.database_max_connections,
                database_url.as_ref(),
                wharf_store::DEFAULT_INBOX_MAX_CONNECTIONS,
            )?,
            database_url,
            tls,
            writer_queue_capacity,
            wal_reset_bytes,
            forwarded_retention,
            admin_token,
            metrics_token,
            public_url,
            auth_failure_limit,
            auth_failure_window,
            serve,
            stuck_alert_after,
            alert_webhook_url,
            destinations,
        })
    }
}

/// `public_url`: an http(s) base URL without query or fragment; a trailing `/` is dropped when
/// paths are appended.
fn public_url(key: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
    let url = http_url(key, text)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err(
            key,
            format!(
                "{text:?} must be a base URL like \"https://dest.example.com\", without query or fragment"
            ),
        ));
    }
    Ok(url)
}

/// Fills in the token URL of destination `i`'s token endpoint from `public_url` when
/// `token_url` is not set, and refuses a strategy whose token endpoint checks an audience
/// (SMART Backend, the GCP JWT grant) without either: the audience must never be taken from
/// the request, or an assertion minted for another server would be accepted here by sending
/// that server's name as `Host`.
fn token_url(
    i: usize,
    auth: &mut AuthConfig,
    public_url: Option<&reqwest::Url>,
) -> Result<(), ConfigError> {
    let Some(path) = auth.token_path.as_deref() else {
        return Ok(());
    };
    if auth.token_url.is_none()
        && let Some(base) = public_url
    {
        auth.token_url = Some(format!("{}{path}", base.as_str().trim_end_matches('/')));
    }
    if auth.token_url.is_none()
        && matches!(
            auth.strategy,
            wharf_auth::strategy::Strategy::SmartBackend
                | wharf_auth::strategy::Strategy::OAuthJwtBearerGcp
        )
    {
        return Err(err(
            format!("destinations[{i}].auth.token_url"),
            format!(
                "is required for {}: the token endpoint's public URL, which client assertions must name as aud, like \"https://dest.example.com{path}\" (or set public_url, the server's base URL, and it is built from that)",
                auth.strategy
            ),
        ));
    }
    Ok(())
}

/// `wal_reset_bytes`: SQLite only, 1 MiB to 64 GiB.
fn wal_reset_bytes(value: Option<u64>, on_postgres: bool) -> Result<u64, ConfigError> {
    const KEY: &str = "wal_reset_bytes";
    const RANGE: std::ops::RangeInclusive<u64> = (1 << 20)..=(64 << 30);
    match value {
        None => Ok(wharf_store::DEFAULT_WAL_RESET_BYTES),
        Some(_) if on_postgres => Err(err(
            KEY,
            "only applies to the SQLite inbox: remove it, or remove database_url",
        )),
        Some(n) if !RANGE.contains(&n) => Err(err(
            KEY,
            format!("{n} is out of range: give 1048576 (1 MiB) to 68719476736 (64 GiB)"),
        )),
        Some(n) => Ok(n),
    }
}

fn destination(
    i: usize,
    raw: RawDestination,
    env: &dyn Env,
) -> Result<DestinationConfig, ConfigError> {
    let key = |k: &str| format!("destinations[{i}].{k}");
    let name = raw
        .name
        .ok_or_else(|| err(key("name"), "is required: the name shown to partners"))?;
    if name.trim().is_empty() {
        return Err(err(key("name"), "must not be empty"));
    }
    let path = raw.path.ok_or_else(|| {
        err(
            key("path"),
            "is required: the URL path Redox POSTs to, like \"/redox\"",
        )
    })?;
    if !path.starts_with('/') {
        return Err(err(key("path"), format!("{path:?} must start with '/'")));
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            key("path"),
            format!("{path:?} must be a plain URL path, without query, fragment or spaces"),
        ));
    }
    if RESERVED_PATHS.contains(&path.as_str()) {
        return Err(err(
            key("path"),
            format!("{path:?} is reserved for the server's own use; choose another path"),
        ));
    }
    let environment: Environment = raw
        .environment
        .ok_or_else(|| {
            err(
                key("environment"),
                "is required: Development, Staging or Production",
            )
        })?
        .parse()
        .map_err(|e: wharf_protocol::environment::UnknownEnvironment| {
            err(key("environment"), e.to_string())
        })?;
    let auth = raw
        .auth
        .map(|a| crate::strategy::config::parse(&format!("destinations[{i}]"), a, env))
        .transpose()?;
    let given = wharf_config::value_or_env(
        env,
        &key("verification_token"),
        raw.verification_token,
        raw.verification_token_env,
    )?;
    let token_text = match given {
        Some(given) => Some(given.value),
        None if auth.is_some() => None,
        None => {
            return Err(err(
                key("verification_token"),
                "is required (or verification_token_env, or an [destinations.auth] strategy): the token Redox sends with every request",
            ));
        }
    };
    let verification_token = token_text
        .map(VerificationToken::new)
        .transpose()
        .map_err(|e| err(key("verification_token"), e.to_string()))?;
    if let Some(token) = &verification_token {
        wharf_config::strong_secret(&key("verification_token"), token.expose())?;
    }
    let forward_url = raw
        .forward_url
        .map(|u| http_url(&key("forward_url"), &u))
        .transpose()?;
    let query_url = raw
        .query_url
        .map(|u| http_url(&key("query_url"), &u))
        .transpose()?;
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        return Err(err(key("max_body_bytes"), "must be at least 1"));
    }
    let duration = |k: &str, v: Option<String>, default: Duration| {
        wharf_config::duration(&key(k), v.as_deref(), default)
    };
    let dead_letter_after = match raw.dead_letter_after {
        None => None,
        Some(RawDeadLetterAfter {
            attempts: None,
            age: None,
        }) => {
            return Err(err(
                key("dead_letter_after"),
                "needs attempts, age or both, like { attempts = 50, age = \"6h\" }; leave it out to keep strict order until an operator skips a message",
            ));
        }
        Some(RawDeadLetterAfter { attempts, age }) => {
            if attempts == Some(0) {
                return Err(err(key("dead_letter_after.attempts"), "must be at least 1"));
            }
            let age = age
                .map(|text| {
                    wharf_config::duration(
                        &key("dead_letter_after.age"),
                        Some(&text),
                        Duration::ZERO,
                    )
                })
                .transpose()?;
            Some(DeadLetterAfter { attempts, age })
        }
    };
    Ok(DestinationConfig {
        query_timeout: duration("query_timeout", raw.query_timeout, DEFAULT_QUERY_TIMEOUT)?,
        forward_timeout: duration(
            "forward_timeout",
            raw.forward_timeout,
            DEFAULT_FORWARD_TIMEOUT,
        )?,
        forward_max_backoff: duration(
            "forward_max_backoff",
            raw.forward_max_backoff,
            DEFAULT_FORWARD_MAX_BACKOFF,
        )?,
        dead_letter_after,
        name,
        path,
        environment,
        verification_token,
        auth,
        forward_url,
        query_url,
        max_body_bytes,
    })
}

fn http_url(key: &str, text: &str) -> Result<reqwest::Url, ConfigError> {
    let url =
        reqwest::Url::parse(text).map_err(|e| err(key, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(err(
            key,
            format!("{text:?} must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);
    impl Env for MapEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
    }

    fn no_env() -> MapEnv {
        MapEnv(HashMap::new())
    }

    const MINIMAL: &str = r#"
listen = "127.0.0.1:0"
data_dir = "d"
[[destinations]]
name = "Acme"
path = "/redox"
environment = "Development"
verification_token = "tok-0123456789abcdef-0123456789abcdef"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MINIMAL, &no_env()).unwrap();
        let d = &c.destinations[0];
        assert_eq!(d.max_body_bytes, 40 * 1024 * 1024);
        assert_eq!(d.query_timeout, Duration::from_secs(110));
        assert!(d.forward_url.is_none());
        assert!(c.tls.is_none());
    }

    fn problem(text: &str) -> ConfigError {
        Config::parse(text, &no_env()).unwrap_err()
    }

    #[test]
    fn database_keys_and_the_environment_override() {
        let c = Config::parse(MINIMAL, &no_env()).unwrap();
        assert!(c.database_url.is_none());
        assert_eq!(c.database_max_connections, 8);
        let pg =
            format!("database_url = \"postgres://u@h/d\"\ndatabase_max_connections = 3\n{MINIMAL}");
        let c = Config::parse(&pg, &no_env()).unwrap();
        assert_eq!(c.database_url.unwrap().as_str(), "postgres://u@h/d");
        assert_eq!(c.database_max_connections, 3);
        let e = problem(&format!("database_max_connections = 3\n{MINIMAL}"));
        assert_eq!(e.key, "database_max_connections");
        let env = MapEnv(HashMap::from([("WHARF_DATABASE_URL", "postgres://o@h/d")]));
        let c = Config::parse(&pg, &env).unwrap();
        assert_eq!(c.database_url.unwrap().as_str(), "postgres://o@h/d");
    }

    #[test]
    fn wal_reset_bytes_defaults_to_512_mib_and_applies_to_sqlite_only() {
        let c = Config::parse(MINIMAL, &no_env()).unwrap();
        assert_eq!(c.wal_reset_bytes, 512 * 1024 * 1024);
        let with = |value: &str| format!("wal_reset_bytes = {value}\n{MINIMAL}");
        let c = Config::parse(&with("1048576"), &no_env()).unwrap();
        assert_eq!(c.wal_reset_bytes, 1024 * 1024);
        for bad in ["1048575", "0", "68719476737"] {
            assert_eq!(problem(&with(bad)).key, "wal_reset_bytes", "{bad}");
        }
        // Not a byte count at all: the parser's error quotes the line.
        for bad in ["-1", "\"512MB\""] {
            let e = problem(&with(bad));
            assert!(
                e.problem.contains("wal_reset_bytes"),
                "{bad}: {}",
                e.problem
            );
        }
        assert!(problem(&with("1")).problem.contains("1 MiB"));
        let pg = format!("database_url = \"postgres://u@h/d\"\n{}", with("1048576"));
        let e = problem(&pg);
        assert_eq!(e.key, "wal_reset_bytes");
        assert!(e.problem.contains("SQLite"), "{}", e.problem);
    }

    #[test]
    fn forwarded_retention_defaults_to_30_days_and_may_be_forever() {
        let c = Config::parse(MINIMAL, &no_env()).unwrap();
        assert_eq!(
            c.forwarded_retention,
            Some(Duration::from_secs(30 * 86_400))
        );
        let with = |value: &str| format!("forwarded_retention = \"{value}\"\n{MINIMAL}");
        let c = Config::parse(&with("7d"), &no_env()).unwrap();
        assert_eq!(c.forwarded_retention, Some(Duration::from_secs(7 * 86_400)));
        let c = Config::parse(&with("forever"), &no_env()).unwrap();
        assert_eq!(c.forwarded_retention, None);
        for bad in ["0s", "a month", "30"] {
            let e = problem(&with(bad));
            assert_eq!(e.key, "forwarded_retention");
            assert!(e.problem.contains("forever"), "{e}");
        }
    }

    #[test]
    fn dead_letter_after_and_alerts() {
        let c = Config::parse(MINIMAL, &no_env()).unwrap();
        assert_eq!(c.destinations[0].dead_letter_after, None);
        assert_eq!(c.stuck_alert_after, Duration::from_secs(300));
        assert!(c.alert_webhook_url.is_none());
        let with = |line: &str| format!("{MINIMAL}{line}\n");
        let c = Config::parse(&with("dead_letter_after = { attempts = 5 }"), &no_env()).unwrap();
        let after = c.destinations[0].dead_letter_after.unwrap();
        assert_eq!(
            after,
            DeadLetterAfter {
                attempts: Some(5),
                age: None
            }
        );
        assert_eq!(after.reason(4, Duration::from_secs(1_000_000)), None);
        assert!(
            after
                .reason(5, Duration::ZERO)
                .unwrap()
                .contains("5 forwarding attempts")
        );
        let c = Config::parse(&with("dead_letter_after = { age = \"1h\" }"), &no_env()).unwrap();
        let after = c.destinations[0].dead_letter_after.unwrap();
        assert_eq!(after.reason(1_000, Duration::from_secs(3599)), None);
        assert!(after.reason(1, Duration::from_secs(3600)).is_some());
        for (bad, key) in [
            (
                "dead_letter_after = {}",
                "destinations[0].dead_letter_after",
            ),
            (
                "dead_letter_after = { attempts = 0 }",
                "destinations[0].dead_letter_after.attempts",
            ),
            (
                "dead_letter_after = { age = \"soon\" }",
                "destinations[0].dead_letter_after.age",
            ),
        ] {
            assert_eq!(problem(&with(bad)).key, key, "{bad}");
        }
        let top = |line: &str| format!("{line}\n{MINIMAL}");
        let c = Config::parse(
            &top(
                "alert_webhook_url = \"https://ops.example.com/hook\"\nstuck_alert_after = \"1m\"",
            ),
            &no_env(),
        )
        .unwrap();
        assert_eq!(
            c.alert_webhook_url.unwrap().as_str(),
            "https://ops.example.com/hook"
        );
        assert_eq!(c.stuck_alert_after, Duration::from_secs(60));
        assert_eq!(
            problem(&top("alert_webhook_url = \"ftp://x\"")).key,
            "alert_webhook_url"
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let e = problem(&MINIMAL.replace("/redox", "redox"));
        assert_eq!(e.key, "destinations[0].path");
        let e = problem(&MINIMAL.replace("Development", "Prod"));
        assert_eq!(e.key, "destinations[0].environment");
        assert!(e.problem.contains("Development, Staging or Production"));
        let e = problem(&MINIMAL.replace(
            "verification_token = \"tok-0123456789abcdef-0123456789abcdef\"",
            "",
        ));
        assert_eq!(e.key, "destinations[0].verification_token");
        let e = problem(&MINIMAL.replace("127.0.0.1:0", "localhost"));
        assert_eq!(e.key, "listen");
        let e = problem(&format!("{MINIMAL}query_timeout = \"soon\"\n"));
        assert_eq!(e.key, "destinations[0].query_timeout");
        let e = problem(&format!("{MINIMAL}forward_url = \"ftp://x\"\n"));
        assert_eq!(e.key, "destinations[0].forward_url");
        let e = problem(&MINIMAL.replace("/redox", "/healthz"));
        assert!(e.problem.contains("reserved"));
    }

    #[test]
    fn syntax_and_type_errors_point_at_the_line() {
        let e = problem(&format!("{MINIMAL}max_body_bytes = \"big\"\n"));
        assert!(e.to_string().contains("max_body_bytes"), "{e}");
        let e = problem(&format!("{MINIMAL}unknown_key = 1\n"));
        assert!(e.to_string().contains("unknown_key"), "{e}");
    }

    #[test]
    fn production_without_tls_refuses() {
        let e = problem(&MINIMAL.replace("Development", "Production"));
        assert_eq!(e.key, "destinations[0].environment");
        assert!(e.problem.contains("HTTPS"), "{e}");
        let with_tls = format!(
            "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n{}",
            MINIMAL.replace("Development", "Production")
        );
        assert!(Config::parse(&with_tls, &no_env()).is_ok());
    }

    #[test]
    fn token_from_environment() {
        let text = MINIMAL.replace(
            "verification_token = \"tok-0123456789abcdef-0123456789abcdef\"",
            "verification_token_env = \"T\"",
        );
        let env = MapEnv(HashMap::from([(
            "T",
            "from-env-0123456789abcdef-0123456789",
        )]));
        let c = Config::parse(&text, &env).unwrap();
        assert!(
            c.destinations[0]
                .verification_token
                .as_ref()
                .unwrap()
                .matches(b"from-env-0123456789abcdef-0123456789")
        );
        let e = problem(&text);
        assert_eq!(e.key, "destinations[0].verification_token_env");
    }

    #[test]
    fn duplicates_refused() {
        let twice = format!("{MINIMAL}{}", &MINIMAL[MINIMAL.find("[[").unwrap()..]);
        assert_eq!(problem(&twice).key, "destinations[1].name");
        let twice_path = twice.replacen("name = \"Acme\"", "name = \"Other\"", 1);
        assert_eq!(problem(&twice_path).key, "destinations[1].path");
    }

    #[test]
    fn environment_overrides_listen_and_data_dir() {
        let env = MapEnv(HashMap::from([
            ("WHARF_LISTEN", "127.0.0.1:9999"),
            ("WHARF_DATA_DIR", "/tmp/x"),
        ]));
        let c = Config::parse(MINIMAL, &env).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn auth_tables_are_validated_per_strategy() {
        let with = |auth: &str| format!("{MINIMAL}[destinations.auth]\n{auth}\n");
        let c = Config::parse(
            &with(
                r#"strategy = "OAuth_2.0_2-legged"
token_path = "/redox/token"
clients = [{ client_id = "redox", client_secret_env = "SECRET" }]"#,
            ),
            &MapEnv(HashMap::from([(
                "SECRET",
                "s3cret-0123456789abcdef-0123456789",
            )])),
        )
        .unwrap();
        let auth = c.destinations[0].auth.as_ref().unwrap();
        assert_eq!(
            auth.clients[0].client_secret.as_deref(),
            Some("s3cret-0123456789abcdef-0123456789")
        );
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug never shows secrets"
        );

        let e = problem(&with(r#"strategy = "Basic""#));
        assert_eq!(e.key, "destinations[0].auth.strategy");
        assert!(e.problem.contains("SMART_Backend"), "{e}");
        let e = problem(&with(
            r#"strategy = "JWT_Bearer"
issuer = "i"
audience = "a"
region = "us-east-1"
jwks_url = "https://keys.example/jwks""#,
        ));
        assert_eq!(e.key, "destinations[0].auth.region");
        let e = problem(&with(
            r#"strategy = "JWT_Bearer"
issuer = "i"
audience = "a"
jwks_url = "http://keys.example/jwks""#,
        ));
        assert_eq!(e.key, "destinations[0].auth.jwks_url");
        assert!(e.problem.contains("https"), "{e}");
        let e = problem(&with(
            r#"strategy = "SMART_Backend"
token_path = "/t"
token_url = "https://dest.example/t"
clients = [{ client_id = "c" }]"#,
        ));
        assert_eq!(e.key, "destinations[0].auth.clients[0].jwks_url");
        let e = problem(&with(
            r#"strategy = "AwsSigv4"
region = "us-east-1"
service = "execute-api"
credentials = [{ access_key = "AK" }]"#,
        ));
        assert_eq!(e.key, "destinations[0].auth.credentials[0].secret_key");
        let e = problem(&with(
            r#"strategy = "OAuth_2.0_2-legged"
token_path = "/redox"
clients = [{ client_id = "c", client_secret = "s-0123456789abcdef-0123456789abcdef" }]"#,
        ));
        assert_eq!(e.key, "destinations[0].auth.token_path");
        let e = problem(&with(
            r#"strategy = "OAuth_2.0_2-legged"
token_path = "/redox/token"
clients = [{ client_id = "c", client_secret = "s3cret" }]"#,
        ));
        assert_eq!(e.key, "destinations[0].auth.clients[0].client_secret");
        assert!(e.problem.contains("openssl rand -hex 32"), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = problem(&with(
            r#"strategy = "JWT_Bearer"
issuer = "i"
audience = "a"
jwks = '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}'"#,
        ));
        assert_eq!(e.key, "destinations[0].auth.jwks");
    }

    #[test]
    fn the_verification_token_is_optional_only_with_a_strategy() {
        let text = MINIMAL.replace(
            "verification_token = \"tok-0123456789abcdef-0123456789abcdef\"",
            "",
        );
        let e = problem(&text);
        assert_eq!(e.key, "destinations[0].verification_token");
        let text = format!(
            "{text}[destinations.auth]\nstrategy = \"AwsSigv4\"\nregion = \"r\"\nservice = \"s\"\ncredentials = [{{ access_key = \"AK\", secret_key = \"SK\" }}]\n"
        );
        let c = Config::parse(&text, &no_env()).unwrap();
        assert!(c.destinations[0].verification_token.is_none());
    }

    #[test]
    fn secrets_shorter_than_32_characters_are_refused_naming_the_key() {
        let short = "short-but-not-32-chars";
        let cases = [
            (
                MINIMAL.replace("tok-0123456789abcdef-0123456789abcdef", short),
                "destinations[0].verification_token",
            ),
            (
                format!("admin_token = \"{short}\"\n{MINIMAL}"),
                "admin_token",
            ),
            (
                format!("metrics_token = \"{short}\"\n{MINIMAL}"),
                "metrics_token",
            ),
            (
                format!("admin_token_env = \"SHORT\"\n{MINIMAL}"),
                "admin_token_env",
            ),
        ];
        let env = MapEnv(HashMap::from([("SHORT", short)]));
        for (text, key) in cases {
            let e = Config::parse(&text, &env).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.problem.contains("openssl rand -hex 32"), "{e}");
            assert!(
                !e.to_string().contains(short),
                "the secret is not echoed: {e}"
            );
        }
        let long = "m".repeat(32);
        let c = Config::parse(
            &format!("metrics_token = \"{long}\"\nadmin_token = \"{long}\"\n{MINIMAL}"),
            &no_env(),
        )
        .unwrap();
        assert!(c.metrics_token.unwrap().matches(long.as_bytes()));
    }

    #[test]
    fn audience_checking_token_endpoints_need_a_configured_url() {
        let smart = |top: &str, extra: &str| {
            format!(
                "{top}{MINIMAL}[destinations.auth]\nstrategy = \"SMART_Backend\"\ntoken_path = \"/redox/token\"\n{extra}clients = [{{ client_id = \"c\", jwks_url = \"https://keys.example/jwks\" }}]\n"
            )
        };
        for strategy in ["SMART_Backend", "OAuth_2.0_JWT_Bearer_GCP"] {
            let e = problem(&smart("", "").replace("SMART_Backend", strategy));
            assert_eq!(e.key, "destinations[0].auth.token_url", "{strategy}");
            assert!(e.problem.contains("public_url"), "{e}");
        }
        // From public_url (a trailing slash or not), or given outright.
        for base in ["https://dest.example.com", "https://dest.example.com/"] {
            let c = Config::parse(&smart(&format!("public_url = \"{base}\"\n"), ""), &no_env())
                .unwrap();
            let auth = c.destinations[0].auth.as_ref().unwrap();
            assert_eq!(
                auth.token_url.as_deref(),
                Some("https://dest.example.com/redox/token")
            );
        }
        let c = Config::parse(
            &smart(
                "public_url = \"https://dest.example.com\"\n",
                "token_url = \"https://edge.example/t\"\n",
            ),
            &no_env(),
        )
        .unwrap();
        let auth = c.destinations[0].auth.as_ref().unwrap();
        assert_eq!(auth.token_url.as_deref(), Some("https://edge.example/t"));
        let e = problem(&smart("public_url = \"dest.example.com\"\n", ""));
        assert_eq!(e.key, "public_url");
        let e = problem(&smart("", "token_url = \"/redox/token\"\n"));
        assert_eq!(e.key, "destinations[0].auth.token_url");
    }

    #[test]
    fn the_failed_authentication_limit_defaults_to_20_a_minute() {
        let c = Config::parse(MINIMAL, &no_env()).unwrap();
        assert_eq!(c.auth_failure_limit, 20);
        assert_eq!(c.auth_failure_window, Duration::from_secs(60));
        let c = Config::parse(
            &format!("auth_failure_limit = 0\nauth_failure_window = \"5m\"\n{MINIMAL}"),
            &no_env(),
        )
        .unwrap();
        assert_eq!(c.auth_failure_limit, 0);
        assert_eq!(c.auth_failure_window, Duration::from_secs(300));
        let e = problem(&format!("auth_failure_window = \"0s\"\n{MINIMAL}"));
        assert_eq!(e.key, "auth_failure_window");
    }
}
