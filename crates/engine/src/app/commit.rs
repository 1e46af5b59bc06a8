//! Group commit for the engine's hot writes: queuing ingested logs and recording attempts.
//!
//! Each of these must be durable before the engine acts on it (answering a source 200, moving a
//! queue on), and each durable commit costs an `fsync`. Callers therefore hand their write to
//! this committer and wait; it takes everything waiting (up to [`MAX_BATCH`]), commits it in one
//! transaction, and answers every caller. Under load one `fsync` covers hundreds of writes.
//! The queue into it is bounded: ingestion that finds it full answers 503 with `Retry-After`.
//! A batch that fails is reported to every caller as the store's failure ([`EngineError`]):
//! `Unavailable` when nothing was committed, `OutcomeUnknown` when the connection broke after
//! the commit was sent.

use super::error::{EngineError, StoreHealth};
use tokio::sync::{mpsc, oneshot};
use wharf_store::StoreError;
use wharf_store::engine::{EngineStore, Write};

/// Most writes in one transaction.
pub const MAX_BATCH: usize = 512;
/// Writes that may wait before ingestion is refused.
pub const QUEUE_CAPACITY: usize = 8192;

type Request = (Write, oneshot::Sender<Result<(), EngineError>>);

/// The committer has stopped: the engine is shutting down.
fn stopped() -> EngineError {
    EngineError::Unavailable
}

/// The handle callers use. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the committer on `store`; `batch_sizes` observes the size of every batch.
    pub fn start(
        store: EngineStore,
        batch_sizes: prometheus_client::metrics::histogram::Histogram,
        health: StoreHealth,
    ) -> Committer {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(store, rx, batch_sizes, health));
        Committer { tx }
    }

    /// Commits `write`, waiting for room in the queue (for the engine's own bookkeeping).
    pub async fn commit(&self, write: Write) -> Result<(), EngineError> {
        self.submit(write).await?.wait().await
    }

    /// Queues `write` (waiting for room) and returns at once: the caller goes on and waits for
    /// the commit later ([`Pending::wait`]). The delivery worker sends a queue's next message
    /// while the previous one's attempt is being committed.
    pub async fn submit(&self, write: Write) -> Result<Pending, EngineError> {
        let (reply, wait) = oneshot::channel();
        self.tx.send((write, reply)).await.map_err(|_| stopped())?;
        Ok(Pending(wait))
    }

    /// Commits `write`, or refuses at once when the queue is full (for requests from outside).
    pub async fn try_commit(&self, write: Write) -> Result<(), EngineError> {
        let (reply, wait) = oneshot::channel();
        self.tx.try_send((write, reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => EngineError::Busy,
            mpsc::error::TrySendError::Closed(_) => stopped(),
        })?;
        wait.await.map_err(|_| stopped())?
    }
}

/// A write handed to the committer, not yet known to be committed.
pub struct Pending(oneshot::Receiver<Result<(), EngineError>>);

impl Pending {
    /// Waits until the write is committed, or its batch failed.
    pub async fn wait(self) -> Result<(), EngineError> {
        self.0.await.map_err(|_| stopped())?
    }
}

async fn run(
    store: EngineStore,
    mut rx: mpsc::Receiver<Request>,
    batch_sizes: prometheus_client::metrics::histogram::Histogram,
    health: StoreHealth,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        batch_sizes.observe(batch.len() as f64);
        let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().unzip();
        let store = store.clone();
        let result: Result<(), StoreError> =
            match tokio::task::spawn_blocking(move || store.apply(&writes)).await {
                Ok(result) => result,
                Err(e) => Err(StoreError::CommitFailed(e.to_string())),
            };
        let result = match result {
            Ok(()) => {
                health.succeeded();
                Ok(())
            }
            Err(e) => Err(health.failed(e)),
        };
        for reply in replies {
            let _ = reply.send(result.clone());
        }
    }
}
