//! The `[destinations.auth]` table: which auth strategy a destination checks, and with what.
//!
//! ```toml
//! [destinations.auth]
//! strategy = "OAuth_2.0_2-legged"   # clients = [{ client_id, client_secret }], token_path, token_lifetime
//! # strategy = "SMART_Backend"      # clients = [{ client_id, jwks_url | jwks }], token_path, token_lifetime
//! # strategy = "JWT_Bearer"         # issuer, audience, jwks_url | jwks
//! # strategy = "AwsSigv4"           # region, service, credentials = [{ access_key, secret_key }]
//! # strategy = "GoogleWIF"          # issuer, audience, jwks_url | jwks
//! # strategy = "OAuth_2.0_JWT_Bearer_GCP"   # clients = [{ client_id, jwks_url | jwks }], token_path
//! ```
//!
//! Every secret may instead come from the environment (`client_secret_env`,
//! `secret_key_env`). Keys that do not belong to the chosen strategy are refused, so a typo
//! cannot silently weaken a check.

use std::fmt;
use std::time::Duration;
use wharf_auth::jwks::KeySet;
use wharf_auth::strategy::Strategy;
use wharf_config::{ConfigError, Env, err};

/// Default lifetime of the access tokens a token endpoint issues: short, as the issue of
/// every request checks them and clients fetch new ones as they expire.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Where a client's or issuer's public keys come from.
#[derive(Clone)]
pub enum JwksSource {
    /// Fetched over HTTPS (HTTP only for loopback hosts), cached, refreshed on unknown kids.
    Url(reqwest::Url),
    /// Given in the configuration.
    Inline(KeySet),
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::Url(u) => write!(f, "Url({u})"),
            JwksSource::Inline(k) => write!(f, "Inline({} keys)", k.len()),
        }
    }
}

/// A client registered at the token endpoint.
#[derive(Clone)]
pub struct ClientConfig {
    pub client_id: String,
    /// OAuth 2.0 2-legged.
    pub client_secret: Option<String>,
    /// SMART Backend and the GCP grant.
    pub jwks: Option<JwksSource>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwks", &self.jwks)
            .finish()
    }
}

