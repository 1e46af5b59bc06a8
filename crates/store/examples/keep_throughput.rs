//! Measures the inbox writer alone (no HTTP): N tasks keeping ~2 KB messages with random
//! duplicate keys for a few seconds; prints kept/s and p50/p99 of `keep`.
//! `cargo run --release -p wharf-store --example keep_throughput -- [tasks] [seconds] [database_url]`
//! With a PostgreSQL `database_url`, the inbox goes into a fresh schema there (dropped after).
mod common;

use wharf_store::{Database, Inbox, InboxOptions};

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
    let all = common::keep_load(&inbox, tasks, seconds).await;
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
