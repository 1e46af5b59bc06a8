//! Hostile input over real sockets (issue 7, docs/SECURITY.md "Bad input"): slow and idle
//! clients, too many connections, oversized headers, bodies that lie about their length or
//! never end, invalid UTF-8 and JSON, deep nesting, unknown paths, near-miss tokens, forged
//! challenges, configuration files with wrong types, and a full disk.
//!
//! Every test checks three things: what the hostile client gets, that an ordinary client is
//! still served, and that nothing the server should not keep was kept. Timeouts are set to a
//! couple of seconds in the configuration, so "a byte a second" becomes "a byte every 100 ms"
//! and the tests stay short; the code path is the same as with the 30 s / 60 s defaults.

use super::*;
use reqwest::StatusCode;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_store::MessageStatus;

async fn start(top: &str) -> Harness {
    Harness::start_with(&destination(""), top, reqwest::Client::new(), "http").await
}

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(("127.0.0.1", h.port())).await.unwrap()
}

/// Reads until the server closes the connection or `limit` passes: what it sent, and whether
/// it closed (end of stream or reset).
async fn read_until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    limit: Duration,
) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// The status codes of every HTTP/1.1 response in `bytes`, in order.
fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// A request head with the destination's token, `extra` header lines (each ending in CRLF)
/// and the blank line.
fn head(extra: &str) -> String {
    format!(
        "POST /redox HTTP/1.1\r\nhost: localhost\r\nverification-token: {TOKEN}\r\ncontent-type: application/json\r\n{extra}\r\n"
    )
}

/// An ordinary client is answered, and quickly, while something hostile goes on.
async fn ordinary_client_is_served(h: &Harness, log_id: &str) {
    let started = Instant::now();
    // A fresh connection, as a new client would open: a pooled one may be one the server has
    // just closed for idleness, which is the behaviour under test, not a failure to serve.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let response = client
        .post(h.url("/redox"))
        .header("content-type", "application/json")
        .header("verification-token", TOKEN)
        .body(notification(log_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "served at once, not after the hostile client: {:?}",
        started.elapsed()
    );
}

/// The soft limit on open files, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn log_ids(h: &Harness) -> Vec<String> {
    h.inbox().into_iter().filter_map(|m| m.log_id).collect()
}

// ------------------------------------------------------------------------------------------
// Slow clients and too many connections
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off_while_others_are_served() {
    let h = start("header_read_timeout = \"2s\"").await;
    let (mut read, mut write) = connect(&h).await.into_split();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        let _ = write
            .write_all(b"POST /redox HTTP/1.1\r\nhost: localhost\r\nx-slow: ")
            .await;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b"a").await.is_err() {
                break;
            }
        }
    });
    ordinary_client_is_served(&h, "while-slow-headers").await;
    let (_, closed) = read_until_closed(&mut read, Duration::from_secs(10)).await;
    let elapsed = started.elapsed();
    trickle.abort();
    assert!(closed, "the slow client is disconnected");
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(8),
        "cut off at header_read_timeout, though it kept sending: {elapsed:?}"
    );
    assert_eq!(log_ids(&h), ["while-slow-headers"]);
}

#[tokio::test]
async fn bodies_sent_a_byte_at_a_time_are_cut_off_with_408_while_others_are_served() {
    let h = start("body_read_timeout = \"2s\"").await;
    // A declared length never reached, and chunked framing that never ends.
    for (i, framing) in ["content-length: 1000\r\n", "transfer-encoding: chunked\r\n"]
        .into_iter()
        .enumerate()
    {
        let chunked = framing.starts_with("transfer");
        let (mut read, mut write) = connect(&h).await.into_split();
        write.write_all(head(framing).as_bytes()).await.unwrap();
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let piece: &[u8] = if chunked { b"1\r\n{\r\n" } else { b"{" };
                if write.write_all(piece).await.is_err() {
                    break;
                }
            }
        });
        ordinary_client_is_served(&h, &format!("while-slow-body-{i}")).await;
        let (response, closed) = read_until_closed(&mut read, Duration::from_secs(10)).await;
        let elapsed = started.elapsed();
        trickle.abort();
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        assert_eq!(statuses(&response), [408], "{framing}: {text}");
        assert!(text.contains("connection: close"), "{text}");
        assert!(
            text.contains("body_read_timeout"),
            "says what to change: {text}"
        );
        assert!(closed, "{framing}: the connection is closed after the 408");
        assert!(
            elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(8),
            "{framing}: cut off at body_read_timeout: {elapsed:?}"
        );
    }
    assert_eq!(log_ids(&h), ["while-slow-body-0", "while-slow-body-1"]);
    assert!(
        h.inbox()
            .iter()
            .all(|m| m.status != MessageStatus::Malformed),
        "no partial body was kept"
    );
}

