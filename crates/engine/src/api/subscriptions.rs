//! Subscriptions and their filters as Redox's Platform API serves them:
//! `GET|POST /platform/v1/environments/{environmentId}/subscriptions`,
//! `GET|PATCH|DELETE /platform/v1/subscriptions/{subscriptionId}` (PATCH `{"status":
//! "paused"|"active"}` is Wharf's: Redox pauses from its dashboard only), and the v0 filters:
//! `GET|POST /platform/v0/subscriptions/{subscriptionId}/filters` and
//! `DELETE /platform/v0/subscriptions/{subscriptionId}/filters/{filterId}`.

use super::models::{Envelope, ErrorBody, MessagePayload};
use super::{Body, ok};
use crate::app::subscriptions::{self as core, FilterInput, Rule};
use crate::app::{Engine, EngineError, rfc3339_text};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wharf_protocol::Environment;
use wharf_protocol::platform::{FilterAction, SubscriptionStatus};
use wharf_store::engine::{FilterRecord, SubscriptionFilter, SubscriptionRecord};

/// A source or destination as a subscription names it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionEnd {
    pub id: String,
    pub environment_flag: Environment,
}

/// A subscription as Redox returns it, with its id and Wharf's `status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    /// Numeric, as Redox's filter and alert paths take it.
    pub id: i64,
    pub source: SubscriptionEnd,
    pub destination: SubscriptionEnd,
    pub data_model: String,
    /// Always `null`: a deleted subscription is gone.
    pub deleted_at: Option<String>,
    /// Wharf: `active`, or `paused` (its messages held in order).
    pub status: SubscriptionStatus,
    /// Wharf.
    pub created_at: String,
    /// Wharf.
    pub updated_at: String,
}

