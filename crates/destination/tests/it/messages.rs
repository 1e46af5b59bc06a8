//! Authentication of messages (docs/PROTOCOL.md section 3) and keeping them (section 4).

use super::*;
use reqwest::StatusCode;
use wharf_store::MessageStatus;

#[tokio::test]
async fn missing_token_is_401_and_wrong_token_403_and_nothing_is_kept() {
    let h = Harness::start(&destination("")).await;
    let missing = h.post("/redox", None, notification("L1")).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let wrong = h
        .post(
            "/redox",
            Some("test-token-0123456789abcdeF"),
            notification("L1"),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let wrong_bearer = h
        .client
        .post(h.url("/redox"))
        .bearer_auth("nope")
        .body(notification("L1"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_bearer.status(), StatusCode::FORBIDDEN);
    assert!(h.inbox().is_empty());
}

#[tokio::test]
async fn header_or_bearer_token_keeps_the_message() {
    let h = Harness::start(&destination("")).await;
    let by_header = h.post("/redox", Some(TOKEN), notification("L1")).await;
    assert_eq!(by_header.status(), StatusCode::OK);
    let by_bearer = h
        .client
        .post(h.url("/redox"))
        .bearer_auth(TOKEN)
        .body(notification("L2"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), StatusCode::OK);
    let rows = h.inbox();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].duplicate_key, "log:L1");
    assert_eq!(rows[0].data_model.as_deref(), Some("PatientAdmin"));
    assert_eq!(rows[0].event_type.as_deref(), Some("Arrival"));
    assert_eq!(rows[0].status, MessageStatus::Received);
}

#[tokio::test]
async fn each_destination_accepts_only_its_own_token() {
    let two = format!(
        "{}[[destinations]]\nname = \"Beta\"\npath = \"/beta\"\nenvironment = \"Development\"\nverification_token = \"beta-token-0123456789abcdef-0123456789\"\n",
        destination("")
    );
    let h = Harness::start(&two).await;
    assert_eq!(
        h.post("/beta", Some(TOKEN), notification("X"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.post(
            "/redox",
            Some("beta-token-0123456789abcdef-0123456789"),
            notification("X")
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        h.post(
            "/beta",
            Some("beta-token-0123456789abcdef-0123456789"),
            notification("X")
        )
        .await
        .status(),
        StatusCode::OK
    );
    let rows = h.inbox();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].destination, "Beta");
}

#[tokio::test]
async fn retries_of_a_kept_message_are_answered_200_and_kept_once() {
    let h = Harness::start(&destination("")).await;
    let first = h
        .post("/redox", Some(TOKEN), notification("same-log"))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: serde_json::Value = first.json().await.unwrap();
    // Redox's retry: same log ID, new attempt ID, so different bytes.
    let retry = h
        .post("/redox", Some(TOKEN), notification("same-log"))
        .await;
    assert_eq!(retry.status(), StatusCode::OK);
    let retry: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["messageId"], first["messageId"]);
    assert_eq!(h.inbox().len(), 1);
    // Without a log ID, identical bytes are the same message.
    let body = r#"{"Meta":{"DataModel":"Results","EventType":"New"}}"#;
    h.post("/redox", Some(TOKEN), body).await;
    h.post("/redox", Some(TOKEN), body).await;
    assert_eq!(h.inbox().len(), 2);
}

#[tokio::test]
async fn fhir_bundle_is_classified_and_keeps_its_content_type() {
    let h = Harness::start(&destination("")).await;
    let bundle = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fhir-patient-admin.json"
    ))
    .unwrap();
    let response = h
        .client
        .post(h.url("/redox"))
        .header("verification-token", TOKEN)
        .header("content-type", "application/fhir+json")
        .body(bundle)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let rows = h.inbox();
    assert_eq!(rows[0].kind, "fhir_message");
    assert_eq!(rows[0].content_type, "application/fhir+json");
    assert_eq!(
        rows[0].duplicate_key,
        "fhir:3f6f1a1e-0c7e-4c5d-9f39-1a2b3c4d5e6f"
    );
}

