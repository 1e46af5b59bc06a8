//! The audit log in the dashboard: who read which log's PHI, when, from which address, newest
//! first, a page at a time. Read from the core (`crate::app::audit`), as the API's export is.
//! It holds no PHI (names, log ids, addresses), so every signed-in operator may see it.

use super::session::SignedIn;
use super::{Dash, Failure, Page, render, when};
use crate::app::audit as core;
use crate::app::logs::Page as Range;
use askama::Template;
use axum::Router;
use axum::extract::{Extension, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

/// Entries per page.
const PAGE_SIZE: usize = 50;

pub(super) fn routes() -> Router<Dash> {
    Router::new().route("/dashboard/audit", get(list))
}

#[derive(serde::Deserialize)]
struct Paging {
    page: Option<usize>,
}

struct Row {
    at: String,
    actor_kind: String,
    actor_name: String,
    action: String,
    subject: String,
    address: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Page,
    rows: Vec<Row>,
    number: usize,
    has_next: bool,
}

async fn list(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Query(paging): Query<Paging>,
) -> Result<Response, Failure> {
    let range = Range {
        number: paging.page.unwrap_or(1).max(1),
        size: PAGE_SIZE,
    };
    let found = core::list(&dash, None, range).await?;
    let rows = found
        .entries
        .into_iter()
        .map(|e| Row {
            at: when(e.at),
            actor_kind: e.actor_kind,
            actor_name: e.actor_name,
            action: e.action,
            subject: e.subject,
            address: e.address.unwrap_or_default(),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &AuditPage {
            page: Page::new(&dash, &signed_in, "audit"),
            rows,
            number: found.page.number,
            has_next: found.has_next,
        },
    ))
}
