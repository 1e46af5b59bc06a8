//! OAuth 2.0 from both ends, without HTTP: the token endpoint a destination runs (RFC 6749
//! client credentials with `client_secret_basic` or `client_secret_post`, RFC 7523 client
//! assertions for SMART Backend, the RFC 7523 JWT grant), the short-lived bearer tokens it
//! issues, and what the engine sends and reads as a client.
//!
//! Errors use RFC 6749 section 5.2's codes (`invalid_request`, `invalid_client`,
//! `invalid_grant`, `unsupported_grant_type`, ...) with a description that never contains an
//! expected value.

use crate::clock::Clock;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// `grant_type` of the client credentials grant (RFC 6749 section 4.4).
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// `grant_type` of the JWT bearer grant (RFC 7523 section 2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub const JWT_CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An OAuth error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
    /// Whether the client tried HTTP Basic (a 401 then carries `WWW-Authenticate: Basic`).
    pub basic: bool,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic: false,
        }
    }

    /// 401 for `invalid_client`, 503 for `temporarily_unavailable` (the server could not
    /// decide now; RFC 6749 section 4.1.2.1's code for it), 400 for everything else (RFC 6749
    /// section 5.2).
    pub fn status(&self) -> u16 {
        match self.code {
            "invalid_client" => 401,
            "temporarily_unavailable" => 503,
            _ => 400,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code, "error_description": self.description })
    }
}

/// How a client authenticated itself at the token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` or `client_secret_post`.
    Secret {
        client_id: String,
        secret: String,
        basic: bool,
    },
    /// A signed JWT: a SMART client assertion, or the assertion of the JWT grant.
    Assertion { assertion: String },
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Secret {
                client_id, basic, ..
            } => f
                .debug_struct("Secret")
                .field("client_id", client_id)
                .field("basic", basic)
                .finish_non_exhaustive(),
            ClientAuth::Assertion { .. } => f.write_str("Assertion"),
        }
    }
}

/// A parsed token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: String,
    pub auth: ClientAuth,
    /// `client_id` when sent in the body alongside an assertion (optional in RFC 7523).
    pub client_id: Option<String>,
    pub scope: Option<String>,
}

/// Parses a token request from its `Authorization` header, `Content-Type` and body. Form
/// bodies are standard; JSON bodies are accepted too because some clients (and the engine's
/// `contentType: application/json` option) send them.
pub fn parse_token_request(
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<TokenRequest, OAuthError> {
    let params = parse_params(content_type, body)?;
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let grant_type = get("grant_type")
        .ok_or_else(|| OAuthError::new("invalid_request", "grant_type is missing"))?
        .to_string();
    let scope = get("scope").map(str::to_string);
    let basic = match authorization {
        Some(value) => parse_basic(value)?,
        None => None,
    };
    let auth = if grant_type == JWT_BEARER_GRANT {
        let assertion = get("assertion").ok_or_else(|| {
            OAuthError::new("invalid_request", "the JWT grant needs an assertion")
        })?;
        ClientAuth::Assertion {
            assertion: assertion.to_string(),
        }
    } else if grant_type == CLIENT_CREDENTIALS {
        match (basic, get("client_assertion_type"), get("client_secret")) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (None, Some(_), Some(_)) => {
                return Err(OAuthError::new(
                    "invalid_request",
                    "use exactly one client authentication method",
                ));
            }
            (Some((client_id, secret)), None, None) => ClientAuth::Secret {
                client_id,
                secret,
                basic: true,
            },
            (None, Some(kind), None) => {
                if kind != JWT_CLIENT_ASSERTION {
                    return Err(OAuthError::new(
                        "invalid_request",
                        "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ));
                }
                let assertion = get("client_assertion").ok_or_else(|| {
                    OAuthError::new("invalid_request", "client_assertion is missing")
                })?;
                ClientAuth::Assertion {
                    assertion: assertion.to_string(),
                }
            }
            (None, None, Some(secret)) => ClientAuth::Secret {
                client_id: get("client_id")
                    .ok_or_else(|| OAuthError::new("invalid_request", "client_id is missing"))?
                    .to_string(),
                secret: secret.to_string(),
                basic: false,
            },
            (None, None, None) => {
                return Err(OAuthError::new(
                    "invalid_client",
                    "client authentication is missing: use HTTP Basic, client_secret or client_assertion",
                ));
            }
        }
    } else {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            "grant_type must be client_credentials or urn:ietf:params:oauth:grant-type:jwt-bearer",
        ));
    };
    Ok(TokenRequest {
        grant_type,
        auth,
        client_id: get("client_id").map(str::to_string),
        scope,
    })
}

