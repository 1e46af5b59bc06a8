//! Leases as this process holds them: which, and until when they are safe to act on.
//!
//! The database decides who holds a lease: a row with a holder and an `expires_at` set by the
//! database's own clock, so processes never compare their clocks. This process remembers, for
//! each lease it took or renewed, a deadline on its own monotonic clock measured from *before*
//! it sent that statement, less a second: the local deadline always passes before the database
//! lets anyone else take the lease. Work (one delivery attempt, one forward) starts only while at
//! least `bound` (the longest that work may take) of the deadline is left, so it has ended before
//! another process can start the next piece of the same queue. Hence a lease lasts
//! `bound + 2 heartbeats` at least: one missed heartbeat does not stop the work.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often leases are renewed (and free ones looked for).
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);
/// Shortest lease: a dead process's queues wait at most this long for another.
pub(crate) const MIN_LEASE: Duration = Duration::from_secs(15);
/// Local deadlines end this much before the database's `expires_at`.
const MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Leases {
    held: Mutex<HashMap<String, Instant>>,
    bound: Duration,
    /// How long a lease lasts in the database after each renewal.
    pub duration: Duration,
}

impl Leases {
    /// Leases for work that takes at most `bound`.
    pub fn new(bound: Duration) -> Leases {
        Leases {
            held: Mutex::default(),
            bound,
            duration: MIN_LEASE.max(bound + 2 * HEARTBEAT),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether work under lease `name` may start now.
    pub fn holds(&self, name: &str) -> bool {
        self.map()
            .get(name)
            .is_some_and(|until| until.saturating_duration_since(Instant::now()) >= self.bound)
    }

    /// The leases held (whether or not enough of them is left to start work).
    pub fn held(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    pub fn count(&self) -> usize {
        self.map().len()
    }

    /// Records leases the database granted or renewed by a statement sent at `sent`.
    pub fn granted(&self, names: impl IntoIterator<Item = String>, sent: Instant) {
        let until = sent + self.duration.saturating_sub(MARGIN);
        let mut map = self.map();
        for name in names {
            map.insert(name, until);
        }
    }

    /// After a renewal sent at `sent`: exactly `renewed` are held; any other was lost.
    pub fn renewed(&self, renewed: Vec<String>, sent: Instant) {
        self.map().clear();
        self.granted(renewed, sent);
    }

    /// Forgets a lease (before releasing it in the database).
    pub fn remove(&self, name: &str) -> Option<Instant> {
        self.map().remove(name)
    }

    /// Takes back a lease whose release the database refused.
    pub fn restore(&self, name: String, until: Instant) {
        self.map().insert(name, until);
    }

    pub fn clear(&self) {
        self.map().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_starts_only_with_enough_lease_left() {
        let leases = Leases::new(Duration::from_secs(30));
        assert_eq!(leases.duration, Duration::from_secs(40));
        let now = Instant::now();
        leases.granted(["a".to_owned()], now);
        assert!(leases.holds("a"));
        assert!(!leases.holds("b"));
        // Renewed long ago: less than the bound is left.
        leases.granted(["a".to_owned()], now - Duration::from_secs(15));
        assert!(!leases.holds("a"));
        leases.renewed(vec!["b".to_owned()], now);
        assert!(leases.holds("b") && !leases.holds("a"));
        assert_eq!(Leases::new(Duration::from_secs(1)).duration, MIN_LEASE);
    }
}
