//! The engine's configuration: the TOML file, its validation, and its defaults.
//! Every key is documented in `docs/CONFIG.md` and in `config/engine.toml`.

use crate::secrets::MasterKey;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wharf_config::{ConfigError, Env, err, toml_error};
use wharf_protocol::Environment;
use wharf_protocol::ladder::{RetryLadder, parse_duration};

/// How long a pinned outbound client (and the DNS answer behind it) is reused by default.
pub const CLIENT_TTL: Duration = Duration::from_secs(60);

/// Default time a destination has to answer one delivery (docs/PROTOCOL.md section 6, our choice).
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default requests per client per [`DEFAULT_RATE_LIMIT_WINDOW`] (docs/PROTOCOL.md section 6).
pub const DEFAULT_RATE_LIMIT_REQUESTS: u32 = 10_000;
/// Default window of the rate limit.
pub const DEFAULT_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(300);
/// Default longest life of a dashboard session, however busy (`dashboard_session_lifetime`).
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Default failed sign-ins one address may make per [`DEFAULT_SIGNIN_FAILURE_WINDOW`].
pub const DEFAULT_SIGNIN_MAX_FAILURES: u32 = 10;
/// Default window the failed sign-ins are counted in.
pub const DEFAULT_SIGNIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Default password verifications (argon2, about 19 MiB each) run at once.
pub const DEFAULT_SIGNIN_CONCURRENT_HASHES: usize = 2;
/// The operator account `dashboard_password_hash` signs in as.
pub const ADMIN_OPERATOR: &str = "admin";
/// How long a log's payload (its body and its attempts' answers) is kept by default
/// (`payload_retention`).
pub const DEFAULT_PAYLOAD_RETENTION: Duration = Duration::from_secs(30 * 86_400);
/// How often the retention sweep runs by default (`retention_interval`).
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// A validated engine configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `database_url` (or `database_url_env`): PostgreSQL, shared by several engines;
    /// `None`: SQLite files in `data_dir`.
    pub database_url: Option<wharf_config::DatabaseUrl>,
    /// Most connections to the PostgreSQL database (`database_max_connections`).
    pub database_max_connections: usize,
    /// The default organization, created on first start.
    pub organization: String,
    /// Bearer keys for the management API.
    pub api_keys: Vec<String>,
    /// The name of each of `api_keys`, at the same index: the `name` of a `{ name, key }`
    /// table, or `key-1`, `key-2`, ... by position for a plain string. The audit log names
    /// the key a request authenticated with.
    pub api_key_names: Vec<String>,
    pub master_key: Arc<MasterKey>,
    pub retry_ladder: RetryLadder,
    pub delivery_timeout: Duration,
    /// Lets destinations point at loopback and private addresses (link-local and cloud
    /// metadata addresses stay refused).
    pub private_endpoints: wharf_delivery::ssrf::PrivateAccess,
    /// The base URL others reach this engine at (no trailing slash), e.g. for the JWKS URLs of
    /// auth credentials. `None` in the file means `http://` + the address actually listened on.
    pub public_url: Option<String>,
    pub sources: Vec<Source>,
    /// The environments the organization may create destinations in. Development is always
    /// one of them; all three by default.
    pub enabled_environments: Vec<Environment>,
    /// The dashboard password as an argon2id PHC string (`wharf hash-password` makes one);
    /// `None`: only management keys sign in to the dashboard.
    pub dashboard_password_hash: Option<String>,
    /// The dashboard's operator accounts (`[[operators]]`), plus `admin` when
    /// `dashboard_password_hash` is set.
    pub operators: Vec<Operator>,
    /// How long a dashboard session lasts at most, however busy (`dashboard_session_lifetime`,
    /// 12 h by default); an idle one ends sooner.
    pub dashboard_session_lifetime: Duration,
    /// Failed dashboard sign-ins one address may make per `signin_failure_window` before it is
    /// refused with 429 (`signin_max_failures`, 10 by default).
    pub signin_max_failures: u32,
    pub signin_failure_window: Duration,
    /// Password verifications run at once (`signin_concurrent_hashes`, 2): argon2 takes about
    /// 19 MiB each; sign-ins beyond are refused with 429 rather than queued.
    pub signin_concurrent_hashes: usize,
    /// PEM certificate and key: with them the engine (API, ingestion, dashboard) speaks HTTPS
    /// only; reloaded on SIGHUP.
    pub tls: Option<wharf_serve::TlsFiles>,
    /// Bearer token `/metrics` requires (`metrics_token`); open without one.
    pub metrics_token: Option<Arc<wharf_protocol::VerificationToken>>,
    /// Where queue alerts go (docs/PROTOCOL.md section 6).
    pub alerts: AlertConfig,
    /// What the retention sweep erases, and how often it runs.
    pub retention: RetentionConfig,
    /// How often alert rules are evaluated (`alert_interval`).
    pub alert_interval: Duration,
    /// Connection cap and read timeouts (`max_connections`, `header_read_timeout`,
    /// `idle_timeout`, `body_read_timeout`), as for the destination.
    pub serve: wharf_serve::ServeOptions,
    /// Requests each client may make to ingestion, the management API and the dashboard's
    /// sign-in per `rate_limit_window`; 0 turns the limit off (see `rate_limit`).
    pub rate_limit_requests: u32,
    pub rate_limit_window: Duration,
    /// How destination and token endpoint host names are resolved before the address check.
    /// Not read from the file: the system's resolver, or a test's scripted one.
    pub resolver: wharf_delivery::ssrf::SharedResolver,
    /// How long a pinned outbound client (and the DNS answer behind it) is reused before the
    /// name is resolved and checked again. Not read from the file; tests shorten it.
    pub client_ttl: Duration,
}