#[tokio::test]
async fn a_body_that_stops_short_of_its_content_length_gets_408() {
    let h = start("body_read_timeout = \"2s\"").await;
    let mut stream = connect(&h).await;
    let body = notification("short");
    stream
        .write_all(head(&format!("content-length: {}\r\n", body.len() + 10)).as_bytes())
        .await
        .unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(statuses(&response), [408]);
    assert!(closed);
    assert!(
        h.inbox().is_empty(),
        "a body that did not arrive is not kept"
    );
}

#[tokio::test]
async fn thousands_of_idle_connections_are_closed_and_new_clients_served() {
    let h = start("idle_timeout = \"1s\"").await;
    // Both ends of each connection are in this process: stay within its open-file limit.
    let count = open_file_limit().map_or(2_000, |limit| 2_000.min(limit.saturating_sub(256) / 2));
    if count < 2_000 {
        eprintln!("only {count} idle connections: the open-file limit is low (ulimit -n)");
    }
    let mut idle = Vec::new();
    for _ in 0..count {
        idle.push(connect(&h).await);
    }
    ordinary_client_is_served(&h, "among-idle").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    for (i, mut stream) in idle.into_iter().enumerate() {
        let (sent, closed) = read_until_closed(
            &mut stream,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await;
        assert!(closed, "idle connection {i} was not closed");
        assert!(
            sent.is_empty(),
            "nothing is sent to a client that asked nothing"
        );
    }
    ordinary_client_is_served(&h, "after-idle").await;
}

#[tokio::test]
async fn at_max_connections_a_new_client_waits_for_a_free_slot_and_is_served() {
    let h = start("max_connections = 20\nidle_timeout = \"2s\"").await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(connect(&h).await);
    }
    // Let the server accept all twenty, filling every slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(h.url("/redox"))
            .header("verification-token", TOKEN)
            .body(notification("at-cap"))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !request.is_finished(),
        "the 21st connection waits in the listen backlog while 20 are open"
    );
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "served once the idle connections were closed: {:?}",
        started.elapsed()
    );
    for mut stream in idle {
        assert!(
            read_until_closed(&mut stream, Duration::from_secs(5))
                .await
                .1
        );
    }
    assert_eq!(log_ids(&h), ["at-cap"]);
}

