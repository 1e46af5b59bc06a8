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
use wharf_store::engine::{LogFilter, LogRecord};

/// Logs per page of the list (newest first), as the Platform API's largest page.
const PAGE_SIZE: usize = 50;
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

/// The time windows the list offers; the list opens on the last 24 hours.
const WINDOWS: &[(&str, &str, i64)] = &[
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
    ("7d", "Last 7 days", 7 * 86_400_000),
    ("30d", "Last 30 days", 30 * 86_400_000),
    ("all", "Any time", 0),
];
const DEFAULT_WINDOW: &str = "24h";

/// The search form's fields; empty means "any".
#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchForm {
    /// A Log ID to open.
    id: String,
    destination: String,
    status: String,
    #[serde(rename = "dataModel")]
    data_model: String,
    #[serde(rename = "eventType")]
    event_type: String,
    /// One of [`WINDOWS`]; [`DEFAULT_WINDOW`] when absent. `after`/`before` override it.
    window: String,
    after: String,
    before: String,
    /// Words to find in the body, every one of them.
    q: String,
    /// The page of a metadata search (from 1).
    page: Option<usize>,
    /// The cursor of a body search's next page.
    cursor: String,
    /// Set after a bulk resend: how many logs went back to their queues.
    resent: Option<u64>,
}

impl SearchForm {
    /// This search's query string with `page`/`cursor` replaced: the links to other pages.
    fn link(&self, page: Option<usize>, cursor: Option<&str>) -> String {
        let page = page.map(|p| p.to_string()).unwrap_or_default();
        let pairs = [
            ("q", self.q.as_str()),
            ("destination", &self.destination),
            ("status", &self.status),
            ("dataModel", &self.data_model),
            ("eventType", &self.event_type),
            ("window", &self.window),
            ("after", &self.after),
            ("before", &self.before),
            ("page", &page),
            ("cursor", cursor.unwrap_or_default()),
        ];
        let kept: Vec<_> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        format!(
            "/dashboard/logs?{}",
            serde_urlencoded::to_string(kept).unwrap_or_default()
        )
    }
}

/// A time from the search form: RFC 3339, or the browser's `datetime-local` form
/// (`2026-11-23T14:00`, read as UTC, as the page says).
fn form_time(label: &str, text: &str) -> Result<Option<i64>, EngineError> {
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
    core::parse_time(label, Some(&full)).map_err(|_| {
        EngineError::bad_request(format!(
            "{label} {text:?} is not a time: pick one in the date picker, or write it like 2026-11-23T14:00 (UTC)"
        ))
    })
}

/// A status as the list names it: what it means to an operator, not only its API word.
fn status_label(status: LogStatus) -> &'static str {
    match status {
        LogStatus::Pending => "Pending (queued or retrying)",
        LogStatus::Succeeded => "Succeeded (delivered)",
        LogStatus::Failed => "Failed (stopped or given up)",
        LogStatus::Filtered => "Filtered (blocked by a filter)",
    }
}

/// The last part of a Log ID: Log IDs are time-ordered UUIDs whose first digits are shared
/// by every log of the same minute, so their random tail tells them apart.
fn short_id(id: &str) -> String {
    match id.rsplit_once('-') {
        Some((_, tail)) if tail.len() >= 8 => format!("…{tail}"),
        _ => id.to_owned(),
    }
}

struct Choice {
    value: String,
    label: String,
    checked: bool,
}