/// Retention of logs (issue 29): payloads (PHI) are erased after `payload_retention`; the
/// metadata is kept for `log_retention` (for ever when unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    pub payload: Duration,
    pub logs: Option<Duration>,
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            payload: DEFAULT_PAYLOAD_RETENTION,
            logs: None,
            interval: DEFAULT_RETENTION_INTERVAL,
        }
    }
}

/// Queue alerts: the organization's alert contact and how to reach it.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// Environments whose queues alert (`alert_environments`, default Production only).
    pub environments: Vec<Environment>,
    /// `alert_webhook_url`: POSTed a JSON body per alert.
    pub webhook_url: Option<reqwest::Url>,
    /// `alert_email`: mailed per alert through `[smtp]`.
    pub email_to: Vec<String>,
    pub smtp: Option<SmtpConfig>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            environments: vec![Environment::Production],
            webhook_url: None,
            email_to: Vec::new(),
            smtp: None,
        }
    }
}

/// How alert email leaves: `[smtp]`.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// STARTTLS on a plain connection (port 587), required: the default.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host or network.
    None,
}

impl EngineConfig {
    /// Whether destinations may be created in `flag`'s environment.
    pub fn environment_enabled(&self, flag: Environment) -> bool {
        self.enabled_environments.contains(&flag)
    }
}

/// A dashboard operator account: a name the audit log records, an argon2id password hash, and
/// whether the account may see PHI (message bodies, destinations' answers).
#[derive(Clone)]
pub struct Operator {
    pub name: String,
    pub password_hash: String,
    pub may_view_phi: bool,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("may_view_phi", &self.may_view_phi)
            .finish_non_exhaustive()
    }
}

/// A system that submits data to the engine.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub api_key: String,
    /// The environment it sends into; `None`: every environment (a source record in each, as
    /// before sources had environments).
    pub environment: Option<wharf_protocol::Environment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    database_url_env: Option<String>,
    database_max_connections: Option<usize>,
    organization: Option<String>,
    /// Strings or `{ name, key }` tables, read by [`api_key`] (for errors naming the entry).
    api_keys: Option<Vec<toml::Value>>,
    api_keys_env: Option<String>,
    master_key: Option<String>,
    master_key_env: Option<String>,
    retry_ladder: Option<Vec<String>>,
    delivery_timeout: Option<String>,
    allow_private_endpoints: Option<bool>,
    private_endpoints: Option<Vec<String>>,
    public_url: Option<String>,
    #[serde(default)]
    sources: Vec<RawSource>,
    enabled_environments: Option<Vec<String>>,
    dashboard_password_hash: Option<String>,
    #[serde(default)]
    operators: Vec<RawOperator>,
    dashboard_session_lifetime: Option<String>,
    signin_max_failures: Option<u32>,
    signin_failure_window: Option<String>,
    signin_concurrent_hashes: Option<usize>,
    tls_cert: Option<PathBuf>,
    metrics_token: Option<String>,
    metrics_token_env: Option<String>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    body_read_timeout: Option<String>,
    alert_environments: Option<Vec<String>>,
    rate_limit_requests: Option<u32>,
    rate_limit_window: Option<String>,
    alert_webhook_url: Option<String>,
    alert_email: Option<Vec<String>>,
    smtp: Option<RawSmtp>,
    payload_retention: Option<String>,
    log_retention: Option<String>,
    retention_interval: Option<String>,
    alert_interval: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    from: Option<String>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
}

