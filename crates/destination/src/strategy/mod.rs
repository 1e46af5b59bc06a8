//! Checking a destination's auth strategy (docs/PROTOCOL.md section 5) on every request, and the
//! token endpoint the token-based strategies need.
//!
//! The signing and verifying is `wharf-auth`'s; this module owns what needs I/O and state:
//! fetching and caching JWKS documents, the access tokens this destination issued, the `jti`
//! values already used, and the HTTP answers. A refusal is 401 (nothing usable presented) or
//! 403 (something presented and wrong), with a short reason that never contains an expected
//! value; the reason is logged too, without secrets.
//!
//! | strategy | every request carries | checked against |
//! |---|---|---|
//! | `OAuth_2.0_2-legged`, `SMART_Backend`, `OAuth_2.0_JWT_Bearer_GCP` | `Authorization: Bearer` from our token endpoint | the tokens we issued (in memory, short-lived; also in the shared database on PostgreSQL) |
//! | `JWT_Bearer` | `Authorization: Bearer <JWT>` signed by the sender | issuer's JWKS, `iss`, `aud`, `exp`/`nbf`, `jti` (or, without one, the token itself) not reused |
//! | `GoogleWIF` | `Authorization: Bearer <Google-style ID token>` | issuer's JWKS, `iss`, `aud`, `exp`/`nbf` |
//! | `AwsSigv4` | `Authorization: AWS4-HMAC-SHA256 ...` | the signature over the request and body, not seen before |
//!
//! Replays: a JWT Bearer token and a SigV4 signature are made for one request, so each is
//! accepted once. A JWT Bearer token without `jti` is still accepted (docs/PROTOCOL.md asks only for
//! a fresh short-lived token; Wharf's engine always sends a `jti`), and the token itself is
//! remembered instead until it expires. A SigV4 signature is remembered for twice the allowed
//! clock skew (10 minutes), the longest it could pass the `X-Amz-Date` check. The trade-off:
//! two byte-identical requests signed in the same second carry the same signature, and the
//! second is refused as a replay. Wharf's engine never sends those (each delivery attempt of a
//! data model message has a new `AttemptID` in its body, and retries, resends and the retry
//! after a 401 are signed again later); a sender that does gets a 403 and retries. Servers
//! sharing a PostgreSQL database share this memory (`replay`): a request accepted by one is a
//! replay at every other; when the database cannot answer the check, the request gets 503
//! with `Retry-After`.

pub mod config;
mod replay;
mod token_endpoint;

pub use config::{AuthConfig, ClientConfig, JwksSource};
use replay::Replays;
pub use replay::Unavailable;

use axum::response::{IntoResponse, Response};
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method, StatusCode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wharf_auth::clock::Clock;
use wharf_auth::jwks::{JwksCache, KeySet};
use wharf_auth::jwt::{self, JwtError, Rules};
use wharf_auth::oauth::{self, IssuedTokens};
use wharf_auth::sigv4;
use wharf_auth::strategy::Strategy;

/// A request the strategy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

impl Refusal {
    fn missing(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            reason: reason.into(),
        }
    }

    fn wrong(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason: reason.into(),
        }
    }

    fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: Unavailable::REASON.into(),
        }
    }

    /// The answer, logged with the destination's name and the reason; a 401 names the
    /// scheme `strategy` expects in `WWW-Authenticate`.
    pub fn respond(&self, destination: &str, strategy: Strategy) -> Response {
        let mut response = crate::receive::error(self.status, &self.reason);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Not an authentication failure: the sender retries the same request later.
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(Unavailable::RETRY_AFTER),
            );
            return response;
        }
        tracing::warn!(destination, status = self.status.as_u16(), reason = %self.reason, "request refused by the auth strategy");
        let reason = if self.status == StatusCode::UNAUTHORIZED {
            let scheme = match strategy {
                Strategy::AwsSigv4 => "AWS4-HMAC-SHA256",
                _ => "Bearer",
            };
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static(scheme),
            );
            "strategy_missing"
        } else {
            "strategy_rejected"
        };
        response
            .extensions_mut()
            .insert(wharf_serve::metrics::AuthFailure(reason));
        response
    }
}

