//! Measures what retention costs acknowledgements: the inbox writer alone (no HTTP), 64 tasks
//! keeping ~2 KB messages, first with nothing else going on, then while a pruner deletes a
//! backlog of forwarded messages chunk after chunk as the destination's retention task does
//! (`chunk` per writer batch, then a pause of `pause` times as long as the chunk took; the
//! defaults are `wharf_destination::retention`'s). Alternates the two phases; prints kept/s and
//! p50/p99 of `keep` for each and the time each prune chunk took, then how fast what is left of
//! the backlog drains with no other load.
//! `cargo run --release -p wharf-store --example prune_under_load -- [backlog] [seconds] [rounds] [chunk] [pause]`
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wharf_store::{Inbox, InboxOptions};

const TASKS: usize = 64;

/// `count` messages kept and marked forwarded: the backlog the pruner works through.
async fn fill(inbox: &Inbox, body: &bytes::Bytes, count: u64) {
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (inbox, body, next) = (inbox.clone(), body.clone(), next.clone());
        set.spawn(async move {
            loop {
                let log_id = next.fetch_add(1, Ordering::Relaxed);
                if log_id >= count {
                    break;
                }
                let kept = inbox.keep(common::message(&body, log_id)).await.unwrap();
                inbox.mark_forwarded(kept.id).await.unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

fn report(phase: &str, lat: &[Duration], seconds: u64) {
    println!(
        "{phase:<16} kept/s={:>6.0} p50={:>9.2?} p99={:>9.2?}",
        lat.len() as f64 / seconds as f64,
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let backlog: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(400_000);
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let chunk: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(25);
    let pause: u32 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(4);
    println!("chunk={chunk} pause={pause}x");
    let dir = tempfile::tempdir().unwrap();
    let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
    let body = bytes::Bytes::from(vec![b'x'; 2048]);
    let t = Instant::now();
    fill(&inbox, &body, backlog).await;
    println!(
        "backlog: {backlog} forwarded messages kept in {:.1?}",
        t.elapsed()
    );
    // Everything forwarded before this instant is due.
    let before = wharf_store::now_millis() + 1;
    let mut pruned_total = 0;
    for round in 1..=rounds {
        let alone = common::keep_load(&inbox, TASKS, seconds).await;
        report(&format!("round {round} alone"), &alone, seconds);

        let stop = Arc::new(AtomicBool::new(false));
        let pruner = {
            let (inbox, stop) = (inbox.clone(), stop.clone());
            tokio::spawn(async move {
                let mut chunks = Vec::new();
                let mut deleted = 0;
                let mut ran_out = false;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let n = inbox.prune_forwarded(before, chunk).await.unwrap();
                    chunks.push(t.elapsed());
                    tokio::time::sleep(t.elapsed() * pause).await;
                    deleted += n;
                    if n < u64::from(chunk) {
                        ran_out = true;
                        break;
                    }
                }
                (chunks, deleted, ran_out)
            })
        };
        let pruning = common::keep_load(&inbox, TASKS, seconds).await;
        stop.store(true, Ordering::Relaxed);
        let (mut chunks, deleted, ran_out) = pruner.await.unwrap();
        pruned_total += deleted;
        report(&format!("round {round} pruning"), &pruning, seconds);
        chunks.sort();
        println!(
            "{:<16} deleted={deleted} ({:.0}/s) chunk p50={:.2?} p99={:.2?} max={:.2?}{}",
            "",
            deleted as f64 / seconds as f64,
            chunks[chunks.len() / 2],
            chunks[chunks.len() * 99 / 100],
            chunks[chunks.len() - 1],
            if ran_out {
                " (backlog ran out: give a larger backlog)"
            } else {
                ""
            },
        );
    }
    // The rest of the backlog, with nothing else going on.
    let t = Instant::now();
    let mut idle = 0;
    loop {
        let started = Instant::now();
        let n = inbox.prune_forwarded(before, chunk).await.unwrap();
        idle += n;
        if n < u64::from(chunk) {
            break;
        }
        tokio::time::sleep(started.elapsed() * pause).await;
    }
    println!(
        "idle drain       deleted={idle} ({:.0}/s)",
        idle as f64 / t.elapsed().as_secs_f64()
    );
    println!("pruned {} of {backlog}", pruned_total + idle);
    inbox.close();
}