/// Entry `i` of `api_keys` as (name, key): a plain string is named `key-<i + 1>`, a
/// `{ name, key }` table by its name.
fn api_key(i: usize, value: toml::Value) -> Result<(String, String), ConfigError> {
    let shape =
        "must be a key (a string) or a named key { name = \"billing-export\", key = \"...\" }";
    let toml::Value::Table(mut table) = value else {
        return match value {
            toml::Value::String(key) => Ok((format!("key-{}", i + 1), key)),
            _ => Err(err(format!("api_keys[{i}]"), shape)),
        };
    };
    let mut text = |field: &str| match table.remove(field) {
        Some(toml::Value::String(v)) => Ok(v),
        _ => Err(err(
            format!("api_keys[{i}].{field}"),
            format!("is required and must be a string: {shape}"),
        )),
    };
    let (name, key) = (text("name")?, text("key")?);
    if let Some(extra) = table.keys().next() {
        return Err(err(
            format!("api_keys[{i}].{extra}"),
            format!("is not a field of a named key: {shape}"),
        ));
    }
    Ok((name, key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    name: Option<String>,
    password_hash: Option<String>,
    may_view_phi: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Option<String>,
    api_key: Option<String>,
    api_key_env: Option<String>,
    environment: Option<String>,
}

/// A required value, given as `key` or `key_env` ([`wharf_config::value_or_env`]).
fn required(
    env: &dyn Env,
    key: &str,
    value: Option<String>,
    var: Option<String>,
) -> Result<String, ConfigError> {
    wharf_config::value_or_env(env, key, value, var)?
        .map(|given| given.value)
        .ok_or_else(|| err(key, format!("is required (or {key}_env)")))
}

impl EngineConfig {
    /// Reads, parses and validates a configuration file (`WHARF_LISTEN` and `WHARF_DATA_DIR`
    /// override `listen` and `data_dir`).
    pub fn load(path: &Path) -> Result<EngineConfig, ConfigError> {
        wharf_config::load(path, EngineConfig::parse)
    }

    pub fn parse(text: &str, env: &dyn Env) -> Result<EngineConfig, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| toml_error(text, e))?;
        let (listen, data_dir) = wharf_config::listen_and_data_dir(
            env,
            raw.listen,
            raw.data_dir,
            "127.0.0.1:8080",
            "wharf-data/engine",
        )?;
        let organization = raw
            .organization
            .unwrap_or_else(|| "My Organization".to_owned());
        if organization.trim().is_empty() {
            return Err(err("organization", "must not be empty"));
        }
        // `api_keys` is a list in the file, a comma-separated string in the environment: the
        // x/x_env rule decides which one is given, from a marker for the file's list.
        let from_file = raw.api_keys.is_some().then(String::new);
        let api_keys =
            match wharf_config::value_or_env(env, "api_keys", from_file, raw.api_keys_env)? {
                Some(given) if given.key == "api_keys" => raw
                    .api_keys
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, k)| api_key(i, k))
                    .collect::<Result<_, _>>()?,
                Some(given) => given
                    .value
                    .split(',')
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .enumerate()
                    .map(|(i, k)| (format!("key-{}", i + 1), k))
                    .collect(),
                None => Vec::new(),
            };
        let (api_key_names, api_keys): (Vec<String>, Vec<String>) = api_keys.into_iter().unzip();
        check_names("api_keys", &api_key_names)?;
        if api_keys.is_empty() {
            return Err(err(
                "api_keys",
                "at least one management API key is required (or api_keys_env)",
            ));
        }
        let master = required(env, "master_key", raw.master_key, raw.master_key_env)?;
        let master_key = MasterKey::parse(&master).map_err(|e| err("master_key", e.to_string()))?;
        let retry_ladder = match raw.retry_ladder {
            None => RetryLadder::redox(),
            Some(steps) => {
                let mut parsed = Vec::with_capacity(steps.len());
                for (i, step) in steps.iter().enumerate() {
                    parsed.push(parse_duration(step).ok_or_else(|| {
                        err(
                            format!("retry_ladder[{i}]"),
                            format!("{step:?} is not a duration like \"10s\""),
                        )
                    })?);
                }
                RetryLadder::new(parsed)
                    .ok_or_else(|| err("retry_ladder", "needs at least one step"))?
            }
        };
        let delivery_timeout = wharf_config::duration(
            "delivery_timeout",
            raw.delivery_timeout.as_deref(),
            DEFAULT_DELIVERY_TIMEOUT,
        )?;
        let public_url = raw.public_url.map(|u| check_public_url(&u)).transpose()?;
        let mut sources = Vec::with_capacity(raw.sources.len());
        for (i, s) in raw.sources.into_iter().enumerate() {
            let name = s
                .name
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| err(format!("sources[{i}].name"), "is required"))?;
            let api_key = required(
                env,
                &format!("sources[{i}].api_key"),
                s.api_key,
                s.api_key_env,
            )?;
            let environment = s
                .environment
                .map(|e| {
                    e.parse::<wharf_protocol::Environment>()
                        .map_err(|e| err(format!("sources[{i}].environment"), e.to_string()))
                })
                .transpose()?;
            sources.push(Source {
                name,
                api_key,
                environment,
            });
        }
        check_keys(&api_keys, &sources)?;
        let private_endpoints = wharf_delivery::ssrf::PrivateAccess {
            all: raw.allow_private_endpoints.unwrap_or(false),
            endpoints: socket_addresses("private_endpoints", raw.private_endpoints)?,
        };
        let enabled_environments = enabled_environments(raw.enabled_environments)?;
        let dashboard_password_hash = raw
            .dashboard_password_hash
            .map(|phc| check_password_hash(&phc).map(|()| phc))
            .transpose()?;
        let operators = operators(raw.operators, dashboard_password_hash.as_deref())?;
        let signin_failure_window = wharf_config::duration(
            "signin_failure_window",
            raw.signin_failure_window.as_deref(),
            DEFAULT_SIGNIN_FAILURE_WINDOW,
        )?;
        let signin_max_failures = raw
            .signin_max_failures
            .unwrap_or(DEFAULT_SIGNIN_MAX_FAILURES);
        if signin_max_failures == 0 {
            return Err(err(
                "signin_max_failures",
                "must be at least 1: the failed sign-ins an address may make per signin_failure_window",
            ));
        }
        let signin_concurrent_hashes = raw
            .signin_concurrent_hashes
            .unwrap_or(DEFAULT_SIGNIN_CONCURRENT_HASHES);
        if signin_concurrent_hashes == 0 {
            return Err(err(
                "signin_concurrent_hashes",
                "must be at least 1: each password check takes about 19 MiB, so keep it small (2 by default)",
            ));
        }
        let dashboard_session_lifetime = wharf_config::duration(
            "dashboard_session_lifetime",
            raw.dashboard_session_lifetime.as_deref(),
            DEFAULT_SESSION_LIFETIME,
        )?;
        let metrics_token = wharf_config::secret_token(
            env,
            "metrics_token",
            raw.metrics_token,
            raw.metrics_token_env,
        )?
        .map(Arc::new);
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(wharf_serve::TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err(err("tls_key", "is missing: tls_cert needs tls_key")),
            (None, Some(_)) => return Err(err("tls_cert", "is missing: tls_key needs tls_cert")),
        };
        let rate_limit_window = wharf_config::duration(
            "rate_limit_window",
            raw.rate_limit_window.as_deref(),
            DEFAULT_RATE_LIMIT_WINDOW,
        )?;
        let retention = RetentionConfig {
            payload: wharf_config::duration(
                "payload_retention",
                raw.payload_retention.as_deref(),
                DEFAULT_PAYLOAD_RETENTION,
            )?,
            logs: raw
                .log_retention
                .as_deref()
                .map(|text| wharf_config::duration("log_retention", Some(text), Duration::ZERO))
                .transpose()?,
            interval: wharf_config::duration(
                "retention_interval",
                raw.retention_interval.as_deref(),
                DEFAULT_RETENTION_INTERVAL,
            )?,
        };
        if let Some(logs) = retention.logs
            && logs < retention.payload
        {
            return Err(err(
                "log_retention",
                "is shorter than payload_retention: a log's metadata is kept at least as long as its payload; raise log_retention or lower payload_retention",
            ));
        }
        let alerts = alert_config(
            raw.alert_environments,
            raw.alert_webhook_url,
            raw.alert_email,
            raw.smtp,
            env,
        )?;
        let serve = wharf_serve::ServeOptions::from_config(
            raw.max_connections,
            raw.header_read_timeout.as_deref(),
            raw.idle_timeout.as_deref(),
            raw.body_read_timeout.as_deref(),
        )?;
        let database_url = wharf_config::database_url(env, raw.database_url, raw.database_url_env)?;
        Ok(EngineConfig {
            tls,
            metrics_token,
            alerts,
            retention,
            alert_interval: wharf_config::duration(
                "alert_interval",
                raw.alert_interval.as_deref(),
                Duration::from_secs(60),
            )?,
            serve,
            listen,
            data_dir,
            database_max_connections: wharf_config::database_max_connections(
                raw.database_max_connections,
                database_url.as_ref(),
                wharf_store::engine::DEFAULT_MAX_CONNECTIONS,
            )?,
            database_url,
            organization,
            api_keys,
            api_key_names,
            master_key: Arc::new(master_key),
            retry_ladder,
            delivery_timeout,
            private_endpoints,
            public_url,
            sources,
            enabled_environments,
            dashboard_password_hash,
            operators,
            dashboard_session_lifetime,
            signin_max_failures,
            signin_failure_window,
            signin_concurrent_hashes,
            rate_limit_requests: raw
                .rate_limit_requests
                .unwrap_or(DEFAULT_RATE_LIMIT_REQUESTS),
            rate_limit_window,
            resolver: Default::default(),
            client_ttl: CLIENT_TTL,
        })
    }
}