// ------------------------------------------------------------------------------------------
// Malformed requests
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_or_too_many_headers_get_431() {
    let h = start("").await;
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
        "a".repeat(66 * 1024)
    );
    let many = format!(
        "GET /healthz HTTP/1.1\r\nhost: localhost\r\n{}\r\n",
        (0..120)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    for request in [big, many] {
        let (mut read, mut write) = connect(&h).await.into_split();
        let writer = tokio::spawn(async move {
            let _ = write.write_all(request.as_bytes()).await;
            write
        });
        let (response, closed) = read_until_closed(&mut read, Duration::from_secs(5)).await;
        assert_eq!(
            statuses(&response),
            [431],
            "{}",
            String::from_utf8_lossy(&response)
        );
        assert!(closed);
        drop(writer.await);
    }
    ordinary_client_is_served(&h, "after-big-headers").await;
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_is_cut_at_the_declared_length() {
    let h = start("").await;
    let body = notification("declared");
    let mut stream = connect(&h).await;
    let mut request = head(&format!("content-length: {}\r\n", body.len())).into_bytes();
    request.extend_from_slice(body.as_bytes());
    // What follows the declared body is read as the next request, and is not one.
    request.extend_from_slice(b"\x01\x02 smuggled {\"Meta\":{}}\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(
        statuses(&response),
        [200, 400],
        "{}",
        String::from_utf8_lossy(&response)
    );
    assert!(closed);
    let inbox = h.inbox();
    assert_eq!(inbox.len(), 1, "only the declared body was kept");
    assert_eq!(inbox[0].log_id.as_deref(), Some("declared"));
    assert_eq!(inbox[0].body_bytes, body.len() as i64);
}

#[tokio::test]
async fn a_chunked_body_without_end_is_refused_at_the_size_limit() {
    let h = Harness::start_with(
        &destination("max_body_bytes = 65536"),
        "",
        reqwest::Client::new(),
        "http",
    )
    .await;
    let (mut read, mut write) = connect(&h).await.into_split();
    write
        .write_all(head("transfer-encoding: chunked\r\n").as_bytes())
        .await
        .unwrap();
    let flood = tokio::spawn(async move {
        let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
        while write.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    let (response, _) = read_until_closed(&mut read, Duration::from_secs(10)).await;
    flood.abort();
    assert_eq!(
        statuses(&response),
        [413],
        "{}",
        String::from_utf8_lossy(&response)
    );
    ordinary_client_is_served(&h, "after-flood").await;
    assert_eq!(log_ids(&h), ["after-flood"]);
}

#[tokio::test]
async fn invalid_utf8_anywhere_is_refused_or_kept_as_malformed_never_a_crash() {
    let h = start("").await;
    // In the body: kept (Redox's rule is never to lose data), marked, never forwarded.
    let response = h
        .post(
            "/redox",
            Some(TOKEN),
            &b"{\"Meta\":{\"DataModel\":\"\xff\xfe\"}}"[..],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let kept = h.inbox();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].status, MessageStatus::Malformed);
    assert!(
        kept[0]
            .malformed_reason
            .as_deref()
            .unwrap()
            .contains("not valid JSON")
    );

    // In the token header: a wrong token.
    let mut token = TOKEN.as_bytes().to_vec();
    *token.last_mut().unwrap() = 0xff;
    let response = h
        .client
        .post(h.url("/redox"))
        .header(
            "verification-token",
            reqwest::header::HeaderValue::from_bytes(&token).unwrap(),
        )
        .body(notification("bad-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // In the path, percent-encoded or raw.
    assert_eq!(
        h.post("/redox%FF", Some(TOKEN), notification("bad-path"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let mut stream = connect(&h).await;
    let mut raw =
        b"POST /redox\xff HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{}".to_vec();
    raw.extend_from_slice(b"");
    stream.write_all(&raw).await.unwrap();
    let (response, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(statuses(&response), [400]);

    assert_eq!(h.inbox().len(), 1);
    ordinary_client_is_served(&h, "after-utf8").await;
}

#[tokio::test]
async fn json_nested_100000_levels_deep_is_kept_without_exhausting_the_stack() {
    let h = start("").await;
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let in_meta = format!(
        r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{{"ID":"deep-meta"}}],"X":{arrays}}}}}"#
    );
    for body in [arrays.clone(), objects, in_meta] {
        assert_eq!(
            h.post("/redox", Some(TOKEN), body).await.status(),
            StatusCode::OK
        );
    }
    let kept = h.inbox();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|m| m.status != MessageStatus::Malformed));
    ordinary_client_is_served(&h, "after-deep").await;
}

#[tokio::test]
async fn requests_to_unknown_paths_are_404_and_keep_nothing() {
    let h = start("").await;
    let body = notification("stray");
    // Sent as written (an HTTP client would resolve the dot segments first): the server
    // matches paths exactly and normalises nothing.
    for path in [
        "/",
        "/redox/",
        "/REDOX",
        "/redox%2F",
        "//redox",
        "/redox/../redox",
        "/x/../redox",
        "/%2e%2e/redox",
        "/redox;x",
        "/redox/token",
        "/_wharf/../redox",
        "*",
    ] {
        let mut stream = connect(&h).await;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: localhost\r\nverification-token: {TOKEN}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body.as_bytes());
        stream.write_all(&request).await.unwrap();
        let (response, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&response);
        let status = statuses(&response);
        assert!(
            status == [404] || path == "*" && status == [400],
            "{path}: {text}"
        );
        assert!(
            !text.contains(TOKEN) && !text.contains("stray"),
            "nothing reflected: {text}"
        );
    }
    assert!(h.inbox().is_empty());
}

#[tokio::test]
async fn tokens_that_differ_only_in_the_last_byte_are_refused() {
    let h = start("").await;
    let mut last_byte = TOKEN.to_owned();
    last_byte.pop();
    last_byte.push('g');
    let variants = [
        last_byte,
        TOKEN[..TOKEN.len() - 1].to_owned(),
        format!("{TOKEN}0"),
        TOKEN.to_uppercase(),
        format!("{TOKEN} {TOKEN}"),
    ];
    for token in &variants {
        let response = h
            .post("/redox", Some(token), notification("near-miss"))
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{token:?}");
        let bearer = h
            .client
            .post(h.url("/redox"))
            .bearer_auth(token)
            .body(notification("near-miss"))
            .send()
            .await
            .unwrap();
        assert_eq!(bearer.status(), StatusCode::FORBIDDEN, "bearer {token:?}");
    }
    // The right token next to a wrong one: every value presented must match.
    let both = h
        .client
        .post(h.url("/redox"))
        .header("verification-token", TOKEN)
        .bearer_auth(&variants[0])
        .body(notification("near-miss"))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), StatusCode::FORBIDDEN);
    assert!(h.inbox().is_empty());
}

