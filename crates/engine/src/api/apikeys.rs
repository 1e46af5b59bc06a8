//! OAuth API keys as Redox's Platform API serves them:
//! `GET|POST /platform/v1/environments/{environmentId}/apikeys` and
//! `GET|PATCH|DELETE /platform/v1/apikeys/{apikeyId}` (Redox's delete path is assumed the
//! same). An answer is `payload.apikey {name, jwksURL, jwkSet, id, environment}`; the `id` is
//! the client ID a token request's assertion names as `iss` and `sub`.

use super::models::{Envelope, EnvironmentRef, ErrorBody, MessagePayload, nullable};
use super::{Body, ok};
use crate::app::apikeys::{self as core, ApiKeyChanges};
use crate::app::{Engine, EngineError, rfc3339_text};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use wharf_store::engine::{ApiKeyRecord, EnvironmentRecord};

/// An OAuth API key as Redox returns it, with Wharf's timestamps.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub name: String,
    #[serde(rename = "jwksURL")]
    pub jwks_url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub jwk_set: Option<Value>,
    /// The client ID.
    pub id: String,
    pub environment: EnvironmentRef,
    /// Wharf.
    pub created_at: String,
    /// Wharf.
    pub updated_at: String,
}

impl ApiKeyView {
    fn new(k: &ApiKeyRecord, env: &EnvironmentRecord) -> Self {
        ApiKeyView {
            name: k.name.clone(),
            jwks_url: k.jwks_url.clone(),
            jwk_set: k
                .jwk_set
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            id: k.id.clone(),
            environment: EnvironmentRef {
                id: Some(env.id.clone()),
                environment_flag: Some(env.flag),
            },
            created_at: rfc3339_text(k.created_at),
            updated_at: rfc3339_text(k.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyPayload {
    pub apikey: ApiKeyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeysPayload {
    pub apikeys: Vec<ApiKeyView>,
}

/// A create or update: `name` (required to create), `jwksURL` and/or `jwkSet`
/// (`{"keys": [{kid, kty, ...}]}`, public keys only); `null` removes one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyBody {
    pub name: Option<String>,
    #[serde(rename = "jwksURL", default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub jwks_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub jwk_set: Option<Option<Value>>,
    /// Read-only fields of the answer, accepted so an answer can be sent back as it is.
    pub id: Option<String>,
    #[serde(rename = "environment")]
    #[schema(value_type = Option<Object>)]
    pub _environment: Option<Value>,
}

impl ApiKeyBody {
    fn changes(self) -> ApiKeyChanges {
        ApiKeyChanges {
            name: self.name,
            jwks_url: self.jwks_url,
            jwk_set: self.jwk_set,
        }
    }
}

fn one(k: &ApiKeyRecord, env: &EnvironmentRecord) -> Json<Envelope<ApiKeyPayload>> {
    ok(ApiKeyPayload {
        apikey: ApiKeyView::new(k, env),
    })
}

/// Creates an OAuth API key in the environment.
#[utoipa::path(operation_id = "apikeys_create", post, path = "/platform/v1/environments/{environmentId}/apikeys",
    tag = "OAuth API keys", params(("environmentId" = String, Path)), request_body = ApiKeyBody,
    responses((status = 200, body = Envelope<ApiKeyPayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn create(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    Body(body): Body<ApiKeyBody>,
) -> Result<Json<Envelope<ApiKeyPayload>>, EngineError> {
    let env = crate::app::destinations::environment(&engine, &env_id).await?;
    let record = core::create(&engine, &env, body.changes()).await?;
    Ok(one(&record, &env))
}

/// The environment's OAuth API keys.
#[utoipa::path(operation_id = "apikeys_list", get, path = "/platform/v1/environments/{environmentId}/apikeys",
    tag = "OAuth API keys", params(("environmentId" = String, Path)),
    responses((status = 200, body = Envelope<ApiKeysPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
) -> Result<Json<Envelope<ApiKeysPayload>>, EngineError> {
    let (env, keys) = core::list(&engine, &env_id).await?;
    Ok(ok(ApiKeysPayload {
        apikeys: keys.iter().map(|k| ApiKeyView::new(k, &env)).collect(),
    }))
}

/// One OAuth API key.
#[utoipa::path(operation_id = "apikeys_read", get, path = "/platform/v1/apikeys/{apikeyId}", tag = "OAuth API keys",
    params(("apikeyId" = String, Path)),
    responses((status = 200, body = Envelope<ApiKeyPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<ApiKeyPayload>>, EngineError> {
    let (record, env) = core::read(&engine, &id).await?;
    Ok(one(&record, &env))
}

/// Changes an OAuth API key; fields left out stay.
#[utoipa::path(operation_id = "apikeys_update", patch, path = "/platform/v1/apikeys/{apikeyId}", tag = "OAuth API keys",
    params(("apikeyId" = String, Path)), request_body = ApiKeyBody,
    responses((status = 200, body = Envelope<ApiKeyPayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Body(body): Body<ApiKeyBody>,
) -> Result<Json<Envelope<ApiKeyPayload>>, EngineError> {
    if body.id.as_ref().is_some_and(|given| *given != id) {
        return Err(EngineError::bad_request(
            "`id` contradicts the path's apikey: leave it out or send the same id",
        ));
    }
    let (record, env) = core::update(&engine, &id, body.changes()).await?;
    Ok(one(&record, &env))
}

/// Deletes an OAuth API key.
#[utoipa::path(operation_id = "apikeys_remove", delete, path = "/platform/v1/apikeys/{apikeyId}", tag = "OAuth API keys",
    params(("apikeyId" = String, Path)),
    responses((status = 200, body = Envelope<MessagePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<MessagePayload>>, EngineError> {
    core::delete(&engine, &id).await?;
    Ok(ok(MessagePayload::deleted("API key", &id)))
}
