//! A destination's queue as an operator sees it, and the operator's pause and resume.
//!
//! A queue is paused when an operator paused it, or when its head is failing (the queue is
//! held while the head is retried on the ladder, docs/PROTOCOL.md section 6); [`PausedBy`] says
//! which. Resume lifts an operator's pause and retries a failing head at once.

use super::{Engine, EngineError};
use wharf_store::engine::QueueState;

/// Why a queue is not moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausedBy {
    /// An operator paused it.
    Operator,
    /// Its head failed and waits for its next try on the ladder.
    DeliveryFailing,
}

impl PausedBy {
    /// How the API and the dashboard name it.
    pub fn as_str(self) -> &'static str {
        match self {
            PausedBy::Operator => "operator",
            PausedBy::DeliveryFailing => "delivery failing",
        }
    }
}

/// Why a queue is paused, or `None` while it runs.
pub fn paused_by(q: &QueueState) -> Option<PausedBy> {
    let failing = q.head.as_ref().is_some_and(|h| h.attempts > 0);
    if q.paused_by_operator {
        Some(PausedBy::Operator)
    } else if failing {
        Some(PausedBy::DeliveryFailing)
    } else {
        None
    }
}

/// The queue of a destination of this organization.
pub async fn read(engine: &Engine, id: &str) -> Result<QueueState, EngineError> {
    engine.destination_record(id).await?;
    let lookup = id.to_owned();
    engine.db(move |s| s.queue(&lookup)).await
}

/// An operator pauses or resumes a destination's queue (resuming retries a failing head at
/// once).
pub async fn set_paused(engine: &Engine, id: &str, paused: bool) -> Result<(), EngineError> {
    engine.destination_record(id).await?;
    let target = id.to_owned();
    engine.db(move |s| s.set_paused(&target, paused)).await?;
    engine.signals.changed();
    if paused {
        tracing::info!(destination = %id, "queue paused by an operator");
    } else {
        tracing::info!(destination = %id, "queue resumed by an operator");
    }
    Ok(())
}
