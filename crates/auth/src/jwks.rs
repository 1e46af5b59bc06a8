//! Public keys to verify JWTs with: a parsed JWKS, and the refresh policy for one fetched
//! from a URL.
//!
//! Each key's algorithm is decided here, from the key itself (RSA -> RS256/RS384/RS512, or
//! the JWK's `alg` when it names one; P-256 -> ES256; P-384 -> ES384). Symmetric (`oct`) keys
//! are refused outright, so a public key can never be used as an HMAC secret.
//!
//! Fetching is the caller's job (this crate does no I/O): [`JwksCache`] only says when a
//! fetch is due (never fetched, older than [`MAX_AGE`], or an unknown `kid` and the last
//! refresh for an unknown `kid` at least [`UNKNOWN_KID_COOLDOWN`] ago) and takes the bytes
//! that came back. The cooldown runs from the last unknown-`kid` refresh, not from the last
//! fetch, so a key rotated just after a fetch is picked up at its first use.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::time::{Duration, SystemTime};

/// A fetched JWKS is used for at most this long before it is fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// An unknown `kid` triggers a refetch at most this often (so forged kids cannot hammer the
/// key server).
pub const UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(60);

/// Why a JWKS could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("the JWKS is not JSON of the form {{\"keys\":[...]}}: {0}")]
    NotJwks(String),
    #[error("the JWKS holds no usable RSA or EC signing key")]
    NoUsableKeys,
}

/// One verification key with the algorithms it may be used with.
#[derive(Clone)]
pub struct VerificationKey {
    pub kid: Option<String>,
    pub algorithms: Vec<Algorithm>,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// A set of verification keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

fn algorithms_for(jwk: &Jwk) -> Option<Vec<Algorithm>> {
    let named = |alg: KeyAlgorithm| match alg {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::RS384 => Some(Algorithm::RS384),
        KeyAlgorithm::RS512 => Some(Algorithm::RS512),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::PS384 => Some(Algorithm::PS384),
        KeyAlgorithm::PS512 => Some(Algorithm::PS512),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::ES384 => Some(Algorithm::ES384),
        _ => None,
    };
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => match jwk.common.key_algorithm {
            Some(alg) => {
                let alg = named(alg)?;
                matches!(
                    alg,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                )
                .then(|| vec![alg])
            }
            None => Some(vec![Algorithm::RS256, Algorithm::RS384, Algorithm::RS512]),
        },
        AlgorithmParameters::EllipticCurve(ec) => {
            let alg = match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return None,
            };
            // A JWK that names a different algorithm than its curve is inconsistent: skip it.
            match jwk.common.key_algorithm {
                Some(named_alg) if named(named_alg) != Some(alg) => None,
                _ => Some(vec![alg]),
            }
        }
        // oct (HMAC) and OKP keys are never accepted for verification.
        _ => None,
    }
}

impl KeySet {
    /// Parses a JWKS document, keeping every RSA and EC signature key and skipping others.
    pub fn from_jwks_bytes(bytes: &[u8]) -> Result<Self, JwksError> {
        let set: JwkSet =
            serde_json::from_slice(bytes).map_err(|e| JwksError::NotJwks(e.to_string()))?;
        Self::from_jwk_set(&set)
    }

    /// Builds a key set from already-parsed JWKs.
    pub fn from_jwk_set(set: &JwkSet) -> Result<Self, JwksError> {
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if let Some(usage) = &jwk.common.public_key_use
                && *usage != jsonwebtoken::jwk::PublicKeyUse::Signature
            {
                continue;
            }
            let Some(algorithms) = algorithms_for(jwk) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            keys.push(VerificationKey {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key,
            });
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(Self { keys })
    }

    /// Whether a key with this id is present.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys a token with this header may be checked against: the one with its `kid`, or,
    /// when the token names none, every key.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a VerificationKey> {
        self.keys
            .iter()
            .filter(move |k| kid.is_none() || k.kid.as_deref() == kid)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A JWKS fetched from a URL, with the refresh policy.
#[derive(Debug, Default)]
pub struct JwksCache {
    keys: Option<KeySet>,
    fetched_at: Option<SystemTime>,
    last_attempt: Option<SystemTime>,
    /// The last attempt made because of an unknown `kid` (what the cooldown limits).
    last_kid_refresh: Option<SystemTime>,
}

impl JwksCache {
    /// Whether the caller should fetch the JWKS before verifying a token naming `kid`.
    pub fn should_fetch(&self, kid: Option<&str>, now: SystemTime) -> bool {
        let since = |t: Option<SystemTime>| t.and_then(|t| now.duration_since(t).ok());
        let cooled = |t: Option<SystemTime>| since(t).is_none_or(|d| d >= UNKNOWN_KID_COOLDOWN);
        let Some(keys) = &self.keys else {
            // Never fetched: try, but not more than once per cooldown after failures.
            return cooled(self.last_attempt);
        };
        if !self.is_fresh(now) {
            return cooled(self.last_attempt);
        }
        match kid {
            Some(kid) if !keys.has_kid(kid) => cooled(self.last_kid_refresh),
            _ => false,
        }
    }

