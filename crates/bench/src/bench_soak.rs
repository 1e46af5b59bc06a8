//! `wharf bench soak`: engine -> destination -> application for a long time at a steady rate,
//! reporting throughput, ingest-to-application latency and the memory of both servers over time,
//! and checking that every acknowledged message reached the application (issue 7).
//!
//! The engine and the destination run as child processes of this binary (`wharf engine serve`,
//! `wharf destination serve`) on fresh data directories, so their resident memory is read from
//! `/proc/<pid>/status` apart from the load generator's. The application is a small HTTP sink in
//! this process that the destination forwards to. Everything between them is real HTTP over
//! loopback, with the real stores (`synchronous=FULL`).
//!
//! The generator offers `rate` messages per second (open loop: message `n` is due at
//! `n / rate` seconds, whatever happened to earlier ones), each stamped with its sequence number
//! and send time. A message the engine does not acknowledge (503, a transport error) is offered
//! again until it is, so the acknowledged set is every number sent. The sink marks sequence
//! numbers in a bitmap (duplicates, which at-least-once allows, are counted, not double-counted)
//! and records latency into fixed log-scale buckets: the generator's own memory does not grow
//! with the run, and neither should the servers'.

use crate::BenchError;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::process::Child;

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long to offer load, e.g. `10m`.
    #[arg(long, default_value = "10m")]
    duration: String,
    /// Messages per second offered to the engine, steadily.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// How often to report progress (a line on standard error and a sample in the result).
    #[arg(long, default_value = "30s")]
    report_every: String,
    /// Padding per message, in bytes.
    #[arg(long, default_value_t = 1024)]
    body_bytes: usize,
    /// After the load stops, how long every acknowledged message has to reach the application.
    #[arg(long, default_value = "2m")]
    drain: String,
    /// Run the engine and the destination server on this PostgreSQL database (`postgres://...`;
    /// give it an empty database or schema) instead of SQLite in a temporary directory.
    #[arg(long, env = "WHARF_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

const MANAGEMENT_KEY: &str = "soak-management-key-0123456789-01";
const SOURCE_KEY: &str = "soak-source-key-0123456789-012345";
const TOKEN: &str = "soak-verification-token-0123456789";
/// How often resident memory is read (the slope is computed from these readings).
const RSS_EVERY: Duration = Duration::from_secs(5);
/// Concurrent senders: enough to keep the offered rate while some wait on retries.
const SENDERS: usize = 16;

/// A fixed-size latency histogram: buckets 2 % wide from 1 µs to about 400 s.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

const RATIO: f64 = 1.02;
const BUCKETS: usize = 1000;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }

    fn record(&mut self, us: u64) {
        let i = ((us.max(1) as f64).ln() / RATIO.ln()) as usize;
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The `p` quantile in milliseconds (the upper edge of its bucket: at most 2 % high).
    fn quantile_ms(&self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let target = ((self.total as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= target {
                let us = RATIO.powi(i as i32 + 1).min(self.max_us as f64);
                return round2(us / 1000.0);
            }
        }
        round2(self.max_us as f64 / 1000.0)
    }
}

/// A set of sequence numbers, sized for the run up front.
struct Bitmap(Vec<AtomicU64>);

impl Bitmap {
    fn new(bits: u64) -> Self {
        Bitmap((0..bits.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }

    /// Sets bit `n`; returns whether it was clear. Numbers past the end are ignored.
    fn insert(&self, n: u64) -> bool {
        let Some(word) = self.0.get((n / 64) as usize) else {
            return false;
        };
        let bit = 1 << (n % 64);
        word.fetch_or(bit, Ordering::SeqCst) & bit == 0
    }

    fn contains(&self, n: u64) -> bool {
        self.0
            .get((n / 64) as usize)
            .is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (n % 64)) != 0)
    }
}

/// What the application (the sink) saw.
struct Application {
    seen: Bitmap,
    distinct: AtomicU64,
    received: AtomicU64,
    /// Latency since the last report, and over the whole run.
    latency: Mutex<(Histogram, Histogram)>,
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn receive(
    axum::extract::State(app): axum::extract::State<Arc<Application>>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(seq), Some(sent)) = (
        value["Soak"]["Seq"].as_u64(),
        value["Soak"]["SentAtMicros"].as_u64(),
    ) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    app.received.fetch_add(1, Ordering::SeqCst);
    if app.seen.insert(seq) {
        app.distinct.fetch_add(1, Ordering::SeqCst);
        let latency = micros_now().saturating_sub(sent);
        let mut histograms = app.latency.lock().unwrap_or_else(|p| p.into_inner());
        histograms.0.record(latency);
        histograms.1.record(latency);
    }
    axum::http::StatusCode::OK
}

/// Resident and peak resident memory of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(BenchError::io("finding a free port"))
}