#[tokio::test]
async fn forged_challenges_are_never_echoed() {
    use wharf_protocol::challenge::post_body;
    let h = start("").await;
    let echoes = |text: &str, value: &str| text.contains(value);
    // With the right token, a visible-ASCII challenge is echoed, but only as plain text that
    // browsers may not sniff into HTML and caches may not keep.
    let markup = "<script>alert(1)</script>";
    let response = h.post("/redox", None, post_body(TOKEN, markup)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    // The right token, but a challenge that is not safe to reflect: 400, not echoed.
    for value in [
        "a\r\nSet-Cookie: session=stolen",
        "two words",
        &"a".repeat(300),
        "",
        "caf\u{e9}",
    ] {
        let response = h.post("/redox", None, post_body(TOKEN, value)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{value:?}");
        let text = response.text().await.unwrap();
        assert!(value.is_empty() || !echoes(&text, value), "{text}");
        let response = h
            .client
            .get(h.url("/redox"))
            .query(&[("challenge", value), ("verification-token", TOKEN)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "GET {value:?}");
    }
    // A valid challenge with a wrong, near-miss or missing token: refused, not echoed.
    let challenge = wharf_protocol::challenge::new_challenge();
    for (token, status) in [
        (Some("wrong"), StatusCode::FORBIDDEN),
        (Some(markup), StatusCode::FORBIDDEN),
        (Some(&TOKEN[..TOKEN.len() - 1]), StatusCode::FORBIDDEN),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        let body = match token {
            Some(t) => post_body(t, &challenge),
            None => format!(r#"{{"challenge":"{challenge}"}}"#).into_bytes(),
        };
        let response = h.post("/redox", None, body).await;
        assert_eq!(response.status(), status, "{token:?}");
        assert!(!echoes(&response.text().await.unwrap(), &challenge));
    }
    // A challenge field inside a message is a message: kept, answered with its id.
    let message = format!(
        r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{{"ID":"with-challenge"}}]}},"challenge":"{challenge}"}}"#
    );
    let response = h.post("/redox", Some(TOKEN), message).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!echoes(&response.text().await.unwrap(), &challenge));
    assert_eq!(log_ids(&h), ["with-challenge"]);
}

// ------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------

#[test]
fn configuration_files_with_wrong_types_are_refused_naming_the_key() {
    let good = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"d\"\n{}",
        destination("")
    );
    for (text, key) in [
        (good.replace("\"127.0.0.1:0\"", "8443"), "listen"),
        (
            format!("max_connections = \"many\"\n{good}"),
            "max_connections",
        ),
        (format!("max_connections = -5\n{good}"), "max_connections"),
        (
            format!("body_read_timeout = 60\n{good}"),
            "body_read_timeout",
        ),
        (
            format!("idle_timeout = \"forever\"\n{good}"),
            "idle_timeout",
        ),
        (
            format!("writer_queue_capacity = 1.5\n{good}"),
            "writer_queue_capacity",
        ),
        (format!("admin_token = true\n{good}"), "admin_token"),
        (
            format!("{good}max_body_bytes = \"lots\"\n"),
            "max_body_bytes",
        ),
        (format!("{good}environment = 3\n"), "environment"),
        (
            good.replace("path = \"/redox\"", "path = [\"/redox\"]"),
            "path",
        ),
        ("destinations = \"Acme\"\n".to_owned(), "destinations"),
        (
            format!("{good}[destinations.auth]\nstrategy = 7\n"),
            "strategy",
        ),
    ] {
        let error = Config::parse(&text, &wharf_destination::config::ProcessEnv)
            .err()
            .unwrap_or_else(|| panic!("accepted a wrong type for {key}"));
        assert!(
            error.to_string().contains(key),
            "the error names {key}: {error}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// A full disk
// ------------------------------------------------------------------------------------------

/// A data model message of about `size` bytes.
fn sized_notification(log_id: &str, size: usize) -> String {
    format!(
        r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{{"ID":"{log_id}"}}]}},"Pad":"{}"}}"#,
        "x".repeat(size)
    )
}

