//! Test support: reads AWS's SigV4 test suite as checked in under
//! `tests/fixtures/sigv4/aws-test-suite/` and says which vectors each side is expected to pass.
//!
//! Shared by the unit tests in this crate and by `tests/sigv4.rs` (which includes this file by
//! path), so it uses only std, `http` and `serde_json`, never the crate's own code: the
//! expectations must not come from the implementation under test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// One directory of the suite.
#[derive(Debug, Clone)]
pub struct Vector {
    pub name: String,
    pub dir: PathBuf,
    pub context: Context,
}

/// What `context.json` says (or, for the two older vectors that have none, what the
/// `aws-sigv4` tests that use them sign with).
#[derive(Debug, Clone)]
pub struct Context {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
    pub now: SystemTime,
    /// Whether the vector was signed with `x-amz-content-sha256`.
    pub sign_body: bool,
    /// Whether the session token was added after signing rather than signed.
    pub omit_session_token: bool,
}

/// A request as written in a `.txt` file of the suite.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub method: Method,
    /// The request target as written on the request line.
    pub target: String,
    /// All headers, as a server would hand them over.
    pub headers: HeaderMap,
    /// The same headers in file order and spelling.
    pub header_list: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ParsedRequest {
    /// The `Host` header value.
    pub fn host(&self) -> &str {
        self.headers
            .get("host")
            .expect("every vector has a Host header")
            .to_str()
            .expect("Host is ASCII")
    }
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sigv4")
}

/// Every vector under `aws-test-suite/`, sorted by name.
pub fn aws_vectors() -> Vec<Vector> {
    let root = fixtures_dir().join("aws-test-suite");
    let mut vectors: Vec<Vector> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .filter_map(|entry| {
            let dir = entry.expect("directory entry").path();
            dir.is_dir().then(|| {
                let name = dir.file_name().unwrap().to_string_lossy().into_owned();
                let context = read_context(&name, &dir);
                Vector { name, dir, context }
            })
        })
        .collect();
    vectors.sort_by(|a, b| a.name.cmp(&b.name));
    vectors
}

