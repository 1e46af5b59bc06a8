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

/// Data model messages of about `size` bytes, each with fresh random log and attempt IDs
/// (UUID v4, as Redox's are: random keys are the realistic, and harder, case for the inbox's
/// duplicate-key index).
///
/// The message is laid out once; each request gets a copy with new IDs written over the old
/// ones, from a per-thread PRNG rather than the OS. The generator shares the CPUs with the
/// server it measures, so what it spends per request is taken from the server.
struct MessageBodies {
    template: Vec<u8>,
    /// Where the two 36-byte IDs start in `template`.
    log_id_at: usize,
    attempt_id_at: usize,
}

impl MessageBodies {
    fn new(size: usize) -> Self {
        let placeholder = uuid::Uuid::nil().to_string();
        let head = format!(
            r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","EventDateTime":"2026-11-23T12:00:00.000Z","Test":true,"Source":{{"ID":"bench","Name":"wharf bench"}},"Logs":[{{"ID":"{placeholder}","AttemptID":"{placeholder}"}}]}},"Patient":{{"Notes":""#
        );
        let log_id_at = head.find(&placeholder).expect("placed above");
        let attempt_id_at = head.rfind(&placeholder).expect("placed above");
        let tail = r#""}}"#;
        let pad = size.saturating_sub(head.len() + tail.len());
        let mut template = Vec::with_capacity(head.len() + pad + tail.len());
        template.extend_from_slice(head.as_bytes());
        template.resize(head.len() + pad, b'x');
        template.extend_from_slice(tail.as_bytes());
        MessageBodies {
            template,
            log_id_at,
            attempt_id_at,
        }
    }

    /// A new message: the template with new random IDs.
    fn next(&self) -> Vec<u8> {
        let mut body = self.template.clone();
        for at in [self.log_id_at, self.attempt_id_at] {
            let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
            id.hyphenated()
                .encode_lower(&mut body[at..at + uuid::fmt::Hyphenated::LENGTH]);
        }
        body
    }
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
    // GET when there is no body to send.
    let bodies = (args.body_bytes > 0).then(|| Arc::new(MessageBodies::new(args.body_bytes)));
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let client = client.clone();
        let args = args.clone();
        let bodies = bodies.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let mut request = if let Some(bodies) = &bodies {
                    client
                        .post(args.url.clone())
                        .header("content-type", "application/json")
                        .body(bodies.next())
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
    fn message_bodies_have_the_size_and_unique_v4_logs() {
        let bodies = super::MessageBodies::new(2048);
        let a = bodies.next();
        assert_eq!(a.len(), 2048);
        let env = wharf_protocol::envelope::parse(&a).unwrap();
        let log_id = env.log_id.clone().unwrap();
        let parsed = uuid::Uuid::parse_str(&log_id).unwrap();
        assert_eq!(parsed.get_version_num(), 4, "{log_id}");
        assert_eq!(parsed.hyphenated().to_string(), log_id);
        let value: serde_json::Value = serde_json::from_slice(&a).unwrap();
        let attempt = value["Meta"]["Logs"][0]["AttemptID"].as_str().unwrap();
        assert_ne!(attempt, log_id);
        assert_ne!(attempt, uuid::Uuid::nil().to_string());
        let b = wharf_protocol::envelope::parse(&bodies.next()).unwrap();
        assert_ne!(env.duplicate_key, b.duplicate_key);
    }
}
