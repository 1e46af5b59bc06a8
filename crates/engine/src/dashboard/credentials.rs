//! Auth credentials in the dashboard: the list per environment, and a create and edit form per
//! strategy showing exactly that strategy's fields (from `wharf_auth::strategy`'s catalogue).
//!
//! Secrets are write-only. The forms are filled from the API's view of a credential
//! (`crate::app::credentials::public_fields`), which holds no secret, only `has<Field>` flags: a
//! secret input is always empty, says "set — leave empty to keep" when a value is stored, and
//! an empty submission keeps it. Forms become the API's JSON input and go through its checks.

use super::Notice;
use super::session::SignedIn;
use super::{Dash, Failure, Page, render, see_other};
use crate::app::EngineError;
use crate::app::credentials as core;
use askama::Template;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use wharf_auth::strategy::{Strategy, has_name};

pub(super) fn routes() -> Router<Dash> {
    Router::new()
        .route("/dashboard/credentials", get(list))
        .route("/dashboard/credentials/new", get(new_form).post(create))
        .route("/dashboard/credentials/{id}", get(edit_form).post(update))
        .route("/dashboard/credentials/{id}/delete", post(delete))
        .route("/dashboard/credentials/{id}/test", post(test))
        .route("/dashboard/credentials/{id}/link", get(link))
}

/// The names Redox's dashboard gives the strategies (its "Set up auth credentials" page), in
/// the order it lists them; the API keeps the keys (`AwsSigv4`...).
pub(super) fn strategy_label(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::AwsSigv4 => "AWS Signature Version 4",
        Strategy::GoogleWif => "Google Workload Identity Federation (WIF)",
        Strategy::JwtBearer => "JWT bearer",
        Strategy::OAuth2Legged => "OAuth 2.0 Two-Legged with secrets",
        Strategy::OAuthJwtBearerGcp => "OAuth 2.0 2-legged with JWT for GCP",
        Strategy::SmartBackend => "SMART backend",
    }
}

/// The strategies in the order Redox's dashboard lists them.
const STRATEGY_ORDER: [Strategy; 6] = [
    Strategy::AwsSigv4,
    Strategy::GoogleWif,
    Strategy::JwtBearer,
    Strategy::OAuth2Legged,
    Strategy::OAuthJwtBearerGcp,
    Strategy::SmartBackend,
];

/// A field's label for people, and whether it is an advanced setting (folded away: most
/// credentials never need it). Required fields are never folded.
fn field_label(name: &str) -> (&'static str, bool) {
    match name {
        "accessKey" => ("Access key ID", false),
        "secretKey" => ("Secret access key", false),
        "serviceName" => ("Service name", false),
        "awsRegion" => ("AWS region", false),
        "sessionToken" => ("Session token", true),
        "url" | "tokenUrl" | "token_url" => ("Token URL", false),
        "clientId" => ("Client ID", false),
        "clientSecret" => ("Client secret", false),
        "scopes" => ("Scopes", false),
        "scope" => ("Scope", false),
        "audience" => ("Audience", false),
        "grantType" => ("Grant type", true),
        "resource" => ("Resource", true),
        "contentType" => ("Token request format (content type)", true),
        "noBasic" => (
            "Send the client ID and secret in the request body, not as HTTP Basic",
            true,
        ),
        "grantTypeName" => ("Name of the grant type field", true),
        "clientIdName" => ("Name of the client ID field", true),
        "clientSecretName" => ("Name of the client secret field", true),
        "accessTokenName" => ("Name of the access token field in the answer", true),
        "expiresFieldName" => ("Name of the expiry field in the answer", true),
        "customFieldName" => ("Extra field: name", true),
        "customFieldValue" => ("Extra field: value", true),
        "defaultExpirationSeconds" => ("Token lifetime when the answer gives none (seconds)", true),
        "username" => ("Username", true),
        "password" => ("Password", true),
        "refreshTokenName" => ("Name of the refresh token field", true),
        "refreshGrantType" => ("Refresh grant type", true),
        "issuer" => ("Issuer", false),
        "subject" => ("Subject", true),
        "lifetimeSeconds" => ("Token lifetime (seconds)", true),
        "serviceAccountEmail" => ("Service account email", false),
        "sts_scope" => ("Security Token Service scope", true),
        "service_account_impersonation_url" => ("Service account impersonation URL", false),
        "delegates" => ("Delegates", true),
        "lifetime" => ("Impersonated token lifetime", true),
        "idTokenAudience" => ("ID token audience", true),
        "subjectIssuer" => ("Subject token issuer", true),
        "privateKey" => ("Private key (PEM)", true),
        "kid" => ("Key ID (kid)", true),
        "algorithm" => ("Signing algorithm", true),
        _ => ("", true),
    }
}