    /// Whether keys were fetched less than [`MAX_AGE`] ago.
    fn is_fresh(&self, now: SystemTime) -> bool {
        self.keys.is_some()
            && self
                .fetched_at
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d < MAX_AGE)
    }

    /// Records a fetch attempt (call before fetching, so a failure also counts). An attempt
    /// while the keys are fresh can only be for an unknown `kid`, and starts its cooldown.
    pub fn attempted(&mut self, now: SystemTime) {
        if self.is_fresh(now) {
            self.last_kid_refresh = Some(now);
        }
        self.last_attempt = Some(now);
    }

    /// Stores the bytes a fetch returned; on error the previous keys are kept.
    pub fn store(&mut self, bytes: &[u8], now: SystemTime) -> Result<(), JwksError> {
        let keys = KeySet::from_jwks_bytes(bytes)?;
        self.keys = Some(keys);
        self.fetched_at = Some(now);
        Ok(())
    }

    /// The keys from the last successful fetch.
    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{SigningKey, jwks_document};

    fn jwks_bytes(keys: &[&SigningKey]) -> Vec<u8> {
        serde_json::to_vec(&jwks_document(keys.iter().copied())).unwrap()
    }

    #[test]
    fn keys_get_their_algorithm_from_the_key_and_oct_keys_are_refused() {
        let rsa = SigningKey::generate(Algorithm::RS384, Some("r")).unwrap();
        let ec = SigningKey::generate(Algorithm::ES256, Some("e")).unwrap();
        let set = KeySet::from_jwks_bytes(&jwks_bytes(&[&rsa, &ec])).unwrap();
        let r: Vec<_> = set.candidates(Some("r")).collect();
        assert_eq!(
            r[0].algorithms,
            vec![Algorithm::RS384],
            "the JWK's alg pins it"
        );
        let e: Vec<_> = set.candidates(Some("e")).collect();
        assert_eq!(e[0].algorithms, vec![Algorithm::ES256]);
        assert_eq!(set.candidates(None).count(), 2);
        let oct = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}]}"#;
        assert!(matches!(
            KeySet::from_jwks_bytes(oct),
            Err(JwksError::NoUsableKeys)
        ));
        assert!(KeySet::from_jwks_bytes(b"{}").is_err());
    }

    #[test]
    fn refresh_happens_on_unknown_kid_at_most_once_a_minute() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let key = SigningKey::generate(Algorithm::ES256, Some("a")).unwrap();
        let mut cache = JwksCache::default();
        assert!(cache.should_fetch(Some("a"), t0));
        cache.attempted(t0);
        cache.store(&jwks_bytes(&[&key]), t0).unwrap();
        assert!(!cache.should_fetch(Some("a"), t0));
        // The first unknown kid refreshes at once (a key rotated just after the fetch)...
        let t1 = t0 + Duration::from_secs(1);
        assert!(cache.should_fetch(Some("b"), t1));
        cache.attempted(t1);
        // ...and the next only a minute after that refresh.
        assert!(!cache.should_fetch(Some("c"), t1 + Duration::from_secs(59)));
        assert!(cache.should_fetch(Some("c"), t1 + Duration::from_secs(60)));
        cache.attempted(t1 + Duration::from_secs(60));
        assert!(!cache.should_fetch(Some("b"), t1 + Duration::from_secs(61)));
        assert!(!cache.should_fetch(Some("a"), t1 + Duration::from_secs(61)));
        assert!(cache.should_fetch(Some("a"), t0 + MAX_AGE + Duration::from_secs(1)));
        // A bad document keeps the old keys.
        assert!(cache.store(b"nope", t0).is_err());
        assert!(cache.keys().unwrap().has_kid("a"));
    }
}
