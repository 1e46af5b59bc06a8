//! Ingestion and delivery: one log per destination, FIFO per destination under failure, the
//! retry ladder, attempts recorded, and what the destination receives.

use super::*;
use std::time::Duration;
use wharf_testkit::wait_until;

pub(crate) const SOURCE_KEY: &str = "source-key-0123456789abcdef-01234";
pub(crate) const TOKEN: &str = "right-token-123-0123456789abcdefg";

pub(crate) fn config() -> String {
    format!(
        "retry_ladder = [\"0s\", \"300ms\"]\ndelivery_timeout = \"2s\"\n[[sources]]\nname = \"EHR feed\"\napi_key = \"{SOURCE_KEY}\"\n"
    )
}

/// A destination endpoint: answers challenges for [`TOKEN`], and answers the first
/// `failures` messages with 500, then 200.
pub(crate) async fn endpoint(failures: usize) -> Recorder {
    let seen = std::sync::atomic::AtomicUsize::new(0);
    Recorder::start(move |_, r: &Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if let Some(challenge) = body["challenge"].as_str() {
            return Reply {
                status: if body["verification-token"] == TOKEN {
                    200
                } else {
                    403
                },
                content_type: "text/plain",
                body: challenge.as_bytes().to_vec(),
                delay: Duration::ZERO,
            };
        }
        let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < failures {
            Reply::json(500, "{\"error\":\"not now\"}")
        } else {
            Reply::status(200)
        }
    })
    .await
}

