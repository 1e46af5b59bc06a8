//! Forwarding kept messages to the application: order, headers, retries, restarts.

use super::*;
use reqwest::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wharf_store::MessageStatus;
use wharf_testkit::{Recorder, Reply, wait_until};

#[tokio::test]
async fn forwards_every_message_in_arrival_order_with_original_bytes_and_headers() {
    let app = Recorder::ok().await;
    let h = Harness::start(&destination(&format!(
        "forward_url = \"{}\"",
        app.url("/app")
    )))
    .await;
    let mut sent = Vec::new();
    for i in 0..30 {
        let body = notification(&format!("order-{i:02}"));
        assert_eq!(
            h.post("/redox", Some(TOKEN), body.clone()).await.status(),
            StatusCode::OK
        );
        sent.push(body);
    }
    assert!(
        wait_until(WAIT, || app.count() >= 30).await,
        "forwarded {}",
        app.count()
    );
    let received = app.received();
    assert_eq!(
        received.len(),
        30,
        "nothing forwarded twice when the application accepts"
    );
    let rows = h.inbox();
    for (i, r) in received.iter().enumerate() {
        assert_eq!(r.path, "/app");
        assert_eq!(
            r.body.as_ref(),
            sent[i].as_bytes(),
            "message {i} out of order or altered"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("wharf-destination"), Some("Acme"));
        assert_eq!(
            r.header("wharf-dedup-key"),
            Some(format!("log:order-{i:02}").as_str())
        );
        assert_eq!(
            r.header("wharf-message-id"),
            Some(rows[i].message_id.as_str())
        );
    }
    assert!(
        wait_until(WAIT, || h
            .inbox()
            .iter()
            .all(|r| r.status == MessageStatus::Forwarded))
        .await
    );
}

