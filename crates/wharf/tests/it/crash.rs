//! Crash safety: SIGKILL under concurrent load loses nothing that was answered 200.

use super::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wharf_testkit::{Recorder, wait_until};

#[tokio::test]
async fn sigkill_under_load_loses_no_acknowledged_message() {
    let app = Recorder::ok().await;
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
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let spawn = || {
        wharf()
            .args(["destination", "serve", "--config", config.to_str().unwrap()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut server = spawn();
    wait_healthy(addr).await;

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::new();
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (acknowledged, stop, next, client) = (
            acknowledged.clone(),
            stop.clone(),
            next.clone(),
            client.clone(),
        );
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let id = format!("kill-{:06}", next.fetch_add(1, Ordering::SeqCst));
                let body = format!(r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{{"ID":"{id}"}}]}}}}"#);
                let result = client
                    .post(format!("http://{addr}/redox"))
                    .header("verification-token", TOKEN)
                    .body(body)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match result {
                    Ok(r) if r.status().is_success() => {
                        acknowledged.lock().unwrap().insert(format!("log:{id}"));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    // Let load build up, then kill without warning.
    assert!(
        wait_until(Duration::from_secs(30), || acknowledged
            .lock()
            .unwrap()
            .len()
            >= 1000)
        .await
    );
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 1000);

    // Restart on the same data directory: everything acknowledged is in the inbox ...
    let _server = spawn();
    wait_healthy(addr).await;
    let out = run(&[
        "destination",
        "inbox",
        "--config",
        config.to_str().unwrap(),
        "--json",
        "--limit",
        "1000000",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let sequence: HashMap<String, i64> = rows
        .iter()
        .map(|r| {
            (
                r["duplicateKey"].as_str().unwrap().to_owned(),
                r["sequence"].as_i64().unwrap(),
            )
        })
        .collect();
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|k| !sequence.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // ... and is forwarded, first deliveries in arrival order.
    let forwarded_all = wait_until(Duration::from_secs(60), || {
        let got: HashSet<String> = app
            .received()
            .iter()
            .filter_map(|r| r.header("wharf-dedup-key").map(str::to_owned))
            .collect();
        acknowledged.iter().all(|k| got.contains(k))
    })
    .await;
    assert!(
        forwarded_all,
        "not every acknowledged message reached the application"
    );
    let mut seen = HashSet::new();
    let mut last = 0;
    for r in app.received() {
        let key = r.header("wharf-dedup-key").unwrap().to_owned();
        if seen.insert(key.clone()) {
            let s = sequence[&key];
            assert!(
                s > last,
                "{key} (#{s}) forwarded after #{last}: order broken"
            );
            last = s;
        }
    }
}
