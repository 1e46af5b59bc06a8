//! Logs in the dashboard: search by destination, status, data model, event type and time, and
//! by words in the body (the search box: the core's payload search, through the store's
//! full-text index); one log with every attempt; stop and resend, one log or every finished
//! log of a time range (bulk resend). Searching, stopping and resending are the core's
//! (`crate::app::logs`), as the management API's are.
//!
//! PHI (the message body, and the destination's answers, which may echo it or answer a query
//! with a patient's record) is never in a log's page. "Show PHI" is a link to its own page,
//! `/dashboard/logs/{id}/phi`, which works without JavaScript, is served only to an operator
//! allowed to see PHI, and reads the log through the core's `read_phi`, which records the read
//! in the audit log first.

use super::Notice;
use super::session::SignedIn;
use super::{Dash, Failure, Page, render, see_other, when};
use crate::app::EngineError;
use crate::app::logs::{self as core, Page as LogPageRange};
use askama::Template;
use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use std::collections::HashMap;
use wharf_protocol::platform::LogStatus;
use wharf_store::engine::LogFilter;

/// Most logs one search shows (newest first).
const SEARCH_LIMIT: usize = 200;
/// The page a search shows.
const FIRST_PAGE: LogPageRange = LogPageRange {
    number: 1,
    size: SEARCH_LIMIT,
};
/// Most of a message body the log page shows: bodies may be 40 MB.
const BODY_SHOWN: usize = 256 * 1024;
/// Most of a destination's answer shown per attempt.
const RESPONSE_SHOWN: usize = 4 * 1024;

pub(super) fn routes() -> Router<Dash> {
    Router::new()
        .route("/dashboard/logs", get(search))
        .route("/dashboard/logs/{id}", get(read))
        .route("/dashboard/logs/{id}/phi", get(read_phi))
        .route("/dashboard/logs/{id}/stop", post(stop))
        .route("/dashboard/logs/{id}/resend", post(resend))
        .route("/dashboard/logs/resend", post(resend_range))
}

/// The search form's fields; empty means "any".
#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchForm {
    destination: String,
    status: String,
    #[serde(rename = "dataModel")]
    data_model: String,
    #[serde(rename = "eventType")]
    event_type: String,
    after: String,
    before: String,
    /// Words to find in the body, every one of them.
    q: String,
    /// Set after a bulk resend: how many logs went back to their queues.
    resent: Option<u64>,
}

/// A time from the search form: RFC 3339, or the browser's `datetime-local` form
/// (`2026-11-23T14:00`, read as UTC, as the page says).
fn form_time(key: &str, text: &str) -> Result<Option<i64>, EngineError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let has_zone = text.ends_with('Z') || text.ends_with('z') || {
        let tail = &text[text.len().saturating_sub(6)..];
        tail.starts_with('+') || tail.starts_with('-')
    };
    let full = match (has_zone, text.len()) {
        (true, _) => text.to_owned(),
        // YYYY-MM-DDTHH:MM
        (false, 16) => format!("{text}:00Z"),
        (false, _) => format!("{text}Z"),
    };
    core::parse_time(key, Some(&full))
}

struct Choice {
    value: String,
    label: String,
    checked: bool,
}

