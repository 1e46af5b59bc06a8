//! Sources and subscriptions in the dashboard: every environment's sources (create, with the
//! `apiKey` shown once on the page that answers the form; rename; delete), its subscriptions (create,
//! pause, resume, delete) and each subscription's filter (set, replace, delete). Every form
//! calls the core (`crate::app::sources`, `crate::app::subscriptions`), as the API does.

use super::session::SignedIn;
use super::{Dash, Failure, Page, render, see_other};
use crate::app::subscriptions::{self, FilterInput, Rule};
use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use wharf_protocol::platform::FilterAction;

pub(super) fn routes() -> Router<Dash> {
    Router::new()
        .route("/dashboard/sources", get(list).post(create_source))
        .route("/dashboard/sources/{id}/rename", post(rename_source))
        .route("/dashboard/sources/{id}/delete", post(delete_source))
        .route("/dashboard/subscriptions", post(create_subscription))
        .route("/dashboard/subscriptions/{id}/pause", post(pause))
        .route("/dashboard/subscriptions/{id}/resume", post(resume))
        .route(
            "/dashboard/subscriptions/{id}/delete",
            post(delete_subscription),
        )
        .route("/dashboard/subscriptions/{id}/filter", post(save_filter))
        .route(
            "/dashboard/subscriptions/{id}/filter/delete",
            post(delete_filter),
        )
}

struct SourceRow {
    id: String,
    name: String,
    environment: String,
    from_config: bool,
}

struct SubscriptionRow {
    id: i64,
    source: String,
    destination: String,
    environment: String,
    data_model: String,
    paused: bool,
    /// `send if ...` / `block all`, or empty without a filter.
    filter: String,
    filter_id: String,
}

struct Choice {
    id: String,
    label: String,
}

#[derive(Template)]
#[template(path = "sources.html")]
struct SourcesPage {
    page: Page,
    sources: Vec<SourceRow>,
    subscriptions: Vec<SubscriptionRow>,
    environments: Vec<Choice>,
    source_choices: Vec<Choice>,
    destination_choices: Vec<Choice>,
    /// A new source's name and key, shown this once.
    created: Option<(String, String)>,
}

async fn page(
    dash: &Dash,
    signed_in: &SignedIn,
    created: Option<(String, String)>,
) -> Result<SourcesPage, Failure> {
    let org = dash.organization.id.clone();
    let everything = dash
        .db(move |s| {
            let mut out = Vec::new();
            for env in s.environments(&org)? {
                let sources = s.sources(&env.id)?;
                let destinations = s.destinations(&env.id)?;
                let mut subs = Vec::new();
                for sub in s.subscriptions(&env.id, &Default::default(), 0, usize::MAX >> 1)? {
                    let filter = s.filters(sub.id, false)?.into_iter().next();
                    subs.push((sub, filter));
                }
                out.push((env, sources, destinations, subs));
            }
            Ok(out)
        })
        .await?;
    let mut view = SourcesPage {
        page: Page::new(dash, signed_in, "sources"),
        sources: Vec::new(),
        subscriptions: Vec::new(),
        environments: Vec::new(),
        source_choices: Vec::new(),
        destination_choices: Vec::new(),
        created,
    };
    for (env, sources, destinations, subs) in everything {
        let flag = env.flag.to_string();
        view.environments.push(Choice {
            id: env.id.clone(),
            label: flag.clone(),
        });
        let name_of = |id: &str| {
            sources
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.name.clone())
                .or_else(|| {
                    destinations
                        .iter()
                        .find(|d| d.id == id)
                        .map(|d| d.name.clone())
                })
                .unwrap_or_else(|| id.to_owned())
        };
        for (sub, filter) in &subs {
            view.subscriptions.push(SubscriptionRow {
                id: sub.id,
                source: name_of(&sub.source_id),
                destination: name_of(&sub.destination_id),
                environment: flag.clone(),
                data_model: sub.data_model.clone(),
                paused: sub.paused,
                filter: filter.as_ref().map(describe).unwrap_or_default(),
                filter_id: filter.as_ref().map(|f| f.id.clone()).unwrap_or_default(),
            });
        }
        for s in &sources {
            view.source_choices.push(Choice {
                id: s.id.clone(),
                label: format!("{} ({flag})", s.name),
            });
            view.sources.push(SourceRow {
                id: s.id.clone(),
                name: s.name.clone(),
                environment: flag.clone(),
                from_config: s.config_name.is_some(),
            });
        }
        for d in &destinations {
            view.destination_choices.push(Choice {
                id: d.id.clone(),
                label: format!("{} ({flag})", d.name),
            });
        }
    }
    Ok(view)
}

