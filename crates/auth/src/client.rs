//! The engine's side of the token-based strategies, without HTTP: what to send to a token
//! endpoint, how to read its answer, the JWTs the engine signs, and the per-credential
//! token cache.
//!
//! The engine's delivery code does the I/O: it asks for a [`TokenRequest`], POSTs it, hands
//! the response bytes to [`read_token_response`] and keeps the result in a [`TokenCache`].

use crate::clock::Clock;
use crate::keys::{KeyError, SigningKey};
use crate::oauth::{CLIENT_CREDENTIALS, JWT_BEARER_GRANT, JWT_CLIENT_ASSERTION};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Lifetime of a SMART client assertion: the most the spec allows.
pub const CLIENT_ASSERTION_SECONDS: u64 = 300;
/// Lifetime of a GCP service-account assertion: the most Google accepts.
pub const GCP_ASSERTION_SECONDS: u64 = 3600;
/// `grant_type` of an RFC 8693 token exchange (GoogleWIF).
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A request to send to a token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub url: String,
    /// Headers besides `Content-Type` (e.g. `Authorization: Basic ...`).
    pub headers: Vec<(String, String)>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body and headers hold secrets or assertions; only the target is printable.
        f.debug_struct("TokenRequest")
            .field("url", &self.url)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// Why a token could not be requested or read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the credential's `{0}` field is missing")]
    MissingField(&'static str),
    #[error("the credential's `grantType` must be client_credentials")]
    UnsupportedGrant,
    #[error(
        "the credential's `contentType` must be application/x-www-form-urlencoded or application/json"
    )]
    UnsupportedContentType,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("the token endpoint's answer is not a JSON object")]
    NotJson,
    #[error("the token endpoint's answer has no `{0}` string")]
    NoToken(String),
}

fn text<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A field the strategy cannot do without, or the error naming it.
fn required<'a>(
    fields: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, ClientError> {
    text(fields, name).ok_or(ClientError::MissingField(name))
}

/// Scopes given as an array or a space/comma-separated string, joined with spaces.
pub fn scopes(fields: &Map<String, Value>, name: &str) -> Option<String> {
    let joined = match fields.get(name)? {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(s) => s
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        _ => return None,
    };
    (!joined.is_empty()).then_some(joined)
}

