//! The destination server's metrics, on top of the HTTP ones every server has
//! (`wharf-serve`): inbox depth by destination and status (read from the inbox when scraped),
//! group-commit batch sizes, forwarded messages deleted after their retention,
//! authentication failures (counted from the responses marked by `receive` and `strategy`),
//! requests refused by the failed-authentication limit (`throttle`), messages refused for lack
//! of space, and how long the head of each destination has been failing (a poison message)
//! and how often. The head's last error is on `/_wharf`, in the log and in the alert, not
//! here: free text as a label would make a new series per error.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use wharf_serve::metrics::{GaugeFamily, Metrics, batch_size_histogram};
use wharf_store::InboxReader;

/// The registry and the series the destination refreshes itself.
pub struct DestinationMetrics {
    pub registry: Arc<Metrics>,
    inbox: GaugeFamily,
    oldest_unforwarded: GaugeFamily,
    head_failing: GaugeFamily,
    head_attempts: GaugeFamily,
    pub batch_sizes: Histogram,
    /// Messages answered 503 because the store had no space left.
    pub refused_no_space: Counter,
    /// Forwarded messages deleted by the retention task.
    pub pruned: Counter,
    /// Requests answered 429 because their address failed authentication too often.
    pub auth_rate_limited: Counter,
}

impl DestinationMetrics {
    pub fn new() -> Self {
        let mut registry = Metrics::new();
        let inbox = registry.gauge_family(
            "inbox_messages",
            "Messages in the inbox, by destination and status (received = waiting to be forwarded)",
        );
        let oldest_unforwarded = registry.gauge_family(
            "forward_lag_seconds",
            "Age of the oldest kept message not yet forwarded, by destination (0 when none waits)",
        );
        let head_failing = registry.gauge_family(
            "forward_head_failing_seconds",
            "How long the oldest message waiting to be forwarded has been failing (since its first failed attempt), by destination; 0 when it has not failed or none waits. Everything behind it waits: alert on it",
        );
        let head_attempts = registry.gauge_family(
            "forward_head_attempts",
            "Failed forwarding attempts of the oldest message waiting to be forwarded, by destination (0 when none waits)",
        );
        let refused_no_space = registry.counter(
            "inbox_refused_no_space",
            "Messages answered 503 because the store had no space left (SQLITE_FULL or ENOSPC on SQLite, disk_full on PostgreSQL)",
        );
        let batch_sizes = registry.histogram(
            "inbox_commit_batch_size",
            "Messages per group commit of the inbox writer",
            batch_size_histogram(),
        );
        let pruned = registry.counter(
            "inbox_pruned",
            "Forwarded messages deleted from the inbox after forwarded_retention",
        );
        let auth_rate_limited = registry.counter(
            "auth_rate_limited",
            "Requests answered 429 because their client address failed authentication auth_failure_limit times within auth_failure_window",
        );
        Self {
            pruned,
            auth_rate_limited,
            registry: Arc::new(registry),
            inbox,
            oldest_unforwarded,
            head_failing,
            head_attempts,
            refused_no_space,
            batch_sizes,
        }
    }

    /// Reads the inbox counts and renders every series.
    pub fn render(&self, reader: &InboxReader, destinations: &[(String, bool)]) -> String {
        let now = wharf_store::now_millis();
        for (name, forwarding) in destinations {
            if let Ok(counts) = reader.count_by_status(name) {
                for (status, n) in counts {
                    self.inbox
                        .get_or_create(&vec![
                            ("destination".into(), name.clone()),
                            ("status".into(), status.as_str().to_owned()),
                        ])
                        .set(n);
                }
            }
            if *forwarding {
                let head = reader.head(name).ok().flatten();
                let seconds_since = |at: i64| ((now - at).max(0)) / 1000;
                let label = vec![("destination".into(), name.clone())];
                self.oldest_unforwarded
                    .get_or_create(&label)
                    .set(head.as_ref().map_or(0, |h| seconds_since(h.received_at)));
                self.head_failing.get_or_create(&label).set(
                    head.as_ref()
                        .and_then(|h| h.first_failed_at)
                        .map_or(0, seconds_since),
                );
                self.head_attempts
                    .get_or_create(&label)
                    .set(head.as_ref().map_or(0, |h| h.forward_attempts));
            }
        }
        self.registry.render()
    }
}

impl Default for DestinationMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The writer's batch observer feeding the histogram.
pub fn batch_observer(histogram: Histogram) -> wharf_store::writer::BatchObserver {
    Arc::new(move |size| histogram.observe(size as f64))
}
