//! The engine's metrics, on top of the HTTP ones every server has (`wharf-serve`): delivery
//! attempts and their latency, queue depth per destination, held and paused queues (read from
//! the store when scraped), group-commit batch sizes, requests refused by the rate limit, and
//! dashboard sign-ins failed or refused by the sign-in's own limits.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use wharf_serve::metrics::{
    CounterFamily, GaugeFamily, HistogramFamily, Metrics, batch_size_histogram,
};
use wharf_store::engine::EngineStore;

/// The registry and the engine's own series.
pub(crate) struct EngineMetrics {
    pub registry: Arc<Metrics>,
    attempts: CounterFamily,
    attempt_seconds: HistogramFamily,
    queue_depth: GaugeFamily,
    queues: GaugeFamily,
    pub batch_sizes: Histogram,
    rate_limited: CounterFamily,
    signin_failures: Counter,
    signin_refused: CounterFamily,
    /// Store writes refused for lack of space (counted by `app::error::StoreHealth`).
    pub store_refused_no_space: Counter,
}

impl EngineMetrics {
    pub fn new() -> Self {
        let mut registry = Metrics::new();
        let attempts = registry.counter_family(
            "delivery_attempts",
            "Delivery attempts to destinations, by outcome (succeeded or failed)",
        );
        let attempt_seconds = registry.latency_family(
            "delivery_attempt_duration_seconds",
            "Time from sending a message to the destination's answer, by outcome",
        );
        let queue_depth =
            registry.gauge_family("queue_depth", "Pending logs per destination queue");
        let queues = registry.gauge_family(
            "queues",
            "Destination queues by state: held (its head failed and is being retried) or paused (by an operator)",
        );
        let batch_sizes = registry.histogram(
            "engine_commit_batch_size",
            "Writes (ingested logs, attempts) per group commit",
            batch_size_histogram(),
        );
        let rate_limited = registry.counter_family(
            "rate_limited",
            "Requests refused with 429 by the rate limit, by kind (ingestion, management, dashboard_signin)",
        );
        let signin_failures = registry.counter(
            "dashboard_signin_failures",
            "Dashboard sign-ins refused for a wrong password, account or key",
        );
        let signin_refused = registry.counter_family(
            "dashboard_signin_refused",
            "Dashboard sign-ins refused with 429 before any check, by reason (too_many_failures: the address is locked out; busy: as many password checks run already)",
        );
        let store_refused_no_space = registry.counter(
            "store_refused_no_space",
            "Store writes refused for lack of space (SQLITE_FULL or ENOSPC on SQLite, disk_full on PostgreSQL), answered 503",
        );
        Self {
            store_refused_no_space,
            rate_limited,
            signin_failures,
            signin_refused,
            registry: Arc::new(registry),
            attempts,
            attempt_seconds,
            queue_depth,
            queues,
            batch_sizes,
        }
    }

    /// Records one delivery attempt.
    pub fn attempt(&self, accepted: bool, seconds: f64) {
        let outcome = vec![(
            "outcome".to_owned(),
            if accepted { "succeeded" } else { "failed" }.to_owned(),
        )];
        self.attempts.get_or_create(&outcome).inc();
        self.attempt_seconds
            .get_or_create(&outcome)
            .observe(seconds);
    }

    /// Counts one request refused by the rate limit.
    pub fn rate_limited(&self, kind: &str) {
        self.rate_limited
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc();
    }

    /// Counts one failed dashboard sign-in.
    pub fn signin_failed(&self) {
        self.signin_failures.inc();
    }

    /// Counts one dashboard sign-in refused with 429 (`too_many_failures` or `busy`).
    pub fn signin_refused(&self, reason: &str) {
        self.signin_refused
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// Reads the queues from the store and renders every series.
    pub fn render(&self, store: &EngineStore) -> Result<String, wharf_store::StoreError> {
        let stats = store.queue_stats()?;
        let (mut held, mut paused) = (0, 0);
        for q in &stats {
            self.queue_depth
                .get_or_create(&vec![("destination".to_owned(), q.destination_id.clone())])
                .set(q.depth);
            held += i64::from(q.held);
            paused += i64::from(q.paused_by_operator);
        }
        self.queues
            .get_or_create(&vec![("state".to_owned(), "held".to_owned())])
            .set(held);
        self.queues
            .get_or_create(&vec![("state".to_owned(), "paused".to_owned())])
            .set(paused);
        Ok(self.registry.render())
    }
}
