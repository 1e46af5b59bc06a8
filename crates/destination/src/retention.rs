//! Retention: deleting forwarded messages once they are older than `forwarded_retention`.
//!
//! A forwarded message has been accepted by the application (it answered 2xx), so the inbox's
//! copy is only a record; keeping PHI longer than needed is a liability, and an inbox that only
//! grows makes every insert into its duplicate-key index slower. One task per server deletes
//! messages whose `forwarded_at` is older than the retention, oldest first, [`CHUNK`] at a
//! time through the inbox writer, pausing after each chunk for [`PAUSE_FACTOR`] times as long as
//! it took, so acknowledgements waiting on the writer are not held up: deleting a message costs
//! the writer about as much as keeping one, and a backlog deleted back to back in chunks of 100
//! halved the acknowledgements and tripled their p99 (docs/experiments/inbox-maintenance.md).
//! The pause scales with the chunk's time, which includes its wait behind acknowledgements, so
//! the retention slows down by itself when the server is busy and drains quickly when it is
//! idle.
//!
//! Messages still waiting to be forwarded, messages kept without a `forward_url`, and malformed
//! ones are never deleted: they are the only copy.
//!
//! Once deleted, a message's duplicate key is free again: a retry arriving after the retention
//! would be kept and forwarded as new. Redox retries within minutes, so any retention of hours
//! or more is far outside that window.

use prometheus_client::metrics::counter::Counter;
use std::time::Duration;
use tokio::sync::watch;
use wharf_store::Inbox;

/// Messages deleted per writer batch: small, because every acknowledgement committed in the
/// same batch waits for the deletion too.
const CHUNK: u32 = 25;
/// After each chunk, wait this many times as long as it took: the retention then takes at most
/// about a fifth of the writer's time.
const PAUSE_FACTOR: u32 = 4;
/// Longest wait between two passes.
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest wait between two passes (for very short retentions, as in tests).
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Wait after a pass that failed (the disk full, the database unreachable).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// How often a pass runs: often enough that nothing stays much past its retention.
fn interval(retention: Duration) -> Duration {
    (retention / 10).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// Deletes what has outlived `retention` now, then again every [`interval`], until `shutdown`
/// turns true. `pruned` counts every deleted message.
pub(crate) async fn run(
    inbox: Inbox,
    retention: Duration,
    pruned: Counter,
    mut shutdown: watch::Receiver<bool>,
) {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        let wait = match pass(&inbox, retention_ms, &pruned, &mut shutdown).await {
            Ok(0) => interval(retention),
            Ok(deleted) => {
                tracing::info!(
                    deleted,
                    retention_secs = retention.as_secs(),
                    "deleted forwarded messages older than the retention"
                );
                interval(retention)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not delete forwarded messages past their retention; retrying");
                RETRY_AFTER_FAILURE
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One pass: chunk after chunk, each followed by its pause, until a chunk comes back short
/// (nothing more is due) or the server is stopping.
async fn pass(
    inbox: &Inbox,
    retention_ms: i64,
    pruned: &Counter,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<u64, wharf_store::StoreError> {
    let before = wharf_store::now_millis().saturating_sub(retention_ms);
    let mut total = 0;
    while !*shutdown.borrow() {
        let started = tokio::time::Instant::now();
        let deleted = inbox.prune_forwarded(before, CHUNK).await?;
        pruned.inc_by(deleted);
        total += deleted;
        if deleted < u64::from(CHUNK) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(started.elapsed() * PAUSE_FACTOR) => {}
            _ = shutdown.changed() => {}
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_run_often_enough_but_not_busily() {
        assert_eq!(interval(Duration::from_secs(2)), MIN_INTERVAL);
        assert_eq!(interval(Duration::from_secs(300)), Duration::from_secs(30));
        assert_eq!(interval(Duration::from_secs(30 * 86_400)), MAX_INTERVAL);
    }
}
