//! Destinations in the dashboard: the list per environment, a page per destination (its ID
//! to copy, whether it receives, its queue and recent traffic), and the setup wizard.
//!
//! The wizard has Redox's seven steps: name, environment, data format, endpoint, verification
//! token, auth credential, Verify and Save. Every step is saved as it is submitted (the first
//! creates the destination, in Development until step 2 moves it), and the record remembers the
//! step to resume at (`setup_step`), so a destination left half-way shows as "in progress" and
//! continues where it stopped. Each step goes through the management API's own checks
//! (`crate::app::destinations`); Verify and Save is the core's, and marks the setup complete.
//!
//! The verification token is never shown back: a stored one reads "set". The Generate button
//! re-renders step 5 with a fresh random token for the operator to copy into the endpoint's
//! configuration before saving it.

use super::Notice;
use super::session::SignedIn;
use super::{Dash, Failure, Page, random_bytes, render, see_other, when};
use crate::app::EngineError;
use crate::app::destinations::{self as core, DestinationChanges};
use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use wharf_protocol::Environment;
use wharf_protocol::platform::{DataFormat, VerificationMethod};
use wharf_store::engine::{AuthCredentialRecord, DestinationRecord, EnvironmentRecord};

use crate::app::destinations::SETUP_STEPS as STEPS;

/// Length of a generated verification token.
pub const GENERATED_TOKEN_LEN: usize = 48;

pub(super) fn routes() -> Router<Dash> {
    Router::new()
        .route("/dashboard/destinations", get(list))
        .route("/dashboard/destinations/new", get(new_form).post(create))
        .route("/dashboard/destinations/{id}", get(resume))
        .route(
            "/dashboard/destinations/{id}/setup/{step}",
            get(step_form).post(save_step),
        )
        .route("/dashboard/destinations/{id}/delete", post(delete))
}

/// A long random token of letters and digits (about 5.95 bits each, 285 bits in all).
pub fn generate_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut token = String::with_capacity(GENERATED_TOKEN_LEN);
    while token.len() < GENERATED_TOKEN_LEN {
        for byte in random_bytes::<64>() {
            // 248 = 4 * 62: bytes above it are dropped so every character is equally likely.
            if byte < 248 && token.len() < GENERATED_TOKEN_LEN {
                token.push(ALPHABET[usize::from(byte) % ALPHABET.len()] as char);
            }
        }
    }
    token
}

/// The step a destination's setup continues at: the one it stopped before, or for one made
/// through the API, the first thing it lacks.
fn resume_step(d: &DestinationRecord) -> usize {
    match d.setup_step {
        Some(step) => step.clamp(2, 7) as usize,
        None if d.verified_at.is_some() => 7,
        None if d.endpoint.is_none() => 4,
        None if d.verification_token.is_none() => 5,
        None => 7,
    }
}

/// The name of the linked credential `id` among `credentials`, or the id itself when it is not
/// among them (a credential of another environment); empty when none is linked.
fn credential_name(credentials: &[AuthCredentialRecord], id: Option<&String>) -> String {
    id.map(|id| {
        credentials
            .iter()
            .find(|c| &c.id == id)
            .map_or_else(|| id.clone(), |c| c.name.clone())
    })
    .unwrap_or_default()
}

fn wizard_url(id: &str, step: usize) -> String {
    format!("/dashboard/destinations/{id}/setup/{step}")
}

/// One destination in the list.
struct Row {
    id: String,
    name: String,
    endpoint: String,
    data_format: String,
    status: &'static str,
    status_class: &'static str,
    /// "step 4 of 7" for one in progress.
    progress: String,
    href: String,
    /// `running`, `held` or `paused` (the queue vocabulary).
    queue_class: &'static str,
    queue: &'static str,
    depth: i64,
    credential: String,
}

struct Section {
    flag: String,
    enabled: bool,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "destinations.html")]
struct ListPage {
    page: Page,
    sections: Vec<Section>,
    notice: &'static str,
}

