//! Destinations (docs/PROTOCOL.md sections 1 and 2): create, change, move between environments (the
//! setup wizard only), delete, and Verify and Save.
//!
//! The verification token is sealed with the master key before it is stored and is never
//! returned. Changing the endpoint, the token or the linked auth credential (an id of the same
//! environment, or none) clears the verified mark. Verify and Save saves nothing unless
//! verification succeeds.

use super::{Engine, EngineError, SendError, open_token, token_context};
use wharf_delivery::Method;
use wharf_protocol::VerificationToken;
use wharf_protocol::platform::{DataFormat, VerificationMethod};
use wharf_store::engine::{DestinationRecord, EnvironmentRecord};

/// The setup wizard's steps, as Redox names them (step 1 first): a destination the dashboard
/// saved half-way resumes at one of them.
pub const SETUP_STEPS: [&str; 7] = [
    "Name",
    "Environment",
    "Data format",
    "Endpoint",
    "Verification token",
    "Auth credential",
    "Verify and Save",
];

/// What a request asks to change on a destination; `None` leaves a field as it is, and
/// `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationChanges {
    pub name: Option<String>,
    pub data_format: Option<DataFormat>,
    pub endpoint: Option<Option<String>>,
    pub verification_token: Option<Option<String>>,
    pub verification_method: Option<VerificationMethod>,
    pub auth_credential: Option<Option<String>>,
}

impl DestinationChanges {
    /// Only what Verify and Save may change before it sends its challenge.
    pub fn for_verification(&self) -> Result<(), EngineError> {
        if self.name.is_some() || self.data_format.is_some() || self.auth_credential.is_some() {
            return Err(EngineError::bad_request(
                "Verify and Save takes only `endpoint`, `verificationToken` and `verificationMethod`; change the other fields with an update first",
            ));
        }
        Ok(())
    }

    /// Checks what can be checked without the store: a non-empty name, a valid token.
    fn check(&self) -> Result<(), EngineError> {
        if self.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
            return Err(EngineError::bad_request(
                "`name` must not be empty: partners see it",
            ));
        }
        if let Some(Some(t)) = &self.verification_token {
            VerificationToken::new(t.clone())
                .map_err(|e| EngineError::bad_request(format!("`verificationToken`: {e}")))?;
            // Wharf's rule, stricter than Redox's pages: the token is all that stands between
            // the destination and anyone who guesses it.
            if let Some(problem) = wharf_config::weak_secret(t) {
                return Err(EngineError::bad_request(format!(
                    "`verificationToken` {problem}"
                )));
            }
        }
        Ok(())
    }
}

/// An environment of this organization, or `NotFound`.
pub async fn environment(engine: &Engine, id: &str) -> Result<EnvironmentRecord, EngineError> {
    let lookup = id.to_owned();
    engine
        .db(move |s| s.environment(&lookup))
        .await?
        .filter(|e| e.organization_id == engine.organization.id)
        .ok_or_else(|| EngineError::not_found(format!("environment {id}")))
}

/// The organization's environments.
pub async fn environments(engine: &Engine) -> Result<Vec<EnvironmentRecord>, EngineError> {
    let org = engine.organization.id.clone();
    engine.db(move |s| s.environments(&org)).await
}

/// A destination of this organization with its environment, or `NotFound`.
pub async fn destination(
    engine: &Engine,
    id: &str,
) -> Result<(DestinationRecord, EnvironmentRecord), EngineError> {
    let record = engine.destination_record(id).await?;
    let env = environment(engine, &record.environment_id).await?;
    Ok((record, env))
}

/// The destinations of one environment of this organization.
pub async fn list(
    engine: &Engine,
    env_id: &str,
) -> Result<(EnvironmentRecord, Vec<DestinationRecord>), EngineError> {
    let env = environment(engine, env_id).await?;
    let id = env.id.clone();
    let records = engine.db(move |s| s.destinations(&id)).await?;
    Ok((env, records))
}

/// A credential may be linked only if it exists in the destination's own environment.
async fn check_credential(
    engine: &Engine,
    id: &str,
    env: &EnvironmentRecord,
) -> Result<(), EngineError> {
    let lookup = id.to_owned();
    let credential = engine
        .db(move |s| s.auth_credential(&lookup))
        .await?
        .filter(|c| c.organization_id == engine.organization.id)
        .ok_or_else(|| {
            EngineError::bad_request(format!(
                "`authCredential`: no auth credential {id} exists in this organization"
            ))
        })?;
    if credential.environment_id != env.id {
        return Err(EngineError::bad_request(format!(
            "`authCredential`: auth credential {id} belongs to another environment; link a credential of this destination's environment ({})",
            env.flag
        )));
    }
    Ok(())
}

