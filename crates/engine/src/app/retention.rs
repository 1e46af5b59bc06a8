//! Retention (issue 29): a log's payload, its body and its attempts' answers, is PHI and is
//! erased `payload_retention` after the log was created (30 days by default); its metadata
//! (ids, statuses, times, attempt counts) stays until `log_retention`, if set. Erasure is a
//! delete: the body's row in `messages` (shared by every log of one message, so it goes once
//! all of them are past retention and finished), its entry in the search index, and the
//! answers; not a flag. A body still to be delivered (a pending log) is never erased.
//!
//! The sweep works in chunks so a backlog (the first sweep after retention is switched on, or
//! after a long stop) never holds the store's write lock for long.

use super::{Engine, EngineError};
use wharf_store::engine::Erased;

/// Bodies (or logs) one transaction of a sweep erases at most.
const CHUNK: usize = 500;

/// Erases what is past retention now; answers what was erased.
pub async fn sweep(engine: &Engine) -> Result<Erased, EngineError> {
    let now = engine.now_millis();
    let retention = engine.config.retention.clone();
    let payload_before = now.saturating_sub(millis(retention.payload));
    let logs_before = retention.logs.map(|d| now.saturating_sub(millis(d)));
    let mut total = Erased::default();
    loop {
        let erased = engine
            .db(move |s| s.erase_payloads(payload_before, CHUNK))
            .await?;
        total.bodies += erased.bodies;
        total.payloads += erased.payloads;
        if erased.bodies < CHUNK as u64 {
            break;
        }
    }
    if let Some(before) = logs_before {
        loop {
            let org = engine.organization.id.clone();
            let erased = engine
                .db(move |s| s.delete_logs_before(&org, before, CHUNK))
                .await?;
            total.bodies += erased.bodies;
            total.logs += erased.logs;
            if erased.logs < CHUNK as u64 {
                break;
            }
        }
    }
    if total != Erased::default() {
        tracing::info!(
            bodies = total.bodies,
            payloads = total.payloads,
            logs = total.logs,
            "retention erased logs past their retention"
        );
    }
    Ok(total)
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