fn alert_config(
    environments: Option<Vec<String>>,
    webhook: Option<String>,
    email: Option<Vec<String>>,
    smtp: Option<RawSmtp>,
    env: &dyn Env,
) -> Result<AlertConfig, ConfigError> {
    let mut config = AlertConfig::default();
    if let Some(listed) = environments {
        config.environments = listed
            .iter()
            .map(|e| {
                e.parse::<Environment>()
                    .map_err(|problem| err("alert_environments", format!("{e:?}: {problem}")))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(url) = webhook {
        let parsed = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                err(
                    "alert_webhook_url",
                    format!("{url:?} must be an http:// or https:// URL"),
                )
            })?;
        config.webhook_url = Some(parsed);
    }
    config.email_to = email.unwrap_or_default();
    for address in &config.email_to {
        if address.parse::<lettre::Address>().is_err() {
            return Err(err(
                "alert_email",
                format!("{address:?} is not an email address"),
            ));
        }
    }
    config.smtp = smtp
        .map(|raw| -> Result<SmtpConfig, ConfigError> {
            let host = raw
                .host
                .filter(|h| !h.is_empty())
                .ok_or_else(|| err("smtp.host", "is required: the mail server's name"))?;
            let from = raw
                .from
                .ok_or_else(|| err("smtp.from", "is required: the address alerts come from"))?;
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(err(
                    "smtp.from",
                    format!("{from:?} is not an email address"),
                ));
            }
            let security = match raw.security.as_deref().unwrap_or("starttls") {
                "starttls" => SmtpSecurity::StartTls,
                "tls" => SmtpSecurity::Tls,
                "none" => SmtpSecurity::None,
                other => {
                    return Err(err(
                        "smtp.security",
                        format!("{other:?} must be starttls, tls or none"),
                    ));
                }
            };
            let port = raw.port.unwrap_or(match security {
                SmtpSecurity::StartTls => 587,
                SmtpSecurity::Tls => 465,
                SmtpSecurity::None => 25,
            });
            let password =
                wharf_config::value_or_env(env, "smtp.password", raw.password, raw.password_env)?
                    .map(|given| given.value);
            Ok(SmtpConfig {
                host,
                port,
                from,
                security,
                username: raw.username,
                password,
            })
        })
        .transpose()?;
    if !config.email_to.is_empty() && config.smtp.is_none() {
        return Err(err(
            "alert_email",
            "needs an [smtp] table saying which mail server sends it",
        ));
    }
    Ok(config)
}

