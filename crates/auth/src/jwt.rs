//! Verifying JWTs without trusting the token: the algorithm comes from the key, and issuer,
//! audience, expiry and not-before are checked against the caller's clock.
//!
//! `jsonwebtoken` checks the signature (with the algorithm pinned by [`crate::jwks`]); the
//! time and identity claims are checked here so they read the injectable [`Clock`] rather
//! than the system time.

use crate::clock::Clock;
use crate::jwks::KeySet;
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;

/// The registered claims Wharf reads, plus whatever else the token carries.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `aud` is a string or an array of strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// What a token must satisfy beyond its signature.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Accepted issuers; empty accepts any (for client assertions the issuer is checked
    /// against the client id instead).
    pub issuers: Vec<String>,
    /// Accepted audiences; the token's `aud` must contain one of them.
    pub audiences: Vec<String>,
    pub leeway_seconds: u64,
    /// When set, `exp` may be at most this far in the future (SMART: 5 minutes).
    pub max_lifetime_seconds: Option<u64>,
    /// Whether `jti` must be present (client assertions).
    pub require_jti: bool,
}

impl Rules {
    /// Rules for an issuer and audience, with the default leeway.
    pub fn new(issuers: Vec<String>, audiences: Vec<String>) -> Self {
        Self {
            issuers,
            audiences,
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            max_lifetime_seconds: None,
            require_jti: false,
        }
    }
}

/// Why a token was refused. Reasons are safe to send back: they never carry expected values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted for its key")]
    AlgorithmNotAllowed,
    #[error("no registered key matches the token's kid")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token has no exp claim")]
    MissingExpiry,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's exp is too far in the future")]
    LifetimeTooLong,
    #[error("the token's issuer is not accepted")]
    WrongIssuer,
    #[error("the token's audience is not accepted")]
    WrongAudience,
    #[error("the token has no jti claim")]
    MissingJti,
}

/// The token's header, read without trusting it (for choosing keys, never algorithms).
pub fn peek_kid(token: &str) -> Result<Option<String>, JwtError> {
    jsonwebtoken::decode_header(token)
        .map(|h| h.kid)
        .map_err(|_| JwtError::Malformed)
}

/// The claims, unverified: only for finding which client's keys to check against.
pub fn peek_claims(token: &str) -> Result<Claims, JwtError> {
    jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
        .map(|d| d.claims)
        .map_err(|_| JwtError::Malformed)
}

/// Verifies `token` against `keys` and `rules` at the clock's time.
pub fn verify(
    token: &str,
    keys: &KeySet,
    rules: &Rules,
    clock: &dyn Clock,
) -> Result<Claims, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    let alg = header.alg;
    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(JwtError::AlgorithmNotAllowed);
    }
    let mut saw_key = false;
    let mut verified = None;
    for candidate in keys.candidates(header.kid.as_deref()) {
        saw_key = true;
        if !candidate.algorithms.contains(&alg) {
            continue;
        }
        let mut validation = Validation::new(alg);
        // Time, issuer and audience are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        if let Ok(data) = jsonwebtoken::decode::<Claims>(token, &candidate.key, &validation) {
            verified = Some(data.claims);
            break;
        }
    }
    let claims = match verified {
        Some(claims) => claims,
        None if !saw_key => return Err(JwtError::UnknownKey),
        None if keys
            .candidates(header.kid.as_deref())
            .all(|k| !k.algorithms.contains(&alg)) =>
        {
            return Err(JwtError::AlgorithmNotAllowed);
        }
        None => return Err(JwtError::BadSignature),
    };
    check_claims(&claims, rules, clock)?;
    Ok(claims)
}

