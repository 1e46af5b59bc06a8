//! `wharf bench load`: a closed-loop load generator for the benchmarks in `docs/BENCHMARKS.md`.
//!
//! A fixed number of workers each keep one request in flight against one URL for a fixed time
//! (or for a number of messages); every request's latency is recorded. With `--rate` the load
//! is an open loop instead: request k is due at `k / rate` seconds, whatever the answers, and
//! its latency counts from when it was due (a late send is not hidden). With `--destinations`
//! the messages are addressed to the engine's destinations (round robin, or all of them with
//! `--fan-out`), and `--send-log` writes when each was due, for matching against a sink's log. The same generator drives both the route under test
//! and the ceiling route (a health check) in the same run, so their ratio is meaningful on a
//! shared, noisy machine where absolute figures are not. It reports only what it measured.

use crate::BenchError;
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
    /// Send exactly this many requests (then stop, whatever `--duration` says; no warm-up).
    #[arg(long)]
    messages: Option<u64>,
    /// Open loop: this many requests per second in all, each due at its own time.
    #[arg(long)]
    rate: Option<f64>,
    /// Address each message to these engine destinations (comma-separated IDs) in
    /// `Meta.Destinations`: one each, round robin, or all of them with `--fan-out`.
    #[arg(long, value_delimiter = ',')]
    destinations: Vec<String>,
    /// Address every message to all of `--destinations`.
    #[arg(long)]
    fan_out: bool,
    /// Write one line per successful request: destination index, when it was due (µs since
    /// the epoch), when it was answered (µs since the epoch).
    #[arg(long)]
    send_log: Option<std::path::PathBuf>,
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
    /// Messages of about `size` bytes, addressed to `destinations` (if any) in
    /// `Meta.Destinations`.
    fn new(size: usize, destinations: &[&str]) -> Self {
        let placeholder = uuid::Uuid::nil().to_string();
        let to = if destinations.is_empty() {
            String::new()
        } else {
            let ids: Vec<_> = destinations
                .iter()
                .map(|id| serde_json::json!({ "ID": id }))
                .collect();
            format!(r#","Destinations":{}"#, serde_json::Value::Array(ids))
        };
        let head = format!(
            r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","EventDateTime":"2026-11-23T12:00:00.000Z","Test":true,"Source":{{"ID":"bench","Name":"wharf bench"}},"Logs":[{{"ID":"{placeholder}","AttemptID":"{placeholder}"}}]{to}}},"Patient":{{"Notes":""#
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
            std::process::ExitCode::from(match e {
                BenchError::Usage(_) => 2,
                _ => 1,
            })
        }
    }
}

async fn load(args: LoadArgs) -> Result<serde_json::Value, BenchError> {
    let parse = |s: &str| {
        wharf_destination::config::parse_duration(s)
            .ok_or_else(|| BenchError::Usage(format!("{s:?} is not a duration like 10s")))
    };
    let duration = parse(&args.duration)?;
    let warmup = parse(&args.warmup)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .http1_only()
        .build()
        .map_err(|e| BenchError::Traffic(format!("cannot build the HTTP client: {e}")))?;
    // GET when there is no body to send; one template per destination addressed in turn.
    let bodies: Arc<Vec<MessageBodies>> = Arc::new(if args.body_bytes == 0 {
        Vec::new()
    } else if args.destinations.is_empty() || args.fan_out {
        let all: Vec<&str> = args.destinations.iter().map(String::as_str).collect();
        vec![MessageBodies::new(args.body_bytes, &all)]
    } else {
        args.destinations
            .iter()
            .map(|id| MessageBodies::new(args.body_bytes, &[id.as_str()]))
            .collect()
    });
    let args = Arc::new(args);
    // A fixed number of messages is measured whole: no warm-up.
    let warmup = if args.messages.is_some() {
        Duration::ZERO
    } else {
        warmup
    };
    let start = Instant::now();
    let started_epoch = epoch_micros();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Every success, measured or not (warm-up, answered after the end): what the server kept.
    let ok_total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let client = client.clone();
        let args = args.clone();
        let bodies = bodies.clone();
        let next = next.clone();
        let ok_total = ok_total.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut sends = Vec::new();
            let mut errors = 0u64;
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if args.messages.is_some_and(|n| k >= n) {
                    break;
                }
                // Open loop: request k is due at k / rate and counts from then.
                let due = match args.rate {
                    Some(rate) => {
                        let due = start + Duration::from_secs_f64(k as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                if due >= end {
                    break;
                }
                let which = (k as usize) % bodies.len().max(1);
                let mut request = if let Some(template) = bodies.get(which) {
                    client
                        .post(args.url.clone())
                        .header("content-type", "application/json")
                        .body(template.next())
                } else {
                    client.get(args.url.clone())
                };
                if let Some(token) = &args.token {
                    request = request
                        .header("verification-token", token)
                        .bearer_auth(token);
                }
                let ok = match request.send().await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                let done = Instant::now();
                if ok {
                    ok_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if due >= measure_from && (done <= end || args.messages.is_some()) {
                    if ok {
                        latencies.push(done - due);
                        if args.send_log.is_some() {
                            let at = |t: Instant| started_epoch + (t - start).as_micros() as u64;
                            sends.push((which, at(due), at(done)));
                        }
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, sends, errors)
        });
    }
    let mut all = Vec::new();
    let mut sends = Vec::new();
    let mut errors = 0;
    while let Some(result) = workers.join_next().await {
        let (latencies, sent, e) =
            result.map_err(|e| BenchError::Traffic(format!("a sender failed: {e}")))?;
        all.extend(latencies);
        sends.extend(sent);
        errors += e;
    }
    let elapsed = if args.messages.is_some() {
        start.elapsed()
    } else {
        duration
    };
    if let Some(path) = &args.send_log {
        sends.sort_unstable_by_key(|&(_, due, _)| due);
        let text: String = sends
            .iter()
            .map(|(which, due, done)| format!("{which} {due} {done}\n"))
            .collect();
        std::fs::write(path, text).map_err(BenchError::io(path.display().to_string()))?;
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
        "seconds": elapsed.as_secs_f64(),
        "ok": all.len(),
        "ok_total": ok_total.load(std::sync::atomic::Ordering::Relaxed),
        "errors": errors,
        "per_second": (all.len() as f64 / elapsed.as_secs_f64()).round(),
        "started_epoch_us": started_epoch,
        "p50_ms": round3(pct(0.50)),
        "p99_ms": round3(pct(0.99)),
        "max_ms": round3(all.last().map(Duration::as_secs_f64).unwrap_or(0.0) * 1000.0),
    }))
}

fn epoch_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_bodies_have_the_size_and_unique_v4_logs() {
        let bodies = super::MessageBodies::new(2048, &["d1"]);
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
        assert_eq!(value["Meta"]["Destinations"][0]["ID"], "d1");
        let b = wharf_protocol::envelope::parse(&bodies.next()).unwrap();
        assert_ne!(env.duplicate_key, b.duplicate_key);
    }
}
