//! `POST /v2/auth/token` as Redox serves it: a client assertion signed with an OAuth API key
//! (RFC 7523 `private_key_jwt`) exchanged for a five-minute bearer token, and the check of
//! such a token on the Platform API and on ingestion.
//!
//! The request must be form-encoded with `grant_type=client_credentials`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//! `client_assertion`. The assertion's header names its `kid` (required) and `alg` (RS384 or
//! ES384); `iss` and `sub` are the key's id (the client ID), `aud` the token URL
//! (`{public_url}/v2/auth/token`), `iat` within the last five minutes (10 s of clock skew),
//! `exp` not passed, `jti` never seen before. Refusals are Redox's body,
//! `{"error", "error_description", "error_uri"}`, with Redox's wording where its
//! troubleshooting pages give it ("JWT header kid property is required", "Public key not found,
//! check client_id, kid and Redox dashboard settings", "Unexpected X claim value").
//!
//! Verification, key sets and the JWKS refresh policy, and `jti` replay are `wharf-auth`'s
//! (`jwt`, `jwks`, `oauth::SeenJtis`). The issued token is sealed with the master key
//! (AES-256-GCM: client ID, environment and expiry), so every engine on a shared database
//! accepts it without a table of tokens. `jti`s are remembered in this process on SQLite, and
//! in the database on PostgreSQL (`used_jtis`), so an assertion is used once across every
//! engine sharing it.

use super::{Engine, EngineError, SendError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use wharf_auth::jwks::{JwksCache, KeySet};
use wharf_auth::jwt::{self, JwtError, Rules};
use wharf_auth::oauth::{CLIENT_CREDENTIALS, JWT_CLIENT_ASSERTION, SeenJtis};
use wharf_store::engine::ApiKeyRecord;

/// The token endpoint's path (at the root, not under `/platform`, as Redox serves it).
pub const TOKEN_PATH: &str = "/v2/auth/token";
/// How long an issued token lives: five minutes, as Redox's.
pub const TOKEN_LIFETIME_SECONDS: u64 = 300;
/// How old an assertion's `iat` may be.
const MAX_ASSERTION_AGE_SECONDS: u64 = 300;
/// Clock skew allowed on `iat` and `exp` (Redox: 10 s).
const SKEW_SECONDS: u64 = 10;
/// Where a refused client reads what each refusal means.
pub const ERROR_URI: &str =
    "https://docs.redoxengine.com/troubleshooting/troubleshoot-oauth-api-key-errors/";
/// Redox's answer when no key matches the assertion's `iss` and `kid`.
const KEY_NOT_FOUND: &str =
    "Public key not found, check client_id, kid and Redox dashboard settings";
/// What the sealed token is bound to (the associated data of its seal).
const TOKEN_CONTEXT: &str = "oauth/access-token";
/// The prefix of an issued token, so a token is told from a static key at a glance.
const TOKEN_PREFIX: &str = "wharf_at.";

/// A refused token request: its status and Redox's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRefusal {
    /// 400 for a malformed request or claim, 401 when no key verifies the assertion, 503 when
    /// the store is unavailable.
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl TokenRefusal {
    fn request(description: impl Into<String>) -> Self {
        TokenRefusal {
            status: 400,
            error: "invalid_request",
            description: description.into(),
        }
    }

    fn client(description: impl Into<String>) -> Self {
        TokenRefusal {
            status: 401,
            error: "invalid_client",
            description: description.into(),
        }
    }

    fn claim(name: &str, hint: &str) -> Self {
        TokenRefusal::request(format!("Unexpected {name} claim value: {hint}"))
    }

    /// The store failed: not the client's fault; it tries again.
    fn unavailable(e: &EngineError) -> Self {
        TokenRefusal {
            status: 503,
            error: "temporarily_unavailable",
            description: e.to_string(),
        }
    }
}

/// An issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub access_token: String,
    pub expires_in: u64,
}

/// Who a valid bearer token was issued to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenHolder {
    /// The OAuth API key's id (client ID).
    #[serde(rename = "c")]
    pub client_id: String,
    /// The key's environment: a token sends data into this environment only.
    #[serde(rename = "v")]
    pub environment_id: String,
    /// Expiry, Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: u64,
}

/// What the token endpoint remembers: fetched JWKS per key, `jti`s already used.
#[derive(Debug, Default)]
pub struct OAuth {
    jwks: Mutex<HashMap<String, JwksCache>>,
    jtis: SeenJtis,
}

impl OAuth {
    /// Forgets the fetched keys of an OAuth API key (changed or deleted).
    pub fn forget_keys(&self, apikey_id: &str) {
        self.jwks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(apikey_id);
    }
}

/// The URL assertions must name as `aud`.
pub fn token_url(engine: &Engine) -> String {
    format!("{}{TOKEN_PATH}", engine.public_url().trim_end_matches('/'))
}

