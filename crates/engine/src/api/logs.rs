//! Logs, as Redox's Platform API serves them:
//! `GET /platform/v1/organizations/{organizationId}/logs` (filters, offset paging with `_page`
//! and `_count`, `meta.page`) and `GET .../logs/{logId}` (`payload.result`, with Wharf's
//! `attemptList`); and Wharf's operator actions `POST /platform/v1/logs/{logId}/stop` and
//! `.../resend`. Reading one log returns its attempts' answers, which are PHI: the read goes
//! through the core's `read_phi`, which records it (the key's name, the client's address) in
//! the audit log first.
//!
//! Statuses and types are spelled as Redox spells them (`succeeded`, `send`, ...), in answers
//! and in filters; times are ISO 8601 (RFC 3339).

use super::models::{Envelope, ErrorBody, LogPayload, LogQuery, LogView, LogsPayload, PageMeta};
use super::{check_organization, ok};
use crate::app::audit::Access;
use crate::app::logs::{self as core, Page, parse_time as time_filter};
use crate::app::{Engine, EngineError};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use std::collections::HashMap;

/// Most logs one page holds: Redox's maximum `_count`; larger counts are taken as this.
pub const MAX_PAGE_SIZE: usize = 50;
use wharf_protocol::platform::{LogStatus, LogType};
use wharf_store::engine::{LogFilter, LogRecord};

/// Views of `logs`, each with its destination's name and its latest attempt.
async fn views(engine: &Engine, logs: &[LogRecord]) -> Result<Vec<LogView>, EngineError> {
    let ids: Vec<String> = logs.iter().map(|l| l.id.clone()).collect();
    let mut destinations: Vec<String> = logs.iter().map(|l| l.destination_id.clone()).collect();
    destinations.sort();
    destinations.dedup();
    let (latest, names) = engine
        .db(move |s| {
            let latest = s.latest_attempts(&ids)?;
            let mut names = HashMap::new();
            for id in destinations {
                if let Some(d) = s.destination(&id)? {
                    names.insert(id, d.name);
                }
            }
            Ok((latest, names))
        })
        .await?;
    let latest: HashMap<&str, _> = latest.iter().map(|a| (a.log_id.as_str(), a)).collect();
    Ok(logs
        .iter()
        .map(|l| {
            LogView::new(
                l,
                &engine.organization,
                names.get(&l.destination_id).map(String::as_str),
                latest.get(l.id.as_str()).copied(),
            )
        })
        .collect())
}

/// The organization's logs, newest first, a page at a time.
#[utoipa::path(operation_id = "logs_list", get, path = "/platform/v1/organizations/{organizationId}/logs", tag = "Logs",
    params(("organizationId" = String, Path), LogQuery),
    responses((status = 200, body = Envelope<LogsPayload>), (status = 400, body = ErrorBody)))]
pub(super) async fn list(
    State(engine): State<Engine>,
    Path(org_id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<Envelope<LogsPayload>>, EngineError> {
    check_organization(&engine, &org_id)?;
    let Query(q) = query.map_err(|e| {
        EngineError::bad_request(format!(
            "{e}; filters: destinationId, status, type, dataModel, eventType, createdAfter, createdBefore, updatedAfter, updatedBefore, dataMode, _page, _count"
        ))
    })?;
    let parse = |e: wharf_protocol::platform::UnknownValue| EngineError::bad_request(e.to_string());
    let filter = LogFilter {
        destination_id: q.destination_id,
        status: q
            .status
            .as_deref()
            .map(str::parse::<LogStatus>)
            .transpose()
            .map_err(parse)?,
        log_type: q
            .log_type
            .as_deref()
            .map(str::parse::<LogType>)
            .transpose()
            .map_err(parse)?,
        data_model: q.data_model,
        event_type: q.event_type,
        created_after: time_filter("createdAfter", q.created_after.as_deref())?,
        created_before: time_filter("createdBefore", q.created_before.as_deref())?,
        updated_after: time_filter("updatedAfter", q.updated_after.as_deref())?,
        updated_before: time_filter("updatedBefore", q.updated_before.as_deref())?,
    };
    if let Some(mode) = q.data_mode.as_deref()
        && !matches!(mode, "realtime" | "backfill")
    {
        return Err(EngineError::bad_request(format!(
            "`dataMode` {mode:?} is not one of realtime, backfill"
        )));
    }
    let page = Page::asked(q.page, q.count, MAX_PAGE_SIZE)?;
    let found = core::list(&engine, filter, page).await?;
    let results = views(&engine, &found.logs).await?;
    let link = |n: usize| {
        format!(
            "/organizations/{org_id}/logs?_page={n}&_count={}",
            found.page.size
        )
    };
    let mut envelope = ok(LogsPayload { results });
    envelope.0.meta.page = Some(PageMeta::offset(found.page, found.has_next, link));
    Ok(envelope)
}

/// One log, with every attempt (`attemptList`, Wharf). The attempts' answers are PHI: the read
/// is recorded in the audit log (`log.phi.read`, naming the key) before the answer is sent,
/// and refused with 503 if it cannot be recorded.
#[utoipa::path(operation_id = "logs_read", get, path = "/platform/v1/organizations/{organizationId}/logs/{logId}",
    tag = "Logs", params(("organizationId" = String, Path), ("logId" = String, Path),
        ("dataMode" = Option<String>, Query, description = "realtime or backfill (Wharf has one mode)")),
    responses((status = 200, body = Envelope<LogPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read(
    State(engine): State<Engine>,
    Extension(access): Extension<Access>,
    Path((org_id, log_id)): Path<(String, String)>,
) -> Result<Json<Envelope<LogPayload>>, EngineError> {
    check_organization(&engine, &org_id)?;
    let (log, attempts) = core::read_phi(&engine, &log_id, &access).await?;
    let mut view = views(&engine, std::slice::from_ref(&log)).await?.remove(0);
    view.attempt_list = Some(attempts.iter().map(Into::into).collect());
    Ok(ok(LogPayload { result: view }))
}

/// Stops a pending log: it becomes `failed` and its queue moves on (409 if it is not pending).
#[utoipa::path(operation_id = "logs_stop", post, path = "/platform/v1/logs/{logId}/stop", tag = "Logs",
    params(("logId" = String, Path)),
    responses((status = 200, body = Envelope<LogPayload>), (status = 409, body = ErrorBody)))]
pub(super) async fn stop(
    State(engine): State<Engine>,
    Path(log_id): Path<String>,
) -> Result<Json<Envelope<LogPayload>>, EngineError> {
    let log = core::stop(&engine, &log_id).await?;
    let result = views(&engine, &[log]).await?.remove(0);
    Ok(ok(LogPayload { result }))
}

/// Puts a finished log at the back of its queue with the same Log ID (409 if it is pending).
#[utoipa::path(operation_id = "logs_resend", post, path = "/platform/v1/logs/{logId}/resend", tag = "Logs",
    params(("logId" = String, Path)),
    responses((status = 200, body = Envelope<LogPayload>), (status = 409, body = ErrorBody)))]
pub(super) async fn resend(
    State(engine): State<Engine>,
    Path(log_id): Path<String>,
) -> Result<Json<Envelope<LogPayload>>, EngineError> {
    let log = core::resend(&engine, &log_id).await?;
    let result = views(&engine, &[log]).await?.remove(0);
    Ok(ok(LogPayload { result }))
}
