//! The bodies of Wharf's fuzz targets, one function per target, each taking arbitrary bytes.
//!
//! They live here rather than in `fuzz/fuzz_targets/` so that two things run exactly the same
//! code: `cargo +nightly fuzz run <target>` (the `fuzz/` crate, libFuzzer, nightly only) and
//! this crate's `tests/replay.rs`, which replays every file of `fuzz/corpus/<target>/` on
//! stable Rust in CI. A target fails by panicking: every parser must turn any input into a
//! value or an error, and where a round trip is defined (sign then verify, build then parse)
//! the round trip must hold.
//!
//! | target | feeds | to |
//! |---|---|---|
//! | [`envelope`] | a request body | `wharf_protocol::envelope::parse` and `stamp` |
//! | [`sigv4`] | an HTTP request as text | the SigV4 verifier (parser and canonicalizer); sign-then-verify |
//! | [`jwt`] | a token, or a JWKS document | `wharf_auth::jwt::{peek_kid, peek_claims, verify}`, `KeySet::from_jwks_bytes` |
//! | [`challenge`] | a request body | `wharf_protocol::challenge::{may_be_challenge, parse_post_body, validate_challenge}` |
//! | [`config`] | a configuration file | `wharf_destination::Config::parse`, `wharf_engine::EngineConfig::parse` |

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};
use wharf_auth::clock::ManualClock;
use wharf_auth::jwks::KeySet;
use wharf_auth::jwt::{self, Rules};
use wharf_auth::keys::SigningKey;
use wharf_auth::sigv4::{self, SigningCredentials, Verifier};
use wharf_protocol::challenge;
use wharf_protocol::envelope::{self, EnvelopeKind, Interaction};

/// The names of the targets, which are also the corpus directories under `fuzz/corpus/`.
pub const TARGETS: [&str; 5] = ["envelope", "sigv4", "jwt", "challenge", "config"];

/// Runs the target called `name` on `data`; `false` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "envelope" => envelope(data),
        "sigv4" => sigv4(data),
        "jwt" => jwt(data),
        "challenge" => challenge(data),
        "config" => config(data),
        _ => return false,
    }
    true
}

// ------------------------------------------------------------------------------------------
// envelope
// ------------------------------------------------------------------------------------------