fn parse_params(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    let mut out = HashMap::new();
    if media.as_deref() == Some("application/json") {
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|_| OAuthError::new("invalid_request", "the JSON body is not an object"))?;
        for (k, v) in value {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            out.insert(k, text);
        }
        return Ok(out);
    }
    if media.is_some_and(|m| m != "application/x-www-form-urlencoded") {
        return Err(OAuthError::new(
            "invalid_request",
            "send the token request as application/x-www-form-urlencoded",
        ));
    }
    for (k, v) in form_urlencoded_pairs(body) {
        if out.insert(k.clone(), v).is_some() {
            // RFC 6749 section 3.2: parameters must not be repeated.
            return Err(OAuthError::new(
                "invalid_request",
                format!("parameter {k} is repeated"),
            ));
        }
    }
    Ok(out)
}

fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &[u8]| {
        let plus: Vec<u8> = s
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&plus)
            .decode_utf8_lossy()
            .into_owned()
    };
    body.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&pair[..i]), decode(&pair[i + 1..])),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Reads `Authorization: Basic` (client id and secret form-urlencoded first, RFC 6749
/// section 2.3.1). Other schemes are ignored.
fn parse_basic(value: &str) -> Result<Option<(String, String)>, OAuthError> {
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = || OAuthError {
        basic: true,
        ..OAuthError::new(
            "invalid_client",
            "the Basic credentials are not valid base64 of id:secret",
        )
    };
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        let plus = s.replace('+', " ");
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// Compares a presented client secret with the registered one in constant time (hashing
/// first, so the lengths do not leak either).
pub fn secret_matches(presented: &str, registered: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(registered.as_bytes());
    a.ct_eq(&b).into()
}

/// A token this endpoint issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub client_id: String,
    pub scope: Option<String>,
    pub expires_at: u64,
}

/// Bearer tokens issued by a token endpoint, checked on every request. Tokens are random
/// (256 bits) and kept only as their SHA-256, so a memory dump does not reveal usable tokens.
/// They live in memory: a restart makes clients fetch new ones (they get 401 and retry).
#[derive(Debug, Default)]
pub struct IssuedTokens {
    tokens: Mutex<HashMap<[u8; 32], Issued>>,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("an access token is required: fetch one from the token endpoint")]
    Missing,
    #[error("the access token is not one this destination issued")]
    Unknown,
    #[error("the access token has expired: fetch a new one")]
    Expired,
}

impl IssuedTokens {
    /// Issues a token for `client_id` valid for `lifetime_seconds`; returns the token.
    pub fn issue(
        &self,
        client_id: &str,
        scope: Option<String>,
        lifetime_seconds: u64,
        clock: &dyn Clock,
    ) -> String {
        let mut raw = [0u8; 32];
        // aws-lc-rs' system RNG does not fail on supported platforms; a failure here would
        // mean no entropy at all, which must not produce a guessable token.
        aws_lc_rs::rand::fill(&mut raw).expect("the system random number generator failed");
        let token = URL_SAFE_NO_PAD.encode(raw);
        let now = clock.unix_seconds();
        // Expiry is kept in whole seconds: round the issue time up, so a token lives at least
        // the `expires_in` it is announced with (a 1 s token issued at x.9 s is not dead at
        // x+1.0 s).
        let partial = clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|d| d.subsec_nanos() > 0);
        let expires_at = now + u64::from(partial) + lifetime_seconds;
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, t| t.expires_at > now);
        tokens.insert(
            Sha256::digest(token.as_bytes()).into(),
            Issued {
                client_id: client_id.to_string(),
                scope,
                expires_at,
            },
        );
        token
    }

    /// Checks a presented bearer token.
    pub fn check(&self, token: &str, clock: &dyn Clock) -> Result<Issued, BearerError> {
        if token.is_empty() {
            return Err(BearerError::Missing);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let issued = tokens.get(&key).ok_or(BearerError::Unknown)?;
        if issued.expires_at <= clock.unix_seconds() {
            return Err(BearerError::Expired);
        }
        Ok(issued.clone())
    }
}

