//! The `[destinations.auth]` strategies (docs/PROTOCOL.md section 5), end to end over real HTTP:
//! for each one, what it accepts (and keeps) and what it refuses (and does not keep).
//!
//! Tokens, assertions and signatures are made with `wharf_auth`'s client side, the code the
//! engine uses; `interop.rs` does the same with tokens from an independent library.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use wharf_auth::SystemClock;
use wharf_auth::client::{self, TokenRequest};
use wharf_auth::keys::{SigningKey, jwks_document};
use wharf_auth::oauth::{CLIENT_CREDENTIALS, JWT_BEARER_GRANT, JWT_CLIENT_ASSERTION};
use wharf_auth::sigv4::{self, SigningCredentials};
use wharf_protocol::challenge::{new_challenge, post_body};
use wharf_testkit::{Recorder, Reply};

pub const TOKEN_PATH: &str = "/redox/token";
/// The registered client secret: it must never appear in any response.
pub const CLIENT_SECRET: &str = "client-secret-NEVER-ECHOED-4b1d9-0123456789abcdef";
pub const CLIENT_ID: &str = "redox-client";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `[[destinations]]` entry with an `auth` table (`auth` holds the lines after the header).
pub fn destination_with(name: &str, path: &str, token: Option<&str>, auth: &str) -> String {
    let token = token
        .map(|t| format!("verification_token = \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        "[[destinations]]\nname = \"{name}\"\npath = \"{path}\"\nenvironment = \"Development\"\n{token}[destinations.auth]\n{auth}\n"
    )
}

/// `application/x-www-form-urlencoded`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub async fn of(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The OAuth error code of a refused token request.
    pub fn oauth_error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }

    /// Panics if any of `values` appears in the body or in a header.
    pub fn assert_hides(&self, values: &[&str]) {
        for value in values {
            assert!(
                !self.text.contains(value),
                "the response echoes {value:?}: {}",
                self.text
            );
            for (name, v) in &self.headers {
                assert!(
                    !v.as_bytes()
                        .windows(value.len())
                        .any(|w| w == value.as_bytes()),
                    "header {name} echoes {value:?}"
                );
            }
        }
    }
}

/// POSTs a token request built by `wharf_auth::client` to `url`.
pub async fn exchange_at(h: &Harness, url: &str, request: &TokenRequest) -> Answer {
    let mut builder = h
        .client
        .post(url)
        .header("content-type", request.content_type)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    Answer::of(builder.send().await.unwrap()).await
}

/// POSTs a form body to the token endpoint.
pub async fn token_form(h: &Harness, pairs: &[(&str, &str)]) -> Answer {
    let response = h
        .client
        .post(h.url(TOKEN_PATH))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs))
        .send()
        .await
        .unwrap();
    Answer::of(response).await
}

/// The access token of a successful token response (checked to be RFC 6749 shaped).
pub fn access_token(answer: &Answer) -> String {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
    let fetched =
        client::read_token_response(answer.text.as_bytes(), "access_token", "expires_in", 0)
            .unwrap();
    assert!(
        fetched.token.len() >= 32,
        "a short token: {}",
        fetched.token
    );
    fetched.token
}

/// POSTs a notification with optional `Authorization: Bearer` and `verification-token`.
pub async fn message(
    h: &Harness,
    path: &str,
    bearer: Option<&str>,
    token: Option<&str>,
    log_id: &str,
) -> Answer {
    let mut builder = h
        .client
        .post(h.url(path))
        .header("content-type", "application/json")
        .body(notification(log_id));
    if let Some(bearer) = bearer {
        builder = builder.bearer_auth(bearer);
    }
    if let Some(token) = token {
        builder = builder.header("verification-token", token);
    }
    Answer::of(builder.send().await.unwrap()).await
}

/// The log ids of the kept messages, in order.
pub fn kept(h: &Harness) -> Vec<String> {
    h.inbox()
        .into_iter()
        .map(|m| m.log_id.unwrap_or_default())
        .collect()
}

/// Asserts a message was accepted with 200 and kept.
pub async fn assert_kept(answer: Answer, h: &Harness, log_id: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.json()["messageId"].is_string(), "{}", answer.text);
    assert!(
        kept(h).iter().any(|l| l == log_id),
        "{log_id} is not in the inbox: {:?}",
        kept(h)
    );
}

/// A JWKS served over HTTP by a recorder, replaceable while it runs (key rotation).
pub struct JwksServer {
    pub recorder: Recorder,
    document: Arc<Mutex<String>>,
}

impl JwksServer {
    pub async fn start(document: &Value) -> JwksServer {
        let shared = Arc::new(Mutex::new(document.to_string()));
        let serving = shared.clone();
        let recorder =
            Recorder::start(move |_, _| Reply::json(200, &serving.lock().unwrap())).await;
        JwksServer {
            recorder,
            document: shared,
        }
    }

    pub fn serve(&self, document: &Value) {
        *self.document.lock().unwrap() = document.to_string();
    }

    pub fn url(&self) -> String {
        self.recorder.url("/jwks.json")
    }

    pub fn fetches(&self) -> usize {
        self.recorder.count()
    }
}

fn key(alg: Algorithm, kid: &str) -> SigningKey {
    SigningKey::generate(alg, Some(kid)).unwrap()
}

/// A JWKS as a TOML literal string (inline `jwks = '...'`).
fn inline_jwks(keys: &[&SigningKey]) -> String {
    format!("'{}'", jwks_document(keys.iter().copied()))
}

/// `alg: none`: the claims with no signature.
fn unsigned(kid: &str, claims: &Value) -> String {
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// HS256 keyed with the registered public key's JWK (the algorithm confusion attack).
fn hmac_with_public_key(public: &SigningKey, claims: &Value) -> String {
    let secret = serde_json::to_vec(public.public_jwk()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some(public.kid().to_owned()),
            ..jsonwebtoken::Header::new(Algorithm::HS256)
        },
        claims,
        &jsonwebtoken::EncodingKey::from_secret(&secret),
    )
    .unwrap()
}

// ------------------------------------------------------------------------------------------
// OAuth_2.0_2-legged
// ------------------------------------------------------------------------------------------

fn two_legged(extra: &str) -> String {
    destination(&format!(
        "[destinations.auth]\nstrategy = \"OAuth_2.0_2-legged\"\ntoken_path = \"{TOKEN_PATH}\"\n{extra}clients = [{{ client_id = \"{CLIENT_ID}\", client_secret = \"{CLIENT_SECRET}\" }}]\n"
    ))
}

fn two_legged_fields(h: &Harness, extra: Value) -> (Map<String, Value>, Map<String, Value>) {
    let mut fields = object(json!({"url": h.url(TOKEN_PATH), "clientId": CLIENT_ID}));
    fields.extend(object(extra));
    (fields, object(json!({"clientSecret": CLIENT_SECRET})))
}

#[tokio::test]
async fn two_legged_basic_post_and_json_token_requests_each_get_a_token_that_keeps_messages() {
    let h = Harness::start(&two_legged("")).await;
    let variants = [
        (
            "basic",
            json!({"scopes": ["system/*.read", "system/*.write"]}),
        ),
        ("post", json!({"noBasic": true})),
        (
            "json",
            json!({"noBasic": true, "contentType": "application/json"}),
        ),
    ];
    for (name, extra) in variants {
        let (fields, secrets) = two_legged_fields(&h, extra);
        let request = client::oauth_2_legged_request(&fields, &secrets).unwrap();
        assert_eq!(
            request.headers.iter().any(|(n, _)| n == "authorization"),
            name == "basic"
        );
        let answer = exchange_at(&h, &request.url, &request).await;
        let token = access_token(&answer);
        answer.assert_hides(&[CLIENT_SECRET]);
        assert_eq!(answer.json()["expires_in"], 300);
        if name == "basic" {
            assert_eq!(answer.json()["scope"], "system/*.read system/*.write");
        }
        let log_id = format!("two-legged-{name}");
        let answer = message(&h, "/redox", Some(&token), Some(TOKEN), &log_id).await;
        assert_kept(answer, &h, &log_id).await;
    }
    assert_eq!(kept(&h).len(), 3);
}

