//! Issue 26's attacks on the engine, each reproduced against a running engine and now failing:
//! unauthenticated bodies, oversized remote answers, example secrets and shared keys, deleted
//! destinations' PHI, and one organization reaching another's records.

use super::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends the head of a `POST /endpoint` declaring `length` bytes and none of them, and returns
/// the status line the engine answers with, or None if it waited for the body instead.
async fn answer_to_head(
    engine: &Engine,
    authorization: Option<&str>,
    length: u64,
) -> Option<String> {
    answer_to_post(engine, "/endpoint", authorization, length).await
}

/// The same for any path.
async fn answer_to_post(
    engine: &Engine,
    path: &str,
    authorization: Option<&str>,
    length: u64,
) -> Option<String> {
    let addr = engine.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {length}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buffer)).await {
        Ok(Ok(n)) if n > 0 => {
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            Some(text.lines().next().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

#[tokio::test]
async fn ingestion_refuses_a_stranger_at_the_headers_without_reading_the_body() {
    let engine = Engine::start_with(false, &super::delivery::config()).await;
    // 30 MiB declared and never sent: the answer must come from the headers alone.
    let missing = answer_to_head(&engine, None, 30 << 20).await;
    assert_eq!(missing.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
    let wrong = answer_to_head(
        &engine,
        Some("Bearer not-a-source-key-0123456789"),
        30 << 20,
    )
    .await;
    assert_eq!(wrong.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
    // A management key is not a source key either.
    let management = answer_to_head(&engine, Some(&format!("Bearer {KEY}")), 30 << 20).await;
    assert_eq!(management.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
    // A real source declaring more than 40 MiB is refused before it sends it.
    let source = format!("Bearer {}", super::delivery::SOURCE_KEY);
    let too_large = answer_to_head(&engine, Some(&source), 41 << 20).await;
    assert_eq!(too_large.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));
    // And a real source within the limit is read: the engine waits for its body.
    assert_eq!(answer_to_head(&engine, Some(&source), 1 << 20).await, None);
    // The management API too refuses a caller without a valid key before reading its body.
    let dev = engine.environment("Development").await;
    let path = format!("/platform/v1/environments/{dev}/destinations");
    let keyless = answer_to_post(&engine, &path, None, 30 << 20).await;
    assert_eq!(keyless.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
    let source_key = answer_to_post(&engine, &path, Some(&source), 30 << 20).await;
    assert_eq!(source_key.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused() {
    let engine = Engine::start_with(false, &super::delivery::config()).await;
    let addr = engine.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /endpoint HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        super::delivery::SOURCE_KEY
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let chunk = [
        format!("{:x}\r\n", 1 << 20).into_bytes(),
        vec![b' '; 1 << 20],
        b"\r\n".to_vec(),
    ]
    .concat();
    // 41 chunks of 1 MiB; the engine may answer and close before the last is written.
    for _ in 0..41 {
        if socket.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("40 MiB"), "{answer}");
}

#[tokio::test]
async fn verification_tokens_must_be_long_and_not_an_example() {
    let engine = Engine::start(true).await;
    let dev = engine.environment("Development").await;
    let path = format!("/platform/v1/environments/{dev}/destinations");
    for (token, problem) in [
        ("x", "32 characters"),
        ("short-token-0123456789", "32 characters"),
        ("change-me-to-a-long-random-token", "placeholder"),
    ] {
        let (status, body) = engine
            .post(&path, json!({"name": "D", "verificationToken": token}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{token}: {body}");
        assert!(error(&body).contains(problem), "{token}: {body}");
    }
    let (status, body) = engine
        .post(
            &path,
            json!({"name": "D", "verificationToken": "a".repeat(32)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// PHI and sealed secrets are in the engine's files: only their owner may read them.
#[tokio::test]
async fn the_engines_files_are_its_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    if wharf_testkit::postgres::backend_is_postgres() {
        return; // PostgreSQL keeps its own files; this is about the SQLite data directory.
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let engine = Engine::start(false).await;
    let dir = engine.data_dir();
    assert_eq!(mode(&dir), 0o700);
    for file in ["engine.db", "engine.db-wal", "engine.db-shm"] {
        let path = dir.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }
    // An engine will not start on a data directory others can read, and says how to fix it.
    let shared = tempfile::tempdir().unwrap();
    let data = shared.path().join("engine");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("engine.db"), b"").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = format!(
        "data_dir = \"{}\"\napi_keys = [\"{KEY}\"]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n",
        data.display()
    );
    let config = EngineConfig::parse(&text, &wharf_config::ProcessEnv).unwrap();
    let e = wharf_engine::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("chmod 700"), "{e}");
}

/// Issue 26, item 11: two organizations in one database. The second organization's engine,
/// with its own key, reaches none of the first's records by any route. (And item 5 at the
/// end: a deleted destination's logs are gone from the API.)
#[tokio::test]
async fn one_organization_reaches_nothing_of_another() {
    let dir = tempfile::tempdir().unwrap();
    let pg = wharf_testkit::postgres::backend_is_postgres()
        .then(wharf_testkit::postgres::PgSchema::create);
    let acme = Engine::start_on(dir, pg, true, &super::delivery::config(), |_| {}).await;
    let endpoint = super::delivery::endpoint(0).await;
    let destination = super::delivery::verified_destination(&acme, &endpoint).await;
    let response = super::delivery::submit(&acme, &[&destination], 1).await;
    assert_eq!(response.status(), StatusCode::OK);
    let sent: Value = response.json().await.unwrap();
    let log = sent["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned();
    let acme_org = super::delivery::org_id(&acme).await;
    let dev = acme.environment("Development").await;
    let (name, fields) = super::authcredentials::examples().remove(3);
    let credential = super::authcredentials::create(&acme, name, &dev, fields).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wharf_testkit::wait_until(std::time::Duration::from_secs(10), || {
        super::delivery::messages(&endpoint).len() == 1
    })
    .await;

    // The same database, served for another organization (its own engine, its own key).
    let Engine {
        running, _dir, pg, ..
    } = acme;
    running.unwrap().shutdown().await;
    let other = Engine::start_on(_dir, pg, true, &super::delivery::config(), |c| {
        c.organization = "Other Org".into();
    })
    .await;
    let (status, orgs) = other.get("/platform/v1/organizations").await;
    assert_eq!(status, StatusCode::OK);
    let listed = orgs["payload"]["organizations"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "only its own organization: {orgs}");
    assert_eq!(listed[0]["name"], "Other Org");
    let other_org = listed[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(other_org, acme_org);

    use reqwest::Method;
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::GET,
            format!("/platform/v1/organizations/{acme_org}/environments"),
            None,
        ),
        (
            Method::GET,
            format!("/platform/v1/environments/{dev}/destinations"),
            None,
        ),
        (
            Method::POST,
            format!("/platform/v1/environments/{dev}/destinations"),
            Some(json!({"name": "X", "verificationToken": "x".repeat(40)})),
        ),
        (
            Method::GET,
            format!("/platform/v1/destinations/{destination}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/platform/v1/destinations/{destination}"),
            Some(json!({"name": "Taken"})),
        ),
        (
            Method::POST,
            format!("/platform/v1/destinations/{destination}/verify"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/platform/v1/destinations/{destination}/queue"),
            None,
        ),
        (
            Method::POST,
            format!("/platform/v1/destinations/{destination}/queue/pause"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/platform/v1/destinations/{destination}/queue/resume"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/platform/v1/environments/{dev}/authcredentials"),
            None,
        ),
        (
            Method::GET,
            format!("/platform/v1/authcredentials/{credential}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/platform/v1/authcredentials/{credential}"),
            Some(json!({"name": "Taken"})),
        ),
        (
            Method::POST,
            "/platform/v1/authcredentials".into(),
            Some(
                json!({"name": "X", "authStrategy": name, "environment": dev, "lifetimeSeconds": 60, "issuer": "i", "audience": "https://a.example"}),
            ),
        ),
        (
            Method::GET,
            format!("/platform/v1/organizations/{acme_org}/logs"),
            None,
        ),
        (
            Method::GET,
            format!("/platform/v1/organizations/{acme_org}/logs/{log}"),
            None,
        ),
        (
            Method::GET,
            format!("/platform/v1/organizations/{other_org}/logs/{log}"),
            None,
        ),
        (
            Method::POST,
            format!("/platform/v1/logs/{log}/stop"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/platform/v1/logs/{log}/resend"),
            Some(json!({})),
        ),
        (
            Method::DELETE,
            format!("/platform/v1/authcredentials/{credential}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/platform/v1/destinations/{destination}"),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let (status, answer) = other.call(method.clone(), &path, body).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "{method} {path}: {status} {answer}"
        );
    }
    // Its own log listing does not show the other organization's log either.
    let (_, logs) = other
        .get(&format!("/platform/v1/organizations/{other_org}/logs"))
        .await;
    assert_eq!(
        logs["payload"]["results"].as_array().map(Vec::len),
        Some(0),
        "{logs}"
    );
    // Nor can its source send to the other organization's destination.
    let response = super::delivery::submit(&other, &[&destination], 2).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Everything is still there for its own organization.
    let Engine {
        running, _dir, pg, ..
    } = other;
    running.unwrap().shutdown().await;
    let acme = Engine::start_on(_dir, pg, true, &super::delivery::config(), |_| {}).await;
    assert_eq!(
        acme.get(&format!("/platform/v1/destinations/{destination}"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        acme.get(&format!("/platform/v1/authcredentials/{credential}"))
            .await
            .0,
        StatusCode::OK
    );
    let (_, read) = acme
        .get(&format!("/platform/v1/organizations/{acme_org}/logs/{log}"))
        .await;
    assert_eq!(read["payload"]["result"]["id"], log.as_str(), "{read}");
    assert_eq!(super::delivery::messages(&endpoint).len(), 1);

    // Item 5: deleting the destination takes its logs with it, from every route.
    let (status, _) = acme
        .call(
            reqwest::Method::DELETE,
            &format!("/platform/v1/destinations/{destination}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = acme
        .get(&format!("/platform/v1/organizations/{acme_org}/logs/{log}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, logs) = acme
        .get(&format!("/platform/v1/organizations/{acme_org}/logs"))
        .await;
    assert_eq!(
        logs["payload"]["results"].as_array().map(Vec::len),
        Some(0),
        "{logs}"
    );
}

/// Issue 26, item 12: over TLS every answer carries HSTS, and `/metrics` can require a token.
#[tokio::test]
async fn over_tls_hsts_and_metrics_behind_a_token() {
    let certs = tempfile::tempdir().unwrap();
    let ca = wharf_testkit::TestCa::new(certs.path());
    let metrics_token = "m".repeat(40);
    let engine = Engine::start_with(
        false,
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\nmetrics_token = \"{metrics_token}\"\n",
            ca.cert_path.display(),
            ca.key_path.display()
        ),
    )
    .await;
    // The test certificate names 127.0.0.1 too.
    let base = engine.base.replace("http://", "https://");
    let client = ca.client();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        health
            .headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000")
    );
    let refused = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().contains_key("strict-transport-security"));
    let wrong = client
        .get(format!("{base}/metrics"))
        .bearer_auth("n".repeat(40))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let metrics = client
        .get(format!("{base}/metrics"))
        .bearer_auth(&metrics_token)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.unwrap().contains("wharf_"));
    // A short metrics token is refused at start, naming the key.
    let text = format!(
        "api_keys = [\"{KEY}\"]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nmetrics_token = \"short\"\n"
    );
    let e = EngineConfig::parse(&text, &wharf_config::ProcessEnv).unwrap_err();
    assert_eq!(e.key, "metrics_token");
}
