//! Logs: `GET /platform/v1/organizations/{orgId}/logs` (filters `destinationId`, `status`,
//! `dataModel`, `eventType`, `createdAfter`, `createdBefore` as RFC 3339 times),
//! `GET /platform/v1/organizations/{orgId}/logs/{logId}` with every attempt, and the operator's
//! `POST /platform/v1/logs/{logId}/stop` (a pending log becomes FAILED; its queue moves on) and
//! `POST /platform/v1/logs/{logId}/resend` (a finished log goes to the back of its queue with
//! the same Log ID; its attempts are kept).
//!
//! The dashboard searches and acts through the same functions ([`search`], [`stop_log`],
//! [`resend_log`]).

use super::{ApiError, State, ok, rfc3339};
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use wharf_store::engine::{AttemptRecord, FAILED, LogFilter, LogRecord, PENDING, SUCCEEDED};

/// Most logs one listing returns.
const LIST_LIMIT: usize = 1000;

pub(super) fn routes() -> Router<State> {
    Router::new()
        .route("/platform/v1/organizations/{org_id}/logs", get(list))
        .route(
            "/platform/v1/organizations/{org_id}/logs/{log_id}",
            get(read),
        )
        .route("/platform/v1/logs/{log_id}/stop", post(stop))
        .route("/platform/v1/logs/{log_id}/resend", post(resend))
}

fn view(l: &LogRecord) -> Value {
    json!({
        "id": l.id,
        "type": l.log_type,
        "destinationId": l.destination_id,
        "source": l.source,
        "dataModel": l.data_model,
        "eventType": l.event_type,
        "status": l.status,
        "attempts": l.attempts,
        "nextAttemptAt": (l.status == PENDING).then(|| rfc3339(l.next_attempt_at)),
        "createdAt": rfc3339(l.created_at),
        "updatedAt": rfc3339(l.updated_at),
    })
}

fn attempt_view(a: &AttemptRecord) -> Value {
    json!({
        "id": a.id,
        "startedAt": rfc3339(a.started_at),
        "durationMs": a.duration_ms,
        "statusCode": a.status_code,
        "error": a.error,
        "response": a.response.as_ref().map(|r| String::from_utf8_lossy(r).into_owned()),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filters {
    destination_id: Option<String>,
    status: Option<String>,
    data_model: Option<String>,
    event_type: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
}

pub(crate) fn time_filter(key: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "`{key}` {text:?} is not an RFC 3339 time like 2026-11-23T14:00:00Z"
                    ))
                })
        })
        .transpose()
}

fn check_org(state: &State, org_id: &str) -> Result<(), ApiError> {
    if org_id == state.organization.id {
        Ok(())
    } else {
        Err(ApiError::not_found(&format!("organization {org_id}")))
    }
}

async fn list(
    axum::extract::State(state): axum::extract::State<State>,
    Path(org_id): Path<String>,
    filters: Result<Query<Filters>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    check_org(&state, &org_id)?;
    let Query(filters) = filters.map_err(|e| {
        ApiError::bad_request(format!(
            "{e}; filters: destinationId, status, dataModel, eventType, createdAfter, createdBefore"
        ))
    })?;
    let filter = LogFilter {
        created_after: time_filter("createdAfter", filters.created_after.as_deref())?,
        created_before: time_filter("createdBefore", filters.created_before.as_deref())?,
        destination_id: filters.destination_id,
        status: filters.status,
        data_model: filters.data_model,
        event_type: filters.event_type,
    };
    let logs = search(&state, filter, LIST_LIMIT).await?;
    Ok(ok(
        StatusCode::OK,
        Value::Array(logs.iter().map(view).collect()),
    ))
}

/// The organization's logs matching `filter`, newest first, at most `limit`.
pub(crate) async fn search(
    state: &State,
    filter: LogFilter,
    limit: usize,
) -> Result<Vec<LogRecord>, ApiError> {
    if let Some(status) = &filter.status
        && ![PENDING, SUCCEEDED, FAILED].contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "`status` {status:?} is not one of PENDING, SUCCEEDED, FAILED"
        )));
    }
    let org_id = state.organization.id.clone();
    state.db(move |s| s.logs(&org_id, &filter, limit)).await
}

/// One log of this organization with its attempts.
pub(crate) async fn find(
    state: &State,
    log_id: String,
) -> Result<(LogRecord, Vec<AttemptRecord>), ApiError> {
    let what = format!("log {log_id}");
    state
        .db(move |s| s.log(&log_id))
        .await?
        .filter(|(l, _)| l.organization_id == state.organization.id)
        .ok_or_else(|| ApiError::not_found(&what))
}

async fn read(
    axum::extract::State(state): axum::extract::State<State>,
    Path((org_id, log_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    check_org(&state, &org_id)?;
    let (log, attempts) = find(&state, log_id).await?;
    let mut payload = view(&log);
    payload["attemptList"] = Value::Array(attempts.iter().map(attempt_view).collect());
    Ok(ok(StatusCode::OK, payload))
}

async fn act(
    state: &State,
    log_id: String,
    action: &'static str,
    run: fn(&wharf_store::engine::EngineStore, &str) -> Result<bool, wharf_store::StoreError>,
    refusal: &'static str,
) -> Result<LogRecord, ApiError> {
    find(state, log_id.clone()).await?;
    let id = log_id.clone();
    if !state.db(move |s| run(s, &id)).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("log {log_id} {refusal}"),
        ));
    }
    state.wake.notify_one();
    tracing::info!(log = %log_id, action, "operator action on a log");
    Ok(find(state, log_id).await?.0)
}

/// Stops a pending log: FAILED, and its queue moves on (409 if it is not pending).
pub(crate) async fn stop_log(state: &State, log_id: String) -> Result<LogRecord, ApiError> {
    act(
        state,
        log_id,
        "stop",
        |s, id| s.stop(id),
        "is not pending: only a pending log can be stopped",
    )
    .await
}

/// Puts a finished log at the back of its queue (409 if it is still pending).
pub(crate) async fn resend_log(state: &State, log_id: String) -> Result<LogRecord, ApiError> {
    act(
        state,
        log_id,
        "resend",
        |s, id| s.resend(id),
        "is still pending: it is already queued",
    )
    .await
}

async fn stop(
    axum::extract::State(state): axum::extract::State<State>,
    Path(log_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ok(StatusCode::OK, view(&stop_log(&state, log_id).await?)))
}

async fn resend(
    axum::extract::State(state): axum::extract::State<State>,
    Path(log_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(ok(StatusCode::OK, view(&resend_log(&state, log_id).await?)))
}