/// `jti` values seen in client assertions, so none is accepted twice within its lifetime: the
/// replay memory of [`crate::replay::SeenOnce`], keyed by client and `jti`.
#[derive(Debug, Default)]
pub struct SeenJtis {
    seen: crate::replay::SeenOnce,
}

impl SeenJtis {
    /// Records `jti` for `client_id` until `expires_at`; false when it was already seen.
    pub fn first_use(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: u64,
        clock: &dyn Clock,
    ) -> bool {
        // Remembered until the assertion would be refused as expired (expiry plus leeway):
        // remembering its jti longer buys nothing.
        self.seen.first_use(
            &Self::parts(client_id, jti),
            expires_at + crate::jwt::DEFAULT_LEEWAY_SECONDS,
            clock,
        )
    }

    /// The digest and the time (Unix seconds) until which `jti` of `client_id` is remembered,
    /// as [`SeenJtis::first_use`] remembers it: for a memory several servers share.
    pub fn shared_key(client_id: &str, jti: &str, expires_at: u64) -> ([u8; 32], u64) {
        (
            crate::replay::digest(&Self::parts(client_id, jti)),
            expires_at + crate::jwt::DEFAULT_LEEWAY_SECONDS,
        )
    }

    fn parts<'a>(client_id: &'a str, jti: &'a str) -> [&'a [u8]; 3] {
        [b"jti", client_id.as_bytes(), jti.as_bytes()]
    }
}

/// The successful token response body (RFC 6749 section 5.1).
pub fn token_response(
    token: &str,
    lifetime_seconds: u64,
    scope: Option<&str>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime_seconds,
    });
    if let Some(scope) = scope {
        body["scope"] = scope.into();
    }
    body
}