fn form(pairs: &[(String, String)]) -> Vec<u8> {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

/// A token request to `url`: `pairs` as a form body, or as a JSON object when `json`.
fn token_request(
    url: &str,
    headers: Vec<(String, String)>,
    pairs: Vec<(String, String)>,
    json: bool,
) -> TokenRequest {
    let (content_type, body) = if json {
        let object: Map<String, Value> = pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        (
            "application/json",
            serde_json::to_vec(&object).unwrap_or_default(),
        )
    } else {
        ("application/x-www-form-urlencoded", form(&pairs))
    };
    TokenRequest {
        url: url.to_string(),
        headers,
        content_type,
        body,
    }
}

/// The OAuth 2.0 2-legged token request, honouring every field of docs/PROTOCOL.md section 5:
/// renamed parameters, `noBasic`, `contentType`, `scopes`, `audience`, `resource` and the
/// custom field. `fields` are the credential's non-secret fields, `secrets` its secret ones.
pub fn oauth_2_legged_request(
    fields: &Map<String, Value>,
    secrets: &Map<String, Value>,
) -> Result<TokenRequest, ClientError> {
    let name = |field: &str, default: &str| text(fields, field).unwrap_or(default).to_string();
    let grant = text(fields, "grantType").unwrap_or(CLIENT_CREDENTIALS);
    if grant != CLIENT_CREDENTIALS {
        return Err(ClientError::UnsupportedGrant);
    }
    let url = required(fields, "url")?;
    let client_id = required(fields, "clientId")?;
    let secret = required(secrets, "clientSecret")?;
    let json = match text(fields, "contentType") {
        None | Some("application/x-www-form-urlencoded") => false,
        Some("application/json") => true,
        Some(_) => return Err(ClientError::UnsupportedContentType),
    };
    let no_basic = fields
        .get("noBasic")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut pairs = vec![(name("grantTypeName", "grant_type"), grant.to_string())];
    let mut headers = Vec::new();
    if no_basic {
        pairs.push((name("clientIdName", "client_id"), client_id.to_string()));
        pairs.push((
            name("clientSecretName", "client_secret"),
            secret.to_string(),
        ));
    } else {
        // RFC 6749 section 2.3.1: id and secret are form-encoded before Basic encoding.
        let enc = |s: &str| form(&[(s.to_string(), String::new())]);
        let id = String::from_utf8_lossy(&enc(client_id))
            .trim_end_matches('=')
            .to_string();
        let pw = String::from_utf8_lossy(&enc(secret))
            .trim_end_matches('=')
            .to_string();
        headers.push((
            "authorization".to_string(),
            format!("Basic {}", STANDARD.encode(format!("{id}:{pw}"))),
        ));
    }
    if let Some(scope) = scopes(fields, "scopes") {
        pairs.push(("scope".to_string(), scope));
    }
    for field in ["audience", "resource"] {
        if let Some(v) = text(fields, field) {
            pairs.push((field.to_string(), v.to_string()));
        }
    }
    if let Some(custom) = text(fields, "customFieldName") {
        let value = text(secrets, "customFieldValue")
            .or_else(|| text(fields, "customFieldValue"))
            .unwrap_or_default();
        pairs.push((custom.to_string(), value.to_string()));
    }
    Ok(token_request(url, headers, pairs, json))
}

/// A SMART Backend client assertion (RFC 7523 section 2.2, SMART Backend Services):
/// `iss` = `sub` = client id, `aud` = token URL, five minutes, a fresh `jti`.
pub fn smart_assertion(
    key: &SigningKey,
    client_id: &str,
    token_url: &str,
    clock: &dyn Clock,
) -> Result<String, KeyError> {
    let now = clock.unix_seconds();
    key.sign(&json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + CLIENT_ASSERTION_SECONDS,
        "jti": uuid::Uuid::new_v4().to_string(),
    }))
}

/// The SMART Backend token request.
pub fn smart_request(
    fields: &Map<String, Value>,
    key: &SigningKey,
    clock: &dyn Clock,
) -> Result<TokenRequest, ClientError> {
    let url = required(fields, "url")?;
    let client_id = required(fields, "clientId")?;
    let mut pairs = vec![
        ("grant_type".to_string(), CLIENT_CREDENTIALS.to_string()),
        (
            "client_assertion_type".to_string(),
            JWT_CLIENT_ASSERTION.to_string(),
        ),
        (
            "client_assertion".to_string(),
            smart_assertion(key, client_id, url, clock)?,
        ),
    ];
    if let Some(scope) = scopes(fields, "scopes") {
        pairs.push(("scope".to_string(), scope));
    }
    Ok(token_request(url, Vec::new(), pairs, false))
}

/// Google's OAuth token endpoint, the default for the GCP JWT grant.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's security token service, the default for GoogleWIF.
pub const GOOGLE_STS_URL: &str = "https://sts.googleapis.com/v1/token";

/// The GCP service-account JWT grant (RFC 7523 section 2.1 as Google uses it).
pub fn gcp_request(
    fields: &Map<String, Value>,
    key: &SigningKey,
    clock: &dyn Clock,
) -> Result<TokenRequest, ClientError> {
    let email = required(fields, "serviceAccountEmail")?;
    let url = text(fields, "tokenUrl").unwrap_or(GOOGLE_TOKEN_URL);
    let now = clock.unix_seconds();
    let mut claims = json!({
        "iss": email,
        "aud": url,
        "iat": now,
        "exp": now + GCP_ASSERTION_SECONDS,
    });
    if let Some(scope) = scopes(fields, "scopes") {
        claims["scope"] = scope.into();
    }
    let pairs = vec![
        ("grant_type".to_string(), JWT_BEARER_GRANT.to_string()),
        ("assertion".to_string(), key.sign(&claims)?),
    ];
    Ok(token_request(url, Vec::new(), pairs, false))
}