/// A validated `[destinations.auth]` table.
#[derive(Clone)]
pub struct AuthConfig {
    pub strategy: Strategy,
    /// Token-endpoint strategies: the registered clients.
    pub clients: Vec<ClientConfig>,
    /// Token-endpoint strategies: the URL path of the token endpoint.
    pub token_path: Option<String>,
    /// The token endpoint's public URL, which client assertions must name as `aud`: this key,
    /// else built from the server's `public_url` (see `crate::config`). Never taken from the
    /// request. Required for SMART Backend and the GCP grant, which check the audience.
    pub token_url: Option<String>,
    pub token_lifetime: Duration,
    /// JWT Bearer and GoogleWIF.
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub jwks: Option<JwksSource>,
    /// AwsSigv4.
    pub region: Option<String>,
    pub service: Option<String>,
    pub credentials: Vec<(String, String)>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("strategy", &self.strategy)
            .field("clients", &self.clients)
            .field("token_path", &self.token_path)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks", &self.jwks)
            .field("region", &self.region)
            .field("service", &self.service)
            .field(
                "access_keys",
                &self.credentials.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    strategy: Option<String>,
    clients: Option<Vec<RawClient>>,
    token_path: Option<String>,
    token_url: Option<String>,
    token_lifetime: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    jwks_url: Option<String>,
    jwks: Option<toml::Value>,
    region: Option<String>,
    service: Option<String>,
    credentials: Option<Vec<RawAwsCredential>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    jwks_url: Option<String>,
    jwks: Option<toml::Value>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAwsCredential {
    access_key: Option<String>,
    secret_key: Option<String>,
    secret_key_env: Option<String>,
}

/// Which keys each strategy takes (beyond `strategy`).
fn allowed(strategy: Strategy) -> &'static [&'static str] {
    match strategy {
        Strategy::OAuth2Legged => &["clients", "token_path", "token_url", "token_lifetime"],
        Strategy::SmartBackend | Strategy::OAuthJwtBearerGcp => {
            &["clients", "token_path", "token_url", "token_lifetime"]
        }
        Strategy::JwtBearer | Strategy::GoogleWif => &["issuer", "audience", "jwks_url", "jwks"],
        Strategy::AwsSigv4 => &["region", "service", "credentials"],
    }
}

fn secret(
    key: &str,
    value: Option<String>,
    var: Option<String>,
    env: &dyn Env,
) -> Result<Option<String>, ConfigError> {
    match wharf_config::value_or_env(env, key, value, var)? {
        Some(given) if given.value.is_empty() => Err(err(given.key, "must not be empty")),
        Some(given) => Ok(Some(given.value)),
        None => Ok(None),
    }
}

fn jwks_source(
    key: &str,
    url: Option<String>,
    inline: Option<toml::Value>,
) -> Result<Option<JwksSource>, ConfigError> {
    match (url, inline) {
        (Some(_), Some(_)) => Err(err(key, "set either jwks_url or jwks, not both")),
        (Some(url), None) => {
            let parsed = reqwest::Url::parse(&url)
                .map_err(|e| err(format!("{key}_url"), format!("{url:?} is not a URL: {e}")))?;
            let host = parsed
                .host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']']);
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                return Err(err(
                    format!("{key}_url"),
                    format!(
                        "{url:?} must be https:// (http:// only for a loopback address): keys fetched in the clear could be forged"
                    ),
                ));
            }
            Ok(Some(JwksSource::Url(parsed)))
        }
        (None, Some(inline)) => {
            // Either a JSON string or the JWKS written as a TOML table.
            let bytes = match inline {
                toml::Value::String(text) => text.into_bytes(),
                other => serde_json::to_vec(&other).map_err(|e| err(key, e.to_string()))?,
            };
            KeySet::from_jwks_bytes(&bytes)
                .map(|k| Some(JwksSource::Inline(k)))
                .map_err(|e| err(key, e.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// Validates the `auth` table of destination `prefix` (e.g. `destinations[0]`).
pub(crate) fn parse(prefix: &str, raw: RawAuth, env: &dyn Env) -> Result<AuthConfig, ConfigError> {
    let key = |k: &str| format!("{prefix}.auth.{k}");
    let name = raw.strategy.clone().ok_or_else(|| {
        err(
            key("strategy"),
            format!("is required: one of {}", keys_list()),
        )
    })?;
    let strategy = Strategy::from_key(&name).ok_or_else(|| {
        err(
            key("strategy"),
            format!("{name:?} is not a strategy; use one of {}", keys_list()),
        )
    })?;
    let present = [
        ("clients", raw.clients.is_some()),
        ("token_path", raw.token_path.is_some()),
        ("token_url", raw.token_url.is_some()),
        ("token_lifetime", raw.token_lifetime.is_some()),
        ("issuer", raw.issuer.is_some()),
        ("audience", raw.audience.is_some()),
        ("jwks_url", raw.jwks_url.is_some()),
        ("jwks", raw.jwks.is_some()),
        ("region", raw.region.is_some()),
        ("service", raw.service.is_some()),
        ("credentials", raw.credentials.is_some()),
    ];
    for (k, set) in present {
        if set && !allowed(strategy).contains(&k) {
            return Err(err(
                key(k),
                format!(
                    "does not apply to strategy {strategy}; it takes {}",
                    allowed(strategy).join(", ")
                ),
            ));
        }
    }
    if let Some(url) = &raw.token_url
        && reqwest::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
    {
        return Err(err(
            key("token_url"),
            format!(
                "{url:?} must be an http:// or https:// URL, like \"https://dest.example.com/redox/token\""
            ),
        ));
    }
    let mut config = AuthConfig {
        strategy,
        clients: Vec::new(),
        token_path: None,
        token_url: raw.token_url,
        token_lifetime: wharf_config::duration(
            &key("token_lifetime"),
            raw.token_lifetime.as_deref(),
            DEFAULT_TOKEN_LIFETIME,
        )?,
        issuer: None,
        audience: None,
        jwks: None,
        region: None,
        service: None,
        credentials: Vec::new(),
    };
    let required = |k: &str, v: Option<String>, what: &str| {
        v.filter(|v| !v.trim().is_empty())
            .ok_or_else(|| err(key(k), format!("is required for {strategy}: {what}")))
    };
    match strategy {
        Strategy::OAuth2Legged | Strategy::SmartBackend | Strategy::OAuthJwtBearerGcp => {
            let path = required(
                "token_path",
                raw.token_path,
                "the URL path of the token endpoint, like \"/redox/token\"",
            )?;
            if !path.starts_with('/') || path.contains(['?', '#']) {
                return Err(err(
                    key("token_path"),
                    format!("{path:?} must be a plain URL path starting with '/'"),
                ));
            }
            config.token_path = Some(path);
            // Tokens expire on whole seconds: "500ms" would issue tokens already expired.
            if config.token_lifetime < Duration::from_secs(1)
                || config.token_lifetime > Duration::from_secs(86_400)
            {
                return Err(err(key("token_lifetime"), "must be between 1s and 24h"));
            }
            let clients = raw.clients.unwrap_or_default();
            if clients.is_empty() {
                return Err(err(
                    key("clients"),
                    "needs at least one client, like clients = [{ client_id = \"redox\", ... }]",
                ));
            }
            for (i, c) in clients.into_iter().enumerate() {
                let ck = |k: &str| format!("{prefix}.auth.clients[{i}].{k}");
                let client_id = c
                    .client_id
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| err(ck("client_id"), "is required"))?;
                let client_secret = secret(
                    &ck("client_secret"),
                    c.client_secret,
                    c.client_secret_env,
                    env,
                )?;
                if let Some(secret) = &client_secret {
                    wharf_config::strong_secret(&ck("client_secret"), secret)?;
                }
                let jwks = jwks_source(&ck("jwks"), c.jwks_url, c.jwks)?;
                if strategy == Strategy::OAuth2Legged {
                    if client_secret.is_none() {
                        return Err(err(
                            ck("client_secret"),
                            "is required (or client_secret_env)",
                        ));
                    }
                    if jwks.is_some() {
                        return Err(err(
                            ck("jwks"),
                            "does not apply to OAuth_2.0_2-legged clients, which use client_secret",
                        ));
                    }
                } else {
                    if jwks.is_none() {
                        return Err(err(
                            ck("jwks_url"),
                            "is required (or jwks): the client's public keys",
                        ));
                    }
                    if client_secret.is_some() {
                        return Err(err(
                            ck("client_secret"),
                            format!("does not apply to {strategy} clients, which sign assertions"),
                        ));
                    }
                }
                if config
                    .clients
                    .iter()
                    .any(|other: &ClientConfig| other.client_id == client_id)
                {
                    return Err(err(
                        ck("client_id"),
                        format!("{client_id:?} is registered twice"),
                    ));
                }
                config.clients.push(ClientConfig {
                    client_id,
                    client_secret,
                    jwks,
                });
            }
        }
        Strategy::JwtBearer | Strategy::GoogleWif => {
            config.issuer = Some(required(
                "issuer",
                raw.issuer,
                "the iss every token must carry",
            )?);
            config.audience = Some(required(
                "audience",
                raw.audience,
                "the aud every token must carry",
            )?);
            config.jwks = jwks_source(&key("jwks"), raw.jwks_url, raw.jwks)?;
            if config.jwks.is_none() {
                return Err(err(
                    key("jwks_url"),
                    format!("is required for {strategy} (or jwks): the issuer's public keys"),
                ));
            }
        }
        Strategy::AwsSigv4 => {
            config.region = Some(required(
                "region",
                raw.region,
                "the region in the credential scope, like \"us-east-1\"",
            )?);
            config.service = Some(required(
                "service",
                raw.service,
                "the service in the credential scope, like \"execute-api\"",
            )?);
            let credentials = raw.credentials.unwrap_or_default();
            if credentials.is_empty() {
                return Err(err(
                    key("credentials"),
                    "needs at least one: credentials = [{ access_key = \"...\", secret_key_env = \"...\" }]",
                ));
            }
            for (i, c) in credentials.into_iter().enumerate() {
                let ck = |k: &str| format!("{prefix}.auth.credentials[{i}].{k}");
                let access = c
                    .access_key
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| err(ck("access_key"), "is required"))?;
                let secret = secret(&ck("secret_key"), c.secret_key, c.secret_key_env, env)?
                    .ok_or_else(|| err(ck("secret_key"), "is required (or secret_key_env)"))?;
                config.credentials.push((access, secret));
            }
        }
    }
    Ok(config)
}

fn keys_list() -> String {
    Strategy::ALL
        .iter()
        .map(|s| s.key())
        .collect::<Vec<_>>()
        .join(", ")
}
