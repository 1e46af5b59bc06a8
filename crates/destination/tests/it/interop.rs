//! Interoperability with an independent JWT implementation: tokens signed by PyJWT, with keys
//! and a JWKS written by PyJWT (`tests/fixtures/jwt/`, made by `scripts/jwt_fixtures.py`), are
//! accepted end to end: the token endpoint issues a token for them and the message is kept.
//!
//! Tokens that stay valid until 2099 are checked in and always tested. Client assertions must
//! expire within five minutes, so the rest are minted at test time by running the script; that
//! part is skipped, loudly, when python3 or PyJWT is missing, except under CI (`CI` set), where
//! it fails instead.

use super::*;
use crate::strategies::{
    Answer, JwksServer, access_token, assert_kept, destination_with, form, kept, message, now,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use wharf_auth::oauth::{CLIENT_CREDENTIALS, JWT_BEARER_GRANT, JWT_CLIENT_ASSERTION};

const SMART_CLIENT: &str = "pyjwt-smart";
const SMART_TOKEN_URL: &str = "https://dest.example/smart/token";
const GCP_ACCOUNT: &str = "interop@wharf-test.iam.gserviceaccount.com";
const GCP_TOKEN_URL: &str = "https://dest.example/gcp/token";
/// What the static tokens in `static_tokens.json` carry.
const JWT_ISSUER: &str = "https://pyjwt.example/issuer";
const JWT_AUDIENCE: &str = "https://dest.example/jwt";
const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const WIF_AUDIENCE: &str = "https://dest.example/wif";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/jwt_fixtures.py")
}

/// Four destinations, one per JWT-based strategy, trusting the PyJWT keys: SMART and
/// GoogleWIF fetch the JWKS from a URL, the GCP grant and JWT Bearer have it inline. The
/// token endpoints' public URLs are fixed (`token_url`), so minted assertions name a known
/// `aud` whatever port the test server got.
async fn start() -> (Harness, JwksServer) {
    let jwks_text = fixture("jwks.json");
    let jwks_json: Value = serde_json::from_str(&jwks_text).unwrap();
    let jwks = JwksServer::start(&jwks_json).await;
    let inline = format!("'{jwks_json}'");
    let config = [
        destination_with(
            "Smart",
            "/smart",
            Some(TOKEN),
            &format!(
                "strategy = \"SMART_Backend\"\ntoken_path = \"/smart/token\"\ntoken_url = \"{SMART_TOKEN_URL}\"\nclients = [{{ client_id = \"{SMART_CLIENT}\", jwks_url = \"{}\" }}]\n",
                jwks.url()
            ),
        ),
        destination_with(
            "Gcp",
            "/gcp",
            Some(TOKEN),
            &format!(
                "strategy = \"OAuth_2.0_JWT_Bearer_GCP\"\ntoken_path = \"/gcp/token\"\ntoken_url = \"{GCP_TOKEN_URL}\"\n[[destinations.auth.clients]]\nclient_id = \"{GCP_ACCOUNT}\"\njwks = {inline}\n"
            ),
        ),
        destination_with(
            "Jwt",
            "/jwt",
            Some(TOKEN),
            &format!(
                "strategy = \"JWT_Bearer\"\nissuer = \"{JWT_ISSUER}\"\naudience = \"{JWT_AUDIENCE}\"\njwks = {inline}\n"
            ),
        ),
        destination_with(
            "Wif",
            "/wif",
            Some(TOKEN),
            &format!(
                "strategy = \"GoogleWIF\"\nissuer = \"{GOOGLE_ISSUER}\"\naudience = \"{WIF_AUDIENCE}\"\njwks_url = \"{}\"\n",
                jwks.url()
            ),
        ),
    ]
    .concat();
    (Harness::start(&config).await, jwks)
}

/// Whether python3 with PyJWT can mint tokens. Missing: a loud skip, or a failure under CI.
fn pyjwt_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let message = "python3 with PyJWT is missing (pip install 'pyjwt[crypto]'): the PyJWT-minted interop tokens were NOT tested";
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "{message}; CI must install PyJWT"
        );
        // Straight to stderr, past the test harness's output capture, so the skip is seen.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!!!! SKIPPED: {message} !!!!!!!!!!\n"
        );
    }
    ok
}

/// A token minted by PyJWT: `python3 scripts/jwt_fixtures.py mint KIND CLAIMS`.
fn mint(kind: &str, claims: &Value) -> String {
    let output = Command::new("python3")
        .arg(script())
        .args(["mint", kind, &claims.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "jwt_fixtures.py mint {kind} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn smart_exchange(h: &Harness, assertion: &str) -> Answer {
    let response = h
        .client
        .post(h.url("/smart/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", CLIENT_CREDENTIALS),
            ("client_assertion_type", JWT_CLIENT_ASSERTION),
            ("client_assertion", assertion),
            ("scope", "system/*.read"),
        ]))
        .send()
        .await
        .unwrap();
    Answer::of(response).await
}

