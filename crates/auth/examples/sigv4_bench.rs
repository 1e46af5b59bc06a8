//! Micro-benchmark of SigV4 verification, the work a destination does on every request of
//! the `AwsSigv4` strategy.
//!
//! Verifies one typical signed POST (a ~2 KB Redox JSON body, four signed headers) many times
//! and prints the median per-verify time over five rounds, next to a floor that no verifier
//! can beat: one SHA-256 of the same body plus one HMAC-SHA256, measured the same way.
//!
//! Run: `cargo run --release -p wharf-auth --example sigv4_bench [iterations]`
//! (default 200000 iterations per round).

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::{digest, hmac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use wharf_auth::sigv4::{SigningCredentials, Verifier, sign};

const ROUNDS: usize = 5;

fn redox_body() -> Vec<u8> {
    let mut body = String::from(
        r#"{"Meta":{"DataModel":"PatientAdmin","EventType":"Arrival","EventDateTime":"2024-05-01T11:59:58.000Z","Test":true,"Source":{"ID":"7ce6f387-c33c-417d-8682-81e83628cbd9","Name":"Redox Dev Tools"},"Destinations":[{"ID":"af394f14-b34a-464f-8d24-895f370af4c9","Name":"Wharf"}],"Message":{"ID":5565}},"Patient":{"Identifiers":[{"ID":"0000000001","IDType":"MR"}],"Demographics":{"FirstName":"Timothy","LastName":"Bixby","Sex":"Male"},"Notes":["#,
    );
    let mut index = 0;
    while body.len() < 2000 {
        body.push_str(&format!(
            r#""note {index}: patient arrived, vitals recorded","#
        ));
        index += 1;
    }
    body.push_str(r#""end"]}}"#);
    body.into_bytes()
}

/// Median of `ROUNDS` rounds of `iterations` calls, per call.
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
        .unwrap_or(200_000);

    let body = redox_body();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800);
    let url = "https://dest.example.com:8443/redox?source=dev%20tools";
    let credentials = SigningCredentials {
        access_key: "AKIDWHARFBENCH".to_owned(),
        secret_key: "wharf-bench-secret/Key+0123456789".to_owned(),
        session_token: None,
        region: "us-east-1".to_owned(),
        service: "execute-api".to_owned(),
    };
    let request_headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let added = sign("POST", url, &request_headers, &body, &credentials, now)
        .expect("signing the benchmark request");
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("dest.example.com:8443"));
    for (name, value) in request_headers.iter().chain(&added) {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let verifier = Verifier::new(
        "us-east-1",
        "execute-api",
        [(
            credentials.access_key.clone(),
            credentials.secret_key.clone(),
        )],
    );
    let target = "/redox?source=dev%20tools";
    verifier
        .verify(&Method::POST, target, &headers, &body, now)
        .expect("the benchmark request verifies");

    let verify = || {
        let result = verifier.verify(
            black_box(&Method::POST),
            black_box(target),
            black_box(&headers),
            black_box(&body),
            now,
        );
        assert!(black_box(result).is_ok());
    };
    let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, b"32-byte-signing-key-stand-in....");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n20240501T120000Z\n20240501/us-east-1/execute-api/aws4_request\n{}",
        "0".repeat(64)
    );
    let floor = || {
        black_box(digest::digest(&digest::SHA256, black_box(&body)));
        black_box(hmac::sign(&hmac_key, black_box(string_to_sign.as_bytes())));
    };

    // Warm-up: caches, branch predictors, CPU frequency.
    let warm_up = (iterations / 10).max(1);
    median_per_call(warm_up, verify);
    median_per_call(warm_up, floor);

    let verify_time = median_per_call(iterations, verify);
    let floor_time = median_per_call(iterations, floor);

    println!(
        "request: POST, {} byte body, {} headers, {} iterations x {ROUNDS} rounds",
        body.len(),
        headers.len(),
        iterations
    );
    println!(
        "verify:  {:.2} us per request (median of {ROUNDS} rounds)",
        micros(verify_time)
    );
    println!(
        "ceiling: {:.2} us (one SHA-256 of the body + one HMAC-SHA256)",
        micros(floor_time)
    );
    println!(
        "verify costs {:.1}x the ceiling",
        verify_time.as_secs_f64() / floor_time.as_secs_f64()
    );
}
