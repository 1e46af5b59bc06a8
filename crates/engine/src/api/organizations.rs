//! `GET /platform/v1/organizations` (Wharf: Redox documents no such route; the organization's
//! id is what the other routes need) and `GET /platform/v1/organizations/{organizationId}/environments`.

use super::models::{
    Envelope, EnvironmentView, EnvironmentsPayload, OrganizationView, OrganizationsPayload,
};
use super::{check_organization, ok};
use crate::app::{Engine, EngineError, destinations};
use axum::Json;
use axum::extract::{Path, State};

/// The organization this engine serves: one, whatever else shares its database.
#[utoipa::path(operation_id = "organizations_list", get, path = "/platform/v1/organizations", tag = "Organizations",
    responses((status = 200, body = Envelope<OrganizationsPayload>)))]
pub(super) async fn list(
    State(engine): State<Engine>,
) -> Result<Json<Envelope<OrganizationsPayload>>, EngineError> {
    let own = engine.organization.id.clone();
    let organizations = engine.db(|s| s.organizations()).await?;
    Ok(ok(OrganizationsPayload {
        organizations: organizations
            .iter()
            .filter(|o| o.id == own)
            .map(OrganizationView::from)
            .collect(),
    }))
}

/// The organization's environments: Development, Staging, Production.
#[utoipa::path(operation_id = "organizations_environments", get, path = "/platform/v1/organizations/{organizationId}/environments",
    tag = "Environments", params(("organizationId" = String, Path)),
    responses((status = 200, body = Envelope<EnvironmentsPayload>),
        (status = 404, body = super::models::ErrorBody)))]
pub(super) async fn environments(
    State(engine): State<Engine>,
    Path(org_id): Path<String>,
) -> Result<Json<Envelope<EnvironmentsPayload>>, EngineError> {
    check_organization(&engine, &org_id)?;
    let environments = destinations::environments(&engine).await?;
    Ok(ok(EnvironmentsPayload {
        environments: environments.iter().map(EnvironmentView::from).collect(),
    }))
}
