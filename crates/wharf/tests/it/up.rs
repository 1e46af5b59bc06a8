//! `wharf up` as a new user meets it, and the engine killed with SIGKILL mid-traffic.

use super::*;
use std::collections::{HashMap, HashSet};
use tokio::io::{AsyncBufReadExt, BufReader};

struct Up {
    child: tokio::process::Child,
    /// Kept open: closing the pipe would make the child's later prints fail.
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    engine: String,
    key: String,
    destination: String,
    /// Everything printed, up to and including the send command.
    printed: Vec<String>,
    /// The ready-to-paste send command, as printed.
    send: String,
}

/// Starts `wharf up` (on the test's database) and reads what it prints until the
/// ready-to-paste send command.
async fn up(dir: &TestDir, data_dir: &Path, engine_port: u16, destination_port: u16) -> Up {
    let mut command = wharf();
    command.args([
        "up",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--engine-listen",
        &format!("127.0.0.1:{engine_port}"),
        "--destination-listen",
        &format!("127.0.0.1:{destination_port}"),
    ]);
    if let Some(url) = dir.database_url() {
        command.args(["--database-url", url]);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let send = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if line.contains(" send --engine ") {
                return line.trim().to_owned();
            }
        }
        panic!("wharf up exited without printing the send command: {printed:?}");
    })
    .await
    .expect("wharf up did not become ready");
    let words: Vec<&str> = send.split_whitespace().collect();
    let after = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1].to_owned();
    Up {
        child,
        _stdout: lines,
        engine: after("--engine"),
        key: after("--key"),
        destination: after("--destination"),
        printed,
        send,
    }
}

/// A printed command run exactly as printed, by a shell, in `cwd`.
async fn run_as_printed(command: &str, cwd: &Path) -> std::process::Output {
    tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap()
}

/// The value printed after `label` (`  verification token:  VALUE  (...)`).
fn printed_value(up: &Up, label: &str) -> String {
    let line = up
        .printed
        .iter()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("wharf up printed no {label:?} line: {:?}", up.printed));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// `wharf destination inbox --json` as `wharf up` tells the user to run it.
fn inbox(dir: &TestDir, data_dir: &Path) -> Vec<serde_json::Value> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
    command.args(["destination", "inbox", "--json", "--limit", "1000000"]);
    match dir.database_url() {
        Some(url) => command.args(["--database-url", url]),
        None => command.arg("--data-dir").arg(data_dir.join("destination")),
    };
    let out = command.output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[tokio::test]
async fn up_then_the_printed_send_command_delivers_the_examples_in_order() {
    let dir = TestDir::new();
    let data = dir.path().join("wharf-data");
    let (engine_port, destination_port) = (free_port(), free_port());
    let mut first = up(&dir, &data, engine_port, destination_port).await;

    // The command works as printed from a directory with no examples/ in it (in /tmp, as the
    // README promises): the binary by its absolute path, the examples from inside the binary.
    let elsewhere = tempfile::tempdir_in("/tmp").unwrap();
    assert!(
        first.send.starts_with(env!("CARGO_BIN_EXE_wharf")),
        "{}",
        first.send
    );
    assert!(!first.send.contains("examples/"), "{}", first.send);
    let out = run_as_printed(&first.send, elsewhere.path()).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stdout(&out).matches("200 OK (log ").count(),
        3,
        "{}",
        stdout(&out)
    );
    let delivered =
        wharf_testkit::wait_until(Duration::from_secs(20), || inbox(&dir, &data).len() >= 3).await;
    assert!(delivered, "the examples did not reach the destination");
    let rows = inbox(&dir, &data);
    let models: Vec<_> = rows
        .iter()
        .map(|r| r["dataModel"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(models, ["PatientAdmin", "Scheduling", "FHIR"]);

    // The printed inbox command works from elsewhere too (an absolute data path, on SQLite).
    if dir.database_url().is_none() {
        let line = first
            .printed
            .iter()
            .find(|l| l.trim_start().starts_with("inbox:"))
            .expect("an inbox line");
        let command = line.trim_start().trim_start_matches("inbox:").trim();
        assert!(
            command.contains(&*data.join("destination").to_string_lossy()),
            "{command}"
        );
        let out = run_as_printed(command, elsewhere.path()).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).contains("3 message(s)"), "{}", stdout(&out));
    }

    // The verification token the wizard asks for is printed, and the destination takes it.
    let token = printed_value(&first, "verification token:");
    let verify = run(&[
        "verify",
        &format!("http://127.0.0.1:{destination_port}/redox"),
        "--token",
        &token,
    ])
    .await;
    assert_eq!(stdout(&verify).trim(), "Success!", "{}", stderr(&verify));

    // A restart finds the same destination, still verified: nothing to set up again.
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    let mut second = up(&dir, &data, engine_port, destination_port).await;
    assert_eq!(second.destination, first.destination);
    assert_eq!(second.key, first.key);
    second.child.start_kill().unwrap();
}

