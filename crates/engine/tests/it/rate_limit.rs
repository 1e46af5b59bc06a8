//! Rate limits over real HTTP, with a small configured limit (5 requests per 2 s): the sixth
//! request of a client gets 429 with `Retry-After`, other clients are not affected, the client
//! gets through again once `Retry-After` has passed, and refusals are counted in `/metrics`.

use super::delivery::SOURCE_KEY;
use super::*;
use std::time::Duration;

fn limited() -> String {
    format!(
        "rate_limit_requests = 5\nrate_limit_window = \"2s\"\n[[sources]]\nname = \"EHR feed\"\napi_key = \"{SOURCE_KEY}\"\n"
    )
}

/// `Retry-After` of a 429, checked to be whole seconds within the window.
fn retry_after(response: &reqwest::Response) -> u64 {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let seconds: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&seconds), "Retry-After: {seconds}");
    seconds
}

async fn metrics(engine: &Engine) -> String {
    let url = format!("{}/metrics", engine.base);
    engine
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_management_api_and_ingestion_answer_429_beyond_the_limit() {
    let engine = Engine::start_with(true, &limited()).await;
    let organizations = format!("{}/platform/v1/organizations", engine.base);
    let manage = || engine.client.get(&organizations).bearer_auth(KEY).send();
    for _ in 0..5 {
        assert_eq!(manage().await.unwrap().status(), StatusCode::OK);
    }
    let refused = manage().await.unwrap();
    let wait = retry_after(&refused);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["meta"]["version"], "1.0.0");
    assert!(
        error(&body).starts_with("too many requests: each client may make 5 requests per 2s"),
        "{body}"
    );

    // Other clients keep their own budgets: the source (by its key) and a request without a
    // key (by its address). Health checks are never limited.
    let ingest = || {
        engine
            .client
            .post(format!("{}/endpoint", engine.base))
            .bearer_auth(SOURCE_KEY)
            .json(&json!({"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival"}}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(ingest().await.unwrap().status(), StatusCode::BAD_REQUEST);
    }
    retry_after(&ingest().await.unwrap());
    let anonymous = engine.client.get(&organizations).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    for _ in 0..10 {
        let health = engine.client.get(format!("{}/healthz", engine.base));
        assert_eq!(health.send().await.unwrap().status(), StatusCode::OK);
    }

    // A made-up key does not buy a fresh budget: it counts as its address, which has 4 left.
    let made_up = |n: usize| {
        engine
            .client
            .get(&organizations)
            .bearer_auth(format!("made-up-key-{n:04}-0123456789"))
            .send()
    };
    for n in 0..4 {
        assert_eq!(made_up(n).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    retry_after(&made_up(4).await.unwrap());

    let text = metrics(&engine).await;
    assert!(
        text.contains("wharf_rate_limited_total{kind=\"management\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("wharf_rate_limited_total{kind=\"ingestion\"} 1"),
        "{text}"
    );
    assert!(text.contains("status=\"429\""), "{text}");

    // Once Retry-After has passed, the client gets through again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(manage().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn sign_in_attempts_are_limited_per_address() {
    let engine = Engine::start_with(true, &limited()).await;
    let signin = format!("{}/dashboard/signin", engine.base);
    let attempt = || {
        engine
            .client
            .post(&signin)
            .header("origin", &engine.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("secret=guess-0123456789abcdef")
            .send()
    };
    for _ in 0..5 {
        let status = attempt().await.unwrap().status();
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    let refused = attempt().await.unwrap();
    retry_after(&refused);
    let text = metrics(&engine).await;
    assert!(
        text.contains("wharf_rate_limited_total{kind=\"dashboard_signin\"} 1"),
        "{text}"
    );
}
