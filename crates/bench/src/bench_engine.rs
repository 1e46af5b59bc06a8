//! `wharf bench engine`: delivery throughput and ingest-to-delivery latency of the engine
//! (issue 3), against a local sink, all on this machine.
//!
//! The engine runs in this process on a fresh data directory (so the figure includes its real
//! store with `synchronous=FULL`), the sink is a minimal HTTP server in this process that echoes
//! challenges and answers 200, and everything between them is real HTTP over loopback.
//!
//! * Throughput: every destination's queue is paused, `messages` messages are ingested
//!   round-robin across `destinations` destinations, the queues are resumed, and the clock runs
//!   until the sink has them all.
//! * Latency: with the queues running, `messages` more are ingested by 8 concurrent senders,
//!   paced at half the throughput just measured (an engine that is keeping up, not a backlog
//!   draining); each carries its send time, and the sink records arrival minus send time.

use crate::BenchError;
use axum::body::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wharf_engine::client::ManagementClient;

#[derive(clap::Args)]
pub struct EngineBenchArgs {
    /// Destinations the messages are spread across.
    #[arg(long, default_value_t = 100)]
    destinations: usize,
    /// Messages per phase.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Run the engine on this PostgreSQL database (`postgres://...`; give it an empty database
    /// or schema) instead of SQLite in a temporary directory.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Default)]
struct Sink {
    delivered: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn sink_handler(
    axum::extract::State(sink): axum::extract::State<Arc<Sink>>,
    body: Bytes,
) -> (axum::http::StatusCode, Vec<u8>) {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(challenge) = value["challenge"].as_str() {
        return (axum::http::StatusCode::OK, challenge.as_bytes().to_vec());
    }
    if let Some(sent) = value["Bench"]["SentAtMicros"].as_u64() {
        sink.latencies_us
            .lock()
            .unwrap()
            .push(micros_now().saturating_sub(sent));
    }
    sink.delivered.fetch_add(1, Ordering::SeqCst);
    (axum::http::StatusCode::OK, Vec::new())
}

pub async fn run(args: EngineBenchArgs) -> Result<Value, BenchError> {
    let sink = Arc::new(Sink::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(BenchError::io("binding the sink's port"))?;
    let sink_addr = listener
        .local_addr()
        .map_err(BenchError::io("the sink's address"))?;
    let app = axum::Router::new()
        .fallback(axum::routing::post(sink_handler))
        .with_state(sink.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile_dir()?;
    let (key, source_key) = (
        "bench-management-key-0123456789-0",
        "bench-source-key-0123456789-01234",
    );
    let config = wharf_engine::EngineConfig::parse(
        &format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{}api_keys = [\"{key}\"]\nmaster_key = \"e7b3a1c9d5f2084b6e0a3c7d9f1b5e2a8c4d6f0b3e7a9c1d5f2b8e4a0c6d3f9b\"\nallow_private_endpoints = true\nrate_limit_requests = 0\n[[sources]]\nname = \"bench\"\napi_key = \"{source_key}\"\n",
            dir.to_string_lossy(),
            crate::up::database_toml(args.database_url.as_deref())
        ),
        &wharf_config::ProcessEnv,
    )
    .map_err(|e| BenchError::Servers(format!("the engine's configuration: {e}")))?;
    let engine = wharf_engine::start(config)
        .await
        .map_err(|e| BenchError::Servers(format!("cannot start the engine: {e}")))?;
    let api = format!("http://{}", engine.local_addr());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| BenchError::Traffic(format!("cannot build the HTTP client: {e}")))?;
    let api_client = &ManagementClient::new(client.clone(), &api, key);
    let call =
        move |method, path: String, body| async move { api_client.call(method, &path, body).await };
    let dev = api_client.development().await?;
    let mut destinations = Vec::with_capacity(args.destinations);
    for i in 0..args.destinations {
        let id = api_client
            .verified_destination(
                &dev,
                &format!("sink {i}"),
                &format!("http://{sink_addr}/d{i}"),
                "bench-verification-token-0123456789abcdef",
            )
            .await?;
        destinations.push(id);
    }

    // Throughput: fill paused queues, then release them all at once.
    for id in &destinations {
        call(
            reqwest::Method::POST,
            format!("/destinations/{id}/queue/pause"),
            Some(json!({})),
        )
        .await?;
    }
    let ingest_started = Instant::now();
    ingest(
        &client,
        &api,
        source_key,
        &destinations,
        args.messages,
        None,
    )
    .await?;
    let ingest_secs = ingest_started.elapsed().as_secs_f64();
    let before = sink.delivered.load(Ordering::SeqCst);
    let started = Instant::now();
    for id in &destinations {
        call(
            reqwest::Method::POST,
            format!("/destinations/{id}/queue/resume"),
            Some(json!({})),
        )
        .await?;
    }
    wait_for(
        &sink,
        before + args.messages as u64,
        Duration::from_secs(600),
    )
    .await?;
    let delivery_secs = started.elapsed().as_secs_f64();

    // Latency: queues running at half the measured throughput, messages stamped with their
    // send time.
    sink.latencies_us.lock().unwrap().clear();
    let before = sink.delivered.load(Ordering::SeqCst);
    let steady_rate = args.messages as f64 / delivery_secs / 2.0;
    let steady_started = Instant::now();
    ingest(
        &client,
        &api,
        source_key,
        &destinations,
        args.messages,
        Some(steady_rate),
    )
    .await?;
    wait_for(
        &sink,
        before + args.messages as u64,
        Duration::from_secs(600),
    )
    .await?;
    let steady_secs = steady_started.elapsed().as_secs_f64();
    let mut latencies = sink.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(0.0)
    };
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "database": if args.database_url.is_some() { "postgres" } else { "sqlite" },
        "destinations": args.destinations,
        "messages": args.messages,
        "ingest_per_second": (args.messages as f64 / ingest_secs).round(),
        "deliveries_per_second": (args.messages as f64 / delivery_secs).round(),
        "steady_offered_per_second": steady_rate.round(),
        "steady_delivered_per_second": (args.messages as f64 / steady_secs).round(),
        "latency_p50_ms": (pct(0.50) * 100.0).round() / 100.0,
        "latency_p99_ms": (pct(0.99) * 100.0).round() / 100.0,
    }))
}

