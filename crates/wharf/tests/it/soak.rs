//! A short run of `wharf bench soak`, so the soak mode cannot rot between the long runs
//! recorded in docs/BENCHMARKS.md.

use super::*;
use serde_json::Value;

#[tokio::test]
async fn a_short_soak_delivers_everything_and_reports_memory() {
    let dir = TestDir::new();
    let mut args = vec![
        "bench",
        "soak",
        "--duration",
        "6s",
        "--rate",
        "20",
        "--report-every",
        "2s",
        "--body-bytes",
        "256",
    ];
    if let Some(url) = dir.database_url() {
        args.extend(["--database-url", url]);
    }
    let out = run(&args).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let acknowledged = report["acknowledged"].as_u64().unwrap();
    assert!(acknowledged >= 100, "{report}");
    assert_eq!(report["lost"], 0);
    let backend = if dir.database_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(report["database"], backend);
    assert_eq!(report["delivered_distinct"], acknowledged);
    assert!(report["latency_p99_ms"].as_f64().unwrap() > 0.0);
    assert!(report["engine_memory"]["last_mb"].as_f64().unwrap() > 1.0);
    assert!(report["destination_memory"]["last_mb"].as_f64().unwrap() > 1.0);
    assert!(report["samples"].as_array().unwrap().len() >= 3);
    // Progress went to standard error as it happened, one JSON line per report.
    assert!(stderr(&out).lines().filter(|l| l.starts_with('{')).count() >= 3);
}

#[tokio::test]
async fn a_benchmark_exits_2_for_a_wrong_flag_and_1_when_it_cannot_run() {
    let out = run(&["bench", "soak", "--rate", "0"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--rate must be at least 1 message per second"),
        "{}",
        stderr(&out)
    );
    // Servers that cannot start (nothing listens on port 1): a failure, not a usage mistake.
    let out = run(&[
        "bench",
        "soak",
        "--duration",
        "2s",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/none",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("exited at start"), "{}", stderr(&out));
}