/// Endpoint rules of docs/PROTOCOL.md section 1.
async fn check_endpoint(
    engine: &Engine,
    endpoint: &str,
    env: &EnvironmentRecord,
) -> Result<(), EngineError> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| {
        EngineError::bad_request(format!("`endpoint` {endpoint:?} is not a URL: {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(EngineError::bad_request(
            "`endpoint` must be an http:// or https:// URL with a host",
        ));
    }
    if env.flag.requires_tls() && url.scheme() != "https" {
        return Err(EngineError::bad_request(
            "Production and staging destinations must use HTTPS",
        ));
    }
    let (endpoint, org) = (endpoint.to_owned(), engine.organization.id.clone());
    if engine
        .db(move |s| s.endpoint_taken_elsewhere(&endpoint, &org))
        .await?
    {
        return Err(EngineError::conflict(
            "Destination endpoint is not available.",
        ));
    }
    Ok(())
}

/// Applies validated changes to a record; a new endpoint, token or auth credential clears the
/// verified mark.
fn apply(
    engine: &Engine,
    record: &mut DestinationRecord,
    changes: DestinationChanges,
) -> Result<(), EngineError> {
    if let Some(name) = changes.name {
        record.name = name;
    }
    if let Some(format) = changes.data_format {
        record.data_format = format;
    }
    if let Some(method) = changes.verification_method {
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
    if let Some(token) = changes.verification_token {
        let same = match (&token, &record.verification_token) {
            (Some(new), Some(sealed)) => open_token(engine, record, sealed)? == *new,
            (None, None) => true,
            _ => false,
        };
        if !same {
            record.verification_token = token.map(|t| {
                engine
                    .config
                    .master_key
                    .seal(&token_context(&record.id), t.as_bytes())
            });
            record.verified_at = None;
        }
    }
    record.updated_at = engine.now_millis();
    Ok(())
}

/// The environment must be enabled for the organization (`enabled_environments`).
fn check_enabled(engine: &Engine, env: &EnvironmentRecord) -> Result<(), EngineError> {
    if engine.config.environment_enabled(env.flag) {
        Ok(())
    } else {
        Err(EngineError::Forbidden(format!(
            "the {} environment is not enabled for this organization: add it to enabled_environments in the engine's configuration",
            env.flag
        )))
    }
}

/// Creates a destination in `env` and stores it; `setup_step` marks one the dashboard's wizard
/// saved half-way.
pub async fn create(
    engine: &Engine,
    env: &EnvironmentRecord,
    changes: DestinationChanges,
    setup_step: Option<i64>,
) -> Result<DestinationRecord, EngineError> {
    check_enabled(engine, env)?;
    changes.check()?;
    if changes.name.is_none() {
        return Err(EngineError::bad_request(
            "`name` is required: partners see it",
        ));
    }
    if let Some(Some(endpoint)) = &changes.endpoint {
        check_endpoint(engine, endpoint, env).await?;
    }
    if let Some(Some(credential)) = &changes.auth_credential {
        check_credential(engine, credential, env).await?;
    }
    let now = engine.now_millis();
    let mut record = DestinationRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: engine.organization.id.clone(),
        environment_id: env.id.clone(),
        name: String::new(),
        data_format: DataFormat::Json,
        endpoint: None,
        verification_token: None,
        verification_method: VerificationMethod::Post,
        auth_credential: None,
        verified_at: None,
        created_at: now,
        updated_at: now,
        setup_step,
    };
    apply(engine, &mut record, changes)?;
    let stored = record.clone();
    engine.db(move |s| s.insert_destination(&stored)).await?;
    tracing::info!(destination = %record.id, environment = %env.flag, "destination created");
    Ok(record)
}

/// A stored destination with the changes validated and applied (not saved).
pub async fn changed(
    engine: &Engine,
    id: &str,
    changes: DestinationChanges,
) -> Result<(DestinationRecord, EnvironmentRecord), EngineError> {
    let (mut record, env) = destination(engine, id).await?;
    changes.check()?;
    if let Some(Some(endpoint)) = &changes.endpoint {
        check_endpoint(engine, endpoint, &env).await?;
    }
    if let Some(Some(credential)) = &changes.auth_credential
        && record.auth_credential.as_ref() != Some(credential)
    {
        check_credential(engine, credential, &env).await?;
    }
    apply(engine, &mut record, changes)?;
    Ok((record, env))
}