/// `address:port` entries (`127.0.0.1:8443`, `[::1]:8443`): names are not accepted, since
/// what a name resolves to can change.
fn socket_addresses(
    key: &str,
    entries: Option<Vec<String>>,
) -> Result<Vec<std::net::SocketAddr>, ConfigError> {
    entries
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            entry.parse().map_err(|_| {
                err(
                    format!("{key}[{i}]"),
                    format!("{entry:?} is not an IP address and port like \"127.0.0.1:8443\""),
                )
            })
        })
        .collect()
}

/// Every management and source key is long, not an example value, and has one role: a key
/// listed as both could both send data and manage destinations, and a source key listed
/// twice could not say which source sent a message.
fn check_keys(api_keys: &[String], sources: &[Source]) -> Result<(), ConfigError> {
    let keys = api_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("api_keys[{i}]"), k))
        .chain(
            sources
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("sources[{i}].api_key"), &s.api_key)),
        )
        .collect::<Vec<_>>();
    for (n, (name, key)) in keys.iter().enumerate() {
        if let Some(problem) = wharf_config::weak_secret(key) {
            return Err(err(name.clone(), problem));
        }
        if let Some((other, _)) = keys[..n].iter().find(|(_, k)| k == key) {
            return Err(err(
                name.clone(),
                format!(
                    "is the same key as {other}: give each role and each source a key of its own"
                ),
            ));
        }
    }
    Ok(())
}

/// Development, plus the environments listed (all three when the key is absent).
fn enabled_environments(listed: Option<Vec<String>>) -> Result<Vec<Environment>, ConfigError> {
    let Some(listed) = listed else {
        return Ok(Environment::ALL.to_vec());
    };
    let mut enabled = vec![Environment::Development];
    for (i, name) in listed.iter().enumerate() {
        let environment = name
            .parse::<Environment>()
            .map_err(|e| err(format!("enabled_environments[{i}]"), e.to_string()))?;
        if !enabled.contains(&environment) {
            enabled.push(environment);
        }
    }
    enabled.sort_by_key(|e| Environment::ALL.iter().position(|a| a == e));
    Ok(enabled)
}

/// Names that identify someone in the audit log: not empty, printable, at most 64
/// characters, and each used once.
fn check_names(key: &str, names: &[String]) -> Result<(), ConfigError> {
    for (i, name) in names.iter().enumerate() {
        if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(err(
                format!("{key}[{i}].name"),
                "must be 1 to 64 printable characters: the audit log names it",
            ));
        }
        if names[..i].contains(name) {
            return Err(err(
                format!("{key}[{i}].name"),
                format!(
                    "{name:?} is used twice: give each its own name so the audit log can tell them apart"
                ),
            ));
        }
    }
    Ok(())
}

