//! Issue 30, item 3: an operator's resend reaches the application behind Wharf's own
//! destination once more, while retries are still dropped. Engine -> destination -> app, over
//! HTTP: the resend's attempts carry `wharf-resend: N` (docs/PROTOCOL.md section 4), and the
//! destination keeps resend N once; a retry (the same Log ID, with or without the same mark)
//! is answered `{"duplicate": true}` and not forwarded.

use super::TestDir;
use super::auth::Engine;
use serde_json::{Value, json};
use std::time::Duration;
use wharf_testkit::{Received, Recorder, Reply, wait_until};

const TOKEN: &str = "dest-token-0123456789abcdef-01234";

#[tokio::test]
async fn a_resend_reaches_the_application_again_and_a_retry_does_not() {
    let app = Recorder::start(|_, _: &Received| Reply::status(200)).await;
    let dir = TestDir::new();
    let text = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}[[destinations]]\nname = \"Acme\"\npath = \"/redox\"\nenvironment = \"Development\"\nverification_token = \"{TOKEN}\"\nforward_url = \"{}\"\nforward_max_backoff = \"200ms\"\n",
        dir.path().join("data").display(),
        dir.database_toml(),
        app.url("/app"),
    );
    let config = wharf_destination::Config::parse(&text, &wharf_config::ProcessEnv).unwrap();
    let destination = wharf_destination::start(config).await.unwrap();
    let endpoint = format!("http://{}/redox", destination.local_addr());

    let engine = Engine::start().await;
    let env = engine.development().await;
    let (status, view) = engine
        .call(
            reqwest::Method::POST,
            &format!("/platform/v1/environments/{env}/destinations"),
            Some(json!({"name": "Acme", "endpoint": endpoint, "verificationToken": TOKEN})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let id = view["payload"]["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = engine.verify(&id).await;
    assert_eq!(status, 200, "{body}");

    // Delivered once, to the application once.
    let log = engine.submit(&id, 1).await;
    assert_eq!(engine.log_after(&log, 1).await["status"], "succeeded");
    let forwarded = |app: &Recorder| {
        app.received()
            .iter()
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter(|m| m["Meta"]["Logs"][0]["ID"] == log.as_str())
            .count()
    };
    assert!(wait_until(Duration::from_secs(10), || forwarded(&app) == 1).await);

    // The operator resends it: a new attempt of the same log, which the application sees.
    let (status, body) = engine
        .call(
            reqwest::Method::POST,
            &format!("/platform/v1/logs/{log}/resend"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let resent = engine.log_after(&log, 2).await;
    assert_eq!(resent["status"], "succeeded", "{resent}");
    assert_eq!(resent["attempts"]["total"], 2, "{resent}");
    assert!(
        wait_until(Duration::from_secs(10), || forwarded(&app) == 2).await,
        "the resend reached the application"
    );
    let received = app.received();
    let again = received
        .iter()
        .rev()
        .find(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .is_ok_and(|m| m["Meta"]["Logs"][0]["ID"] == log.as_str())
        })
        .unwrap()
        .body
        .clone();

    // Retries are still dropped: the same message again, as a retry of the first delivery
    // (no mark) and as a retry of the resend (the same mark).
    let client = reqwest::Client::new();
    for mark in [None, Some("1")] {
        let mut request = client
            .post(&endpoint)
            .header("verification-token", TOKEN)
            .header("content-type", "application/json")
            .body(again.clone());
        if let Some(mark) = mark {
            request = request.header("wharf-resend", mark);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert_eq!(answer["duplicate"], true, "{mark:?}: {answer}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(forwarded(&app), 2, "a retry is not forwarded");
    // A second resend is new again.
    let answer: Value = client
        .post(&endpoint)
        .header("verification-token", TOKEN)
        .header("content-type", "application/json")
        .header("wharf-resend", "2")
        .body(again)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["duplicate"], false, "{answer}");
    assert!(wait_until(Duration::from_secs(10), || forwarded(&app) == 3).await);
    destination.shutdown().await;
}