/// A JWT Bearer token for one request: fresh, short-lived, with a unique `jti`.
pub fn jwt_bearer_token(
    fields: &Map<String, Value>,
    key: &SigningKey,
    clock: &dyn Clock,
) -> Result<String, ClientError> {
    let issuer = required(fields, "issuer")?;
    let audience = required(fields, "audience")?;
    let subject = text(fields, "subject").unwrap_or(issuer);
    let lifetime = fields
        .get("lifetimeSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(300);
    let now = clock.unix_seconds();
    Ok(key.sign(&json!({
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": uuid::Uuid::new_v4().to_string(),
    }))?)
}

/// The GoogleWIF token exchange (RFC 8693): the engine signs its own subject token (an OIDC
/// token whose issuer publishes the engine's JWKS, which the workload identity pool trusts)
/// and exchanges it at the token service.
pub fn wif_exchange_request(
    fields: &Map<String, Value>,
    key: &SigningKey,
    default_issuer: &str,
    clock: &dyn Clock,
) -> Result<TokenRequest, ClientError> {
    let audience = required(fields, "audience")?;
    let url = text(fields, "token_url").unwrap_or(GOOGLE_STS_URL);
    let issuer = text(fields, "subjectIssuer").unwrap_or(default_issuer);
    let now = clock.unix_seconds();
    let subject_token = key.sign(&json!({
        "iss": issuer,
        "sub": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + 600,
        "jti": uuid::Uuid::new_v4().to_string(),
    }))?;
    let pairs = vec![
        ("grant_type".to_string(), TOKEN_EXCHANGE_GRANT.to_string()),
        ("audience".to_string(), audience.to_string()),
        (
            "scope".to_string(),
            text(fields, "sts_scope")
                .unwrap_or("https://www.googleapis.com/auth/cloud-platform")
                .to_string(),
        ),
        (
            "requested_token_type".to_string(),
            "urn:ietf:params:oauth:token-type:access_token".to_string(),
        ),
        ("subject_token".to_string(), subject_token),
        (
            "subject_token_type".to_string(),
            "urn:ietf:params:oauth:token-type:jwt".to_string(),
        ),
    ];
    Ok(token_request(url, Vec::new(), pairs, false))
}

/// The service-account impersonation request that follows a GoogleWIF exchange, if the
/// credential names one: `generateAccessToken` (scope, delegates, lifetime) or
/// `generateIdToken` (audience `idTokenAudience`, delegates).
pub fn wif_impersonation_request(
    fields: &Map<String, Value>,
    sts_token: &str,
) -> Option<TokenRequest> {
    let url = text(fields, "service_account_impersonation_url")?;
    let delegates: Vec<Value> = match fields.get("delegates") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(s)) => s
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(|s| s.into())
            .collect(),
        _ => Vec::new(),
    };
    let body = if url.ends_with(":generateIdToken") {
        json!({
            "audience": text(fields, "idTokenAudience").or(text(fields, "audience")),
            "delegates": delegates,
            "includeEmail": true,
        })
    } else {
        let scope = scopes(fields, "scope")
            .unwrap_or_else(|| "https://www.googleapis.com/auth/cloud-platform".into());
        json!({
            "scope": scope.split(' ').collect::<Vec<_>>(),
            "delegates": delegates,
            "lifetime": text(fields, "lifetime").unwrap_or("3600s"),
        })
    };
    Some(TokenRequest {
        url: url.to_string(),
        headers: vec![("authorization".into(), format!("Bearer {sts_token}"))],
        content_type: "application/json",
        body: serde_json::to_vec(&body).unwrap_or_default(),
    })
}

/// A token and how long it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedToken {
    pub token: String,
    pub lifetime: Duration,
}

impl std::fmt::Debug for FetchedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedToken")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Reads a token endpoint's JSON answer: the token under `token_field`, the lifetime in
/// seconds under `expires_field` (a number or a numeric string), else `default_seconds`.
pub fn read_token_response(
    body: &[u8],
    token_field: &str,
    expires_field: &str,
    default_seconds: u64,
) -> Result<FetchedToken, ClientError> {
    let value: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| ClientError::NotJson)?;
    let token = value
        .get(token_field)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ClientError::NoToken(token_field.to_string()))?;
    let seconds = match value.get(expires_field) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(default_seconds);
    Ok(FetchedToken {
        token: token.to_string(),
        lifetime: Duration::from_secs(seconds),
    })
}

