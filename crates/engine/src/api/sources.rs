//! Sources as Redox's Platform API serves them:
//! `GET|POST /platform/v1/environments/{environmentId}/sources` and
//! `GET|PATCH|DELETE /platform/v1/sources/{sourceId}` (Redox's delete path is assumed the
//! same). A source's `apiKey` is in the answer to its creation only; afterwards it is `null`.
//! Fields of Redox's source that Wharf has no use for (SFTP, secret, EHR, setup state, time
//! zone, service region) are answered empty.

use super::models::{Envelope, EnvironmentRef, ErrorBody, MessagePayload};
use super::{Body, ok};
use crate::app::sources as core;
use crate::app::{Engine, EngineError, rfc3339_text};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use wharf_store::engine::{EnvironmentRecord, SourceRecord};

/// The service regions Redox's source takes (Wharf runs where it runs: the value is checked,
/// not kept).
const SERVICE_REGIONS: &[&str] = &["AWS_USA_EAST_1", "AWS_CAN_CENTRAL", "GCP_USA_CENTRAL_1"];

/// A source as Redox returns it, with Wharf's fields.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceView {
    pub name: String,
    /// The source's id ("client ID"); `Meta.Source.ID` names it.
    pub id: String,
    pub environment: EnvironmentRef,
    pub sftp_username: Option<String>,
    #[serde(rename = "hasSFTPPassword")]
    pub has_sftp_password: bool,
    pub service_region: Option<String>,
    pub data_format: Option<String>,
    pub ehr: Option<String>,
    /// The key the source sends with (`Authorization: Bearer`): only in the answer to its
    /// creation; `null` afterwards, and for a source from the configuration.
    pub api_key: Option<String>,
    pub has_secret: bool,
    #[schema(value_type = Option<Object>)]
    pub setup_state: Option<Value>,
    pub time_zone: Option<String>,
    /// Wharf: made from the engine configuration's `[[sources]]` (changed there only).
    pub from_config: bool,
    /// Wharf.
    pub created_at: String,
    /// Wharf.
    pub updated_at: String,
}

impl SourceView {
    pub fn new(s: &SourceRecord, env: &EnvironmentRecord, api_key: Option<String>) -> Self {
        SourceView {
            name: s.name.clone(),
            id: s.id.clone(),
            environment: EnvironmentRef {
                id: Some(env.id.clone()),
                environment_flag: Some(env.flag),
            },
            sftp_username: None,
            has_sftp_password: false,
            service_region: None,
            data_format: None,
            ehr: None,
            api_key,
            has_secret: false,
            setup_state: None,
            time_zone: None,
            from_config: s.config_name.is_some(),
            created_at: rfc3339_text(s.created_at),
            updated_at: rfc3339_text(s.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourcePayload {
    pub source: SourceView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourcesPayload {
    pub sources: Vec<SourceView>,
}

/// A create (`name` required, `serviceRegion` optional) or a rename (`name`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceBody {
    pub name: Option<String>,
    pub service_region: Option<String>,
}

impl SourceBody {
    fn check_region(&self) -> Result<(), EngineError> {
        match &self.service_region {
            Some(region) if !SERVICE_REGIONS.contains(&region.as_str()) => {
                Err(EngineError::bad_request(format!(
                    "`serviceRegion` {region:?} is not one of {}",
                    SERVICE_REGIONS.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Creates a source in the environment; the answer carries its `apiKey`, this once.
#[utoipa::path(operation_id = "sources_create", post, path = "/platform/v1/environments/{environmentId}/sources",
    tag = "Sources", params(("environmentId" = String, Path)), request_body = SourceBody,
    responses((status = 200, body = Envelope<SourcePayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn create(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    Body(body): Body<SourceBody>,
) -> Result<Json<Envelope<SourcePayload>>, EngineError> {
    body.check_region()?;
    let env = crate::app::destinations::environment(&engine, &env_id).await?;
    let (record, api_key) = core::create(&engine, &env, body.name).await?;
    Ok(ok(SourcePayload {
        source: SourceView::new(&record, &env, Some(api_key)),
    }))
}

/// The environment's sources.
#[utoipa::path(operation_id = "sources_list", get, path = "/platform/v1/environments/{environmentId}/sources",
    tag = "Sources", params(("environmentId" = String, Path)),
    responses((status = 200, body = Envelope<SourcesPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
) -> Result<Json<Envelope<SourcesPayload>>, EngineError> {
    let (env, sources) = core::list(&engine, &env_id).await?;
    Ok(ok(SourcesPayload {
        sources: sources
            .iter()
            .map(|s| SourceView::new(s, &env, None))
            .collect(),
    }))
}

/// One source (without its `apiKey`).
#[utoipa::path(operation_id = "sources_read", get, path = "/platform/v1/sources/{sourceId}", tag = "Sources",
    params(("sourceId" = String, Path)),
    responses((status = 200, body = Envelope<SourcePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<SourcePayload>>, EngineError> {
    let (record, env) = core::read(&engine, &id).await?;
    Ok(ok(SourcePayload {
        source: SourceView::new(&record, &env, None),
    }))
}

/// Renames a source (partial update: `name`).
#[utoipa::path(operation_id = "sources_update", patch, path = "/platform/v1/sources/{sourceId}", tag = "Sources",
    params(("sourceId" = String, Path)), request_body = SourceBody,
    responses((status = 200, body = Envelope<SourcePayload>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "a source from the configuration", body = ErrorBody)))]
pub(super) async fn update(
    State(engine): State<Engine>,
    Path(id): Path<String>,
    Body(body): Body<SourceBody>,
) -> Result<Json<Envelope<SourcePayload>>, EngineError> {
    body.check_region()?;
    let (record, env) = core::rename(&engine, &id, body.name).await?;
    Ok(ok(SourcePayload {
        source: SourceView::new(&record, &env, None),
    }))
}

/// Deletes a source with its key and subscriptions.
#[utoipa::path(operation_id = "sources_remove", delete, path = "/platform/v1/sources/{sourceId}", tag = "Sources",
    params(("sourceId" = String, Path)),
    responses((status = 200, body = Envelope<MessagePayload>), (status = 404, body = ErrorBody),
        (status = 409, description = "a source from the configuration", body = ErrorBody)))]
pub(super) async fn remove(
    State(engine): State<Engine>,
    Path(id): Path<String>,
) -> Result<Json<Envelope<MessagePayload>>, EngineError> {
    core::delete(&engine, &id).await?;
    Ok(ok(MessagePayload::deleted("Source", &id)))
}