/// Answers a token request: its `Content-Type` and body.
pub async fn issue(
    engine: &Engine,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Granted, TokenRefusal> {
    let form = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(TokenRefusal::request(
            "x-www-form-urlencoded content-type required",
        ));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| TokenRefusal::request("the body is not valid x-www-form-urlencoded data"))?;
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if get("grant_type") != Some(CLIENT_CREDENTIALS) {
        return Err(TokenRefusal::request(
            "Missing or invalid grant_type: send grant_type=client_credentials",
        ));
    }
    if get("client_assertion_type") != Some(JWT_CLIENT_ASSERTION) {
        return Err(TokenRefusal::request(format!(
            "Missing or invalid client_assertion_type: send client_assertion_type={JWT_CLIENT_ASSERTION}"
        )));
    }
    let Some(assertion) = get("client_assertion") else {
        return Err(TokenRefusal::request(
            "Missing or invalid client_assertion: send the signed JWT as client_assertion",
        ));
    };
    let invalid_assertion = || {
        TokenRefusal::request(
            "Missing or invalid client_assertion: it is not a signed JWT (header.claims.signature)",
        )
    };
    let kid = jwt::peek_kid(assertion).map_err(|_| invalid_assertion())?;
    let Some(kid) = kid.filter(|k| !k.is_empty()) else {
        return Err(TokenRefusal::request("JWT header kid property is required"));
    };
    let alg = peek_alg(assertion).ok_or_else(invalid_assertion)?;
    if alg != "RS384" && alg != "ES384" {
        return Err(TokenRefusal::request(format!(
            "Unexpected alg header value: sign with RS384 or ES384, not {alg}"
        )));
    }
    let unverified = jwt::peek_claims(assertion).map_err(|_| invalid_assertion())?;
    let Some(client_id) = unverified.iss.clone().filter(|i| !i.is_empty()) else {
        return Err(TokenRefusal::claim(
            "iss",
            "set iss to your OAuth API key's client ID",
        ));
    };
    let lookup = client_id.clone();
    let apikey = engine
        .db(move |s| s.apikey(&lookup))
        .await
        .map_err(|e| TokenRefusal::unavailable(&e))?
        .filter(|k| k.organization_id == engine.organization.id)
        .ok_or_else(|| TokenRefusal::client(KEY_NOT_FOUND))?;
    let keys = keys_for(engine, &apikey, &kid)
        .await
        .ok_or_else(|| TokenRefusal::client(KEY_NOT_FOUND))?;
    if !keys.has_kid(&kid) {
        return Err(TokenRefusal::client(KEY_NOT_FOUND));
    }
    let token_url = token_url(engine);
    let mut rules = Rules::new(vec![client_id.clone()], vec![token_url.clone()]);
    rules.leeway_seconds = SKEW_SECONDS;
    rules.require_jti = true;
    let clock = engine.clock.as_ref();
    let claims = jwt::verify(assertion, &keys, &rules, clock).map_err(|e| match e {
        JwtError::Malformed => invalid_assertion(),
        JwtError::UnknownKey => TokenRefusal::client(KEY_NOT_FOUND),
        JwtError::AlgorithmNotAllowed => TokenRefusal::request(
            "Unexpected alg header value: the key named by kid does not sign with this algorithm",
        ),
        JwtError::BadSignature => TokenRefusal::client(
            "Invalid signature: sign the assertion with the private key of the public key named by kid",
        ),
        JwtError::Expired | JwtError::MissingExpiry | JwtError::LifetimeTooLong => {
            TokenRefusal::claim("exp", "set exp a few minutes after iat, and sign a new assertion for each request")
        }
        JwtError::NotYetValid => TokenRefusal::claim("iat", "iat is in the future: check your clock"),
        JwtError::WrongIssuer => TokenRefusal::claim("iss", "set iss to your OAuth API key's client ID"),
        JwtError::WrongAudience => {
            TokenRefusal::claim("aud", &format!("set aud to {token_url}"))
        }
        JwtError::MissingJti => TokenRefusal::claim("jti", "set jti to a new random value for each assertion"),
    })?;
    if claims.sub.as_deref() != Some(client_id.as_str()) {
        return Err(TokenRefusal::claim(
            "sub",
            "set sub to your OAuth API key's client ID, as iss",
        ));
    }
    let now = clock.unix_seconds();
    let fresh = claims.iat.is_some_and(|iat| {
        iat <= now + SKEW_SECONDS && iat + MAX_ASSERTION_AGE_SECONDS + SKEW_SECONDS >= now
    });
    if !fresh {
        return Err(TokenRefusal::claim(
            "iat",
            "set iat to the time you sign the assertion; it must be within the last 5 minutes",
        ));
    }
    let jti = claims.jti.as_deref().unwrap_or_default();
    // Remembered until the assertion could no longer pass the `iat` check, or its `exp`,
    // whichever is later.
    let remember_until = claims
        .exp
        .unwrap_or_default()
        .max(claims.iat.unwrap_or_default() + MAX_ASSERTION_AGE_SECONDS + SKEW_SECONDS);
    // Engines sharing a PostgreSQL database share the jtis they accepted there; on SQLite,
    // where one engine owns the file, this process remembers them.
    let (key, until) = SeenJtis::shared_key(&client_id, jti, remember_until);
    let shared = engine
        .db(move |s| s.first_use(&key, until, now))
        .await
        .map_err(|e| TokenRefusal::unavailable(&e))?;
    let first = match shared {
        Some(first) => first,
        None => engine
            .oauth
            .jtis
            .first_use(&client_id, jti, remember_until, clock),
    };
    if !first {
        return Err(TokenRefusal::claim(
            "jti",
            "this jti was already used: sign every assertion with a new jti",
        ));
    }
    let holder = TokenHolder {
        client_id: client_id.clone(),
        environment_id: apikey.environment_id.clone(),
        expires_at: now + TOKEN_LIFETIME_SECONDS,
    };
    let plain = serde_json::to_vec(&holder)
        .map_err(|e| TokenRefusal::unavailable(&EngineError::internal(e.to_string())))?;
    let sealed = engine.config.master_key.seal(TOKEN_CONTEXT, &plain);
    tracing::info!(client_id = %client_id, "access token issued");
    Ok(Granted {
        access_token: format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)),
        expires_in: TOKEN_LIFETIME_SECONDS,
    })
}

