//! Queues in the dashboard: every destination's queue with its state and depth, paused ones
//! marked so they stand out (an operator's pause, or a head failing on the retry ladder), and
//! the pause and resume buttons, which are the core's (`crate::app::queues`).

use super::session::SignedIn;
use super::{Dash, Failure, Page, render, see_other, when};
use askama::Template;
use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};

pub(super) fn routes() -> Router<Dash> {
    Router::new()
        .route("/dashboard/queues", get(list))
        .route("/dashboard/queues/{id}/pause", post(pause))
        .route("/dashboard/queues/{id}/resume", post(resume))
}

struct Row {
    id: String,
    name: String,
    environment: String,
    paused: bool,
    by_operator: bool,
    reason: String,
    depth: i64,
    head: String,
    head_attempts: i64,
    next_attempt: String,
}

#[derive(Template)]
#[template(path = "queues.html")]
struct QueuesPage {
    page: Page,
    rows: Vec<Row>,
    paused: usize,
}

async fn list(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
) -> Result<Response, Failure> {
    let org = dash.organization.id.clone();
    let queues = dash
        .db(move |s| {
            let mut out = Vec::new();
            for env in s.environments(&org)? {
                for d in s.destinations(&env.id)? {
                    let queue = s.queue(&d.id)?;
                    out.push((env.flag, d, queue));
                }
            }
            Ok(out)
        })
        .await?;
    let rows: Vec<Row> = queues
        .into_iter()
        .map(|(environment, d, q)| {
            let reason = crate::app::queues::paused_by(&q).map(|p| p.as_str());
            Row {
                id: d.id,
                name: d.name,
                environment: environment.to_string(),
                paused: reason.is_some(),
                by_operator: q.paused_by_operator,
                reason: match reason {
                    Some("operator") => "paused by an operator".into(),
                    Some(other) => format!("{other}: the head is retried on the ladder"),
                    None => String::new(),
                },
                depth: q.depth,
                head: q.head.as_ref().map(|h| h.id.clone()).unwrap_or_default(),
                head_attempts: q.head.as_ref().map_or(0, |h| h.attempts),
                next_attempt: q
                    .head
                    .as_ref()
                    .filter(|_| !q.paused_by_operator)
                    .map(|h| when(h.next_attempt_at))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let paused = rows.iter().filter(|r| r.paused).count();
    Ok(render(
        StatusCode::OK,
        &QueuesPage {
            page: Page::new(&dash, &signed_in, "queues"),
            rows,
            paused,
        },
    ))
}

async fn pause(State(dash): State<Dash>, Path(id): Path<String>) -> Result<Response, Failure> {
    crate::app::queues::set_paused(&dash, &id, true).await?;
    Ok(see_other("/dashboard/queues"))
}

async fn resume(State(dash): State<Dash>, Path(id): Path<String>) -> Result<Response, Failure> {
    crate::app::queues::set_paused(&dash, &id, false).await?;
    Ok(see_other("/dashboard/queues"))
}