#[tokio::test]
async fn a_taken_port_is_named_by_the_flag_that_chose_it() {
    let dir = TestDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for (flag, engine, destination) in [
        ("--destination-listen", free_port(), port),
        ("--engine-listen", port, free_port()),
    ] {
        let data = dir.path().join(format!("data{}", flag.len()));
        let mut command = wharf();
        command.args([
            "up",
            "--data-dir",
            data.to_str().unwrap(),
            "--engine-listen",
            &format!("127.0.0.1:{engine}"),
            "--destination-listen",
            &format!("127.0.0.1:{destination}"),
        ]);
        if let Some(url) = dir.database_url() {
            command.args(["--database-url", url]);
        }
        let out = tokio::time::timeout(Duration::from_secs(30), command.output())
            .await
            .expect("wharf up should fail at once")
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let said = stderr(&out);
        assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");
        assert!(said.contains(flag), "{said}");
        assert!(!said.contains("`listen`"), "{said}");
    }
}

#[tokio::test]
async fn a_relative_data_dir_from_elsewhere_is_explained() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = wharf()
        .args([
            "destination",
            "inbox",
            "--data-dir",
            "wharf-data/destination",
        ])
        .current_dir(elsewhere.path())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    let looked = elsewhere
        .path()
        .canonicalize()
        .unwrap()
        .join("wharf-data/destination");
    assert!(
        said.contains(&*looked.to_string_lossy())
            || said.contains(
                &*elsewhere
                    .path()
                    .join("wharf-data/destination")
                    .to_string_lossy()
            ),
        "{said}"
    );
    assert!(said.contains("relative"), "{said}");
    assert!(said.contains("absolute path"), "{said}");
}

#[tokio::test]
async fn sigkill_during_ingestion_and_delivery_loses_nothing_and_keeps_order() {
    let dir = TestDir::new();
    let data = dir.path().join("wharf-data");
    let (engine_port, destination_port) = (free_port(), free_port());
    let mut running = up(&dir, &data, engine_port, destination_port).await;
    let client = reqwest::Client::new();
    let endpoint = format!("{}/endpoint", running.engine);
    let mut acknowledged = Vec::new();
    // One sender, so acknowledgement order is queue order.
    let mut n = 0u64;
    let started = std::time::Instant::now();
    let mut killed = false;
    while started.elapsed() < Duration::from_secs(8) {
        if !killed && acknowledged.len() >= 150 {
            running.child.start_kill().unwrap();
            running.child.wait().await.unwrap();
            killed = true;
            break;
        }
        let body = serde_json::json!({"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
            "Destinations": [{"ID": running.destination}]}, "Patient": {"Number": n}});
        let sent = client
            .post(&endpoint)
            .bearer_auth(&running.key)
            .json(&body)
            .send()
            .await;
        if let Ok(r) = sent
            && r.status().is_success()
        {
            acknowledged.push(n);
        }
        n += 1;
    }
    assert!(
        killed,
        "only {} messages acknowledged in 8 s",
        acknowledged.len()
    );
    let _restarted = up(&dir, &data, engine_port, destination_port).await;
    assert!(!acknowledged.is_empty());
    let all_there = wharf_testkit::wait_until(Duration::from_secs(60), || {
        let got: HashSet<u64> = delivered_numbers(&dir, &data).into_iter().collect();
        acknowledged.iter().all(|n| got.contains(n))
    })
    .await;
    assert!(
        all_there,
        "only {} of {} acknowledged messages arrived",
        delivered_numbers(&dir, &data).len(),
        acknowledged.len()
    );
    // Every acknowledged message is in the inbox, first arrivals in acknowledgement order.
    let numbers = delivered_numbers(&dir, &data);
    let position: HashMap<u64, usize> = numbers.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|n| !position.contains_key(n))
        .collect();
    assert!(missing.is_empty(), "lost after SIGKILL: {missing:?}");
    assert!(
        acknowledged
            .windows(2)
            .all(|w| position[&w[0]] < position[&w[1]]),
        "order broken after SIGKILL"
    );
}

/// The `Patient.Number` of every message in the destination's inbox, in arrival order
/// (first arrival only: a redelivery after the kill is kept once by its Log ID anyway).
fn delivered_numbers(dir: &TestDir, data: &Path) -> Vec<u64> {
    // `wharf up` configures no forward_url, so every kept message stays waiting, in order.
    let inbox = dir.inbox(&data.join("destination"));
    let mut numbers = Vec::new();
    let mut after = 0;
    while let Some(message) = inbox.next_to_forward("Local destination", after).unwrap() {
        let value: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        numbers.push(value["Patient"]["Number"].as_u64().unwrap());
        after = message.id;
    }
    numbers
}
