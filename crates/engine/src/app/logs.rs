//! Logs: one message to one destination, with its attempts. List (filtered, a page at a
//! time), read one (its PHI, the body and the destination's answers, only through
//! [`read_phi`], which records the read in the audit log first), and the operator's stop (a pending log becomes failed; its queue moves on)
//! and resend (a finished log goes to the back of its queue with the same Log ID; its attempts
//! are kept).

use super::audit::{self, Access};
use super::{Engine, EngineError};
use wharf_store::engine::{AttemptRecord, LogFilter, LogRecord};

/// One page of a listing: numbered from 1, as Redox's `_page`; `size` logs per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: usize,
    pub size: usize,
}

impl Page {
    /// The page a caller asked for with Redox's `_page` (from 1; the first by default) and
    /// `_count` (`max` by default, and at most `max`).
    pub fn asked(
        page: Option<usize>,
        count: Option<usize>,
        max: usize,
    ) -> Result<Page, EngineError> {
        let number = page.unwrap_or(1);
        if number == 0 {
            return Err(EngineError::bad_request(
                "`_page` starts at 1 (the first page)",
            ));
        }
        Ok(Page {
            number,
            size: count.unwrap_or(max).clamp(1, max),
        })
    }

    /// Reads this page with `read(offset, limit)`, asking for one row more than the page holds:
    /// that row only tells whether a next page exists. Returns the page's rows and that.
    pub async fn read<T, F>(self, read: F) -> Result<(Vec<T>, bool), EngineError>
    where
        F: AsyncFnOnce(usize, usize) -> Result<Vec<T>, EngineError>,
    {
        let offset = self.number.saturating_sub(1).saturating_mul(self.size);
        let mut rows = read(offset, self.size + 1).await?;
        let has_next = rows.len() > self.size;
        rows.truncate(self.size);
        Ok((rows, has_next))
    }
}

/// An ISO 8601 (RFC 3339) time, as milliseconds since the epoch; `key` names it in the error.
pub fn parse_time(key: &str, value: Option<&str>) -> Result<Option<i64>, EngineError> {
    value
        .map(|text| {
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    EngineError::bad_request(format!(
                        "`{key}` {text:?} is not an ISO 8601 time like 2026-11-23T14:00:00.000Z"
                    ))
                })
        })
        .transpose()
}

/// A page of logs, newest first, and whether another page follows.
#[derive(Debug, Clone)]
pub struct LogPage {
    pub logs: Vec<LogRecord>,
    pub page: Page,
    pub has_next: bool,
}

/// The organization's logs matching `filter`, newest first, one page.
pub async fn list(engine: &Engine, filter: LogFilter, page: Page) -> Result<LogPage, EngineError> {
    let org_id = engine.organization.id.clone();
    let (logs, has_next) = page
        .read(async |offset, limit| {
            engine
                .db(move |s| s.logs(&org_id, &filter, offset, limit))
                .await
        })
        .await?;
    Ok(LogPage {
        logs,
        page,
        has_next,
    })
}

/// How many of the organization's logs match `filter` (a listing's total).
pub async fn count(engine: &Engine, filter: LogFilter) -> Result<u64, EngineError> {
    let org_id = engine.organization.id.clone();
    engine.db(move |s| s.count_logs(&org_id, &filter)).await
}

/// The newest attempt of each of these logs that has one, by log id: what a listing shows as
/// a log's last outcome (its failure reason). Answers are PHI and are dropped here.
pub async fn latest_attempts(
    engine: &Engine,
    log_ids: Vec<String>,
) -> Result<std::collections::HashMap<String, AttemptRecord>, EngineError> {
    let latest = engine.db(move |s| s.latest_attempts(&log_ids)).await?;
    Ok(latest
        .into_iter()
        .map(|mut a| {
            a.response = None;
            (a.log_id.clone(), a)
        })
        .collect())
}

/// One log of this organization with its attempts, oldest first, PHI included, for `access`:
/// refused (`Forbidden`) unless the actor may see PHI, and recorded in the audit log before it
/// is returned. If the record cannot be written the PHI is not returned (`Unavailable`, 503).
pub async fn read_phi(
    engine: &Engine,
    log_id: &str,
    access: &Access,
) -> Result<(LogRecord, Vec<AttemptRecord>), EngineError> {
    if !access.actor.may_view_phi {
        return Err(EngineError::Forbidden(format!(
            "{} may not see PHI: ask an administrator to set may_view_phi = true for this operator",
            access.actor.name
        )));
    }
    let found = read(engine, log_id).await?;
    audit::record(engine, access, audit::PHI_READ, log_id).await?;
    Ok(found)
}

