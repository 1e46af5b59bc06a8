//! Logs, as Redox's Platform API serves them:
//! `GET /platform/v1/organizations/{organizationId}/logs` (filters, offset paging with `_page`
//! and `_count`, `meta.page`) and `GET .../logs/{logId}` (`payload.result`, with Wharf's
//! `attemptList`); and Wharf's operator actions `POST /platform/v1/logs/{logId}/stop` and
//! `.../resend`. Reading one log returns its attempts' answers, which are PHI: the read goes
//! through the core's `read_phi`, which records it (the key's name, the client's address) in
//! the audit log first.
//!
//! Searching: `POST /platform/v1/environments/{environmentId}/logs/search/payloads` (Redox's
//! search payloads: `searchTerms`, every one found in the body through the store's full-text
//! index) and `.../logs/search/metadata` (the filters alone), both cursor-paged (`_count`,
//! `_cursor`, the next cursor in `meta.page.cursor`) and answering metadata only, never a
//! body; and Wharf's bulk resend, `POST .../logs/resend` (Redox documents none: UNCONFIRMED,
//! Wharf's shape from the reference).
//!
//! Statuses and types are spelled as Redox spells them (`succeeded`, `send`, ...), in answers
//! and in filters; times are ISO 8601 (RFC 3339).

use super::Body;
use super::models::{
    Envelope, ErrorBody, LogPayload, LogQuery, LogSearchBody, LogView, LogsPayload, PageMeta,
    ResendBody, ResendPayload, SearchQuery,
};
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
use wharf_store::engine::{LogFilter, LogRecord, LogSearch, ResendRange};

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

/// A status or type as Redox spells it, parsed at the edge.
fn parse_enum<T: std::str::FromStr<Err = wharf_protocol::platform::UnknownValue>>(
    value: Option<&str>,
) -> Result<Option<T>, EngineError> {
    value
        .map(str::parse::<T>)
        .transpose()
        .map_err(|e| EngineError::bad_request(e.to_string()))
}

/// A search body's filters as the store's search of `environment_id`.
fn search_of(environment_id: String, body: LogSearchBody) -> Result<LogSearch, EngineError> {
    if body.facility_code.is_some() {
        return Err(EngineError::bad_request(
            "`facilityCode`: Wharf keeps no facility code with its logs, so it cannot search by one; leave it out",
        ));
    }
    if let Some(mode) = body.data_mode.as_deref()
        && !matches!(mode, "realtime" | "backfill")
    {
        return Err(EngineError::bad_request(format!(
            "`dataMode` {mode:?} is not one of realtime, backfill"
        )));
    }
    if let Some(region) = body.service_region.as_deref()
        && !matches!(
            region,
            "AWS_USA_EAST_1" | "AWS_CAN_CENTRAL" | "GCP_USA_CENTRAL_1"
        )
    {
        return Err(EngineError::bad_request(format!(
            "`serviceRegion` {region:?} is not one of AWS_USA_EAST_1, AWS_CAN_CENTRAL, GCP_USA_CENTRAL_1"
        )));
    }
    let terms = core::search_terms(
        body.search_terms
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.value)
            .collect(),
    )?;
    Ok(LogSearch {
        filter: LogFilter {
            destination_id: body.destination_id,
            status: parse_enum::<LogStatus>(body.status.as_deref())?,
            log_type: parse_enum::<LogType>(body.log_type.as_deref())?,
            data_model: body.data_model,
            event_type: body.event_type,
            created_after: time_filter("createdAfter", body.created_after.as_deref())?,
            created_before: time_filter("createdBefore", body.created_before.as_deref())?,
            updated_after: time_filter("updatedAfter", body.updated_after.as_deref())?,
            updated_before: time_filter("updatedBefore", body.updated_before.as_deref())?,
        },
        environment_id: Some(environment_id),
        source: body.source_id,
        terms,
        before_seq: None,
    })
}

