//! Synchronous queries relayed to the application (docs/PROTOCOL.md section 6).

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

/// A body of `data_model` / `event_type` with a Redox log id of its own.
fn message_of(data_model: &str, event_type: &str, log_id: &str) -> String {
    serde_json::json!({
        "Meta": {
            "DataModel": data_model,
            "EventType": event_type,
            "Logs": [{"ID": log_id, "AttemptID": uuid::Uuid::new_v4().to_string()}],
        },
        "Patient": {"Identifiers": [{"ID": "0000000001", "IDType": "MR"}]},
    })
    .to_string()
}

/// The application's answer to a question: the matching response event type of the same data
/// model (HTML for SSO Sign-on, which has none).
fn answer_to(question: &[u8]) -> Reply {
    let asked: serde_json::Value = serde_json::from_slice(question).unwrap();
    let data_model = asked["Meta"]["DataModel"].as_str().unwrap();
    let event_type = asked["Meta"]["EventType"].as_str().unwrap();
    let entry = wharf_protocol::envelope::sync_query(data_model, event_type)
        .unwrap_or_else(|| panic!("the application was asked {data_model} {event_type}"));
    match entry.response_event_type {
        Some(response) => Reply::json(
            200,
            &serde_json::json!({
                "Meta": {"DataModel": data_model, "EventType": response},
                "Answer": format!("{data_model} {event_type}"),
            })
            .to_string(),
        ),
        None => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: b"<html><body>signed on</body></html>".to_vec(),
            delay: Duration::ZERO,
        },
    }
}

/// Every synchronous event type of Redox's data model reference (the protocol crate's
/// `SYNC_QUERIES`) is relayed to query_url and answered in the same HTTP response, with the
/// application's answer; none is kept or forwarded. Close notifications are still kept.
#[tokio::test]
async fn every_synchronous_event_type_is_relayed_and_answered_at_once() {
    use wharf_protocol::envelope::SYNC_QUERIES;
    let app = Recorder::start(|_, asked| answer_to(&asked.body)).await;
    let forward = Recorder::ok().await;
    let h = Harness::start(&destination(&format!(
        "query_url = \"{}\"\nforward_url = \"{}\"",
        app.url("/query"),
        forward.url("/app")
    )))
    .await;

    for (i, entry) in SYNC_QUERIES.iter().enumerate() {
        let what = format!("{} {}", entry.data_model, entry.event_type);
        let question = message_of(entry.data_model, entry.event_type, &format!("q{i}"));
        let response = h.post("/redox", Some(TOKEN), question.clone()).await;
        assert_eq!(response.status(), StatusCode::OK, "{what}");
        assert_eq!(app.count(), i + 1, "{what} reached the application");
        let asked = &app.received()[i];
        assert_eq!(asked.path, "/query", "{what}");
        assert_eq!(asked.body.as_ref(), question.as_bytes(), "{what}");
        match entry.response_event_type {
            Some(answer) => {
                assert_eq!(
                    response.headers()["content-type"],
                    "application/json",
                    "{what}"
                );
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["Meta"]["EventType"], answer, "{what}");
                assert_eq!(body["Meta"]["DataModel"], entry.data_model, "{what}");
                assert_eq!(body["Answer"], what.as_str());
                assert!(body.get("messageId").is_none(), "{what} was not kept");
            }
            None => {
                assert!(
                    response.headers()["content-type"]
                        .to_str()
                        .unwrap()
                        .starts_with("text/html"),
                    "{what}"
                );
                assert!(response.text().await.unwrap().contains("signed on"));
            }
        }
    }
    assert!(h.inbox().is_empty(), "no query is kept in the inbox");

    // Close relatives of the queries are notifications: kept, acknowledged with a message id,
    // forwarded, and never put to the application as questions.
    let mut notifications: Vec<(&str, &str)> = vec![
        ("Scheduling", "New"),
        ("Scheduling", "PushSlots"),
        ("PatientAdmin", "Arrival"),
        ("Clinical Summary", "PatientPush"),
        ("Referral", "AuthReview"),
        ("Results", "New"),
    ];
    notifications.extend(
        SYNC_QUERIES
            .iter()
            .filter_map(|q| q.response_event_type.map(|r| (q.data_model, r))),
    );
    for (i, (data_model, event_type)) in notifications.iter().enumerate() {
        let body = message_of(data_model, event_type, &format!("n{i}"));
        let response = h.post("/redox", Some(TOKEN), body).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{data_model} {event_type}"
        );
        let ack: serde_json::Value = response.json().await.unwrap();
        assert!(
            ack["messageId"].is_string(),
            "{data_model} {event_type} was kept: {ack}"
        );
    }
    assert_eq!(app.count(), SYNC_QUERIES.len(), "no notification was asked");
    let kept = h.inbox();
    assert_eq!(kept.len(), notifications.len());
    assert!(
        wharf_testkit::wait_until(WAIT, || forward.count() == notifications.len()).await,
        "every notification was forwarded, and only those: {}",
        forward.count()
    );
}