/// The bearer credentials of an `Authorization` header, if it uses the Bearer scheme.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[test]
    fn client_credentials_by_basic_post_and_json() {
        let r = parse_token_request(
            Some(&basic("app", "s3cret")),
            FORM,
            b"grant_type=client_credentials&scope=a+b",
        )
        .unwrap();
        assert_eq!(
            r.auth,
            ClientAuth::Secret {
                client_id: "app".into(),
                secret: "s3cret".into(),
                basic: true
            }
        );
        assert_eq!(r.scope.as_deref(), Some("a b"));
        let r = parse_token_request(
            None,
            FORM,
            b"grant_type=client_credentials&client_id=app&client_secret=s%3Dx",
        )
        .unwrap();
        assert_eq!(
            r.auth,
            ClientAuth::Secret {
                client_id: "app".into(),
                secret: "s=x".into(),
                basic: false
            }
        );
        let r = parse_token_request(
            None,
            Some("application/json"),
            br#"{"grant_type":"client_credentials","client_id":"app","client_secret":"x","scope":["a","b"]}"#,
        )
        .unwrap();
        assert_eq!(r.scope.as_deref(), Some("a b"));
        assert!(!format!("{r:?}").contains('x'), "Debug hides the secret");
    }

    #[test]
    fn assertions_for_smart_and_the_jwt_grant() {
        let body = format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion=aaa.bbb.ccc",
            JWT_CLIENT_ASSERTION.replace(':', "%3A")
        );
        let r = parse_token_request(None, FORM, body.as_bytes()).unwrap();
        assert_eq!(
            r.auth,
            ClientAuth::Assertion {
                assertion: "aaa.bbb.ccc".into()
            }
        );
        let body = format!(
            "grant_type={}&assertion=x.y.z",
            JWT_BEARER_GRANT.replace(':', "%3A")
        );
        let r = parse_token_request(None, FORM, body.as_bytes()).unwrap();
        assert_eq!(r.grant_type, JWT_BEARER_GRANT);
        assert_eq!(
            r.auth,
            ClientAuth::Assertion {
                assertion: "x.y.z".into()
            }
        );
    }

    #[test]
    fn bad_requests_get_standard_error_codes() {
        let code = |auth: Option<&str>, ct, body: &[u8]| {
            parse_token_request(auth, ct, body).unwrap_err().code
        };
        assert_eq!(code(None, FORM, b"scope=x"), "invalid_request");
        assert_eq!(
            code(None, FORM, b"grant_type=password"),
            "unsupported_grant_type"
        );
        assert_eq!(
            code(None, FORM, b"grant_type=client_credentials"),
            "invalid_client"
        );
        assert_eq!(
            code(Some("Basic !!!"), FORM, b"grant_type=client_credentials"),
            "invalid_client"
        );
        assert_eq!(
            code(None, FORM, b"grant_type=client_credentials&client_secret=x"),
            "invalid_request"
        );
        assert_eq!(
            code(
                None,
                FORM,
                b"grant_type=client_credentials&grant_type=client_credentials"
            ),
            "invalid_request"
        );
        assert_eq!(
            code(None, Some("text/plain"), b"grant_type=client_credentials"),
            "invalid_request"
        );
        assert_eq!(
            code(
                Some(&basic("a", "b")),
                FORM,
                b"grant_type=client_credentials&client_secret=b"
            ),
            "invalid_request"
        );
        let e = parse_token_request(None, FORM, b"grant_type=client_credentials").unwrap_err();
        assert_eq!(e.status(), 401);
        assert_eq!(e.body()["error"], "invalid_client");
    }

    #[test]
    fn issued_tokens_expire_and_unknown_ones_are_refused() {
        let clock = ManualClock::at_unix(1_000);
        let tokens = IssuedTokens::default();
        let t = tokens.issue("app", None, 300, &clock);
        assert_eq!(tokens.check(&t, &clock).unwrap().client_id, "app");
        assert_eq!(tokens.check("guess", &clock), Err(BearerError::Unknown));
        let mut last_byte_changed = t.clone();
        last_byte_changed.pop();
        last_byte_changed.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            tokens.check(&last_byte_changed, &clock),
            Err(BearerError::Unknown)
        );
        clock.advance(Duration::from_secs(300));
        assert_eq!(tokens.check(&t, &clock), Err(BearerError::Expired));
        assert_ne!(tokens.issue("app", None, 1, &clock), t, "tokens are random");
        // A token issued late in a second still lives its whole announced lifetime.
        clock.advance(Duration::from_millis(900));
        let short = tokens.issue("app", None, 1, &clock);
        clock.advance(Duration::from_millis(200));
        assert!(tokens.check(&short, &clock).is_ok());
        clock.advance(Duration::from_millis(900));
        assert_eq!(tokens.check(&short, &clock), Err(BearerError::Expired));
    }

    #[test]
    fn a_jti_is_accepted_once_per_client_within_its_lifetime() {
        let clock = ManualClock::at_unix(1_000);
        let seen = SeenJtis::default();
        assert!(seen.first_use("a", "j1", 1_300, &clock));
        assert!(!seen.first_use("a", "j1", 1_300, &clock));
        assert!(seen.first_use("b", "j1", 1_300, &clock), "per client");
        clock.advance(Duration::from_secs(400));
        assert!(
            seen.first_use("a", "j1", 1_700, &clock),
            "forgotten after expiry"
        );
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secret_matches("abc", "abc"));
        assert!(!secret_matches("abd", "abc"));
        assert!(!secret_matches("ab", "abc"));
        assert_eq!(bearer_token("Bearer  t1 "), Some("t1"));
        assert_eq!(bearer_token("Basic t1"), None);
    }
}