#[tokio::test]
async fn static_pyjwt_tokens_are_accepted_for_jwt_bearer_and_google_wif() {
    let (h, jwks) = start().await;
    let tokens: Value = serde_json::from_str(&fixture("static_tokens.json")).unwrap();
    let token = |name: &str| tokens[name]["token"].as_str().unwrap().to_owned();

    // JWT Bearer, RS256 and ES384: accepted once each (their jti is then spent).
    let rs = token("jwt_bearer_rs256");
    assert_kept(
        message(&h, "/jwt", Some(&rs), Some(TOKEN), "P1").await,
        &h,
        "P1",
    )
    .await;
    let es = token("jwt_bearer_es384");
    assert_kept(
        message(&h, "/jwt", Some(&es), Some(TOKEN), "P2").await,
        &h,
        "P2",
    )
    .await;
    let replay = message(&h, "/jwt", Some(&rs), Some(TOKEN), "P-replay").await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN, "{}", replay.text);

    // A Google-style ID token: reusable for its lifetime.
    let id = token("google_id_rs256");
    for log_id in ["G1", "G2"] {
        assert_kept(
            message(&h, "/wif", Some(&id), Some(TOKEN), log_id).await,
            &h,
            log_id,
        )
        .await;
    }
    // Each token only where its issuer and audience are configured.
    let elsewhere = message(&h, "/wif", Some(&es), Some(TOKEN), "P-elsewhere").await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    assert_eq!(kept(&h), ["P1", "P2", "G1", "G2"]);
    assert_eq!(jwks.fetches(), 1, "PyJWT's JWKS is fetched once and cached");
}

#[tokio::test]
async fn pyjwt_minted_assertions_and_tokens_are_accepted_end_to_end() {
    if !pyjwt_available() {
        return;
    }
    let (h, _jwks) = start().await;

    // SMART Backend client assertions, RS384 and ES384.
    for (n, kind) in ["smart-rs384", "smart-es384"].into_iter().enumerate() {
        let assertion = mint(
            kind,
            &json!({"iss": SMART_CLIENT, "sub": SMART_CLIENT, "aud": SMART_TOKEN_URL}),
        );
        let answer = smart_exchange(&h, &assertion).await;
        let token = access_token(&answer);
        let log_id = format!("smart-{n}");
        let kept_answer = message(&h, "/smart", Some(&token), Some(TOKEN), &log_id).await;
        assert_kept(kept_answer, &h, &log_id).await;
        // The same assertion again is a replay.
        let again = smart_exchange(&h, &assertion).await;
        assert_eq!(
            again.status,
            StatusCode::UNAUTHORIZED,
            "{kind}: {}",
            again.text
        );
    }
    // An assertion naming the URL the request really went to, not the configured token_url.
    let misaddressed = mint(
        "smart-es384",
        &json!({"iss": SMART_CLIENT, "sub": SMART_CLIENT, "aud": h.url("/smart/token")}),
    );
    let answer = smart_exchange(&h, &misaddressed).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    // PyJWT's own exp, pushed ten minutes ahead: too long for SMART.
    let long = mint(
        "smart-rs384",
        &json!({"iss": SMART_CLIENT, "sub": SMART_CLIENT, "aud": SMART_TOKEN_URL,
                "exp": now() + 600}),
    );
    let answer = smart_exchange(&h, &long).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);

    // The GCP service-account JWT grant, RS256.
    let assertion = mint(
        "gcp-rs256",
        &json!({"iss": GCP_ACCOUNT, "aud": GCP_TOKEN_URL,
                "scope": "https://www.googleapis.com/auth/cloud-platform"}),
    );
    let response = h
        .client
        .post(h.url("/gcp/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", &assertion),
        ]))
        .send()
        .await
        .unwrap();
    let token = access_token(&Answer::of(response).await);
    assert_kept(
        message(&h, "/gcp", Some(&token), Some(TOKEN), "gcp").await,
        &h,
        "gcp",
    )
    .await;

    // JWT Bearer, RS256 and ES384, fresh for each request.
    for kind in ["jwt-bearer-rs256", "jwt-bearer-es384"] {
        let token = mint(
            kind,
            &json!({"iss": JWT_ISSUER, "sub": "pyjwt-sender", "aud": JWT_AUDIENCE}),
        );
        assert_kept(
            message(&h, "/jwt", Some(&token), Some(TOKEN), kind).await,
            &h,
            kind,
        )
        .await;
    }

    // A fresh Google-style ID token.
    let id = mint(
        "google-id-rs256",
        &json!({"iss": GOOGLE_ISSUER, "aud": WIF_AUDIENCE, "sub": "110169484474386276334",
                "azp": "1234567890-pyjwt.apps.googleusercontent.com",
                "email": GCP_ACCOUNT, "email_verified": true}),
    );
    assert_kept(
        message(&h, "/wif", Some(&id), Some(TOKEN), "wif").await,
        &h,
        "wif",
    )
    .await;

    assert_eq!(
        kept(&h),
        [
            "smart-0",
            "smart-1",
            "gcp",
            "jwt-bearer-rs256",
            "jwt-bearer-es384",
            "wif"
        ]
    );
}
