//! Measures the inbox writer alone (no HTTP): N tasks keeping ~2 KB messages with random
//! duplicate keys for a few seconds; prints kept/s and p50/p99 of `keep`.
//! `cargo run --release -p wharf-store --example keep_throughput -- [tasks] [seconds] [database_url]`
//! With a PostgreSQL `database_url`, the inbox goes into a fresh schema there (dropped after).
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wharf_store::{Database, Inbox, InboxOptions, MessageStatus, NewMessage};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let server = args.get(3).cloned();
    let database = match &server {
        Some(url) => {
            wharf_store::postgres::execute(url, &format!("CREATE SCHEMA {schema}")).unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            Database::Postgres(format!("{url}{sep}options=-csearch_path%3D{schema}"))
        }
        None => Database::Sqlite(dir.path().to_owned()),
    };
    let inbox = Inbox::open_database(&database, InboxOptions::default()).unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 2048]);
    let next = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (inbox, body, next) = (inbox.clone(), body.clone(), next.clone());
        set.spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                inbox
                    .keep(NewMessage {
                        destination: "bench".into(),
                        // Random, like Redox's log IDs: the realistic case for the duplicate-key index.
                        duplicate_key: format!("log:{}", uuid::Uuid::new_v4()),
                        kind: "data_model".into(),
                        status: MessageStatus::Received,
                        data_model: Some("PatientAdmin".into()),
                        event_type: Some("Arrival".into()),
                        log_id: Some(id.to_string()),
                        content_type: "application/json".into(),
                        body: body.clone(),
                        malformed_reason: None,
                    })
                    .await
                    .unwrap();
                lat.push(t.elapsed());
            }
            lat
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.unwrap());
    }
    all.sort();
    println!(
        "backend={} tasks={tasks} kept/s={:.0} p50={:?} p99={:?}",
        if server.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        all.len() as f64 / seconds as f64,
        all[all.len() / 2],
        all[all.len() * 99 / 100]
    );
    inbox.close();
    if let Some(url) = &server {
        wharf_store::postgres::execute(url, &format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }
}
