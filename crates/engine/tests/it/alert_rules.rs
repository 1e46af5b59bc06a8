//! Issue 29, traffic alert rules through the API (`/platform/v2/environments/{id}/alerts`):
//! created, read, listed, changed, paused and deleted; evaluated by the engine on its
//! schedule, notifying once when a rule goes into breach and once when it recovers; ignored
//! weekdays respected; every refusal saying what to do. Alert links
//! (`/platform/v2/environments/{id}/alertLinks`) apply a rule to subscriptions: a linked rule
//! counts only its active links' logs, an unlinked one its whole environment's. A
//! `queue-paused` rule (Wharf's; the config's paused-queue alerts are rules of this type)
//! notifies within seconds when a queue pauses and when it moves again, once each.

use super::delivery::{config, endpoint, messages, verified_destination};
use super::routing::{arrival, create_source, send, subscribe};
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
                   "ignoreDaysOfWeek": [], "ignoreHolidays": false, "timeZone": "America/Chicago"}),
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
    assert_eq!(alert["alertLinks"], json!([]));
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

fn webhook_rule(name: &str, url: String) -> Value {
    json!({"name": name, "alertType": {"code": "error-threshold"},
           "alertConfiguration": {"alertLookbackISODuration": "PT1H", "errorThreshold": 1},
           "notification": {"type": "webhook", "configuration": {"url": url}}})
}