fn read_context(name: &str, dir: &Path) -> Context {
    let path = dir.join("context.json");
    if !path.exists() {
        // The two vectors kept from the older suite have no context.json; aws-sigv4's own
        // tests sign them with these values.
        return match name {
            "double-encode-path" => Context {
                access_key: "ANOTREAL".into(),
                secret_key: "notrealrnrELgWzOk3IfjzDKtFBhDby".into(),
                session_token: None,
                region: "us-east-1".into(),
                service: "service".into(),
                now: parse_rfc3339("2015-08-30T12:36:00Z"),
                sign_body: false,
                omit_session_token: false,
            },
            "double-url-encode" => Context {
                access_key: "AKIDEXAMPLE".into(),
                secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
                session_token: None,
                region: "us-east-2".into(),
                service: "lambda".into(),
                now: parse_rfc3339("2021-05-11T15:40:45Z"),
                sign_body: false,
                omit_session_token: false,
            },
            other => panic!("vector {other} has no context.json"),
        };
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let text_field = |value: &serde_json::Value| value.as_str().unwrap().to_owned();
    Context {
        access_key: text_field(&json["credentials"]["access_key_id"]),
        secret_key: text_field(&json["credentials"]["secret_access_key"]),
        session_token: json["credentials"]["token"].as_str().map(str::to_owned),
        region: text_field(&json["region"]),
        service: text_field(&json["service"]),
        now: parse_rfc3339(json["timestamp"].as_str().unwrap()),
        sign_body: json["sign_body"].as_bool().unwrap_or(true),
        omit_session_token: json["omit_session_token"].as_bool().unwrap_or(false),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` to an instant, counting days month by month (deliberately not the
/// arithmetic the crate uses).
pub fn parse_rfc3339(text: &str) -> SystemTime {
    let field = |range: std::ops::Range<usize>| text[range].parse::<u64>().unwrap();
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let (hour, minute, second) = (field(11..13), field(14..16), field(17..19));
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut days = 0;
    for y in 1970..year {
        days += if leap(y) { 366 } else { 365 };
    }
    let month_days = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days += month_days[..(month as usize - 1)].iter().sum::<u64>();
    days += day - 1;
    UNIX_EPOCH + Duration::from_secs(days * 86_400 + hour * 3600 + minute * 60 + second)
}

impl Vector {
    pub fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(name)).ok()
    }

    /// The unsigned request (`request.txt`).
    pub fn request(&self) -> ParsedRequest {
        parse_request(&self.file("request.txt").expect("request.txt"))
    }

    /// The request with the signature added (`header-signed-request.txt`).
    pub fn signed_request(&self) -> ParsedRequest {
        parse_request(
            &self
                .file("header-signed-request.txt")
                .expect("header-signed-request.txt"),
        )
    }

    /// The `Authorization` value of the signed request.
    pub fn expected_authorization(&self) -> String {
        self.signed_request()
            .headers
            .get("authorization")
            .expect("signed request has Authorization")
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// The published canonical request, where it describes the signed request.
    pub fn canonical_request_text(&self) -> Option<String> {
        if self.name == "double-encode-path" {
            // Its header-canonical-request.txt carries X-Amz-Date 20210511T154045Z from another
            // request, while the signed request (and its signature) use 20150830T123600Z.
            return None;
        }
        self.file("header-canonical-request.txt")
    }

    /// Why the verifier is not expected to accept this vector, if it is not.
    pub fn verifier_exclusion(&self) -> Option<&'static str> {
        match self.name.as_str() {
            "get-relative-unnormalized"
            | "get-relative-relative-unnormalized"
            | "get-slash-dot-slash-unnormalized"
            | "get-slash-pointless-dot-unnormalized"
            | "get-slash-unnormalized"
            | "get-slashes-unnormalized" => Some(
                "signed without path normalization (the S3 rule); non-S3 services normalize, as aws-sigv4 and botocore do",
            ),
            _ => None,
        }
    }

    /// Why `sign()` (with or without `x-amz-content-sha256`) cannot reproduce this vector.
    pub fn signer_exclusion(&self) -> Option<&'static str> {
        if let Some(reason) = self.verifier_exclusion() {
            return Some(reason);
        }
        match self.name.as_str() {
            "get-space-normalized" => Some(
                "its request.txt path is already %20-encoded and is signed single-encoded (the S3 rule); non-S3 signers encode it again to %2520, as aws-sigv4 and botocore do (its signed request carries a raw space, which the verifier accepts)",
            ),
            "get-space-unnormalized" => Some(
                "a raw space in the path is not a URL that can be sent; sign() takes the URL as sent",
            ),
            "post-sts-header-after" => Some(
                "the session token is added after signing; sign() always signs x-amz-security-token",
            ),
            _ => None,
        }
    }
}

/// Parses `METHOD target [HTTP/1.1]`, `Name:value` lines, a blank line and the body. A line
/// starting with whitespace continues the previous value (obsolete line folding): it is
/// joined with one space, as RFC 9112 section 5.2 lets a recipient do.
pub fn parse_request(text: &str) -> ParsedRequest {
    let (head, body) = match text.split_once("\n\n") {
        Some((head, body)) => (head, body),
        None => (text.trim_end_matches('\n'), ""),
    };
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line");
    let request_line = request_line
        .strip_suffix(" HTTP/1.1")
        .unwrap_or(request_line);
    let (method, target) = request_line.split_once(' ').expect("method and target");

    let mut header_list: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = header_list.last_mut().expect("continuation after a header");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').expect("Name:value");
            header_list.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &header_list {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let body = match headers.get("content-length") {
        Some(length) => {
            let length: usize = length.to_str().unwrap().parse().unwrap();
            body.as_bytes()[..length].to_vec()
        }
        None => Vec::new(),
    };
    ParsedRequest {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        target: target.to_owned(),
        headers,
        header_list,
        body,
    }
}