/// Starts `wharf <args>` with its log in `log`.
fn spawn(args: &[&str], log: &Path) -> Result<Child, BenchError> {
    let exe = std::env::current_exe().map_err(BenchError::io("finding this binary"))?;
    let log = std::fs::File::create(log)
        .map_err(BenchError::io(format!("creating {}", log.display())))?;
    tokio::process::Command::new(exe)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(BenchError::io(format!("starting wharf {}", args.join(" "))))
}

async fn wait_healthy(
    client: &reqwest::Client,
    base: &str,
    child: &mut Child,
) -> Result<(), BenchError> {
    for _ in 0..1500 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(BenchError::Servers(format!(
                "{base} exited at start ({status}); its log is in the run's directory"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(BenchError::Servers(format!(
        "{base} did not become healthy within 30 s"
    )))
}

/// The two servers and where they keep their logs.
struct Servers {
    engine: Child,
    destination: Child,
    dir: PathBuf,
}

impl Servers {
    fn check_alive(&mut self) -> Result<(), BenchError> {
        for (name, child) in [
            ("engine", &mut self.engine),
            ("destination", &mut self.destination),
        ] {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::Servers(format!(
                    "the {name} exited during the soak ({status}); its log is {}",
                    self.dir.join(format!("{name}.log")).display()
                )));
            }
        }
        Ok(())
    }
}

/// Writes both configurations, starts both servers and the application, and sets up a verified
/// destination. Returns the servers, the destination's id and the engine's base URL.
async fn start(
    dir: &Path,
    client: &reqwest::Client,
    application: Arc<Application>,
    database_url: Option<&str>,
) -> Result<(Servers, String, String), BenchError> {
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(BenchError::io("binding the application's port"))?;
    let sink_addr = sink
        .local_addr()
        .map_err(BenchError::io("the application's address"))?;
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(application);
    tokio::spawn(async move { axum::serve(sink, app).await });

    let (engine_port, destination_port) = (free_port()?, free_port()?);
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(BenchError::io(format!("writing {}", path.display())))?;
        Ok::<_, BenchError>(path)
    };
    let database = crate::up::database_toml(database_url);
    let destination_config = write(
        "destination.toml",
        format!(
            "listen = \"127.0.0.1:{destination_port}\"\ndata_dir = {:?}\n{database}[[destinations]]\nname = \"Soak\"\npath = \"/redox\"\nenvironment = \"Development\"\nverification_token = \"{TOKEN}\"\nforward_url = \"http://{sink_addr}/app\"\nforward_max_backoff = \"1s\"\n",
            dir.join("destination").to_string_lossy()
        ),
    )?;
    // The generator is one client offering more than 10,000 requests per 5 minutes.
    let engine_config = write(
        "engine.toml",
        format!(
            "listen = \"127.0.0.1:{engine_port}\"\ndata_dir = {:?}\n{database}api_keys = [\"{MANAGEMENT_KEY}\"]\nmaster_key = \"3c1f0e8a5b7d92e4f6a0c3b8d1e5f72a94b6c0d8e2f4a1b3c5d7e9f0a2b4c6d8\"\nallow_private_endpoints = true\nrate_limit_requests = 0\n[[sources]]\nname = \"soak\"\napi_key = \"{SOURCE_KEY}\"\n",
            dir.join("engine").to_string_lossy()
        ),
    )?;
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut destination = spawn(
        &[
            "destination",
            "serve",
            "--config",
            &path(&destination_config),
        ],
        &dir.join("destination.log"),
    )?;
    let mut engine = spawn(
        &["engine", "serve", "--config", &path(&engine_config)],
        &dir.join("engine.log"),
    )?;
    let destination_base = format!("http://127.0.0.1:{destination_port}");
    let engine_base = format!("http://127.0.0.1:{engine_port}");
    wait_healthy(client, &destination_base, &mut destination).await?;
    wait_healthy(client, &engine_base, &mut engine).await?;

    let api =
        wharf_engine::client::ManagementClient::new(client.clone(), &engine_base, MANAGEMENT_KEY);
    let dev = api.development().await?;
    let id = api
        .verified_destination(&dev, "Soak", &format!("{destination_base}/redox"), TOKEN)
        .await?;
    Ok((
        Servers {
            engine,
            destination,
            dir: dir.to_owned(),
        },
        id,
        engine_base,
    ))
}