struct Row {
    id: String,
    short_id: String,
    created: String,
    destination: String,
    log_type: String,
    data_model: String,
    event_type: String,
    status: String,
    attempts: i64,
    /// Why it has not gone through (its latest attempt), for failed and retrying logs.
    reason: String,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct SearchPage {
    page: Page,
    destinations: Vec<Choice>,
    statuses: Vec<Choice>,
    windows: Vec<Choice>,
    form: SearchForm,
    rows: Vec<Row>,
    /// What the list shows, e.g. "142 logs in the last 24 hours; 1–50, newest first".
    summary: String,
    previous: String,
    next: String,
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

/// Why a log has not gone through, from its latest attempt; empty when it has.
fn failure_reason(
    status: LogStatus,
    latest: Option<&wharf_store::engine::AttemptRecord>,
) -> String {
    if status == LogStatus::Filtered {
        return "Blocked by its subscription's filter".into();
    }
    if status == LogStatus::Succeeded {
        return String::new();
    }
    match latest {
        Some(a) => match (&a.error, a.status_code) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) if !(200..300).contains(&code) => {
                format!("The destination answered HTTP {code}")
            }
            (None, Some(_)) => String::new(),
            (None, None) => "No answer".into(),
        },
        None if status == LogStatus::Failed => "Stopped before any attempt".into(),
        None => String::new(),
    }
}