#[tokio::test]
async fn two_legged_token_endpoint_refusals_use_oauth_error_codes() {
    let h = Harness::start(&two_legged("")).await;
    let basic = |id: &str, secret: &str| {
        use base64::engine::general_purpose::STANDARD;
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    };
    let send = |auth: Option<String>, body: String| {
        let mut builder = h
            .client
            .post(h.url(TOKEN_PATH))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        async move { Answer::of(builder.send().await.unwrap()).await }
    };
    let grant = form(&[("grant_type", CLIENT_CREDENTIALS)]);

    // Wrong secret by Basic: 401 invalid_client with a Basic challenge.
    let wrong = send(Some(basic(CLIENT_ID, "wrong-secret")), grant.clone()).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.oauth_error(), "invalid_client");
    assert!(
        wrong
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic")),
        "{:?}",
        wrong.headers
    );
    assert_eq!(wrong.header("cache-control"), Some("no-store"));
    wrong.assert_hides(&[CLIENT_SECRET]);

    // Wrong secret in the body: 401 invalid_client, no Basic challenge.
    let wrong = send(
        None,
        form(&[
            ("grant_type", CLIENT_CREDENTIALS),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong-secret"),
        ]),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.oauth_error(), "invalid_client");
    assert!(
        !wrong
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    wrong.assert_hides(&[CLIENT_SECRET]);

    // Unknown client, even with the right secret.
    let unknown = send(Some(basic("stranger", CLIENT_SECRET)), grant.clone()).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.oauth_error(), "invalid_client");
    unknown.assert_hides(&[CLIENT_SECRET]);

    // A secret that is a prefix of the registered one.
    let prefix = send(
        Some(basic(CLIENT_ID, &CLIENT_SECRET[..CLIENT_SECRET.len() - 1])),
        grant.clone(),
    )
    .await;
    assert_eq!(prefix.status, StatusCode::UNAUTHORIZED);

    // No client authentication at all.
    let anonymous = send(None, grant.clone()).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.oauth_error(), "invalid_client");

    // Unsupported grant.
    let password = send(
        Some(basic(CLIENT_ID, CLIENT_SECRET)),
        form(&[
            ("grant_type", "password"),
            ("username", "u"),
            ("password", "p"),
        ]),
    )
    .await;
    assert_eq!(password.status, StatusCode::BAD_REQUEST);
    assert_eq!(password.oauth_error(), "unsupported_grant_type");

    // GET is not a token request.
    let get = Answer::of(h.client.get(h.url(TOKEN_PATH)).send().await.unwrap()).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), Some("POST"));

    for refused in [&wrong, &unknown, &prefix, &anonymous, &password] {
        assert!(refused.json().get("access_token").is_none());
    }
    assert!(h.inbox().is_empty());
}

#[tokio::test]
async fn two_legged_messages_need_an_issued_bearer_and_the_verification_token() {
    let h = Harness::start(&two_legged("")).await;
    let (fields, secrets) = two_legged_fields(&h, json!({}));
    let request = client::oauth_2_legged_request(&fields, &secrets).unwrap();
    let token = access_token(&exchange_at(&h, &request.url, &request).await);

    // No bearer (the verification token alone is not enough with a strategy).
    let none = message(&h, "/redox", None, Some(TOKEN), "L-none").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{}", none.text);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    // A made-up bearer, and the verification token sent as the bearer (Redox's default).
    let made_up = message(&h, "/redox", Some("bWFkZS11cA"), Some(TOKEN), "L-made-up").await;
    assert_eq!(made_up.status, StatusCode::UNAUTHORIZED);
    let as_bearer = message(&h, "/redox", Some(TOKEN), Some(TOKEN), "L-as-bearer").await;
    assert_eq!(as_bearer.status, StatusCode::UNAUTHORIZED);
    // A good bearer with a wrong verification token: 403; without one: 401.
    let wrong_token = message(&h, "/redox", Some(&token), Some("wrong-token"), "L-wrong").await;
    assert_eq!(wrong_token.status, StatusCode::FORBIDDEN);
    wrong_token.assert_hides(&[TOKEN]);
    let no_token = message(&h, "/redox", Some(&token), None, "L-no-token").await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    // A token with one character changed.
    let mut altered = token.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let altered = message(&h, "/redox", Some(&altered), Some(TOKEN), "L-altered").await;
    assert_eq!(altered.status, StatusCode::UNAUTHORIZED);
    for refused in [
        &none,
        &made_up,
        &as_bearer,
        &wrong_token,
        &no_token,
        &altered,
    ] {
        refused.assert_hides(&[CLIENT_SECRET, &token]);
    }
    assert!(h.inbox().is_empty(), "nothing refused is kept");

    let ok = message(&h, "/redox", Some(&token), Some(TOKEN), "L-ok").await;
    assert_kept(ok, &h, "L-ok").await;
    assert_eq!(kept(&h), ["L-ok"]);
}

#[tokio::test]
async fn two_legged_tokens_expire_after_their_lifetime() {
    let h = Harness::start(&two_legged("token_lifetime = \"1s\"\n")).await;
    let (fields, secrets) = two_legged_fields(&h, json!({}));
    let request = client::oauth_2_legged_request(&fields, &secrets).unwrap();
    let answer = exchange_at(&h, &request.url, &request).await;
    let token = access_token(&answer);
    assert_eq!(answer.json()["expires_in"], 1);
    let fresh = message(&h, "/redox", Some(&token), Some(TOKEN), "L-fresh").await;
    assert_kept(fresh, &h, "L-fresh").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = message(&h, "/redox", Some(&token), Some(TOKEN), "L-late").await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED, "{}", late.text);
    assert!(late.text.contains("expired"), "{}", late.text);
    assert_eq!(kept(&h), ["L-fresh"]);
}

#[tokio::test]
async fn a_sub_second_token_lifetime_is_refused_at_startup() {
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"/nonexistent\"\n{}",
        two_legged("token_lifetime = \"500ms\"\n")
    );
    let e = Config::parse(&text, &wharf_destination::config::ProcessEnv).unwrap_err();
    assert_eq!(e.key, "destinations[0].auth.token_lifetime", "{e}");
}

// ------------------------------------------------------------------------------------------
// SMART_Backend
// ------------------------------------------------------------------------------------------

struct Smart {
    h: Harness,
    jwks: JwksServer,
    rs: SigningKey,
    es: SigningKey,
}

const SMART_URL_CLIENT: &str = "smart-by-url";
const SMART_INLINE_CLIENT: &str = "smart-inline";

impl Smart {
    async fn start() -> Smart {
        let rs = key(Algorithm::RS384, "rs-1");
        let es = key(Algorithm::ES384, "es-1");
        let jwks = JwksServer::start(&jwks_document([&rs, &es])).await;
        let auth = format!(
            "[destinations.auth]\nstrategy = \"SMART_Backend\"\ntoken_path = \"{TOKEN_PATH}\"\n\n\
             [[destinations.auth.clients]]\nclient_id = \"{SMART_URL_CLIENT}\"\njwks_url = \"{}\"\n\n\
             [[destinations.auth.clients]]\nclient_id = \"{SMART_INLINE_CLIENT}\"\njwks = {}\n",
            jwks.url(),
            inline_jwks(&[&rs, &es]),
        );
        // The refusal tests send more bad assertions than the failed-authentication limit
        // (20 a minute) allows one address; that limit is tested in `guessing.rs`.
        let h = Harness::start_with(
            &destination(&auth),
            "auth_failure_limit = 1000",
            reqwest::Client::new(),
            "http",
        )
        .await;
        Smart { h, jwks, rs, es }
    }

