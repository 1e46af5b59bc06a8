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
    let send = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim_start().starts_with("wharf send") {
                return line;
            }
        }
        panic!("wharf up exited without printing the send command");
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
    }
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
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let files: Vec<String> = [
        "patient-admin-arrival.json",
        "scheduling-new.json",
        "fhir-patient-admin.json",
    ]
    .iter()
    .map(|f| format!("{examples}/{f}"))
    .collect();
    let mut args = vec![
        "send",
        "--engine",
        &first.engine,
        "--key",
        &first.key,
        "--destination",
        &first.destination,
    ];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args).await;
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

    // A restart finds the same destination, still verified: nothing to set up again.
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    let mut second = up(&dir, &data, engine_port, destination_port).await;
    assert_eq!(second.destination, first.destination);
    assert_eq!(second.key, first.key);
    second.child.start_kill().unwrap();
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