/// The label of `field` (its API name when it has none).
fn label_of(field: &str) -> &str {
    match field_label(field).0 {
        "" => field,
        label => label,
    }
}

/// An error of the core as the credential form says it: a field quoted by its API name
/// (`clientId`) is named by its label (Client ID).
fn plain_error(strategy: Strategy, message: &str) -> String {
    let mut plain = message.replace(strategy.key(), strategy_label(strategy));
    for field in strategy.fields() {
        plain = plain.replace(&format!("`{}`", field.name), label_of(field.name));
    }
    super::plain_words(&plain, &[("name", "Name"), ("authStrategy", "Strategy")])
}

/// The form's name of a strategy field's input (prefixed, so no field can collide with the
/// form's own `name`, `csrf`, ...).
fn input_name(field: &str) -> String {
    format!("field-{field}")
}

/// The JWKS URL a credential publishes its public keys at (empty for a strategy with none).
fn jwks_url(view: &Map<String, Value>) -> String {
    view.get("jwksUrl")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The name of the checkbox that removes an optional stored secret.
fn clear_name(field: &str) -> String {
    format!("clear-{field}")
}

/// Turns a submitted form into the API's input for `strategy`'s fields. `current` is the
/// API's view of the stored credential when editing (`None` when creating): then an emptied
/// field is removed (`null`), an empty secret is kept, and an unchanged checkbox is left out.
fn strategy_input(
    strategy: Strategy,
    form: &HashMap<String, String>,
    current: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, EngineError> {
    let mut input = Map::new();
    for field in strategy.fields() {
        let raw = form.get(&input_name(field.name)).map_or("", |v| v.trim());
        let stored = current.map(|c| {
            if field.secret {
                c.get(&has_name(field.name)) == Some(&Value::Bool(true))
            } else {
                c.get(field.name).is_some_and(|v| !v.is_null())
            }
        });
        let name = field.name.to_owned();
        if field.secret {
            if form.contains_key(&clear_name(field.name)) && stored == Some(true) {
                input.insert(name, Value::Null);
            } else if !raw.is_empty() {
                input.insert(name, Value::String(raw.to_owned()));
            }
            continue;
        }
        if field.kind == "boolean" {
            let on = form.contains_key(&input_name(field.name));
            let was = current
                .and_then(|c| c.get(field.name))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if on != was {
                input.insert(name, Value::Bool(on));
            }
            continue;
        }
        if raw.is_empty() {
            if stored == Some(true) {
                input.insert(name, Value::Null);
            }
            continue;
        }
        let value = if field.kind == "integer" {
            let n: u64 = raw.parse().map_err(|_| {
                EngineError::bad_request(format!(
                    "{} must be a whole number, like 3600",
                    label_of(field.name)
                ))
            })?;
            Value::from(n)
        } else {
            // `string[]` travels as one space- or comma-separated string; the API splits it.
            Value::String(raw.to_owned())
        };
        input.insert(name, value);
    }
    Ok(input)
}

/// One input of a credential form.
struct FieldInput {
    name: &'static str,
    label: &'static str,
    /// Folded under "Advanced settings".
    advanced: bool,
    input: String,
    clear: String,
    /// `text`, `number`, `checkbox`, `password` or `textarea`.
    kind: &'static str,
    value: String,
    checked: bool,
    required: bool,
    secret: bool,
    can_clear: bool,
    placeholder: String,
    description: &'static str,
}

/// The inputs for `strategy`, filled from the API's `view` of a credential (never a stored
/// secret), or from what was just submitted when the submission was refused: then a secret
/// typed in that very request is given back to the one who typed it, so a refused form does
/// not lose it (a stored secret is never shown).
fn field_inputs(
    strategy: Strategy,
    view: &Map<String, Value>,
    submitted: Option<&HashMap<String, String>>,
    creating: bool,
) -> Vec<FieldInput> {
    strategy
        .fields()
        .iter()
        .map(|f| {
            let is_set = view.get(&has_name(f.name)) == Some(&Value::Bool(true));
            let stored = view.get(f.name);
            let value = match (submitted, stored) {
                (Some(form), _) => form.get(&input_name(f.name)).cloned().unwrap_or_default(),
                _ if f.secret => String::new(),
                (None, Some(Value::String(s))) => s.clone(),
                (None, Some(Value::Array(items))) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
                (None, Some(Value::Number(n))) => n.to_string(),
                _ => String::new(),
            };
            let checked = match submitted {
                Some(form) => form.contains_key(&input_name(f.name)),
                None => stored.and_then(Value::as_bool).unwrap_or(false),
            };
            let kind = match (f.kind, f.secret, f.name) {
                (_, true, "privateKey") => "textarea",
                (_, true, _) => "password",
                ("boolean", _, _) => "checkbox",
                ("integer", _, _) => "number",
                _ => "text",
            };
            let placeholder = if f.secret && is_set {
                "set — leave empty to keep".to_owned()
            } else if f.name == "privateKey" && creating {
                "leave empty to have the engine generate a key".to_owned()
            } else if f.kind == "string[]" {
                "separated by spaces or commas".to_owned()
            } else {
                String::new()
            };
            let (label, advanced) = field_label(f.name);
            FieldInput {
                name: f.name,
                label: if label.is_empty() { f.name } else { label },
                advanced: advanced && !f.required,
                input: input_name(f.name),
                clear: clear_name(f.name),
                kind,
                value,
                checked,
                required: f.required,
                secret: f.secret,
                can_clear: f.secret && is_set && !f.required && f.name != "privateKey",
                placeholder,
                description: f.description,
            }
        })
        .collect()
}

struct Row {
    id: String,
    name: String,
    strategy: String,
    secrets: String,
    jwks_url: String,
    used_by: String,
}

struct Section {
    flag: String,
    rows: Vec<Row>,
}

#[derive(Template)]
#[template(path = "credentials.html")]
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
                let mut credentials = Vec::new();
                for c in s.auth_credentials(&env.id)? {
                    let names: Vec<String> = s
                        .destinations_using(&c.id)?
                        .iter()
                        .filter_map(|d| s.destination(d).transpose())
                        .map(|d| d.map(|d| d.name))
                        .collect::<Result<_, _>>()?;
                    credentials.push((c, names));
                }
                out.push((env, credentials));
            }
            Ok(out)
        })
        .await?;
    let mut sections = Vec::new();
    for (env, credentials) in environments {
        if credentials.is_empty() && !dash.config.environment_enabled(env.flag) {
            continue;
        }
        let mut rows = Vec::new();
        for (record, used_by) in credentials {
            let view = core::public_fields(&dash, &record, &core::opened(&dash, &record)?);
            let secrets: Vec<&str> = record
                .strategy
                .fields()
                .iter()
                .filter(|f| f.secret && view.get(&has_name(f.name)) == Some(&Value::Bool(true)))
                .map(|f| f.name)
                .collect();
            rows.push(Row {
                id: record.id,
                name: record.name,
                strategy: strategy_label(record.strategy).to_owned(),
                secrets: secrets
                    .iter()
                    .map(|f| label_of(f))
                    .collect::<Vec<_>>()
                    .join(", "),
                jwks_url: jwks_url(&view),
                used_by: used_by.join(", "),
            });
        }
        sections.push(Section {
            flag: env.flag.to_string(),
            rows,
        });
    }
    let notice = match notice.done.as_deref() {
        Some("deleted") => "The auth credential was deleted.",
        _ => "",
    };
    Ok(render(
        StatusCode::OK,
        &ListPage {
            page: Page::new(&dash, &signed_in, "credentials"),
            sections,
            notice,
        },
    ))
}

