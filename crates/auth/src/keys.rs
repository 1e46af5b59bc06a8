//! Private signing keys the engine holds, and the JWKS that publishes their public halves.
//!
//! SMART Backend, JWT Bearer, the GCP JWT grant and GoogleWIF subject tokens are signed with a
//! key the engine either receives as PKCS#8 PEM or generates itself. The public half is
//! published as a JWKS so a destination (or Google) can register it. The algorithm is fixed
//! per key when the key is loaded, never chosen per token.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// Why a key could not be loaded, generated or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the private key is not a PKCS#8 PEM RSA (2048 bits or more) or EC P-256/P-384 key; \
         convert it with `openssl pkcs8 -topk8 -nocrypt`"
    )]
    UnreadablePem,
    #[error("algorithm {0} is not supported; use RS256, RS384, ES256 or ES384")]
    UnsupportedAlgorithm(String),
    #[error("algorithm {algorithm} does not fit this {family} key")]
    AlgorithmMismatch {
        algorithm: String,
        family: &'static str,
    },
    #[error("could not generate a key pair: {0}")]
    Generate(String),
    #[error("could not sign the JWT: {0}")]
    Sign(String),
}

/// A private key with its fixed algorithm and key id.
#[derive(Clone)]
pub struct SigningKey {
    pem: String,
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    public: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("pem", &"<redacted>")
            .finish()
    }
}

/// Parses `RS256`, `RS384`, `ES256` or `ES384`.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, KeyError> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        other => Err(KeyError::UnsupportedAlgorithm(other.to_string())),
    }
}

/// The name of an algorithm as JWT headers spell it.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "unknown",
    }
}

fn pem_of(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

impl SigningKey {
    /// Loads a PKCS#8 PEM key. `algorithm` defaults to `default_rsa` for RSA keys and to the
    /// curve's algorithm for EC keys; `kid` defaults to the key's RFC 7638 thumbprint.
    pub fn from_pem(
        pem: &str,
        algorithm: Option<Algorithm>,
        default_rsa: Algorithm,
        kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        if let Ok(encoding) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
            let algorithm = algorithm.unwrap_or(default_rsa);
            if !matches!(algorithm, Algorithm::RS256 | Algorithm::RS384) {
                return Err(KeyError::AlgorithmMismatch {
                    algorithm: algorithm_name(algorithm).into(),
                    family: "RSA",
                });
            }
            // Catches keys that parse as PEM but that the signer refuses (e.g. too short).
            let public = Jwk::from_encoding_key(&encoding, algorithm)
                .map_err(|_| KeyError::UnreadablePem)?;
            return Self::finish(pem, algorithm, kid, encoding, public);
        }
        let encoding =
            EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|_| KeyError::UnreadablePem)?;
        // The curve decides the algorithm: try the one asked for, else whichever fits.
        let candidates = match algorithm {
            Some(a @ (Algorithm::ES256 | Algorithm::ES384)) => vec![a],
            Some(other) => {
                return Err(KeyError::AlgorithmMismatch {
                    algorithm: algorithm_name(other).into(),
                    family: "EC",
                });
            }
            None => vec![Algorithm::ES384, Algorithm::ES256],
        };
        for algorithm in candidates {
            if let Ok(public) = Jwk::from_encoding_key(&encoding, algorithm) {
                return Self::finish(pem, algorithm, kid, encoding, public);
            }
        }
        Err(KeyError::UnreadablePem)
    }

    /// Generates a new key for `algorithm`: RSA 2048 for RS*, the matching curve for ES*.
    pub fn generate(algorithm: Algorithm, kid: Option<&str>) -> Result<Self, KeyError> {
        use aws_lc_rs::encoding::AsDer;
        let der: Vec<u8> = match algorithm {
            Algorithm::RS256 | Algorithm::RS384 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der = pair
                    .as_der()
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                der.as_ref().to_vec()
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let curve = if algorithm == Algorithm::ES256 {
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(curve)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                pair.to_pkcs8v1()
                    .map_err(|e| KeyError::Generate(e.to_string()))?
                    .as_ref()
                    .to_vec()
            }
            other => return Err(KeyError::UnsupportedAlgorithm(algorithm_name(other).into())),
        };
        Self::from_pem(
            &pem_of("PRIVATE KEY", &der),
            Some(algorithm),
            algorithm,
            kid,
        )
    }

    fn finish(
        pem: &str,
        algorithm: Algorithm,
        kid: Option<&str>,
        encoding: EncodingKey,
        mut public: Jwk,
    ) -> Result<Self, KeyError> {
        let kid = match kid {
            Some(kid) if !kid.is_empty() => kid.to_string(),
            _ => public
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .map_err(|_| KeyError::UnreadablePem)?,
        };
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(Self {
            pem: pem.to_string(),
            algorithm,
            kid,
            encoding,
            public,
        })
    }

    /// The PEM this key was loaded from or generated as (to be sealed, never shown).
    pub fn private_pem(&self) -> &str {
        &self.pem
    }

    /// The key id in JWT headers and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public half as a JWK (with `kid`, `alg` and `use`).
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }

    /// Signs `claims` as a compact JWT with this key's algorithm and kid.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// A JWKS document (`{"keys":[...]}`) publishing these keys' public halves.
pub fn jwks_document<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> serde_json::Value {
    let keys: Vec<&Jwk> = keys.into_iter().map(SigningKey::public_jwk).collect();
    serde_json::json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem_and_publish_their_public_half() {
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::ES256,
            Algorithm::ES384,
        ] {
            let key = SigningKey::generate(alg, None).unwrap();
            assert_eq!(key.algorithm(), alg);
            let again = SigningKey::from_pem(key.private_pem(), None, alg, None).unwrap();
            assert_eq!(again.algorithm(), alg, "the curve or default decides");
            assert_eq!(again.kid(), key.kid(), "thumbprint kid is stable");
            let doc = jwks_document([&key]);
            let jwk = &doc["keys"][0];
            assert_eq!(jwk["kid"], key.kid());
            assert_eq!(jwk["alg"], algorithm_name(alg));
            assert!(jwk.get("d").is_none(), "no private part in the JWKS");
            assert!(!format!("{key:?}").contains("PRIVATE"));
        }
    }

    #[test]
    fn mismatched_or_unreadable_keys_are_refused_with_a_hint() {
        let ec = SigningKey::generate(Algorithm::ES384, Some("k1")).unwrap();
        assert_eq!(ec.kid(), "k1");
        let err = SigningKey::from_pem(
            ec.private_pem(),
            Some(Algorithm::RS256),
            Algorithm::RS256,
            None,
        )
        .unwrap_err();
        assert!(matches!(err, KeyError::AlgorithmMismatch { .. }), "{err}");
        let err = SigningKey::from_pem("not a key", None, Algorithm::RS256, None).unwrap_err();
        assert!(err.to_string().contains("PKCS#8"));
        assert!(parse_algorithm("HS256").is_err());
        assert!(parse_algorithm("none").is_err());
    }
}
