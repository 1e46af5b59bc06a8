//! Synchronous queries relayed to the application (PROTOCOL.md section 6).

use super::*;
use reqwest::StatusCode;
use wharf_testkit::{Recorder, Reply};

const QUERY: &str = r#"{"Meta":{"DataModel":"Clinical Summary","EventType":"PatientQuery","Logs":[{"ID":"q1"}]},"Patient":{}}"#;

#[tokio::test]
async fn the_application_answer_is_relayed_and_nothing_is_kept() {
    let app = Recorder::start(|_, _| {
        Reply::json(200, r#"{"Meta":{"DataModel":"Clinical Summary","EventType":"PatientQueryResponse"},"Summary":"ok"}"#)
    })
    .await;
    let forward = Recorder::ok().await;
    let h = Harness::start(&destination(&format!(
        "query_url = \"{}\"\nforward_url = \"{}\"",
        app.url("/query"),
        forward.url("/app")
    )))
    .await;
    let response = h.post("/redox", Some(TOKEN), QUERY).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["Summary"], "ok");
    let asked = &app.received()[0];
    assert_eq!(asked.body.as_ref(), QUERY.as_bytes());
    assert_eq!(asked.header("wharf-destination"), Some("Acme"));
    assert!(h.inbox().is_empty(), "queries are never kept");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(forward.count(), 0, "queries are never forwarded");
}

async fn meta_errors(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["Meta"]["DataModel"], "Clinical Summary");
    body["Meta"]["Errors"][0]["Text"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn without_query_url_the_answer_is_501_with_meta_errors() {
    let h = Harness::start(&destination("")).await;
    let response = h.post("/redox", Some(TOKEN), QUERY).await;
    assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
    assert!(meta_errors(response).await.contains("no query_url"));
}

#[tokio::test]
async fn a_failing_application_gives_its_status_with_meta_errors() {
    let app = Recorder::start(|_, _| Reply::status(500)).await;
    let h = Harness::start(&destination(&format!("query_url = \"{}\"", app.url("/q")))).await;
    let response = h.post("/redox", Some(TOKEN), QUERY).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(meta_errors(response).await.contains("HTTP 500"));
}

#[tokio::test]
async fn an_application_error_in_redox_shape_is_relayed_as_is() {
    let own = r#"{"Meta":{"DataModel":"Clinical Summary","Errors":[{"ID":"e1","Text":"patient not found","Type":"query","Module":"app"}]}}"#;
    let app = Recorder::start(move |_, _| Reply::json(404, own)).await;
    let h = Harness::start(&destination(&format!("query_url = \"{}\"", app.url("/q")))).await;
    let response = h.post("/redox", Some(TOKEN), QUERY).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.text().await.unwrap(), own);
}

#[tokio::test]
async fn a_slow_application_times_out_with_504() {
    let app = Recorder::start(|_, _| Reply::status(200).after(Duration::from_secs(5))).await;
    let h = Harness::start(&destination(&format!(
        "query_url = \"{}\"\nquery_timeout = \"500ms\"",
        app.url("/q")
    )))
    .await;
    let started = std::time::Instant::now();
    let response = h.post("/redox", Some(TOKEN), QUERY).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(meta_errors(response).await.contains("did not answer"));
}

#[tokio::test]
async fn an_unreachable_application_gives_502() {
    let parked = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = parked.local_addr().unwrap();
    drop(parked);
    let h = Harness::start(&destination(&format!("query_url = \"http://{addr}/q\""))).await;
    let response = h.post("/redox", Some(TOKEN), QUERY).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(meta_errors(response).await.contains("could not reach"));
}

#[tokio::test]
async fn queries_need_the_token_too() {
    let app = Recorder::ok().await;
    let h = Harness::start(&destination(&format!("query_url = \"{}\"", app.url("/q")))).await;
    assert_eq!(
        h.post("/redox", None, QUERY).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.post("/redox", Some("bad"), QUERY).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.count(), 0);
}