/// The `[[operators]]` accounts, with `admin` first when `dashboard_password_hash` is set (it
/// may see PHI, as the single dashboard password always could).
fn operators(raw: Vec<RawOperator>, admin: Option<&str>) -> Result<Vec<Operator>, ConfigError> {
    let mut operators: Vec<Operator> = admin
        .map(|phc| Operator {
            name: ADMIN_OPERATOR.to_owned(),
            password_hash: phc.to_owned(),
            may_view_phi: true,
        })
        .into_iter()
        .collect();
    for (i, o) in raw.into_iter().enumerate() {
        let name = o
            .name
            .ok_or_else(|| err(format!("operators[{i}].name"), "is required"))?;
        if admin.is_some() && name == ADMIN_OPERATOR {
            return Err(err(
                format!("operators[{i}].name"),
                "\"admin\" is the account dashboard_password_hash signs in as: choose another name, or remove dashboard_password_hash",
            ));
        }
        let password_hash = o.password_hash.ok_or_else(|| {
            err(
                format!("operators[{i}].password_hash"),
                "is required: make one with `wharf hash-password`",
            )
        })?;
        check_password_hash(&password_hash)
            .map_err(|e| err(format!("operators[{i}].password_hash"), e.problem))?;
        operators.push(Operator {
            name,
            password_hash,
            may_view_phi: o.may_view_phi.unwrap_or(false),
        });
    }
    let offset = usize::from(admin.is_some());
    let names: Vec<String> = operators[offset..].iter().map(|o| o.name.clone()).collect();
    check_names("operators", &names)?;
    Ok(operators)
}

/// An argon2id PHC string such as `wharf hash-password` prints; a plain password here would
/// be a secret left in the clear and is refused.
fn check_password_hash(phc: &str) -> Result<(), ConfigError> {
    let how = "make one with `wharf hash-password` (it reads the password from standard input)";
    let parsed = argon2::password_hash::phc::PasswordHash::new(phc).map_err(|_| {
        err(
            "dashboard_password_hash",
            format!(
                "is not an argon2id PHC string like \"$argon2id$v=19$m=19456,t=2,p=1$...\": {how}"
            ),
        )
    })?;
    if parsed.algorithm.as_str() != "argon2id" || parsed.hash.is_none() {
        return Err(err(
            "dashboard_password_hash",
            format!(
                "must be an argon2id hash, not {}: {how}",
                parsed.algorithm.as_str()
            ),
        ));
    }
    Ok(())
}

