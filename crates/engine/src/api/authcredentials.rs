//! Auth credentials, as Redox's Platform API serves them:
//! `GET /platform/v1/authcredentials/strategies`, `POST /platform/v1/authcredentials`,
//! `GET /platform/v1/environments/{environmentId}/authcredentials`,
//! `GET|PATCH|DELETE /platform/v1/authcredentials/{id}`; and Wharf's
//! `GET /platform/v1/authcredentials/{id}/jwks`, the public half of the credential's signing
//! key, served without the management key (a destination fetches it).
//!
//! A body is flat, as Redox's: `name`, `environmentId`, `authStrategy` and the strategy's own
//! fields side by side; Redox's read-only `organization` is accepted when it names this
//! organization. Secrets read back only as `has<Field>`.

use super::models::{
    CredentialPayload, CredentialSummary, CredentialView, CredentialsPayload, Envelope, ErrorBody,
    MessagePayload, StrategiesPayload, StrategyFields,
};
use super::{Body, ok};
use crate::app::credentials::{self as core, Credential};
use crate::app::{Engine, EngineError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use wharf_auth::keys::jwks_document;
use wharf_auth::strategy::Strategy;
use wharf_store::engine::AuthCredentialRecord;

fn view(
    engine: &Engine,
    record: &AuthCredentialRecord,
    credential: &Credential,
) -> Json<Envelope<CredentialPayload>> {
    ok(CredentialPayload {
        credential: CredentialView {
            summary: CredentialSummary::from(record),
            fields: core::public_fields(engine, record, credential),
        },
    })
}

/// Takes Redox's read-only `organization` out of a body, refusing another organization's.
fn without_organization(
    engine: &Engine,
    mut body: Map<String, Value>,
) -> Result<Map<String, Value>, EngineError> {
    match body.remove("organization") {
        None | Some(Value::Null) => Ok(body),
        Some(Value::String(id)) if id == engine.organization.id => Ok(body),
        Some(other) => Err(EngineError::bad_request(format!(
            "`organization` {other} is not this organization ({}); leave it out",
            engine.organization.id
        ))),
    }
}

/// The strategies and the fields each takes, by Redox's names.
#[utoipa::path(operation_id = "authcredentials_strategies", get, path = "/platform/v1/authcredentials/strategies", tag = "Auth credentials",
    responses((status = 200, body = Envelope<StrategiesPayload>)))]
pub(super) async fn strategies() -> Json<Envelope<StrategiesPayload>> {
    ok(StrategiesPayload {
        strategies: Strategy::ALL
            .iter()
            .map(|s| {
                let fields = s.fields().iter().map(|f| f.name).collect();
                (
                    s.key(),
                    StrategyFields {
                        available_fields: fields,
                    },
                )
            })
            .collect(),
    })
}

/// Creates a credential: `name`, `environmentId`, `authStrategy` and the strategy's fields.
#[utoipa::path(operation_id = "authcredentials_create", post, path = "/platform/v1/authcredentials", tag = "Auth credentials",
    request_body(content = Object, description = "name, environmentId, authStrategy and the strategy's availableFields"),
    responses((status = 200, body = Envelope<CredentialPayload>), (status = 400, body = ErrorBody)))]
pub(super) async fn create(
    State(engine): State<Engine>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<Envelope<CredentialPayload>>, EngineError> {
    let body = without_organization(&engine, body)?;
    let (record, credential) = core::create(&engine, &body).await?;
    Ok(view(&engine, &record, &credential))
}

/// An environment's credentials (metadata only).
#[utoipa::path(operation_id = "authcredentials_list", get, path = "/platform/v1/environments/{environmentId}/authcredentials",
    tag = "Auth credentials", params(("environmentId" = String, Path)),
    responses((status = 200, body = Envelope<CredentialsPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
) -> Result<Json<Envelope<CredentialsPayload>>, EngineError> {
    let credentials = core::list(&engine, &env_id).await?;
    Ok(ok(CredentialsPayload {
        credentials: credentials
            .iter()
            .map(|(record, _)| CredentialSummary::from(record))
            .collect(),
    }))
}

/// One credential: its non-secret fields and `has<Field>` for each secret one.
#[utoipa::path(operation_id = "authcredentials_read", get, path = "/platform/v1/authcredentials/{id}", tag = "Auth credentials",
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<CredentialPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<CredentialPayload>>, EngineError> {
    let (record, credential) = core::read(&engine, &id).await?;
    Ok(view(&engine, &record, &credential))
}

/// Changes some fields (a secret left out keeps its value; `null` removes an optional field);
/// `authStrategy` and `environmentId` cannot change.
#[utoipa::path(operation_id = "authcredentials_update", patch, path = "/platform/v1/authcredentials/{id}", tag = "Auth credentials",
    params(("id" = String, Path)), request_body(content = Object),
    responses((status = 200, body = Envelope<CredentialPayload>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn update(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<Envelope<CredentialPayload>>, EngineError> {
    let body = without_organization(&engine, body)?;
    let (record, credential) = core::update(&engine, &id, &body).await?;
    Ok(view(&engine, &record, &credential))
}

/// Deletes a credential unless a destination links it (409 naming them).
#[utoipa::path(operation_id = "authcredentials_remove", delete, path = "/platform/v1/authcredentials/{id}", tag = "Auth credentials",
    params(("id" = String, Path)),
    responses((status = 200, body = Envelope<MessagePayload>), (status = 404, body = ErrorBody),
        (status = 409, description = "linked by a destination", body = ErrorBody)))]
pub(super) async fn remove(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<MessagePayload>>, EngineError> {
    core::delete(&engine, &id).await?;
    Ok(ok(MessagePayload::deleted("Auth credential", &id)))
}

/// The public half of a credential's signing key, as a JWKS document (not enveloped, no
/// management key: destinations fetch it).
#[utoipa::path(operation_id = "authcredentials_jwks", get, path = "/platform/v1/authcredentials/{id}/jwks", tag = "Auth credentials",
    params(("id" = String, Path)), security(()),
    responses((status = 200, description = "a JWKS document", body = Object),
        (status = 404, body = ErrorBody)))]
pub(super) async fn jwks(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Response, EngineError> {
    let key = core::signing_key(&engine, &id).await?;
    let mut response = axum::Json(jwks_document([&key])).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