impl SubscriptionView {
    fn new(s: &SubscriptionRecord, flag: Environment) -> Self {
        SubscriptionView {
            id: s.id,
            source: SubscriptionEnd {
                id: s.source_id.clone(),
                environment_flag: flag,
            },
            destination: SubscriptionEnd {
                id: s.destination_id.clone(),
                environment_flag: flag,
            },
            data_model: s.data_model.clone(),
            deleted_at: None,
            status: if s.paused {
                SubscriptionStatus::Paused
            } else {
                SubscriptionStatus::Active
            },
            created_at: rfc3339_text(s.created_at),
            updated_at: rfc3339_text(s.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionPayload {
    pub subscription: SubscriptionView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionsPayload {
    pub subscriptions: Vec<SubscriptionView>,
}

/// `{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IdRef {
    pub id: String,
}

/// A create: `{source: {id}, destination: {id}, dataModel}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionBody {
    pub source: IdRef,
    pub destination: IdRef,
    pub data_model: String,
}

/// A change: `{"status": "paused"|"active"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionChange {
    pub status: SubscriptionStatus,
}

/// Redox's listing query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    /// Page, from 0.
    #[serde(rename = "_page")]
    pub page: Option<usize>,
    /// Per page, at most 50 (the default).
    #[serde(rename = "_count")]
    pub count: Option<usize>,
    #[serde(rename = "sourceId")]
    pub source_id: Option<String>,
    #[serde(rename = "destinationId")]
    pub destination_id: Option<String>,
    #[serde(rename = "dataModel")]
    pub data_model: Option<String>,
    /// Every subscription here is of this engine's one organization: another id lists none.
    #[serde(rename = "sourceOrganizationId")]
    pub source_organization_id: Option<String>,
    #[serde(rename = "destinationOrganizationId")]
    pub destination_organization_id: Option<String>,
    #[serde(rename = "connectingOrganizationId")]
    pub connecting_organization_id: Option<String>,
}

/// Subscribes a source to a destination for a data model (both in this environment). An
/// existing subscription of the same three is answered as it is.
#[utoipa::path(operation_id = "subscriptions_create", post, path = "/platform/v1/environments/{environmentId}/subscriptions",
    tag = "Subscriptions", params(("environmentId" = String, Path)), request_body = SubscriptionBody,
    responses((status = 200, body = Envelope<SubscriptionPayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn create(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    Body(body): Body<SubscriptionBody>,
) -> Result<Json<Envelope<SubscriptionPayload>>, EngineError> {
    let env = crate::app::destinations::environment(&engine, &env_id).await?;
    let record = core::create(
        &engine,
        &env,
        &body.source.id,
        &body.destination.id,
        &body.data_model,
    )
    .await?;
    Ok(ok(SubscriptionPayload {
        subscription: SubscriptionView::new(&record, env.flag),
    }))
}

/// The environment's subscriptions, filtered and paged as Redox's listing.
#[utoipa::path(operation_id = "subscriptions_list", get, path = "/platform/v1/environments/{environmentId}/subscriptions",
    tag = "Subscriptions", params(("environmentId" = String, Path), SubscriptionQuery),
    responses((status = 200, body = Envelope<SubscriptionsPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    Query(query): Query<SubscriptionQuery>,
) -> Result<Json<Envelope<SubscriptionsPayload>>, EngineError> {
    let other_org = [
        &query.source_organization_id,
        &query.destination_organization_id,
        &query.connecting_organization_id,
    ]
    .iter()
    .any(|o| o.as_ref().is_some_and(|o| *o != engine.organization.id));
    let filter = SubscriptionFilter {
        source_id: query.source_id,
        destination_id: query.destination_id,
        data_model: query.data_model,
    };
    let (env, records) = core::list(
        &engine,
        &env_id,
        filter,
        query.page.unwrap_or(0),
        query.count.unwrap_or(core::MAX_PAGE),
    )
    .await?;
    let subscriptions = if other_org {
        Vec::new()
    } else {
        records
            .iter()
            .map(|s| SubscriptionView::new(s, env.flag))
            .collect()
    };
    Ok(ok(SubscriptionsPayload { subscriptions }))
}

async fn view(
    engine: &Engine,
    record: &SubscriptionRecord,
) -> Result<SubscriptionView, EngineError> {
    let env = crate::app::destinations::environment(engine, &record.environment_id).await?;
    Ok(SubscriptionView::new(record, env.flag))
}

/// One subscription (Wharf).
#[utoipa::path(operation_id = "subscriptions_read", get, path = "/platform/v1/subscriptions/{subscriptionId}", tag = "Subscriptions",
    params(("subscriptionId" = i64, Path)),
    responses((status = 200, body = Envelope<SubscriptionPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read(
    State(engine): State<Engine>,
    Path(id): Path<i64>,
) -> Result<Json<Envelope<SubscriptionPayload>>, EngineError> {
    let record = core::read(&engine, id).await?;
    Ok(ok(SubscriptionPayload {
        subscription: view(&engine, &record).await?,
    }))
}

/// Pauses (its messages held in order, not dropped) or resumes a subscription (Wharf).
#[utoipa::path(operation_id = "subscriptions_update", patch, path = "/platform/v1/subscriptions/{subscriptionId}", tag = "Subscriptions",
    params(("subscriptionId" = i64, Path)), request_body = SubscriptionChange,
    responses((status = 200, body = Envelope<SubscriptionPayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update(
    State(engine): State<Engine>,
    Path(id): Path<i64>,
    Body(body): Body<SubscriptionChange>,
) -> Result<Json<Envelope<SubscriptionPayload>>, EngineError> {
    let paused = body.status == SubscriptionStatus::Paused;
    let record = core::set_paused(&engine, id, paused).await?;
    Ok(ok(SubscriptionPayload {
        subscription: view(&engine, &record).await?,
    }))
}

/// Deletes a subscription and its filter.
#[utoipa::path(operation_id = "subscriptions_remove", delete, path = "/platform/v1/subscriptions/{subscriptionId}", tag = "Subscriptions",
    params(("subscriptionId" = i64, Path)),
    responses((status = 200, body = Envelope<MessagePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(engine): State<Engine>,
    Path(id): Path<i64>,
) -> Result<Json<Envelope<MessagePayload>>, EngineError> {
    core::delete(&engine, id).await?;
    Ok(ok(MessagePayload::deleted("Subscription", id)))
}

// ---- filters (v0) ----

/// The link of a filter to its subscription.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterLink {
    pub data_model: String,
    /// Always `null`: a filter applies to every event type of its data model.
    pub event_type: Option<String>,
    pub destination_id: String,
    pub source_id: String,
    pub filter_settings_id: String,
}

/// A filter as Redox's v0 filters return it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterView {
    pub id: String,
    /// `v0`.
    pub filter_version: &'static str,
    pub created_at: String,
    pub updated_at: String,
    /// How many times it was saved, from 1.
    pub version: i64,
    pub name: String,
    pub organization_id: String,
    pub environment_id: String,
    pub action: FilterAction,
    /// Wharf has no user accounts of its own: `null`.
    pub creating_user_id: Option<String>,
    pub last_updating_user_id: Option<String>,
    pub deleted_at: Option<String>,
    pub deleting_user_id: Option<String>,
    pub rules: Vec<Rule>,
    pub filter_links: Vec<FilterLink>,
}

impl FilterView {
    fn new(f: &FilterRecord, s: &SubscriptionRecord) -> Self {
        FilterView {
            id: f.id.clone(),
            filter_version: "v0",
            created_at: rfc3339_text(f.created_at),
            updated_at: rfc3339_text(f.updated_at),
            version: f.version,
            name: f.name.clone(),
            organization_id: f.organization_id.clone(),
            environment_id: f.environment_id.clone(),
            action: f.action,
            creating_user_id: None,
            last_updating_user_id: None,
            deleted_at: f.deleted_at.map(rfc3339_text),
            deleting_user_id: None,
            rules: core::rules(f),
            filter_links: vec![FilterLink {
                data_model: s.data_model.clone(),
                event_type: None,
                destination_id: s.destination_id.clone(),
                source_id: s.source_id.clone(),
                filter_settings_id: f.id.clone(),
            }],
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FiltersPayload {
    pub filters: Vec<FilterView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FilterPayload {
    pub filter: FilterView,
}

/// What a filter deletion did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterDeleted {
    pub message: String,
    pub filter_id: String,
    pub subscription_id: i64,
}

/// The filter of a create or update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterFields {
    /// Present: update this filter.
    pub id: Option<String>,
    pub name: String,
    /// The subscription's environment, if given.
    pub environment_id: Option<String>,
    pub action: FilterAction,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// `{"filter": {...}}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FilterBody {
    pub filter: FilterFields,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    /// Also the deleted filters.
    #[serde(rename = "showDeleted")]
    pub show_deleted: Option<bool>,
}

/// A subscription's filter (and, with `showDeleted`, its deleted ones).
#[utoipa::path(operation_id = "filters_list", get, path = "/platform/v0/subscriptions/{subscriptionId}/filters", tag = "Filters",
    params(("subscriptionId" = i64, Path), FilterQuery),
    responses((status = 200, body = Envelope<FiltersPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn filters(
    State(engine): State<Engine>,
    Path(id): Path<i64>,
    Query(query): Query<FilterQuery>,
) -> Result<Json<Envelope<FiltersPayload>>, EngineError> {
    let subscription = core::read(&engine, id).await?;
    let filters = core::filters(&engine, id, query.show_deleted.unwrap_or(false)).await?;
    Ok(ok(FiltersPayload {
        filters: filters
            .iter()
            .map(|f| FilterView::new(f, &subscription))
            .collect(),
    }))
}

/// Creates the subscription's filter, or updates it (`filter.id` present).
#[utoipa::path(operation_id = "filters_save", post, path = "/platform/v0/subscriptions/{subscriptionId}/filters", tag = "Filters",
    params(("subscriptionId" = i64, Path)), request_body = FilterBody,
    responses((status = 200, body = Envelope<FilterPayload>), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "it has a filter: send its id", body = ErrorBody)))]
pub(super) async fn save_filter(
    State(engine): State<Engine>,
    Path(id): Path<i64>,
    Body(body): Body<FilterBody>,
) -> Result<Json<Envelope<FilterPayload>>, EngineError> {
    let subscription = core::read(&engine, id).await?;
    let fields = body.filter;
    if fields
        .environment_id
        .as_ref()
        .is_some_and(|e| *e != subscription.environment_id)
    {
        return Err(EngineError::bad_request(format!(
            "`filter.environmentId` is not subscription {id}'s environment ({})",
            subscription.environment_id
        )));
    }
    let saved = core::save_filter(
        &engine,
        id,
        FilterInput {
            id: fields.id,
            name: fields.name,
            action: fields.action,
            rules: fields.rules,
        },
    )
    .await?;
    Ok(ok(FilterPayload {
        filter: FilterView::new(&saved, &subscription),
    }))
}

/// Deletes the subscription's filter: its messages flow unfiltered.
#[utoipa::path(operation_id = "filters_remove", delete, path = "/platform/v0/subscriptions/{subscriptionId}/filters/{filterId}", tag = "Filters",
    params(("subscriptionId" = i64, Path), ("filterId" = String, Path)),
    responses((status = 200, body = Envelope<FilterDeleted>), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_filter(
    State(engine): State<Engine>,
    Path((id, filter_id)): Path<(i64, String)>,
) -> Result<Json<Envelope<FilterDeleted>>, EngineError> {
    core::delete_filter(&engine, id, &filter_id).await?;
    Ok(ok(FilterDeleted {
        message: MessagePayload::deleted("Filter", &filter_id).message,
        filter_id,
        subscription_id: id,
    }))
}