struct Choice {
    value: String,
    label: String,
    checked: bool,
}

/// First page of a new credential: choose its environment and strategy.
#[derive(Template)]
#[template(path = "credential_new.html")]
struct ChoosePage {
    page: Page,
    environments: Vec<Choice>,
    strategies: Vec<Choice>,
    /// Whether a strategy is chosen already (else the placeholder is).
    any_chosen: bool,
    /// The destination whose setup sent here (step 6), to go back to.
    destination: String,
}

/// What trying the credential showed, on its page.
struct TrialShown {
    works: bool,
    headers: Vec<(String, String)>,
    reason: String,
}

#[derive(Template)]
#[template(path = "credential_form.html")]
struct FormPage {
    page: Page,
    creating: bool,
    action: String,
    id: String,
    name: String,
    /// The strategy's key (the form's hidden input).
    strategy: String,
    /// Its name in Redox's dashboard.
    strategy_label: &'static str,
    environment_id: String,
    environment: String,
    fields: Vec<FieldInput>,
    /// Whether an advanced field holds a value (its fold opens).
    advanced_open: bool,
    jwks_url: String,
    used_by: String,
    error: String,
    notice: &'static str,
    /// The destination whose setup sent here, and its name: the way back to step 6.
    destination: String,
    destination_name: String,
    /// Destinations of the environment that do not use this credential: "link to".
    link_choices: Vec<Choice>,
    trial: Option<TrialShown>,
}