/// What the senders share.
struct Load {
    next: AtomicU64,
    acknowledged: Bitmap,
    acknowledged_count: AtomicU64,
    /// Answers other than 200 and transport errors, each followed by another try.
    retries: AtomicU64,
    stop: AtomicBool,
}

/// One sender: takes the next due sequence number, POSTs it until the engine acknowledges it.
async fn send(
    load: Arc<Load>,
    client: reqwest::Client,
    url: String,
    destination: String,
    start: tokio::time::Instant,
    rate: f64,
    padding: String,
) {
    loop {
        let n = load.next.fetch_add(1, Ordering::SeqCst);
        let due = start + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due).await;
        if load.stop.load(Ordering::SeqCst) {
            return;
        }
        let body = json!({
            "Meta": {"DataModel": "PatientAdmin", "EventType": "Arrival",
                     "Destinations": [{"ID": destination}]},
            "Soak": {"Seq": n, "SentAtMicros": micros_now()},
            "Patient": {"Notes": padding},
        });
        loop {
            let wait = match client
                .post(&url)
                .bearer_auth(SOURCE_KEY)
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .map_or(Duration::from_millis(200), Duration::from_secs),
                Err(_) => Duration::from_millis(200),
            };
            load.retries.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(wait).await;
        }
        load.acknowledged.insert(n);
        load.acknowledged_count.fetch_add(1, Ordering::SeqCst);
    }
}

