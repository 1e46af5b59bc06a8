//! A destination's queue: `GET /platform/v1/destinations/{id}/queue` and
//! `POST .../queue/pause` and `.../queue/resume`.
//!
//! The state is `paused` when an operator paused it, or when its head is failing (the queue
//! is held while the head is retried on the ladder, PROTOCOL.md section 6); `reason` says which.
//! Resume lifts an operator's pause and retries a failing head at once. The dashboard shows
//! and changes queues through [`paused_reason`] and [`set_paused`].

use super::{ApiError, State, ok, rfc3339};
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;
use wharf_store::engine::QueueState;

pub(super) fn routes() -> Router<State> {
    Router::new()
        .route("/platform/v1/destinations/{id}/queue", get(read))
        .route("/platform/v1/destinations/{id}/queue/pause", post(pause))
        .route("/platform/v1/destinations/{id}/queue/resume", post(resume))
}

async fn exists(state: &State, id: &str) -> Result<(), ApiError> {
    let lookup = id.to_owned();
    state
        .db(move |s| s.destination(&lookup))
        .await?
        .filter(|d| d.organization_id == state.organization.id)
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found(&format!("destination {id}")))
}

/// Why a queue is paused: `operator`, or `delivery failing` while its head is retried on the
/// ladder; `None` while it runs.
pub(crate) fn paused_reason(q: &QueueState) -> Option<&'static str> {
    let failing = q.head.as_ref().is_some_and(|h| h.attempts > 0);
    if q.paused_by_operator {
        Some("operator")
    } else if failing {
        Some("delivery failing")
    } else {
        None
    }
}

async fn view(state: &State, id: String) -> Result<Response, ApiError> {
    let lookup = id.clone();
    let q = state.db(move |s| s.queue(&lookup)).await?;
    let reason = paused_reason(&q);
    Ok(ok(
        StatusCode::OK,
        json!({
            "destinationId": id,
            "state": if reason.is_some() { "paused" } else { "running" },
            "reason": reason,
            "depth": q.depth,
            "headLogId": q.head.as_ref().map(|h| h.id.clone()),
            "headAttempts": q.head.as_ref().map(|h| h.attempts),
            "nextAttemptAt": q.head.as_ref().filter(|_| !q.paused_by_operator).map(|h| rfc3339(h.next_attempt_at)),
        }),
    ))
}

async fn read(
    axum::extract::State(state): axum::extract::State<State>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    exists(&state, &id).await?;
    view(&state, id).await
}

async fn pause(
    axum::extract::State(state): axum::extract::State<State>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_paused(&state, id.clone(), true).await?;
    view(&state, id).await
}

async fn resume(
    axum::extract::State(state): axum::extract::State<State>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    set_paused(&state, id.clone(), false).await?;
    view(&state, id).await
}

/// An operator pauses or resumes a destination's queue (resuming retries a failing head at
/// once).
pub(crate) async fn set_paused(state: &State, id: String, paused: bool) -> Result<(), ApiError> {
    exists(state, &id).await?;
    let target = id.clone();
    state.db(move |s| s.set_paused(&target, paused)).await?;
    if paused {
        tracing::info!(destination = %id, "queue paused by an operator");
    } else {
        state.wake.notify_one();
        tracing::info!(destination = %id, "queue resumed by an operator");
    }
    Ok(())
}