#[tokio::test]
async fn malformed_body_is_kept_marked_and_answered_200() {
    let h = Harness::start(&destination("")).await;
    let response = h.post("/redox", Some(TOKEN), "{\"Meta\": not json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let rows = h.inbox();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, MessageStatus::Malformed);
    assert!(
        rows[0]
            .malformed_reason
            .as_deref()
            .unwrap()
            .contains("not valid JSON")
    );
}

#[tokio::test]
async fn body_limit_is_exact_and_the_server_stays_healthy() {
    let h = Harness::start(&destination("max_body_bytes = 4096")).await;
    let exactly = bench_body("fits", 4096);
    assert_eq!(exactly.len(), 4096);
    assert_eq!(
        h.post("/redox", Some(TOKEN), exactly).await.status(),
        StatusCode::OK
    );
    let over = bench_body("over", 4097);
    assert_eq!(
        h.post("/redox", Some(TOKEN), over.clone()).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Without Content-Length (chunked), the limit still holds.
    let stream = futures_stream(over);
    let chunked = h
        .client
        .post(h.url("/redox"))
        .header("verification-token", TOKEN)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        h.client
            .get(h.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(h.inbox().len(), 1);
}

#[tokio::test]
async fn forty_mebibyte_bodies_are_accepted_by_default() {
    let h = Harness::start(&destination("")).await;
    let limit = 40 * 1024 * 1024;
    let body = bench_body("big", limit);
    assert_eq!(
        h.post("/redox", Some(TOKEN), body).await.status(),
        StatusCode::OK
    );
    let too_big = bench_body("bigger", limit + 1);
    assert_eq!(
        h.post("/redox", Some(TOKEN), too_big).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(h.inbox()[0].body_bytes, limit as i64);
}

#[tokio::test]
async fn strangers_cannot_send_large_bodies() {
    let h = Harness::start(&destination("")).await;
    let body = bench_body("x", 1024 * 1024);
    assert_eq!(
        h.post("/redox", None, body).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_full_writer_queue_answers_503_with_retry_after() {
    let h = Harness::start_with(
        &destination(""),
        "writer_queue_capacity = 1",
        reqwest::Client::new(),
        "http",
    )
    .await;
    // Another connection holds the write lock, so the writer stalls on its first batch:
    // SQLite's database lock, or PostgreSQL's lock on the inbox table.
    enum Blocker {
        Sqlite(rusqlite::Connection),
        Postgres(wharf_testkit::postgres::Held),
    }
    let blocker = match &h.pg {
        Some(pg) => Blocker::Postgres(pg.hold("LOCK TABLE inbox IN EXCLUSIVE MODE")),
        None => {
            let db = h.dir.path().join("data").join(wharf_store::INBOX_FILE);
            let blocker = rusqlite_open(&db);
            blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
            Blocker::Sqlite(blocker)
        }
    };
    let mut pending = Vec::new();
    let mut refused = None;
    for i in 0..10 {
        let request = h
            .client
            .post(h.url("/redox"))
            .header("verification-token", TOKEN)
            .body(notification(&format!("busy-{i}")))
            .send();
        let task = tokio::spawn(request);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if task.is_finished() {
            refused = Some(task.await.unwrap().unwrap());
            break;
        }
        pending.push(task);
    }
    let refused = refused.expect("a request is refused once the queue is full");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    match blocker {
        Blocker::Sqlite(connection) => connection.execute_batch("COMMIT").unwrap(),
        Blocker::Postgres(held) => drop(held),
    }
    for task in pending {
        assert_eq!(
            task.await.unwrap().unwrap().status(),
            StatusCode::OK,
            "waiting requests are kept once the writer proceeds"
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let h = Harness::start(&destination("")).await;
    assert_eq!(
        h.post("/nope", Some(TOKEN), notification("x"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let put = h.client.put(h.url("/redox")).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        h.client
            .get(h.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn kept_messages_survive_a_restart() {
    let mut h = Harness::start(&destination("")).await;
    for i in 0..5 {
        assert_eq!(
            h.post("/redox", Some(TOKEN), notification(&format!("r{i}")))
                .await
                .status(),
            StatusCode::OK
        );
    }
    h.restart().await;
    assert_eq!(
        h.post("/redox", Some(TOKEN), notification("r0"))
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["duplicate"],
        true
    );
    assert_eq!(h.inbox().len(), 5);
}

#[tokio::test]
async fn the_configured_wal_reset_size_keeps_the_wal_bounded() {
    // SQLite only (the key is refused with database_url), whatever backend the suite runs on.
    let h = Harness::start_in(
        tempfile::tempdir().unwrap(),
        &destination(""),
        "wal_reset_bytes = 1048576",
        reqwest::Client::new(),
        "http",
    )
    .await;
    let wal = h.dir.path().join("data").join("inbox.db-wal");
    let mut largest = 0;
    // 24 MiB of bodies, sent continuously for well over one checkpoint interval. With the
    // default reset size (512 MiB) the WAL would hold all of it.
    for round in 0..24 {
        let posts: Vec<_> = (0..32)
            .map(|i| {
                let request = h
                    .client
                    .post(h.url("/redox"))
                    .header("verification-token", TOKEN)
                    .header("content-type", "application/json")
                    .body(bench_body(&format!("wal-{round}-{i}"), 32 * 1024));
                tokio::spawn(request.send())
            })
            .collect();
        for post in posts {
            assert_eq!(post.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.inbox().len(), 24 * 32);
    assert!(
        largest < 16 * 1024 * 1024,
        "the WAL grew to {largest} bytes for 24 MiB kept with wal_reset_bytes = 1 MiB"
    );
}

/// A valid data model message of exactly `size` bytes.
fn bench_body(id: &str, size: usize) -> Vec<u8> {
    let head = format!(r#"{{"Meta":{{"Logs":[{{"ID":"{id}"}}]}},"Pad":""#);
    let mut body = head.into_bytes();
    body.resize(size - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

fn futures_stream(
    body: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

fn rusqlite_open(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
