//! Destinations (PROTOCOL.md sections 1 and 2):
//! `GET|POST /platform/v1/environments/{envId}/destinations`,
//! `GET|PATCH|DELETE /platform/v1/destinations/{id}`, and Verify and Save at
//! `POST /platform/v1/destinations/{id}/verify`.
//!
//! The verification token is sealed with the master key before it is stored and is never
//! returned: it reads back as `hasVerificationToken`. Changing the endpoint, the token or the
//! linked auth credential (`authCredential`: an id of the same environment, or null) clears the
//! verified mark. Verify and Save saves nothing unless verification succeeds.
//!
//! The dashboard's setup wizard goes through the same steps ([`create_in`], [`changed`] and
//! [`save`], [`verify_and_save`]), so both check a destination the same way.

use super::{
    ApiError, State, ok, only_fields, open_token, payload, rfc3339, string_field, token_context,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use wharf_delivery::Method;
use wharf_protocol::{Environment, VerificationToken};
use wharf_store::engine::{DestinationRecord, EnvironmentRecord};
use wharf_store::now_millis;

type AppState = axum::extract::State<State>;

pub(crate) const FIELDS: &[&str] = &[
    "name",
    "dataFormat",
    "endpoint",
    "verificationToken",
    "verificationMethod",
    "authCredential",
];
const VERIFY_FIELDS: &[&str] = &["endpoint", "verificationToken", "verificationMethod"];
pub(crate) const DATA_FORMATS: &[&str] = &["JSON", "FHIR", "HL7v2", "XML"];

pub(super) fn routes() -> Router<State> {
    Router::new()
        .route(
            "/platform/v1/environments/{env_id}/destinations",
            get(list).post(create),
        )
        .route(
            "/platform/v1/destinations/{id}",
            get(read).patch(update).delete(remove),
        )
        .route("/platform/v1/destinations/{id}/verify", post(verify))
}

/// The API's view of a destination: never the token.
fn view(d: &DestinationRecord, env: &EnvironmentRecord) -> Value {
    json!({
        "id": d.id,
        "name": d.name,
        "organizationId": d.organization_id,
        "environmentId": d.environment_id,
        "environmentFlag": env.flag,
        "dataFormat": d.data_format,
        "endpoint": d.endpoint,
        "verificationMethod": d.verification_method,
        "authCredential": d.auth_credential,
        "hasVerificationToken": d.verification_token.is_some(),
        "verified": d.verified_at.is_some(),
        "verifiedAt": d.verified_at.map(rfc3339),
        "createdAt": rfc3339(d.created_at),
        "updatedAt": rfc3339(d.updated_at),
    })
}

pub(crate) async fn environment(state: &State, id: String) -> Result<EnvironmentRecord, ApiError> {
    let what = format!("environment {id}");
    state
        .db(move |s| s.environment(&id))
        .await?
        .filter(|e| e.organization_id == state.organization.id)
        .ok_or_else(|| ApiError::not_found(&what))
}

pub(crate) async fn destination(
    state: &State,
    id: String,
) -> Result<(DestinationRecord, EnvironmentRecord), ApiError> {
    let what = format!("destination {id}");
    let record = state
        .db(move |s| s.destination(&id))
        .await?
        .ok_or_else(|| ApiError::not_found(&what))?;
    let env = environment(state, record.environment_id.clone()).await?;
    Ok((record, env))
}

/// The fields a request may change, validated one by one.
#[derive(Default)]
struct Changes {
    name: Option<String>,
    data_format: Option<String>,
    endpoint: Option<Option<String>>,
    token: Option<Option<String>>,
    method: Option<String>,
    auth_credential: Option<Option<String>>,
}

fn changes(fields: &Map<String, Value>, allowed: &[&str]) -> Result<Changes, ApiError> {
    only_fields(fields, allowed)?;
    let required = |key: &str| -> Result<Option<String>, ApiError> {
        match string_field(fields, key)? {
            None => Ok(None),
            Some(None) => Err(ApiError::bad_request(format!("`{key}` cannot be null"))),
            Some(Some(v)) => Ok(Some(v)),
        }
    };
    let name = required("name")?;
    if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::bad_request(
            "`name` must not be empty: partners see it",
        ));
    }
    let data_format = required("dataFormat")?;
    if let Some(f) = &data_format
        && !DATA_FORMATS.contains(&f.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "`dataFormat` {f:?} is not one of {}",
            DATA_FORMATS.join(", ")
        )));
    }
    let method = required("verificationMethod")?;
    if let Some(m) = &method
        && m != "POST"
        && m != "GET"
    {
        return Err(ApiError::bad_request(format!(
            "`verificationMethod` {m:?} must be POST or GET"
        )));
    }
    let token = string_field(fields, "verificationToken")?;
    if let Some(Some(t)) = &token {
        VerificationToken::new(t.clone())
            .map_err(|e| ApiError::bad_request(format!("`verificationToken`: {e}")))?;
    }
    Ok(Changes {
        name,
        data_format,
        endpoint: string_field(fields, "endpoint")?,
        token,
        method,
        auth_credential: string_field(fields, "authCredential")?,
    })
}