/// The answer of a Google impersonation call: `generateAccessToken` gives `accessToken` and
/// `expireTime`, `generateIdToken` gives `token` (whose `exp` claim says its lifetime).
pub fn read_impersonation_response(
    body: &[u8],
    clock: &dyn Clock,
) -> Result<FetchedToken, ClientError> {
    let value: Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| ClientError::NotJson)?;
    let now = clock.unix_seconds();
    if let Some(token) = value.get("accessToken").and_then(Value::as_str) {
        let expires = value
            .get("expireTime")
            .and_then(Value::as_str)
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| t.unix_timestamp().max(0) as u64);
        let lifetime = expires.map(|e| e.saturating_sub(now)).unwrap_or(3600);
        return Ok(FetchedToken {
            token: token.to_string(),
            lifetime: Duration::from_secs(lifetime),
        });
    }
    if let Some(token) = value.get("token").and_then(Value::as_str) {
        let exp = crate::jwt::peek_claims(token).ok().and_then(|c| c.exp);
        let lifetime = exp.map(|e| e.saturating_sub(now)).unwrap_or(3600);
        return Ok(FetchedToken {
            token: token.to_string(),
            lifetime: Duration::from_secs(lifetime),
        });
    }
    Err(ClientError::NoToken("accessToken".into()))
}

/// The access token cached for one credential. A token is used until shortly before it
/// expires (the last minute, or the last tenth of a shorter lifetime), then fetched again;
/// [`TokenCache::forget`] drops it after the destination answers 401.
#[derive(Default)]
pub struct TokenCache {
    token: Option<(String, u64)>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("cached", &self.token.is_some())
            .finish()
    }
}

impl TokenCache {
    /// The cached token, if it is not about to expire.
    pub fn get(&self, clock: &dyn Clock) -> Option<&str> {
        let (token, refresh_at) = self.token.as_ref()?;
        (clock.unix_seconds() < *refresh_at).then_some(token.as_str())
    }

    /// Keeps a freshly fetched token.
    pub fn put(&mut self, fetched: &FetchedToken, clock: &dyn Clock) {
        let lifetime = fetched.lifetime.as_secs();
        let margin = (lifetime / 10).min(60);
        self.token = Some((
            fetched.token.clone(),
            clock.unix_seconds() + lifetime - margin,
        ));
    }

    /// Drops the cached token.
    pub fn forget(&mut self) {
        self.token = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::oauth::{ClientAuth, parse_token_request};

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn two_legged_default_is_basic_and_form_and_parses_on_our_endpoint() {
        let fields = map(
            json!({"url": "https://t/token", "clientId": "app id", "scopes": ["a", "b"], "audience": "aud"}),
        );
        let secrets = map(json!({"clientSecret": "s:e/cret"}));
        let req = oauth_2_legged_request(&fields, &secrets).unwrap();
        assert_eq!(req.content_type, "application/x-www-form-urlencoded");
        let auth = &req.headers[0].1;
        let parsed = parse_token_request(Some(auth), Some(req.content_type), &req.body).unwrap();
        assert_eq!(
            parsed.auth,
            ClientAuth::Secret {
                client_id: "app id".into(),
                secret: "s:e/cret".into(),
                basic: true
            }
        );
        assert_eq!(parsed.scope.as_deref(), Some("a b"));
        assert!(!format!("{req:?}").contains("cret"));
    }

    #[test]
    fn two_legged_honours_renames_no_basic_json_and_custom_field() {
        let fields = map(json!({
            "url": "https://t/token", "clientId": "app", "noBasic": true, "contentType": "application/json",
            "grantTypeName": "gt", "clientIdName": "id", "clientSecretName": "pw",
            "customFieldName": "tenant", "resource": "https://r", "scopes": "x,y"
        }));
        let secrets = map(json!({"clientSecret": "sec", "customFieldValue": "t1"}));
        let req = oauth_2_legged_request(&fields, &secrets).unwrap();
        assert!(req.headers.is_empty(), "noBasic sends no Authorization");
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({"gt": "client_credentials", "id": "app", "pw": "sec", "tenant": "t1", "resource": "https://r", "scope": "x y"})
        );
        let bad = map(json!({"url": "u", "clientId": "a", "grantType": "password"}));
        assert!(matches!(
            oauth_2_legged_request(&bad, &secrets),
            Err(ClientError::UnsupportedGrant)
        ));
    }