impl FormPage {
    fn has_advanced(&self) -> bool {
        self.fields.iter().any(|f| f.advanced)
    }
}

/// Whether any advanced input of `fields` holds something.
fn advanced_filled(fields: &[FieldInput]) -> bool {
    fields.iter().any(|f| {
        f.advanced && (!f.value.is_empty() || f.checked || f.placeholder.starts_with("set"))
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewQuery {
    strategy: Option<String>,
    environment: Option<String>,
    /// The destination whose setup sent here.
    destination: String,
}

/// The name of destination `id` of this organization, if it is one (a way back to its setup).
async fn destination_name(dash: &Dash, id: &str) -> Result<String, Failure> {
    if id.is_empty() {
        return Ok(String::new());
    }
    match crate::app::destinations::destination(dash, id).await {
        Ok((d, _)) => Ok(d.name),
        Err(crate::app::EngineError::NotFound(_)) => Ok(String::new()),
        Err(e) => Err(e.into()),
    }
}

/// The environment of this organization with id `id`, if destinations may be created there.
async fn enabled_environment(
    dash: &Dash,
    id: &str,
) -> Result<Option<wharf_store::engine::EnvironmentRecord>, Failure> {
    match crate::app::destinations::environment(dash, id).await {
        Ok(env) => Ok(Some(env).filter(|e| dash.config.environment_enabled(e.flag))),
        Err(crate::app::EngineError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn new_form(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Query(query): Query<NewQuery>,
) -> Result<Response, Failure> {
    let strategy = query.strategy.as_deref().and_then(Strategy::from_key);
    let env = match &query.environment {
        Some(id) => enabled_environment(&dash, id).await?,
        None => None,
    };
    let destination_name = destination_name(&dash, &query.destination).await?;
    let destination = if destination_name.is_empty() {
        String::new()
    } else {
        query.destination.clone()
    };
    let (Some(strategy), Some(env)) = (strategy, env) else {
        let org = dash.organization.id.clone();
        let environments = dash
            .db(move |s| s.environments(&org))
            .await?
            .into_iter()
            .filter(|e| dash.config.environment_enabled(e.flag))
            .map(|e| Choice {
                checked: query.environment.as_ref() == Some(&e.id),
                label: e.flag.to_string(),
                value: e.id,
            })
            .collect();
        let strategies = STRATEGY_ORDER
            .iter()
            .map(|s| Choice {
                value: s.key().to_owned(),
                label: strategy_label(*s).to_owned(),
                checked: Some(*s) == strategy,
            })
            .collect();
        return Ok(render(
            StatusCode::OK,
            &ChoosePage {
                page: Page::new(&dash, &signed_in, "credentials"),
                environments,
                any_chosen: strategy.is_some(),
                strategies,
                destination,
            },
        ));
    };
    let fields = field_inputs(strategy, &Map::new(), None, true);
    let page = FormPage {
        page: Page::new(&dash, &signed_in, "credentials"),
        creating: true,
        action: "/dashboard/credentials/new".into(),
        id: String::new(),
        name: String::new(),
        strategy: strategy.key().to_owned(),
        strategy_label: strategy_label(strategy),
        environment_id: env.id,
        environment: env.flag.to_string(),
        advanced_open: false,
        fields,
        jwks_url: String::new(),
        used_by: String::new(),
        error: String::new(),
        notice: "",
        destination,
        destination_name,
        link_choices: Vec::new(),
        trial: None,
    };
    Ok(render(StatusCode::OK, &page))
}

async fn create(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let get = |k: &str| form.get(k).map_or("", |v| v.trim()).to_owned();
    let strategy = Strategy::from_key(&get("strategy")).ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "Choose one of the strategies offered on the new credential page.",
        )
    })?;
    let env = enabled_environment(&dash, &get("environment"))
        .await?
        .ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                "Choose one of the environments offered on the new credential page.",
            )
        })?;
    let destination_name = destination_name(&dash, &get("destination")).await?;
    let destination = if destination_name.is_empty() {
        String::new()
    } else {
        get("destination")
    };
    let outcome = match strategy_input(strategy, &form, None) {
        Ok(mut input) => {
            input.insert("name".into(), Value::String(get("name")));
            input.insert("environmentId".into(), Value::String(env.id.clone()));
            input.insert("authStrategy".into(), Value::String(strategy.key().into()));
            core::create(&dash, &input).await.map_err(|e| {
                (
                    crate::http::status(&e),
                    plain_error(strategy, &e.to_string()),
                )
            })
        }
        Err(e) => Err((crate::http::status(&e), e.to_string())),
    };
    match outcome {
        Ok((record, _)) => Ok(see_other(&if destination.is_empty() {
            format!("/dashboard/credentials/{}?done=saved", record.id)
        } else {
            format!(
                "/dashboard/credentials/{}?done=saved&destination={destination}",
                record.id
            )
        })),
        Err((status, message)) => {
            let fields = field_inputs(strategy, &Map::new(), Some(&form), true);
            let page = FormPage {
                page: Page::new(&dash, &signed_in, "credentials"),
                creating: true,
                action: "/dashboard/credentials/new".into(),
                id: String::new(),
                name: get("name"),
                strategy: strategy.key().to_owned(),
                strategy_label: strategy_label(strategy),
                environment_id: env.id,
                environment: env.flag.to_string(),
                advanced_open: advanced_filled(&fields),
                fields,
                jwks_url: String::new(),
                used_by: String::new(),
                error: message,
                notice: "",
                destination,
                destination_name,
                link_choices: Vec::new(),
                trial: None,
            };
            Ok(render(status, &page))
        }
    }
}