async fn list(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Query(notice): Query<Notice>,
) -> Result<Response, Failure> {
    let org = dash.organization.id.clone();
    let environments = dash
        .db(move |s| {
            let mut out = Vec::new();
            for env in s.environments(&org)? {
                let credentials = s.auth_credentials(&env.id)?;
                let mut rows = Vec::new();
                for d in s.destinations(&env.id)? {
                    let queue = s.queue(&d.id)?;
                    rows.push((d, queue));
                }
                out.push((env, rows, credentials));
            }
            Ok(out)
        })
        .await?;
    let mut sections = Vec::new();
    for (env, rows, credentials) in environments {
        let enabled = dash.config.environment_enabled(env.flag);
        if !enabled && rows.is_empty() {
            continue;
        }
        let rows = rows
            .into_iter()
            .map(|(d, q)| {
                let condition = crate::app::queues::QueueCondition::of(&q);
                let (status, status_class) = if d.setup_step.is_some() {
                    ("In progress", "in-progress")
                } else if d.verified_at.is_some() {
                    ("Verified", "verified")
                } else {
                    ("Not verified", "unverified")
                };
                let credential = credential_name(&credentials, d.auth_credential.as_ref());
                Row {
                    href: if d.setup_step.is_some() {
                        wizard_url(&d.id, resume_step(&d))
                    } else {
                        format!("/dashboard/destinations/{}", d.id)
                    },
                    progress: if d.setup_step.is_some() {
                        format!("step {} of 7", resume_step(&d))
                    } else {
                        String::new()
                    },
                    id: d.id,
                    name: d.name,
                    endpoint: d.endpoint.unwrap_or_default(),
                    data_format: d.data_format.to_string(),
                    status,
                    status_class,
                    queue_class: condition.as_str(),
                    queue: condition.label(),
                    depth: q.depth,
                    credential,
                }
            })
            .collect();
        sections.push(Section {
            flag: env.flag.to_string(),
            enabled,
            rows,
        });
    }
    let notice = match notice.done.as_deref() {
        Some("deleted") => "The destination was deleted.",
        _ => "",
    };
    Ok(render(
        StatusCode::OK,
        &ListPage {
            page: Page::new(&dash, &signed_in, "destinations"),
            sections,
            notice,
        },
    ))
}

/// A link in the wizard's step list.
struct StepLink {
    number: usize,
    title: &'static str,
    /// Empty when the step cannot be reached yet.
    href: String,
    current: bool,
    done: bool,
}

/// A choice among radio buttons or a select.
struct Choice {
    value: String,
    label: String,
    checked: bool,
    enabled: bool,
    /// What it means, under it (empty: nothing to add).
    help: &'static str,
}

/// What each data format is, for step 3.
fn format_help(format: DataFormat) -> &'static str {
    match format {
        DataFormat::Json => {
            "Redox data model messages: JSON with a Meta section (data model, event type), e.g. PatientAdmin Arrival."
        }
        DataFormat::Fhir => {
            "FHIR R4 message bundles (application/fhir+json), whose event is a URL."
        }
        DataFormat::Hl7v2 => "HL7 v2 messages, for an endpoint that takes pipe-delimited HL7.",
        DataFormat::Xml => "XML documents, such as C-CDA.",
    }
}

/// The API's field names in the wizard's words (its errors quote the API).
const WIZARD_LABELS: &[(&str, &str)] = &[
    ("name", "Name"),
    ("endpoint", "Endpoint URL"),
    ("verificationToken", "Verification token"),
    ("verificationMethod", "Verification method"),
    ("authCredential", "Auth credential"),
    ("dataFormat", "Data format"),
    ("environmentId", "Environment"),
];

/// An error of the core as the wizard says it.
fn wizard_error(e: &EngineError) -> String {
    super::plain_words(&e.to_string(), WIZARD_LABELS)
}

#[derive(Template)]
#[template(path = "wizard.html")]
struct Wizard {
    page: Page,
    step: usize,
    title: &'static str,
    steps: Vec<StepLink>,
    /// Where the form posts.
    action: String,
    /// Empty before the destination exists (step 1 of a new one).
    id: String,
    name: String,
    environment: String,
    /// The environment is fixed once the destination is set up.
    environment_locked: bool,
    environments: Vec<Choice>,
    formats: Vec<Choice>,
    endpoint: String,
    requires_https: bool,
    has_token: bool,
    /// A freshly generated token, shown once for copying; not yet saved.
    generated: String,
    credentials: Vec<Choice>,
    credential_name: String,
    /// The environment id, for the "create a credential" link.
    environment_id: String,
    method: String,
    verified_at: String,
    in_progress: bool,
    /// What the last saved step changed, when it matters (verification cleared).
    notice: String,
    error: String,
    /// After a failed Verify and Save with a linked credential: that the credential, not the
    /// verification token, fills the `Authorization` header.
    credential_hint: String,
    success: bool,
}