/// `/healthz` answers either way (the server and its writer keep running); `/readyz` answers
/// 503 naming the cause while the store refuses writes for lack of space, 200 once not.
async fn assert_full(h: &Harness, full: bool) {
    assert_eq!(
        h.client
            .get(h.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let response = h.client.get(h.url("/readyz")).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    if full {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
        assert!(text.contains("no space left on the device"), "{text}");
    } else {
        assert_eq!(status, StatusCode::OK, "{text}");
    }
}

/// A real full disk: the inbox on a 2 MiB tmpfs, filled with 64 KiB messages.
#[tokio::test]
async fn a_full_disk_answers_503_keeps_what_was_kept_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = wharf_testkit::SmallDisk::mount(&dir.path().join("data"), "2m") else {
        return;
    };
    let mut h = Harness::start_in(dir, &destination(""), "", reqwest::Client::new(), "http").await;
    let disk = disk; // dropped (unmounted) before the harness
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let id = format!("fill-{i}");
        let response = h
            .post("/redox", Some(TOKEN), sized_notification(&id, 64 * 1024))
            .await;
        match response.status() {
            StatusCode::OK => acknowledged.push(id),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                let text = response.text().await.unwrap();
                assert!(text.contains("retry later"), "{text}");
                assert!(
                    text.contains("no space left on the device holding"),
                    "{text}"
                );
                assert!(text.contains(&disk.path().display().to_string()), "{text}");
                refused = Some(id);
                break;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    let refused = refused.expect("a 2 MiB disk fills up");
    assert!(
        acknowledged.len() >= 5,
        "some messages fit: {acknowledged:?}"
    );

    // Still full: refused again, the server itself keeps answering.
    let response = h
        .post(
            "/redox",
            Some(TOKEN),
            sized_notification(&refused, 64 * 1024),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_full(&h, true).await;
    // Everything acknowledged is there; nothing refused is.
    assert_eq!(log_ids(&h), acknowledged);

    // Space returns: ready again, and the sender's retry is kept, without a restart.
    disk.resize("16m");
    assert_full(&h, false).await;
    let response = h
        .post(
            "/redox",
            Some(TOKEN),
            sized_notification(&refused, 64 * 1024),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    acknowledged.push(refused);
    assert_eq!(log_ids(&h), acknowledged);

    h.restart().await;
    assert_eq!(
        log_ids(&h),
        acknowledged,
        "and all of it survives a restart"
    );
}

/// The same on any machine, without mounting anything. SQLite: the inbox database is capped
/// at its current size (`Inbox::limit_pages`), so SQLite fails the next commit with
/// `SQLITE_FULL`, exactly as when the disk under it is full; then the cap is lifted.
/// PostgreSQL: the database refuses writes (as a read-only server would) and then takes them
/// again.
#[tokio::test]
async fn a_full_database_answers_503_keeps_what_was_kept_and_recovers_without_a_restart() {
    let mut h = start("").await;
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let id = format!("before-{i}");
        let response = h.post("/redox", Some(TOKEN), notification(&id)).await;
        assert_eq!(response.status(), StatusCode::OK);
        acknowledged.push(id);
    }
    let inbox = h.running.as_ref().unwrap().inbox().clone();
    match &h.pg {
        Some(pg) => pg.fill_disk(true),
        None => inbox.limit_pages(Some(1)),
    }
    for _ in 0..3 {
        let response = h
            .post(
                "/redox",
                Some(TOKEN),
                sized_notification("while-full", 256 * 1024),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "5");
        // The cause, where, and how much, said plainly.
        let text = response.text().await.unwrap();
        assert!(
            text.contains("no space left on the device holding"),
            "{text}"
        );
        assert!(text.contains("needs at least"), "{text}");
        match &h.pg {
            Some(_) => assert!(text.contains("53100"), "{text}"),
            None => assert!(text.contains("inbox.db"), "{text}"),
        }
    }
    assert_full(&h, true).await;
    let metrics = h
        .client
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("wharf_inbox_refused_no_space_total 3"),
        "{metrics}"
    );
    // Still not ready when asked again: the probe write is refused too.
    assert_full(&h, true).await;
    assert_eq!(log_ids(&h), acknowledged, "what was kept is still there");

    match &h.pg {
        Some(pg) => pg.fill_disk(false),
        None => inbox.limit_pages(None),
    }
    // Ready again once a write succeeds: `/readyz` makes one itself, since a load balancer
    // sends nothing to a server that is not ready.
    assert_full(&h, false).await;
    let response = h
        .post(
            "/redox",
            Some(TOKEN),
            sized_notification("while-full", 256 * 1024),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["duplicate"],
        false
    );
    acknowledged.push("while-full".to_owned());
    assert_eq!(log_ids(&h), acknowledged);

    // The old server's inbox must go with it: a writer still running would hold the SQLite
    // inbox's lock, as a second process would.
    drop(inbox);
    h.restart().await;
    assert_eq!(log_ids(&h), acknowledged);
}
