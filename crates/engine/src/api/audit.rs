//! The audit log's export (Wharf): `GET /platform/v1/audit`, newest first, a page at a time,
//! optionally from a time on (`since`). Who read which log's PHI, when, from which address;
//! written by the core (`crate::app::audit`), append-only in the store.

use super::models::{AuditEntry, AuditPayload, AuditQuery, Envelope, ErrorBody, PageMeta};
use super::ok;
use crate::app::audit as core;
use crate::app::logs::{Page, parse_time};
use crate::app::{Engine, EngineError};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};

/// Most entries one page holds; larger `_count`s are taken as this.
pub const MAX_PAGE_SIZE: usize = 500;

/// The organization's audit entries, newest first.
#[utoipa::path(operation_id = "audit_export", get, path = "/platform/v1/audit", tag = "Audit",
    params(AuditQuery),
    responses((status = 200, body = Envelope<AuditPayload>), (status = 400, body = ErrorBody)))]
pub(super) async fn export(
    State(engine): State<Engine>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Envelope<AuditPayload>>, EngineError> {
    let Query(q) = query
        .map_err(|e| EngineError::bad_request(format!("{e}; filters: since, _page, _count")))?;
    let since = parse_time("since", q.since.as_deref())?;
    let page = Page::asked(q.page, q.count, MAX_PAGE_SIZE)?;
    let found = core::list(&engine, since, page).await?;
    let link = |n: usize| {
        let since = q
            .since
            .as_deref()
            .map(|s| format!("&since={}", s.replace('+', "%2B")))
            .unwrap_or_default();
        format!("/audit?_page={n}&_count={}{since}", found.page.size)
    };
    let mut envelope = ok(AuditPayload {
        entries: found.entries.iter().map(AuditEntry::from).collect(),
    });
    envelope.0.meta.page = Some(PageMeta::offset(found.page, found.has_next, link));
    Ok(envelope)
}