impl Wizard {
    /// The link to change what step `step` set.
    fn edit(&self, step: usize) -> String {
        wizard_url(&self.id, step)
    }

    fn back(&self) -> String {
        if self.step > 1 && !self.id.is_empty() {
            wizard_url(&self.id, self.step - 1)
        } else {
            "/dashboard/destinations".into()
        }
    }
}

/// The wizard at `step` for a stored destination, or step 1 of a new one.
async fn wizard(
    dash: &Dash,
    signed_in: &SignedIn,
    stored: Option<(&DestinationRecord, &EnvironmentRecord)>,
    step: usize,
) -> Result<Wizard, Failure> {
    let org = dash.organization.id.clone();
    let env_id = stored.map(|(_, e)| e.id.clone());
    let (environments, credentials) = dash
        .db(move |s| {
            let credentials = match env_id {
                Some(env) => s.auth_credentials(&env)?,
                None => Vec::new(),
            };
            Ok((s.environments(&org)?, credentials))
        })
        .await?;
    let resume = stored.map_or(1, |(d, _)| resume_step(d));
    let complete = stored.is_some_and(|(d, _)| d.setup_step.is_none());
    let steps = STEPS
        .iter()
        .enumerate()
        .map(|(i, title)| {
            let number = i + 1;
            let reachable = complete || number <= resume;
            StepLink {
                number,
                title,
                href: match stored {
                    Some((d, _)) if reachable => wizard_url(&d.id, number),
                    None if number == 1 => "/dashboard/destinations/new".into(),
                    _ => String::new(),
                },
                current: number == step,
                done: complete || number < resume,
            }
        })
        .collect();
    let record = stored.map(|(d, _)| d);
    let env = stored.map(|(_, e)| e);
    let current_env = env.map(|e| e.flag.to_string()).unwrap_or_default();
    // Until step 2 has been saved, the Development the record starts in is only a default.
    let chosen_env = record.is_some_and(|d| d.setup_step.is_none_or(|s| s > 2));
    let environments = environments
        .into_iter()
        .map(|e| Choice {
            checked: if chosen_env {
                e.flag.as_str() == current_env
            } else {
                e.flag == Environment::Development
            },
            enabled: dash.config.environment_enabled(e.flag),
            label: e.flag.to_string(),
            value: e.id,
            help: "",
        })
        .collect();
    let data_format = record.map_or(DataFormat::Json, |d| d.data_format);
    let formats = DataFormat::ALL
        .iter()
        .map(|f| Choice {
            value: f.to_string(),
            label: f.to_string(),
            checked: *f == data_format,
            enabled: true,
            help: format_help(*f),
        })
        .collect();
    let linked = record.and_then(|d| d.auth_credential.clone());
    let credential_name = credential_name(&credentials, linked.as_ref());
    let credentials = credentials
        .into_iter()
        .map(|c| Choice {
            checked: linked.as_ref() == Some(&c.id),
            help: "",
            label: format!(
                "{} ({})",
                c.name,
                super::credentials::strategy_label(c.strategy)
            ),
            value: c.id,
            enabled: true,
        })
        .collect();
    Ok(Wizard {
        page: Page::new(dash, signed_in, "destinations"),
        step,
        title: STEPS[step - 1],
        steps,
        action: match record {
            Some(d) => wizard_url(&d.id, step),
            None => "/dashboard/destinations/new".into(),
        },
        id: record.map(|d| d.id.clone()).unwrap_or_default(),
        name: record.map(|d| d.name.clone()).unwrap_or_default(),
        environment: current_env.clone(),
        environment_locked: complete,
        environments,
        formats,
        endpoint: record.and_then(|d| d.endpoint.clone()).unwrap_or_default(),
        requires_https: env.is_some_and(|e| e.flag.requires_tls()),
        has_token: record.is_some_and(|d| d.verification_token.is_some()),
        generated: String::new(),
        credentials,
        credential_name,
        environment_id: env.map(|e| e.id.clone()).unwrap_or_default(),
        method: record
            .map_or(VerificationMethod::Post, |d| d.verification_method)
            .to_string(),
        verified_at: record
            .and_then(|d| d.verified_at)
            .map(when)
            .unwrap_or_default(),
        in_progress: record.is_some_and(|d| d.setup_step.is_some()),
        notice: String::new(),
        error: String::new(),
        credential_hint: String::new(),
        success: false,
    })
}

