//! `wharf bench load`: a closed-loop load generator for the benchmarks in `docs/BENCHMARKS.md`.
//!
//! A fixed number of workers each keep one request in flight against one URL for a fixed time;
//! every request's latency is recorded. The same generator drives both the route under test
//! and the ceiling route (a health check) in the same run, so their ratio is meaningful on a
//! shared, noisy machine where absolute figures are not. It reports only what it measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Drive one URL at a fixed concurrency for a fixed time; print one JSON line of results.
    Load(LoadArgs),
    /// Engine delivery throughput and ingest-to-delivery latency against a local sink.
    Engine(crate::bench_engine::EngineBenchArgs),
    /// Engine -> destination -> application at a steady rate for a long time: throughput,
    /// latency and both servers' memory over time; fails if an acknowledged message is lost.
    Soak(crate::bench_soak::SoakArgs),
}

#[derive(clap::Args)]
pub struct LoadArgs {
    /// The URL to drive.
    url: reqwest::Url,
    /// Verification token, sent as `verification-token` and `Authorization: Bearer`.
    #[arg(long)]
    token: Option<String>,
    /// Requests kept in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured duration, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Unmeasured warm-up before it, e.g. `2s`.
    #[arg(long, default_value = "2s")]
    warmup: String,
    /// POST a Redox data model message of about this many bytes, each with a unique
    /// `Meta.Logs[0].ID` (so each is a new message); 0 sends GET requests instead.
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
}

/// A data model message of about `size` bytes with a fresh random log ID (a UUID v4, as Redox's
/// are: random keys are the realistic, and harder, case for the inbox's duplicate-key index).
pub fn message_body(size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","EventDateTime":"2026-11-23T12:00:00.000Z","Test":true,"Source":{{"ID":"bench","Name":"wharf bench"}},"Logs":[{{"ID":"{}","AttemptID":"{}"}}]}},"Patient":{{"Notes":""#,
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4()
    );
    let tail = r#""}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut body = Vec::with_capacity(head.len() + pad + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.resize(head.len() + pad, b'x');
    body.extend_from_slice(tail.as_bytes());
    body
}

pub async fn run(command: BenchCommand) -> std::process::ExitCode {
    let result = match command {
        BenchCommand::Load(args) => load(args).await,
        BenchCommand::Engine(args) => crate::bench_engine::run(args).await,
        BenchCommand::Soak(args) => crate::bench_soak::run(args).await,
    };
    match result {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn load(args: LoadArgs) -> Result<serde_json::Value, String> {
    let parse = |s: &str| {
        wharf_destination::config::parse_duration(s)
            .ok_or_else(|| format!("{s:?} is not a duration like 10s"))
    };
    let duration = parse(&args.duration)?;
    let warmup = parse(&args.warmup)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .http1_only()
        .build()
        .map_err(|e| e.to_string())?;
    let args = Arc::new(args);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let client = client.clone();
        let args = args.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let mut request = if args.body_bytes > 0 {
                    client
                        .post(args.url.clone())
                        .header("content-type", "application/json")
                        .body(message_body(args.body_bytes))
                } else {
                    client.get(args.url.clone())
                };
                if let Some(token) = &args.token {
                    request = request
                        .header("verification-token", token)
                        .bearer_auth(token);
                }
                let sent = Instant::now();
                let ok = match request.send().await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                let done = Instant::now();
                if sent >= measure_from && done <= end {
                    if ok {
                        latencies.push(done - sent);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(result) = workers.join_next().await {
        let (latencies, e) = result.map_err(|e| e.to_string())?;
        all.extend(latencies);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i].as_secs_f64() * 1000.0
    };
    Ok(serde_json::json!({
        "url": args.url.as_str(),
        "method": if args.body_bytes > 0 { "POST" } else { "GET" },
        "body_bytes": args.body_bytes,
        "concurrency": args.concurrency,
        "seconds": duration.as_secs_f64(),
        "ok": all.len(),
        "errors": errors,
        "per_second": (all.len() as f64 / duration.as_secs_f64()).round(),
        "p50_ms": round3(pct(0.50)),
        "p99_ms": round3(pct(0.99)),
        "max_ms": round3(all.last().map(Duration::as_secs_f64).unwrap_or(0.0) * 1000.0),
    }))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_body_has_the_size_and_a_unique_log() {
        let a = super::message_body(2048);
        assert_eq!(a.len(), 2048);
        let env = wharf_protocol::envelope::parse(&a).unwrap();
        assert_eq!(env.log_id.as_ref().map(String::len), Some(36));
        let b = wharf_protocol::envelope::parse(&super::message_body(2048)).unwrap();
        assert_ne!(env.duplicate_key, b.duplicate_key);
    }
}
