//! Issue 29, traffic alert rules through the API (`/platform/v2/environments/{id}/alerts`):
//! created, read, listed, changed, paused and deleted; evaluated by the engine on its
//! schedule, notifying once when a rule goes into breach and once when it recovers; ignored
//! weekdays respected; every refusal saying what to do.

use super::delivery::{config, endpoint, messages, verified_destination};
use super::*;
use std::time::Duration;
use wharf_testkit::wait_until;

fn events(hook: &Recorder) -> Vec<Value> {
    hook.received()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .collect()
}

#[tokio::test]
async fn an_error_threshold_rule_fires_once_and_recovers_once() {
    let engine =
        Engine::start_with(true, &format!("alert_interval = \"200ms\"\n{}", config())).await;
    let hook = Recorder::start(|_, _: &Received| Reply::status(200)).await;
    let failing = endpoint(usize::MAX).await;
    let destination = verified_destination(&engine, &failing).await;
    let dev = engine.environment("Development").await;
    let alerts = format!("/platform/v2/environments/{dev}/alerts");

    // Every weekday ignored: this rule would breach, but never evaluates.
    let (status, _) = engine
        .post(
            &alerts,
            json!({"name": "Never on any day", "alertType": {"code": "error-threshold"},
                   "alertConfiguration": {"alertLookbackISODuration": "PT1H", "errorThreshold": 1},
                   "notification": {"type": "webhook", "configuration": {"url": hook.url("/ignored")}},
                   "ignoreDaysOfWeek": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"],
                   "timeZone": "America/Adak"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) = engine
        .post(
            &alerts,
            json!({"name": "Failures to Acme", "alertType": {"code": "error-threshold"},
                   "alertConfiguration": {"alertLookbackISODuration": "PT1H", "errorThreshold": 1},
                   "notification": {"type": "webhook", "configuration": {"url": hook.url("/alerts")}},
                   "ignoreDaysOfWeek": [], "ignoreHolidays": false, "timeZone": "America/Chicago",
                   "subscriptions": [{"id": 66426}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let alert = &created["payload"]["alert"];
    let id = alert["id"].as_str().unwrap().to_owned();
    assert_eq!(alert["alertType"]["code"], "error-threshold");
    assert_eq!(
        alert["alertConfiguration"]["alertLookbackISODuration"],
        "PT1H"
    );
    assert_eq!(alert["alertConfiguration"]["errorThreshold"], 1);
    assert_eq!(alert["environment"]["id"], dev);
    assert_eq!(alert["organization"]["name"], "Acme Health");
    assert_eq!(alert["timeZone"], "America/Chicago");
    assert_eq!(alert["status"], "active");
    assert_eq!(alert["subscriptions"][0]["id"], 66426);
    assert_eq!(alert["breached"], false);

    // One failed message breaches it: one notice, not one per evaluation.
    let sent = super::log_search::send_patient(&engine, &destination, "Ann One").await;
    assert!(wait_until(Duration::from_secs(10), || !messages(&failing).is_empty()).await);
    let (status, _) = engine
        .post(&format!("/platform/v1/logs/{sent}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(wait_until(Duration::from_secs(10), || !events(&hook).is_empty()).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let fired = events(&hook);
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0]["event"], "alert.fired");
    assert_eq!(fired[0]["alert"]["id"], id);
    assert_eq!(fired[0]["counts"]["failed"], 1);
    assert_eq!(fired[0]["environment"]["environmentFlag"], "Development");
    assert!(
        hook.received().iter().all(|r| r.path == "/alerts"),
        "the ignored rule never ran"
    );
    let (_, read) = engine.get(&format!("{alerts}/{id}")).await;
    assert_eq!(read["payload"]["alert"]["breached"], true);

    // A higher threshold: it recovers, once.
    let (status, changed) = engine
        .patch(
            &format!("{alerts}/{id}"),
            json!({"alertConfiguration": {"alertLookbackISODuration": "PT1H", "errorThreshold": 5}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        changed["payload"]["alert"]["name"], "Failures to Acme",
        "unchanged fields kept"
    );
    assert!(wait_until(Duration::from_secs(10), || events(&hook).len() == 2).await);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let all = events(&hook);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["event"], "alert.recovered");

    // Listed, paused, deleted.
    let (_, listed) = engine.get(&alerts).await;
    assert_eq!(listed["payload"]["alerts"].as_array().unwrap().len(), 2);
    let (_, paused) = engine
        .patch(&format!("{alerts}/{id}"), json!({"status": "paused"}))
        .await;
    assert_eq!(paused["payload"]["alert"]["status"], "paused");
    let (status, _) = engine
        .call(reqwest::Method::DELETE, &format!("{alerts}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = engine.get(&format!("{alerts}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = engine.get("/platform/v2/environments/nope/alerts").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn alert_rules_refuse_what_they_cannot_evaluate() {
    let engine = Engine::start_with(true, &config()).await;
    let dev = engine.environment("Development").await;
    let alerts = format!("/platform/v2/environments/{dev}/alerts");
    let base = || {
        json!({"name": "r", "alertType": {"code": "no-traffic"},
               "alertConfiguration": {"alertLookbackISODuration": "PT30M"},
               "notification": {"type": "webhook", "configuration": {"url": "https://hooks.example.com/a"}}})
    };
    let (status, ok) = engine.post(&alerts, base()).await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert_eq!(ok["payload"]["alert"]["timeZone"], "UTC");
    // Redox's create example spells the type {"code": ...}: taken too.
    let mut coded = base();
    coded["notification"]["type"] = json!({"code": "webhook"});
    assert_eq!(engine.post(&alerts, coded).await.0, StatusCode::OK);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"alertType": {"code": "quiet"}}),
            "is not one of no-traffic",
        ),
        (
            json!({"alertConfiguration": {"alertLookbackISODuration": "12 hours"}}),
            "ISO 8601 duration",
        ),
        (
            json!({"alertType": {"code": "error-threshold"}}),
            "`alertConfiguration.errorThreshold` is required",
        ),
        (
            json!({"alertType": {"code": "low-traffic"}, "alertConfiguration": {"alertLookbackISODuration": "PT1H", "trafficThreshold": 0}}),
            "at least 1",
        ),
        (json!({"timeZone": "Mars/Olympus"}), "IANA time zone"),
        (json!({"ignoreDaysOfWeek": ["FUNDAY"]}), "not a weekday"),
        (json!({"status": "snoozed"}), "active, paused"),
        (
            json!({"notification": {"type": "email", "configuration": {"to": ["a@example.com"]}}}),
            "[smtp]",
        ),
        (
            json!({"notification": {"type": "webhook", "configuration": {"url": "ftp://x"}}}),
            "http(s) URL",
        ),
        (
            json!({"notification": {"type": "pager", "configuration": {}}}),
            "email, webhook",
        ),
        (json!({"name": ""}), "`name`"),
        (json!({"colour": "red"}), "colour"),
    ];
    for (change, says) in cases {
        let mut body = base();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = engine.post(&alerts, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(error(&answer).contains(says), "{says} in {answer}");
    }
    let (status, answer) = engine.post(&alerts, json!({"name": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error(&answer).contains("`alertType` is required"),
        "{answer}"
    );
}