fn check_step(step: usize) -> Result<usize, Failure> {
    if (1..=STEPS.len()).contains(&step) {
        Ok(step)
    } else {
        Err(Failure::new(
            StatusCode::NOT_FOUND,
            "The setup has seven steps, numbered 1 to 7.",
        ))
    }
}

async fn new_form(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
) -> Result<Response, Failure> {
    let page = wizard(&dash, &signed_in, None, 1).await?;
    Ok(render(StatusCode::OK, &page))
}

/// What a step's form may carry (each step reads its own fields; `csrf` is checked before).
#[derive(Deserialize, Default)]
#[serde(default)]
struct StepForm {
    name: String,
    environment: String,
    #[serde(rename = "dataFormat")]
    data_format: String,
    endpoint: String,
    #[serde(rename = "verificationToken")]
    token: String,
    generate: Option<String>,
    #[serde(rename = "authCredential")]
    credential: String,
    #[serde(rename = "verificationMethod")]
    method: String,
}

/// Step 1 of a new destination: create it (in Development until step 2).
async fn create(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Form(form): Form<StepForm>,
) -> Result<Response, Failure> {
    let org = dash.organization.id.clone();
    let development = dash
        .db(move |s| s.environments(&org))
        .await?
        .into_iter()
        .find(|e| e.flag == Environment::Development)
        .ok_or_else(|| {
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The organization has no Development environment.",
            )
        })?;
    let changes = DestinationChanges {
        name: Some(form.name.trim().to_owned()),
        ..Default::default()
    };
    match core::create(&dash, &development, changes, Some(2)).await {
        Ok(record) => Ok(see_other(&wizard_url(&record.id, 2))),
        Err(e) => {
            let mut page = wizard(&dash, &signed_in, None, 1).await?;
            page.name = form.name;
            page.error = wizard_error(&e);
            Ok(render(crate::http::status(&e), &page))
        }
    }
}

/// One of a destination's recent logs.
struct RecentLog {
    id: String,
    created: String,
    data_model: String,
    event_type: String,
    status: String,
}

#[derive(Template)]
#[template(path = "destination.html")]
struct DestinationPage {
    page: Page,
    id: String,
    name: String,
    environment: String,
    data_format: String,
    endpoint: String,
    verified_at: String,
    verification_method: String,
    credential_id: String,
    credential_name: String,
    queue_label: &'static str,
    queue_class: &'static str,
    queue_explain: &'static str,
    /// Who paused the queue, when and why.
    pause_note: String,
    depth: i64,
    head: String,
    /// Logs of the last 24 hours by status: (label, status word, count).
    counts: Vec<(&'static str, &'static str, u64)>,
    last_success: String,
    recent: Vec<RecentLog>,
}

/// How many recent logs the destination page lists.
const RECENT_LOGS: usize = 10;