/// A filter in a few words, e.g. `send if $.Patient.Demographics.FirstName in Timothy`.
fn describe(filter: &wharf_store::engine::FilterRecord) -> String {
    match filter.action {
        FilterAction::BlockAll => "block all".into(),
        FilterAction::Send => {
            let rules: Vec<String> = subscriptions::rules(filter)
                .iter()
                .map(|r| {
                    let op = if r.allow_list { "in" } else { "not in" };
                    format!("{} {op} {}", r.path, r.values.join(", "))
                })
                .collect();
            format!("send if {}", rules.join(" and "))
        }
    }
}

async fn list(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
) -> Result<Response, Failure> {
    Ok(render(
        StatusCode::OK,
        &page(&dash, &signed_in, None).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SourceForm {
    name: String,
    environment: String,
}

/// Creates a source and answers with the page showing its key (not a redirect: the key must
/// not travel in a URL).
async fn create_source(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Form(form): Form<SourceForm>,
) -> Result<Response, Failure> {
    let env = crate::app::destinations::environment(&dash, &form.environment).await?;
    let (record, key) = crate::app::sources::create(&dash, &env, Some(form.name)).await?;
    let view = page(&dash, &signed_in, Some((record.name, key))).await?;
    let mut response = render(StatusCode::OK, &view);
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RenameForm {
    name: String,
}

async fn rename_source(
    State(dash): State<Dash>,
    Path(id): Path<String>,
    Form(form): Form<RenameForm>,
) -> Result<Response, Failure> {
    crate::app::sources::rename(&dash, &id, Some(form.name)).await?;
    Ok(see_other("/dashboard/sources"))
}

async fn delete_source(
    State(dash): State<Dash>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    crate::app::sources::delete(&dash, &id).await?;
    Ok(see_other("/dashboard/sources"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SubscriptionForm {
    source: String,
    destination: String,
    #[serde(rename = "dataModel")]
    data_model: String,
}

async fn create_subscription(
    State(dash): State<Dash>,
    Form(form): Form<SubscriptionForm>,
) -> Result<Response, Failure> {
    let (source, env) = crate::app::sources::read(&dash, &form.source).await?;
    subscriptions::create(&dash, &env, &source.id, &form.destination, &form.data_model).await?;
    Ok(see_other("/dashboard/sources"))
}

async fn pause(State(dash): State<Dash>, Path(id): Path<i64>) -> Result<Response, Failure> {
    subscriptions::set_paused(&dash, id, true).await?;
    Ok(see_other("/dashboard/sources"))
}

async fn resume(State(dash): State<Dash>, Path(id): Path<i64>) -> Result<Response, Failure> {
    subscriptions::set_paused(&dash, id, false).await?;
    Ok(see_other("/dashboard/sources"))
}

async fn delete_subscription(
    State(dash): State<Dash>,
    Path(id): Path<i64>,
) -> Result<Response, Failure> {
    subscriptions::delete(&dash, id).await?;
    Ok(see_other("/dashboard/sources"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FilterForm {
    name: String,
    action: String,
    path: String,
    /// Comma-separated, as Redox's dashboard takes them.
    values: String,
    /// `on` when "is in"; absent for "is not in".
    #[serde(rename = "allowList")]
    allow_list: Option<String>,
}

/// Sets the subscription's filter (replacing the one it has) from one rule.
async fn save_filter(
    State(dash): State<Dash>,
    Path(id): Path<i64>,
    Form(form): Form<FilterForm>,
) -> Result<Response, Failure> {
    let action: FilterAction =
        form.action
            .parse()
            .map_err(|e: wharf_protocol::platform::UnknownValue| {
                Failure::new(StatusCode::BAD_REQUEST, e.to_string())
            })?;
    let rules = if action == FilterAction::Send {
        vec![Rule {
            path: form.path.trim().to_owned(),
            values: form
                .values
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect(),
            allow_list: form.allow_list.is_some(),
        }]
    } else {
        Vec::new()
    };
    let current = subscriptions::filters(&dash, id, false)
        .await?
        .into_iter()
        .next();
    let name = if form.name.trim().is_empty() {
        format!("subscription {id}")
    } else {
        form.name
    };
    subscriptions::save_filter(
        &dash,
        id,
        FilterInput {
            id: current.map(|f| f.id),
            name,
            action,
            rules,
        },
    )
    .await?;
    Ok(see_other("/dashboard/sources"))
}

async fn delete_filter(State(dash): State<Dash>, Path(id): Path<i64>) -> Result<Response, Failure> {
    if let Some(current) = subscriptions::filters(&dash, id, false)
        .await?
        .into_iter()
        .next()
    {
        subscriptions::delete_filter(&dash, id, &current.id).await?;
    }
    Ok(see_other("/dashboard/sources"))
}