/// A single-use credential is accepted the first time only; a replay is refused with `replayed`,
/// which tells the client what to do instead.
fn first_use_only(first_use: bool, replayed: &'static str) -> Result<(), Refusal> {
    if first_use {
        Ok(())
    } else {
        Err(Refusal::wrong(replayed))
    }
}

fn jwt_refusal(e: JwtError) -> Refusal {
    Refusal::wrong(e.to_string())
}

/// One destination's strategy with its runtime state.
pub struct Guard {
    pub config: AuthConfig,
    clock: Arc<dyn Clock>,
    issued: IssuedTokens,
    /// SigV4 signatures, `jti`s, and JWT Bearer tokens without `jti` already accepted.
    replays: Replays,
    /// Fetched JWKS documents by URL.
    jwks: Mutex<HashMap<String, JwksCache>>,
    sigv4: Option<sigv4::Verifier>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// The strategy of the destination at `path`. With `shared`, single-use credentials are
    /// remembered in the database the servers share, else in this process.
    pub fn new(
        path: &str,
        config: AuthConfig,
        clock: Arc<dyn Clock>,
        shared: Option<wharf_store::SharedReplays>,
    ) -> Self {
        let sigv4 = (config.strategy == Strategy::AwsSigv4).then(|| {
            sigv4::Verifier::new(
                config.region.clone().unwrap_or_default(),
                config.service.clone().unwrap_or_default(),
                config.credentials.clone(),
            )
        });
        Self {
            config,
            clock,
            issued: IssuedTokens::default(),
            replays: Replays::new(path, shared),
            jwks: Mutex::new(HashMap::new()),
            sigv4,
        }
    }

    /// A digest of how `client_id` is registered here (its secret, for OAuth 2-legged), so a
    /// token issued under another registration (before a secret was rotated) is not accepted
    /// from the shared database; `None` for a client not registered.
    pub(crate) fn registration(&self, client_id: &str) -> Option<[u8; 32]> {
        let client = self
            .config
            .clients
            .iter()
            .find(|c| c.client_id == client_id)?;
        Some(wharf_auth::replay::digest(&[
            b"registration",
            client_id.as_bytes(),
            client
                .client_secret
                .as_deref()
                .unwrap_or_default()
                .as_bytes(),
        ]))
    }

    /// Whether the body must be read before the strategy can decide (SigV4 signs it).
    pub fn needs_body(&self) -> bool {
        self.sigv4.is_some()
    }