async fn search(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Query(mut form): Query<SearchForm>,
) -> Result<Response, Failure> {
    // Find a log by its ID: open it, or say there is none.
    let wanted = form.id.trim().to_owned();
    let mut error = String::new();
    if !wanted.is_empty() {
        match core::read(&dash, &wanted).await {
            Ok((log, _)) => return Ok(see_other(&format!("/dashboard/logs/{}", log.id))),
            Err(EngineError::NotFound(_)) => {
                error = format!(
                    "No log has the ID {wanted}. Paste a whole Log ID (the copy button next to each one copies it), as a source's answer gives it in Meta.Logs[0].ID."
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    let names = destination_names(&dash).await?;
    if !WINDOWS.iter().any(|(key, ..)| *key == form.window) {
        form.window = DEFAULT_WINDOW.to_owned();
    }
    let custom = !form.after.trim().is_empty() || !form.before.trim().is_empty();
    let (window_label, window_ms) = WINDOWS
        .iter()
        .find(|(key, ..)| *key == form.window)
        .map(|(_, label, ms)| (*label, *ms))
        .unwrap_or(("Any time", 0));
    let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = (|| {
        let (after, before) = if custom {
            (
                form_time("Created from", &form.after)?,
                form_time("Created before", &form.before)?,
            )
        } else if window_ms > 0 {
            (Some(dash.now_millis() - window_ms), None)
        } else {
            (None, None)
        };
        Ok(LogFilter {
            created_after: after,
            created_before: before,
            destination_id: optional(&form.destination),
            status: optional(&form.status)
                .map(|s| s.parse::<LogStatus>())
                .transpose()
                .map_err(|_| {
                    EngineError::bad_request("choose a status from the list, or Any status")
                })?,
            data_model: optional(&form.data_model),
            event_type: optional(&form.event_type),
            ..Default::default()
        })
    })();
    let words = form.q.trim().to_owned();
    let page_number = form.page.unwrap_or(1).max(1);
    let range_words = if custom {
        "in the chosen range".to_owned()
    } else if window_ms > 0 {
        format!("in the {}", window_label.to_lowercase())
    } else {
        "at any time".to_owned()
    };
    let (mut previous, mut next) = (String::new(), String::new());
    let mut summary = String::new();
    let found: Result<Vec<LogRecord>, EngineError> = match filter {
        Ok(filter) if words.is_empty() => {
            let page = LogPageRange {
                number: page_number,
                size: PAGE_SIZE,
            };
            let total = core::count(&dash, filter.clone()).await;
            match (total, core::list(&dash, filter, page).await) {
                (Ok(total), Ok(found)) => {
                    let first = (page_number - 1) * PAGE_SIZE + 1;
                    let last = first + found.logs.len().saturating_sub(1);
                    let pages = (total as usize).div_ceil(PAGE_SIZE).max(1);
                    summary = if found.logs.is_empty() {
                        format!("{total} log{} {range_words}", plural(total))
                    } else {
                        format!(
                            "{total} log{} {range_words}; showing {first}–{last}, newest first (page {page_number} of {pages})",
                            plural(total)
                        )
                    };
                    if page_number > 1 {
                        previous = form.link(Some(page_number - 1), None);
                    }
                    if found.has_next {
                        next = form.link(Some(page_number + 1), None);
                    }
                    Ok(found.logs)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        }
        Ok(filter) => match core::search_terms(vec![words]).and_then(|terms| {
            core::parse_cursor(optional(&form.cursor).as_deref()).map(|cursor| (terms, cursor))
        }) {
            Ok((terms, before_seq)) => {
                let search = wharf_store::engine::LogSearch {
                    filter,
                    terms,
                    before_seq,
                    ..Default::default()
                };
                core::search(&dash, search, PAGE_SIZE).await.map(|found| {
                    summary = format!(
                        "{} log{} with these words {range_words} on this page, newest first",
                        found.logs.len(),
                        plural(found.logs.len() as u64)
                    );
                    if let Some(cursor) = &found.next_cursor {
                        next = form.link(None, Some(cursor));
                    }
                    if !form.cursor.is_empty() {
                        previous = form.link(None, None);
                    }
                    found.logs
                })
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let logs = match found {
        Ok(logs) => logs,
        Err(e) => {
            error = e.to_string();
            Vec::new()
        }
    };
    let latest = core::latest_attempts(
        &dash,
        logs.iter()
            .filter(|l| l.status != LogStatus::Succeeded && l.attempts > 0)
            .map(|l| l.id.clone())
            .collect(),
    )
    .await?;
    let rows = logs
        .into_iter()
        .map(|l| Row {
            created: when(l.created_at),
            destination: names
                .get(&l.destination_id)
                .map_or_else(|| l.destination_id.clone(), |(n, _)| n.clone()),
            reason: failure_reason(l.status, latest.get(&l.id)),
            short_id: short_id(&l.id),
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
            label: status_label(*s).to_owned(),
            checked: s.as_str() == form.status,
        })
        .collect();
    let windows = WINDOWS
        .iter()
        .map(|(key, label, _)| Choice {
            value: (*key).to_owned(),
            label: (*label).to_owned(),
            checked: *key == form.window,
        })
        .collect();
    let status = if error.is_empty() {
        StatusCode::OK
    } else if wanted.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::NOT_FOUND
    };
    let resent = form.resent;
    Ok(render(
        status,
        &SearchPage {
            page: Page::new(&dash, &signed_in, "logs"),
            destinations,
            statuses,
            windows,
            form,
            rows,
            summary,
            previous,
            next,
            error,
            resent,
        },
    ))
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
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
    /// How often an operator resent it.
    resends: i64,
    /// A pending log that is not first in its queue: the log it waits behind.
    waits_behind: String,
    /// A pending log whose queue an operator paused: who, when, why.
    queue_paused: String,
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
    notice: String,
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
    let (mut waits_behind, mut queue_paused) = (String::new(), String::new());
    if log.status == LogStatus::Pending {
        let queue = crate::app::queues::read(dash, &log.destination_id).await?;
        if let Some(pause) = &queue.pause {
            queue_paused = super::queues::pause_note(pause);
        }
        if let Some(head) = queue.head.filter(|h| h.id != log.id) {
            waits_behind = head.id;
        }
    }
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
        resends: log.resends,
        waits_behind,
        queue_paused,
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
        notice: String::new(),
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
        Some("stopped") => "Stopped: the log is failed and its queue moved on.".to_owned(),
        Some("resent") => format!(
            "Resent: the log is back at the end of its destination's queue with the same Log ID, as resend {}. Its deliveries carry the header wharf-resend: {}, so a receiver that drops retries by Log ID (as Wharf's destination does) delivers it to its application again; a new attempt shows below once it is sent.",
            page.resends, page.resends
        ),
        _ => String::new(),
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
            form_time("Created from", &form.after)?,
            form_time("Created before", &form.before)?,
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
        let e = form_time("Created before", "yesterday").unwrap_err();
        assert!(
            e.to_string().contains("Created before \"yesterday\""),
            "{e}"
        );
        assert!(!e.to_string().contains('`'), "{e}");
    }

    #[test]
    fn short_ids_keep_the_random_tail_of_a_log_id() {
        assert_eq!(
            short_id("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
            "…0c1d2e3f4a5b"
        );
        assert_eq!(short_id("log-1"), "log-1");
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