/// A destination's page: what it is, whether it receives, its queue and its traffic. One
/// whose setup is unfinished opens the wizard where it stopped.
async fn resume(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    use crate::app::logs as logs_core;
    use wharf_protocol::platform::LogStatus;
    let (record, env) = core::destination(&dash, &id).await?;
    if record.setup_step.is_some() {
        return Ok(see_other(&wizard_url(&record.id, resume_step(&record))));
    }
    let queue = crate::app::queues::read(&dash, &record.id).await?;
    let condition = crate::app::queues::QueueCondition::of(&queue);
    let credential = match &record.auth_credential {
        Some(cid) => {
            let lookup = cid.clone();
            dash.db(move |s| s.auth_credential(&lookup)).await?
        }
        None => None,
    };
    let filter = |status: Option<LogStatus>, since: Option<i64>| wharf_store::engine::LogFilter {
        destination_id: Some(record.id.clone()),
        status,
        created_after: since,
        ..Default::default()
    };
    let day_ago = dash.now_millis() - 86_400_000;
    let mut counts = Vec::new();
    for (label, status) in [
        ("Succeeded", LogStatus::Succeeded),
        ("Pending", LogStatus::Pending),
        ("Failed", LogStatus::Failed),
        ("Filtered", LogStatus::Filtered),
    ] {
        let n = logs_core::count(&dash, filter(Some(status), Some(day_ago))).await?;
        counts.push((label, status.as_str(), n));
    }
    let one = logs_core::Page { number: 1, size: 1 };
    let last_success = logs_core::list(&dash, filter(Some(LogStatus::Succeeded), None), one)
        .await?
        .logs
        .first()
        .map(|l| when(l.updated_at))
        .unwrap_or_default();
    let recent = logs_core::list(
        &dash,
        filter(None, None),
        logs_core::Page {
            number: 1,
            size: RECENT_LOGS,
        },
    )
    .await?
    .logs
    .into_iter()
    .map(|l| RecentLog {
        created: when(l.created_at),
        data_model: l.data_model.unwrap_or_default(),
        event_type: l.event_type.unwrap_or_default(),
        status: l.status.to_string(),
        id: l.id,
    })
    .collect();
    let page = DestinationPage {
        page: Page::new(&dash, &signed_in, "destinations"),
        environment: env.flag.to_string(),
        data_format: record.data_format.to_string(),
        endpoint: record.endpoint.clone().unwrap_or_default(),
        verified_at: record.verified_at.map(when).unwrap_or_default(),
        verification_method: record.verification_method.to_string(),
        credential_id: credential
            .as_ref()
            .map(|c| c.id.clone())
            .unwrap_or_default(),
        credential_name: credential
            .as_ref()
            .map(|c| c.name.clone())
            .or_else(|| record.auth_credential.clone())
            .unwrap_or_default(),
        queue_label: condition.label(),
        queue_class: condition.as_str(),
        queue_explain: condition.explain(),
        pause_note: queue
            .pause
            .as_ref()
            .map(super::queues::pause_note)
            .unwrap_or_default(),
        depth: queue.depth,
        head: queue.head.map(|h| h.id).unwrap_or_default(),
        counts,
        last_success,
        recent,
        name: record.name,
        id: record.id,
    };
    Ok(render(StatusCode::OK, &page))
}

async fn step_form(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path((id, step)): Path<(String, usize)>,
    Query(query): Query<StepQuery>,
) -> Result<Response, Failure> {
    let step = check_step(step)?;
    let (record, env) = core::destination(&dash, &id).await?;
    if let Some(resume) = not_yet(&record, step) {
        return Ok(see_other(&resume));
    }
    let mut page = wizard(&dash, &signed_in, Some((&record, &env)), step).await?;
    // Step 6 opened from a credential's "Link to a destination" (or its creation from here):
    // that credential is chosen, to be saved with the warning.
    if step == 6
        && let Some(chosen) = &query.credential
        && page.credentials.iter().any(|c| &c.value == chosen)
    {
        for c in &mut page.credentials {
            c.checked = &c.value == chosen;
        }
    }
    page.notice = match query.done.as_deref() {
        Some("linked") => format!(
            "Linked the auth credential {}: it now fills the Authorization header of every request to this endpoint, and the verification token travels only in the verification-token header. Linking it cleared the destination's verification: it receives no data until Verify and Save passes again.",
            page.credential_name
        ),
        Some("unlinked") => "Unlinked the auth credential: requests carry the verification token as Authorization: Bearer again. This cleared the destination's verification: it receives no data until Verify and Save passes again.".into(),
        Some("unverified") => "Saved. The change cleared the destination's verification: it receives no data until Verify and Save passes again.".into(),
        _ => String::new(),
    };
    Ok(render(StatusCode::OK, &page))
}

