//! Traffic alert rules, as Redox's alerts v2: `GET|POST
//! /platform/v2/environments/{environmentId}/alerts` and `GET|PATCH|DELETE
//! .../alerts/{alertId}`, answering `payload.alerts[]` and `payload.alert` (the single key is
//! UNCONFIRMED in Redox's docs); and their links to subscriptions, as Redox's alert links:
//! `GET|POST .../alertLinks` and `GET|PATCH|DELETE .../alertLinks/{alertLinkId}`, answering
//! `payload.alertLinks[]` and `payload.alertLink`. Wharf adds `notification.type` `webhook`
//! (with `configuration.url`), `status` on a rule (`active`|`paused`, as on a link), a
//! rule's `alertLinks` (its links, read only) and `breached`, and the thresholds of
//! `low-traffic` and `retry-threshold` (`trafficThreshold`, `retryThreshold`).

use super::models::{Envelope, ErrorBody, MessagePayload};
use super::{Body, ok};
use crate::app::alert_rules::{self as core, Notification, Rule, RuleInput};
use crate::app::{Engine, EngineError};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wharf_store::engine::AlertLinkRecord;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct AlertTypeCode {
    /// `no-traffic`, `error-threshold`, `low-traffic`, `retry-threshold` or (Wharf's)
    /// `queue-paused`.
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
    /// The rule's links to subscriptions (made through `alertLinks`). With none, the rule
    /// counts every log of its environment; with some, only its active links' logs.
    pub alert_links: Vec<AlertLinkView>,
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

fn view(engine: &Engine, r: Rule, links: &[AlertLinkRecord]) -> AlertView {
    let alert_links = links
        .iter()
        .filter(|l| l.alert_id == r.id)
        .map(link_view)
        .collect();
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
        alert_links,
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
    let links = core::links(&engine, &env_id, None).await?;
    Ok(ok(AlertsPayload {
        alerts: rules
            .into_iter()
            .map(|r| view(&engine, r, &links))
            .collect(),
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
        alert: view(&engine, rule, &[]),
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
    let links = core::links(&engine, &env_id, Some(&id)).await?;
    Ok(ok(AlertPayload {
        alert: view(&engine, rule, &links),
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
    let links = core::links(&engine, &env_id, Some(&id)).await?;
    Ok(ok(AlertPayload {
        alert: view(&engine, rule, &links),
    }))
}

/// Deletes an alert rule and its links.
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

/// What a link is assigned to: an alert rule (`kind` is always `alert`).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub id: String,
    /// `alert`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A subscription by id: a number, or its digits as a string (Redox's examples write both).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRef {
    #[schema(value_type = i64, example = 8675309)]
    pub id: serde_json::Value,
}

/// The body of a link's create (`assignment` and `subscription` required; `status` Wharf's,
/// `active` by default) or change (`status`; `assignment` and `subscription`, if given, must
/// be the link's own: a link is not moved, it is deleted and made again).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertLinkBody {
    pub assignment: Option<Assignment>,
    pub subscription: Option<SubscriptionRef>,
    /// `active` or `paused`: a paused link is kept, but its subscription is not watched.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertLinkView {
    pub id: String,
    pub assignment: Assignment,
    pub subscription: LinkedSubscription,
    /// `active` or `paused`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkedSubscription {
    pub id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertLinkPayload {
    pub alert_link: AlertLinkView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertLinksPayload {
    pub alert_links: Vec<AlertLinkView>,
}

fn link_view(l: &AlertLinkRecord) -> AlertLinkView {
    AlertLinkView {
        id: l.id.clone(),
        assignment: Assignment {
            id: l.alert_id.clone(),
            kind: Some("alert".to_owned()),
        },
        subscription: LinkedSubscription {
            id: l.subscription_id,
        },
        status: if l.active { "active" } else { "paused" },
    }
}

fn subscription_id(s: &SubscriptionRef) -> Result<i64, EngineError> {
    s.id.as_i64()
        .or_else(|| s.id.as_str().and_then(|t| t.parse().ok()))
        .ok_or_else(|| {
            EngineError::bad_request(format!(
                "`subscription.id` {} is not a subscription id: give the number GET .../subscriptions answers",
                s.id
            ))
        })
}

fn assigned_alert(a: &Assignment) -> Result<&str, EngineError> {
    match a.kind.as_deref() {
        None | Some("alert") => Ok(&a.id),
        Some(other) => Err(EngineError::bad_request(format!(
            "`assignment.kind` {other:?} is not alert: a link assigns an alert rule"
        ))),
    }
}

/// The environment's alert links.
#[utoipa::path(operation_id = "alert_links_list", get, path = "/platform/v2/environments/{environmentId}/alertLinks",
    tag = "Alerts", params(("environmentId" = String, Path)),
    responses((status = 200, body = Envelope<AlertLinksPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn list_links(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
) -> Result<Json<Envelope<AlertLinksPayload>>, EngineError> {
    let links = core::links(&engine, &env_id, None).await?;
    Ok(ok(AlertLinksPayload {
        alert_links: links.iter().map(link_view).collect(),
    }))
}

/// Links an alert rule to a subscription of its environment: the rule then watches that
/// subscription's logs (with its other active links'), not the whole environment's.
#[utoipa::path(operation_id = "alert_links_create", post, path = "/platform/v2/environments/{environmentId}/alertLinks",
    tag = "Alerts", params(("environmentId" = String, Path)), request_body = AlertLinkBody,
    responses((status = 200, body = Envelope<AlertLinkPayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn create_link(
    State(engine): State<Engine>,
    Path(env_id): Path<String>,
    Body(body): Body<AlertLinkBody>,
) -> Result<Json<Envelope<AlertLinkPayload>>, EngineError> {
    let assignment = body.assignment.ok_or_else(|| {
        EngineError::bad_request(
            "`assignment` is required: {\"id\": \"<alert id>\", \"kind\": \"alert\"}",
        )
    })?;
    let subscription = body.subscription.ok_or_else(|| {
        EngineError::bad_request("`subscription` is required: {\"id\": <subscription id>}")
    })?;
    let active = body
        .status
        .as_deref()
        .map(core::status_active)
        .transpose()?
        .unwrap_or(true);
    let link = core::create_link(
        &engine,
        &env_id,
        assigned_alert(&assignment)?,
        subscription_id(&subscription)?,
        active,
    )
    .await?;
    Ok(ok(AlertLinkPayload {
        alert_link: link_view(&link),
    }))
}

/// One alert link.
#[utoipa::path(operation_id = "alert_links_read", get, path = "/platform/v2/environments/{environmentId}/alertLinks/{alertLinkId}",
    tag = "Alerts", params(("environmentId" = String, Path), ("alertLinkId" = String, Path)),
    responses((status = 200, body = Envelope<AlertLinkPayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn read_link(
    State(engine): State<Engine>,
    Path((env_id, id)): Path<(String, String)>,
) -> Result<Json<Envelope<AlertLinkPayload>>, EngineError> {
    let link = core::link(&engine, &env_id, &id).await?;
    Ok(ok(AlertLinkPayload {
        alert_link: link_view(&link),
    }))
}

/// Activates or pauses an alert link (`status`).
#[utoipa::path(operation_id = "alert_links_update", patch, path = "/platform/v2/environments/{environmentId}/alertLinks/{alertLinkId}",
    tag = "Alerts", params(("environmentId" = String, Path), ("alertLinkId" = String, Path)), request_body = AlertLinkBody,
    responses((status = 200, body = Envelope<AlertLinkPayload>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update_link(
    State(engine): State<Engine>,
    Path((env_id, id)): Path<(String, String)>,
    Body(body): Body<AlertLinkBody>,
) -> Result<Json<Envelope<AlertLinkPayload>>, EngineError> {
    let link = core::link(&engine, &env_id, &id).await?;
    if let Some(a) = &body.assignment
        && assigned_alert(a)? != link.alert_id
    {
        return Err(EngineError::bad_request(
            "a link's `assignment` cannot change: delete the link and link the other alert",
        ));
    }
    if let Some(s) = &body.subscription
        && subscription_id(s)? != link.subscription_id
    {
        return Err(EngineError::bad_request(
            "a link's `subscription` cannot change: delete the link and link the other subscription",
        ));
    }
    let link = match body.status.as_deref() {
        Some(status) => {
            core::set_link_active(&engine, &env_id, &id, core::status_active(status)?).await?
        }
        None => link,
    };
    Ok(ok(AlertLinkPayload {
        alert_link: link_view(&link),
    }))
}

/// Deletes an alert link; its alert rule stays.
#[utoipa::path(operation_id = "alert_links_delete", delete, path = "/platform/v2/environments/{environmentId}/alertLinks/{alertLinkId}",
    tag = "Alerts", params(("environmentId" = String, Path), ("alertLinkId" = String, Path)),
    responses((status = 200, body = Envelope<MessagePayload>), (status = 404, body = ErrorBody)))]
pub(super) async fn remove_link(
    State(engine): State<Engine>,
    Path((env_id, id)): Path<(String, String)>,
) -> Result<Json<Envelope<MessagePayload>>, EngineError> {
    core::delete_link(&engine, &env_id, &id).await?;
    Ok(ok(MessagePayload::deleted("Alert link", &id)))
}
