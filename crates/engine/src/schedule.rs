//! The engine's scheduled work, beside the delivery worker: the retention sweep every
//! `retention_interval` (the first one at start, so a stopped engine catches up at once), and
//! the alert rules' evaluation every `alert_interval`.
//! Like `api`, `dashboard` and `worker`, it only calls the core (`app`).

use crate::app::{Engine, alert_rules, retention};
use tokio::sync::watch;

/// Runs the schedule until `shutdown` turns true.
pub(crate) fn spawn(
    engine: Engine,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut retention_tick = tokio::time::interval(engine.config.retention.interval);
        retention_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut alert_tick = tokio::time::interval(engine.config.alert_interval);
        alert_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = retention_tick.tick() => {
                    // A failure is logged by the store's health (once per change of state)
                    // and retried at the next tick; nothing is lost by waiting.
                    if let Err(e) = retention::sweep(&engine).await {
                        tracing::warn!(error = %e, "retention sweep failed; it runs again at the next interval");
                    }
                }
                _ = alert_tick.tick() => {
                    if let Err(e) = alert_rules::evaluate(&engine).await {
                        tracing::warn!(error = %e, "alert rules could not be evaluated; they are at the next interval");
                    }
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    })
}