/// A wizard page's query: `done` after a saved step, and at step 6 a credential to choose.
#[derive(Deserialize, Default)]
#[serde(default)]
struct StepQuery {
    done: Option<String>,
    credential: Option<String>,
}

/// What saving a step changed that the operator must know: `done` codes for the next page.
fn change_notice(before: &DestinationRecord, after: &DestinationRecord) -> Option<&'static str> {
    if before.auth_credential != after.auth_credential && before.setup_step.is_none() {
        return Some(if after.auth_credential.is_some() {
            "linked"
        } else {
            "unlinked"
        });
    }
    (before.verified_at.is_some() && after.verified_at.is_none()).then_some("unverified")
}

/// A destination being set up goes through the steps in order: a later step than the one it
/// resumes at sends there instead (its URL).
fn not_yet(record: &DestinationRecord, step: usize) -> Option<String> {
    let resume = resume_step(record);
    (record.setup_step.is_some() && step > resume).then(|| wizard_url(&record.id, resume))
}

async fn save_step(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path((id, step)): Path<(String, usize)>,
    Form(form): Form<StepForm>,
) -> Result<Response, Failure> {
    let step = check_step(step)?;
    let (record, env) = core::destination(&dash, &id).await?;
    if let Some(resume) = not_yet(&record, step) {
        return Ok(see_other(&resume));
    }
    if step == 5 && form.generate.is_some() {
        let mut page = wizard(&dash, &signed_in, Some((&record, &env)), 5).await?;
        page.generated = generate_token();
        return Ok(render(StatusCode::OK, &page));
    }
    if step == 7 {
        return verify(&dash, &signed_in, id, form).await;
    }
    match apply_step(&dash, id.clone(), step, &form).await {
        Ok(()) => {
            let (after, _) = core::destination(&dash, &id).await?;
            let next = wizard_url(&id, step + 1);
            Ok(see_other(&match change_notice(&record, &after) {
                Some(done) => format!("{next}?done={done}"),
                None => next,
            }))
        }
        Err(e) => {
            let (record, env) = core::destination(&dash, &id).await?;
            let mut page = wizard(&dash, &signed_in, Some((&record, &env)), step).await?;
            // Show what was typed so it can be corrected (never a token).
            match step {
                1 => page.name = form.name,
                4 => page.endpoint = form.endpoint,
                _ => {}
            }
            page.error = wizard_error(&e);
            Ok(render(crate::http::status(&e), &page))
        }
    }
}

/// Saves one of steps 1 to 6 through the API's checks, and moves the resume point past it.
async fn apply_step(
    dash: &Dash,
    id: String,
    step: usize,
    form: &StepForm,
) -> Result<(), EngineError> {
    let mut record = match step {
        1 => {
            let changes = DestinationChanges {
                name: Some(form.name.trim().to_owned()),
                ..Default::default()
            };
            change(dash, &id, changes).await?
        }
        2 => {
            let (mut record, _) = core::destination(dash, &id).await?;
            let env = core::environment(dash, &form.environment)
                .await
                .map_err(|_| EngineError::bad_request("Choose one of the environments shown."))?;
            core::move_to(dash, &mut record, &env).await?;
            record
        }
        3 => {
            let format = form
                .data_format
                .trim()
                .parse::<DataFormat>()
                .map_err(|e| EngineError::bad_request(e.to_string()))?;
            let changes = DestinationChanges {
                data_format: Some(format),
                ..Default::default()
            };
            change(dash, &id, changes).await?
        }
        4 => {
            if form.endpoint.trim().is_empty() {
                return Err(EngineError::bad_request(
                    "Enter the endpoint URL the engine should POST to, e.g. https://example.com/redox.",
                ));
            }
            let changes = DestinationChanges {
                endpoint: Some(Some(form.endpoint.trim().to_owned())),
                ..Default::default()
            };
            change(dash, &id, changes).await?
        }
        5 => {
            let (record, _) = core::destination(dash, &id).await?;
            if form.token.is_empty() {
                if record.verification_token.is_none() {
                    return Err(EngineError::bad_request(
                        "Enter a verification token, or press Generate for a long random one.",
                    ));
                }
                // Left empty: the stored token stays.
                record
            } else {
                let changes = DestinationChanges {
                    verification_token: Some(Some(form.token.clone())),
                    ..Default::default()
                };
                change(dash, &id, changes).await?
            }
        }
        _ => {
            let credential = match form.credential.as_str() {
                "" => None,
                id => Some(id.to_owned()),
            };
            let changes = DestinationChanges {
                auth_credential: Some(credential),
                ..Default::default()
            };
            change(dash, &id, changes).await?
        }
    };
    record.setup_step = record.setup_step.map(|s| s.max(step as i64 + 1));
    core::save(dash, &record).await
}

