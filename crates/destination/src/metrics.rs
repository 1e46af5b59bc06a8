//! The destination server's metrics, on top of the HTTP ones every server has
//! (`wharf-serve`): inbox depth by destination and status (read from the inbox when scraped),
//! group-commit batch sizes, forwarded messages deleted after their retention,
//! authentication failures (counted from the responses marked by `receive` and `strategy`),
//! and requests refused by the failed-authentication limit (`throttle`).

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
    pub batch_sizes: Histogram,
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
                let lag = reader
                    .oldest_unforwarded(name)
                    .ok()
                    .flatten()
                    .map(|received_at| ((now - received_at).max(0)) / 1000)
                    .unwrap_or(0);
                self.oldest_unforwarded
                    .get_or_create(&vec![("destination".into(), name.clone())])
                    .set(lag);
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
