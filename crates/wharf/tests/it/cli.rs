//! The command line as a user meets it.

use super::*;
use wharf_testkit::{Recorder, Reply};

#[tokio::test]
async fn config_mistakes_exit_2_naming_the_key() {
    let dir = TestDir::new();
    let path = write_config(&dir, 1, "");
    let text = std::fs::read_to_string(&path).unwrap();

    std::fs::write(&path, text.replace("path = \"/redox\"", "path = \"redox\"")).unwrap();
    let out = run(&["destination", "serve", "--config", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("destinations[0].path"),
        "{}",
        stderr(&out)
    );

    std::fs::write(&path, text.replace("Development", "Production")).unwrap();
    let out = run(&["destination", "serve", "--config", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("HTTPS"), "{}", stderr(&out));
    assert!(stderr(&out).contains("tls_cert"), "{}", stderr(&out));

    std::fs::write(&path, format!("{text}max_body_bytes = \"lots\"\n")).unwrap();
    let out = run(&["destination", "serve", "--config", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("max_body_bytes"), "{}", stderr(&out));

    let out = run(&[
        "destination",
        "serve",
        "--config",
        "/nonexistent/wharf.toml",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}

async fn serve(dir: &TestDir) -> (tokio::process::Child, SocketAddr) {
    let port = free_port();
    let path = write_config(dir, port, "");
    let child = wharf()
        .args(["destination", "serve", "--config", path.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_healthy(addr).await;
    (child, addr)
}

#[tokio::test]
async fn verify_prints_success_or_the_reason() {
    let dir = TestDir::new();
    let (_server, addr) = serve(&dir).await;
    let url = format!("http://{addr}/redox");

    for method in ["post", "get"] {
        let out = run(&["verify", &url, "--token", TOKEN, "--method", method]).await;
        assert_eq!(out.status.code(), Some(0), "{method}: {}", stdout(&out));
        assert_eq!(stdout(&out).trim(), "Success!");
    }
    let out = run(&["verify", &url, "--token", "wrong-token"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("HTTP 403"), "{}", stdout(&out));

    // An endpoint that answers 200 without echoing the challenge does not pass.
    let lazy = Recorder::start(|_, _| Reply::json(200, "{\"ok\":true}")).await;
    let out = run(&["verify", &lazy.url("/"), "--token", TOKEN]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("does not contain the challenge"),
        "{}",
        stdout(&out)
    );
    let sent = &lazy.received()[0];
    assert_eq!(sent.header("application-name"), Some("RedoxEngine"));
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["verification-token"], TOKEN);
    assert_eq!(body["challenge"].as_str().unwrap().len(), 36);

    let closed = free_port();
    let out = run(&[
        "verify",
        &format!("http://127.0.0.1:{closed}/redox"),
        "--token",
        TOKEN,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("connection refused"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn send_pushes_files_in_order_and_inbox_lists_them() {
    let dir = TestDir::new();
    let (_server, addr) = serve(&dir).await;
    let url = format!("http://{addr}/redox");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let files = [
        format!("{examples}/patient-admin-arrival.json"),
        format!("{examples}/scheduling-new.json"),
        format!("{examples}/fhir-patient-admin.json"),
    ];
    let mut args = vec!["send", url.as_str(), "--token", TOKEN];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).matches("200 OK").count(),
        3,
        "{}",
        stdout(&out)
    );

    let config = dir.path().join("destination.toml");
    let out = run(&[
        "destination",
        "inbox",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["dataModel"], "PatientAdmin");
    assert_eq!(rows[1]["dataModel"], "Scheduling");
    assert_eq!(rows[2]["kind"], "fhir_message");
    // `send` filled in Meta.Logs, so the duplicate key is the log ID.
    assert!(
        rows[0]["duplicateKey"]
            .as_str()
            .unwrap()
            .starts_with("log:")
    );
    for row in rows {
        assert_eq!(row["status"], "received");
        assert!(row["receivedAt"].as_str().unwrap().ends_with('Z'));
    }

    let out = run(&["destination", "inbox", "--config", config.to_str().unwrap()]).await;
    assert!(stdout(&out).contains("PatientAdmin") && stdout(&out).contains("3 message(s)"));

    let out = run(&["send", &url, "--token", "wrong", &files[0], &files[1]]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("403"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 later file(s) not sent"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn the_examples_travel_inside_the_binary() {
    let dir = TestDir::new();
    let (_server, addr) = serve(&dir).await;
    let url = format!("http://{addr}/redox");
    // From a directory with no examples/ in it.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = wharf()
        .args([
            "send",
            &url,
            "--token",
            TOKEN,
            "--example",
            "adt,scheduling",
        ])
        .args(["--example", "fhir"])
        .current_dir(elsewhere.path())
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let said = stdout(&out);
    let order: Vec<_> = [
        "example adt: 200",
        "example scheduling: 200",
        "example fhir: 200",
    ]
    .iter()
    .map(|line| {
        said.find(line)
            .unwrap_or_else(|| panic!("{line:?} in {said}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{said}");
    let config = dir.path().join("destination.toml");
    let rows = inbox_json(config.to_str().unwrap(), &[]).await;
    let models: Vec<_> = rows.iter().map(|r| r["dataModel"].clone()).collect();
    assert_eq!(models, ["PatientAdmin", "Scheduling", "FHIR"]);

    // `wharf examples` lists them; --write puts out the repository's files byte for byte.
    let out = run(&["examples"]).await;
    assert_eq!(out.status.code(), Some(0));
    for name in ["adt", "scheduling", "fhir", "query"] {
        assert!(stdout(&out).contains(name), "{}", stdout(&out));
    }
    let written = elsewhere.path().join("out");
    let out = run(&["examples", "--write", written.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut names = 0;
    for entry in std::fs::read_dir(&repo).unwrap() {
        let entry = entry.unwrap();
        let copy = std::fs::read(written.join(entry.file_name())).unwrap();
        assert_eq!(
            copy,
            std::fs::read(entry.path()).unwrap(),
            "{:?}",
            entry.file_name()
        );
        names += 1;
    }
    assert_eq!(names, 4, "every file in examples/ is bundled");

    // An unknown name is a usage mistake that lists the known ones.
    let out = run(&["send", &url, "--token", TOKEN, "--example", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("adt, scheduling, fhir, query"),
        "{}",
        stderr(&out)
    );
}

/// `wharf destination SUBCOMMAND --config CONFIG ARGS...`.
async fn destination(subcommand: &str, config: &str, args: &[&str]) -> Output {
    let mut all = vec!["destination", subcommand, "--config", config];
    all.extend_from_slice(args);
    run(&all).await
}

/// The rows of `wharf destination inbox --config CONFIG --json ARGS...`.
async fn inbox_json(config: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = destination("inbox", config, &all).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An operator's inbox commands beside a running server: pages of the listing, one body
/// byte for byte, and discarding malformed messages (and nothing else).
#[tokio::test]
async fn inbox_pages_shows_a_body_and_discards_only_malformed_messages() {
    let dir = TestDir::new();
    let (_server, addr) = serve(&dir).await;
    let url = format!("http://{addr}/redox");
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        client
            .post(&url)
            .header("verification-token", TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let mut bodies = Vec::new();
    for i in 0..5 {
        let body = if i == 3 {
            // Not JSON, and not UTF-8 either: kept as malformed, shown byte for byte.
            b"\xff\xfe not json <3>".to_vec()
        } else {
            format!(
                r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{{"ID":"log-{i}"}}]}},"n":{i}}}"#
            )
            .into_bytes()
        };
        let response = post(body.clone()).await.unwrap();
        assert_eq!(response.status(), 200);
        bodies.push(body);
    }
    let config = dir.path().join("destination.toml");
    let config = config.to_str().unwrap();
    let all = inbox_json(config, &[]).await;
    assert_eq!(all.len(), 5);
    let seq = |row: &serde_json::Value| row["sequence"].as_i64().unwrap();

    // Pages forward by sequence number, and the newest first.
    let first = inbox_json(config, &["--limit", "2"]).await;
    assert_eq!(first.len(), 2);
    let after = seq(&first[1]).to_string();
    let second = inbox_json(config, &["--after", &after, "--limit", "2"]).await;
    assert_eq!(
        second.iter().map(seq).collect::<Vec<_>>(),
        [seq(&all[2]), seq(&all[3])]
    );
    let newest = inbox_json(config, &["--newest", "--limit", "2"]).await;
    assert_eq!(
        newest.iter().map(seq).collect::<Vec<_>>(),
        [seq(&all[4]), seq(&all[3])]
    );
    let malformed = inbox_json(config, &["--status", "malformed"]).await;
    assert_eq!(malformed.len(), 1);
    assert_eq!(malformed[0]["id"], all[3]["id"]);
    let table = destination("inbox", config, &["--status", "received"]).await;
    assert!(
        stdout(&table).starts_with("     SEQ  ID"),
        "{}",
        stdout(&table)
    );
    assert!(
        stdout(&table).contains("4 message(s)"),
        "{}",
        stdout(&table)
    );
    let out = destination("inbox", config, &["--status", "lost"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "a wrong status is a usage mistake"
    );

    // One body, exactly as received, to standard output or a file.
    for (row, body) in all.iter().zip(&bodies) {
        let id = row["id"].as_str().unwrap();
        let out = destination("message", config, &[id]).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(&out.stdout, body);
    }
    let file = dir.path().join("body.bin");
    let bad_id = all[3]["id"].as_str().unwrap();
    let out = destination(
        "message",
        config,
        &[bad_id, "--output", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), bodies[3]);
    let out = destination("message", config, &["no-such-id"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no message no-such-id"),
        "{}",
        stderr(&out)
    );

    // Only the malformed message is discarded; a good one is refused, saying why.
    let good_id = all[0]["id"].as_str().unwrap();
    let out = destination("discard", config, &[bad_id, good_id]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("discarded {bad_id}")),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!(
            "not discarded {good_id}: no such message, or it is not malformed"
        )),
        "{}",
        stdout(&out)
    );
    let left = inbox_json(config, &[]).await;
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|row| row["status"] == "received"));
    let out = destination("message", config, &[bad_id]).await;
    assert_eq!(out.status.code(), Some(1));
    // The running server still keeps messages after the command wrote beside it.
    assert_eq!(post(b"{\"Meta\":{}}".to_vec()).await.unwrap().status(), 200);
    assert_eq!(inbox_json(config, &[]).await.len(), 5);
}

/// Runs `wharf hash-password` with `input` on standard input.
async fn hash_password(input: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = wharf()
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    child.wait_with_output().await.unwrap()
}

#[tokio::test]
async fn hash_password_prints_a_hash_the_engine_accepts() {
    let out = hash_password("a long dashboard passphrase\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let phc = stdout(&out).trim().to_owned();
    assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
    assert!(!phc.contains("passphrase"));
    let config = format!(
        "api_keys = [\"management-key-0123456789-0123456\"]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\ndashboard_password_hash = \"{phc}\"\n"
    );
    let parsed = wharf_engine::EngineConfig::parse(&config, &wharf_config::ProcessEnv).unwrap();
    assert_eq!(
        parsed.dashboard_password_hash.as_deref(),
        Some(phc.as_str())
    );

    let short = hash_password("short\n").await;
    assert_eq!(short.status.code(), Some(2));
    assert!(stderr(&short).contains("at least 12 characters"));
}

/// A poison message from the operator's side, beside a running server whose application
/// refuses one message: `skip` moves it to the dead letters (the server's forwarder notices
/// and the rest goes on), `dead-letters` lists it with why, `replay` puts it back and, the
/// application fixed, it is forwarded. Each refuses what it does not apply to, saying why.
#[tokio::test]
async fn skip_lists_and_replays_a_poison_message_beside_a_running_server() {
    let refusing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let refuse = refusing.clone();
    let app = Recorder::start(move |_, r| {
        let poison = r.body.windows(6).any(|w| w == b"poison");
        if poison && refuse.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::status(422)
        } else {
            Reply::status(200)
        }
    })
    .await;
    let dir = TestDir::new();
    let port = free_port();
    let config = write_config(
        &dir,
        port,
        &format!(
            "forward_url = \"{}\"\nforward_max_backoff = \"200ms\"",
            app.url("/app")
        ),
    );
    let mut server = wharf()
        .args(["destination", "serve", "--config", config.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_healthy(addr).await;
    let config = config.to_str().unwrap();
    let client = reqwest::Client::new();
    for id in ["poison", "after"] {
        let body = format!(
            r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{{"ID":"{id}"}}]}}}}"#
        );
        let response = client
            .post(format!("http://{addr}/redox"))
            .header("verification-token", TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert!(wharf_testkit::wait_until(Duration::from_secs(20), || app.count() >= 2).await);
    let rows = inbox_json(config, &[]).await;
    let (poison, after) = (
        rows[0]["id"].as_str().unwrap().to_owned(),
        rows[1]["id"].as_str().unwrap().to_owned(),
    );
    assert_eq!(rows[0]["lastError"], "the application answered HTTP 422");
    assert!(rows[0]["firstFailedAt"].is_string(), "{}", rows[0]);
    assert_eq!(
        rows[1]["status"], "received",
        "held behind the poison message"
    );

    let out = destination("skip", config, &["--reason", "ticket 42", &poison]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("moved to the dead letters {poison}")));
    let out = destination("skip", config, &[&poison]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not waiting to be forwarded"),
        "{}",
        stdout(&out)
    );
    let forwarded = |id: &str| {
        let id = id.to_owned();
        async move {
            inbox_json(config, &[])
                .await
                .iter()
                .any(|r| r["id"] == id.as_str() && r["status"] == "forwarded")
        }
    };
    let mut moved_on = false;
    for _ in 0..200 {
        if forwarded(&after).await {
            moved_on = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved_on, "the forwarder went on after the skip");

    let out = destination("dead-letters", config, &["--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dead: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], poison.as_str());
    assert_eq!(dead[0]["status"], "dead_letter");
    assert_eq!(dead[0]["deadLetterReason"], "ticket 42");
    let out = destination("dead-letters", config, &[]).await;
    assert!(
        stdout(&out).contains("dead_letter (ticket 42; after"),
        "{}",
        stdout(&out)
    );

    refusing.store(false, std::sync::atomic::Ordering::SeqCst);
    let out = destination("replay", config, &[&poison, &after]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("replayed {poison}")),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("not a dead letter"),
        "{}",
        stdout(&out)
    );
    let mut sent = false;
    for _ in 0..200 {
        if forwarded(&poison).await {
            sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(sent, "the replayed message was forwarded");
    let _ = server.kill().await;
}
