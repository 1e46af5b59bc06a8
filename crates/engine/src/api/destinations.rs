//! Destinations, as Redox's Platform API serves them:
//! `GET|POST /platform/v1/environments/{environmentId}/destinations`,
//! `GET|PATCH|DELETE /platform/v1/destinations/{destinationId}`, and Verify and Save at
//! `POST /platform/v1/destinations/{destinationId}/verify`.
//!
//! The body of a create or update is the destination object as Redox returns it (see
//! [`DestinationBody`]): what it may change goes to the core; its read-only fields must agree
//! with the path.

use super::models::{
    DestinationBody, DestinationPayload, DestinationView, DestinationsPayload, Envelope, ErrorBody,
    MessagePayload, VerifyBody,
};
use super::{Body, ok};
use crate::app::destinations::{self as core, DestinationChanges};
use crate::app::{Engine, EngineError};
use axum::Json;
use axum::extract::{Path, State};
use wharf_store::engine::{DestinationRecord, EnvironmentRecord};

impl DestinationBody {
    /// The changes it asks for, after checking its read-only fields against the destination
    /// (`id`, when there is one yet) and environment they must agree with.
    fn changes(
        self,
        id: Option<&str>,
        env: &EnvironmentRecord,
    ) -> Result<DestinationChanges, EngineError> {
        if let (Some(given), Some(id)) = (&self.id, id)
            && given != id
        {
            return Err(EngineError::bad_request(format!(
                "`id` {given} contradicts the path's destination {id}; leave it out or send the same id"
            )));
        }
        if let Some(environment) = &self.environment {
            if let Some(given) = &environment.id
                && *given != env.id
            {
                return Err(EngineError::bad_request(format!(
                    "`environment.id` {given} is not this destination's environment ({}); a destination's environment cannot change: create it in the other environment",
                    env.id
                )));
            }
            if let Some(flag) = environment.environment_flag
                && flag != env.flag
            {
                return Err(EngineError::bad_request(format!(
                    "`environment.environmentFlag` {flag} is not this destination's environment ({})",
                    env.flag
                )));
            }
        }
        if self
            .cloud_provider_settings
            .as_ref()
            .is_some_and(|v| !v.is_null())
        {
            return Err(EngineError::bad_request(
                "`cloudProviderSettings`: Wharf delivers to URL endpoints only; leave it out or null",
            ));
        }
        Ok(DestinationChanges {
            name: self.name,
            data_format: self.data_format,
            endpoint: self.endpoint,
            verification_token: self.verification_token,
            verification_method: self.verification_method,
            auth_credential: self.auth_credential,
        })
    }
}

fn one(
    record: &DestinationRecord,
    env: &EnvironmentRecord,
) -> Json<super::models::Envelope<DestinationPayload>> {
    ok(DestinationPayload {
        destination: DestinationView::new(record, env),
    })
}

/// The destinations of one environment.
#[utoipa::path(operation_id = "destinations_list", get, path = "/platform/v1/environments/{environmentId}/destinations",
    tag = "Destinations", params(("environmentId" = String, Path)),
    responses((status = 200, body = Envelope<DestinationsPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
) -> Result<Json<Envelope<DestinationsPayload>>, EngineError> {
    let (env, records) = core::list(&engine, &env_id).await?;
    Ok(ok(DestinationsPayload {
        destinations: records
            .iter()
            .map(|d| DestinationView::new(d, &env))
            .collect(),
    }))
}

/// Creates a destination in the environment; only `name` is required.
#[utoipa::path(operation_id = "destinations_create", post, path = "/platform/v1/environments/{environmentId}/destinations",
    tag = "Destinations", params(("environmentId" = String, Path)), request_body = DestinationBody,
    responses((status = 200, body = Envelope<DestinationPayload>), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub(super) async fn create(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    Body(body): Body<DestinationBody>,
) -> Result<Json<Envelope<DestinationPayload>>, EngineError> {
    let env = core::environment(&engine, &env_id).await?;
    let changes = body.changes(None, &env)?;
    let record = core::create(&engine, &env, changes, None).await?;
    Ok(one(&record, &env))
}

/// One destination.
#[utoipa::path(operation_id = "destinations_read", get, path = "/platform/v1/destinations/{destinationId}", tag = "Destinations",
    params(("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<DestinationPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<DestinationPayload>>, EngineError> {
    let (record, env) = core::destination(&engine, &id).await?;
    Ok(one(&record, &env))
}

/// Changes a destination; fields left out stay. A new endpoint, token or auth credential
/// clears the verified mark (run Verify and Save again).
#[utoipa::path(operation_id = "destinations_update", patch, path = "/platform/v1/destinations/{destinationId}", tag = "Destinations",
    params(("destinationId" = String, Path)), request_body = DestinationBody,
    responses((status = 200, body = Envelope<DestinationPayload>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn update(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Body(body): Body<DestinationBody>,
) -> Result<Json<Envelope<DestinationPayload>>, EngineError> {
    let (_, env) = core::destination(&engine, &id).await?;
    let changes = body.changes(Some(&id), &env)?;
    let (record, env) = core::update(&engine, &id, changes).await?;
    Ok(one(&record, &env))
}

/// Deletes a destination and its queue.
#[utoipa::path(operation_id = "destinations_remove", delete, path = "/platform/v1/destinations/{destinationId}", tag = "Destinations",
    params(("destinationId" = String, Path)),
    responses((status = 200, body = Envelope<MessagePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<MessagePayload>>, EngineError> {
    core::delete(&engine, &id).await?;
    Ok(ok(MessagePayload::deleted("Destination", &id)))
}

/// Verify and Save: sends the challenge to the endpoint (with the body's endpoint, token and
/// method, merged with the destination's) and saves them, verified, only if it passes.
#[utoipa::path(operation_id = "destinations_verify", post, path = "/platform/v1/destinations/{destinationId}/verify",
    tag = "Destinations", params(("destinationId" = String, Path)), request_body = VerifyBody,
    responses((status = 200, body = Envelope<DestinationPayload>),
        (status = 422, description = "the endpoint did not pass", body = ErrorBody)))]
pub(super) async fn verify(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Body(body): Body<VerifyBody>,
) -> Result<Json<Envelope<DestinationPayload>>, EngineError> {
    let changes = DestinationChanges {
        endpoint: body.endpoint.map(Some),
        verification_token: body.verification_token.map(Some),
        verification_method: body.verification_method,
        ..Default::default()
    };
    let (record, env) = core::verify_and_save(&engine, &id, changes).await?;
    Ok(one(&record, &env))
}