async fn create_rule(engine: &Engine, alerts: &str, body: Value) -> String {
    let (status, created) = engine.post(alerts, body).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created["payload"]["alert"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends one message from `key` to `destination` and stops it once its first delivery failed:
/// one failed log of that destination's subscription.
async fn fail_one(engine: &Engine, key: &str, destination: &str, failing: &Recorder) {
    let before = messages(failing).len();
    let (status, answer) = send(engine, key, arrival("Ann", &[destination])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let log = answer["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned();
    assert!(wait_until(Duration::from_secs(10), || messages(failing).len() > before).await);
    let (status, _) = engine
        .post(&format!("/platform/v1/logs/{log}/stop"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

fn fired_paths(hook: &Recorder) -> Vec<String> {
    let mut paths: Vec<String> = hook.received().iter().map(|r| r.path.clone()).collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn a_linked_rule_watches_only_its_active_links_and_an_unlinked_one_the_environment() {
    let engine =
        Engine::start_with(true, &format!("alert_interval = \"200ms\"\n{}", config())).await;
    let hook = Recorder::start(|_, _: &Received| Reply::status(200)).await;
    let (failing_a, failing_b) = (endpoint(usize::MAX).await, endpoint(usize::MAX).await);
    let a = verified_destination(&engine, &failing_a).await;
    let b = verified_destination(&engine, &failing_b).await;
    let dev = engine.environment("Development").await;
    let (source, key) = create_source(&engine, &dev, "Clinic feed").await;
    let (to_a, to_b) = (
        subscribe(&engine, &dev, &source, &a).await,
        subscribe(&engine, &dev, &source, &b).await,
    );
    let alerts = format!("/platform/v2/environments/{dev}/alerts");
    let links = format!("/platform/v2/environments/{dev}/alertLinks");
    let everything = create_rule(&engine, &alerts, webhook_rule("All", hook.url("/all"))).await;
    let only_b = create_rule(&engine, &alerts, webhook_rule("B", hook.url("/b"))).await;
    let paused_a = create_rule(&engine, &alerts, webhook_rule("A", hook.url("/a"))).await;
    let link = |alert: &str, subscription: i64| json!({"assignment": {"id": alert, "kind": "alert"}, "subscription": {"id": subscription}});
    let (status, linked) = engine.post(&links, link(&only_b, to_b)).await;
    assert_eq!(status, StatusCode::OK, "{linked}");
    let (status, a_link) = engine.post(&links, link(&paused_a, to_a)).await;
    assert_eq!(status, StatusCode::OK, "{a_link}");
    let a_link = a_link["payload"]["alertLink"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, paused) = engine
        .patch(&format!("{links}/{a_link}"), json!({"status": "paused"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["payload"]["alertLink"]["status"], "paused");

    // A failure through A: the unlinked rule (the whole environment) fires; the rule linked
    // to B does not, nor the one whose only link (to A) is paused.
    fail_one(&engine, &key, &a, &failing_a).await;
    assert!(wait_until(Duration::from_secs(10), || !hook.received().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fired_paths(&hook), ["/all"]);
    let (_, read) = engine.get(&format!("{alerts}/{everything}")).await;
    assert_eq!(read["payload"]["alert"]["breached"], true);

    // The paused link made active: that rule sees A's failure now.
    let (status, _) = engine
        .patch(&format!("{links}/{a_link}"), json!({"status": "active"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(wait_until(Duration::from_secs(10), || hook.received().len() == 2).await);
    assert_eq!(fired_paths(&hook), ["/a", "/all"]);

    // A failure through B: the rule linked to B fires, once.
    fail_one(&engine, &key, &b, &failing_b).await;
    assert!(wait_until(Duration::from_secs(10), || hook.received().len() == 3).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fired_paths(&hook), ["/a", "/all", "/b"]);
    let body: Value = serde_json::from_slice(
        &hook
            .received()
            .iter()
            .find(|r| r.path == "/b")
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body["alert"]["id"], only_b);
    assert_eq!(body["counts"]["failed"], 1, "B's failure only, not A's");
}

#[tokio::test]
async fn alert_links_are_created_listed_paused_and_deleted_as_redox_shapes_them() {
    let engine = Engine::start_with(true, &config()).await;
    let target = endpoint(0).await;
    let destination = verified_destination(&engine, &target).await;
    let dev = engine.environment("Development").await;
    let (source, _) = create_source(&engine, &dev, "Clinic feed").await;
    let subscription = subscribe(&engine, &dev, &source, &destination).await;
    let alerts = format!("/platform/v2/environments/{dev}/alerts");
    let links = format!("/platform/v2/environments/{dev}/alertLinks");
    let rule = create_rule(
        &engine,
        &alerts,
        webhook_rule("r", "https://hooks.example.com/a".into()),
    )
    .await;

    // Redox's example writes the subscription id as a string: taken too.
    let (status, created) = engine
        .post(
            &links,
            json!({"assignment": {"id": rule, "kind": "alert"},
                   "subscription": {"id": subscription.to_string()}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let link = &created["payload"]["alertLink"];
    let id = link["id"].as_str().unwrap().to_owned();
    assert_eq!(link["assignment"], json!({"id": rule, "kind": "alert"}));
    assert_eq!(link["subscription"]["id"], subscription);
    assert_eq!(link["status"], "active");
    let (_, again) = engine
        .post(
            &links,
            json!({"assignment": {"id": rule}, "subscription": {"id": subscription}}),
        )
        .await;
    assert_eq!(again["payload"]["alertLink"]["id"], id, "one link per pair");
    let (_, listed) = engine.get(&links).await;
    assert_eq!(listed["payload"]["alertLinks"].as_array().unwrap().len(), 1);
    let (_, read) = engine.get(&format!("{alerts}/{rule}")).await;
    assert_eq!(read["payload"]["alert"]["alertLinks"][0]["id"], id);
    let (_, all) = engine.get(&alerts).await;
    assert_eq!(all["payload"]["alerts"][0]["alertLinks"][0]["id"], id);
    let (status, one) = engine.get(&format!("{links}/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one["payload"]["alertLink"]["subscription"]["id"],
        subscription
    );

    // Paused (Redox's update body, with the link's own assignment and subscription).
    let (status, paused) = engine
        .patch(
            &format!("{links}/{id}"),
            json!({"assignment": {"id": rule, "kind": "alert"},
                   "subscription": {"id": subscription}, "status": "paused"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["payload"]["alertLink"]["status"], "paused");

    // Refusals, each saying what to do.
    let prod = engine.environment("Production").await;
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"subscription": {"id": subscription}}),
            StatusCode::BAD_REQUEST,
            "`assignment` is required",
        ),
        (
            json!({"assignment": {"id": rule}}),
            StatusCode::BAD_REQUEST,
            "`subscription` is required",
        ),
        (
            json!({"assignment": {"id": rule, "kind": "filter"}, "subscription": {"id": subscription}}),
            StatusCode::BAD_REQUEST,
            "is not alert",
        ),
        (
            json!({"assignment": {"id": rule}, "subscription": {"id": "sixty"}}),
            StatusCode::BAD_REQUEST,
            "is not a subscription id",
        ),
        (
            json!({"assignment": {"id": rule}, "subscription": {"id": subscription}, "status": "snoozed"}),
            StatusCode::BAD_REQUEST,
            "active, paused",
        ),
        (
            json!({"assignment": {"id": "no-such-alert"}, "subscription": {"id": subscription}}),
            StatusCode::NOT_FOUND,
            "no-such-alert",
        ),
        (
            json!({"assignment": {"id": rule}, "subscription": {"id": 999999}}),
            StatusCode::NOT_FOUND,
            "999999",
        ),
    ];
    for (body, status, says) in cases {
        let (got, answer) = engine.post(&links, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(error(&answer).contains(says), "{says} in {answer}");
    }
    // A subscription of another environment.
    let prod_rule = create_rule(
        &engine,
        &format!("/platform/v2/environments/{prod}/alerts"),
        webhook_rule("p", "https://hooks.example.com/p".into()),
    )
    .await;
    let (status, answer) = engine
        .post(
            &format!("/platform/v2/environments/{prod}/alertLinks"),
            json!({"assignment": {"id": prod_rule}, "subscription": {"id": subscription}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(error(&answer).contains("another environment"), "{answer}");
    // A link is not moved.
    let (status, answer) = engine
        .patch(
            &format!("{links}/{id}"),
            json!({"subscription": {"id": subscription + 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error(&answer).contains("delete the link"), "{answer}");
    // Another environment's path does not see it.
    let (status, _) = engine
        .get(&format!("/platform/v2/environments/{prod}/alertLinks/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Deleted: Redox's message; the rule stays. Deleting a rule takes its links.
    let (status, deleted) = engine
        .call(reqwest::Method::DELETE, &format!("{links}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        deleted["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("deleted"),
        "{deleted}"
    );
    let (status, _) = engine.get(&format!("{links}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = engine.get(&format!("{alerts}/{rule}")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, relinked) = engine
        .post(
            &links,
            json!({"assignment": {"id": rule}, "subscription": {"id": subscription}}),
        )
        .await;
    let relinked = relinked["payload"]["alertLink"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = engine
        .call(reqwest::Method::DELETE, &format!("{alerts}/{rule}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = engine.get(&format!("{links}/{relinked}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_queue_paused_rule_notifies_once_when_a_queue_pauses_and_once_when_it_moves_again() {
    // The schedule's default minute: the notices below come from the deliveries themselves.
    let engine = Engine::start_with(true, &config()).await;
    let hook = Recorder::start(|_, _: &Received| Reply::status(200)).await;
    let failing = endpoint(3).await;
    let destination = verified_destination(&engine, &failing).await;
    let dev = engine.environment("Development").await;
    let alerts = format!("/platform/v2/environments/{dev}/alerts");
    let (status, created) = engine
        .post(
            &alerts,
            json!({"name": "Stuck queues", "alertType": {"code": "queue-paused"},
                   "notification": {"type": "webhook", "configuration": {"url": hook.url("/queues")}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let alert = &created["payload"]["alert"];
    let id = alert["id"].as_str().unwrap().to_owned();
    assert_eq!(alert["alertType"]["code"], "queue-paused");
    assert_eq!(
        alert["alertConfiguration"],
        json!({"alertLookbackISODuration": "PT1M"}),
        "no window needed; the one answered is unused"
    );
    assert_eq!(alert["breached"], false);
    let mut paused_rule = webhook_rule("Paused rule", hook.url("/paused-rule"));
    paused_rule["alertType"] = json!({"code": "queue-paused"});
    paused_rule["status"] = json!("paused");
    create_rule(&engine, &alerts, paused_rule).await;

    // Three failures, then accepted: one notice when the queue pauses, one when it moves.
    let log = super::log_search::send_patient(&engine, &destination, "Ann One").await;
    assert!(
        wait_until(Duration::from_secs(5), || !events(&hook).is_empty()).await,
        "the paused notice within seconds, not at the next scheduled evaluation"
    );
    let (_, read) = engine.get(&format!("{alerts}/{id}")).await;
    assert_eq!(read["payload"]["alert"]["breached"], true);
    assert!(wait_until(Duration::from_secs(10), || events(&hook).len() >= 2).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = events(&hook);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(messages(&failing).len(), 4, "three failures and a success");
    assert_eq!(all[0]["event"], "queue.paused");
    assert_eq!(all[0]["alert"]["id"], id);
    assert_eq!(all[0]["alert"]["alertType"]["code"], "queue-paused");
    assert_eq!(all[0]["destination"]["id"], destination);
    assert_eq!(all[0]["environment"], "Development");
    assert_eq!(all[0]["logId"], log);
    assert!(
        all[0]["reason"].as_str().unwrap().contains("500"),
        "{}",
        all[0]
    );
    assert_eq!(all[1]["event"], "queue.recovered");
    assert_eq!(all[1]["logId"], log);
    assert!(all[1].get("reason").is_none(), "{}", all[1]);
    assert!(
        hook.received().iter().all(|r| r.path == "/queues"),
        "the paused rule never notified"
    );
    let (_, read) = engine.get(&format!("{alerts}/{id}")).await;
    assert_eq!(read["payload"]["alert"]["breached"], false);

    // A window-less type still refuses what it cannot use.
    let (status, refused) = engine
        .post(
            &alerts,
            json!({"name": "Bad", "alertType": {"code": "queue-pause"},
                   "notification": {"type": "webhook", "configuration": {"url": hook.url("/x")}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused.to_string().contains("queue-paused"), "{refused}");
}

#[tokio::test]
async fn the_configs_paused_queue_alerts_are_queue_paused_rules_made_once_and_kept_in_step() {
    let hook = Recorder::start(|_, _: &Received| Reply::status(200)).await;
    let settings = |url: &str| {
        format!(
            "alert_environments = [\"Development\"]\nalert_webhook_url = \"{url}\"\n{}",
            config()
        )
    };
    let engine = Engine::start_with(true, &settings(&hook.url("/first"))).await;
    let dev = engine.environment("Development").await;
    let prod = engine.environment("Production").await;
    let rules = listed(&engine, &dev).await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["alertType"]["code"], "queue-paused");
    assert_eq!(rules[0]["name"], "Paused queues (alert_webhook_url)");
    assert_eq!(rules[0]["notification"]["type"], "webhook");
    assert_eq!(
        rules[0]["notification"]["configuration"]["url"],
        hook.url("/first")
    );
    assert!(
        listed(&engine, &prod).await.is_empty(),
        "only the alert_environments"
    );
    let id = rules[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = engine
        .patch(
            &format!("/platform/v2/environments/{dev}/alerts/{id}"),
            json!({"status": "paused"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Started again: the same rule, not a second one; pointed at the config's new URL, the
    // operator's pause kept.
    let engine = engine.restart(true, &settings(&hook.url("/second"))).await;
    let rules = listed(&engine, &dev).await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["id"], id);
    assert_eq!(rules[0]["status"], "paused");
    assert_eq!(
        rules[0]["notification"]["configuration"]["url"],
        hook.url("/second")
    );

    // The setting removed: its rule goes.
    let engine = engine.restart(true, &config()).await;
    assert!(listed(&engine, &dev).await.is_empty());
}

/// The environment's alert rules, as listed.
async fn listed(engine: &Engine, environment: &str) -> Vec<Value> {
    let (status, body) = engine
        .get(&format!("/platform/v2/environments/{environment}/alerts"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["payload"]["alerts"].as_array().unwrap().clone()
}
