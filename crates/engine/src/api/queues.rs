//! A destination's queue (Wharf): `GET /platform/v1/destinations/{destinationId}/queue` and
//! `POST .../queue/pause` and `.../queue/resume`, answering `payload.queue`.

use super::models::{Envelope, ErrorBody, QueuePayload, QueueView};
use super::{Body, ok};
use crate::app::audit::Access;
use crate::app::queues as core;
use crate::app::{Engine, EngineError};
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

/// What a pause may say: why. It is shown beside the pause with who paused it (the management
/// key's name) and when, as the dashboard's Pause shows them.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct PauseBody {
    pub reason: Option<String>,
}

/// The reason recorded for a pause through the API that gave none.
const NO_REASON: &str = "paused through the Platform API; no reason given";

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

/// Pauses the queue: nothing is sent until it is resumed. Who paused it (the management key's
/// name), when and why (`reason`, optional) are kept and shown with the queue.
#[utoipa::path(operation_id = "queues_pause", post, path = "/platform/v1/destinations/{destinationId}/queue/pause",
    tag = "Queues", params(("destinationId" = String, Path)),
    request_body(content = Option<PauseBody>, description = "optional: `{\"payload\": {\"reason\": \"...\"}}`"),
    responses((status = 200, body = Envelope<QueuePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn pause(
    State(engine): State<Engine>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
    Body(body): Body<PauseBody>,
) -> Result<Json<Envelope<QueuePayload>>, EngineError> {
    let reason = body
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| NO_REASON.to_owned());
    core::pause(&engine, &id, &access.actor.name, &reason).await?;
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
