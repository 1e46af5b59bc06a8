//! Online guessing: an address that keeps failing authentication, on any route that checks a
//! secret, is answered 429 with Retry-After before its secrets are even compared; other
//! addresses and successful requests are not affected.

use super::*;
use reqwest::StatusCode;
use std::net::{IpAddr, Ipv4Addr};

/// A client connecting from another loopback address (127.0.0.2), a different client for the
/// limit.
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .build()
        .unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a 429 carries Retry-After: {:?}", response.headers()))
}

async fn metric(h: &Harness, name: &str) -> u64 {
    let text = h
        .client
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn wrong_verification_tokens_get_429_after_the_limit_even_with_the_right_token_next() {
    let h = Harness::start_with(
        &destination(""),
        "auth_failure_limit = 5\nauth_failure_window = \"1m\"",
        reqwest::Client::new(),
        "http",
    )
    .await;
    // Successes are never counted: many more than the limit pass.
    for i in 0..30 {
        let r = h
            .post("/redox", Some(TOKEN), notification(&format!("ok-{i}")))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    for i in 0..5 {
        let guess = format!("guess-{i}-0123456789abcdef0123456789abcdef");
        let r = h.post("/redox", Some(&guess), notification("g")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "guess {i}");
    }
    // The sixth guess is not even compared; nor is the right token from the same address.
    for token in ["guess-6", TOKEN] {
        let r = h.post("/redox", Some(token), notification("blocked")).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait = retry_after(&r);
        assert!((1..=63).contains(&wait), "{wait}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("auth_failure_limit"),
            "{body}"
        );
    }
    // A GET challenge and the query string are limited the same way.
    let r = h
        .client
        .get(h.url(&format!("/redox?verification-token={TOKEN}&challenge=c")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Health and readiness check no secret and stay open to the same address.
    let r = h.client.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Another address is not affected.
    let other = client_from([127, 0, 0, 2]);
    let r = other
        .post(h.url("/redox"))
        .header("verification-token", TOKEN)
        .body(notification("other-address"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(metric(&h, "wharf_auth_rate_limited_total").await, 3);
    assert_eq!(
        h.inbox().len(),
        31,
        "30 before the guesses, one from the other address"
    );
}

#[tokio::test]
async fn the_limit_frees_when_the_failures_leave_the_window() {
    let h = Harness::start_with(
        &destination(""),
        "auth_failure_limit = 2\nauth_failure_window = \"2s\"",
        reqwest::Client::new(),
        "http",
    )
    .await;
    for _ in 0..2 {
        let r = h.post("/redox", Some("wrong"), notification("w")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let r = h.post("/redox", Some(TOKEN), notification("early")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&r);
    assert!((1..=3).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let r = h.post("/redox", Some(TOKEN), notification("later")).await;
    assert_eq!(r.status(), StatusCode::OK, "Retry-After was long enough");
}

#[tokio::test]
async fn admin_token_metrics_token_and_token_endpoint_guesses_are_limited_too() {
    let admin = "admin-0123456789abcdef-0123456789abcdef";
    let metrics = "metrics-0123456789abcdef-0123456789abcdef";
    let two_legged = "[destinations.auth]\nstrategy = \"OAuth_2.0_2-legged\"\ntoken_path = \"/redox/token\"\nclients = [{ client_id = \"redox\", client_secret = \"secret-0123456789abcdef-0123456789abcdef\" }]\n";
    let top =
        format!("auth_failure_limit = 3\nadmin_token = \"{admin}\"\nmetrics_token = \"{metrics}\"");
    // Each route on its own server, so each starts with a clean count.
    type Attempt = fn(&Harness, &str) -> reqwest::RequestBuilder;
    let routes: [(&str, Attempt, &str); 3] = [
        (
            "/_wharf",
            |h, password| {
                h.client
                    .get(h.url("/_wharf"))
                    .basic_auth("ops", Some(password))
            },
            admin,
        ),
        (
            "/metrics",
            |h, token| h.client.get(h.url("/metrics")).bearer_auth(token),
            metrics,
        ),
        (
            "/redox/token",
            |h, secret| {
                h.client
                    .post(h.url("/redox/token"))
                    .basic_auth("redox", Some(secret))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
            },
            "secret-0123456789abcdef-0123456789abcdef",
        ),
    ];
    for (route, attempt, right) in routes {
        let h = Harness::start_with(
            &destination(two_legged),
            &top,
            reqwest::Client::new(),
            "http",
        )
        .await;
        let ok = attempt(&h, right).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "{route}");
        for i in 0..3 {
            let r = attempt(&h, &format!("wrong-{i}")).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{route} guess {i}");
        }
        let r = attempt(&h, right).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{route}");
        retry_after(&r);
        let other = client_from([127, 0, 0, 3]);
        let r = other
            .get(h.url("/metrics"))
            .bearer_auth(metrics)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        assert!(
            text.contains("wharf_auth_rate_limited_total 1"),
            "{route}: {text}"
        );
    }
}

#[tokio::test]
async fn zero_turns_the_limit_off() {
    let h = Harness::start_with(
        &destination(""),
        "auth_failure_limit = 0",
        reqwest::Client::new(),
        "http",
    )
    .await;
    for _ in 0..50 {
        let r = h.post("/redox", Some("wrong"), notification("w")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let r = h.post("/redox", Some(TOKEN), notification("right")).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let metrics = "metrics-0123456789abcdef-0123456789abcdef";
    let h = Harness::start_with(
        &destination(""),
        &format!("metrics_token = \"{metrics}\""),
        reqwest::Client::new(),
        "http",
    )
    .await;
    let none = h.client.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"metrics\""
    );
    assert!(!none.text().await.unwrap().contains("wharf_"));
    let wrong = h
        .client
        .get(h.url("/metrics"))
        .bearer_auth(&metrics[..metrics.len() - 1])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = h
        .client
        .get(h.url("/metrics"))
        .bearer_auth(metrics)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let text = right.text().await.unwrap();
    assert!(
        text.contains(r#"wharf_auth_failures_total{reason="metrics_token"} 2"#),
        "{text}"
    );
    // Without a token, /metrics stays open (the default).
    let open = Harness::start(&destination("")).await;
    let r = open.client.get(open.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