/// The stored destination with `changes` checked and applied as the API's PATCH does (not
/// saved).
async fn change(
    dash: &Dash,
    id: &str,
    changes: DestinationChanges,
) -> Result<DestinationRecord, EngineError> {
    Ok(core::changed(dash, id, changes).await?.0)
}

/// Step 7: the API's Verify and Save; `Success!` or the reason, and the way to fix it.
async fn verify(
    dash: &Dash,
    signed_in: &SignedIn,
    id: String,
    form: StepForm,
) -> Result<Response, Failure> {
    let changes = DestinationChanges {
        verification_method: form.method.parse::<VerificationMethod>().ok(),
        ..Default::default()
    };
    let outcome = core::verify_and_save(dash, &id, changes).await;
    let (record, env) = core::destination(dash, &id).await?;
    let mut page = wizard(dash, signed_in, Some((&record, &env)), 7).await?;
    match outcome {
        Ok(_) => {
            page.success = true;
            Ok(render(StatusCode::OK, &page))
        }
        Err(e) => {
            if !form.method.is_empty() {
                page.method = form.method;
            }
            if !page.credential_name.is_empty() {
                page.credential_hint = format!(
                    "The auth credential {} is linked: it fills the Authorization header of the challenge, so the endpoint receives the verification token only in the verification-token header (and in the challenge itself). An endpoint that reads the token from Authorization: Bearer refuses it: accept the credential there, or unlink it at step 6.",
                    page.credential_name
                );
            }
            page.error = wizard_error(&e);
            Ok(render(crate::http::status(&e), &page))
        }
    }
}

async fn delete(State(dash): State<Dash>, Path(id): Path<String>) -> Result<Response, Failure> {
    let (record, _) = core::destination(&dash, &id).await?;
    core::delete(&dash, &record.id).await?;
    Ok(see_other("/dashboard/destinations?done=deleted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_long_random_and_valid() {
        let a = generate_token();
        let b = generate_token();
        assert_eq!(a.len(), GENERATED_TOKEN_LEN);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert!(wharf_protocol::VerificationToken::new(a).is_ok());
    }

    fn record() -> DestinationRecord {
        DestinationRecord {
            id: "d".into(),
            organization_id: "o".into(),
            environment_id: "e".into(),
            name: "n".into(),
            data_format: DataFormat::Json,
            endpoint: None,
            verification_token: None,
            verification_method: VerificationMethod::Post,
            auth_credential: None,
            verified_at: None,
            created_at: 0,
            updated_at: 0,
            setup_step: None,
        }
    }

    #[test]
    fn steps_of_a_setup_are_taken_in_order() {
        let mut d = record();
        d.setup_step = Some(4);
        assert_eq!(not_yet(&d, 4), None);
        assert_eq!(not_yet(&d, 2), None, "going back is fine");
        assert_eq!(
            not_yet(&d, 6).as_deref(),
            Some("/dashboard/destinations/d/setup/4")
        );
        d.setup_step = None;
        assert_eq!(
            not_yet(&d, 6),
            None,
            "a set-up destination is edited in any order"
        );
    }

    #[test]
    fn setups_resume_where_they_stopped() {
        let mut d = record();
        d.setup_step = Some(3);
        assert_eq!(resume_step(&d), 3);
        d.setup_step = Some(99);
        assert_eq!(resume_step(&d), 7);
        // Made through the API: the first thing missing.
        d.setup_step = None;
        assert_eq!(resume_step(&d), 4);
        d.endpoint = Some("https://x.example".into());
        assert_eq!(resume_step(&d), 5);
        d.verification_token = Some(vec![1]);
        assert_eq!(resume_step(&d), 7);
    }
}