#[tokio::test]
async fn a_failing_head_holds_later_messages_until_it_is_accepted() {
    // The application refuses its first 4 requests.
    let app = Recorder::start(|n, _| {
        if n < 4 {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    })
    .await;
    let h = Harness::start(&destination(&format!(
        "forward_url = \"{}\"\nforward_max_backoff = \"300ms\"",
        app.url("/app")
    )))
    .await;
    for i in 0..5 {
        h.post("/redox", Some(TOKEN), notification(&format!("fifo-{i}")))
            .await;
    }
    assert!(wait_until(WAIT, || app.count() >= 9).await);
    let keys: Vec<String> = app
        .received()
        .iter()
        .map(|r| r.header("wharf-dedup-key").unwrap().to_owned())
        .collect();
    // Four failed attempts of the head, then every message once, in order.
    assert_eq!(&keys[..5], &["log:fifo-0"; 5]);
    assert_eq!(
        &keys[5..],
        &["log:fifo-1", "log:fifo-2", "log:fifo-3", "log:fifo-4"]
    );
    assert!(wait_until(WAIT, || h.inbox()[0].status == MessageStatus::Forwarded).await);
    assert_eq!(h.inbox()[0].forward_attempts, 5);
}

#[tokio::test]
async fn malformed_messages_are_never_forwarded() {
    let app = Recorder::ok().await;
    let h = Harness::start(&destination(&format!(
        "forward_url = \"{}\"",
        app.url("/app")
    )))
    .await;
    h.post("/redox", Some(TOKEN), notification("before")).await;
    h.post("/redox", Some(TOKEN), "<xml>not json</xml>").await;
    h.post("/redox", Some(TOKEN), notification("after")).await;
    assert!(wait_until(WAIT, || app.count() >= 2).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keys: Vec<_> = app
        .received()
        .iter()
        .map(|r| r.header("wharf-dedup-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["log:before", "log:after"]);
    assert_eq!(h.inbox()[1].status, MessageStatus::Malformed);
}

#[tokio::test]
async fn forwarding_progress_survives_a_restart() {
    // The application is down while messages arrive.
    let parked = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = parked.local_addr().unwrap();
    drop(parked);
    let mut h = Harness::start(&destination(&format!(
        "forward_url = \"http://{app_addr}/app\"\nforward_max_backoff = \"200ms\""
    )))
    .await;
    for i in 0..10 {
        h.post("/redox", Some(TOKEN), notification(&format!("restart-{i}")))
            .await;
    }
    assert!(wait_until(WAIT, || h.inbox()[0].forward_attempts >= 1).await);
    h.stop().await;
    assert!(
        h.inbox()
            .iter()
            .all(|r| r.status == MessageStatus::Received)
    );

    // The application comes up; so does the destination, on the same inbox.
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let app = Recorder::start_on(app_addr, move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        Reply::status(200)
    })
    .await;
    h.restart_stopped().await;
    assert!(wait_until(WAIT, || app.count() >= 10).await);
    let keys: Vec<_> = app
        .received()
        .iter()
        .map(|r| r.header("wharf-dedup-key").unwrap().to_owned())
        .collect();
    let expected: Vec<_> = (0..10).map(|i| format!("log:restart-{i}")).collect();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn forwarded_messages_are_deleted_after_their_retention_and_nothing_else_is() {
    let app = Recorder::ok().await;
    let destinations = format!(
        "{}[[destinations]]\nname = \"Kept\"\npath = \"/kept\"\nenvironment = \"Development\"\nverification_token = \"{TOKEN}\"\n",
        destination(&format!("forward_url = \"{}\"", app.url("/app")))
    );
    let h = Harness::start_with(
        &destinations,
        "forwarded_retention = \"2s\"",
        reqwest::Client::new(),
        "http",
    )
    .await;
    for i in 0..3 {
        let r = h
            .post("/redox", Some(TOKEN), notification(&format!("r-{i}")))
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Never forwarded, so never deleted: a malformed message, and one kept without forward_url.
    h.post("/redox", Some(TOKEN), "<xml>not json</xml>").await;
    h.post("/kept", Some(TOKEN), notification("stays")).await;
    assert!(wait_until(WAIT, || app.count() >= 3).await);
    assert!(
        wait_until(WAIT, || h.inbox().len() == 2).await,
        "inbox after the retention: {:?}",
        h.inbox()
            .iter()
            .map(|m| (&m.duplicate_key, m.status))
            .collect::<Vec<_>>()
    );
    let left = h.inbox();
    assert_eq!(left[0].status, MessageStatus::Malformed);
    assert_eq!(
        (left[1].destination.as_str(), left[1].status),
        ("Kept", MessageStatus::Received)
    );
    let metrics = h
        .client
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("wharf_inbox_pruned_total 3"), "{metrics}");
    // Its duplicate key went with it: a retry this late is kept and forwarded as new.
    h.post("/redox", Some(TOKEN), notification("r-0")).await;
    assert!(wait_until(WAIT, || app.count() >= 4).await);
    assert_eq!(app.received()[3].header("wharf-dedup-key"), Some("log:r-0"));
}

const ADMIN: &str = "admin-secret-0123456789-0123456789abcdef";

/// An application that refuses every message whose dedup key is `log:poison` (HTTP 422) while
/// `refusing` holds, and accepts everything else.
async fn refusing_app(refusing: Arc<std::sync::atomic::AtomicBool>) -> Recorder {
    Recorder::start(move |_, r| {
        if r.header("wharf-dedup-key") == Some("log:poison") && refusing.load(Ordering::SeqCst) {
            Reply::status(422)
        } else {
            Reply::status(200)
        }
    })
    .await
}

fn keys_received(app: &Recorder) -> Vec<String> {
    app.received()
        .iter()
        .map(|r| r.header("wharf-dedup-key").unwrap().to_owned())
        .collect()
}

async fn admin_get(h: &Harness, path: &str) -> String {
    let r = h
        .client
        .get(h.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// POSTs the status page's form `action` for `message_id`, as the page's button does.
async fn press(h: &Harness, action: &str, message_id: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(h.url(action))
        .basic_auth("admin", Some(ADMIN))
        .header("origin", origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("message_id={message_id}"))
        .send()
        .await
        .unwrap()
}

fn status_of(h: &Harness, message_id: &str) -> MessageStatus {
    h.inbox()
        .into_iter()
        .find(|m| m.message_id == message_id)
        .unwrap()
        .status
}

/// A message the application keeps refusing holds its destination in strict order: the
/// status page and `/metrics` show the stuck head (age, attempts, last error), the log and
/// the webhook say it is stuck; skipping it from the status page lets the rest go on in
/// order (and says it recovered); once the application is fixed, replaying it sends it.
#[tokio::test]
async fn a_poison_message_is_shown_skipped_into_the_dead_letters_and_replayed() {
    let refusing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = refusing_app(refusing.clone()).await;
    let hook = Recorder::ok().await;
    let h = Harness::start_with(
        &destination(&format!(
            "forward_url = \"{}\"\nforward_max_backoff = \"300ms\"",
            app.url("/app")
        )),
        &format!(
            "admin_token = \"{ADMIN}\"\nstuck_alert_after = \"1s\"\nalert_webhook_url = \"{}\"",
            hook.url("/hook")
        ),
        reqwest::Client::new(),
        "http",
    )
    .await;
    for key in ["poison", "next-1", "next-2"] {
        assert_eq!(
            h.post("/redox", Some(TOKEN), notification(key))
                .await
                .status(),
            200
        );
    }
    let poison = h.inbox()[0].message_id.clone();
    // Stuck: reported once it has failed for stuck_alert_after.
    assert!(
        wait_until(WAIT, || hook.count() >= 1).await,
        "no stuck alert"
    );
    let alert: serde_json::Value = serde_json::from_slice(&hook.received()[0].body).unwrap();
    assert_eq!(alert["event"], "forwarding.stuck");
    assert_eq!(alert["destination"], "Acme");
    assert_eq!(alert["messageId"], poison.as_str());
    assert_eq!(alert["lastError"], "the application answered HTTP 422");
    assert!(alert["attempts"].as_i64().unwrap() >= 2, "{alert}");
    assert!(
        keys_received(&app).iter().all(|k| k == "log:poison"),
        "strict order holds"
    );
    let head = &h.inbox()[0];
    assert_eq!(head.status, MessageStatus::Received);
    assert!(head.first_failed_at.is_some());

    let page = admin_get(&h, "/_wharf").await;
    assert!(page.contains("failing for"), "{page}");
    assert!(page.contains(&poison), "{page}");
    assert!(page.contains("the application answered HTTP 422"), "{page}");
    let metrics = admin_get(&h, "/metrics").await;
    let gauge = |name: &str| -> i64 {
        let prefix = format!("wharf_{name}{{destination=\"Acme\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert!(gauge("forward_head_attempts") >= 2);
    assert!(gauge("forward_head_failing_seconds") >= 1);

    // Another site cannot press the button for a signed-in browser.
    let r = press(&h, "/_wharf/skip", &poison, "https://evil.example").await;
    assert_eq!(r.status(), 403);
    let r = press(&h, "/_wharf/skip", &poison, &h.base).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(status_of(&h, &poison), MessageStatus::DeadLetter);
    assert!(
        wait_until(WAIT, || {
            let keys = keys_received(&app);
            keys.ends_with(&["log:next-1".to_owned(), "log:next-2".to_owned()])
        })
        .await,
        "the rest goes on, in order: {:?}",
        keys_received(&app)
    );
    assert!(wait_until(WAIT, || hook.count() >= 2).await);
    let recovered: serde_json::Value = serde_json::from_slice(&hook.received()[1].body).unwrap();
    assert_eq!(recovered["event"], "forwarding.recovered");
    let page = admin_get(&h, "/_wharf").await;
    assert!(
        page.contains("Dead letters") && page.contains("skipped by an operator"),
        "{page}"
    );
    let metrics = admin_get(&h, "/metrics").await;
    assert!(
        metrics.contains(r#"wharf_inbox_messages{destination="Acme",status="dead_letter"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"wharf_forward_head_attempts{destination="Acme"} 0"#));

    // Fixed: the replay sends it, once, and it is forwarded.
    refusing.store(false, Ordering::SeqCst);
    let r = press(&h, "/_wharf/replay", &poison, &h.base).await;
    assert_eq!(r.status(), 303);
    let r = press(&h, "/_wharf/replay", &poison, &h.base).await;
    assert_eq!(r.status(), 409, "replayed already");
    assert!(wait_until(WAIT, || status_of(&h, &poison) == MessageStatus::Forwarded).await);
    let keys = keys_received(&app);
    assert_eq!(keys.last().unwrap(), "log:poison");
    assert_eq!(keys.iter().filter(|k| *k == "log:next-1").count(), 1);
}

/// With `dead_letter_after`, the forwarder moves a message the application keeps refusing
/// aside by itself (and says so), and the rest is forwarded in order; a replay from beside the
/// server (as `wharf destination replay` does) puts it back where it arrived, ahead of what
/// still waits.
#[tokio::test]
async fn dead_letter_after_moves_a_poison_message_aside_and_a_replay_puts_it_back_in_place() {
    let refusing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = refusing_app(refusing.clone()).await;
    let hook = Recorder::ok().await;
    let h = Harness::start_with(
        &destination(&format!(
            "forward_url = \"{}\"\nforward_max_backoff = \"200ms\"\ndead_letter_after = {{ attempts = 3 }}",
            app.url("/app")
        )),
        &format!("alert_webhook_url = \"{}\"", hook.url("/hook")),
        reqwest::Client::new(),
        "http",
    )
    .await;
    for key in ["first", "poison", "after-1"] {
        h.post("/redox", Some(TOKEN), notification(key)).await;
    }
    let poison = h.inbox()[1].message_id.clone();
    assert!(wait_until(WAIT, || app.count() >= 5).await);
    assert_eq!(
        keys_received(&app),
        [
            "log:first",
            "log:poison",
            "log:poison",
            "log:poison",
            "log:after-1"
        ]
    );
    let row = h
        .inbox()
        .into_iter()
        .find(|m| m.message_id == poison)
        .unwrap();
    assert_eq!(row.status, MessageStatus::DeadLetter);
    assert_eq!(row.forward_attempts, 3);
    assert!(
        row.dead_letter_reason
            .as_deref()
            .unwrap()
            .contains("3 forwarding attempts failed"),
        "{row:?}"
    );
    assert!(wait_until(WAIT, || hook.count() >= 1).await);
    let alert: serde_json::Value = serde_json::from_slice(&hook.received()[0].body).unwrap();
    assert_eq!(alert["event"], "message.dead_lettered");
    assert_eq!(alert["messageId"], poison.as_str());

    // Fixed; the poison message is replayed beside the server (no notification reaches the
    // forwarder on SQLite) and two more arrive at once: it goes first, as it arrived first.
    refusing.store(false, Ordering::SeqCst);
    let database = wharf_store::Database::from_config(
        &h.dir.path().join("data"),
        h.pg.as_ref().map(|s| s.url.as_str()),
    );
    let replayed =
        wharf_store::replay_dead_letters(&database, std::slice::from_ref(&poison)).unwrap();
    assert_eq!(replayed, std::slice::from_ref(&poison));
    for key in ["after-2", "after-3"] {
        h.post("/redox", Some(TOKEN), notification(key)).await;
    }
    assert!(
        wait_until(WAIT, || app.count() >= 8).await,
        "{:?}",
        keys_received(&app)
    );
    assert_eq!(
        keys_received(&app)[5..],
        ["log:poison", "log:after-2", "log:after-3"]
    );
    assert!(
        wait_until(WAIT, || h
            .inbox()
            .iter()
            .all(|r| r.status == MessageStatus::Forwarded))
        .await
    );
}
