//! The sign-in's own limits: failed sign-ins per client address (the 11th in the window is
//! refused with 429 before any password is checked), password checks bounded (a burst of
//! wrong passwords gets 429s instead of each running argon2 at 19 MiB), and a session's
//! absolute lifetime.

use super::*;

/// Posts one sign-in with a fresh form; returns the answer.
async fn attempt(visitor: &mut Visitor, engine: &Engine, secret: &str) -> reqwest::Response {
    let form = visitor.get("/dashboard/signin").await.text().await.unwrap();
    let token = csrf_of(&form);
    let origin = engine.base.clone();
    visitor
        .post(
            "/dashboard/signin",
            &[("csrf", &token), ("secret", secret)],
            Some(&origin),
        )
        .await
}

async fn metrics(engine: &Engine) -> String {
    engine
        .client
        .get(format!("{}/metrics", engine.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_eleventh_failed_sign_in_from_an_address_is_refused_before_any_check() {
    let engine = engine_with_dashboard("").await;
    let mut visitor = Visitor::new(&engine);
    for n in 1..=10 {
        let wrong = attempt(&mut visitor, &engine, &format!("guess-{n}")).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let refused = attempt(&mut visitor, &engine, "guess-11").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((890..=900).contains(&wait), "the 15-minute window: {wait}");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins")
    );
    // Locked out: even the right password is not checked now.
    let right = attempt(&mut visitor, &engine, PASSWORD).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    let text = metrics(&engine).await;
    assert!(
        text.contains("dashboard_signin_failures_total 10"),
        "{text}"
    );
    assert!(
        text.contains("dashboard_signin_refused_total{reason=\"too_many_failures\"} 2"),
        "{text}"
    );
    // The management API is not locked out with it.
    let (status, _) = engine.get("/platform/v1/organizations").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_runs_a_bounded_number_of_password_checks() {
    // The real cost (19 MiB, 2 passes), and failures not locking out: only the bound on
    // password checks running at once is at work here.
    let phc = wharf_engine::dashboard::hash_password(PASSWORD).unwrap();
    let engine = Engine::start_with(
        true,
        &format!("dashboard_password_hash = \"{phc}\"\nsignin_max_failures = 1000\n"),
    )
    .await;
    let mut visitor = Visitor::new(&engine);
    let form = visitor.get("/dashboard/signin").await.text().await.unwrap();
    let token = csrf_of(&form);
    let cookie = visitor.cookie_header();
    let attempts = (0..16).map(|n| {
        let (client, base, token, cookie) = (
            visitor.client.clone(),
            engine.base.clone(),
            token.clone(),
            cookie.clone(),
        );
        tokio::spawn(async move {
            client
                .post(format!("{base}/dashboard/signin"))
                .header("cookie", cookie)
                .header("origin", base.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("csrf={token}&secret=wrong-{n}"))
                .send()
                .await
                .unwrap()
        })
    });
    let mut statuses = Vec::new();
    for response in futures_join(attempts.collect()).await {
        let response = response.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "1");
        }
        statuses.push(response.status());
    }
    let busy = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(busy + checked, 16, "{statuses:?}");
    assert!(busy > 0, "16 at once, 2 checked at a time: {statuses:?}");
    assert!(checked >= 1, "{statuses:?}");
    let text = metrics(&engine).await;
    assert!(
        text.contains(&format!(
            "dashboard_signin_refused_total{{reason=\"busy\"}} {busy}"
        )),
        "{text}"
    );
    // Once the burst is over, the right password signs in.
    visitor.sign_in(PASSWORD).await;
}

/// Awaits every handle, in order.
async fn futures_join<T>(
    handles: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await);
    }
    out
}

#[tokio::test]
async fn a_session_ends_at_its_lifetime_however_busy() {
    let engine = engine_with_dashboard("dashboard_session_lifetime = \"2s\"").await;
    let mut visitor = Visitor::new(&engine);
    visitor.sign_in(PASSWORD).await;
    let started = std::time::Instant::now();
    // Used all the time (never idle), yet signed out once two seconds have passed.
    while started.elapsed() < Duration::from_millis(1500) {
        let page = visitor.get("/dashboard/destinations").await;
        assert_eq!(page.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let page = visitor.get("/dashboard/destinations").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers()["location"],
        "/dashboard/signin?next=%2Fdashboard%2Fdestinations"
    );
}