pub(crate) async fn verified_destination(engine: &Engine, endpoint: &Recorder) -> String {
    let id = create_destination(engine, &endpoint.url("/redox"), TOKEN, "POST").await;
    let (status, body) = engine
        .post(&format!("/platform/v1/destinations/{id}/verify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

pub(crate) async fn submit(engine: &Engine, destinations: &[&str], n: usize) -> reqwest::Response {
    let body = json!({
        "Meta": {
            "DataModel": "PatientAdmin", "EventType": "Arrival",
            "Destinations": destinations.iter().map(|d| json!({"ID": d})).collect::<Vec<_>>(),
        },
        "Patient": {"Number": n},
    });
    engine
        .client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(SOURCE_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(crate) fn messages(endpoint: &Recorder) -> Vec<Value> {
    endpoint
        .received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter(|v| v.get("Meta").is_some())
        .collect()
}

#[tokio::test]
async fn ingestion_needs_a_source_key_and_verified_known_destinations() {
    let engine = Engine::start_with(true, &config()).await;
    let url = format!("{}/endpoint", engine.base);
    let none = engine
        .client
        .post(&url)
        .json(&json!({"Meta": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = engine
        .client
        .post(&url)
        .bearer_auth(KEY)
        .json(&json!({"Meta": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.status(),
        StatusCode::UNAUTHORIZED,
        "a management key is not a source key"
    );

    let unverified = create_destination(&engine, "http://127.0.0.1:9/x", TOKEN, "POST").await;
    let response = submit(&engine, &[&unverified], 1).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert!(error(&body).contains("not verified"), "{body}");

    let response = submit(&engine, &["no-such-destination"], 1).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = submit(&engine, &[], 1).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (_, logs) = engine
        .get(&format!(
            "/platform/v1/organizations/{}/logs",
            org_id(&engine).await
        ))
        .await;
    assert_eq!(
        logs["payload"]["results"].as_array().unwrap().len(),
        0,
        "nothing was queued"
    );
}

pub(crate) async fn org_id(engine: &Engine) -> String {
    let (_, orgs) = engine.get("/platform/v1/organizations").await;
    orgs["payload"]["organizations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_failing_head_holds_its_queue_and_is_retried_on_the_ladder() {
    let engine = Engine::start_with(true, &config()).await;
    let failing = endpoint(3).await;
    let destination = verified_destination(&engine, &failing).await;
    let mut log_ids = Vec::new();
    for n in 0..3 {
        let response = submit(&engine, &[&destination], n).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        log_ids.push(body["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned());
    }
    assert!(wait_until(Duration::from_secs(20), || messages(&failing).len() >= 6).await);
    let got = messages(&failing);
    let numbers: Vec<i64> = got
        .iter()
        .map(|m| m["Patient"]["Number"].as_i64().unwrap())
        .collect();
    // Three failed attempts of the first message, then each message once, in order: nothing
    // behind the failing head was attempted.
    assert_eq!(numbers, [0, 0, 0, 0, 1, 2]);
    // Same Log ID on every retry, a new AttemptID each time, Source and EventDateTime filled.
    let first: Vec<_> = got[..4]
        .iter()
        .map(|m| m["Meta"]["Logs"][0].clone())
        .collect();
    assert!(first.iter().all(|l| l["ID"] == log_ids[0].as_str()));
    let attempts: std::collections::HashSet<_> =
        first.iter().map(|l| l["AttemptID"].to_string()).collect();
    assert_eq!(attempts.len(), 4);
    assert_eq!(got[0]["Meta"]["Source"]["Name"], "EHR feed");
    // Each copy names the one destination it goes to.
    assert!(
        got.iter()
            .all(|m| m["Meta"]["Destinations"] == json!([{"ID": destination, "Name": "Acme"}])),
        "{:?}",
        got[0]["Meta"]["Destinations"]
    );
    assert!(got[0]["Meta"]["EventDateTime"].is_string());
    let sent = &failing.received()[1];
    assert_eq!(sent.header("verification-token"), Some(TOKEN));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    let org = org_id(&engine).await;
    let mut log = Value::Null;
    for _ in 0..100 {
        log = engine
            .get(&format!(
                "/platform/v1/organizations/{org}/logs/{}",
                log_ids[0]
            ))
            .await
            .1;
        if log["payload"]["result"]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = &log["payload"]["result"];
    assert_eq!(log["status"], "succeeded", "{log}");
    assert_eq!(log["type"], "send");
    assert_eq!(log["destination"]["id"], destination.as_str());
    assert_eq!(log["destination"]["name"], "Acme");
    assert_eq!(log["source"]["name"], "EHR feed");
    assert_eq!(log["attempts"]["total"], 4);
    assert_eq!(log["attempts"]["latest"]["status"], "succeeded");
    assert_eq!(log["attempts"]["latest"]["id"], log["attemptList"][3]["id"]);
    let statuses: Vec<_> = log["attemptList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].clone())
        .collect();
    assert_eq!(statuses, ["failed", "failed", "failed", "succeeded"]);
    let codes: Vec<_> = log["attemptList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(500), json!(500), json!(200)]);
    assert!(
        log["attemptList"][0]["response"]
            .as_str()
            .unwrap()
            .contains("not now")
    );
    // The ladder: immediately after the first failure, then 300 ms between later tries.
    let started: Vec<time::OffsetDateTime> = log["attemptList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            time::OffsetDateTime::parse(
                a["attemptAt"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    assert!(
        started[2] - started[1] >= time::Duration::milliseconds(290),
        "{:?}",
        started
    );
    assert!(
        started[3] - started[2] >= time::Duration::milliseconds(290),
        "{:?}",
        started
    );
}

#[tokio::test]
async fn fan_out_makes_one_log_per_destination_and_queues_are_independent() {
    let engine = Engine::start_with(true, &config()).await;
    let broken = endpoint(usize::MAX).await;
    let healthy = endpoint(0).await;
    let a = verified_destination(&engine, &broken).await;
    let b = verified_destination(&engine, &healthy).await;
    let response = submit(&engine, &[&a, &b], 7).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Meta"]["Logs"].as_array().unwrap().len(), 2);
    for n in 8..10 {
        submit(&engine, &[&b], n).await;
    }
    // The healthy destination gets everything while the broken one's queue is held.
    assert!(wait_until(Duration::from_secs(10), || messages(&healthy).len() >= 3).await);
    let numbers: Vec<i64> = messages(&healthy)
        .iter()
        .map(|m| m["Patient"]["Number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [7, 8, 9]);
    let org = org_id(&engine).await;
    let (_, pending) = engine
        .get(&format!(
            "/platform/v1/organizations/{org}/logs?destinationId={a}&status=pending"
        ))
        .await;
    assert_eq!(pending["payload"]["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        pending["payload"]["results"][0]["destination"]["id"],
        a.as_str()
    );
    assert!(pending["payload"]["results"][0]["nextAttemptAt"].is_string());
    let (status, _) = engine
        .get(&format!(
            "/platform/v1/organizations/{org}/logs?status=LOST"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_operator_pause_holds_the_queue_until_resumed() {
    let engine = Engine::start_with(true, &config()).await;
    let healthy = endpoint(0).await;
    let destination = verified_destination(&engine, &healthy).await;
    let queue = format!("/platform/v1/destinations/{destination}/queue");
    let (_, paused) = engine.post(&format!("{queue}/pause"), json!({})).await;
    assert_eq!(paused["payload"]["queue"]["state"], "paused");
    assert_eq!(paused["payload"]["queue"]["reason"], "operator");
    submit(&engine, &[&destination], 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        messages(&healthy).is_empty(),
        "nothing is delivered from a paused queue"
    );
    let (_, state) = engine.get(&queue).await;
    assert_eq!(state["payload"]["queue"]["depth"], 1);
    let (_, resumed) = engine.post(&format!("{queue}/resume"), json!({})).await;
    assert_eq!(resumed["payload"]["queue"]["reason"], Value::Null);
    assert!(wait_until(Duration::from_secs(10), || messages(&healthy).len() == 1).await);
    let (status, _) = engine.get("/platform/v1/destinations/nope/queue").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn stop_moves_the_queue_on_and_resend_requeues_at_the_back() {
    let engine = Engine::start_with(true, &config()).await;
    // Refuses message number 0 for ever, accepts the others.
    let picky = Recorder::start(|_, r: &Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if let Some(challenge) = body["challenge"].as_str() {
            return Reply {
                status: 200,
                content_type: "text/plain",
                body: challenge.as_bytes().to_vec(),
                delay: Duration::ZERO,
            };
        }
        if body["Patient"]["Number"] == 0 {
            Reply::status(400)
        } else {
            Reply::status(200)
        }
    })
    .await;
    let destination = verified_destination(&engine, &picky).await;
    let first: Value = submit(&engine, &[&destination], 0)
        .await
        .json()
        .await
        .unwrap();
    let first = first["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned();
    submit(&engine, &[&destination], 1).await;
    assert!(wait_until(Duration::from_secs(10), || messages(&picky).len() >= 2).await);
    let (_, queue) = engine
        .get(&format!("/platform/v1/destinations/{destination}/queue"))
        .await;
    assert_eq!(queue["payload"]["queue"]["state"], "held");
    assert_eq!(queue["payload"]["queue"]["reason"], "delivery failing");
    assert_eq!(queue["payload"]["queue"]["headLogId"], first.as_str());
    assert!(
        messages(&picky).iter().all(|m| m["Patient"]["Number"] == 0),
        "message 1 waits behind the failing head"
    );

    let (status, stopped) = engine
        .post(&format!("/platform/v1/logs/{first}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stopped["payload"]["result"]["status"], "failed");
    assert!(
        wait_until(Duration::from_secs(10), || messages(&picky)
            .iter()
            .any(|m| m["Patient"]["Number"] == 1))
        .await
    );
    let (status, _) = engine
        .post(&format!("/platform/v1/logs/{first}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let before = messages(&picky).len();
    let (status, resent) = engine
        .post(&format!("/platform/v1/logs/{first}/resend"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resent["payload"]["result"]["status"], "pending");
    assert_eq!(resent["payload"]["result"]["id"], first.as_str());
    assert!(wait_until(Duration::from_secs(10), || messages(&picky).len() > before).await);
    let last = messages(&picky).pop().unwrap();
    assert_eq!(
        last["Meta"]["Logs"][0]["ID"],
        first.as_str(),
        "resent with the same Log ID"
    );
    let (status, _) = engine
        .post(&format!("/platform/v1/logs/{first}/resend"), json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a pending log is already queued"
    );
}

pub(crate) async fn query(engine: &Engine, destinations: &[&str]) -> reqwest::Response {
    let body = json!({"Meta": {"DataModel": "Clinical Summary", "EventType": "PatientQuery",
        "Destinations": destinations.iter().map(|d| json!({"ID": d})).collect::<Vec<_>>()},
        "Patient": {"Identifiers": []}});
    engine
        .client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(SOURCE_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn queries_are_relayed_synchronously_and_failures_come_back_as_meta_errors() {
    let engine = Engine::start_with(true, &config()).await;
    // Answers queries with a summary, unless the query's log is the second one it sees.
    let answering = Recorder::start(|n, r: &Received| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if let Some(challenge) = body["challenge"].as_str() {
            return Reply { status: 200, content_type: "text/plain", body: challenge.as_bytes().to_vec(), delay: Duration::ZERO };
        }
        if n == 2 { Reply::status(500) } else { Reply::json(200, r#"{"Meta":{"DataModel":"Clinical Summary","EventType":"PatientQueryResponse"},"Summary":"ok"}"#) }
    })
    .await;
    let destination = verified_destination(&engine, &answering).await;
    let response = query(&engine, &[&destination]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["Summary"], "ok");
    let asked: Value = serde_json::from_slice(&answering.received()[1].body).unwrap();
    assert!(
        asked["Meta"]["Logs"][0]["ID"].is_string(),
        "the query carries Meta.Logs"
    );

    // The destination answered an error status: 200 with Meta.Errors, as Redox answers.
    let response = query(&engine, &[&destination]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let failure: Value = response.json().await.unwrap();
    let failed = &failure["Meta"]["Errors"][0];
    assert!(
        failed["Text"].as_str().unwrap().contains("HTTP 500"),
        "{failure}"
    );
    assert_eq!(failed["Type"], "query", "{failure}");
    assert_eq!(failed["Module"], "Send", "{failure}");
    assert_eq!(failed["DestinationStatusCode"], 500, "{failure}");
    assert!(failed["Details"].is_string(), "{failure}");

    let second = verified_destination(&engine, &answering).await;
    let response = query(&engine, &[&destination, &second]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let org = org_id(&engine).await;
    let (_, logs) = engine
        .get(&format!("/platform/v1/organizations/{org}/logs"))
        .await;
    // Both relayed queries are logged as requests, newest first, and none is queued.
    let logs = logs["payload"]["results"].as_array().unwrap().clone();
    assert_eq!(logs.len(), 2);
    assert!(logs.iter().all(|l| l["type"] == "request"));
    assert_eq!(logs[0]["status"], "failed");
    assert_eq!(logs[1]["status"], "succeeded");
    let (_, queue) = engine
        .get(&format!("/platform/v1/destinations/{destination}/queue"))
        .await;
    assert_eq!(
        queue["payload"]["queue"]["depth"], 0,
        "queries are not queued"
    );
    let log_id = logs[1]["id"].as_str().unwrap();
    let (_, detail) = engine
        .get(&format!("/platform/v1/organizations/{org}/logs/{log_id}"))
        .await;
    assert_eq!(
        detail["payload"]["result"]["attemptList"][0]["statusCode"],
        200
    );
}

#[tokio::test]
async fn logs_can_be_searched() {
    let engine = Engine::start_with(true, &config()).await;
    let healthy = endpoint(0).await;
    let destination = verified_destination(&engine, &healthy).await;
    submit(&engine, &[&destination], 1).await;
    let org = org_id(&engine).await;
    let search = |q: &str| {
        let path = format!("/platform/v1/organizations/{org}/logs?{q}");
        let engine = &engine;
        async move { engine.get(&path).await }
    };
    let count = |v: &Value| {
        v["payload"]["results"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(usize::MAX)
    };
    assert_eq!(
        count(&search("dataModel=PatientAdmin&eventType=Arrival").await.1),
        1
    );
    assert_eq!(count(&search("dataModel=Results").await.1), 0);
    assert_eq!(
        count(&search("createdAfter=2000-01-01T00:00:00Z").await.1),
        1
    );
    assert_eq!(
        count(&search("createdBefore=2000-01-01T00:00:00Z").await.1),
        0
    );
    let (status, body) = search("createdAfter=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error(&body).contains("`createdAfter`") && error(&body).contains("ISO 8601"),
        "{body}"
    );
    let (status, _) = search("colour=blue").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(count(&search("type=send").await.1), 1);
    assert_eq!(count(&search("type=request").await.1), 0);
    // createdBefore takes the log created at that very moment.
    let (_, all) = search("").await;
    let created = all["payload"]["results"][0]["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        count(&search(&format!("createdBefore={created}")).await.1),
        1
    );

    // Offset paging, newest first, with relative links.
    submit(&engine, &[&destination], 2).await;
    submit(&engine, &[&destination], 3).await;
    let (status, first) = search("_count=2").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(count(&first), 2);
    let page = &first["meta"]["page"];
    assert_eq!(page["currentPage"], 1);
    assert_eq!(page["pageType"], "offset");
    assert_eq!(page["pageSize"], 2);
    assert_eq!(
        page["links"]["self"],
        format!("/organizations/{org}/logs?_page=1&_count=2")
    );
    assert_eq!(
        page["links"]["next"],
        format!("/organizations/{org}/logs?_page=2&_count=2")
    );
    assert_eq!(
        page["links"]["first"],
        format!("/organizations/{org}/logs?_page=1&_count=2")
    );
    let (_, second) = search("_page=2&_count=2").await;
    assert_eq!(count(&second), 1);
    assert!(second["meta"]["page"]["links"].get("next").is_none());
    assert_ne!(
        second["payload"]["results"][0]["id"],
        first["payload"]["results"][1]["id"]
    );
    let (_, clamped) = search("_count=500").await;
    assert_eq!(clamped["meta"]["page"]["pageSize"], 50);
    assert_eq!(count(&clamped), 3);
    let (status, _) = search("_page=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