    fn token_url(&self) -> String {
        self.h.url(TOKEN_PATH)
    }

    /// Claims of a good assertion by `client`.
    fn claims(&self, client: &str) -> Value {
        let now = now();
        json!({
            "iss": client, "sub": client, "aud": self.token_url(),
            "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    async fn exchange(&self, assertion: &str) -> Answer {
        token_form(
            &self.h,
            &[
                ("grant_type", CLIENT_CREDENTIALS),
                ("client_assertion_type", JWT_CLIENT_ASSERTION),
                ("client_assertion", assertion),
                ("scope", "system/*.read"),
            ],
        )
        .await
    }

    async fn refused(&self, assertion: &str, what: &str) {
        let answer = self.exchange(assertion).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            answer.text
        );
        assert_eq!(answer.oauth_error(), "invalid_client", "{what}");
        assert!(answer.json().get("access_token").is_none());
        answer.assert_hides(&[&self.token_url(), "localhost"]);
    }
}

#[tokio::test]
async fn smart_rs384_and_es384_assertions_by_url_and_inline_jwks_get_tokens_that_keep_messages() {
    let s = Smart::start().await;
    let mut n = 0;
    for client_id in [SMART_URL_CLIENT, SMART_INLINE_CLIENT] {
        for key in [&s.rs, &s.es] {
            n += 1;
            // The request exactly as the engine builds it.
            let fields = object(json!({
                "url": s.token_url(), "clientId": client_id, "scopes": ["system/*.read"],
            }));
            let request = client::smart_request(&fields, key, &SystemClock).unwrap();
            let answer = exchange_at(&s.h, &request.url, &request).await;
            let token = access_token(&answer);
            assert_eq!(answer.json()["scope"], "system/*.read");
            let log_id = format!("smart-{n}");
            let answer = message(&s.h, "/redox", Some(&token), Some(TOKEN), &log_id).await;
            assert_kept(answer, &s.h, &log_id).await;
        }
    }
    assert_eq!(kept(&s.h).len(), 4);
    assert_eq!(s.jwks.fetches(), 1, "the JWKS is fetched once and cached");
}

#[tokio::test]
async fn smart_refuses_replayed_misaddressed_long_lived_expired_and_forged_assertions() {
    let s = Smart::start().await;
    let good = s.rs.sign(&s.claims(SMART_URL_CLIENT)).unwrap();
    access_token(&s.exchange(&good).await);
    s.refused(&good, "replayed jti").await;

    for client_id in [SMART_URL_CLIENT, SMART_INLINE_CLIENT] {
        let with = |change: &dyn Fn(&mut Value)| {
            let mut claims = s.claims(client_id);
            change(&mut claims);
            claims
        };
        let now = now();
        let cases: Vec<(&str, Value)> = vec![
            (
                "wrong aud",
                with(&|c| c["aud"] = json!(format!("{}/other", s.token_url()))),
            ),
            (
                "exp 10 minutes ahead",
                with(&|c| c["exp"] = json!(now + 600)),
            ),
            (
                "expired",
                with(&|c| {
                    c["iat"] = json!(now - 900);
                    c["exp"] = json!(now - 600);
                }),
            ),
            ("iss != sub", with(&|c| c["sub"] = json!("someone-else"))),
            (
                "no jti",
                with(&|c| {
                    c.as_object_mut().unwrap().remove("jti");
                }),
            ),
            (
                "unknown client",
                with(&|c| {
                    c["iss"] = json!("stranger");
                    c["sub"] = json!("stranger");
                }),
            ),
        ];
        for (what, claims) in cases {
            s.refused(&s.es.sign(&claims).unwrap(), what).await;
        }
        // Signed by an unregistered key that claims a registered kid.
        let impostor = key(Algorithm::RS384, "rs-1");
        s.refused(
            &impostor.sign(&s.claims(client_id)).unwrap(),
            "unregistered key",
        )
        .await;
        // alg none, and HMAC keyed with the public key.
        s.refused(&unsigned("rs-1", &s.claims(client_id)), "alg none")
            .await;
        s.refused(
            &hmac_with_public_key(&s.rs, &s.claims(client_id)),
            "HS256 confusion",
        )
        .await;
        // A good assertion whose payload was changed after signing.
        let signed = s.es.sign(&s.claims(client_id)).unwrap();
        let parts: Vec<&str> = signed.split('.').collect();
        let mut claims = s.claims(client_id);
        claims["scope"] = json!("system/*.*");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        s.refused(&tampered, "tampered payload").await;
    }
    // A client_id in the body that disagrees with the assertion.
    let answer = token_form(
        &s.h,
        &[
            ("grant_type", CLIENT_CREDENTIALS),
            ("client_id", SMART_INLINE_CLIENT),
            ("client_assertion_type", JWT_CLIENT_ASSERTION),
            (
                "client_assertion",
                &s.rs.sign(&s.claims(SMART_URL_CLIENT)).unwrap(),
            ),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // Messages with no token, or a token of another destination's kind, are refused.
    let none = message(&s.h, "/redox", None, Some(TOKEN), "L-none").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let assertion_as_bearer =
        message(&s.h, "/redox", Some(&good), Some(TOKEN), "L-assertion").await;
    assert_eq!(assertion_as_bearer.status, StatusCode::UNAUTHORIZED);
    assert!(s.h.inbox().is_empty());
}

/// The audience of a client assertion is the configured token URL only. Before, with
/// `token_url` unset the URL built from the request's `Host` was accepted too: an assertion
/// minted for another server (its `aud` that server's token URL) was good here when sent with
/// that server's name as `Host`.
#[tokio::test]
async fn an_assertion_for_another_host_is_refused_whatever_host_the_request_names() {
    let s = Smart::start().await;
    let port = s.h.port();
    for other in [
        format!("other.example:{port}"),
        "other.example".to_owned(),
        format!("127.0.0.1:{port}"),
    ] {
        let mut claims = s.claims(SMART_URL_CLIENT);
        claims["aud"] = json!(format!("http://{other}{TOKEN_PATH}"));
        let assertion = s.rs.sign(&claims).unwrap();
        let response =
            s.h.client
                .post(s.h.url(TOKEN_PATH))
                .header("host", other.as_str())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("grant_type", CLIENT_CREDENTIALS),
                    ("client_assertion_type", JWT_CLIENT_ASSERTION),
                    ("client_assertion", &assertion),
                ]))
                .send()
                .await
                .unwrap();
        let answer = Answer::of(response).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{other}: {}",
            answer.text
        );
        assert_eq!(answer.oauth_error(), "invalid_client", "{other}");
    }
    // The configured URL is accepted whatever Host the request names (a proxy may rewrite it).
    let response =
        s.h.client
            .post(s.h.url(TOKEN_PATH))
            .header("host", "internal-name:8080")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", CLIENT_CREDENTIALS),
                ("client_assertion_type", JWT_CLIENT_ASSERTION),
                (
                    "client_assertion",
                    &s.es.sign(&s.claims(SMART_URL_CLIENT)).unwrap(),
                ),
            ]))
            .send()
            .await
            .unwrap();
    access_token(&Answer::of(response).await);
}

