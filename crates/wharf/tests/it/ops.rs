//! The binary as an operator runs it: JSON logs that carry request ids and never a secret or
//! a message body, `check-config` for both kinds of file, SIGTERM that drains and exits 0,
//! and `send`'s progress bar on a terminal (plain lines otherwise).

use super::*;

#[tokio::test]
async fn json_logs_carry_request_ids_and_never_a_secret_or_a_body() {
    let dir = TestDir::new();
    let port = free_port();
    let config = write_config(&dir, port, "");
    let child = wharf()
        .env("RUST_LOG", "debug")
        .args(["--log-format", "json", "destination", "serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_healthy(addr).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/redox");
    let body = r#"{"Meta":{"DataModel":"PatientAdmin","EventType":"Arrival"},"Patient":{"Demographics":{"FirstName":"PHI-FIRST-NAME-7731"}}}"#;
    let ok = client
        .post(&url)
        .header("verification-token", TOKEN)
        .header("x-request-id", "req-ops-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let wrong = client
        .post(&url)
        .header("verification-token", "WRONG-TOKEN-4242")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let malformed = client
        .post(&url)
        .header("verification-token", TOKEN)
        .body("not json PHI-MALFORMED-9911")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 200);

    // SIGTERM: drains and exits 0.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 5, "{logs}");
    for line in &lines {
        let parsed: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            parsed["timestamp"].is_string() && parsed["level"].is_string(),
            "{line}"
        );
    }
    for secret in [
        TOKEN,
        "WRONG-TOKEN-4242",
        "PHI-FIRST-NAME-7731",
        "PHI-MALFORMED-9911",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
    assert!(
        logs.contains("req-ops-1"),
        "the request id is in the request's log lines:\n{logs}"
    );
    assert!(
        logs.contains("wrong_token"),
        "refusals are logged with their reason"
    );
}

#[tokio::test]
async fn check_config_validates_both_kinds_without_starting_anything() {
    let dir = TestDir::new();
    let port = free_port();
    let config = write_config(&dir, port, "");
    let out = run(&["check-config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ok: destination server configuration"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("Acme at /redox (Development)"));
    // On PostgreSQL it connects and reads the schema; on SQLite there is nothing to ask.
    assert_eq!(
        stdout(&out).contains("  database: "),
        dir.database_url().is_some(),
        "{}",
        stdout(&out)
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "nothing listens"
    );

    let bad = write_config(&dir, port, "forward_url = \"ftp://x\"");
    let out = run(&["check-config", bad.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("destinations[0].forward_url"),
        "{}",
        stderr(&out)
    );

    // A guessable verification token: refused, naming the key and how to make a good one.
    let short = std::fs::read_to_string(&config)
        .unwrap()
        .replace(TOKEN, "short-token");
    let weak = dir.path().join("weak.toml");
    std::fs::write(&weak, short).unwrap();
    let out = run(&["check-config", weak.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("destinations[0].verification_token")
            && stderr(&out).contains("openssl rand -hex 32")
            && !stderr(&out).contains("short-token"),
        "{}",
        stderr(&out)
    );

    let engine = dir.path().join("engine.toml");
    std::fs::write(
        &engine,
        "organization = \"Acme\"\napi_keys = [\"key-0123456789abcdef-0123456789ab\"]\nmaster_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n",
    )
    .unwrap();
    let out = run(&["check-config", engine.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ok: engine configuration"),
        "{}",
        stdout(&out)
    );
    std::fs::write(
        &engine,
        "organization = \"Acme\"\napi_keys = [\"key-0123456789abcdef-0123456789ab\"]\nmaster_key = \"short\"\n",
    )
    .unwrap();
    let out = run(&["check-config", engine.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("master_key"), "{}", stderr(&out));

    // An unreadable TLS key is caught before any restart.
    let tls = write_config(&dir, port, "");
    let text = std::fs::read_to_string(&tls).unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "not a key").unwrap();
    std::fs::write(
        &tls,
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n{text}",
            key.display(),
            key.display()
        ),
    )
    .unwrap();
    let out = run(&["check-config", tls.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("tls_cert"), "{}", stderr(&out));
}

#[tokio::test]
async fn check_config_reads_the_database_schema_without_changing_it() {
    // Always on PostgreSQL: this is about database_url, whatever backend the suite runs on.
    let pg = wharf_testkit::postgres::PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("destination.toml");
    let write = |url: &str| {
        std::fs::write(
            &config,
            format!(
                "database_url = {url:?}\n[[destinations]]\nname = \"Acme\"\npath = \"/redox\"\nenvironment = \"Development\"\nverification_token = \"{TOKEN}\"\n"
            ),
        )
        .unwrap();
    };
    // Fails (an exception) once the test's schema holds any table.
    let schema_is_empty = || {
        let sql = format!(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = '{}') THEN RAISE EXCEPTION 'tables exist'; END IF; END $$",
            pg.name
        );
        wharf_store::postgres::execute(&pg.url, &sql).is_ok()
    };

    write(&pg.url);
    let out = run(&["check-config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is reachable; its inbox tables will be created at start"),
        "{}",
        stdout(&out)
    );
    assert!(schema_is_empty(), "check-config created nothing");

    // Migrated by a newer wharf: refused now, not at the next restart.
    wharf_store::postgres::execute(
        &pg.url,
        "CREATE TABLE schema_migrations (component TEXT, version BIGINT); \
         INSERT INTO schema_migrations VALUES ('inbox', 99)",
    )
    .unwrap();
    assert!(!schema_is_empty());
    let out = run(&["check-config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("schema version 99 of the inbox tables, newer than this binary"),
        "{}",
        stderr(&out)
    );

    // Nobody listening: the file is fine (not status 2), the database is not.
    write(&format!(
        "postgres://postgres@127.0.0.1:{}/test",
        free_port()
    ));
    let out = run(&["check-config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("its database cannot be used"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn send_shows_a_progress_bar_on_a_terminal_and_plain_lines_otherwise() {
    let dir = TestDir::new();
    let port = free_port();
    let config = write_config(&dir, port, "");
    let _server = wharf()
        .args(["destination", "serve", "--config", config.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_healthy(addr).await;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let files = [
        format!("{examples}/patient-admin-arrival.json"),
        format!("{examples}/scheduling-new.json"),
        format!("{examples}/fhir-patient-admin.json"),
    ];
    let url = format!("http://{addr}/redox");
    // Plain: stdout is a pipe.
    let mut args = vec!["send", url.as_str(), "--token", TOKEN];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args).await;
    assert_eq!(out.status.code(), Some(0));
    let plain = stdout(&out);
    assert_eq!(plain.lines().count(), 3, "one line per file:\n{plain}");
    assert!(!plain.contains("files sent"));

    // A terminal: run under `script`, which gives the command a pseudo-terminal.
    let command = format!(
        "{} send {url} --token {TOKEN} {}",
        env!("CARGO_BIN_EXE_wharf"),
        files.join(" ")
    );
    let out = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .await
        .expect("`script` (util-linux) runs commands on a pseudo-terminal");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("3/3 files sent"), "a progress bar:\n{shown}");
    assert_eq!(shown.matches("200 OK").count(), 3, "{shown}");
}

/// Issue 26, item 10: the example configurations hold no secret and allow no private endpoint.
/// They pass `check-config` with fresh secrets in the environment, and without them the error
/// names the variable to set; a placeholder value is refused.
#[tokio::test]
async fn the_example_configurations_take_their_secrets_from_the_environment() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");
    let (engine, destination) = (
        format!("{root}/engine.toml"),
        format!("{root}/destination.toml"),
    );
    for file in [&engine, &destination] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("change-me"),
            "{file} ships a placeholder secret"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("allow_private_endpoints = true")),
            "{file} allows private endpoints"
        );
    }
    let fresh = |n: u8| format!("test-secret-{n}-{}", "0123456789abcdef".repeat(2));
    let checked = |file: &str, vars: &[(&str, String)]| {
        let mut command = wharf();
        command.args(["check-config", file]);
        for (name, value) in vars {
            command.env(name, value);
        }
        command.output()
    };
    let secrets = [
        (
            "WHARF_MASTER_KEY",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
        ),
        ("WHARF_API_KEYS", fresh(1)),
        ("WHARF_SOURCE_KEY", fresh(2)),
    ];
    let out = checked(&engine, &secrets).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = checked(&engine, &secrets[..2]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("WHARF_SOURCE_KEY"),
        "{}",
        stderr(&out)
    );
    let shared = [
        secrets[0].clone(),
        secrets[1].clone(),
        ("WHARF_SOURCE_KEY", fresh(1)),
    ];
    let out = checked(&engine, &shared).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("same key"), "{}", stderr(&out));

    let token = [("WHARF_VERIFICATION_TOKEN", fresh(3))];
    let out = checked(&destination, &token).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let placeholder = [(
        "WHARF_VERIFICATION_TOKEN",
        "change-me-to-a-long-random-token".to_owned(),
    )];
    let out = checked(&destination, &placeholder).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("placeholder"), "{}", stderr(&out));
}