    /// Checks what can be checked from the headers alone. For SigV4 that is the shape of the
    /// `Authorization` header and that its access key is registered; the signature itself is
    /// checked by [`Guard::check_signature`] once the body has been read.
    pub async fn check_headers(
        &self,
        http: &reqwest::Client,
        headers: &HeaderMap,
    ) -> Result<(), Refusal> {
        let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        match self.config.strategy {
            Strategy::AwsSigv4 => {
                let Some(value) = authorization else {
                    return Err(Refusal::missing(
                        "missing AWS Signature Version 4 Authorization header",
                    ));
                };
                let known = sigv4_access_key(value)
                    .is_some_and(|ak| self.config.credentials.iter().any(|(a, _)| a == ak));
                if known {
                    Ok(())
                } else {
                    Err(Refusal::wrong(
                        "unknown access key or malformed Authorization header",
                    ))
                }
            }
            Strategy::OAuth2Legged | Strategy::SmartBackend | Strategy::OAuthJwtBearerGcp => {
                let token = authorization
                    .and_then(oauth::bearer_token)
                    .ok_or_else(|| Refusal::missing("missing access token: fetch one from the token endpoint and send it as Authorization: Bearer"))?;
                match self.issued.check(token, self.clock.as_ref()) {
                    Ok(_) => Ok(()),
                    // Not issued here: perhaps by another server sharing the database.
                    Err(oauth::BearerError::Unknown) => {
                        match self
                            .replays
                            .issued_elsewhere(token, self.clock.as_ref(), |client| {
                                self.registration(client)
                            })
                            .await
                            .map_err(|Unavailable| Refusal::unavailable())?
                        {
                            Some(true) => Ok(()),
                            Some(false) => Err(Refusal::missing(
                                "the access token has expired or its client's registration changed: fetch a new one",
                            )),
                            None => Err(Refusal::missing(oauth::BearerError::Unknown.to_string())),
                        }
                    }
                    // Expired tokens are 401: the client should fetch a new one.
                    Err(e) => Err(Refusal::missing(e.to_string())),
                }
            }
            Strategy::JwtBearer | Strategy::GoogleWif => {
                let token = authorization.and_then(oauth::bearer_token).ok_or_else(|| {
                    Refusal::missing("missing token: send a signed JWT as Authorization: Bearer")
                })?;
                let rules = Rules::new(
                    self.config.issuer.iter().cloned().collect(),
                    self.config.audience.iter().cloned().collect(),
                );
                let source = self
                    .config
                    .jwks
                    .as_ref()
                    .expect("validated: JWT strategies have keys");
                let claims = self.verify_jwt(http, source, token, &rules).await?;
                // A JWT Bearer token is minted per request: one presented twice is a replay.
                // Google ID tokens are reused for their lifetime by design, so not for them.
                if self.config.strategy != Strategy::JwtBearer {
                    return Ok(());
                }
                let exp = claims.exp.unwrap_or_default();
                let first_use = match &claims.jti {
                    Some(jti) => {
                        self.replays
                            .first_jti(
                                claims.iss.as_deref().unwrap_or_default(),
                                jti,
                                exp,
                                self.clock.as_ref(),
                            )
                            .await
                    }
                    // Without a jti the token itself is the single-use credential, kept until
                    // it would be refused as expired anyway.
                    None => {
                        self.replays
                            .first_use(
                                &[b"jwt-bearer", token.as_bytes()],
                                exp.saturating_add(jwt::DEFAULT_LEEWAY_SECONDS),
                                self.clock.as_ref(),
                            )
                            .await
                    }
                }
                .map_err(|Unavailable| Refusal::unavailable())?;
                first_use_only(
                    first_use,
                    "the token was already used (replayed): mint a fresh JWT for every request",
                )
            }
        }
    }

