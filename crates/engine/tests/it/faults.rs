//! Faults between the engine and a destination, and under the engine's own store: a
//! destination that hangs, answers slowly, resets connections or answers 2xx after the delivery
//! timeout, and a store that cannot be written. In every case nothing acknowledged is lost and
//! order is kept. (SIGKILL during Verify and Save is in the `wharf` crate's tests: it needs the
//! engine as a process.)

use super::delivery::{SOURCE_KEY, TOKEN, messages, org_id, submit, verified_destination};
use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Retries quickly, gives a destination 1 s per delivery.
fn config() -> String {
    format!(
        "retry_ladder = [\"0s\", \"200ms\"]\ndelivery_timeout = \"1s\"\n[[sources]]\nname = \"EHR feed\"\napi_key = \"{SOURCE_KEY}\"\n"
    )
}

fn challenge_answer(r: &Received) -> Option<Reply> {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let challenge = body["challenge"].as_str()?;
    Some(Reply {
        status: 200,
        content_type: "text/plain",
        body: challenge.as_bytes().to_vec(),
        delay: Duration::ZERO,
    })
}

async fn submitted(engine: &Engine, destination: &str, n: usize) -> String {
    let response = submit(engine, &[destination], n).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned()
}

async fn log(engine: &Engine, id: &str) -> Value {
    let org = org_id(engine).await;
    engine
        .get(&format!("/platform/v1/organizations/{org}/logs/{id}"))
        .await
        .1["payload"]["result"]
        .clone()
}

/// Waits (up to 30 s) until `check` holds for the log, and returns it.
async fn log_until(engine: &Engine, id: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let found = log(engine, id).await;
        if check(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("log {id} never got there: {}", log(engine, id).await);
}

fn attempts(log: &Value) -> Vec<Value> {
    log["attemptList"].as_array().cloned().unwrap_or_default()
}

/// The Log IDs the destination received, in order.
fn log_ids(endpoint: &Recorder) -> Vec<String> {
    messages(endpoint)
        .iter()
        .map(|m| m["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_hanging_destination_holds_its_queue_until_it_recovers() {
    let engine = Engine::start_with(true, &config()).await;
    let hanging = Arc::new(AtomicBool::new(true));
    let hang = hanging.clone();
    let destination_server = Recorder::start(move |_, r| {
        challenge_answer(r).unwrap_or_else(|| {
            if hang.load(Ordering::SeqCst) {
                // Accepts the request and never answers.
                Reply::status(200).after(Duration::from_secs(3600))
            } else {
                Reply::status(200)
            }
        })
    })
    .await;
    let destination = verified_destination(&engine, &destination_server).await;
    let first = submitted(&engine, &destination, 1).await;
    let second = submitted(&engine, &destination, 2).await;
    let held = log_until(&engine, &first, |l| attempts(l).len() >= 2).await;
    for attempt in attempts(&held) {
        let error = attempt["error"].as_str().unwrap();
        assert!(error.starts_with("timeout"), "{error}");
        let ms = attempt["durationMs"].as_i64().unwrap();
        assert!((1000..5000).contains(&ms), "gave up after {ms} ms");
        assert_eq!(attempt["status"], "failed");
    }
    assert_eq!(held["status"], "pending");
    let (_, queue) = engine
        .get(&format!("/platform/v1/destinations/{destination}/queue"))
        .await;
    assert_eq!(queue["payload"]["queue"]["state"], "held");
    assert_eq!(queue["payload"]["queue"]["reason"], "delivery failing");
    assert_eq!(queue["payload"]["queue"]["depth"], 2);
    assert!(
        log_ids(&destination_server).iter().all(|id| *id == first),
        "nothing behind the hanging head was sent"
    );

    hanging.store(false, Ordering::SeqCst);
    log_until(&engine, &second, |l| l["status"] == "succeeded").await;
    assert_eq!(log(&engine, &first).await["status"], "succeeded");
    let mut received = log_ids(&destination_server);
    received.dedup();
    assert_eq!(received, [first, second], "both delivered, in order");
}

#[tokio::test]
async fn a_slow_destination_within_the_timeout_is_fine() {
    let engine = Engine::start_with(
        true,
        &config().replace("delivery_timeout = \"1s\"", "delivery_timeout = \"3s\""),
    )
    .await;
    let slow = Recorder::start(|_, r| {
        challenge_answer(r).unwrap_or_else(|| Reply::status(200).after(Duration::from_millis(1500)))
    })
    .await;
    let destination = verified_destination(&engine, &slow).await;
    let id = submitted(&engine, &destination, 1).await;
    let done = log_until(&engine, &id, |l| l["status"] == "succeeded").await;
    let attempts = attempts(&done);
    assert_eq!(attempts.len(), 1, "{done}");
    assert_eq!(attempts[0]["statusCode"], 200);
    assert!(attempts[0]["durationMs"].as_i64().unwrap() >= 1500);
    assert_eq!(log_ids(&slow), [id]);
}

#[tokio::test]
async fn a_2xx_after_the_timeout_counts_as_a_failure_and_is_redelivered() {
    let engine = Engine::start_with(true, &config()).await;
    // The first message is answered 200 after 2 s: the destination kept it, but the engine
    // gave up at 1 s, so it sends it again (at least once); the destination de-duplicates by
    // Meta.Logs[0].ID, which the retry carries unchanged.
    let late = Recorder::start(|n, r| {
        challenge_answer(r).unwrap_or_else(|| {
            if n == 1 {
                Reply::status(200).after(Duration::from_secs(2))
            } else {
                Reply::status(200)
            }
        })
    })
    .await;
    let destination = verified_destination(&engine, &late).await;
    let id = submitted(&engine, &destination, 1).await;
    let done = log_until(&engine, &id, |l| l["status"] == "succeeded").await;
    let attempts = attempts(&done);
    assert_eq!(attempts.len(), 2, "{done}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("timeout"),
        "{done}"
    );
    assert_eq!(attempts[1]["statusCode"], 200);
    let sent = messages(&late);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["Meta"]["Logs"][0]["ID"], id.as_str());
    assert_eq!(sent[1]["Meta"]["Logs"][0]["ID"], id.as_str());
    assert_ne!(
        sent[0]["Meta"]["Logs"][0]["AttemptID"],
        sent[1]["Meta"]["Logs"][0]["AttemptID"]
    );
    assert_eq!(sent[0]["Patient"], sent[1]["Patient"]);
}

/// A destination that speaks just enough HTTP/1.1: it answers challenges, resets the
/// connection (TCP RST, after reading the request head) of the first `resets` messages, and
/// answers 200 to the rest, keeping their bodies.
async fn resetting(resets: usize) -> (std::net::SocketAddr, Arc<std::sync::Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    let keep = kept.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (keep, seen) = (keep.clone(), seen.clone());
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).await.is_err() {
                    return;
                }
                let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let answer = if let Some(challenge) = value["challenge"].as_str() {
                    challenge.to_owned()
                } else if seen.fetch_add(1, Ordering::SeqCst) < resets {
                    // SO_LINGER 0: close with RST instead of FIN, mid-exchange.
                    let socket = reader.into_inner();
                    socket.set_zero_linger().unwrap();
                    drop(socket);
                    return;
                } else {
                    keep.lock().unwrap().push(value);
                    String::new()
                };
                let mut socket = reader.into_inner();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, kept)
}

