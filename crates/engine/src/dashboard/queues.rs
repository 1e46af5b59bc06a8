//! Queues in the dashboard: every destination's queue in the one queue vocabulary
//! (`crate::app::queues::QueueCondition`: running, held, paused), held and paused ones marked
//! so they stand out, with who paused a queue, when and why; and the actions that fit each
//! state (Pause with a reason on a queue that is not paused, Resume on a paused one, Retry now
//! on a held one), each answered with a notice saying what it did. The actions are the core's
//! (`crate::app::queues`).

use super::session::SignedIn;
use super::{Dash, Failure, Page, render, see_other, when};
use crate::app::queues::{self as core, QueueCondition};
use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

pub(super) fn routes() -> Router<Dash> {
    Router::new()
        .route("/dashboard/queues", get(list))
        .route("/dashboard/queues/{id}/pause", post(pause))
        .route("/dashboard/queues/{id}/resume", post(resume))
        .route("/dashboard/queues/{id}/retry", post(retry))
}

struct Row {
    id: String,
    name: String,
    environment: String,
    /// `running`, `held` or `paused`.
    state: &'static str,
    label: &'static str,
    explain: &'static str,
    /// "by admin at 2026-... UTC: reason", for an operator's pause.
    paused_note: String,
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
    held: usize,
    paused: usize,
    notice: String,
    error: String,
}

/// What the last action did (`done`), to which destination.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Done {
    done: Option<String>,
    destination: String,
}

/// How a pause note reads: who, when, why.
pub(super) fn pause_note(pause: &wharf_store::engine::PauseNote) -> String {
    let by = pause.by.as_deref().unwrap_or("an operator");
    let why = pause.reason.as_deref().unwrap_or("no reason recorded");
    format!("by {by} at {}: {why}", when(pause.at))
}

async fn rows(dash: &Dash) -> Result<Vec<Row>, Failure> {
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
    Ok(queues
        .into_iter()
        .map(|(environment, d, q)| {
            let condition = QueueCondition::of(&q);
            Row {
                id: d.id,
                name: d.name,
                environment: environment.to_string(),
                state: condition.as_str(),
                label: condition.label(),
                explain: condition.explain(),
                paused_note: q.pause.as_ref().map(pause_note).unwrap_or_default(),
                depth: q.depth,
                head: q.head.as_ref().map(|h| h.id.clone()).unwrap_or_default(),
                head_attempts: q.head.as_ref().map_or(0, |h| h.attempts),
                next_attempt: q
                    .head
                    .as_ref()
                    .filter(|_| condition == QueueCondition::Held)
                    .map(|h| when(h.next_attempt_at))
                    .unwrap_or_default(),
            }
        })
        .collect())
}

async fn list(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Query(done): Query<Done>,
) -> Result<Response, Failure> {
    let rows = rows(&dash).await?;
    let name = rows
        .iter()
        .find(|r| r.id == done.destination)
        .map(|r| r.name.clone())
        .unwrap_or_else(|| "the queue".into());
    let notice = match done.done.as_deref() {
        Some("paused") => format!("Paused {name}: nothing is sent to it until it is resumed."),
        Some("resumed") => format!("Resumed {name}: its messages are delivered again, in order."),
        Some("retried") => format!(
            "Retrying {name}'s first message now; the page shows the outcome once it is known (reload)."
        ),
        _ => String::new(),
    };
    page(
        &dash,
        &signed_in,
        rows,
        notice,
        String::new(),
        StatusCode::OK,
    )
}

fn page(
    dash: &Dash,
    signed_in: &SignedIn,
    rows: Vec<Row>,
    notice: String,
    error: String,
    status: StatusCode,
) -> Result<Response, Failure> {
    let held = rows.iter().filter(|r| r.state == "held").count();
    let paused = rows.iter().filter(|r| r.state == "paused").count();
    Ok(render(
        status,
        &QueuesPage {
            page: Page::new(dash, signed_in, "queues"),
            rows,
            held,
            paused,
            notice,
            error,
        },
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PauseForm {
    reason: String,
}

async fn pause(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
    Form(form): Form<PauseForm>,
) -> Result<Response, Failure> {
    match core::pause(&dash, &id, &signed_in.access.actor.name, &form.reason).await {
        Ok(()) => Ok(see_other(&format!(
            "/dashboard/queues?done=paused&destination={id}"
        ))),
        Err(e @ crate::app::EngineError::BadRequest(_)) => {
            let rows = rows(&dash).await?;
            page(
                &dash,
                &signed_in,
                rows,
                String::new(),
                e.to_string(),
                StatusCode::BAD_REQUEST,
            )
        }
        Err(e) => Err(e.into()),
    }
}

async fn resume(State(dash): State<Dash>, Path(id): Path<String>) -> Result<Response, Failure> {
    core::set_paused(&dash, &id, false).await?;
    Ok(see_other(&format!(
        "/dashboard/queues?done=resumed&destination={id}"
    )))
}

/// Retry now: a held queue's head is tried at once (the core's resume, which also makes the
/// head due).
async fn retry(State(dash): State<Dash>, Path(id): Path<String>) -> Result<Response, Failure> {
    core::set_paused(&dash, &id, false).await?;
    Ok(see_other(&format!(
        "/dashboard/queues?done=retried&destination={id}"
    )))
}