    /// SigV4: verifies the signature over the request as received.
    pub async fn check_signature(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let Some(verifier) = &self.sigv4 else {
            return Ok(());
        };
        let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        // HTTP/2 carries the host as `:authority`, which SigV4 signs as `host`.
        let with_host;
        let headers = match uri.authority() {
            Some(authority) if !headers.contains_key(http::header::HOST) => {
                with_host = {
                    let mut h = headers.clone();
                    if let Ok(v) = http::HeaderValue::from_str(authority.as_str()) {
                        h.insert(http::header::HOST, v);
                    }
                    h
                };
                &with_host
            }
            _ => headers,
        };
        verifier
            .verify(method, target, headers, body, self.clock.now())
            .map_err(|e| Refusal {
                status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::FORBIDDEN),
                reason: e.reason().to_string(),
            })?;
        // Verified, so the header has exactly one Signature of 64 hex digits; lowercased so
        // the same signature in capitals is the same replay.
        let signature = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(sigv4_signature)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        // A signature passes the X-Amz-Date check for at most twice the skew from now.
        let expires_at = self
            .clock
            .unix_seconds()
            .saturating_add(2 * sigv4::DEFAULT_MAX_SKEW.as_secs());
        let first_use = self
            .replays
            .first_use(
                &[b"sigv4", signature.as_bytes()],
                expires_at,
                self.clock.as_ref(),
            )
            .await
            .map_err(|Unavailable| Refusal::unavailable())?;
        first_use_only(
            first_use,
            "replayed request: this signature was already received; sign every request afresh",
        )
    }

    /// Verifies a JWT against keys from `source`, fetching or refreshing them as the cache
    /// policy allows.
    async fn verify_jwt(
        &self,
        http: &reqwest::Client,
        source: &JwksSource,
        token: &str,
        rules: &Rules,
    ) -> Result<jwt::Claims, Refusal> {
        match source {
            JwksSource::Inline(keys) => {
                jwt::verify(token, keys, rules, self.clock.as_ref()).map_err(jwt_refusal)
            }
            JwksSource::Url(url) => {
                let kid = jwt::peek_kid(token).map_err(jwt_refusal)?;
                self.refresh_if_due(http, url, kid.as_deref()).await;
                let caches = self.jwks.lock().unwrap_or_else(|p| p.into_inner());
                let keys: Option<&KeySet> = caches.get(url.as_str()).and_then(JwksCache::keys);
                let Some(keys) = keys else {
                    return Err(Refusal::wrong(
                        "the signing keys could not be fetched; try again later",
                    ));
                };
                jwt::verify(token, keys, rules, self.clock.as_ref()).map_err(jwt_refusal)
            }
        }
    }

    async fn refresh_if_due(&self, http: &reqwest::Client, url: &reqwest::Url, kid: Option<&str>) {
        let now = self.clock.now();
        {
            let mut caches = self.jwks.lock().unwrap_or_else(|p| p.into_inner());
            let cache = caches.entry(url.to_string()).or_default();
            if !cache.should_fetch(kid, now) {
                return;
            }
            cache.attempted(now);
        }
        let fetched = wharf_delivery::client::fetch_jwks(http, url).await;
        let mut caches = self.jwks.lock().unwrap_or_else(|p| p.into_inner());
        let cache = caches.entry(url.to_string()).or_default();
        let stored = fetched
            .map_err(|e| e.to_string())
            .and_then(|bytes| cache.store(&bytes, now).map_err(|e| e.to_string()));
        match stored {
            Ok(()) => tracing::debug!(%url, "JWKS fetched"),
            Err(e) => {
                tracing::warn!(%url, error = %e, "could not refresh a JWKS; keeping the keys already known")
            }
        }
    }

    /// Answers a request to the token endpoint.
    pub async fn token_endpoint(
        &self,
        http: &reqwest::Client,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Response {
        match token_endpoint::issue(self, http, headers, body).await {
            Ok(body) => {
                let mut response = (StatusCode::OK, axum::Json(body)).into_response();
                let h = response.headers_mut();
                h.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                h.insert(
                    http::header::PRAGMA,
                    http::HeaderValue::from_static("no-cache"),
                );
                response
            }
            Err(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                let mut response = (status, axum::Json(e.body())).into_response();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    // Not the client's fault: it retries the same request later.
                    response.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from(Unavailable::RETRY_AFTER),
                    );
                } else {
                    tracing::warn!(code = e.code, reason = %e.description, "token request refused");
                    response
                        .extensions_mut()
                        .insert(wharf_serve::metrics::AuthFailure("token_request_refused"));
                }
                response.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                if status == StatusCode::UNAUTHORIZED && e.basic {
                    response.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        http::HeaderValue::from_static("Basic realm=\"token\""),
                    );
                }
                response
            }
        }
    }
}

/// The access key of a SigV4 `Authorization` header, if it has the expected shape.
fn sigv4_access_key(value: &str) -> Option<&str> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let credential = rest
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Credential="))?;
    credential.split('/').next().filter(|a| !a.is_empty())
}

/// The `Signature=` field of a SigV4 `Authorization` header.
fn sigv4_signature(value: &str) -> Option<&str> {
    value
        .strip_prefix("AWS4-HMAC-SHA256 ")?
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("Signature="))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_key_is_read_from_a_sigv4_header() {
        let h = "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(sigv4_access_key(h), Some("AKID"));
        assert_eq!(sigv4_access_key("Bearer x"), None);
        assert_eq!(sigv4_access_key("AWS4-HMAC-SHA256 Credential=/x"), None);
        assert_eq!(sigv4_signature(h), Some("abc"));
        assert_eq!(sigv4_signature("Bearer Signature=abc"), None);
    }
}
