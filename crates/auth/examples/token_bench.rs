//! Micro-benchmark of the two other per-request checks a destination makes: verifying an
//! RS256 JWT against an already-fetched (cached) JWKS (`JWT_Bearer`, `GoogleWIF`), and
//! checking a bearer access token its token endpoint issued (`OAuth_2.0_2-legged`,
//! `SMART_Backend`, `OAuth_2.0_JWT_Bearer_GCP`).
//!
//! Each is printed as the median per-check time over five rounds, next to its ceiling
//! measured the same way in the same run: for the JWT, one bare RSA-2048 PKCS#1 v1.5
//! signature verification of the same bytes with aws-lc-rs (no parsing, no claims); for the
//! bearer token, one SHA-256 of the token (the lookup key).
//!
//! Run: `cargo run --release -p wharf-auth --example token_bench [iterations]`
//! (default 20000 iterations per round for the JWT, ten times that for the bearer token).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::hint::black_box;
use std::time::{Duration, Instant};
use wharf_auth::clock::ManualClock;
use wharf_auth::jwks::KeySet;
use wharf_auth::jwt::{self, Rules};
use wharf_auth::keys::{SigningKey, jwks_document};
use wharf_auth::oauth::IssuedTokens;

const ROUNDS: usize = 5;
const NOW: u64 = 1_800_000_000;

fn median_per_call(iterations: u32, mut call: impl FnMut()) -> Duration {
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                call();
            }
            start.elapsed() / iterations
        })
        .collect();
    rounds.sort();
    rounds[ROUNDS / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("iterations must be a number"))
        .unwrap_or(20_000);
    let clock = ManualClock::at_unix(NOW);

    // JWT: an RS256 token like the engine's JWT_Bearer, against a parsed JWKS.
    let key = SigningKey::generate(jsonwebtoken::Algorithm::RS256, Some("bench")).unwrap();
    let keys =
        KeySet::from_jwks_bytes(&serde_json::to_vec(&jwks_document([&key])).unwrap()).unwrap();
    let token = key
        .sign(&serde_json::json!({
            "iss": "https://engine.example", "sub": "https://engine.example",
            "aud": "https://dest.example/redox", "iat": NOW, "nbf": NOW, "exp": NOW + 300,
            "jti": "6f1c7d5e-2f55-4c51-9a57-0c0d3c1f2b9e",
        }))
        .unwrap();
    let rules = Rules::new(
        vec!["https://engine.example".into()],
        vec!["https://dest.example/redox".into()],
    );
    assert!(jwt::verify(&token, &keys, &rules, &clock).is_ok());
    for _ in 0..iterations / 10 {
        black_box(jwt::verify(black_box(&token), &keys, &rules, &clock).is_ok());
    }
    let jwt_check = median_per_call(iterations, || {
        black_box(jwt::verify(black_box(&token), &keys, &rules, &clock).is_ok());
    });

    // Ceiling: the RSA verification alone, on the same signing input and signature.
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let jwk = serde_json::to_value(key.public_jwk()).unwrap();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
    let public = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
    let rsa = || {
        public
            .verify(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                signing_input.as_bytes(),
                &signature,
            )
            .is_ok()
    };
    assert!(rsa());
    let rsa_alone = median_per_call(iterations, || {
        black_box(rsa());
    });

    // Bearer: a token issued by our token endpoint, among 10,000 live ones.
    let issued = IssuedTokens::default();
    for i in 0..10_000 {
        issued.issue(&format!("client-{i}"), None, 300, &clock);
    }
    let bearer = issued.issue("redox", None, 300, &clock);
    let bearer_iterations = iterations * 10;
    let bearer_check = median_per_call(bearer_iterations, || {
        black_box(issued.check(black_box(&bearer), &clock).is_ok());
    });
    let sha_alone = median_per_call(bearer_iterations, || {
        black_box(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            black_box(bearer.as_bytes()),
        ));
    });

    println!("check                      per check   ceiling (same run)        ratio");
    println!(
        "JWT RS256, cached JWKS     {:>7.2} µs   {:>7.2} µs (bare RSA)   {:.2}x",
        micros(jwt_check),
        micros(rsa_alone),
        jwt_check.as_secs_f64() / rsa_alone.as_secs_f64()
    );
    println!(
        "bearer access token        {:>7.3} µs   {:>7.3} µs (SHA-256)    {:.2}x",
        micros(bearer_check),
        micros(sha_alone),
        bearer_check.as_secs_f64() / sha_alone.as_secs_f64()
    );
}
