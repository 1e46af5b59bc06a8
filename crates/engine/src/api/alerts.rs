//! Traffic alert rules, as Redox's alerts v2: `GET|POST
//! /platform/v2/environments/{environmentId}/alerts` and `GET|PATCH|DELETE
//! .../alerts/{alertId}`, answering `payload.alerts[]` and `payload.alert` (the single key is
//! UNCONFIRMED in Redox's docs). Wharf adds `notification.type` `webhook` (with
//! `configuration.url`), `status` (`active`|`paused`, which Redox sets on its alert links) and
//! `subscriptions` (`[{"id": ...}]`, the links, kept as given), and the thresholds of
//! `low-traffic` and `retry-threshold` (`trafficThreshold`, `retryThreshold`).

use super::models::{Envelope, ErrorBody};
use super::{Body, ok};
use crate::app::alert_rules::{self as core, Notification, Rule, RuleInput};
use crate::app::{Engine, EngineError};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct AlertTypeCode {
    /// `no-traffic`, `error-threshold`, `low-traffic` or `retry-threshold`.
    #[schema(example = "no-traffic")]
    pub code: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationConfiguration {
    /// Email: the addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// Webhook (Wharf): where the JSON notice is POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `type` is `email` (Redox) or `webhook` (Wharf); Redox's create example writes it as
/// `{"code": ...}`, which is accepted too.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    #[serde(rename = "type")]
    #[schema(value_type = Object)]
    pub kind: serde_json::Value,
    pub configuration: NotificationConfiguration,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct AlertLink {
    #[schema(value_type = Object)]
    pub id: serde_json::Value,
}

/// The body of a create (`name`, `alertType`, `alertConfiguration` and `notification`
/// required) or a change (any of them).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertBody {
    pub name: Option<String>,
    pub alert_type: Option<AlertTypeCode>,
    /// `alertLookbackISODuration` (e.g. `PT12H`) and the type's threshold.
    #[schema(value_type = Option<Object>)]
    pub alert_configuration: Option<serde_json::Map<String, serde_json::Value>>,
    pub notification: Option<NotificationView>,
    /// e.g. `["SATURDAY", "SUNDAY"]`
    pub ignore_days_of_week: Option<Vec<String>>,
    /// Accepted and kept; Wharf has no holiday calendar, so it changes nothing.
    pub ignore_holidays: Option<bool>,
    /// IANA, e.g. `America/Adak`; `UTC` by default.
    pub time_zone: Option<String>,
    /// Wharf: `active` (default) or `paused`.
    pub status: Option<String>,
    /// Wharf: the subscriptions the rule is linked to, `[{"id": 66426}]`.
    pub subscriptions: Option<Vec<AlertLink>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertEnvironment {
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertOrganization {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    pub id: String,
    pub name: String,
    pub environment: AlertEnvironment,
    pub organization: AlertOrganization,
    pub alert_type: AlertTypeCode,
    #[schema(value_type = Object)]
    pub alert_configuration: serde_json::Value,
    pub notification: NotificationView,
    pub ignore_days_of_week: Vec<String>,
    pub ignore_holidays: bool,
    pub time_zone: String,
    /// Wharf: `active` or `paused`.
    pub status: &'static str,
    /// Wharf: the linked subscriptions, as given.
    pub subscriptions: Vec<AlertLink>,
    /// Wharf: whether the rule is in breach now (it notified when it went in).
    pub breached: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPayload {
    pub alert: AlertView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsPayload {
    pub alerts: Vec<AlertView>,
}

fn view(engine: &Engine, r: Rule) -> AlertView {
    let notification = match &r.notification {
        Notification::Email { to } => NotificationView {
            id: None,
            kind: "email".into(),
            configuration: NotificationConfiguration {
                to: Some(to.clone()),
                url: None,
            },
        },
        Notification::Webhook { url } => NotificationView {
            id: None,
            kind: "webhook".into(),
            configuration: NotificationConfiguration {
                to: None,
                url: Some(url.to_string()),
            },
        },
    };
    AlertView {
        alert_configuration: core::configuration(&r),
        id: r.id,
        name: r.name,
        environment: AlertEnvironment {
            id: r.environment_id,
        },
        organization: AlertOrganization {
            id: engine.organization.id.clone(),
            name: engine.organization.name.clone(),
        },
        alert_type: AlertTypeCode {
            code: r.alert_type.code().to_owned(),
        },
        notification,
        ignore_days_of_week: r.ignore_days,
        ignore_holidays: r.ignore_holidays,
        time_zone: r.time_zone,
        status: if r.active { "active" } else { "paused" },
        subscriptions: r
            .subscriptions
            .into_iter()
            .map(|id| AlertLink { id })
            .collect(),
        breached: r.breached_at.is_some(),
    }
}

fn input(body: AlertBody) -> Result<RuleInput, EngineError> {
    let (kind, to, url) = match body.notification {
        None => (None, None, None),
        Some(n) => {
            // `"email"`, or Redox's create example's `{"code": "email"}`.
            let kind = n
                .kind
                .as_str()
                .or_else(|| n.kind["code"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    EngineError::bad_request("`notification.type` must be \"email\" or \"webhook\"")
                })?;
            (Some(kind), n.configuration.to, n.configuration.url)
        }
    };
    Ok(RuleInput {
        name: body.name,
        alert_type: body.alert_type.map(|t| t.code),
        configuration: body.alert_configuration,
        notification_type: kind,
        notification_to: to,
        notification_url: url,
        ignore_days: body.ignore_days_of_week,
        ignore_holidays: body.ignore_holidays,
        time_zone: body.time_zone,
        status: body.status,
        subscriptions: body
            .subscriptions
            .map(|s| s.into_iter().map(|r| r.id).collect()),
    })
}

/// The environment's alert rules.
#[utoipa::path(operation_id = "alerts_list", get, path = "/platform/v2/environments/{environmentId}/alerts",
    tag = "Alerts", params(("environmentId" = String, Path)),
    responses((status = 200, body = Envelope<AlertsPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
) -> Result<Json<Envelope<AlertsPayload>>, EngineError> {
    let rules = core::list(&engine, &env_id).await?;
    Ok(ok(AlertsPayload {
        alerts: rules.into_iter().map(|r| view(&engine, r)).collect(),
    }))
}

/// Creates an alert rule.
#[utoipa::path(operation_id = "alerts_create", post, path = "/platform/v2/environments/{environmentId}/alerts",
    tag = "Alerts", params(("environmentId" = String, Path)), request_body = AlertBody,
    responses((status = 200, body = Envelope<AlertPayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn create(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    Body(body): Body<AlertBody>,
) -> Result<Json<Envelope<AlertPayload>>, EngineError> {
    let rule = core::create(&engine, &env_id, input(body)?).await?;
    Ok(ok(AlertPayload {
        alert: view(&engine, rule),
    }))
}

/// One alert rule.
#[utoipa::path(operation_id = "alerts_read", get, path = "/platform/v2/environments/{environmentId}/alerts/{alertId}",
    tag = "Alerts", params(("environmentId" = String, Path), ("alertId" = String, Path)),
    responses((status = 200, body = Envelope<AlertPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read(
    State(engine): State<Engine>,
    Path((env_id, id)): Path<(String, String)>,
) -> Result<Json<Envelope<AlertPayload>>, EngineError> {
    let rule = core::get(&engine, &env_id, &id).await?;
    Ok(ok(AlertPayload {
        alert: view(&engine, rule),
    }))
}

/// Changes the given fields of an alert rule (`status` pauses or resumes it).
#[utoipa::path(operation_id = "alerts_update", patch, path = "/platform/v2/environments/{environmentId}/alerts/{alertId}",
    tag = "Alerts", params(("environmentId" = String, Path), ("alertId" = String, Path)), request_body = AlertBody,
    responses((status = 200, body = Envelope<AlertPayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update(
    State(engine): State<Engine>,
    Path((env_id, id)): Path<(String, String)>,
    Body(body): Body<AlertBody>,
) -> Result<Json<Envelope<AlertPayload>>, EngineError> {
    let rule = core::update(&engine, &env_id, &id, input(body)?).await?;
    Ok(ok(AlertPayload {
        alert: view(&engine, rule),
    }))
}

/// Deletes an alert rule.
#[utoipa::path(operation_id = "alerts_delete", delete, path = "/platform/v2/environments/{environmentId}/alerts/{alertId}",
    tag = "Alerts", params(("environmentId" = String, Path), ("alertId" = String, Path)),
    responses((status = 200, body = Envelope<serde_json::Value>), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(engine): State<Engine>,
    Path((env_id, id)): Path<(String, String)>,
) -> Result<Json<Envelope<serde_json::Value>>, EngineError> {
    core::delete(&engine, &env_id, &id).await?;
    Ok(ok(serde_json::json!({})))
}