/// A credential may be linked only if it exists in the destination's own environment.
async fn check_credential(
    state: &State,
    id: &str,
    env: &EnvironmentRecord,
) -> Result<(), ApiError> {
    let lookup = id.to_owned();
    let credential = state
        .db(move |s| s.auth_credential(&lookup))
        .await?
        .filter(|c| c.organization_id == state.organization.id)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`authCredential`: no auth credential {id} exists in this organization"
            ))
        })?;
    if credential.environment_id != env.id {
        return Err(ApiError::bad_request(format!(
            "`authCredential`: auth credential {id} belongs to another environment; link a credential of this destination's environment ({})",
            env.flag
        )));
    }
    Ok(())
}

/// Endpoint rules of PROTOCOL.md section 1.
async fn check_endpoint(
    state: &State,
    endpoint: &str,
    env: &EnvironmentRecord,
) -> Result<(), ApiError> {
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| ApiError::bad_request(format!("`endpoint` {endpoint:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ApiError::bad_request(
            "`endpoint` must be an http:// or https:// URL with a host",
        ));
    }
    let requires_tls = env
        .flag
        .parse::<Environment>()
        .map(Environment::requires_tls)
        .unwrap_or(true);
    if requires_tls && url.scheme() != "https" {
        return Err(ApiError::bad_request(
            "Production and staging destinations must use HTTPS",
        ));
    }
    let (endpoint, org) = (endpoint.to_owned(), state.organization.id.clone());
    if state
        .db(move |s| s.endpoint_taken_elsewhere(&endpoint, &org))
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Destination endpoint is not available.",
        ));
    }
    Ok(())
}

/// Applies validated changes to a record; a new endpoint, token or auth credential clears the
/// verified mark.
fn apply(state: &State, record: &mut DestinationRecord, changes: Changes) -> Result<(), ApiError> {
    if let Some(name) = changes.name {
        record.name = name;
    }
    if let Some(format) = changes.data_format {
        record.data_format = format;
    }
    if let Some(method) = changes.method {
        record.verification_method = method;
    }
    if let Some(endpoint) = changes.endpoint
        && endpoint != record.endpoint
    {
        record.endpoint = endpoint;
        record.verified_at = None;
    }
    if let Some(credential) = changes.auth_credential
        && credential != record.auth_credential
    {
        record.auth_credential = credential;
        record.verified_at = None;
    }
    if let Some(token) = changes.token {
        let same = match (&token, &record.verification_token) {
            (Some(new), Some(sealed)) => open_token(state, record, sealed)? == *new,
            (None, None) => true,
            _ => false,
        };
        if !same {
            record.verification_token = token.map(|t| {
                state
                    .config
                    .master_key
                    .seal(&token_context(&record.id), t.as_bytes())
            });
            record.verified_at = None;
        }
    }
    record.updated_at = now_millis();
    Ok(())
}

async fn list(state: AppState, Path(env_id): Path<String>) -> Result<Response, ApiError> {
    let state = state.0;
    let env = environment(&state, env_id).await?;
    let id = env.id.clone();
    let records = state.db(move |s| s.destinations(&id)).await?;
    Ok(ok(
        StatusCode::OK,
        Value::Array(records.iter().map(|d| view(d, &env)).collect()),
    ))
}

async fn create(
    state: AppState,
    Path(env_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let state = state.0;
    let env = environment(&state, env_id).await?;
    let record = create_in(&state, &env, &payload(&body)?, None).await?;
    Ok(ok(StatusCode::CREATED, view(&record, &env)))
}

/// The environment must be enabled for the organization (`enabled_environments`).
fn check_enabled(state: &State, env: &EnvironmentRecord) -> Result<(), ApiError> {
    if state.config.environment_enabled(&env.flag) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the {} environment is not enabled for this organization: add it to enabled_environments in the engine's configuration",
                env.flag
            ),
        ))
    }
}

/// Creates a destination in `env` from validated fields and stores it; `setup_step` marks one
/// the dashboard's wizard saved half-way.
pub(crate) async fn create_in(
    state: &State,
    env: &EnvironmentRecord,
    fields: &Map<String, Value>,
    setup_step: Option<i64>,
) -> Result<DestinationRecord, ApiError> {
    check_enabled(state, env)?;
    let changes = changes(fields, FIELDS)?;
    if changes.name.is_none() {
        return Err(ApiError::bad_request("`name` is required: partners see it"));
    }
    if let Some(Some(endpoint)) = &changes.endpoint {
        check_endpoint(state, endpoint, env).await?;
    }
    if let Some(Some(credential)) = &changes.auth_credential {
        check_credential(state, credential, env).await?;
    }
    let now = now_millis();
    let mut record = DestinationRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: state.organization.id.clone(),
        environment_id: env.id.clone(),
        name: String::new(),
        data_format: "JSON".into(),
        endpoint: None,
        verification_token: None,
        verification_method: "POST".into(),
        auth_credential: None,
        verified_at: None,
        created_at: now,
        updated_at: now,
        setup_step,
    };
    apply(state, &mut record, changes)?;
    let stored = record.clone();
    state.db(move |s| s.insert_destination(&stored)).await?;
    tracing::info!(destination = %record.id, environment = %env.flag, "destination created");
    Ok(record)
}

