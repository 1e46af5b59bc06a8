//! What an operator relies on: `/metrics` names and values, `/healthz` and `/readyz`, alerts
//! when a queue pauses and recovers (to a local webhook and a local SMTP listener), and a
//! shutdown that finishes and records the delivery in flight.

use super::*;
use std::time::Duration;
use wharf_testkit::{SmtpListener, wait_until};

const SOURCE_KEY: &str = "source-key-0123456789abcdef-01234";
const TOKEN: &str = "ops-token-0123456789-0123456789ab";

fn sources() -> String {
    format!(
        "retry_ladder = [\"0s\", \"300ms\"]\ndelivery_timeout = \"5s\"\n[[sources]]\nname = \"EHR feed\"\napi_key = \"{SOURCE_KEY}\"\n"
    )
}

/// Answers challenges for [`TOKEN`]; answers messages 500 while `failing` is set, after
/// `delay`.
async fn endpoint(failing: Arc<AtomicBool>, delay: Duration) -> Recorder {
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
        if failing.load(Ordering::SeqCst) {
            Reply::json(500, "{\"error\":\"down\"}").after(delay)
        } else {
            Reply::status(200).after(delay)
        }
    })
    .await
}

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

async fn verified(engine: &Engine, endpoint: &Recorder) -> String {
    let id = create_destination(engine, &endpoint.url("/redox"), TOKEN, "POST").await;
    let (status, body) = engine
        .post(&format!("/platform/v1/destinations/{id}/verify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

async fn submit(engine: &Engine, destination: &str, n: usize) -> String {
    let response = engine
        .client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(SOURCE_KEY)
        .json(&json!({
            "Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival", "Destinations": [{"ID": destination}]},
            "Patient": {"Number": n},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned()
}

async fn text(engine: &Engine, path: &str) -> (StatusCode, String) {
    let r = engine
        .client
        .get(format!("{}{path}", engine.base))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let engine = Engine::start_with(true, &sources()).await;
    assert_eq!(text(&engine, "/healthz").await.0, StatusCode::OK);
    let (status, body) = text(&engine, "/readyz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ready"));

    let failing = Arc::new(AtomicBool::new(false));
    let ep = endpoint(failing.clone(), Duration::ZERO).await;
    let id = verified(&engine, &ep).await;
    submit(&engine, &id, 1).await;
    assert!(wait_until(Duration::from_secs(10), || ep.count() >= 2).await);
    failing.store(true, Ordering::SeqCst);
    submit(&engine, &id, 2).await;
    submit(&engine, &id, 3).await;
    assert!(wait_until(Duration::from_secs(10), || ep.count() >= 3).await);
    let wrong = engine
        .client
        .get(format!("{}/platform/v1/organizations", engine.base))
        .bearer_auth("not-a-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let expected_lines = [
        r#"wharf_http_requests_total{route="/endpoint",status="200"} 3"#.to_owned(),
        r#"wharf_auth_failures_total{reason="wrong_api_key"} 1"#.to_owned(),
        r#"wharf_delivery_attempts_total{outcome="succeeded"} 1"#.to_owned(),
        r#"wharf_delivery_attempt_duration_seconds_count{outcome="succeeded"} 1"#.to_owned(),
        format!(r#"wharf_queue_depth{{destination="{id}"}} 2"#),
        r#"wharf_queues{state="held"} 1"#.to_owned(),
        r#"wharf_queues{state="paused"} 0"#.to_owned(),
        "wharf_engine_commit_batch_size_count".to_owned(),
    ];
    // The endpoint saw the failing attempt before the engine recorded it: poll until the
    // recorded state shows (a failed attempt counts as held only once it is committed).
    let mut metrics = String::new();
    for _ in 0..100 {
        let (status, text) = text(&engine, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        metrics = text;
        if expected_lines.iter().all(|e| metrics.contains(e.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for expected in expected_lines {
        assert!(
            metrics.contains(&expected),
            "missing {expected:?} in\n{metrics}"
        );
    }
    assert!(metrics.contains(r#"wharf_delivery_attempts_total{outcome="failed"}"#));
    assert!(!metrics.contains(TOKEN) && !metrics.contains(KEY));
}

#[tokio::test]
async fn a_paused_queue_and_its_recovery_alert_by_webhook_and_email() {
    let hook = Recorder::ok().await;
    let smtp = SmtpListener::start().await;
    let engine = Engine::start_with(
        true,
        &format!(
            "alert_environments = [\"Development\"]\nalert_webhook_url = \"{}\"\nalert_email = [\"oncall@acme.example\"]\n{}\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"wharf@acme.example\"\nsecurity = \"none\"\n",
            hook.url("/alerts"),
            sources(),
            smtp.addr.port()
        ),
    )
    .await;
    let failing = Arc::new(AtomicBool::new(true));
    let ep = endpoint(failing.clone(), Duration::ZERO).await;
    let id = verified(&engine, &ep).await;
    let log = submit(&engine, &id, 1).await;
    assert!(
        wait_until(Duration::from_secs(10), || hook.count() >= 1).await,
        "paused alert"
    );
    // Retries keep failing: no second paused alert.
    assert!(wait_until(Duration::from_secs(10), || ep.count() >= 4).await);
    assert_eq!(hook.count(), 1);
    failing.store(false, Ordering::SeqCst);
    assert!(
        wait_until(Duration::from_secs(10), || hook.count() >= 2).await,
        "recovered alert"
    );

    let events: Vec<Value> = hook
        .received()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "queue.paused");
    assert_eq!(events[0]["destination"]["id"], id.as_str());
    assert_eq!(events[0]["environment"], "Development");
    assert_eq!(events[0]["logId"], log.as_str());
    assert!(
        events[0]["reason"].as_str().unwrap().contains("500"),
        "{}",
        events[0]
    );
    assert_eq!(events[1]["event"], "queue.recovered");
    assert_eq!(events[0]["organization"], "Acme Health");

    assert!(
        wait_until(Duration::from_secs(10), || smtp.mails().len() >= 2).await,
        "two emails"
    );
    let mails = smtp.mails();
    assert_eq!(mails[0].from, "wharf@acme.example");
    assert_eq!(mails[0].to, vec!["oncall@acme.example".to_owned()]);
    assert!(
        mails[0].data.contains("queue paused: Acme"),
        "{}",
        mails[0].data
    );
    assert!(
        mails[1].data.contains("queue recovered: Acme"),
        "{}",
        mails[1].data
    );
    assert!(!mails[0].data.contains(TOKEN));
}

/// The config's paused-queue alert is a `queue-paused` rule: paused through the API, it stays
/// silent (a queue moving meanwhile clears its state), and active again it tells of the next
/// pause.
#[tokio::test]
async fn the_configs_paused_queue_alert_is_a_rule_an_operator_can_pause() {
    let hook = Recorder::ok().await;
    let engine = Engine::start_with(
        true,
        &format!(
            "alert_environments = [\"Development\"]\nalert_webhook_url = \"{}\"\n{}",
            hook.url("/alerts"),
            sources()
        ),
    )
    .await;
    let failing = Arc::new(AtomicBool::new(true));
    let ep = endpoint(failing.clone(), Duration::ZERO).await;
    let id = verified(&engine, &ep).await;
    let dev = engine.environment("Development").await;
    let alerts = format!("/platform/v2/environments/{dev}/alerts");
    let (_, listed) = engine.get(&alerts).await;
    let rule = listed["payload"]["alerts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    submit(&engine, &id, 1).await;
    assert!(wait_until(Duration::from_secs(10), || hook.count() == 1).await);
    let (status, _) = engine
        .patch(&format!("{alerts}/{rule}"), json!({"status": "paused"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    failing.store(false, Ordering::SeqCst);
    let mut breached = Value::Null;
    for _ in 0..100 {
        let (_, read) = engine.get(&format!("{alerts}/{rule}")).await;
        breached = read["payload"]["alert"]["breached"].clone();
        if breached == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(breached, false, "the queue moved again");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.count(), 1, "a paused rule sends nothing");

    let (status, _) = engine
        .patch(&format!("{alerts}/{rule}"), json!({"status": "active"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    failing.store(true, Ordering::SeqCst);
    let log = submit(&engine, &id, 2).await;
    assert!(
        wait_until(Duration::from_secs(10), || hook.count() == 2).await,
        "the next pause is told"
    );
    let last: Value = serde_json::from_slice(&hook.received()[1].body).unwrap();
    assert_eq!(last["event"], "queue.paused");
    assert_eq!(last["logId"], log.as_str());
    assert_eq!(last["alert"]["id"], rule.as_str());
}

#[tokio::test]
async fn development_queues_do_not_alert_by_default() {
    let hook = Recorder::ok().await;
    let engine = Engine::start_with(
        true,
        &format!(
            "alert_webhook_url = \"{}\"\n{}",
            hook.url("/alerts"),
            sources()
        ),
    )
    .await;
    let ep = endpoint(Arc::new(AtomicBool::new(true)), Duration::ZERO).await;
    let id = verified(&engine, &ep).await;
    submit(&engine, &id, 1).await;
    assert!(wait_until(Duration::from_secs(10), || ep.count() >= 3).await);
    assert_eq!(hook.count(), 0, "only Production alerts unless configured");
}

#[tokio::test]
async fn shutdown_finishes_and_records_the_delivery_in_flight() {
    let mut engine = Engine::start_with(true, &sources()).await;
    let ep = endpoint(Arc::new(AtomicBool::new(false)), Duration::from_millis(800)).await;
    let id = verified(&engine, &ep).await;
    let log = submit(&engine, &id, 1).await;
    // The delivery is in flight (the endpoint takes 800 ms) when shutdown begins.
    assert!(wait_until(Duration::from_secs(5), || ep.count() >= 2).await);
    let running = engine.running.take().unwrap();
    running.shutdown().await;

    // Reopen the same data directory: the attempt was recorded before the engine stopped.
    let store = engine.store();
    let (record, attempts) = store.log(&log).unwrap().unwrap();
    assert_eq!(
        record.status,
        wharf_store::engine::LogStatus::Succeeded,
        "the attempt in flight was finished and recorded"
    );
    assert_eq!(attempts.len(), 1);
}