/// An http(s) URL with a host and no query or fragment, returned without its trailing slash.
fn check_public_url(text: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| err("public_url", format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(err(
            "public_url",
            "must be an http:// or https:// URL with a host, e.g. \"https://engine.example.com\"",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("public_url", "must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    const MINIMAL: &str = r#"
api_keys = ["management-key-0123456789-0123456"]
master_key = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
"#;

    #[test]
    fn retention() {
        let c = EngineConfig::parse(MINIMAL, &NoEnv).unwrap();
        assert_eq!(c.retention, RetentionConfig::default());
        assert_eq!(c.retention.payload, Duration::from_secs(30 * 86_400));
        let c = EngineConfig::parse(
            &format!("{MINIMAL}payload_retention = \"7d\"\nlog_retention = \"365d\"\nretention_interval = \"10m\"\n"),
            &NoEnv,
        )
        .unwrap();
        assert_eq!(
            (c.retention.payload, c.retention.logs, c.retention.interval),
            (
                Duration::from_secs(7 * 86_400),
                Some(Duration::from_secs(365 * 86_400)),
                Duration::from_secs(600)
            )
        );
        let e = EngineConfig::parse(&format!("{MINIMAL}log_retention = \"1d\"\n"), &NoEnv)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("log_retention") && e.contains("payload_retention"),
            "{e}"
        );
        let e = EngineConfig::parse(&format!("{MINIMAL}payload_retention = \"soon\"\n"), &NoEnv)
            .unwrap_err()
            .to_string();
        assert!(e.contains("payload_retention"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = EngineConfig::parse(MINIMAL, &NoEnv).unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.retry_ladder, RetryLadder::redox());
        assert_eq!(c.delivery_timeout, Duration::from_secs(30));
        assert!(!c.private_endpoints.all && c.private_endpoints.endpoints.is_empty());
        assert_eq!(c.public_url, None);
        let c = EngineConfig::parse(
            &format!("{MINIMAL}public_url = \"https://engine.example.com/wharf/\""),
            &NoEnv,
        )
        .unwrap();
        assert_eq!(
            c.public_url.as_deref(),
            Some("https://engine.example.com/wharf")
        );
    }

    #[test]
    fn environments_and_the_dashboard_password() {
        let c = EngineConfig::parse(MINIMAL, &NoEnv).unwrap();
        assert_eq!(c.enabled_environments, Environment::ALL);
        assert!(c.dashboard_password_hash.is_none());
        let c = EngineConfig::parse(
            &format!("{MINIMAL}enabled_environments = [\"Production\"]"),
            &NoEnv,
        )
        .unwrap();
        assert_eq!(
            c.enabled_environments,
            [Environment::Development, Environment::Production]
        );
        assert!(
            c.environment_enabled(Environment::Development)
                && !c.environment_enabled(Environment::Staging)
        );
        let e = EngineConfig::parse(
            &format!("{MINIMAL}enabled_environments = [\"production\"]"),
            &NoEnv,
        )
        .unwrap_err();
        assert_eq!(e.key, "enabled_environments[0]");

        let phc = crate::dashboard::hash_password_with("correct horse", 1024, 1).unwrap();
        let c = EngineConfig::parse(
            &format!("{MINIMAL}dashboard_password_hash = \"{phc}\""),
            &NoEnv,
        )
        .unwrap();
        assert_eq!(c.dashboard_password_hash.as_deref(), Some(phc.as_str()));
        for wrong in [
            "correct horse",
            "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        ] {
            let e = EngineConfig::parse(
                &format!("{MINIMAL}dashboard_password_hash = \"{wrong}\""),
                &NoEnv,
            )
            .unwrap_err();
            assert_eq!(e.key, "dashboard_password_hash");
            assert!(e.to_string().contains("wharf hash-password"), "{e}");
        }
    }

    #[test]
    fn mistakes_name_the_key() {
        let e = |text: &str| EngineConfig::parse(text, &NoEnv).unwrap_err();
        assert_eq!(
            e("master_key = \"m\"\napi_keys = [\"management-key-0123456789-0123456\"]").key,
            "master_key"
        );
        assert_eq!(
            e("master_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"")
                .key,
            "api_keys"
        );
        assert_eq!(
            e(&format!("{MINIMAL}retry_ladder = [\"0s\", \"soon\"]")).key,
            "retry_ladder[1]"
        );
        assert_eq!(
            e(&format!("{MINIMAL}delivery_timeout = \"0s\"")).key,
            "delivery_timeout"
        );
        assert_eq!(
            e(&format!(
                "{MINIMAL}[[sources]]\nname = \"EHR\"\napi_key = \"short\""
            ))
            .key,
            "sources[0].api_key"
        );
        assert_eq!(
            e(&format!("{MINIMAL}public_url = \"ftp://x\"")).key,
            "public_url"
        );
        assert!(
            e(&format!("{MINIMAL}typo = 1"))
                .to_string()
                .contains("typo")
        );
    }

    /// Issue 26, item 10: example values, short keys and a key with two roles are refused.
    #[test]
    fn keys_are_long_private_and_have_one_role() {
        let e = |text: &str| EngineConfig::parse(text, &NoEnv).unwrap_err();
        let master =
            "master_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"";
        let short = e(&format!("{master}\napi_keys = [\"management-key-0123\"]"));
        assert_eq!(short.key, "api_keys[0]");
        assert!(short.problem.contains("32 characters"), "{short}");
        // What the example configuration used to ship, with a value of the right length.
        let example = e(&format!(
            "{master}\napi_keys = [\"change-me-management-key-0123456789\"]"
        ));
        assert_eq!(example.key, "api_keys[0]");
        assert!(example.problem.contains("placeholder"), "{example}");
        let old_master = e(
            "master_key = \"change-me-master-key-0123456789abcdef0123456789\"\napi_keys = [\"management-key-0123456789-0123456\"]",
        );
        assert_eq!(old_master.key, "master_key");
        // One key as a management key and a source key.
        let shared = e(&format!(
            "{MINIMAL}[[sources]]\nname = \"EHR\"\napi_key = \"management-key-0123456789-0123456\""
        ));
        assert_eq!(shared.key, "sources[0].api_key");
        assert!(shared.problem.contains("api_keys[0]"), "{shared}");
        // Two sources with one key.
        let twice = e(&format!(
            "{MINIMAL}[[sources]]\nname = \"A\"\napi_key = \"source-key-0123456789abcdef-012345\"\n[[sources]]\nname = \"B\"\napi_key = \"source-key-0123456789abcdef-012345\""
        ));
        assert_eq!(twice.key, "sources[1].api_key");
        // Keys from the environment, as the example configuration reads them.
        struct Vars;
        impl Env for Vars {
            fn var(&self, name: &str) -> Option<String> {
                match name {
                    "K" => Some("a".repeat(40)),
                    "M" => Some(
                        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
                    ),
                    "S" => Some("b".repeat(40)),
                    _ => None,
                }
            }
        }
        let c = EngineConfig::parse(
            "api_keys_env = \"K\"\nmaster_key_env = \"M\"\nprivate_endpoints = [\"127.0.0.1:8443\"]\n[[sources]]\nname = \"EHR\"\napi_key_env = \"S\"",
            &Vars,
        )
        .unwrap();
        assert_eq!(c.sources[0].api_key, "b".repeat(40));
        assert_eq!(
            c.private_endpoints.endpoints,
            ["127.0.0.1:8443".parse().unwrap()]
        );
        let name = e(&format!(
            "{MINIMAL}private_endpoints = [\"localhost:8443\"]"
        ));
        assert_eq!(name.key, "private_endpoints[0]");
    }

    #[test]
    fn rate_limits() {
        let c = EngineConfig::parse(MINIMAL, &NoEnv).unwrap();
        assert_eq!(c.rate_limit_requests, 10_000);
        assert_eq!(c.rate_limit_window, Duration::from_secs(300));
        let c = EngineConfig::parse(
            &format!("{MINIMAL}rate_limit_requests = 5\nrate_limit_window = \"2s\""),
            &NoEnv,
        )
        .unwrap();
        assert_eq!(
            (c.rate_limit_requests, c.rate_limit_window),
            (5, Duration::from_secs(2))
        );
        let e = |text: &str| EngineConfig::parse(&format!("{MINIMAL}{text}"), &NoEnv).unwrap_err();
        assert_eq!(e("rate_limit_window = \"0s\"").key, "rate_limit_window");
        assert!(
            e("rate_limit_requests = -1")
                .to_string()
                .contains("rate_limit_requests")
        );
    }

    #[test]
    fn operators_named_keys_and_sign_in_limits() {
        let c = EngineConfig::parse(MINIMAL, &NoEnv).unwrap();
        assert_eq!(c.api_key_names, ["key-1"]);
        assert!(c.operators.is_empty());
        assert_eq!(c.dashboard_session_lifetime, Duration::from_secs(12 * 3600));
        assert_eq!(
            (
                c.signin_max_failures,
                c.signin_failure_window,
                c.signin_concurrent_hashes
            ),
            (10, Duration::from_secs(900), 2)
        );
        let phc = crate::dashboard::hash_password_with("correct horse", 1024, 1).unwrap();
        let c = EngineConfig::parse(
            &format!(
                "api_keys = [\"plain-management-key-0123456789-01\", {{ name = \"billing-export\", key = \"named-management-key-0123456789-01\" }}]
master_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"
dashboard_password_hash = \"{phc}\"
dashboard_session_lifetime = \"8h\"
signin_max_failures = 5
signin_failure_window = \"1h\"
signin_concurrent_hashes = 1
[[operators]]
name = \"alice\"
password_hash = \"{phc}\"
may_view_phi = true
[[operators]]
name = \"bob\"
password_hash = \"{phc}\"
"
            ),
            &NoEnv,
        )
        .unwrap();
        assert_eq!(
            c.api_keys,
            [
                "plain-management-key-0123456789-01",
                "named-management-key-0123456789-01"
            ]
        );
        assert_eq!(c.api_key_names, ["key-1", "billing-export"]);
        let operators: Vec<(&str, bool)> = c
            .operators
            .iter()
            .map(|o| (o.name.as_str(), o.may_view_phi))
            .collect();
        assert_eq!(
            operators,
            [("admin", true), ("alice", true), ("bob", false)]
        );
        assert!(
            !format!("{:?}", c.operators).contains("argon2"),
            "no hash in Debug"
        );
        assert_eq!(c.dashboard_session_lifetime, Duration::from_secs(8 * 3600));
        assert_eq!(
            (
                c.signin_max_failures,
                c.signin_failure_window,
                c.signin_concurrent_hashes
            ),
            (5, Duration::from_secs(3600), 1)
        );

        let e = |text: &str| EngineConfig::parse(&format!("{MINIMAL}{text}"), &NoEnv).unwrap_err();
        let op = |name: &str, hash: &str| {
            format!("[[operators]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\n")
        };
        let twice = e(&format!("{}{}", op("alice", &phc), op("alice", &phc)));
        assert_eq!(twice.key, "operators[1].name");
        assert!(twice.to_string().contains("used twice"), "{twice}");
        assert_eq!(e(&op("alice", "hunter2")).key, "operators[0].password_hash");
        let admin = e(&format!(
            "dashboard_password_hash = \"{phc}\"\n{}",
            op("admin", &phc)
        ));
        assert_eq!(admin.key, "operators[0].name");
        assert_eq!(e("signin_max_failures = 0").key, "signin_max_failures");
        assert_eq!(
            e("signin_concurrent_hashes = 0").key,
            "signin_concurrent_hashes"
        );
        assert_eq!(
            e("dashboard_session_lifetime = \"forever\"").key,
            "dashboard_session_lifetime"
        );
        let same = EngineConfig::parse(
            "api_keys = [{ name = \"a\", key = \"key-one-management-0123456789-0123\" }, { name = \"a\", key = \"key-two-management-0123456789-0123\" }]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            &NoEnv,
        )
        .unwrap_err();
        assert_eq!(same.key, "api_keys[1].name");
        let keyless = EngineConfig::parse(
            "api_keys = [{ name = \"a\" }]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            &NoEnv,
        )
        .unwrap_err();
        assert_eq!(keyless.key, "api_keys[0].key");
        assert!(keyless.to_string().contains("named key"), "{keyless}");
        let typo = EngineConfig::parse(
            "api_keys = [{ name = \"a\", key = \"key-one-management-0123456789-0123\", scope = \"all\" }]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"",
            &NoEnv,
        )
        .unwrap_err();
        assert_eq!(typo.key, "api_keys[0].scope");
    }
}