#[tokio::test]
async fn connection_resets_are_recorded_and_retried() {
    let engine = Engine::start_with(true, &config()).await;
    let (addr, kept) = resetting(2).await;
    let destination =
        create_destination(&engine, &format!("http://{addr}/redox"), TOKEN, "POST").await;
    let (status, body) = engine
        .post(
            &format!("/platform/v1/destinations/{destination}/verify"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = submitted(&engine, &destination, 1).await;
    let done = log_until(&engine, &id, |l| l["status"] == "succeeded").await;
    let attempts = attempts(&done);
    assert_eq!(attempts.len(), 3, "{done}");
    for failed in &attempts[..2] {
        let error = failed["error"].as_str().unwrap();
        assert!(error.starts_with("connection reset: "), "{error}");
        assert!(error.contains("Connection reset by peer"), "{error}");
        assert_eq!(failed["statusCode"], Value::Null);
    }
    let kept = kept.lock().unwrap().clone();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["Meta"]["Logs"][0]["ID"], id.as_str());
}

#[tokio::test]
async fn a_store_that_cannot_be_written_answers_503_and_loses_nothing() {
    let engine = Engine::start_with(true, &config()).await;
    let refusing = Arc::new(AtomicBool::new(true));
    let refuse = refusing.clone();
    let destination_server = Recorder::start(move |_, r| {
        challenge_answer(r).unwrap_or_else(|| {
            if refuse.load(Ordering::SeqCst) {
                Reply::status(503)
            } else {
                Reply::status(200)
            }
        })
    })
    .await;
    let destination = verified_destination(&engine, &destination_server).await;
    // Acknowledged before the fault, held in the queue by a refusing destination.
    let before = [
        submitted(&engine, &destination, 1).await,
        submitted(&engine, &destination, 2).await,
    ];

    // Every write refused, reads still served. SQLite: another process holds the database's
    // write lock, so every write the engine tries waits out its busy timeout (10 s) and fails,
    // as on a read-only or full disk. PostgreSQL: the database refuses writes as a read-only
    // server does after a failover to a standby.
    let lock = match &engine.pg {
        Some(pg) => {
            pg.refuse_writes(true);
            None
        }
        None => {
            let lock = rusqlite::Connection::open(engine.data_dir().join("engine.db")).unwrap();
            lock.execute_batch("BEGIN IMMEDIATE").unwrap();
            Some(lock)
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let refused = client
        .post(format!("{}/endpoint", engine.base))
        .bearer_auth(SOURCE_KEY)
        .json(
            &json!({"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
            "Destinations": [{"ID": destination}]}, "Patient": {"Number": 3}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = refused.json().await.unwrap();
    assert!(error(&body).contains("nothing was queued"), "{body}");
    let ready = client
        .get(format!("{}/readyz", engine.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Writable again: ingestion and delivery carry on, and everything acknowledged arrives.
    match lock {
        Some(lock) => lock.execute_batch("ROLLBACK").unwrap(),
        None => engine.pg.as_ref().unwrap().refuse_writes(false),
    }
    refusing.store(false, Ordering::SeqCst);
    let after = submitted(&engine, &destination, 4).await;
    log_until(&engine, &after, |l| l["status"] == "succeeded").await;
    let mut received = log_ids(&destination_server);
    received.dedup();
    assert_eq!(received, [before[0].clone(), before[1].clone(), after]);
    let numbers: Vec<i64> = messages(&destination_server)
        .iter()
        .map(|m| m["Patient"]["Number"].as_i64().unwrap())
        .collect();
    assert!(!numbers.contains(&3), "the refused message was not kept");
    let org = org_id(&engine).await;
    let (_, logs) = engine
        .get(&format!("/platform/v1/organizations/{org}/logs"))
        .await;
    assert_eq!(logs["payload"]["results"].as_array().unwrap().len(), 3);
}

/// A full disk said plainly: ingestion refused for lack of space answers 503 naming the cause
/// and the database, `/readyz` answers 503 while the store refuses writes and 200 once it has
/// room again, and `/metrics` counts the refusals. SQLite: the engine's data directory is a
/// real 3 MiB tmpfs filled with 256 KiB messages, then grown (needs root, as in CI; says
/// SKIPPED otherwise). PostgreSQL: the database answers `disk_full` (53100) to every write.
#[tokio::test]
async fn a_full_disk_is_named_in_the_503_and_readyz_until_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let pg = wharf_testkit::postgres::backend_is_postgres()
        .then(wharf_testkit::postgres::PgSchema::create);
    let disk = match &pg {
        Some(_) => None,
        None => match wharf_testkit::SmallDisk::mount(&dir.path().join("engine"), "3m") {
            Some(disk) => Some(disk),
            None => return,
        },
    };
    let engine = Engine::start_on(dir, pg, true, &config(), |_| {}).await;
    let destination_server = Recorder::start(|_, r| {
        // Held: every message stays queued, so the store keeps growing.
        challenge_answer(r).unwrap_or_else(|| Reply::status(503))
    })
    .await;
    let destination = verified_destination(&engine, &destination_server).await;
    let ingest = |n: usize| {
        engine
            .client
            .post(format!("{}/endpoint", engine.base))
            .bearer_auth(SOURCE_KEY)
            .json(
                &json!({"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                "Destinations": [{"ID": destination}]}, "Patient": {"Number": n},
                "Pad": "x".repeat(256 * 1024)}),
            )
            .send()
    };
    if let Some(pg) = &engine.pg {
        pg.fill_disk(true);
    }
    let mut refused = None;
    for n in 0..64 {
        let response = ingest(n).await.unwrap();
        match response.status() {
            StatusCode::OK => continue,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "5");
                refused = Some(response.json::<Value>().await.unwrap());
                break;
            }
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    let refused = refused.expect("the disk fills up");
    let text = error(&refused);
    assert!(
        text.contains("no space left on the device holding"),
        "{text}"
    );
    assert!(text.contains("nothing was queued"), "{text}");
    match &disk {
        Some(disk) => assert!(text.contains(&disk.path().display().to_string()), "{text}"),
        None => assert!(text.contains("53100"), "{text}"),
    }
    let get = |path: &str| engine.client.get(format!("{}{path}", engine.base)).send();
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let why = ready.text().await.unwrap();
    assert!(why.contains("no space left on the device"), "{why}");
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("wharf_store_refused_no_space_total "))
        .unwrap_or_else(|| panic!("no refusal counter in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(counted >= 1, "{metrics}");

    match (&disk, &engine.pg) {
        (Some(disk), _) => disk.resize("64m"),
        (None, Some(pg)) => pg.fill_disk(false),
        (None, None) => unreachable!(),
    }
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(ingest(1000).await.unwrap().status(), StatusCode::OK);
    drop(engine);
}
