//! What the inbox benchmarks share: the ~2 KB message they keep and the closed-loop keep load.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wharf_store::{Inbox, MessageStatus, NewMessage};

/// A 2 KB-body data model message with a random duplicate key, like Redox's log IDs: the
/// realistic case for the duplicate-key index.
pub fn message(body: &bytes::Bytes, log_id: u64) -> NewMessage {
    NewMessage {
        destination: "bench".into(),
        duplicate_key: format!("log:{}", uuid::Uuid::new_v4()),
        kind: "data_model".into(),
        status: MessageStatus::Received,
        data_model: Some("PatientAdmin".into()),
        event_type: Some("Arrival".into()),
        log_id: Some(log_id.to_string()),
        content_type: "application/json".into(),
        body: body.clone(),
        malformed_reason: None,
    }
}

/// `tasks` tasks keeping messages back to back for `seconds`; every `keep`'s latency, sorted.
pub async fn keep_load(inbox: &Inbox, tasks: usize, seconds: u64) -> Vec<Duration> {
    let body = bytes::Bytes::from(vec![b'x'; 2048]);
    let next = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (inbox, body, next) = (inbox.clone(), body.clone(), next.clone());
        set.spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let log_id = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                inbox.keep(message(&body, log_id)).await.unwrap();
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
    all
}