/// One log of this organization with its attempts, oldest first. Its body and the attempts'
/// answers are PHI: callers that show them use [`read_phi`]; this is for what shows neither.
pub async fn read(
    engine: &Engine,
    log_id: &str,
) -> Result<(LogRecord, Vec<AttemptRecord>), EngineError> {
    let lookup = log_id.to_owned();
    engine
        .db(move |s| s.log(&lookup))
        .await?
        .filter(|(l, _)| l.organization_id == engine.organization.id)
        .ok_or_else(|| EngineError::not_found(format!("log {log_id}")))
}

async fn act(
    engine: &Engine,
    log_id: &str,
    action: &'static str,
    run: fn(&wharf_store::engine::EngineStore, &str) -> Result<bool, wharf_store::StoreError>,
    refusal: &'static str,
) -> Result<LogRecord, EngineError> {
    read(engine, log_id).await?;
    let id = log_id.to_owned();
    if !engine.db(move |s| run(s, &id)).await? {
        return Err(EngineError::conflict(format!("log {log_id} {refusal}")));
    }
    engine.signals.changed();
    tracing::info!(log = %log_id, action, "operator action on a log");
    Ok(read(engine, log_id).await?.0)
}

/// Stops a pending log: failed, and its queue moves on (`Conflict` if it is not pending).
pub async fn stop(engine: &Engine, log_id: &str) -> Result<LogRecord, EngineError> {
    act(
        engine,
        log_id,
        "stop",
        |s, id| s.stop(id),
        "is not pending: only a pending log can be stopped",
    )
    .await
}

/// Puts a finished log at the back of its queue (`Conflict` if it is still pending).
pub async fn resend(engine: &Engine, log_id: &str) -> Result<LogRecord, EngineError> {
    act(
        engine,
        log_id,
        "resend",
        |s, id| s.resend(id),
        "is still pending: it is already queued",
    )
    .await
}

/// A search's page: the logs, newest first, and the cursor of the next page (`None` on the
/// last). The cursor is the last log's queue position, so a next page costs what the first
/// did however deep it is (`_cursor`, Redox's search paging).
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub logs: Vec<LogRecord>,
    pub next_cursor: Option<String>,
}

/// The terms of a payload search, checked: each must hold a word (a term of punctuation
/// alone would match nothing, or everything, depending on the backend).
pub fn search_terms(values: Vec<String>) -> Result<Vec<String>, EngineError> {
    values
        .into_iter()
        .map(|value| {
            let value = value.trim().to_owned();
            if value.chars().any(char::is_alphanumeric) {
                Ok(value)
            } else {
                Err(EngineError::bad_request(format!(
                    "search term {value:?} holds no word: give each searchTerms[].value a name, an identifier or another word to find"
                )))
            }
        })
        .collect()
}

/// A `_cursor` as a caller sent it back.
pub fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, EngineError> {
    cursor
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                EngineError::bad_request(format!(
                    "`_cursor` {text:?} is not one this API gave: pass meta.page.cursor of the previous answer unchanged"
                ))
            })
        })
        .transpose()
}

/// The organization's logs matching `search` (metadata, and the body's words when it has
/// terms), newest first, `count` at most.
pub async fn search(
    engine: &Engine,
    search: wharf_store::engine::LogSearch,
    count: usize,
) -> Result<SearchPage, EngineError> {
    let org_id = engine.organization.id.clone();
    // One more than the page holds tells whether a next page exists.
    let mut logs = engine
        .db(move |s| s.search_logs(&org_id, &search, count + 1))
        .await?;
    let next_cursor = if logs.len() > count {
        logs.truncate(count);
        logs.last().map(|l| l.seq.to_string())
    } else {
        None
    };
    Ok(SearchPage { logs, next_cursor })
}

/// Puts every finished log of `range` at the back of its queue, in the order they were
/// created, with the same Log IDs; answers how many. A range of pending logs is refused:
/// they are queued already.
pub async fn resend_range(
    engine: &Engine,
    range: wharf_store::engine::ResendRange,
) -> Result<u64, EngineError> {
    if range.status == Some(wharf_store::engine::LogStatus::Pending) {
        return Err(EngineError::bad_request(
            "`status` pending names logs that are queued already: resend failed, succeeded or filtered logs",
        ));
    }
    if range.created_after > range.created_before {
        return Err(EngineError::bad_request(
            "`createdAfter` is later than `createdBefore`: give the range's start first",
        ));
    }
    if let Some(id) = &range.destination_id {
        let lookup = id.clone();
        engine
            .db(move |s| s.destination(&lookup))
            .await?
            .filter(|d| d.organization_id == engine.organization.id)
            .ok_or_else(|| EngineError::not_found(format!("destination {id}")))?;
    }
    let count = engine.db(move |s| s.resend_range(&range)).await?;
    if count > 0 {
        engine.signals.changed();
    }
    tracing::info!(count, "operator resent logs in bulk");
    Ok(count)
}
