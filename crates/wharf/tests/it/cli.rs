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
        "api_keys = [\"management-key-0123456789\"]\nmaster_key = \"master-key-0123456789abcdef0123456789\"\ndashboard_password_hash = \"{phc}\"\n"
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
