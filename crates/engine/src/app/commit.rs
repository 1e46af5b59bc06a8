//! Committing the engine's hot writes: logs queued at ingestion and delivery attempts.
//!
//! Each must be durable before the engine acts on it (answering a source 200, moving a queue
//! on). They go through the store's group-commit writer (`wharf_store::writer`, the same one
//! the destination's inbox uses): it takes everything waiting, commits it in one transaction
//! and answers every caller, so under load one `fsync` covers hundreds of writes. Ingestion
//! uses its bounded queue and is refused with 503 and `Retry-After` when it is full; the
//! delivery worker's attempts use its bookkeeping queue and are never refused. A batch that
//! fails is reported to every caller as the store's failure ([`EngineError`]): `Unavailable`
//! when nothing was committed, `OutcomeUnknown` when the connection broke after the commit was
//! sent.

use super::error::{EngineError, StoreHealth};
use std::sync::Arc;
use wharf_store::KeepError;
use wharf_store::engine::{Committed, EngineStore, Write};

/// The handle callers use. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    store: EngineStore,
    health: StoreHealth,
}

impl Committer {
    /// Commits through `store`'s writer; `batch_sizes` observes the size of every batch.
    pub fn start(
        store: EngineStore,
        batch_sizes: prometheus_client::metrics::histogram::Histogram,
        health: StoreHealth,
    ) -> Committer {
        store.observe_batches(Arc::new(move |n| batch_sizes.observe(n as f64)));
        Committer { store, health }
    }

    /// Commits `write` (the engine's own bookkeeping: never refused for a full queue).
    pub async fn commit(&self, write: Write) -> Result<(), EngineError> {
        self.submit(write)?.wait().await
    }

    /// Hands `write` to the writer and returns at once: the caller goes on and waits for the
    /// commit later ([`Pending::wait`]). The delivery worker sends a queue's next message
    /// while the previous one's attempt is being committed.
    pub fn submit(&self, write: Write) -> Result<Pending, EngineError> {
        let committed = self
            .store
            .commit(write)
            .map_err(|e| self.health.failed(e))?;
        Ok(Pending {
            committed,
            health: self.health.clone(),
        })
    }

    /// Commits `write`, or refuses at once when the writer's queue is full (for requests
    /// from outside).
    pub async fn try_commit(&self, write: Write) -> Result<(), EngineError> {
        let committed = self.store.try_commit(write).map_err(|e| match e {
            KeepError::Busy => EngineError::Busy,
            KeepError::Store(e) => self.health.failed(e),
        })?;
        Pending {
            committed,
            health: self.health.clone(),
        }
        .wait()
        .await
    }
}

/// A write handed to the writer, not yet known to be committed.
pub struct Pending {
    committed: Committed,
    health: StoreHealth,
}

impl Pending {
    /// Waits until the write is committed, or its batch failed.
    pub async fn wait(self) -> Result<(), EngineError> {
        match self.committed.await {
            Ok(Ok(())) => {
                self.health.succeeded();
                Ok(())
            }
            Ok(Err(e)) => Err(self.health.failed(e)),
            Err(_) => Err(EngineError::Unavailable),
        }
    }
}
