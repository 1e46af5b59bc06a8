//! `GET /platform/v1/organizations` and `GET /platform/v1/organizations/{orgId}/environments`.

use super::{ApiError, State, ok};
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<State> {
    Router::new()
        .route("/platform/v1/organizations", get(list))
        .route(
            "/platform/v1/organizations/{org_id}/environments",
            get(environments),
        )
}

async fn list(
    axum::extract::State(state): axum::extract::State<State>,
) -> Result<Response, ApiError> {
    let organizations = state.db(|s| s.organizations()).await?;
    let payload: Vec<Value> = organizations
        .into_iter()
        .map(|o| json!({"id": o.id, "name": o.name, "alertEmail": o.alert_email}))
        .collect();
    Ok(ok(StatusCode::OK, Value::Array(payload)))
}

async fn environments(
    axum::extract::State(state): axum::extract::State<State>,
    Path(org_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = org_id.clone();
    let environments = state.db(move |s| s.environments(&id)).await?;
    if environments.is_empty() {
        return Err(ApiError::not_found(&format!("organization {org_id}")));
    }
    let payload: Vec<Value> = environments
        .into_iter()
        .map(|e| json!({"id": e.id, "name": e.name, "environmentFlag": e.flag, "organizationId": e.organization_id}))
        .collect();
    Ok(ok(StatusCode::OK, Value::Array(payload)))
}