/// A body as a destination receives it: classified without panicking, whatever it is.
pub fn envelope(data: &[u8]) {
    match envelope::parse(data) {
        Ok(env) => {
            assert!(
                !env.duplicate_key.as_str().is_empty(),
                "every classified message has a duplicate key"
            );
            if env.interaction == Interaction::Query {
                assert_eq!(
                    env.kind,
                    EnvelopeKind::DataModel,
                    "only data models are queries"
                );
                assert!(
                    envelope::is_query(env.data_model.as_deref(), env.event_type.as_deref()),
                    "a query is one by its data model or event type"
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // The engine stamps what sources submit; a stamped data model message keeps its log id.
    let stamped = envelope::stamp(
        data,
        &envelope::Stamp {
            log_id: "log-1",
            attempt_id: "attempt-1",
            source_name: "Fuzz",
            destination_id: "destination-1",
            destination_name: "Fuzz destination",
            now_rfc3339: "2024-01-01T00:00:00.000Z",
        },
    );
    if stamped != data
        && let Ok(env) = envelope::parse(&stamped)
        && env.kind == EnvelopeKind::DataModel
    {
        assert_eq!(
            env.log_id.as_deref(),
            Some("log-1"),
            "stamping sets Meta.Logs"
        );
    }
}

// ------------------------------------------------------------------------------------------
// sigv4
// ------------------------------------------------------------------------------------------

/// The credentials of AWS's SigV4 test suite, so its signed requests are seeds that verify.
pub const SIGV4_ACCESS_KEY: &str = "AKIDEXAMPLE";
pub const SIGV4_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const SIGV4_REGION: &str = "us-east-1";
pub const SIGV4_SERVICE: &str = "service";
/// 2015-08-30T12:36:00Z, the test suite's signing time.
pub const SIGV4_TIME_UNIX: u64 = 1_440_938_160;

/// An HTTP request written as text, as AWS's test suite writes them (`.req`, `.sreq`):
///
/// ```text
/// POST /path?query HTTP/1.1
/// Host:example.amazonaws.com
/// X-Amz-Date:20150830T123600Z
///
/// body
/// ```
///
/// The request goes through the destination's verifier (the `Authorization` parser, the
/// scope, date and body hash checks, the canonical request); any clock skew is allowed so
/// every date reaches the canonicalizer. Then, when the request can be signed, it is signed
/// with `aws-sigv4` (what the engine does) and must verify.
pub fn sigv4(data: &[u8]) {
    let Some(request) = parse_request(data) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(SIGV4_TIME_UNIX);
    let verifier = Verifier::new(
        SIGV4_REGION,
        SIGV4_SERVICE,
        [(SIGV4_ACCESS_KEY.to_owned(), SIGV4_SECRET_KEY.to_owned())],
    )
    .with_max_skew(Duration::MAX);
    if let Err(e) = verifier.verify(
        &request.method,
        &request.target,
        &request.headers,
        &request.body,
        now,
    ) {
        assert!(matches!(e.status(), 401 | 403));
        assert!(!e.reason().is_empty());
    }
    sign_then_verify(&verifier, &request, now);
}

/// A request parsed from the text form [`sigv4`] reads.
#[derive(Debug)]
pub struct TextRequest {
    pub method: Method,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Reads the text form of [`sigv4`]: request line, `Name:value` lines, a blank line, the body.
/// Lines that are not valid headers are skipped, so most inputs still make a request.
pub fn parse_request(data: &[u8]) -> Option<TextRequest> {
    let (head, body) = match find(data, b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8_lossy(lines.next()?).into_owned();
    let (method, rest) = request_line.split_once(' ').unwrap_or((&request_line, "/"));
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    // The target may hold spaces (AWS's suite has such paths); the version ends the line.
    let target = rest
        .rsplit_once(" HTTP/")
        .map_or(rest, |(target, _)| target)
        .to_owned();
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(&line[colon + 1..]),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    Some(TextRequest {
        method,
        target,
        headers,
        body: body.to_vec(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Signs the request's method, target, ordinary headers and body as the engine would, and
/// checks that the destination accepts the result.
fn sign_then_verify(verifier: &Verifier, request: &TextRequest, now: SystemTime) {
    if !request.target.starts_with('/') {
        return;
    }
    let host = "example.amazonaws.com";
    let url = format!("https://{host}{}", request.target);
    // What the caller of `sign` passes: everything but what signing adds or HTTP sets.
    let passed: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "host"
                    | "authorization"
                    | "x-amz-date"
                    | "x-amz-content-sha256"
                    | "x-amz-security-token"
            )
        })
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let credentials = SigningCredentials {
        access_key: SIGV4_ACCESS_KEY.into(),
        secret_key: SIGV4_SECRET_KEY.into(),
        session_token: None,
        region: SIGV4_REGION.into(),
        service: SIGV4_SERVICE.into(),
    };
    let Ok(added) = sigv4::sign(
        request.method.as_str(),
        &url,
        &passed,
        &request.body,
        &credentials,
        now,
    ) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static(host));
    for (name, value) in passed.iter().chain(&added) {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("sign checked the names"),
            HeaderValue::from_str(value).expect("sign checked the values"),
        );
    }
    // The target as a client sends it: reqwest sends the URL's own path and query.
    let Ok(uri) = url.parse::<http::Uri>() else {
        return;
    };
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    if let Err(e) = verifier.verify(&request.method, target, &headers, &request.body, now) {
        panic!(
            "a request aws-sigv4 signed was refused ({e}): {} {target} {headers:?}",
            request.method
        );
    }
}

// ------------------------------------------------------------------------------------------
// jwt
// ------------------------------------------------------------------------------------------

/// A fixed P-256 key, for fuzzing only: seeds signed with it verify, so the claim checks run.
pub const JWT_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg95bBpYmAJdShEp90
Ovyr60Q4juGfMHewc0Zdx9Byc0KhRANCAATObSc8sOcQrB+mJi0WZKaf0OoMd0z6
PCoUzProSxmy76q5KmqcE0Dyf43gCt5OOX9jotyCd4piiV/eKTeAnCdQ
-----END PRIVATE KEY-----
";
pub const JWT_KID: &str = "fuzz-1";
pub const JWT_ISSUER: &str = "https://issuer.wharf.test";
pub const JWT_AUDIENCE: &str = "https://dest.wharf.test";
/// The fuzzing clock: seeds carry `exp` shortly after this.
pub const JWT_NOW_UNIX: u64 = 1_700_000_000;

/// The fixed key, loaded once.
pub fn jwt_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_pem(
            JWT_KEY_PEM,
            None,
            jsonwebtoken::Algorithm::RS256,
            Some(JWT_KID),
        )
        .expect("the fixed fuzzing key loads")
    })
}

fn jwt_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let document = wharf_auth::keys::jwks_document([jwt_key()]);
        KeySet::from_jwks_bytes(document.to_string().as_bytes()).expect("our own JWKS loads")
    })
}