pub async fn run(args: SoakArgs) -> Result<Value, BenchError> {
    let parse = |s: &str| {
        wharf_protocol::ladder::parse_duration(s)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| BenchError::Usage(format!("{s:?} is not a duration like 30s or 10m")))
    };
    let duration = parse(&args.duration)?;
    let report_every = parse(&args.report_every)?;
    let drain = parse(&args.drain)?;
    if args.rate == 0 {
        return Err(BenchError::Usage(
            "--rate must be at least 1 message per second".into(),
        ));
    }
    let rate = f64::from(args.rate);
    // Room for every number the senders can take (each takes at most one past the end).
    let capacity = (duration.as_secs_f64() * rate).ceil() as u64 + SENDERS as u64 + 1;
    let application = Arc::new(Application {
        seen: Bitmap::new(capacity),
        distinct: AtomicU64::new(0),
        received: AtomicU64::new(0),
        latency: Mutex::new((Histogram::new(), Histogram::new())),
    });
    let dir = std::env::temp_dir().join(format!("wharf-soak-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SENDERS)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| BenchError::Traffic(format!("cannot build the HTTP client: {e}")))?;
    let result = soak(
        &args,
        duration,
        report_every,
        drain,
        rate,
        capacity,
        &dir,
        &client,
        application,
    )
    .await;
    // The servers were killed when `soak` dropped them; their data goes with the directory.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[allow(clippy::too_many_arguments)]
async fn soak(
    args: &SoakArgs,
    duration: Duration,
    report_every: Duration,
    drain: Duration,
    rate: f64,
    capacity: u64,
    dir: &Path,
    client: &reqwest::Client,
    application: Arc<Application>,
) -> Result<Value, BenchError> {
    let (mut servers, destination, engine_base) = start(
        dir,
        client,
        application.clone(),
        args.database_url.as_deref(),
    )
    .await?;
    let pids = (
        servers.engine.id().unwrap_or_default(),
        servers.destination.id().unwrap_or_default(),
    );
    let load = Arc::new(Load {
        next: AtomicU64::new(0),
        acknowledged: Bitmap::new(capacity),
        acknowledged_count: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let started = tokio::time::Instant::now();
    let padding = "x".repeat(args.body_bytes);
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        senders.spawn(send(
            load.clone(),
            client.clone(),
            format!("{engine_base}/endpoint"),
            destination.clone(),
            started,
            rate,
            padding.clone(),
        ));
    }

    // Readings: memory every RSS_EVERY, a report every `report_every`.
    let mut memory: Vec<(f64, u64, u64)> = Vec::new();
    let mut samples: Vec<Value> = Vec::new();
    let mut last_report = (Instant::now(), 0u64);
    let mut next_report = started + report_every;
    let mut tick = tokio::time::interval(RSS_EVERY.min(report_every));
    let end = started + duration;
    let mut peaks = (0, 0);
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        servers.check_alive()?;
        let elapsed = (now - started).as_secs_f64();
        let (engine_kib, engine_peak) = memory_kib(pids.0).unwrap_or_default();
        let (destination_kib, destination_peak) = memory_kib(pids.1).unwrap_or_default();
        peaks = (peaks.0.max(engine_peak), peaks.1.max(destination_peak));
        memory.push((elapsed, engine_kib, destination_kib));
        let finished = now >= end;
        if now >= next_report || finished {
            next_report += report_every;
            let distinct = application.distinct.load(Ordering::SeqCst);
            let interval = {
                let mut histograms = application
                    .latency
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                std::mem::replace(&mut histograms.0, Histogram::new())
            };
            let seconds = last_report.0.elapsed().as_secs_f64();
            let sample = json!({
                "seconds": elapsed.round(),
                "acknowledged": load.acknowledged_count.load(Ordering::SeqCst),
                "delivered": distinct,
                "delivered_per_second": round2((distinct - last_report.1) as f64 / seconds),
                "latency_p50_ms": interval.quantile_ms(0.50),
                "latency_p99_ms": interval.quantile_ms(0.99),
                "latency_max_ms": round2(interval.max_us as f64 / 1000.0),
                "engine_rss_mb": round2(engine_kib as f64 / 1024.0),
                "destination_rss_mb": round2(destination_kib as f64 / 1024.0),
            });
            eprintln!("{sample}");
            samples.push(sample);
            last_report = (Instant::now(), distinct);
        }
        if finished {
            break;
        }
    }

    // Stop offering; let messages being retried be acknowledged, then wait for delivery.
    load.stop.store(true, Ordering::SeqCst);
    let drain_until = tokio::time::Instant::now() + drain;
    while tokio::time::Instant::now() < drain_until && !senders.is_empty() {
        tokio::select! {
            _ = senders.join_next() => {}
            _ = tokio::time::sleep_until(drain_until) => {}
        }
    }
    senders.abort_all();
    let acknowledged = load.acknowledged_count.load(Ordering::SeqCst);
    let last_delivery = loop {
        let distinct = application.distinct.load(Ordering::SeqCst);
        if distinct >= acknowledged || tokio::time::Instant::now() >= drain_until {
            break tokio::time::Instant::now();
        }
        servers.check_alive()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let offered = load.next.load(Ordering::SeqCst).min(capacity);
    let lost = (0..offered)
        .filter(|n| load.acknowledged.contains(*n) && !application.seen.contains(*n))
        .count();
    let distinct = application.distinct.load(Ordering::SeqCst);
    let received = application.received.load(Ordering::SeqCst);
    let overall = application
        .latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .1
        .clone();
    drop(servers);

    // Memory slope: mean of the first minute's readings against the last minute's (a third of
    // the run each when it is shorter than three minutes); that includes warming up (caches,
    // allocator arenas), so the slope after the first window is reported too.
    let span = duration.as_secs_f64();
    let window = (span / 3.0).min(60.0);
    let mean = |from: f64, to: f64, pick: fn(&(f64, u64, u64)) -> u64| {
        let picked: Vec<f64> = memory
            .iter()
            .filter(|m| m.0 >= from && m.0 <= to)
            .map(|m| pick(m) as f64 / 1024.0)
            .collect();
        if picked.is_empty() {
            0.0
        } else {
            picked.iter().sum::<f64>() / picked.len() as f64
        }
    };
    let minutes_apart = (span - window) / 60.0;
    // Least-squares slope of the readings after the first window: growth once warmed up.
    let steady = |pick: fn(&(f64, u64, u64)) -> u64| {
        let points: Vec<(f64, f64)> = memory
            .iter()
            .filter(|m| m.0 >= window)
            .map(|m| (m.0 / 60.0, pick(m) as f64 / 1024.0))
            .collect();
        let n = points.len() as f64;
        let (mx, my) = (
            points.iter().map(|p| p.0).sum::<f64>() / n,
            points.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        if points.len() < 2 || sxx == 0.0 {
            0.0
        } else {
            round2(sxy / sxx)
        }
    };
    let slope = |pick: fn(&(f64, u64, u64)) -> u64| {
        let (first, last) = (mean(0.0, window, pick), mean(span - window, span, pick));
        json!({
            "first_mb": round2(first),
            "last_mb": round2(last),
            "slope_mb_per_minute": round2((last - first) / minutes_apart.max(1.0 / 60.0)),
            "steady_slope_mb_per_minute": steady(pick),
        })
    };
    let report = json!({
        "duration_seconds": span,
        "offered_per_second": rate,
        "body_bytes": args.body_bytes,
        "database": if args.database_url.as_deref().is_some_and(|u| !u.is_empty()) { "postgres" } else { "sqlite" },
        "acknowledged": acknowledged,
        "delivered_distinct": distinct,
        "delivered_with_duplicates": received,
        "lost": lost,
        "ingest_retries": load.retries.load(Ordering::SeqCst),
        "throughput_per_second": round2(distinct as f64 / (last_delivery - started).as_secs_f64()),
        "latency_p50_ms": overall.quantile_ms(0.50),
        "latency_p90_ms": overall.quantile_ms(0.90),
        "latency_p99_ms": overall.quantile_ms(0.99),
        "latency_p999_ms": overall.quantile_ms(0.999),
        "latency_max_ms": round2(overall.max_us as f64 / 1000.0),
        "engine_memory": slope(|m| m.1),
        "destination_memory": slope(|m| m.2),
        "engine_peak_rss_mb": round2(peaks.0 as f64 / 1024.0),
        "destination_peak_rss_mb": round2(peaks.1 as f64 / 1024.0),
        "samples": samples,
    });
    if lost > 0 || distinct < acknowledged {
        return Err(BenchError::Traffic(format!(
            "{lost} acknowledged messages never reached the application: {report}"
        )));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(us * 100);
        }
        let p50 = h.quantile_ms(0.5);
        assert!((500.0..=510.0).contains(&p50), "{p50}");
        let p99 = h.quantile_ms(0.99);
        assert!((990.0..=1010.0).contains(&p99), "{p99}");
        assert_eq!(h.quantile_ms(1.0), 1000.0);
    }

    #[test]
    fn bitmap_counts_each_number_once() {
        let b = Bitmap::new(130);
        assert!(b.insert(0) && b.insert(129) && !b.insert(129));
        assert!(b.contains(129) && !b.contains(64));
        assert!(!b.insert(1_000), "past the end is ignored");
    }
}