    #[test]
    fn token_responses_with_renamed_fields_and_defaults() {
        let t = read_token_response(br#"{"tok":"abc","ttl":"120"}"#, "tok", "ttl", 3600).unwrap();
        assert_eq!((t.token.as_str(), t.lifetime.as_secs()), ("abc", 120));
        let t = read_token_response(
            br#"{"access_token":"abc"}"#,
            "access_token",
            "expires_in",
            900,
        )
        .unwrap();
        assert_eq!(t.lifetime.as_secs(), 900);
        assert!(
            read_token_response(
                br#"{"error":"invalid_client"}"#,
                "access_token",
                "expires_in",
                1
            )
            .is_err()
        );
        assert!(read_token_response(b"<html>", "access_token", "expires_in", 1).is_err());
    }

    #[test]
    fn the_cache_refreshes_shortly_before_expiry() {
        let clock = ManualClock::at_unix(10_000);
        let mut cache = TokenCache::default();
        assert!(cache.get(&clock).is_none());
        cache.put(
            &FetchedToken {
                token: "t".into(),
                lifetime: Duration::from_secs(3600),
            },
            &clock,
        );
        clock.advance(Duration::from_secs(3539));
        assert_eq!(cache.get(&clock), Some("t"));
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.get(&clock), None, "the last minute is not used");
        cache.put(
            &FetchedToken {
                token: "u".into(),
                lifetime: Duration::from_secs(100),
            },
            &clock,
        );
        clock.advance(Duration::from_secs(90));
        assert_eq!(cache.get(&clock), None, "a tenth of a short lifetime");
        cache.put(
            &FetchedToken {
                token: "v".into(),
                lifetime: Duration::from_secs(100),
            },
            &clock,
        );
        cache.forget();
        assert_eq!(cache.get(&clock), None);
    }

    #[test]
    fn signed_requests_carry_the_claims_the_specs_require() {
        let clock = ManualClock::at_unix(1_800_000_000);
        let key = SigningKey::generate(jsonwebtoken::Algorithm::ES384, Some("k")).unwrap();
        let a = smart_assertion(&key, "client", "https://d/token", &clock).unwrap();
        let b = smart_assertion(&key, "client", "https://d/token", &clock).unwrap();
        let ca = crate::jwt::peek_claims(&a).unwrap();
        assert_eq!(ca.iss, ca.sub);
        assert_eq!(ca.exp, Some(1_800_000_000 + 300));
        assert_ne!(
            ca.jti,
            crate::jwt::peek_claims(&b).unwrap().jti,
            "jti is fresh each time"
        );
        let fields = map(
            json!({"serviceAccountEmail": "sa@p.iam.gserviceaccount.com", "tokenUrl": "http://127.0.0.1/token", "scopes": ["s1"]}),
        );
        let req = gcp_request(&fields, &key, &clock).unwrap();
        let parsed = parse_token_request(None, Some(req.content_type), &req.body).unwrap();
        assert_eq!(parsed.grant_type, JWT_BEARER_GRANT);
        let fields = map(
            json!({"audience": "//iam/pool", "service_account_impersonation_url": "http://x/sa:generateAccessToken", "delegates": "a,b"}),
        );
        let req = wif_impersonation_request(&fields, "sts").unwrap();
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["delegates"], json!(["a", "b"]));
        assert_eq!(body["lifetime"], "3600s");
        let t = read_impersonation_response(
            br#"{"accessToken":"ya29","expireTime":"2027-01-15T09:00:00Z"}"#,
            &clock,
        )
        .unwrap();
        assert_eq!(t.token, "ya29");
        assert_eq!(t.lifetime.as_secs(), 3600);
    }
}
