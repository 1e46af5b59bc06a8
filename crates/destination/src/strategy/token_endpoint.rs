//! The token endpoint of the token-based strategies: RFC 6749 client credentials for
//! OAuth 2.0 2-legged, RFC 7523 client assertions for SMART Backend, and the RFC 7523 JWT
//! grant for `OAuth_2.0_JWT_Bearer_GCP`.

use super::Guard;
use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use wharf_auth::jwt::{self, Rules};
use wharf_auth::oauth::{self, ClientAuth, OAuthError, TokenRequest};
use wharf_auth::strategy::Strategy;

/// The most a SMART client assertion may live (SMART Backend Services: five minutes).
const SMART_ASSERTION_MAX_SECONDS: u64 = 300;
/// The most a JWT grant assertion may live (Google's limit: one hour).
const JWT_GRANT_MAX_SECONDS: u64 = 3600;

fn invalid_client(description: &str) -> OAuthError {
    OAuthError::new("invalid_client", description)
}

/// Checks a token request and issues an access token.
pub(super) async fn issue(
    guard: &Guard,
    http: &reqwest::Client,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Value, OAuthError> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
    };
    let request = oauth::parse_token_request(header(AUTHORIZATION), header(CONTENT_TYPE), body)?;
    let config = &guard.config;
    let client_id = match (config.strategy, &request.auth) {
        (
            Strategy::OAuth2Legged,
            ClientAuth::Secret {
                client_id,
                secret,
                basic,
            },
        ) => {
            let client = config.clients.iter().find(|c| &c.client_id == client_id);
            // Compare against something even for unknown clients, so timing does not tell
            // which client ids exist.
            let registered = client
                .and_then(|c| c.client_secret.as_deref())
                .unwrap_or("\u{0}unknown");
            let matches = oauth::secret_matches(secret, registered);
            if client.is_none() || !matches {
                return Err(OAuthError {
                    basic: *basic,
                    ..invalid_client("unknown client or wrong client secret")
                });
            }
            client_id.clone()
        }
        (Strategy::OAuth2Legged, ClientAuth::Assertion { .. }) => {
            return Err(invalid_client(
                "this endpoint authenticates clients by client secret",
            ));
        }
        (Strategy::SmartBackend, ClientAuth::Assertion { assertion })
            if request.grant_type == oauth::CLIENT_CREDENTIALS =>
        {
            check_assertion(
                guard,
                http,
                &request,
                assertion,
                SMART_ASSERTION_MAX_SECONDS,
                true,
            )
            .await?
        }
        (Strategy::OAuthJwtBearerGcp, ClientAuth::Assertion { assertion })
            if request.grant_type == oauth::JWT_BEARER_GRANT =>
        {
            check_assertion(
                guard,
                http,
                &request,
                assertion,
                JWT_GRANT_MAX_SECONDS,
                false,
            )
            .await?
        }
        (Strategy::SmartBackend, _) => {
            return Err(invalid_client(
                "SMART Backend clients authenticate with a client_assertion (RFC 7523)",
            ));
        }
        (Strategy::OAuthJwtBearerGcp, _) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "this endpoint takes grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer with an assertion",
            ));
        }
        _ => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "this destination has no token endpoint for its strategy",
            ));
        }
    };
    let lifetime = config.token_lifetime.as_secs();
    let token = guard.issued.issue(
        &client_id,
        request.scope.clone(),
        lifetime,
        guard.clock.as_ref(),
    );
    // Servers sharing a database accept each other's tokens: the token is handed out only
    // once the others can see it.
    let expires_at = guard
        .issued
        .check(&token, guard.clock.as_ref())
        .map(|issued| issued.expires_at)
        .unwrap_or_default();
    let registration = guard.registration(&client_id).unwrap_or_default();
    guard
        .replays
        .record_token(&token, &client_id, registration, expires_at)
        .await
        .map_err(|super::Unavailable| {
            OAuthError::new("temporarily_unavailable", super::Unavailable::REASON)
        })?;
    tracing::info!(client_id, strategy = %config.strategy, "access token issued");
    Ok(oauth::token_response(
        &token,
        lifetime,
        request.scope.as_deref(),
    ))
}

/// Verifies a client assertion (SMART) or a JWT grant assertion (GCP): signed by the
/// client's registered keys, `iss` (and for SMART `sub`) the client id, `aud` this token
/// endpoint's URL, a bounded lifetime, and for SMART a `jti` never seen before.
async fn check_assertion(
    guard: &Guard,
    http: &reqwest::Client,
    request: &TokenRequest,
    assertion: &str,
    max_lifetime: u64,
    smart: bool,
) -> Result<String, OAuthError> {
    let bad = |e: jwt::JwtError| {
        let code = if smart {
            "invalid_client"
        } else {
            "invalid_grant"
        };
        OAuthError::new(code, e.to_string())
    };
    let unverified = jwt::peek_claims(assertion).map_err(bad)?;
    let client_id = unverified.iss.clone().unwrap_or_default();
    let Some(client) = guard
        .config
        .clients
        .iter()
        .find(|c| c.client_id == client_id)
    else {
        return Err(if smart {
            invalid_client("the assertion's issuer is not a registered client")
        } else {
            OAuthError::new(
                "invalid_grant",
                "the assertion's issuer is not a registered client",
            )
        });
    };
    if let Some(body_client) = &request.client_id
        && body_client != &client_id
    {
        return Err(invalid_client(
            "client_id does not match the assertion's issuer",
        ));
    }
    // The audience is the configured token URL only, never one built from the request: a
    // `Host` header naming another server would otherwise make its assertions good here.
    let Some(token_url) = guard.config.token_url.clone() else {
        return Err(OAuthError::new(
            "invalid_request",
            "this token endpoint has no configured URL (token_url or public_url)",
        ));
    };
    let audiences = vec![token_url];
    let mut rules = Rules::new(vec![client_id.clone()], audiences);
    rules.max_lifetime_seconds = Some(max_lifetime);
    rules.require_jti = smart;
    let source = client
        .jwks
        .as_ref()
        .expect("validated: assertion clients have keys");
    let claims = guard
        .verify_jwt(http, source, assertion, &rules)
        .await
        .map_err(|refusal| {
            let code = if smart {
                "invalid_client"
            } else {
                "invalid_grant"
            };
            OAuthError::new(code, refusal.reason)
        })?;
    if smart && claims.sub.as_deref() != Some(client_id.as_str()) {
        return Err(invalid_client(
            "the assertion's sub must equal its iss (the client id)",
        ));
    }
    let first_use = match &claims.jti {
        Some(jti) => guard
            .replays
            .first_jti(
                &client_id,
                jti,
                claims.exp.unwrap_or_default(),
                guard.clock.as_ref(),
            )
            .await
            .map_err(|super::Unavailable| {
                OAuthError::new("temporarily_unavailable", super::Unavailable::REASON)
            })?,
        None => true,
    };
    if !first_use {
        return Err(if smart {
            invalid_client("the assertion's jti was already used")
        } else {
            OAuthError::new("invalid_grant", "the assertion's jti was already used")
        });
    }
    Ok(client_id)
}
