//! Several `wharf` processes on one PostgreSQL database, one of them killed with SIGKILL while
//! they work: three engines delivering to twenty destinations, then two destination servers
//! receiving in parallel. Nothing acknowledged is lost, order holds, and no destination ever
//! has two messages in flight at once.

use super::*;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wharf_testkit::postgres::PgSchema;
use wharf_testkit::{Received, Recorder, Reply, wait_until};

const KEY: &str = "management-key-0123456789-0123456";
const SOURCE_KEY: &str = "source-key-0123456789abcdef-01234";

/// A child process whose stderr goes to a file, shown when a check fails.
struct Child {
    process: tokio::process::Child,
    log: std::path::PathBuf,
    addr: SocketAddr,
}

fn spawn(args: &[&str], log: std::path::PathBuf, addr: SocketAddr) -> Child {
    let file = std::fs::File::create(&log).unwrap();
    let process = wharf()
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    Child { process, log, addr }
}

fn logs_of(children: &[Child]) -> String {
    children
        .iter()
        .map(|c| {
            let text = std::fs::read_to_string(&c.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            format!(
                "--- {} ---\n{}",
                c.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The Log ID a delivery carries (`Meta.Logs[0].ID`).
fn log_id(r: &Received) -> Option<String> {
    let body: Value = serde_json::from_slice(&r.body).ok()?;
    body["Meta"]["Logs"][0]["ID"].as_str().map(str::to_owned)
}

/// Checks that the first deliveries of the acknowledged ids arrived in acknowledgement order.
fn assert_first_deliveries_in_order(path: &str, acknowledged: &[String], arrivals: &[String]) {
    let position: HashMap<&str, usize> = acknowledged
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut seen = HashSet::new();
    let mut last = None;
    for id in arrivals {
        let Some(&p) = position.get(id.as_str()) else {
            continue; // committed but never acknowledged (its sender saw the kill): may go anywhere
        };
        if seen.insert(id.clone()) {
            assert!(
                last.is_none_or(|l| p > l),
                "{path}: {id} (#{p}) first delivered after #{last:?}: order broken"
            );
            last = Some(p);
        }
    }
}

#[tokio::test]
async fn three_engines_share_twenty_queues_and_survive_a_sigkill() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    // Every destination is a path on one recorder, which answers challenges and takes 30 ms
    // per delivery, so overlapping deliveries to one destination would show.
    let endpoint = Recorder::start(|_, r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        match body["challenge"].as_str() {
            Some(challenge) => Reply {
                status: 200,
                content_type: "text/plain",
                body: challenge.as_bytes().to_vec(),
                delay: Duration::ZERO,
            },
            None => Reply::status(200).after(Duration::from_millis(30)),
        }
    })
    .await;
    let mut engines = Vec::new();
    for n in 0..3 {
        let port = free_port();
        let config = dir.path().join(format!("engine-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ndatabase_url = \"{}\"\n\
                 organization = \"Acme Health\"\napi_keys = [\"{KEY}\"]\n\
                 master_key = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n\
                 allow_private_endpoints = true\ndelivery_timeout = \"5s\"\n\
                 retry_ladder = [\"500ms\"]\nrate_limit_requests = 0\n\
                 [[sources]]\nname = \"test\"\napi_key = \"{SOURCE_KEY}\"\n",
                dir.path().join(format!("data-{n}")).display(),
                schema.url
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        engines.push(spawn(
            &["engine", "serve", "--config", config.to_str().unwrap()],
            dir.path().join(format!("engine-{n}.log")),
            addr,
        ));
    }
    for e in &engines {
        wait_healthy(e.addr).await;
    }
    let client = reqwest::Client::new();
    let api = |path: String, body: Option<Value>| {
        let request = match body {
            Some(body) => client
                .post(format!("http://{}{path}", engines[0].addr))
                .json(&json!({"meta": {"version": "1.0.0"}, "payload": body})),
            None => client.get(format!("http://{}{path}", engines[0].addr)),
        };
        async move {
            let response = request.bearer_auth(KEY).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert!(status.is_success(), "{path}: {status} {body}");
            body["payload"].clone()
        }
    };
    let orgs = api("/platform/v1/organizations".into(), None).await;
    assert_eq!(
        orgs["organizations"].as_array().unwrap().len(),
        1,
        "one organization for all engines"
    );
    let org = orgs["organizations"][0]["id"].as_str().unwrap().to_owned();
    let envs = api(
        format!("/platform/v1/organizations/{org}/environments"),
        None,
    )
    .await;
    let dev = envs["environments"][0]["id"].as_str().unwrap().to_owned();
    let mut destinations = Vec::new();
    for i in 0..20 {
        let created = api(
            format!("/platform/v1/environments/{dev}/destinations"),
            Some(
                json!({"name": format!("d{i}"), "endpoint": endpoint.url(&format!("/d{i}")),
                        "verificationToken": "token-0123456789abcdef-0123456789abcdef"}),
            ),
        )
        .await;
        let id = created["destination"]["id"].as_str().unwrap().to_owned();
        api(
            format!("/platform/v1/destinations/{id}/verify"),
            Some(json!({})),
        )
        .await;
        destinations.push(id);
    }

    // Each destination gets its messages one after another (each sent once its predecessor was
    // acknowledged), to the three engines in turn, and moves to the next engine when one fails.
    const PER_DESTINATION: usize = 12;
    let addrs: Vec<SocketAddr> = engines.iter().map(|e| e.addr).collect();
    let acknowledged: Arc<Mutex<HashMap<usize, Vec<String>>>> = Arc::default();
    let total = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for (i, destination) in destinations.iter().enumerate() {
        let (client, addrs, acknowledged, total) = (
            client.clone(),
            addrs.clone(),
            acknowledged.clone(),
            total.clone(),
        );
        let destination = destination.clone();
        senders.push(tokio::spawn(async move {
            let mut engine = i;
            for n in 0..PER_DESTINATION {
                let body = json!({"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                    "Destinations": [{"ID": destination}]}, "Patient": {"Seq": n}});
                let log = loop {
                    engine += 1;
                    let sent = client
                        .post(format!("http://{}/endpoint", addrs[engine % addrs.len()]))
                        .bearer_auth(SOURCE_KEY)
                        .json(&body)
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    if let Ok(response) = sent
                        && response.status().is_success()
                    {
                        let answer: Value = response.json().await.unwrap();
                        break answer["Meta"]["Logs"][0]["ID"].as_str().unwrap().to_owned();
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                acknowledged.lock().unwrap().entry(i).or_default().push(log);
                total.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // Kill one engine without warning once a third of the messages are in.
    assert!(
        wait_until(Duration::from_secs(60), || total.load(Ordering::SeqCst)
            >= 80)
        .await,
        "ingestion stalled\n{}",
        logs_of(&engines)
    );
    engines[2].process.start_kill().unwrap();
    engines[2].process.wait().await.unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!(
        "killed engine 2 after {} acknowledged messages; {} acknowledged in all; engine 2 had taken queues: {}",
        80,
        acknowledged.values().map(Vec::len).sum::<usize>(),
        std::fs::read_to_string(&engines[2].log).is_ok_and(|t| t.contains("took queue leases"))
    );

    // Everything acknowledged is delivered (the killed engine's queues after its leases expire).
    let paths: Vec<String> = (0..20).map(|i| format!("/d{i}")).collect();
    let delivered_all = wait_until(Duration::from_secs(90), || {
        let got: HashSet<String> = endpoint.received().iter().filter_map(log_id).collect();
        acknowledged.values().flatten().all(|id| got.contains(id))
    })
    .await;
    let received = endpoint.received();
    let got: HashSet<String> = received.iter().filter_map(log_id).collect();
    let missing: Vec<&String> = acknowledged
        .values()
        .flatten()
        .filter(|id| !got.contains(*id))
        .collect();
    assert!(
        delivered_all,
        "{} acknowledged messages never delivered, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        logs_of(&engines)
    );
    for (i, path) in paths.iter().enumerate() {
        let arrivals: Vec<String> = received
            .iter()
            .filter(|r| &r.path == path)
            .filter_map(log_id)
            .collect();
        assert_first_deliveries_in_order(path, &acknowledged[&i], &arrivals);
    }
    assert_eq!(
        endpoint.max_in_flight_per_path(),
        1,
        "a destination had two messages in flight at once"
    );
    // The work was shared: both survivors worked queues of their own.
    for e in &engines[..2] {
        let log = std::fs::read_to_string(&e.log).unwrap_or_default();
        assert!(
            log.contains("took queue leases"),
            "{} worked no queue\n{}",
            e.log.display(),
            logs_of(&engines)
        );
    }
}

#[tokio::test]
async fn two_destination_servers_keep_once_and_forward_in_order_through_a_sigkill() {
    let schema = PgSchema::create();
    let dir = tempfile::tempdir().unwrap();
    let app = Recorder::start(|_, _| Reply::status(200).after(Duration::from_millis(10))).await;
    let mut servers = Vec::new();
    let mut configs = Vec::new();
    for n in 0..2 {
        let port = free_port();
        let config = dir.path().join(format!("destination-{n}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ndatabase_url = \"{}\"\n\
                 [[destinations]]\nname = \"Acme\"\npath = \"/redox\"\nenvironment = \"Development\"\n\
                 verification_token = \"{TOKEN}\"\nforward_url = \"{}\"\nforward_timeout = \"3s\"\n\
                 forward_max_backoff = \"200ms\"\n",
                dir.path().join(format!("data-{n}")).display(),
                schema.url,
                app.url("/app")
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        servers.push(spawn(
            &["destination", "serve", "--config", config.to_str().unwrap()],
            dir.path().join(format!("destination-{n}.log")),
            addr,
        ));
        configs.push(config);
    }
    for s in &servers {
        wait_healthy(s.addr).await;
    }

    // 16 senders, each message to one server and, every third one, sent again to the other (a
    // retry through the load balancer): kept once either way.
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let client = reqwest::Client::new();
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (acknowledged, stop, next, client, addrs) = (
            acknowledged.clone(),
            stop.clone(),
            next.clone(),
            client.clone(),
            addrs.clone(),
        );
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = next.fetch_add(1, Ordering::SeqCst) as usize;
                let id = format!("shared-{n:06}");
                let body = format!(
                    r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{{"ID":"{id}"}}]}}}}"#
                );
                let targets = if n.is_multiple_of(3) { vec![n, n + 1] } else { vec![n] };
                for target in targets {
                    let result = client
                        .post(format!("http://{}/redox", addrs[target % addrs.len()]))
                        .header("verification-token", TOKEN)
                        .body(body.clone())
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await;
                    match result {
                        Ok(r) if r.status().is_success() => {
                            acknowledged.lock().unwrap().insert(format!("log:{id}"));
                        }
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        }));
    }
    assert!(
        wait_until(Duration::from_secs(60), || acknowledged
            .lock()
            .unwrap()
            .len()
            >= 600)
        .await,
        "receiving stalled\n{}",
        logs_of(&servers)
    );
    // Kill the server that forwards (so the other must take over), without warning.
    let forwarder = servers
        .iter()
        .position(|s| {
            std::fs::read_to_string(&s.log).is_ok_and(|t| t.contains("took forwarder leases"))
        })
        .unwrap_or(0);
    servers[forwarder].process.start_kill().unwrap();
    servers[forwarder].process.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let survivor = 1 - forwarder;
    eprintln!(
        "killed destination server {forwarder} (the forwarder: {}); {} messages acknowledged",
        std::fs::read_to_string(&servers[forwarder].log)
            .is_ok_and(|t| t.contains("took forwarder leases")),
        acknowledged.len()
    );

    // Every acknowledged message is in the database exactly once ...
    let out = run(&[
        "destination",
        "inbox",
        "--config",
        configs[survivor].to_str().unwrap(),
        "--json",
        "--limit",
        "1000000",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut sequence: HashMap<String, i64> = HashMap::new();
    for r in &rows {
        let key = r["duplicateKey"].as_str().unwrap().to_owned();
        assert!(
            sequence
                .insert(key.clone(), r["sequence"].as_i64().unwrap())
                .is_none(),
            "{key} kept twice"
        );
    }
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

    // ... and reaches the application, first deliveries in arrival order, one at a time.
    let forwarded_all = wait_until(Duration::from_secs(90), || {
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
        "not every acknowledged message reached the application\n{}",
        logs_of(&servers)
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
    assert_eq!(
        app.max_in_flight_per_path(),
        1,
        "two forwards in flight at once"
    );
}
