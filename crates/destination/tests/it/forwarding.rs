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