/// Changes a destination and saves it.
pub async fn update(
    engine: &Engine,
    id: &str,
    changes: DestinationChanges,
) -> Result<(DestinationRecord, EnvironmentRecord), EngineError> {
    let (record, env) = changed(engine, id, changes).await?;
    save(engine, &record).await?;
    Ok((record, env))
}

/// Moves a destination the wizard is still setting up to another environment: the endpoint
/// must pass that environment's rules, a credential of the old environment is unlinked, and the
/// verified mark goes. A destination out of the wizard keeps its environment: its logs and
/// partners belong to it.
pub async fn move_to(
    engine: &Engine,
    record: &mut DestinationRecord,
    env: &EnvironmentRecord,
) -> Result<(), EngineError> {
    if record.environment_id == env.id {
        return Ok(());
    }
    if record.setup_step.is_none() {
        return Err(EngineError::conflict(
            "the environment of a destination that has been set up cannot change: create a new destination in the other environment",
        ));
    }
    check_enabled(engine, env)?;
    if let Some(endpoint) = &record.endpoint {
        check_endpoint(engine, endpoint, env).await?;
    }
    record.environment_id = env.id.clone();
    record.auth_credential = None;
    record.verified_at = None;
    record.updated_at = engine.now_millis();
    Ok(())
}

/// Saves a changed destination; it may have been deleted meanwhile.
pub async fn save(engine: &Engine, record: &DestinationRecord) -> Result<(), EngineError> {
    let stored = record.clone();
    if engine.db(move |s| s.update_destination(&stored)).await? {
        engine.signals.changed();
        Ok(())
    } else {
        Err(EngineError::not_found(format!("destination {}", record.id)))
    }
}

/// Deletes a destination of this organization and erases its logs: bodies, attempts and the
/// answers' first bytes are PHI that must not outlive it.
pub async fn delete(engine: &Engine, id: &str) -> Result<(), EngineError> {
    engine.destination_record(id).await?;
    let target = id.to_owned();
    if !engine.db(move |s| s.delete_destination(&target)).await? {
        return Err(EngineError::not_found(format!("destination {id}")));
    }
    engine.signals.changed();
    tracing::info!(destination = %id, "destination deleted");
    Ok(())
}

/// Verify and Save: merges `changes` (endpoint, token, method) with the record, sends the
/// challenge, and saves the merged record as verified (and set up) only if the endpoint
/// passes. A failure is `VerificationFailed` with the reason.
pub async fn verify_and_save(
    engine: &Engine,
    id: &str,
    changes: DestinationChanges,
) -> Result<(DestinationRecord, EnvironmentRecord), EngineError> {
    changes.for_verification()?;
    let (mut record, env) = changed(engine, id, changes).await?;
    let Some(endpoint) = record.endpoint.clone() else {
        return Err(EngineError::bad_request(
            "Verify and Save needs an endpoint: set `endpoint` first",
        ));
    };
    // Redox's Verify and Save needs the token, whether or not a credential is linked: a
    // destination with only a credential can be saved but not verified until it has one.
    let Some(sealed) = record.verification_token.clone() else {
        return Err(EngineError::bad_request(
            "Verify and Save needs a verification token: set `verificationToken` first",
        ));
    };
    let token = open_token(engine, &record, &sealed)?;
    let url = reqwest::Url::parse(&endpoint)
        .map_err(|e| EngineError::bad_request(format!("`endpoint`: {e}")))?;
    let method = match record.verification_method {
        VerificationMethod::Get => Method::Get,
        VerificationMethod::Post => Method::Post,
    };
    let failed = |reason: SendError| {
        tracing::info!(destination = %record.id, %reason, "verification failed");
        EngineError::VerificationFailed(reason.to_string())
    };
    // Read before anything is sent: a store that cannot be read is 503, not a failed check.
    let credential = match &record.auth_credential {
        None => None,
        Some(id) => Some(
            super::credentials::load_credential(engine, id)
                .await?
                .ok_or_else(|| failed(SendError::CredentialGone(id.clone())))?,
        ),
    };
    let client = engine
        .fresh_client(&url)
        .await
        .map_err(|e| failed(e.into()))?;
    super::present::verify(engine, &client, &url, &token, method, credential.as_ref())
        .await
        .map_err(failed)?;
    record.verified_at = Some(engine.now_millis());
    record.setup_step = None;
    save(engine, &record).await?;
    tracing::info!(destination = %record.id, "destination verified");
    Ok((record, env))
}