/// A destination behind a proxy: `public_url` is what senders use, and the only audience.
#[tokio::test]
async fn the_token_url_comes_from_public_url_not_from_the_listener() {
    let es = key(Algorithm::ES384, "es-1");
    let auth = format!(
        "[destinations.auth]\nstrategy = \"SMART_Backend\"\ntoken_path = \"{TOKEN_PATH}\"\nclients = [{{ client_id = \"{SMART_INLINE_CLIENT}\", jwks = {} }}]\n",
        inline_jwks(&[&es])
    );
    let h = Harness::start_with(
        &destination(&auth),
        "public_url = \"https://dest.example.com/\"",
        reqwest::Client::new(),
        "http",
    )
    .await;
    let exchange = |aud: String| {
        let h = &h;
        let es = &es;
        async move {
            let now = now();
            let claims = json!({
                "iss": SMART_INLINE_CLIENT, "sub": SMART_INLINE_CLIENT, "aud": aud,
                "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
            });
            token_form(
                h,
                &[
                    ("grant_type", CLIENT_CREDENTIALS),
                    ("client_assertion_type", JWT_CLIENT_ASSERTION),
                    ("client_assertion", &es.sign(&claims).unwrap()),
                ],
            )
            .await
        }
    };
    access_token(&exchange(format!("https://dest.example.com{TOKEN_PATH}")).await);
    let answer = exchange(h.url(TOKEN_PATH)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
}

#[tokio::test]
async fn smart_unknown_kid_refetches_the_jwks_once_then_waits_a_minute() {
    let a = key(Algorithm::ES384, "a");
    let b = key(Algorithm::RS384, "b");
    let c = key(Algorithm::ES384, "c");
    let jwks = JwksServer::start(&jwks_document([&a])).await;
    let auth = format!(
        "[destinations.auth]\nstrategy = \"SMART_Backend\"\ntoken_path = \"{TOKEN_PATH}\"\nclients = [{{ client_id = \"{SMART_URL_CLIENT}\", jwks_url = \"{}\" }}]\n",
        jwks.url()
    );
    let h = Harness::start(&destination(&auth)).await;
    let token_url = h.url(TOKEN_PATH);
    let assertion = |key: &SigningKey| {
        client::smart_assertion(key, SMART_URL_CLIENT, &token_url, &SystemClock).unwrap()
    };
    let exchange = |assertion: String| {
        let h = &h;
        async move {
            token_form(
                h,
                &[
                    ("grant_type", CLIENT_CREDENTIALS),
                    ("client_assertion_type", JWT_CLIENT_ASSERTION),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };
    assert_eq!(jwks.fetches(), 0, "fetched on first use, not at startup");
    access_token(&exchange(assertion(&a)).await);
    assert_eq!(jwks.fetches(), 1);

    // The client rotates to key b: its first use refetches the JWKS and is accepted.
    jwks.serve(&jwks_document([&a, &b]));
    let token = access_token(&exchange(assertion(&b)).await);
    assert_eq!(jwks.fetches(), 2);
    let answer = message(&h, "/redox", Some(&token), Some(TOKEN), "L-rotated").await;
    assert_kept(answer, &h, "L-rotated").await;

    // Another new kid within the minute: no fetch, refused.
    jwks.serve(&jwks_document([&a, &b, &c]));
    let answer = exchange(assertion(&c)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    assert_eq!(answer.oauth_error(), "invalid_client");
    let forged_kid = key(Algorithm::ES384, "made-up-kid");
    let answer = exchange(assertion(&forged_kid)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        jwks.fetches(),
        2,
        "unknown kids do not hammer the key server"
    );
    // Known keys keep working from the cache.
    access_token(&exchange(assertion(&a)).await);
    access_token(&exchange(assertion(&b)).await);
    assert_eq!(jwks.fetches(), 2);
    assert_eq!(
        jwks.recorder.received()[0].path,
        "/jwks.json",
        "the configured URL is fetched"
    );
}

// ------------------------------------------------------------------------------------------
// OAuth_2.0_JWT_Bearer_GCP
// ------------------------------------------------------------------------------------------

const SERVICE_ACCOUNT: &str = "wharf-engine@wharf-test.iam.gserviceaccount.com";

#[tokio::test]
async fn gcp_jwt_grant_gets_a_token_that_keeps_messages_and_bad_grants_are_refused() {
    let sa = key(Algorithm::RS256, "sa-key-1");
    let auth = format!(
        "[destinations.auth]\nstrategy = \"OAuth_2.0_JWT_Bearer_GCP\"\ntoken_path = \"{TOKEN_PATH}\"\n\
         [[destinations.auth.clients]]\nclient_id = \"{SERVICE_ACCOUNT}\"\njwks = {}\n",
        inline_jwks(&[&sa])
    );
    let h = Harness::start(&destination(&auth)).await;
    let grant = |email: &str, token_url: &str, key: &SigningKey| {
        let fields = object(json!({
            "serviceAccountEmail": email, "tokenUrl": token_url,
            "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
        }));
        client::gcp_request(&fields, key, &SystemClock).unwrap()
    };

    // As the engine sends it: grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer.
    let request = grant(SERVICE_ACCOUNT, &h.url(TOKEN_PATH), &sa);
    let sent = String::from_utf8(request.body.clone()).unwrap();
    assert!(sent.contains(&form(&[("grant_type", JWT_BEARER_GRANT)])));
    let token = access_token(&exchange_at(&h, &h.url(TOKEN_PATH), &request).await);
    let answer = message(&h, "/redox", Some(&token), Some(TOKEN), "L-gcp").await;
    assert_kept(answer, &h, "L-gcp").await;

    let invalid_grant = |answer: Answer, what: &str| {
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            answer.text
        );
        assert_eq!(answer.oauth_error(), "invalid_grant", "{what}");
        answer.assert_hides(&[SERVICE_ACCOUNT, "localhost"]);
    };
    // Addressed to Google's token URL instead of ours.
    let request = grant(SERVICE_ACCOUNT, client::GOOGLE_TOKEN_URL, &sa);
    invalid_grant(
        exchange_at(&h, &h.url(TOKEN_PATH), &request).await,
        "wrong aud",
    );
    // An issuer that is not a registered service account.
    let request = grant(
        "someone@else.iam.gserviceaccount.com",
        &h.url(TOKEN_PATH),
        &sa,
    );
    invalid_grant(
        exchange_at(&h, &h.url(TOKEN_PATH), &request).await,
        "unknown iss",
    );
    // Signed by another key under the registered kid.
    let request = grant(
        SERVICE_ACCOUNT,
        &h.url(TOKEN_PATH),
        &key(Algorithm::RS256, "sa-key-1"),
    );
    invalid_grant(
        exchange_at(&h, &h.url(TOKEN_PATH), &request).await,
        "unregistered key",
    );
    // alg none.
    let now = now();
    let claims =
        json!({"iss": SERVICE_ACCOUNT, "aud": h.url(TOKEN_PATH), "iat": now, "exp": now + 3600});
    let answer = token_form(
        &h,
        &[
            ("grant_type", JWT_BEARER_GRANT),
            ("assertion", &unsigned("sa-key-1", &claims)),
        ],
    )
    .await;
    invalid_grant(answer, "alg none");

    // The client credentials grant is not this endpoint's, however the client authenticates.
    for pairs in [
        vec![
            ("grant_type", CLIENT_CREDENTIALS),
            ("client_id", SERVICE_ACCOUNT),
            ("client_secret", "x"),
        ],
        vec![
            ("grant_type", CLIENT_CREDENTIALS),
            ("client_assertion_type", JWT_CLIENT_ASSERTION),
            ("client_assertion", &sa.sign(&claims).unwrap()),
        ],
    ] {
        let answer = token_form(&h, &pairs).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        assert_eq!(answer.oauth_error(), "unsupported_grant_type");
    }
    assert_eq!(kept(&h), ["L-gcp"]);
}

// ------------------------------------------------------------------------------------------
// JWT_Bearer
// ------------------------------------------------------------------------------------------

const JWT_ISSUER: &str = "https://engine.wharf.test/expected-issuer";
const JWT_AUDIENCE: &str = "https://dest.wharf.test/expected-audience";

fn jwt_bearer_auth(jwks_line: &str) -> String {
    format!(
        "strategy = \"JWT_Bearer\"\nissuer = \"{JWT_ISSUER}\"\naudience = \"{JWT_AUDIENCE}\"\n{jwks_line}\n"
    )
}

fn jwt_fields(issuer: &str, audience: &str) -> Map<String, Value> {
    object(json!({"issuer": issuer, "audience": audience, "lifetimeSeconds": 120}))
}

#[tokio::test]
async fn jwt_bearer_accepts_each_fresh_token_once_and_refuses_the_rest() {
    let engine = key(Algorithm::ES256, "engine-1");
    let jwks = JwksServer::start(&jwks_document([&engine])).await;
    let h = Harness::start(&destination_with(
        "Acme",
        "/redox",
        Some(TOKEN),
        &jwt_bearer_auth(&format!("jwks_url = \"{}\"", jwks.url())),
    ))
    .await;
    let fresh = || {
        client::jwt_bearer_token(&jwt_fields(JWT_ISSUER, JWT_AUDIENCE), &engine, &SystemClock)
            .unwrap()
    };

    let first = fresh();
    assert_kept(
        message(&h, "/redox", Some(&first), Some(TOKEN), "L1").await,
        &h,
        "L1",
    )
    .await;
    let second = fresh();
    assert_kept(
        message(&h, "/redox", Some(&second), Some(TOKEN), "L2").await,
        &h,
        "L2",
    )
    .await;

    let forbidden = |answer: Answer, what: &str| {
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            answer.text
        );
        answer.assert_hides(&[JWT_ISSUER, JWT_AUDIENCE]);
    };
    forbidden(
        message(&h, "/redox", Some(&first), Some(TOKEN), "L-replay").await,
        "replayed jti",
    );
    let wrong_iss = client::jwt_bearer_token(
        &jwt_fields("https://elsewhere", JWT_AUDIENCE),
        &engine,
        &SystemClock,
    )
    .unwrap();
    forbidden(
        message(&h, "/redox", Some(&wrong_iss), Some(TOKEN), "L-iss").await,
        "wrong iss",
    );
    let wrong_aud = client::jwt_bearer_token(
        &jwt_fields(JWT_ISSUER, "https://elsewhere"),
        &engine,
        &SystemClock,
    )
    .unwrap();
    forbidden(
        message(&h, "/redox", Some(&wrong_aud), Some(TOKEN), "L-aud").await,
        "wrong aud",
    );
    let now = now();
    let claims = |iat: u64, exp: u64| {
        json!({"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": iat, "exp": exp,
               "jti": uuid::Uuid::new_v4().to_string()})
    };
    let expired = engine.sign(&claims(now - 900, now - 600)).unwrap();
    forbidden(
        message(&h, "/redox", Some(&expired), Some(TOKEN), "L-expired").await,
        "expired",
    );
    let future = engine
        .sign(&json!({"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "nbf": now + 600, "exp": now + 900}))
        .unwrap();
    forbidden(
        message(&h, "/redox", Some(&future), Some(TOKEN), "L-nbf").await,
        "not yet valid",
    );
    forbidden(
        message(
            &h,
            "/redox",
            Some(&hmac_with_public_key(&engine, &claims(now, now + 60))),
            Some(TOKEN),
            "L-hs256",
        )
        .await,
        "HS256 confusion",
    );
    forbidden(
        message(
            &h,
            "/redox",
            Some(&unsigned("engine-1", &claims(now, now + 60))),
            Some(TOKEN),
            "L-none",
        )
        .await,
        "alg none",
    );
    let stranger = key(Algorithm::ES256, "engine-1");
    forbidden(
        message(
            &h,
            "/redox",
            Some(&stranger.sign(&claims(now, now + 60)).unwrap()),
            Some(TOKEN),
            "L-stranger",
        )
        .await,
        "unregistered key",
    );
    // No Authorization at all: 401.
    let none = message(&h, "/redox", None, Some(TOKEN), "L-missing").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    // A good token with a wrong verification token header: 403.
    let wrong_token = message(&h, "/redox", Some(&fresh()), Some("nope"), "L-token").await;
    assert_eq!(wrong_token.status, StatusCode::FORBIDDEN);

    assert_eq!(kept(&h), ["L1", "L2"], "nothing refused is kept");
    assert_eq!(jwks.fetches(), 1);
}

// ------------------------------------------------------------------------------------------
// GoogleWIF
// ------------------------------------------------------------------------------------------

const GOOGLE_ISSUER: &str = "https://accounts.google.com";
const WIF_AUDIENCE: &str = "https://dest.wharf.test/wif-audience";

fn google_id_token(key: &SigningKey, audience: &str) -> String {
    let now = now();
    key.sign(&json!({
        "iss": GOOGLE_ISSUER,
        "azp": "1234567890-wharf.apps.googleusercontent.com",
        "aud": audience,
        "sub": "110169484474386276334",
        "email": "wharf-engine@wharf-test.iam.gserviceaccount.com",
        "email_verified": true,
        "iat": now,
        "exp": now + 3600,
    }))
    .unwrap()
}

#[tokio::test]
async fn google_wif_accepts_an_id_token_for_its_audience_repeatedly() {
    let google = key(Algorithm::RS256, "google-key-1");
    let auth = format!(
        "strategy = \"GoogleWIF\"\nissuer = \"{GOOGLE_ISSUER}\"\naudience = \"{WIF_AUDIENCE}\"\njwks = {}\n",
        inline_jwks(&[&google])
    );
    let h = Harness::start(&destination_with("Acme", "/redox", Some(TOKEN), &auth)).await;
    let id_token = google_id_token(&google, WIF_AUDIENCE);
    for log_id in ["W1", "W2"] {
        let answer = message(&h, "/redox", Some(&id_token), Some(TOKEN), log_id).await;
        assert_kept(answer, &h, log_id).await;
    }
    let other = google_id_token(&google, "https://another.service");
    let answer = message(&h, "/redox", Some(&other), Some(TOKEN), "W-aud").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    answer.assert_hides(&[WIF_AUDIENCE]);
    let forged = google_id_token(&key(Algorithm::RS256, "google-key-1"), WIF_AUDIENCE);
    let answer = message(&h, "/redox", Some(&forged), Some(TOKEN), "W-forged").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let none = message(&h, "/redox", None, Some(TOKEN), "W-none").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(kept(&h), ["W1", "W2"]);
}

// ------------------------------------------------------------------------------------------
// AwsSigv4
// ------------------------------------------------------------------------------------------

const ACCESS_KEY: &str = "AKIDWHARFDESTTEST";
const SECRET_KEY: &str = "wharf/Dest+Secret/Key-NEVER-ECHOED";

fn sigv4_destination(token: Option<&str>) -> String {
    destination_with(
        "Acme",
        "/redox",
        token,
        &format!(
            "strategy = \"AwsSigv4\"\nregion = \"us-east-1\"\nservice = \"execute-api\"\ncredentials = [{{ access_key = \"{ACCESS_KEY}\", secret_key = \"{SECRET_KEY}\" }}]\n"
        ),
    )
}

fn credentials(access_key: &str, secret_key: &str) -> SigningCredentials {
    SigningCredentials {
        access_key: access_key.to_owned(),
        secret_key: secret_key.to_owned(),
        session_token: None,
        region: "us-east-1".to_owned(),
        service: "execute-api".to_owned(),
    }
}

/// The request's headers plus the SigV4 headers over `signed_body`, sent with `sent_body`.
async fn signed_post(
    h: &Harness,
    headers: &[(&str, &str)],
    signed_body: &[u8],
    sent_body: &[u8],
    creds: &SigningCredentials,
    at: SystemTime,
) -> Answer {
    let url = h.url("/redox");
    let owned: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let added = sigv4::sign("POST", &url, &owned, signed_body, creds, at).unwrap();
    let mut builder = h.client.post(&url).body(sent_body.to_vec());
    for (k, v) in owned.iter().chain(&added) {
        builder = builder.header(k.as_str(), v.as_str());
    }
    Answer::of(builder.send().await.unwrap()).await
}

const JSON_AND_TOKEN: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("verification-token", TOKEN),
];

#[tokio::test]
async fn sigv4_signed_messages_are_kept_and_tampered_or_stale_ones_refused() {
    let h = Harness::start(&sigv4_destination(Some(TOKEN))).await;
    let creds = credentials(ACCESS_KEY, SECRET_KEY);
    let body = notification("S1");
    let answer = signed_post(
        &h,
        JSON_AND_TOKEN,
        body.as_bytes(),
        body.as_bytes(),
        &creds,
        SystemTime::now(),
    )
    .await;
    assert_kept(answer, &h, "S1").await;

    // The body changed after signing.
    let signed = notification("S2");
    let altered = signed.replace("Arrival", "Discharge");
    let answer = signed_post(
        &h,
        JSON_AND_TOKEN,
        signed.as_bytes(),
        altered.as_bytes(),
        &creds,
        SystemTime::now(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    // The signature the destination would have wanted is never shown.
    let wanted = sigv4::sign(
        "POST",
        &h.url("/redox"),
        &JSON_AND_TOKEN
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
        altered.as_bytes(),
        &creds,
        SystemTime::now(),
    )
    .unwrap();
    let signature = wanted
        .iter()
        .find(|(k, _)| k == "authorization")
        .and_then(|(_, v)| v.rsplit("Signature=").next())
        .unwrap()
        .to_owned();
    answer.assert_hides(&[SECRET_KEY, &signature]);

    // Signed with the right access key but a wrong secret.
    let wrong_secret = credentials(ACCESS_KEY, "not-the-secret");
    let body = notification("S3");
    let answer = signed_post(
        &h,
        JSON_AND_TOKEN,
        body.as_bytes(),
        body.as_bytes(),
        &wrong_secret,
        SystemTime::now(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    answer.assert_hides(&[SECRET_KEY]);

    // An unknown access key.
    let unknown = credentials("AKIDSTRANGER", SECRET_KEY);
    let answer = signed_post(
        &h,
        JSON_AND_TOKEN,
        body.as_bytes(),
        body.as_bytes(),
        &unknown,
        SystemTime::now(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // Signed six minutes ago (or six minutes ahead).
    for at in [
        SystemTime::now() - Duration::from_secs(360),
        SystemTime::now() + Duration::from_secs(360),
    ] {
        let answer = signed_post(
            &h,
            JSON_AND_TOKEN,
            body.as_bytes(),
            body.as_bytes(),
            &creds,
            at,
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
    }
    // Four minutes ago is within the allowed skew.
    let body4 = notification("S4");
    let answer = signed_post(
        &h,
        JSON_AND_TOKEN,
        body4.as_bytes(),
        body4.as_bytes(),
        &creds,
        SystemTime::now() - Duration::from_secs(240),
    )
    .await;
    assert_kept(answer, &h, "S4").await;

    // No Authorization: 401, even with the verification token.
    let answer = message(&h, "/redox", None, Some(TOKEN), "S5").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // A signed request whose verification token is wrong: 403.
    let answer = signed_post(
        &h,
        &[
            ("content-type", "application/json"),
            ("verification-token", "wrong"),
        ],
        body.as_bytes(),
        body.as_bytes(),
        &creds,
        SystemTime::now(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    assert_eq!(kept(&h), ["S1", "S4"]);
}

/// Sends a request with exactly the given headers (as a captured request would be resent).
async fn send_signed(h: &Harness, headers: &[(String, String)], body: &str) -> Answer {
    let mut builder = h.client.post(h.url("/redox")).body(body.to_owned());
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    Answer::of(builder.send().await.unwrap()).await
}

#[tokio::test]
async fn sigv4_a_replayed_request_is_refused_within_the_clock_skew() {
    let h = Harness::start(&sigv4_destination(Some(TOKEN))).await;
    let creds = credentials(ACCESS_KEY, SECRET_KEY);
    let body = notification("R1");
    let url = h.url("/redox");
    let sign_at = |at: SystemTime| {
        let mut headers: Vec<(String, String)> = JSON_AND_TOKEN
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let added = sigv4::sign("POST", &url, &headers, body.as_bytes(), &creds, at).unwrap();
        headers.extend(added);
        headers
    };
    let at = SystemTime::now();
    let captured = sign_at(at);
    assert_kept(send_signed(&h, &captured, &body).await, &h, "R1").await;

    // The identical request again, well within the 5 minutes X-Amz-Date allows.
    let replay = send_signed(&h, &captured, &body).await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN, "{}", replay.text);
    assert!(replay.text.contains("replayed request"), "{}", replay.text);
    // The same signature written in capitals is the same signature.
    let shouted: Vec<(String, String)> = captured
        .iter()
        .map(|(k, v)| match v.split_once("Signature=") {
            Some((before, sig)) if k == "authorization" => (
                k.clone(),
                format!("{before}Signature={}", sig.to_uppercase()),
            ),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    assert_ne!(shouted, captured);
    let replay = send_signed(&h, &shouted, &body).await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN, "{}", replay.text);

    // The engine's retry of the same message is signed again, later: a new request, and the
    // inbox recognises the message as a duplicate.
    let retry = send_signed(&h, &sign_at(at + Duration::from_secs(1)), &body).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
    assert_eq!(retry.json()["duplicate"], true);
    assert_eq!(kept(&h), ["R1"]);
}

#[tokio::test]
async fn jwt_bearer_tokens_without_jti_are_accepted_once() {
    let engine = key(Algorithm::ES256, "engine-1");
    let h = Harness::start(&destination_with(
        "Acme",
        "/redox",
        Some(TOKEN),
        &jwt_bearer_auth(&format!("jwks = {}", inline_jwks(&[&engine]))),
    ))
    .await;
    let now = now();
    let without_jti = |exp: u64| {
        engine
            .sign(&json!({"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": exp}))
            .unwrap()
    };
    let token = without_jti(now + 60);
    assert_kept(
        message(&h, "/redox", Some(&token), Some(TOKEN), "N1").await,
        &h,
        "N1",
    )
    .await;
    let replay = message(&h, "/redox", Some(&token), Some(TOKEN), "N2").await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN, "{}", replay.text);
    assert!(replay.text.contains("replayed"), "{}", replay.text);
    // Another token without jti is another credential.
    assert_kept(
        message(
            &h,
            "/redox",
            Some(&without_jti(now + 61)),
            Some(TOKEN),
            "N3",
        )
        .await,
        &h,
        "N3",
    )
    .await;
    assert_eq!(kept(&h), ["N1", "N3"]);
}

#[tokio::test]
async fn sigv4_unknown_access_key_is_refused_before_the_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start(&sigv4_destination(Some(TOKEN))).await;
    let addr = h.running.as_ref().unwrap().local_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /redox HTTP/1.1\r\nhost: localhost:{}\r\ncontent-type: application/json\r\nverification-token: {TOKEN}\r\n\
         x-amz-date: 20260101T000000Z\r\n\
         authorization: AWS4-HMAC-SHA256 Credential=AKIDSTRANGER/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature={}\r\n\
         content-length: 100000\r\n\r\n{{\"Meta\":",
        addr.port(),
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Only 8 of the 100000 body bytes were sent: an answer now means the body was not waited for.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the destination waited for the body instead of refusing at once")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(h.inbox().is_empty());
}

#[tokio::test]
async fn sigv4_signed_challenges_are_answered_and_unsigned_ones_are_not() {
    let h = Harness::start(&sigv4_destination(Some(TOKEN))).await;
    let creds = credentials(ACCESS_KEY, SECRET_KEY);
    let challenge = new_challenge();
    let body = post_body(TOKEN, &challenge);
    let answer = signed_post(
        &h,
        &[("content-type", "application/json")],
        &body,
        &body,
        &creds,
        SystemTime::now(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, challenge);

    // Unsigned, though the token in the body is right.
    let unsigned = Answer::of(
        h.client
            .post(h.url("/redox"))
            .header("content-type", "application/json")
            .body(post_body(TOKEN, &challenge))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert!(!unsigned.text.contains(&challenge));

    // GET challenge with the token in the query, signed over the query string.
    let url = format!(
        "{}?{}",
        h.url("/redox"),
        form(&[("verification-token", TOKEN), ("challenge", &challenge)])
    );
    let added = sigv4::sign("GET", &url, &[], b"", &creds, SystemTime::now()).unwrap();
    let mut builder = h.client.get(&url);
    for (k, v) in &added {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let answer = Answer::of(builder.send().await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, challenge);
    let unsigned = Answer::of(h.client.get(&url).send().await.unwrap()).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert!(h.inbox().is_empty());
}

// ------------------------------------------------------------------------------------------
// The verification token is optional with a strategy
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn with_a_strategy_and_no_verification_token_the_strategy_alone_authenticates() {
    let engine = key(Algorithm::RS256, "engine-1");
    let jwt = destination_with(
        "Jwt",
        "/jwt",
        None,
        &jwt_bearer_auth(&format!("jwks = {}", inline_jwks(&[&engine]))),
    );
    let sig = destination_with(
        "Sig",
        "/sig",
        None,
        &format!(
            "strategy = \"AwsSigv4\"\nregion = \"us-east-1\"\nservice = \"execute-api\"\ncredentials = [{{ access_key = \"{ACCESS_KEY}\", secret_key = \"{SECRET_KEY}\" }}]\n"
        ),
    );
    let h = Harness::start(&format!("{jwt}{sig}")).await;
    let fresh = || {
        client::jwt_bearer_token(&jwt_fields(JWT_ISSUER, JWT_AUDIENCE), &engine, &SystemClock)
            .unwrap()
    };
    let challenge = new_challenge();
    let bare = json!({ "challenge": challenge }).to_string();

    // JWT Bearer: POST and GET challenges, then a message.
    let post = Answer::of(
        h.client
            .post(h.url("/jwt"))
            .bearer_auth(fresh())
            .header("content-type", "application/json")
            .body(bare.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::OK, "{}", post.text);
    assert_eq!(post.text, challenge);
    let get = Answer::of(
        h.client
            .get(h.url("/jwt"))
            .query(&[("challenge", challenge.as_str())])
            .bearer_auth(fresh())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(get.status, StatusCode::OK, "{}", get.text);
    assert_eq!(get.text, challenge);
    assert_kept(
        message(&h, "/jwt", Some(&fresh()), None, "J1").await,
        &h,
        "J1",
    )
    .await;
    // Without the strategy's credentials: nothing.
    let unauthenticated = Answer::of(
        h.client
            .post(h.url("/jwt"))
            .header("content-type", "application/json")
            .body(bare.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    assert!(!unauthenticated.text.contains(&challenge));
    let no_auth = message(&h, "/jwt", None, None, "J2").await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);

    // AwsSigv4: a signed challenge and a signed message.
    let creds = credentials(ACCESS_KEY, SECRET_KEY);
    let url = h.url("/sig");
    let sign_and_post = |body: String| {
        let added = sigv4::sign(
            "POST",
            &url,
            &[("content-type".to_owned(), "application/json".to_owned())],
            body.as_bytes(),
            &creds,
            SystemTime::now(),
        )
        .unwrap();
        let mut builder = h
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in &added {
            builder = builder.header(k.as_str(), v.as_str());
        }
        async move { Answer::of(builder.send().await.unwrap()).await }
    };
    let answer = sign_and_post(bare.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.text, challenge);
    assert_kept(sign_and_post(notification("S1")).await, &h, "S1").await;
    let unsigned = message(&h, "/sig", None, None, "S2").await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);

    assert_eq!(kept(&h), ["J1", "S1"]);
}

// ------------------------------------------------------------------------------------------
// Responses never echo expected values
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn no_response_of_a_two_legged_destination_contains_the_client_secret() {
    let h = Harness::start(&two_legged("")).await;
    let mut answers = Vec::new();
    for (fields, secret) in [
        (json!({}), CLIENT_SECRET),
        (json!({"noBasic": true}), CLIENT_SECRET),
        (json!({}), "wrong"),
        (
            json!({"noBasic": true, "contentType": "application/json"}),
            "wrong",
        ),
        (json!({"clientId": "stranger"}), CLIENT_SECRET),
    ] {
        let (mut f, _) = two_legged_fields(&h, json!({}));
        f.extend(object(fields));
        let request =
            client::oauth_2_legged_request(&f, &object(json!({"clientSecret": secret}))).unwrap();
        answers.push(exchange_at(&h, &request.url, &request).await);
    }
    let token = access_token(&answers[0]);
    answers.push(message(&h, "/redox", Some(&token), Some(TOKEN), "L1").await);
    answers.push(message(&h, "/redox", Some(CLIENT_SECRET), Some(TOKEN), "L2").await);
    answers.push(message(&h, "/redox", Some(&token), Some(CLIENT_SECRET), "L3").await);
    answers.push(Answer::of(h.client.get(h.url(TOKEN_PATH)).send().await.unwrap()).await);
    answers.push(
        token_form(
            &h,
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", "x"),
            ],
        )
        .await,
    );
    assert_eq!(answers.len(), 10);
    for answer in &answers {
        answer.assert_hides(&[CLIENT_SECRET, TOKEN]);
    }
    assert_eq!(kept(&h), ["L1"]);
}

// ------------------------------------------------------------------------------------------
// Replays across servers sharing one PostgreSQL database
// ------------------------------------------------------------------------------------------

/// Two destination servers on one PostgreSQL schema (whatever `WHARF_TEST_BACKEND` says: the
/// shared memory exists only there), each with `destinations`, and the schema (kept alive).
async fn two_servers_on_one_database(
    destinations: &str,
) -> (Harness, Harness, wharf_testkit::postgres::PgSchema) {
    let schema = wharf_testkit::postgres::PgSchema::create();
    let top = format!(
        "database_url = \"{}\"\npublic_url = \"https://dest.example.com\"",
        schema.url
    );
    let mut servers = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        servers.push(
            Harness::start_on(
                dir,
                None,
                destinations,
                &top,
                reqwest::Client::new(),
                "http",
            )
            .await,
        );
    }
    let b = servers.pop().unwrap();
    let a = servers.pop().unwrap();
    (a, b, schema)
}

/// The log ids in the shared inbox, read through `h`'s own store.
fn kept_shared(h: &Harness) -> Vec<String> {
    h.running
        .as_ref()
        .unwrap()
        .inbox()
        .reader()
        .list(&wharf_store::ListQuery::oldest(100))
        .unwrap()
        .into_iter()
        .map(|m| m.log_id.unwrap_or_default())
        .collect()
}

/// The request `headers` and `body` exactly as captured on their way to `a` (its `Host`
/// included, as a load balancer in front of both servers would pass it), sent to `to`.
async fn replay_to(to: &Harness, a: &Harness, headers: &[(String, String)], body: &str) -> Answer {
    let mut builder = to
        .client
        .post(to.url("/redox"))
        .header("host", format!("localhost:{}", a.port()))
        .body(body.to_owned());
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    Answer::of(builder.send().await.unwrap()).await
}

#[tokio::test]
async fn a_sigv4_request_accepted_by_one_server_is_refused_by_the_other() {
    let (a, b, _schema) = two_servers_on_one_database(&sigv4_destination(Some(TOKEN))).await;
    let creds = credentials(ACCESS_KEY, SECRET_KEY);
    let body = notification("S1");
    let mut headers: Vec<(String, String)> = JSON_AND_TOKEN
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let added = sigv4::sign(
        "POST",
        &a.url("/redox"),
        &headers,
        body.as_bytes(),
        &creds,
        SystemTime::now(),
    )
    .unwrap();
    headers.extend(added);
    let first = replay_to(&a, &a, &headers, &body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let replay = replay_to(&b, &a, &headers, &body).await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN, "{}", replay.text);
    assert!(replay.text.contains("replayed request"), "{}", replay.text);
    // The other way round too: a fresh request first at b, replayed to a.
    let mut headers: Vec<(String, String)> = JSON_AND_TOKEN
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let body = notification("S2");
    let added = sigv4::sign(
        "POST",
        &a.url("/redox"),
        &headers,
        body.as_bytes(),
        &creds,
        SystemTime::now(),
    )
    .unwrap();
    headers.extend(added);
    assert_eq!(
        replay_to(&b, &a, &headers, &body).await.status,
        StatusCode::OK
    );
    assert_eq!(
        replay_to(&a, &a, &headers, &body).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(kept_shared(&a), ["S1", "S2"], "each message kept once");
}

#[tokio::test]
async fn a_jwt_bearer_token_or_smart_assertion_used_at_one_server_is_refused_by_the_other() {
    let engine = key(Algorithm::ES256, "engine-1");
    let smart = key(Algorithm::ES384, "smart-1");
    let destinations = format!(
        "{}{}",
        destination_with(
            "Acme",
            "/redox",
            Some(TOKEN),
            &jwt_bearer_auth(&format!("jwks = {}", inline_jwks(&[&engine]))),
        ),
        destination_with(
            "Smart",
            "/smart",
            Some(TOKEN),
            &format!(
                "strategy = \"SMART_Backend\"\ntoken_path = \"/smart/token\"\nclients = [{{ client_id = \"{SMART_INLINE_CLIENT}\", jwks = {} }}]\n",
                inline_jwks(&[&smart])
            ),
        ),
    );
    let (a, b, _schema) = two_servers_on_one_database(&destinations).await;
    let now = now();
    // JWT Bearer, with a jti and without one.
    let with_jti = engine
        .sign(
            &json!({"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": now + 60,
            "jti": uuid::Uuid::new_v4().to_string()}),
        )
        .unwrap();
    let without_jti = engine
        .sign(&json!({"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": now + 61}))
        .unwrap();
    for (n, token) in [with_jti, without_jti].iter().enumerate() {
        let log_id = format!("J{n}");
        let first = message(&a, "/redox", Some(token), Some(TOKEN), &log_id).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        let replay = message(&b, "/redox", Some(token), Some(TOKEN), "replayed").await;
        assert_eq!(replay.status, StatusCode::FORBIDDEN, "{}", replay.text);
        assert!(replay.text.contains("replayed"), "{}", replay.text);
    }
    // A SMART client assertion's jti.
    let claims = json!({
        "iss": SMART_INLINE_CLIENT, "sub": SMART_INLINE_CLIENT,
        "aud": "https://dest.example.com/smart/token",
        "iat": now, "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string(),
    });
    let assertion = smart.sign(&claims).unwrap();
    let exchange = |h: &Harness| {
        h.client
            .post(h.url("/smart/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", CLIENT_CREDENTIALS),
                ("client_assertion_type", JWT_CLIENT_ASSERTION),
                ("client_assertion", &assertion),
            ]))
            .send()
    };
    access_token(&Answer::of(exchange(&a).await.unwrap()).await);
    let replay = Answer::of(exchange(&b).await.unwrap()).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.text);
    assert!(replay.text.contains("already used"), "{}", replay.text);
    assert_eq!(kept_shared(&b), ["J0", "J1"]);
}

/// With the shared memory out of reach, a single-use credential cannot be checked: the request
/// is refused with 503 and Retry-After (the sender retries), not accepted, and not a 500.
#[tokio::test]
async fn when_postgresql_is_unreachable_the_replay_check_answers_503_with_retry_after() {
    let mut cluster = tokio::task::spawn_blocking(wharf_testkit::PgCluster::init)
        .await
        .unwrap();
    let engine = key(Algorithm::ES256, "engine-1");
    let destinations = destination_with(
        "Acme",
        "/redox",
        Some(TOKEN),
        &jwt_bearer_auth(&format!("jwks = {}", inline_jwks(&[&engine]))),
    );
    let top = format!("database_url = \"{}\"", cluster.url());
    let h = Harness::start_on(
        tempfile::tempdir().unwrap(),
        None,
        &destinations,
        &top,
        reqwest::Client::new(),
        "http",
    )
    .await;
    let token = |n: u64| {
        let now = now();
        engine
            .sign(
                &json!({"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "iat": now, "exp": now + 60 + n,
                "jti": uuid::Uuid::new_v4().to_string()}),
            )
            .unwrap()
    };
    let ok = message(&h, "/redox", Some(&token(0)), Some(TOKEN), "U0").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.kill();
        cluster
    })
    .await
    .unwrap();
    let refused = message(&h, "/redox", Some(&token(1)), Some(TOKEN), "U1").await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text
    );
    assert!(refused.text.contains("replays"), "{}", refused.text);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    drop(cluster);
}

/// Behind a load balancer the token request and the next message may reach different servers:
/// a token issued by one is good at the other, and one it never issued is not.
#[tokio::test]
async fn an_access_token_issued_by_one_server_is_accepted_by_the_other() {
    let (a, b, schema) = two_servers_on_one_database(&two_legged("")).await;
    let (fields, secrets) = two_legged_fields(&a, json!({}));
    let request = client::oauth_2_legged_request(&fields, &secrets).unwrap();
    let token = access_token(&exchange_at(&a, &request.url, &request).await);
    let answer = message(&b, "/redox", Some(&token), Some(TOKEN), "T1").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let made_up = "A".repeat(43);
    let answer = message(&b, "/redox", Some(&made_up), Some(TOKEN), "T2").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    // A server whose configuration rotated the client's secret does not accept tokens issued
    // under the old one.
    let rotated = Harness::start_on(
        tempfile::tempdir().unwrap(),
        None,
        &two_legged("").replace(CLIENT_SECRET, "rotated-secret-0123456789abcdef-0123456789"),
        &format!("database_url = \"{}\"", schema.url),
        reqwest::Client::new(),
        "http",
    )
    .await;
    let answer = message(&rotated, "/redox", Some(&token), Some(TOKEN), "T3").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    assert_eq!(kept_shared(&a), ["T1"]);
}