fn check_claims(claims: &Claims, rules: &Rules, clock: &dyn Clock) -> Result<(), JwtError> {
    let now = clock.unix_seconds();
    let leeway = rules.leeway_seconds;
    let exp = claims.exp.ok_or(JwtError::MissingExpiry)?;
    if exp.saturating_add(leeway) <= now {
        return Err(JwtError::Expired);
    }
    if let Some(max) = rules.max_lifetime_seconds
        && exp > now.saturating_add(max).saturating_add(leeway)
    {
        return Err(JwtError::LifetimeTooLong);
    }
    if let Some(nbf) = claims.nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iat) = claims.iat
        && iat > now.saturating_add(leeway)
    {
        return Err(JwtError::NotYetValid);
    }
    if !rules.issuers.is_empty()
        && !claims
            .iss
            .as_deref()
            .is_some_and(|iss| rules.issuers.iter().any(|i| i == iss))
    {
        return Err(JwtError::WrongIssuer);
    }
    if !rules.audiences.is_empty()
        && !claims
            .aud
            .as_ref()
            .is_some_and(|aud| rules.audiences.iter().any(|a| aud.contains(a)))
    {
        return Err(JwtError::WrongAudience);
    }
    if rules.require_jti && claims.jti.as_deref().is_none_or(str::is_empty) {
        return Err(JwtError::MissingJti);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::keys::{SigningKey, jwks_document};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: u64 = 1_800_000_000;

    fn setup(alg: Algorithm) -> (SigningKey, KeySet, ManualClock) {
        let key = SigningKey::generate(alg, Some("k")).unwrap();
        let set =
            KeySet::from_jwks_bytes(&serde_json::to_vec(&jwks_document([&key])).unwrap()).unwrap();
        (key, set, ManualClock::at_unix(NOW))
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            iss: Some("engine".into()),
            aud: Some(Audience::One("dest".into())),
            exp: Some(exp),
            iat: Some(NOW),
            jti: Some("j1".into()),
            ..Default::default()
        }
    }

    fn rules() -> Rules {
        Rules::new(vec!["engine".into()], vec!["dest".into()])
    }

    #[test]
    fn a_good_token_verifies_for_each_algorithm() {
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::ES256,
            Algorithm::ES384,
        ] {
            let (key, set, clock) = setup(alg);
            let token = key.sign(&claims(NOW + 300)).unwrap();
            let got = verify(&token, &set, &rules(), &clock).unwrap();
            assert_eq!(got.iss.as_deref(), Some("engine"));
        }
    }

    #[test]
    fn time_issuer_audience_and_jti_are_enforced() {
        let (key, set, clock) = setup(Algorithm::ES384);
        let token = key.sign(&claims(NOW + 300)).unwrap();
        clock.advance(std::time::Duration::from_secs(300 + DEFAULT_LEEWAY_SECONDS));
        assert_eq!(
            verify(&token, &set, &rules(), &clock),
            Err(JwtError::Expired)
        );
        clock.rewind(std::time::Duration::from_secs(300 + DEFAULT_LEEWAY_SECONDS));

        let mut early = claims(NOW + 300);
        early.nbf = Some(NOW + 120);
        let token = key.sign(&early).unwrap();
        assert_eq!(
            verify(&token, &set, &rules(), &clock),
            Err(JwtError::NotYetValid)
        );

        let token = key.sign(&claims(NOW + 300)).unwrap();
        let r = Rules::new(vec!["other".into()], vec!["dest".into()]);
        assert_eq!(verify(&token, &set, &r, &clock), Err(JwtError::WrongIssuer));
        let r = Rules::new(vec!["engine".into()], vec!["elsewhere".into()]);
        assert_eq!(
            verify(&token, &set, &r, &clock),
            Err(JwtError::WrongAudience)
        );

        let mut r = rules();
        r.max_lifetime_seconds = Some(300);
        let far = key.sign(&claims(NOW + 3600)).unwrap();
        assert_eq!(
            verify(&far, &set, &r, &clock),
            Err(JwtError::LifetimeTooLong)
        );
        let mut no_exp = claims(0);
        no_exp.exp = None;
        let token = key.sign(&no_exp).unwrap();
        assert_eq!(
            verify(&token, &set, &rules(), &clock),
            Err(JwtError::MissingExpiry)
        );
        r.require_jti = true;
        let mut no_jti = claims(NOW + 60);
        no_jti.jti = None;
        let token = key.sign(&no_jti).unwrap();
        assert_eq!(verify(&token, &set, &r, &clock), Err(JwtError::MissingJti));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let (key, set, clock) = setup(Algorithm::RS256);
        let token = key.sign(&claims(NOW + 300)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // alg none: header swapped, signature dropped.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k"}"#);
        let forged = format!("{none}.{}.", parts[1]);
        assert!(verify(&forged, &set, &rules(), &clock).is_err());

        // HMAC keyed with the public key (the classic confusion attack).
        let public = serde_json::to_vec(key.public_jwk()).unwrap();
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header {
                kid: Some("k".into()),
                ..jsonwebtoken::Header::new(Algorithm::HS256)
            },
            &claims(NOW + 300),
            &jsonwebtoken::EncodingKey::from_secret(&public),
        )
        .unwrap();
        assert_eq!(
            verify(&hs, &set, &rules(), &clock),
            Err(JwtError::AlgorithmNotAllowed)
        );

        // Claims changed after signing.
        let mut altered = claims(NOW + 300);
        altered.iss = Some("engine".into());
        altered.sub = Some("admin".into());
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&altered).unwrap());
        let tampered = format!("{}.{body}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&tampered, &set, &rules(), &clock),
            Err(JwtError::BadSignature)
        );

        // Signed by a key that is not registered, under a kid that is.
        let (stranger, _, _) = setup(Algorithm::RS256);
        let token = stranger.sign(&claims(NOW + 300)).unwrap();
        assert_eq!(
            verify(&token, &set, &rules(), &clock),
            Err(JwtError::BadSignature)
        );

        assert_eq!(
            verify("a.b", &set, &rules(), &clock),
            Err(JwtError::Malformed)
        );
    }

    #[test]
    fn an_unknown_kid_is_reported_as_such() {
        let (_, set, clock) = setup(Algorithm::ES256);
        let other = SigningKey::generate(Algorithm::ES256, Some("other")).unwrap();
        let token = other.sign(&claims(NOW + 300)).unwrap();
        assert_eq!(
            verify(&token, &set, &rules(), &clock),
            Err(JwtError::UnknownKey)
        );
    }
}
