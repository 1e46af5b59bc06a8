//! What the core tells the delivery worker about its queues, and the destination records that
//! ingestion reads on every message.
//!
//! * **New logs.** Ingestion names the destinations it queued for ([`QueueSignals::queued`]),
//!   after the commit. The worker takes that set ([`QueueSignals::take_queued`]) and starts those
//!   queues at once, instead of reading every queue's head on every message: with a backlog,
//!   that read costs as much as the backlog and starved delivery while ingestion ran.
//! * **Operator changes** (pause, resume, stop, resend; a destination changed or deleted):
//!   [`QueueSignals::changed`] moves the epoch on and wakes the worker to read every head again.
//!   A queue being drained reads ahead (a batch of logs, its target once); it checks the epoch
//!   before each attempt and reads both again when it moved, so a change takes effect before
//!   the next message goes.
//! * **Destination records** for ingestion, kept at most [`RECORD_TTL`]: every message names
//!   its destinations, and reading each from the store cost a round trip per target. Changes
//!   made through this process clear them at once; on a shared PostgreSQL database another
//!   engine's change is seen within the TTL.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use wharf_store::engine::DestinationRecord;

/// How long ingestion trusts a destination record it read.
pub const RECORD_TTL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct QueueSignals {
    queued: Mutex<HashSet<String>>,
    /// Notified when [`QueueSignals::queued`] adds destinations.
    pub queued_notify: Notify,
    epoch: AtomicU64,
    /// Notified when every queue's head should be read again.
    pub wake: Notify,
    records: Mutex<HashMap<String, (Arc<DestinationRecord>, Instant)>>,
}

impl QueueSignals {
    /// Logs were committed to these destinations' queues.
    pub fn queued<'a>(&self, destinations: impl IntoIterator<Item = &'a str>) {
        let was_empty = {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            let was_empty = queued.is_empty();
            for destination in destinations {
                if !queued.contains(destination) {
                    queued.insert(destination.to_owned());
                }
            }
            was_empty
        };
        // Whoever made the set non-empty woke the worker, which has not taken it yet: one
        // wake-up per batch the worker takes, not one per message (each was a futex call).
        if was_empty {
            self.queued_notify.notify_one();
        }
    }

    /// The destinations that got logs since the last call.
    pub fn take_queued(&self) -> HashSet<String> {
        std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// An operator changed a queue or a destination: drains read again, the worker looks at
    /// every head, and ingestion reads destination records afresh.
    pub fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.wake.notify_one();
    }

    /// Moves on with every change (see [`QueueSignals::changed`]).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A destination record read within [`RECORD_TTL`], if any.
    pub fn record(&self, id: &str) -> Option<Arc<DestinationRecord>> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records
            .get(id)
            .filter(|(_, read)| read.elapsed() < RECORD_TTL)
            .map(|(record, _)| record.clone())
    }

    /// Keeps a record just read from the store (unless a change happened since `epoch`,
    /// when it may already be stale).
    pub fn keep_record(&self, record: Arc<DestinationRecord>, epoch: u64) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if self.epoch() != epoch {
            return;
        }
        // Bounded by the organization's destinations; expired ones go when it grows.
        if records.len() > 10_000 {
            records.retain(|_, (_, read)| read.elapsed() < RECORD_TTL);
        }
        records.insert(record.id.clone(), (record, Instant::now()));
    }
}