/// Runs a search of the environment's logs, one cursor page.
async fn run_search(
    engine: &Engine,
    env_id: &str,
    query: Result<Query<SearchQuery>, QueryRejection>,
    body: LogSearchBody,
) -> Result<Json<Envelope<LogsPayload>>, EngineError> {
    let env = crate::app::destinations::environment(engine, env_id).await?;
    let Query(q) = query
        .map_err(|e| EngineError::bad_request(format!("{e}; query parameters: _count, _cursor")))?;
    let mut search = search_of(env.id, body)?;
    search.before_seq = core::parse_cursor(q.cursor.as_deref())?;
    let count = q.count.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    let found = core::search(engine, search, count).await?;
    let results = views(engine, &found.logs).await?;
    let mut envelope = ok(LogsPayload { results });
    envelope.0.meta.page = Some(PageMeta::cursor(count, found.next_cursor));
    Ok(envelope)
}

/// Redox's search payloads: the environment's logs whose body holds every word of every
/// `searchTerms[].value` (case-insensitive, any order), newest first, metadata only.
#[utoipa::path(operation_id = "logs_search_payloads", post,
    path = "/platform/v1/environments/{environmentId}/logs/search/payloads", tag = "Logs",
    params(("environmentId" = String, Path), SearchQuery), request_body = LogSearchBody,
    responses((status = 200, body = Envelope<LogsPayload>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn search_payloads(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    query: Result<Query<SearchQuery>, QueryRejection>,
    Body(body): Body<LogSearchBody>,
) -> Result<Json<Envelope<LogsPayload>>, EngineError> {
    if body.search_terms.as_ref().is_none_or(Vec::is_empty) {
        return Err(EngineError::bad_request(
            "`searchTerms` is required: [{\"value\": \"Nila Jonkel\", \"category\": \"patient\"}]; to search by metadata alone use .../logs/search/metadata",
        ));
    }
    run_search(&engine, &env_id, query, body).await
}

/// Redox's search metadata: the environment's logs matching the filters, newest first.
#[utoipa::path(operation_id = "logs_search_metadata", post,
    path = "/platform/v1/environments/{environmentId}/logs/search/metadata", tag = "Logs",
    params(("environmentId" = String, Path), SearchQuery), request_body = LogSearchBody,
    responses((status = 200, body = Envelope<LogsPayload>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn search_metadata(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    query: Result<Query<SearchQuery>, QueryRejection>,
    Body(body): Body<LogSearchBody>,
) -> Result<Json<Envelope<LogsPayload>>, EngineError> {
    if body.search_terms.is_some() {
        return Err(EngineError::bad_request(
            "`searchTerms` belongs to .../logs/search/payloads; the metadata search takes the filters only",
        ));
    }
    run_search(&engine, &env_id, query, body).await
}

/// Wharf's bulk resend: every finished log of the environment created in the range (of one
/// destination and status, if given) goes to the back of its queue with the same Log ID, in
/// the order they were created; answers how many.
#[utoipa::path(operation_id = "logs_resend_range", post,
    path = "/platform/v1/environments/{environmentId}/logs/resend", tag = "Logs",
    params(("environmentId" = String, Path)), request_body = ResendBody,
    responses((status = 200, body = Envelope<ResendPayload>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn resend_range(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    Body(body): Body<ResendBody>,
) -> Result<Json<Envelope<ResendPayload>>, EngineError> {
    let env = crate::app::destinations::environment(&engine, &env_id).await?;
    let range = ResendRange {
        organization_id: engine.organization.id.clone(),
        created_after: time_filter("createdAfter", Some(&body.created_after))?.unwrap_or(0),
        created_before: time_filter("createdBefore", Some(&body.created_before))?
            .unwrap_or(i64::MAX),
        environment_id: Some(env.id),
        destination_id: body.destination_id,
        status: parse_enum::<LogStatus>(body.status.as_deref())?,
    };
    let count = core::resend_range(&engine, range).await?;
    Ok(ok(ResendPayload { count }))
}
