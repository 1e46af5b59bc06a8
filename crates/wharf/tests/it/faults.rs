//! Faults that need the engine as a process: SIGKILL in the middle of Verify and Save. The
//! destination stays as it was (unverified, its stored endpoint and token untouched, the
//! database intact), and after a restart Verify and Save works.

use super::*;
use serde_json::{Value, json};
use wharf_testkit::{Received, Recorder, Reply, wait_until};

pub const KEY: &str = "management-key-0123456789-0123456";

/// Writes an engine configuration listening on `port`, with its data under `dir`.
pub fn write_engine_config(dir: &TestDir, port: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.path().join("engine.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{}api_keys = [\"{KEY}\"]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nallow_private_endpoints = true\n{extra}\n",
            dir.path().join("engine").display(),
            dir.database_toml()
        ),
    )
    .unwrap();
    path
}

/// A management API call to the engine at `base`.
pub async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(KEY);
    if let Some(body) = body {
        request = request.json(&json!({"payload": body}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates a Development destination and returns its id.
pub async fn create_destination(base: &str, endpoint: &str, token: &str) -> String {
    let (_, orgs) = call(
        base,
        reqwest::Method::GET,
        "/platform/v1/organizations",
        None,
    )
    .await;
    let org = orgs["payload"]["organizations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, envs) = call(
        base,
        reqwest::Method::GET,
        &format!("/platform/v1/organizations/{org}/environments"),
        None,
    )
    .await;
    let dev = envs["payload"]["environments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, created) = call(
        base,
        reqwest::Method::POST,
        &format!("/platform/v1/environments/{dev}/destinations"),
        Some(json!({"name": "Acme", "endpoint": endpoint, "verificationToken": token})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    created["payload"]["destination"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Answers a challenge carrying `token`; anything else 403.
pub fn echo(r: &Received, token: &str) -> Reply {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    match body["challenge"].as_str() {
        Some(challenge) if body["verification-token"] == token => Reply {
            status: 200,
            content_type: "text/plain",
            body: challenge.as_bytes().to_vec(),
            delay: Duration::ZERO,
        },
        _ => Reply::status(403),
    }
}

#[tokio::test]
async fn sigkill_during_verify_and_save_saves_nothing_and_a_restart_verifies() {
    const OLD: &str = "old-token-0123456789-0123456789ab";
    const NEW: &str = "new-token-0123456789-0123456789ab";
    // The endpoint holds the first challenge unanswered (the engine is killed while it waits),
    // then answers challenges normally.
    let endpoint = Recorder::start(|n, r| {
        if n == 0 {
            Reply::status(200).after(Duration::from_secs(3600))
        } else {
            echo(r, NEW)
        }
    })
    .await;
    let dir = TestDir::new();
    let port = free_port();
    let config = write_engine_config(&dir, port, "");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let base = format!("http://{addr}");
    let spawn = || {
        wharf()
            .args(["engine", "serve", "--config", config.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut engine = spawn();
    wait_healthy(addr).await;
    let id = create_destination(&base, &endpoint.url("/old"), OLD).await;

    // Verify and Save with a new endpoint and token; kill the engine while the challenge is out.
    let verify = format!("/platform/v1/destinations/{id}/verify");
    let pending = {
        let (url, new_endpoint) = (format!("{base}{verify}"), endpoint.url("/new"));
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(KEY)
                .json(&json!({"payload": {"endpoint": new_endpoint, "verificationToken": NEW}}))
                .send()
                .await
        })
    };
    assert!(wait_until(Duration::from_secs(10), || endpoint.count() == 1).await);
    engine.start_kill().unwrap();
    engine.wait().await.unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the request died with the engine, unanswered"
    );

    // SQLite's file survived the kill intact (PostgreSQL's server was never killed).
    if dir.database_url().is_none() {
        let db = rusqlite::Connection::open(dir.path().join("engine").join("engine.db")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    let _engine = spawn();
    wait_healthy(addr).await;
    let (_, read) = call(
        &base,
        reqwest::Method::GET,
        &format!("/platform/v1/destinations/{id}"),
        None,
    )
    .await;
    let record = &read["payload"]["destination"];
    assert_eq!(record["verified"], false, "{read}");
    assert_eq!(
        record["endpoint"],
        endpoint.url("/old"),
        "nothing half-saved"
    );
    assert_eq!(record["hasVerificationToken"], true);

    let (status, verified) = call(
        &base,
        reqwest::Method::POST,
        &verify,
        Some(json!({"endpoint": endpoint.url("/new"), "verificationToken": NEW})),
    )
    .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["payload"]["destination"]["verified"], true);
    assert_eq!(
        verified["payload"]["destination"]["endpoint"],
        endpoint.url("/new")
    );
}