/// A token as presented in `Authorization: Bearer`, or a JWKS document as fetched from a
/// `jwks_url`: both are attacker-controlled. Both readings are tried on every input.
pub fn jwt(data: &[u8]) {
    let _ = KeySet::from_jwks_bytes(data);
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let _ = wharf_auth::oauth::bearer_token(token);
    let _ = jwt::peek_kid(token);
    let _ = jwt::peek_claims(token);
    let clock = ManualClock::at_unix(JWT_NOW_UNIX);
    let mut rules = Rules::new(vec![JWT_ISSUER.into()], vec![JWT_AUDIENCE.into()]);
    if let Ok(claims) = jwt::verify(token, jwt_keys(), &rules, &clock) {
        // Accepted means every rule held.
        assert_eq!(claims.iss.as_deref(), Some(JWT_ISSUER));
        assert!(
            claims
                .exp
                .is_some_and(|exp| exp.saturating_add(jwt::DEFAULT_LEEWAY_SECONDS) > JWT_NOW_UNIX)
        );
    }
    rules.max_lifetime_seconds = Some(300);
    rules.require_jti = true;
    if let Ok(claims) = jwt::verify(token, jwt_keys(), &rules, &clock) {
        assert!(claims.jti.is_some_and(|j| !j.is_empty()));
    }
}

// ------------------------------------------------------------------------------------------
// challenge
// ------------------------------------------------------------------------------------------

/// A POST body that may be a Verify and Save challenge. A challenge the destination would
/// echo must be safe to echo; a body built by the engine must be recognised.
pub fn challenge(data: &[u8]) {
    let may_be = challenge::may_be_challenge(data);
    // A challenge the destination would echo is short, visible ASCII.
    if let Some(request) = challenge::parse_post_body(data)
        && challenge::validate_challenge(&request.challenge).is_ok()
    {
        assert!(request.challenge.len() <= challenge::MAX_CHALLENGE_LEN);
        assert!(request.challenge.bytes().all(|b| b.is_ascii_graphic()));
    }
    if may_be {
        assert!(data.len() <= challenge::MAX_CHALLENGE_BODY);
    }
    // Read as `token \n challenge`: what the engine builds, the destination recognises.
    if let Ok(text) = std::str::from_utf8(data)
        && let Some((token, value)) = text.split_once('\n')
    {
        let body = challenge::post_body(token, value);
        let parsed = challenge::parse_post_body(&body).expect("our own challenge body parses");
        assert_eq!(parsed.challenge, value);
        assert_eq!(parsed.token.as_deref(), Some(token));
        // The bare challenge as text, and the JSON form, both pass the engine's check.
        if !value.is_empty() {
            assert!(challenge::answer_contains(value.as_bytes(), value));
            let json = serde_json::json!({ "challenge": value }).to_string();
            if !value.contains(['"', '\\']) && !value.chars().any(char::is_control) {
                assert!(challenge::answer_contains(json.as_bytes(), value));
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// config
// ------------------------------------------------------------------------------------------

/// An environment where every `*_env` variable is set (so the keys that read one are
/// exercised) but the `WHARF_LISTEN` / `WHARF_DATA_DIR` overrides are not.
struct FuzzEnv;

impl wharf_destination::config::Env for FuzzEnv {
    fn var(&self, name: &str) -> Option<String> {
        (!name.starts_with("WHARF_")).then(|| "fuzz-secret-0123456789abcdef0123456789".to_owned())
    }
}

/// A configuration file, read by both servers: valid, or an error that names what is wrong.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = wharf_destination::Config::parse(&text, &FuzzEnv) {
        assert!(!e.to_string().is_empty());
    }
    if let Err(e) = wharf_engine::EngineConfig::parse(&text, &FuzzEnv) {
        assert!(!e.to_string().is_empty());
    }
}
