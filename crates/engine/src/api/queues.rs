//! A destination's queue (Wharf): `GET /platform/v1/destinations/{destinationId}/queue` and
//! `POST .../queue/pause` and `.../queue/resume`, answering `payload.queue`.

use super::models::{Envelope, ErrorBody, QueuePayload, QueueView};
use super::ok;
use crate::app::queues as core;
use crate::app::{Engine, EngineError};
use axum::Json;
use axum::extract::{Path, State};

async fn view(engine: &Engine, id: &str) -> Result<Json<Envelope<QueuePayload>>, EngineError> {
    let q = core::read(engine, id).await?;
    Ok(ok(QueuePayload {
        queue: QueueView::new(id, &q, core::paused_by(&q)),
    }))
}

/// The queue's state, depth and head.
#[utoipa::path(operation_id = "queues_read", get, path = "/platform/v1/destinations/{destinationId}/queue", tag = "Queues",
    params(("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<QueuePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<QueuePayload>>, EngineError> {
    view(&engine, &id).await
}

/// Pauses the queue: nothing is sent until it is resumed.
#[utoipa::path(operation_id = "queues_pause", post, path = "/platform/v1/destinations/{destinationId}/queue/pause",
    tag = "Queues", params(("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<QueuePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn pause(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<QueuePayload>>, EngineError> {
    core::set_paused(&engine, &id, true).await?;
    view(&engine, &id).await
}

/// Resumes the queue, retrying a failing head at once.
#[utoipa::path(operation_id = "queues_resume", post, path = "/platform/v1/destinations/{destinationId}/queue/resume",
    tag = "Queues", params(("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<QueuePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn resume(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<QueuePayload>>, EngineError> {
    core::set_paused(&engine, &id, false).await?;
    view(&engine, &id).await
}