struct Row {
    id: String,
    created: String,
    destination: String,
    log_type: String,
    data_model: String,
    event_type: String,
    status: String,
    attempts: i64,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct SearchPage {
    page: Page,
    destinations: Vec<Choice>,
    statuses: Vec<Choice>,
    form: SearchForm,
    rows: Vec<Row>,
    limit: usize,
    error: String,
    resent: Option<u64>,
}

/// Every destination of the organization by id, with its name and environment.
async fn destination_names(dash: &Dash) -> Result<HashMap<String, (String, String)>, Failure> {
    let org = dash.organization.id.clone();
    Ok(dash
        .db(move |s| {
            let mut names = HashMap::new();
            for env in s.environments(&org)? {
                for d in s.destinations(&env.id)? {
                    names.insert(d.id, (d.name, env.flag.to_string()));
                }
            }
            Ok(names)
        })
        .await?)
}

async fn search(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Query(form): Query<SearchForm>,
) -> Result<Response, Failure> {
    let names = destination_names(&dash).await?;
    let form_resent = form.resent;
    let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = form_time("after", &form.after).and_then(|after| {
        Ok(LogFilter {
            created_after: after,
            created_before: form_time("before", &form.before)?,
            destination_id: optional(&form.destination),
            status: optional(&form.status)
                .map(|s| s.parse::<LogStatus>())
                .transpose()
                .map_err(|e| EngineError::bad_request(e.to_string()))?,
            data_model: optional(&form.data_model),
            event_type: optional(&form.event_type),
            ..Default::default()
        })
    });
    let words = form.q.trim().to_owned();
    let found = match filter {
        Ok(filter) if words.is_empty() => core::list(&dash, filter, FIRST_PAGE)
            .await
            .map(|found| found.logs),
        Ok(filter) => match core::search_terms(vec![words]) {
            Ok(terms) => {
                let search = wharf_store::engine::LogSearch {
                    filter,
                    terms,
                    ..Default::default()
                };
                core::search(&dash, search, SEARCH_LIMIT)
                    .await
                    .map(|found| found.logs)
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let (logs, error) = match found {
        Ok(logs) => (logs, String::new()),
        Err(e) => (Vec::new(), e.to_string()),
    };
    let rows = logs
        .into_iter()
        .map(|l| Row {
            created: when(l.created_at),
            destination: names
                .get(&l.destination_id)
                .map_or_else(|| l.destination_id.clone(), |(n, _)| n.clone()),
            id: l.id,
            log_type: l.log_type.to_string(),
            data_model: l.data_model.unwrap_or_default(),
            event_type: l.event_type.unwrap_or_default(),
            status: l.status.to_string(),
            attempts: l.attempts,
        })
        .collect();
    let mut destinations: Vec<Choice> = names
        .into_iter()
        .map(|(id, (name, env))| Choice {
            checked: id == form.destination,
            label: format!("{name} ({env})"),
            value: id,
        })
        .collect();
    destinations.sort_by(|a, b| a.label.cmp(&b.label));
    let statuses = LogStatus::ALL
        .iter()
        .map(|s| Choice {
            value: s.to_string(),
            label: s.to_string(),
            checked: s.as_str() == form.status,
        })
        .collect();
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(render(
        status,
        &SearchPage {
            page: Page::new(&dash, &signed_in, "logs"),
            destinations,
            statuses,
            form,
            rows,
            limit: SEARCH_LIMIT,
            error,
            resent: form_resent,
        },
    ))
}

struct AttemptRow {
    id: String,
    started: String,
    duration_ms: i64,
    status: String,
    error: String,
    response: String,
}

#[derive(Template)]
#[template(path = "log.html")]
struct LogPage {
    page: Page,
    id: String,
    log_type: String,
    destination: String,
    destination_id: String,
    source: String,
    data_model: String,
    event_type: String,
    status: String,
    pending: bool,
    created: String,
    updated: String,
    next_attempt: String,
    content_type: String,
    /// Whether this is the PHI view: the body and the answers are filled in only then.
    phi: bool,
    /// Whether the signed-in operator may open the PHI view.
    may_view_phi: bool,
    body: String,
    body_note: String,
    attempts: Vec<AttemptRow>,
    notice: &'static str,
    error: String,
}

/// Text of stored bytes, at most `limit` bytes of them (a character cut in two shows as �).
fn excerpt(bytes: &[u8], limit: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned()
}

/// The message as a person reads it: pretty JSON when it is JSON and small enough.
fn readable_body(body: &[u8]) -> (String, String) {
    if body.len() <= BODY_SHOWN
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Ok(pretty) = serde_json::to_string_pretty(&value)
    {
        return (pretty, String::new());
    }
    let note = if body.len() > BODY_SHOWN {
        format!(
            "Showing the first {} KiB of {} bytes.",
            BODY_SHOWN / 1024,
            body.len()
        )
    } else {
        String::new()
    };
    (excerpt(body, BODY_SHOWN), note)
}

/// A log's page; with `phi`, its body and the destination's answers too (read through the
/// core's `read_phi`: allowed operators only, recorded in the audit log).
async fn log_page(
    dash: &Dash,
    signed_in: &SignedIn,
    id: String,
    phi: bool,
) -> Result<LogPage, Failure> {
    let (log, attempts) = if phi {
        core::read_phi(dash, &id, &signed_in.access).await?
    } else {
        core::read(dash, &id).await?
    };
    let names = destination_names(dash).await?;
    let (body, body_note) = if phi {
        readable_body(&log.body)
    } else {
        (String::new(), String::new())
    };
    Ok(LogPage {
        page: Page::new(dash, signed_in, "logs"),
        destination: names
            .get(&log.destination_id)
            .map_or_else(|| log.destination_id.clone(), |(n, e)| format!("{n} ({e})")),
        destination_id: log.destination_id,
        id: log.id,
        log_type: log.log_type.to_string(),
        source: log.source,
        data_model: log.data_model.unwrap_or_default(),
        event_type: log.event_type.unwrap_or_default(),
        pending: log.status == LogStatus::Pending,
        next_attempt: if log.status == LogStatus::Pending {
            when(log.next_attempt_at)
        } else {
            String::new()
        },
        status: log.status.to_string(),
        created: when(log.created_at),
        updated: when(log.updated_at),
        content_type: log.content_type,
        phi,
        may_view_phi: signed_in.access.actor.may_view_phi,
        body,
        body_note,
        attempts: attempts
            .into_iter()
            .map(|a| AttemptRow {
                id: a.id,
                started: when(a.started_at),
                duration_ms: a.duration_ms,
                status: a
                    .status_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "no answer".into()),
                error: a.error.unwrap_or_default(),
                response: a
                    .response
                    .filter(|_| phi)
                    .map(|r| excerpt(&r, RESPONSE_SHOWN))
                    .unwrap_or_default(),
            })
            .collect(),
        notice: "",
        error: String::new(),
    })
}

async fn read(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, Failure> {
    let mut page = log_page(&dash, &signed_in, id, false).await?;
    page.notice = match notice.done.as_deref() {
        Some("stopped") => "Stopped: the log is FAILED and its queue moved on.",
        Some("resent") => "Resent: the log is back at the end of its destination's queue.",
        _ => "",
    };
    Ok(render(StatusCode::OK, &page))
}

/// The log's page with its PHI: for operators allowed to see PHI; the read is recorded in the
/// audit log before the page is made (503 if it cannot be).
async fn read_phi(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let page = log_page(&dash, &signed_in, id, true).await?;
    Ok(render(StatusCode::OK, &page))
}

/// The bulk resend form: the search's range, destination and status.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ResendForm {
    destination: String,
    status: String,
    after: String,
    before: String,
}

/// Resends every finished log created in the range (of the destination and status, if
/// chosen), then shows the logs with how many went.
async fn resend_range(
    State(dash): State<Dash>,
    axum::Form(form): axum::Form<ResendForm>,
) -> Result<Response, Failure> {
    let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let range = (|| {
        let (Some(after), Some(before)) = (
            form_time("after", &form.after)?,
            form_time("before", &form.before)?,
        ) else {
            return Err(EngineError::bad_request(
                "choose both ends of the range (Created from and Created before) to resend logs",
            ));
        };
        Ok(wharf_store::engine::ResendRange {
            organization_id: dash.organization.id.clone(),
            created_after: after,
            created_before: before,
            environment_id: None,
            destination_id: optional(&form.destination),
            status: optional(&form.status)
                .map(|s| s.parse::<LogStatus>())
                .transpose()
                .map_err(|e| EngineError::bad_request(e.to_string()))?,
        })
    })();
    let outcome = match range {
        Ok(range) => core::resend_range(&dash, range).await,
        Err(e) => Err(e),
    };
    let query = serde_urlencoded::to_string([
        ("destination", form.destination.as_str()),
        ("status", form.status.as_str()),
        ("after", form.after.as_str()),
        ("before", form.before.as_str()),
    ])
    .unwrap_or_default();
    match outcome {
        Ok(count) => Ok(see_other(&format!(
            "/dashboard/logs?{query}&resent={count}"
        ))),
        Err(e) => Err(Failure::from(e)),
    }
}

async fn stop(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    act(&dash, &signed_in, id, false).await
}

async fn resend(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    act(&dash, &signed_in, id, true).await
}

async fn act(
    dash: &Dash,
    signed_in: &SignedIn,
    id: String,
    resend: bool,
) -> Result<Response, Failure> {
    let outcome = if resend {
        core::resend(dash, &id).await
    } else {
        core::stop(dash, &id).await
    };
    match outcome {
        Ok(log) => Ok(see_other(&format!(
            "/dashboard/logs/{}?done={}",
            log.id,
            if resend { "resent" } else { "stopped" }
        ))),
        Err(e) => {
            let mut page = log_page(dash, signed_in, id, false).await?;
            page.error = e.to_string();
            Ok(render(crate::http::status(&e), &page))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_times_accept_rfc3339_and_the_browsers_local_form_as_utc() {
        assert_eq!(form_time("after", "").unwrap(), None);
        assert_eq!(
            form_time("after", "1970-01-01T00:01").unwrap(),
            Some(60_000)
        );
        assert_eq!(
            form_time("after", "1970-01-01T00:01:30").unwrap(),
            Some(90_000)
        );
        assert_eq!(
            form_time("after", "1970-01-01T01:00:00+01:00").unwrap(),
            Some(0)
        );
        let e = form_time("before", "yesterday").unwrap_err();
        assert!(e.to_string().contains("`before`"), "{e}");
    }

    #[test]
    fn bodies_are_shown_readably_and_cut_when_huge() {
        let (shown, note) = readable_body(br#"{"Meta":{"DataModel":"PatientAdmin"}}"#);
        assert!(shown.contains("\n  \"Meta\""), "{shown}");
        assert!(note.is_empty());
        let huge = vec![b'x'; BODY_SHOWN + 10];
        let (shown, note) = readable_body(&huge);
        assert_eq!(shown.len(), BODY_SHOWN);
        assert!(note.contains("256 KiB"), "{note}");
    }
}
