//! A destination's queue as an operator sees it, and the operator's pause and resume.
//!
//! One vocabulary ([`QueueCondition`]) for the dashboard, the API and `/metrics`: a queue is
//! `running`, `held` (its head is failing and retried on the ladder, docs/PROTOCOL.md section
//! 6) or `paused` (by an operator, who says why: [`pause`]). Resume lifts an operator's pause
//! and retries a failing head at once.

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

/// A queue's state, in the one vocabulary the dashboard, the API (`state`) and `/metrics`
/// (`wharf_queues{state}`) share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueCondition {
    /// Delivering in order, or empty.
    Running,
    /// Its head failed and is retried on the ladder: nothing behind it goes until it succeeds
    /// or an operator stops it.
    Held,
    /// An operator paused it: nothing goes until it is resumed.
    Paused,
}

impl QueueCondition {
    pub fn of(q: &QueueState) -> QueueCondition {
        match paused_by(q) {
            Some(PausedBy::Operator) => QueueCondition::Paused,
            Some(PausedBy::DeliveryFailing) => QueueCondition::Held,
            None => QueueCondition::Running,
        }
    }

    /// The API's and `/metrics`' word.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueCondition::Running => "running",
            QueueCondition::Held => "held",
            QueueCondition::Paused => "paused",
        }
    }

    /// The dashboard's word.
    pub fn label(self) -> &'static str {
        match self {
            QueueCondition::Running => "Running",
            QueueCondition::Held => "Held",
            QueueCondition::Paused => "Paused",
        }
    }

    /// What it means, in a sentence for the dashboard.
    pub fn explain(self) -> &'static str {
        match self {
            QueueCondition::Running => "messages are delivered in order as they come",
            QueueCondition::Held => {
                "its first message failed and is retried on the ladder; the messages behind it wait"
            }
            QueueCondition::Paused => "an operator paused it; nothing is sent until it is resumed",
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

/// An operator pauses a destination's queue, recording who (`by`) and why with the pause.
pub async fn pause(engine: &Engine, id: &str, by: &str, reason: &str) -> Result<(), EngineError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(EngineError::bad_request(
            "Say why the queue is paused: whoever finds it paused reads it before resuming.",
        ));
    }
    set_paused(engine, id, true).await?;
    let (target, by, why) = (id.to_owned(), by.to_owned(), reason.to_owned());
    engine.db(move |s| s.note_pause(&target, &by, &why)).await?;
    Ok(())
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