/// Ingests `messages` messages round-robin across `destinations` with 8 concurrent senders; with
/// a `rate`, message `n` is not sent before `n / rate` seconds and carries its send time.
async fn ingest(
    client: &reqwest::Client,
    api: &str,
    source_key: &str,
    destinations: &[String],
    messages: usize,
    rate: Option<f64>,
) -> Result<(), BenchError> {
    let next = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, next, destinations) = (client.clone(), next.clone(), destinations.to_vec());
        let (url, key) = (format!("{api}/endpoint"), source_key.to_owned());
        senders.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst) as usize;
                if n >= messages {
                    return Ok::<(), BenchError>(());
                }
                if let Some(rate) = rate {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate)).await;
                }
                let destination = &destinations[n % destinations.len()];
                let mut body = json!({"Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                    "Destinations": [{"ID": destination}]}, "Patient": {"Notes": "x".repeat(1800)}});
                if rate.is_some() {
                    body["Bench"] = json!({"SentAtMicros": micros_now()});
                }
                let response = client.post(&url).bearer_auth(&key).json(&body).send().await
                    .map_err(|e| BenchError::Traffic(format!("ingestion did not answer: {e}")))?;
                if !response.status().is_success() {
                    return Err(BenchError::Traffic(format!("ingestion answered {}", response.status())));
                }
            }
        });
    }
    while let Some(result) = senders.join_next().await {
        result.map_err(|e| BenchError::Traffic(format!("a sender failed: {e}")))??;
    }
    Ok(())
}

async fn wait_for(sink: &Sink, target: u64, limit: Duration) -> Result<(), BenchError> {
    let started = Instant::now();
    while sink.delivered.load(Ordering::SeqCst) < target {
        if started.elapsed() > limit {
            return Err(BenchError::Traffic(format!(
                "only {} of {target} delivered after {limit:?}; the engine's log says why",
                sink.delivered.load(Ordering::SeqCst)
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("wharf-bench-engine-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}