/// Whether `presented` looks like a token this endpoint issues (and not a static key).
pub fn is_token(presented: &str) -> bool {
    presented.starts_with(TOKEN_PREFIX)
}

/// Who a presented bearer token was issued to, if it is one this engine (or another sharing
/// its master key) issued and it has not expired.
pub fn check(engine: &Engine, presented: &str) -> Result<TokenHolder, EngineError> {
    let refused = || {
        EngineError::Unauthorized(
            "the access token is not valid: request a new one from /v2/auth/token".into(),
        )
    };
    let encoded = presented.strip_prefix(TOKEN_PREFIX).ok_or_else(refused)?;
    let sealed = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| refused())?;
    let plain = engine
        .config
        .master_key
        .open(TOKEN_CONTEXT, &sealed)
        .map_err(|_| refused())?;
    let holder: TokenHolder = serde_json::from_slice(&plain).map_err(|_| refused())?;
    if holder.expires_at <= engine.clock.unix_seconds() {
        return Err(EngineError::Unauthorized(
            "the access token has expired (they live 5 minutes): request a new one from /v2/auth/token".into(),
        ));
    }
    Ok(holder)
}

/// The `alg` of a JWT's header, unverified (only to refuse other algorithms early).
fn peek_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value["alg"].as_str().map(str::to_owned)
}

/// The keys of an OAuth API key: its JWKS URL's (fetched and cached, fetched again when `kid`
/// is unknown, at most once a minute), else its JWK set. `None` when it has none usable.
async fn keys_for(engine: &Engine, apikey: &ApiKeyRecord, kid: &str) -> Option<KeySet> {
    if let Some(url) = &apikey.jwks_url {
        let now = engine.clock.now();
        let due = {
            let mut caches = engine.oauth.jwks.lock().unwrap_or_else(|p| p.into_inner());
            let cache = caches.entry(apikey.id.clone()).or_default();
            let due = cache.should_fetch(Some(kid), now);
            if due {
                cache.attempted(now);
            }
            due
        };
        if due {
            let fetched = fetch_jwks(engine, url).await;
            let mut caches = engine.oauth.jwks.lock().unwrap_or_else(|p| p.into_inner());
            let cache = caches.entry(apikey.id.clone()).or_default();
            let stored = fetched
                .map_err(|e| e.to_string())
                .and_then(|bytes| cache.store(&bytes, now).map_err(|e| e.to_string()));
            match stored {
                Ok(()) => tracing::debug!(apikey = %apikey.id, %url, "JWKS fetched"),
                Err(e) => {
                    tracing::warn!(apikey = %apikey.id, %url, error = %e, "could not fetch an OAuth API key's JWKS; keeping the keys already known")
                }
            }
        }
        let caches = engine.oauth.jwks.lock().unwrap_or_else(|p| p.into_inner());
        return caches.get(&apikey.id).and_then(JwksCache::keys).cloned();
    }
    let set = apikey.jwk_set.as_ref()?;
    KeySet::from_jwks_bytes(set.as_bytes()).ok()
}

/// Fetches a JWKS through a client pinned to an SSRF-checked address.
async fn fetch_jwks(engine: &Engine, url: &str) -> Result<Vec<u8>, SendError> {
    let url = reqwest::Url::parse(url).map_err(|e| SendError::NotUrl {
        what: "the JWKS URL",
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let client = engine.fresh_client(&url).await?;
    Ok(wharf_delivery::client::fetch_jwks(&client, &url).await?)
}