/// The edit form of a stored credential, filled from the API's view.
async fn edit_page(
    dash: &Dash,
    signed_in: &SignedIn,
    id: String,
    submitted: Option<&HashMap<String, String>>,
) -> Result<FormPage, Failure> {
    let (record, credential) = core::read(dash, &id).await?;
    let view = core::public_fields(dash, &record, &credential);
    let env_id = record.environment_id.clone();
    let target = record.id.clone();
    let (env, used_by, others) = dash
        .db(move |s| {
            let using = s.destinations_using(&target)?;
            let names: Vec<String> = using
                .iter()
                .filter_map(|d| s.destination(d).transpose())
                .map(|d| d.map(|d| d.name))
                .collect::<Result<_, _>>()?;
            let others: Vec<(String, String)> = s
                .destinations(&env_id)?
                .into_iter()
                .filter(|d| !using.contains(&d.id))
                .map(|d| (d.id, d.name))
                .collect();
            Ok((s.environment(&env_id)?, names, others))
        })
        .await?;
    let fields = field_inputs(credential.strategy, &view, submitted, false);
    Ok(FormPage {
        page: Page::new(dash, signed_in, "credentials"),
        creating: false,
        action: format!("/dashboard/credentials/{}", record.id),
        name: submitted
            .and_then(|f| f.get("name").cloned())
            .unwrap_or_else(|| record.name.clone()),
        id: record.id,
        strategy: credential.strategy.key().to_owned(),
        strategy_label: strategy_label(credential.strategy),
        environment_id: record.environment_id,
        environment: env.map(|e| e.flag.to_string()).unwrap_or_default(),
        advanced_open: submitted.is_some() && advanced_filled(&fields),
        fields,
        jwks_url: jwks_url(&view),
        used_by: used_by.join(", "),
        error: String::new(),
        notice: "",
        destination: String::new(),
        destination_name: String::new(),
        link_choices: others
            .into_iter()
            .map(|(value, label)| Choice {
                value,
                label,
                checked: false,
            })
            .collect(),
        trial: None,
    })
}