/// A stored destination with the request's changes validated and applied (not saved).
pub(crate) async fn changed(
    state: &State,
    id: String,
    fields: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(DestinationRecord, EnvironmentRecord), ApiError> {
    let (mut record, env) = destination(state, id).await?;
    let changes = changes(fields, allowed)?;
    if let Some(Some(endpoint)) = &changes.endpoint {
        check_endpoint(state, endpoint, &env).await?;
    }
    if let Some(Some(credential)) = &changes.auth_credential
        && record.auth_credential.as_ref() != Some(credential)
    {
        check_credential(state, credential, &env).await?;
    }
    apply(state, &mut record, changes)?;
    Ok((record, env))
}

/// Moves a destination the wizard is still setting up to another environment: the endpoint
/// must pass that environment's rules, a credential of the old environment is unlinked, and the
/// verified mark goes. A destination out of the wizard keeps its environment: its logs and
/// partners belong to it.
pub(crate) async fn move_to(
    state: &State,
    record: &mut DestinationRecord,
    env: &EnvironmentRecord,
) -> Result<(), ApiError> {
    if record.environment_id == env.id {
        return Ok(());
    }
    if record.setup_step.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the environment of a destination that has been set up cannot change: create a new destination in the other environment",
        ));
    }
    check_enabled(state, env)?;
    if let Some(endpoint) = &record.endpoint {
        check_endpoint(state, endpoint, env).await?;
    }
    record.environment_id = env.id.clone();
    record.auth_credential = None;
    record.verified_at = None;
    record.updated_at = now_millis();
    Ok(())
}

/// Saves a changed destination; it may have been deleted meanwhile.
pub(crate) async fn save(state: &State, record: &DestinationRecord) -> Result<(), ApiError> {
    let stored = record.clone();
    if state.db(move |s| s.update_destination(&stored)).await? {
        Ok(())
    } else {
        Err(ApiError::not_found(&format!("destination {}", record.id)))
    }
}

async fn read(state: AppState, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (record, env) = destination(&state.0, id).await?;
    Ok(ok(StatusCode::OK, view(&record, &env)))
}

async fn update(
    state: AppState,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let state = state.0;
    let (record, env) = changed(&state, id, &payload(&body)?, FIELDS).await?;
    save(&state, &record).await?;
    Ok(ok(StatusCode::OK, view(&record, &env)))
}

async fn remove(state: AppState, Path(id): Path<String>) -> Result<Response, ApiError> {
    let state = state.0;
    let what = format!("destination {id}");
    let deleted = id.clone();
    if !state.db(move |s| s.delete_destination(&id)).await? {
        return Err(ApiError::not_found(&what));
    }
    Ok(ok(StatusCode::OK, json!({"id": deleted, "deleted": true})))
}

/// Verify and Save: merge the body's endpoint, token and method with the record, send the
/// challenge, and save the merged record as verified only if the endpoint passes.
async fn verify(
    state: AppState,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let state = state.0;
    let (record, env) = verify_and_save(&state, id, &payload(&body)?).await?;
    Ok(ok(StatusCode::OK, view(&record, &env)))
}

/// Verify and Save (the API's and the dashboard's): merges `fields` (endpoint, token, method)
/// with the record, sends the challenge, and saves the merged record as verified (and set up)
/// only if the endpoint passes. A failure is a 422 `Verification failed: <reason>`.
pub(crate) async fn verify_and_save(
    state: &State,
    id: String,
    fields: &Map<String, Value>,
) -> Result<(DestinationRecord, EnvironmentRecord), ApiError> {
    let (mut record, env) = changed(state, id, fields, VERIFY_FIELDS).await?;
    let Some(endpoint) = record.endpoint.clone() else {
        return Err(ApiError::bad_request(
            "Verify and Save needs an endpoint: set `endpoint` first",
        ));
    };
    let Some(sealed) = record.verification_token.clone() else {
        return Err(ApiError::bad_request(
            "Verify and Save needs a verification token: set `verificationToken` first",
        ));
    };
    let token = open_token(state, &record, &sealed)?;
    let url = reqwest::Url::parse(&endpoint)
        .map_err(|e| ApiError::bad_request(format!("`endpoint`: {e}")))?;
    let method = if record.verification_method == "GET" {
        Method::Get
    } else {
        Method::Post
    };
    let failed = |reason: String| {
        tracing::info!(destination = %record.id, %reason, "verification failed");
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Verification failed: {reason}"),
        )
    };
    let client = state.fresh_client(&url).await.map_err(failed)?;
    let credential = crate::present::linked_credential(state, &record)
        .await
        .map_err(failed)?;
    crate::present::verify(state, &client, &url, &token, method, credential.as_ref())
        .await
        .map_err(failed)?;
    record.verified_at = Some(now_millis());
    record.setup_step = None;
    save(state, &record).await?;
    tracing::info!(destination = %record.id, "destination verified");
    Ok((record, env))
}