/// `?done=` after a save, and the destination whose setup sent here.
#[derive(Deserialize, Default)]
#[serde(default)]
struct EditQuery {
    done: Option<String>,
    destination: String,
}

async fn edit_form(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
    Query(query): Query<EditQuery>,
) -> Result<Response, Failure> {
    let mut page = edit_page(&dash, &signed_in, id, None).await?;
    if query.done.as_deref() == Some("saved") {
        page.notice = "Saved.";
    }
    page.destination_name = destination_name(&dash, &query.destination).await?;
    if !page.destination_name.is_empty() {
        page.destination = query.destination;
    }
    Ok(render(StatusCode::OK, &page))
}

async fn update(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, Failure> {
    let (record, credential) = core::read(&dash, &id).await?;
    let view = core::public_fields(&dash, &record, &credential);
    let strategy = credential.strategy;
    let outcome = match strategy_input(strategy, &form, Some(&view)) {
        Ok(mut input) => {
            let name = form.get("name").map_or("", |n| n.trim());
            input.insert("name".into(), Value::String(name.to_owned()));
            core::update(&dash, &id, &input).await.map_err(|e| {
                (
                    crate::http::status(&e),
                    plain_error(strategy, &e.to_string()),
                )
            })
        }
        Err(e) => Err((crate::http::status(&e), e.to_string())),
    };
    match outcome {
        Ok(_) => Ok(see_other(&format!(
            "/dashboard/credentials/{id}?done=saved"
        ))),
        Err((status, message)) => {
            let mut page = edit_page(&dash, &signed_in, id, Some(&form)).await?;
            page.error = message;
            Ok(render(status, &page))
        }
    }
}

/// "Test this credential": fetches a token or signs a request as a delivery would, and shows
/// what came of it on the credential's page.
async fn test(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let tried = core::try_out(&dash, &id).await?;
    let mut page = edit_page(&dash, &signed_in, id, None).await?;
    page.trial = Some(match tried {
        Ok(trial) => TrialShown {
            works: true,
            headers: trial.headers,
            reason: String::new(),
        },
        Err(reason) => TrialShown {
            works: false,
            headers: Vec::new(),
            reason: reason.to_string(),
        },
    });
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LinkQuery {
    destination: String,
}

/// "Link to a destination": the destination's setup at its auth credential step, with this
/// credential chosen, so the change (which clears its verification) is saved there, warned.
async fn link(
    State(dash): State<Dash>,
    Path(id): Path<String>,
    Query(query): Query<LinkQuery>,
) -> Result<Response, Failure> {
    let (record, _) = core::read(&dash, &id).await?;
    let (destination, _) =
        crate::app::destinations::destination(&dash, query.destination.trim()).await?;
    Ok(see_other(&format!(
        "/dashboard/destinations/{}/setup/6?credential={}",
        destination.id, record.id
    )))
}

async fn delete(
    State(dash): State<Dash>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    match core::delete(&dash, &id).await {
        Ok(()) => Ok(see_other("/dashboard/credentials?done=deleted")),
        Err(e) => {
            let mut page = edit_page(&dash, &signed_in, id, None).await?;
            page.error = plain_error(page_strategy(&page), &e.to_string());
            Ok(render(crate::http::status(&e), &page))
        }
    }
}

/// The strategy of a form page (its key is always one of the catalogue's).
fn page_strategy(page: &FormPage) -> Strategy {
    Strategy::from_key(&page.strategy).unwrap_or(Strategy::AwsSigv4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_new_credential_takes_what_was_filled_in() {
        let input = strategy_input(
            Strategy::OAuth2Legged,
            &form(&[
                ("field-url", " https://auth.example/token "),
                ("field-clientId", "client"),
                ("field-clientSecret", "s3cret"),
                ("field-scopes", "a b"),
                ("field-noBasic", "on"),
                ("field-defaultExpirationSeconds", ""),
                ("field-audience", ""),
                ("csrf", "x"),
                ("name", "not a field"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(
            Value::Object(input),
            json!({"url": "https://auth.example/token", "clientId": "client",
                   "clientSecret": "s3cret", "scopes": "a b", "noBasic": true})
        );
        let wrong = strategy_input(
            Strategy::OAuth2Legged,
            &form(&[("field-defaultExpirationSeconds", "soon")]),
            None,
        );
        assert!(wrong.unwrap_err().to_string().contains("whole number"));
    }

    #[test]
    fn editing_keeps_empty_secrets_and_removes_emptied_fields() {
        let current = json!({"url": "https://auth.example/token", "clientId": "client",
            "audience": "aud", "noBasic": true, "hasClientSecret": true,
            "hasCustomFieldValue": true});
        let current = current.as_object().unwrap();
        let input = strategy_input(
            Strategy::OAuth2Legged,
            &form(&[
                ("field-url", "https://auth.example/token"),
                ("field-clientId", "client"),
                ("field-clientSecret", ""),
                ("field-audience", ""),
                ("clear-customFieldValue", "on"),
            ]),
            Some(current),
        )
        .unwrap();
        assert_eq!(
            Value::Object(input),
            json!({"url": "https://auth.example/token", "clientId": "client",
                   "audience": null, "noBasic": false, "customFieldValue": null})
        );
    }

    #[test]
    fn errors_name_fields_and_strategies_as_the_form_does() {
        assert_eq!(
            plain_error(
                Strategy::OAuth2Legged,
                "OAuth_2.0_2-legged requires `clientId`, `clientSecret`"
            ),
            "OAuth 2.0 Two-Legged with secrets requires Client ID, Client secret"
        );
        for strategy in Strategy::ALL {
            assert!(STRATEGY_ORDER.contains(&strategy));
            for field in strategy.fields() {
                assert!(
                    !field_label(field.name).0.is_empty(),
                    "{} has a label",
                    field.name
                );
            }
        }
    }

    #[test]
    fn forms_never_show_a_secret_and_say_when_one_is_set() {
        let view = json!({"accessKey": "AKID", "hasSecretKey": true, "hasSessionToken": false});
        let inputs = field_inputs(Strategy::AwsSigv4, view.as_object().unwrap(), None, false);
        let secret = inputs.iter().find(|f| f.name == "secretKey").unwrap();
        assert_eq!((secret.kind, secret.value.as_str()), ("password", ""));
        assert_eq!(secret.placeholder, "set — leave empty to keep");
        assert!(!secret.can_clear, "a required secret cannot be removed");
        let session = inputs.iter().find(|f| f.name == "sessionToken").unwrap();
        assert!(session.placeholder.is_empty() && !session.can_clear);
        let access = inputs.iter().find(|f| f.name == "accessKey").unwrap();
        assert_eq!(access.value, "AKID");
        // Only the strategy's own fields.
        assert_eq!(inputs.len(), Strategy::AwsSigv4.fields().len());
        let submitted = form(&[
            ("field-secretKey", "typed-secret"),
            ("field-accessKey", "X"),
        ]);
        let again = field_inputs(
            Strategy::AwsSigv4,
            view.as_object().unwrap(),
            Some(&submitted),
            false,
        );
        // A secret typed in a refused request is given back to its typist; a stored one never.
        let typed = again.iter().find(|f| f.name == "secretKey").unwrap();
        assert_eq!(typed.value, "typed-secret");
        let session = again.iter().find(|f| f.name == "sessionToken").unwrap();
        assert_eq!(session.value, "");
    }
}
