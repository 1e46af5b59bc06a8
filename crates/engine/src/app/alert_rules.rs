//! Alert rules (issue 29; Redox's alerts v2): the traffic rules `no-traffic`, `low-traffic`,
//! `error-threshold` and `retry-threshold`, each over a lookback window, and Wharf's
//! `queue-paused` (a destination's queue held by a failing delivery, the config's paused-queue
//! alerts of old); each skipped on ignored weekdays in its time zone, active or paused,
//! notifying by email (the engine's `[smtp]`) or a webhook. The engine evaluates every active
//! traffic rule each `alert_interval`; a `queue-paused` rule is evaluated when the delivery
//! worker reports that a queue may have paused or moved again (`queue_attempted`), so its
//! notice goes out within seconds. Either way a rule notifies once when it goes into breach
//! and once when it recovers (a `queue-paused` rule per queue); the breach is recorded in the
//! store first, so one process notifies, once, and a restart does not notify again.
//!
//! The config's `alert_webhook_url` and `alert_email` become `queue-paused` rules of the
//! `alert_environments` at start (`sync_config`), with fixed ids, so engines starting at once
//! on one database create each once.
//!
//! Alert links (Redox's `alertLinks`) apply a rule to subscriptions, one link per
//! subscription, each active or paused. What a rule counts is the logs created within the
//! window by its actively linked subscriptions; a rule whose links are all paused watches
//! nothing (it is not evaluated, as a paused rule is not); a rule with no link at all counts
//! every log to the destinations of its environment (Wharf's choice: one rule for a whole
//! environment without linking each subscription).

use super::{Engine, EngineError};
use std::str::FromStr;
use wharf_store::engine::{AlertLinkRecord, AlertRuleRecord, CountScope, WindowCounts};

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertType {
    /// No log within the window.
    NoTraffic,
    /// Fewer than `trafficThreshold` logs within the window (Wharf's field).
    LowTraffic,
    /// At least `errorThreshold` failed logs within the window.
    ErrorThreshold,
    /// At least `retryThreshold` logs that needed more than one attempt (Wharf's field).
    RetryThreshold,
    /// A destination's queue is held: its head's delivery failed and is being retried
    /// (Wharf's type; no window, judged per queue as deliveries happen).
    QueuePaused,
}

impl AlertType {
    pub const ALL: [AlertType; 5] = [
        AlertType::NoTraffic,
        AlertType::ErrorThreshold,
        AlertType::LowTraffic,
        AlertType::RetryThreshold,
        AlertType::QueuePaused,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AlertType::NoTraffic => "no-traffic",
            AlertType::LowTraffic => "low-traffic",
            AlertType::ErrorThreshold => "error-threshold",
            AlertType::RetryThreshold => "retry-threshold",
            AlertType::QueuePaused => "queue-paused",
        }
    }

    /// The `alertConfiguration` field holding its threshold, if it has one.
    pub fn threshold_field(self) -> Option<&'static str> {
        match self {
            AlertType::NoTraffic | AlertType::QueuePaused => None,
            AlertType::LowTraffic => Some("trafficThreshold"),
            AlertType::ErrorThreshold => Some("errorThreshold"),
            AlertType::RetryThreshold => Some("retryThreshold"),
        }
    }

    /// Whether `counts` breach a rule of this type with `threshold`.
    pub fn breached(self, counts: WindowCounts, threshold: i64) -> bool {
        match self {
            AlertType::NoTraffic => counts.total == 0,
            AlertType::LowTraffic => counts.total < threshold,
            AlertType::ErrorThreshold => counts.failed >= threshold,
            AlertType::RetryThreshold => counts.retried >= threshold,
            // Not judged by counts: see `queue_attempted`.
            AlertType::QueuePaused => false,
        }
    }
}

impl FromStr for AlertType {
    type Err = EngineError;
    fn from_str(text: &str) -> Result<Self, EngineError> {
        AlertType::ALL
            .into_iter()
            .find(|t| t.code() == text)
            .ok_or_else(|| {
                EngineError::bad_request(format!(
                    "`alertType.code` {text:?} is not one of no-traffic, error-threshold, low-traffic, retry-threshold, queue-paused"
                ))
            })
    }
}

/// Where a rule's notices go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Email { to: Vec<String> },
    Webhook { url: reqwest::Url },
}

/// A rule as the core checks and evaluates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub environment_id: String,
    pub name: String,
    pub alert_type: AlertType,
    /// As given (`PT12H`), and in seconds.
    pub lookback: String,
    pub lookback_seconds: i64,
    pub threshold: Option<i64>,
    pub notification: Notification,
    /// Upper case, as Redox writes them (`SATURDAY`).
    pub ignore_days: Vec<String>,
    pub ignore_holidays: bool,
    pub time_zone: String,
    pub active: bool,
    pub breached_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The lookback a `queue-paused` rule answers when none was given (it uses none).
const QUEUE_PAUSED_LOOKBACK: &str = "PT1M";

const WEEKDAYS: [&str; 7] = [
    "MONDAY",
    "TUESDAY",
    "WEDNESDAY",
    "THURSDAY",
    "FRIDAY",
    "SATURDAY",
    "SUNDAY",
];

/// An ISO 8601 duration of days, hours, minutes and seconds (`PT30M`, `PT12H`, `P3D`), in
/// seconds; `None` if it is not one or is zero.
pub fn iso_duration_seconds(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: i64 = 0;
    let mut take = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut number = String::new();
        let mut allowed = units.iter();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let (_, seconds) = allowed.find(|(u, _)| *u == c)?;
            total = total.checked_add(number.parse::<i64>().ok()?.checked_mul(*seconds)?)?;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    take(days, &[('W', 7 * 86_400), ('D', 86_400)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        take(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    (total > 0).then_some(total)
}

/// The fields of a rule as a caller gives them (the API's body, parsed into values; each
/// `None` keeps what the rule has, on an update).
#[derive(Debug, Clone, Default)]
pub struct RuleInput {
    pub name: Option<String>,
    pub alert_type: Option<String>,
    pub configuration: Option<serde_json::Map<String, serde_json::Value>>,
    pub notification_type: Option<String>,
    pub notification_to: Option<Vec<String>>,
    pub notification_url: Option<String>,
    pub ignore_days: Option<Vec<String>>,
    pub ignore_holidays: Option<bool>,
    pub time_zone: Option<String>,
    pub status: Option<String>,
}

fn config_of(rule: &Rule) -> serde_json::Map<String, serde_json::Value> {
    let mut c = serde_json::Map::new();
    c.insert(
        "alertLookbackISODuration".into(),
        rule.lookback.clone().into(),
    );
    if let (Some(field), Some(n)) = (rule.alert_type.threshold_field(), rule.threshold) {
        c.insert(field.into(), n.into());
    }
    c
}

/// The configuration object of a rule, as answered.
pub fn configuration(rule: &Rule) -> serde_json::Value {
    serde_json::Value::Object(config_of(rule))
}

/// Builds (or, with `existing`, changes) a rule from `input`, checking every field.
fn build(
    engine: &Engine,
    existing: Option<&Rule>,
    environment_id: &str,
    input: RuleInput,
    now: i64,
) -> Result<Rule, EngineError> {
    let name = match (input.name, existing) {
        (Some(n), _) if !n.trim().is_empty() => n.trim().to_owned(),
        (Some(_), _) => return Err(EngineError::bad_request("`name` must not be empty")),
        (None, Some(e)) => e.name.clone(),
        (None, None) => return Err(EngineError::bad_request("`name` is required")),
    };
    let alert_type = match (input.alert_type, existing) {
        (Some(code), _) => code.parse::<AlertType>()?,
        (None, Some(e)) => e.alert_type,
        (None, None) => {
            return Err(EngineError::bad_request(
                "`alertType` is required: {\"code\": \"no-traffic\"} (or error-threshold, low-traffic, retry-threshold, queue-paused)",
            ));
        }
    };
    let configuration = match (input.configuration, existing) {
        (Some(c), _) => c,
        (None, Some(e)) => config_of(e),
        (None, None) if alert_type == AlertType::QueuePaused => serde_json::Map::new(),
        (None, None) => {
            return Err(EngineError::bad_request(
                "`alertConfiguration` is required: {\"alertLookbackISODuration\": \"PT12H\"}",
            ));
        }
    };
    // A `queue-paused` rule has no window: it takes one if given (and answers it), else a
    // minute, and does not use it.
    let lookback = configuration
        .get("alertLookbackISODuration")
        .and_then(|v| v.as_str())
        .or((alert_type == AlertType::QueuePaused).then_some(QUEUE_PAUSED_LOOKBACK))
        .ok_or_else(|| {
            EngineError::bad_request(
                "`alertConfiguration.alertLookbackISODuration` is required, e.g. \"PT30M\", \"PT12H\" or \"P3D\"",
            )
        })?
        .to_owned();
    let lookback_seconds = iso_duration_seconds(&lookback).ok_or_else(|| {
        EngineError::bad_request(format!(
            "`alertConfiguration.alertLookbackISODuration` {lookback:?} is not an ISO 8601 duration like \"PT30M\", \"PT12H\" or \"P3D\""
        ))
    })?;
    let threshold = match alert_type.threshold_field() {
        None => None,
        Some(field) => Some(
            configuration
                .get(field)
                .and_then(serde_json::Value::as_i64)
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    EngineError::bad_request(format!(
                        "`alertConfiguration.{field}` is required for {}: a whole number of logs, at least 1",
                        alert_type.code()
                    ))
                })?,
        ),
    };
    let notification = match (input.notification_type.as_deref(), existing) {
        (Some("email"), _) => {
            let to = input.notification_to.unwrap_or_default();
            if to.is_empty() {
                return Err(EngineError::bad_request(
                    "`notification.configuration.to` lists no address: give the addresses to mail",
                ));
            }
            if engine.config.alerts.smtp.is_none() {
                return Err(EngineError::bad_request(
                    "email notifications need the engine's [smtp] settings (docs/CONFIG.md); configure them or use a webhook",
                ));
            }
            Notification::Email { to }
        }
        (Some("webhook"), _) => {
            let url = input.notification_url.unwrap_or_default();
            let url = reqwest::Url::parse(&url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    EngineError::bad_request(format!(
                        "`notification.configuration.url` {url:?} is not an http(s) URL"
                    ))
                })?;
            Notification::Webhook { url }
        }
        (Some(other), _) => {
            return Err(EngineError::bad_request(format!(
                "`notification.type` {other:?} is not one of email, webhook"
            )));
        }
        (None, Some(e)) => e.notification.clone(),
        (None, None) => {
            return Err(EngineError::bad_request(
                "`notification` is required: {\"type\": \"email\", \"configuration\": {\"to\": [\"oncall@example.com\"]}} or {\"type\": \"webhook\", \"configuration\": {\"url\": \"https://...\"}}",
            ));
        }
    };
    let ignore_days = match (input.ignore_days, existing) {
        (Some(days), _) => days
            .into_iter()
            .map(|d| {
                let upper = d.to_ascii_uppercase();
                if WEEKDAYS.contains(&upper.as_str()) {
                    Ok(upper)
                } else {
                    Err(EngineError::bad_request(format!(
                        "`ignoreDaysOfWeek` {d:?} is not a weekday (MONDAY ... SUNDAY)"
                    )))
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(e)) => e.ignore_days.clone(),
        (None, None) => Vec::new(),
    };
    let time_zone = match (input.time_zone, existing) {
        (Some(tz), _) => tz,
        (None, Some(e)) => e.time_zone.clone(),
        (None, None) => "UTC".to_owned(),
    };
    jiff::tz::TimeZone::get(&time_zone).map_err(|_| {
        EngineError::bad_request(format!(
            "`timeZone` {time_zone:?} is not an IANA time zone like \"America/Chicago\""
        ))
    })?;
    let active = match (input.status.as_deref(), existing) {
        (Some(status), _) => status_active(status)?,
        (None, Some(e)) => e.active,
        (None, None) => true,
    };
    let changed_type = existing.is_some_and(|e| e.alert_type != alert_type);
    Ok(Rule {
        id: existing.map_or_else(|| uuid::Uuid::new_v4().to_string(), |e| e.id.clone()),
        environment_id: environment_id.to_owned(),
        name,
        alert_type,
        lookback,
        lookback_seconds,
        threshold,
        notification,
        ignore_days,
        ignore_holidays: input
            .ignore_holidays
            .or(existing.map(|e| e.ignore_holidays))
            .unwrap_or(false),
        time_zone,
        active,
        // A rule of another type starts afresh.
        breached_at: existing
            .and_then(|e| e.breached_at)
            .filter(|_| !changed_type),
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
    })
}

fn to_record(engine: &Engine, r: &Rule) -> AlertRuleRecord {
    let notification = match &r.notification {
        Notification::Email { to } => {
            serde_json::json!({"type": "email", "configuration": {"to": to}})
        }
        Notification::Webhook { url } => {
            serde_json::json!({"type": "webhook", "configuration": {"url": url.as_str()}})
        }
    };
    AlertRuleRecord {
        id: r.id.clone(),
        organization_id: engine.organization.id.clone(),
        environment_id: r.environment_id.clone(),
        name: r.name.clone(),
        alert_type: r.alert_type.code().to_owned(),
        configuration: configuration(r).to_string(),
        notification: notification.to_string(),
        ignore_days: serde_json::to_string(&r.ignore_days).unwrap_or_default(),
        ignore_holidays: r.ignore_holidays,
        time_zone: r.time_zone.clone(),
        status: if r.active { "active" } else { "paused" }.to_owned(),
        breached_at: r.breached_at,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// A stored rule as the core's; a row it cannot read (written by hand) is an error naming it.
fn from_record(engine: &Engine, rec: AlertRuleRecord) -> Result<Rule, EngineError> {
    let broken = |what: &str| {
        EngineError::Internal(format!("alert rule {} has an unreadable {what}", rec.id))
    };
    let configuration: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&rec.configuration).map_err(|_| broken("configuration"))?;
    let notification: serde_json::Value =
        serde_json::from_str(&rec.notification).map_err(|_| broken("notification"))?;
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let input = RuleInput {
        name: Some(rec.name.clone()),
        alert_type: Some(rec.alert_type.clone()),
        configuration: Some(configuration),
        notification_type: notification["type"].as_str().map(str::to_owned),
        notification_to: Some(strings(&notification["configuration"]["to"])),
        notification_url: notification["configuration"]["url"]
            .as_str()
            .map(str::to_owned),
        ignore_days: serde_json::from_str(&rec.ignore_days).ok(),
        ignore_holidays: Some(rec.ignore_holidays),
        time_zone: Some(rec.time_zone.clone()),
        status: Some(rec.status.clone()),
    };
    // Stored rules were checked when written; reading one back does not need [smtp] again.
    let mut rule = match build_unchecked(engine, &rec, input) {
        Ok(rule) => rule,
        Err(_) => return Err(broken("field")),
    };
    rule.breached_at = rec.breached_at;
    Ok(rule)
}

fn build_unchecked(
    engine: &Engine,
    rec: &AlertRuleRecord,
    mut input: RuleInput,
) -> Result<Rule, EngineError> {
    // An email rule stays readable after [smtp] is removed: checked as a webhook, then put back.
    let email_to = (input.notification_type.as_deref() == Some("email"))
        .then(|| input.notification_to.take().unwrap_or_default());
    if email_to.is_some() {
        input.notification_type = Some("webhook".into());
        input.notification_url = Some("http://email.invalid/".into());
    }
    let mut rule = build(engine, None, &rec.environment_id, input, rec.updated_at)?;
    if let Some(to) = email_to {
        rule.notification = Notification::Email { to };
    }
    rule.id = rec.id.clone();
    rule.created_at = rec.created_at;
    Ok(rule)
}

/// The environment's rules, oldest first.
pub async fn list(engine: &Engine, environment_id: &str) -> Result<Vec<Rule>, EngineError> {
    let env = super::destinations::environment(engine, environment_id).await?;
    let records = engine.db(move |s| s.alert_rules(Some(&env.id))).await?;
    records
        .into_iter()
        .map(|r| from_record(engine, r))
        .collect()
}

/// One rule of the environment, or `NotFound`.
pub async fn get(engine: &Engine, environment_id: &str, id: &str) -> Result<Rule, EngineError> {
    let env = super::destinations::environment(engine, environment_id).await?;
    let lookup = id.to_owned();
    let record = engine
        .db(move |s| s.alert_rule(&lookup))
        .await?
        .filter(|r| r.environment_id == env.id && r.organization_id == engine.organization.id)
        .ok_or_else(|| EngineError::not_found(format!("alert {id}")))?;
    from_record(engine, record)
}

/// Creates a rule in the environment.
pub async fn create(
    engine: &Engine,
    environment_id: &str,
    input: RuleInput,
) -> Result<Rule, EngineError> {
    let env = super::destinations::environment(engine, environment_id).await?;
    let rule = build(engine, None, &env.id, input, engine.now_millis())?;
    let record = to_record(engine, &rule);
    engine.db(move |s| s.insert_alert_rule(&record)).await?;
    tracing::info!(alert = %rule.id, code = rule.alert_type.code(), "alert rule created");
    Ok(rule)
}

/// Changes the given fields of a rule.
pub async fn update(
    engine: &Engine,
    environment_id: &str,
    id: &str,
    input: RuleInput,
) -> Result<Rule, EngineError> {
    let existing = get(engine, environment_id, id).await?;
    let rule = build(
        engine,
        Some(&existing),
        &existing.environment_id,
        input,
        engine.now_millis(),
    )?;
    let record = to_record(engine, &rule);
    if !engine.db(move |s| s.update_alert_rule(&record)).await? {
        return Err(EngineError::not_found(format!("alert {id}")));
    }
    Ok(rule)
}

/// Deletes a rule and its links.
pub async fn delete(engine: &Engine, environment_id: &str, id: &str) -> Result<(), EngineError> {
    get(engine, environment_id, id).await?;
    let lookup = id.to_owned();
    engine.db(move |s| s.delete_alert_rule(&lookup)).await?;
    Ok(())
}

/// `status` of a rule or a link (`active` or `paused`) as whether it is active.
pub fn status_active(status: &str) -> Result<bool, EngineError> {
    match status {
        "active" => Ok(true),
        "paused" => Ok(false),
        other => Err(EngineError::bad_request(format!(
            "`status` {other:?} is not one of active, paused"
        ))),
    }
}

/// The environment's links, or one rule's.
pub async fn links(
    engine: &Engine,
    environment_id: &str,
    alert_id: Option<&str>,
) -> Result<Vec<AlertLinkRecord>, EngineError> {
    let env = super::destinations::environment(engine, environment_id).await?;
    let alert_id = alert_id.map(str::to_owned);
    let records = engine
        .db(move |s| s.alert_links(&env.id, alert_id.as_deref()))
        .await?;
    Ok(records)
}

/// One link of the environment, or `NotFound`.
pub async fn link(
    engine: &Engine,
    environment_id: &str,
    id: &str,
) -> Result<AlertLinkRecord, EngineError> {
    let env = super::destinations::environment(engine, environment_id).await?;
    let lookup = id.to_owned();
    engine
        .db(move |s| s.alert_link(&lookup))
        .await?
        .filter(|l| l.environment_id == env.id && l.organization_id == engine.organization.id)
        .ok_or_else(|| EngineError::not_found(format!("alert link {id}")))
}

/// Links a rule of the environment to a subscription of the same environment (active unless
/// `active` says otherwise). Linking a pair already linked answers that link as it is.
pub async fn create_link(
    engine: &Engine,
    environment_id: &str,
    alert_id: &str,
    subscription_id: i64,
    active: bool,
) -> Result<AlertLinkRecord, EngineError> {
    let rule = get(engine, environment_id, alert_id).await?;
    let subscription = super::subscriptions::read(engine, subscription_id).await?;
    if subscription.environment_id != rule.environment_id {
        return Err(EngineError::bad_request(format!(
            "subscription {subscription_id} is in another environment than alert {alert_id}: link a subscription of environment {}",
            rule.environment_id
        )));
    }
    let now = engine.now_millis();
    let record = AlertLinkRecord {
        id: uuid::Uuid::new_v4().to_string(),
        organization_id: engine.organization.id.clone(),
        environment_id: rule.environment_id.clone(),
        alert_id: rule.id.clone(),
        subscription_id,
        active,
        created_at: now,
        updated_at: now,
    };
    let kept = engine.db(move |s| s.insert_alert_link(&record)).await?;
    tracing::info!(alert = %kept.alert_id, subscription = kept.subscription_id, link = %kept.id, "alert link created");
    Ok(kept)
}

/// Activates or pauses a link.
pub async fn set_link_active(
    engine: &Engine,
    environment_id: &str,
    id: &str,
    active: bool,
) -> Result<AlertLinkRecord, EngineError> {
    link(engine, environment_id, id).await?;
    let (lookup, at) = (id.to_owned(), engine.now_millis());
    if !engine
        .db(move |s| s.set_alert_link_active(&lookup, active, at))
        .await?
    {
        return Err(EngineError::not_found(format!("alert link {id}")));
    }
    link(engine, environment_id, id).await
}

/// Deletes a link (its rule stays).
pub async fn delete_link(
    engine: &Engine,
    environment_id: &str,
    id: &str,
) -> Result<(), EngineError> {
    link(engine, environment_id, id).await?;
    let lookup = id.to_owned();
    if !engine.db(move |s| s.delete_alert_link(&lookup)).await? {
        return Err(EngineError::not_found(format!("alert link {id}")));
    }
    Ok(())
}

/// Whether `at` (ms since the epoch) falls on one of the rule's ignored weekdays in its zone.
pub fn ignored_today(rule: &Rule, at: i64) -> bool {
    let Ok(zone) = jiff::tz::TimeZone::get(&rule.time_zone) else {
        return false;
    };
    let Ok(instant) = jiff::Timestamp::from_millisecond(at) else {
        return false;
    };
    let day = instant.to_zoned(zone).weekday().to_monday_zero_offset() as usize;
    rule.ignore_days.iter().any(|d| d == WEEKDAYS[day])
}

/// Evaluates every active rule now; notifies for each that went into breach or recovered.
/// Answers what changed (rule id, `alert.fired` or `alert.recovered`), for tests and logs.
pub async fn evaluate(engine: &Engine) -> Result<Vec<(String, &'static str)>, EngineError> {
    let now = engine.now_millis();
    let org = engine.organization.id.clone();
    let records = engine.db(|s| s.alert_rules(None)).await?;
    let mut changes = Vec::new();
    for record in records.into_iter().filter(|r| r.organization_id == org) {
        let rule = match from_record(engine, record) {
            Ok(rule) => rule,
            Err(e) => {
                tracing::error!(error = %e, "skipping an alert rule that cannot be read");
                continue;
            }
        };
        // A `queue-paused` rule is judged as deliveries happen (`queue_attempted`).
        if !rule.active || rule.alert_type == AlertType::QueuePaused || ignored_today(&rule, now) {
            continue;
        }
        let window = rule.lookback_seconds.saturating_mul(1000);
        // A traffic rule judges a whole window: not before the rule has existed that long.
        if matches!(
            rule.alert_type,
            AlertType::NoTraffic | AlertType::LowTraffic
        ) && now - rule.created_at < window
        {
            continue;
        }
        let since = now.saturating_sub(window);
        let (env_id, org_id, rule_id) = (rule.environment_id.clone(), org.clone(), rule.id.clone());
        let counted = engine
            .db(move |s| {
                let links = s.alert_links(&env_id, Some(&rule_id))?;
                let linked: Vec<i64> = links
                    .iter()
                    .filter(|l| l.active)
                    .map(|l| l.subscription_id)
                    .collect();
                let counts = if links.is_empty() {
                    let ids: Vec<String> =
                        s.destinations(&env_id)?.into_iter().map(|d| d.id).collect();
                    s.window_counts(&org_id, CountScope::Destinations(&ids), since)?
                } else if linked.is_empty() {
                    // Every link paused: the rule watches nothing.
                    return Ok(None);
                } else {
                    s.window_counts(&org_id, CountScope::Subscriptions(&linked), since)?
                };
                Ok(Some((counts, s.environment(&env_id)?)))
            })
            .await?;
        let Some((counts, environment)) = counted else {
            continue;
        };
        let breached = rule
            .alert_type
            .breached(counts, rule.threshold.unwrap_or(0));
        let id = rule.id.clone();
        let changed = engine
            .db(move |s| s.set_alert_breach(&id, breached.then_some(now)))
            .await?;
        if !changed {
            continue;
        }
        let event = if breached {
            "alert.fired"
        } else {
            "alert.recovered"
        };
        changes.push((rule.id.clone(), event));
        let flag = environment.map(|e| e.flag.to_string()).unwrap_or_default();
        send(
            engine,
            &rule,
            notice(engine, &rule, event, &flag, counts, since, now),
        );
    }
    Ok(changes)
}

/// Sends a rule's notice to where the rule says.
fn send(engine: &Engine, rule: &Rule, notice: super::alerts::Notice) {
    let (webhook, to) = match &rule.notification {
        Notification::Webhook { url } => (Some(url.clone()), Vec::new()),
        Notification::Email { to } => (None, to.clone()),
    };
    engine.alerts.send_notice(webhook, to, notice);
}

/// The delivery worker's report of one attempt at the head (`log_id`, which had failed
/// `head_attempts` times before) of `destination_id`'s queue: `failure` is why it failed, or
/// `None` if the destination accepted it. When the queue may have paused or moved again, the
/// `queue-paused` rules watching it are evaluated at once.
pub async fn queue_attempted(
    engine: &Engine,
    destination_id: &str,
    log_id: &str,
    head_attempts: i64,
    failure: Option<String>,
) {
    if !engine
        .alerts
        .queue_may_have_changed(destination_id, failure.is_none(), head_attempts)
    {
        return;
    }
    if let Err(e) = evaluate_queue(engine, destination_id, log_id, failure).await {
        tracing::error!(destination = %destination_id, error = %e, "could not evaluate the queue-paused alert rules");
    }
}

/// Evaluates the active `queue-paused` rules watching a queue (its environment's, unlinked or
/// linked by an active link to a subscription to it) against what its last attempt did;
/// notifies for each whose state for this queue changed. Answers what changed (rule id,
/// `queue.paused` or `queue.recovered`).
async fn evaluate_queue(
    engine: &Engine,
    destination_id: &str,
    log_id: &str,
    failure: Option<String>,
) -> Result<Vec<(String, &'static str)>, EngineError> {
    let now = engine.now_millis();
    let (id, org) = (destination_id.to_owned(), engine.organization.id.clone());
    let found = engine
        .db(move |s| {
            let Some(destination) = s.destination(&id)? else {
                return Ok(None);
            };
            let Some(environment) = s.environment(&destination.environment_id)? else {
                return Ok(None);
            };
            let mut watching = Vec::new();
            for rule in s.alert_rules(Some(&environment.id))? {
                if rule.organization_id != org || rule.alert_type != AlertType::QueuePaused.code() {
                    continue;
                }
                let links = s.alert_links(&environment.id, Some(&rule.id))?;
                let mut watches = links.is_empty();
                for link in links.iter().filter(|l| l.active) {
                    watches = watches
                        || s.subscription(link.subscription_id)?
                            .is_some_and(|sub| sub.destination_id == destination.id);
                }
                if watches {
                    watching.push(rule);
                }
            }
            Ok(Some((destination, environment, watching)))
        })
        .await?;
    let Some((destination, environment, records)) = found else {
        return Ok(Vec::new());
    };
    let mut changes = Vec::new();
    for record in records {
        let rule = match from_record(engine, record) {
            Ok(rule) => rule,
            Err(e) => {
                tracing::error!(error = %e, "skipping an alert rule that cannot be read");
                continue;
            }
        };
        let (rule_id, dest, log) = (rule.id.clone(), destination.id.clone(), log_id.to_owned());
        let paused = failure.is_some();
        if !rule.active || ignored_today(&rule, now) {
            // Not evaluated, so no notice; but a queue moving again clears its breach, or the
            // rule, active again, would stay silent at that queue's next pause.
            if !paused {
                engine
                    .db(move |s| s.set_queue_breach(&rule_id, &dest, None))
                    .await?;
            }
            continue;
        }
        let changed = engine
            .db(move |s| s.set_queue_breach(&rule_id, &dest, paused.then_some((&*log, now))))
            .await?;
        if !changed {
            continue;
        }
        let event = if paused {
            "queue.paused"
        } else {
            "queue.recovered"
        };
        changes.push((rule.id.clone(), event));
        let queue = QueueNotice {
            event,
            destination_id: &destination.id,
            destination_name: &destination.name,
            environment: environment.flag,
            log_id,
            reason: failure.as_deref(),
            at: now,
        };
        send(engine, &rule, queue.notice(engine, &rule));
    }
    Ok(changes)
}

/// A `queue-paused` rule's notice about one queue.
struct QueueNotice<'a> {
    event: &'static str,
    destination_id: &'a str,
    destination_name: &'a str,
    environment: wharf_protocol::Environment,
    log_id: &'a str,
    /// Why the delivery failed (a paused queue only).
    reason: Option<&'a str>,
    at: i64,
}

impl QueueNotice<'_> {
    fn notice(&self, engine: &Engine, rule: &Rule) -> super::alerts::Notice {
        let at = jiff::Timestamp::from_millisecond(self.at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let (name, id, env, log) = (
            self.destination_name,
            self.destination_id,
            self.environment,
            self.log_id,
        );
        let (subject, text) = match self.reason {
            Some(reason) => (
                format!("[Wharf] {env} queue paused: {name}"),
                format!(
                    "Deliveries to destination {name} ({id}) in {env} are failing, so its queue is \
                     paused: new messages wait behind log {log}, which is retried on the retry \
                     ladder.\n\nLast failure: {reason}\nAt: {at}\n\nResend or stop the log from \
                     the dashboard or the API once you know why.\n\nAlert rule: {} ({}).\n",
                    rule.name, rule.id
                ),
            ),
            None => (
                format!("[Wharf] {env} queue recovered: {name}"),
                format!(
                    "Destination {name} ({id}) in {env} accepted log {log}: its queue is moving \
                     again.\nAt: {at}\n\nAlert rule: {} ({}).\n",
                    rule.name, rule.id
                ),
            ),
        };
        let mut json = serde_json::json!({
            "event": self.event,
            "organization": engine.organization.name,
            "alert": {"id": rule.id, "name": rule.name, "alertType": {"code": rule.alert_type.code()}},
            "destination": {"id": id, "name": name},
            "environment": env,
            "logId": log,
            "at": at,
        });
        if let Some(reason) = self.reason {
            json["reason"] = reason.into();
        }
        super::alerts::Notice {
            event: self.event,
            subject,
            text,
            json,
        }
    }
}

/// The id of the `queue-paused` rule the config makes for an environment and a channel
/// (`webhook` or `email`): fixed, so every engine on one database names the same rule.
fn config_rule_id(environment_id: &str, channel: &str) -> String {
    format!("config-queue-paused-{environment_id}-{channel}")
}

/// Makes the config's paused-queue alerts (`alert_webhook_url`, `alert_email`, for the
/// `alert_environments`) `queue-paused` rules: creates the ones missing (an insert that does
/// nothing if another engine made it first), points existing ones at the config's channel
/// (keeping what an operator changed through the API, such as its status), and deletes those
/// the config no longer asks for.
pub async fn sync_config(engine: &Engine) -> Result<(), EngineError> {
    let alerts = &engine.config.alerts;
    let org = engine.organization.id.clone();
    let environments = engine.db(move |s| s.environments(&org)).await?;
    let now = engine.now_millis();
    for environment in environments {
        let wanted = alerts.environments.contains(&environment.flag);
        let channels = [
            (
                "webhook",
                "alert_webhook_url",
                alerts
                    .webhook_url
                    .clone()
                    .map(|url| Notification::Webhook { url }),
            ),
            (
                "email",
                "alert_email",
                (!alerts.email_to.is_empty()).then(|| Notification::Email {
                    to: alerts.email_to.clone(),
                }),
            ),
        ];
        for (channel, setting, notification) in channels {
            let id = config_rule_id(&environment.id, channel);
            let Some(notification) = notification.filter(|_| wanted) else {
                let gone = id.clone();
                if engine.db(move |s| s.delete_alert_rule(&gone)).await? {
                    tracing::info!(alert = %id, "the config no longer asks for this paused-queue alert rule; deleted");
                }
                continue;
            };
            let rule = Rule {
                id: id.clone(),
                environment_id: environment.id.clone(),
                name: format!("Paused queues ({setting})"),
                alert_type: AlertType::QueuePaused,
                lookback: QUEUE_PAUSED_LOOKBACK.to_owned(),
                lookback_seconds: 60,
                threshold: None,
                notification,
                ignore_days: Vec::new(),
                ignore_holidays: false,
                time_zone: "UTC".to_owned(),
                active: true,
                breached_at: None,
                created_at: now,
                updated_at: now,
            };
            let record = to_record(engine, &rule);
            if engine
                .db(move |s| s.insert_alert_rule_if_absent(&record))
                .await?
            {
                tracing::info!(alert = %id, "paused-queue alert rule created from the config");
                continue;
            }
            let lookup = id.clone();
            let Some(existing) = engine.db(move |s| s.alert_rule(&lookup)).await? else {
                continue;
            };
            let mut existing = from_record(engine, existing)?;
            if existing.notification != rule.notification {
                existing.notification = rule.notification;
                existing.updated_at = now;
                let record = to_record(engine, &existing);
                engine.db(move |s| s.update_alert_rule(&record)).await?;
            }
        }
    }
    Ok(())
}

fn notice(
    engine: &Engine,
    rule: &Rule,
    event: &'static str,
    flag: &str,
    counts: WindowCounts,
    since: i64,
    now: i64,
) -> super::alerts::Notice {
    let at = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let state = if event == "alert.fired" {
        "fired"
    } else {
        "recovered"
    };
    let what = match rule.alert_type {
        AlertType::NoTraffic => "no message".to_owned(),
        AlertType::LowTraffic => format!("fewer than {} messages", rule.threshold.unwrap_or(0)),
        AlertType::ErrorThreshold => {
            format!("{} or more failed messages", rule.threshold.unwrap_or(0))
        }
        AlertType::RetryThreshold => {
            format!("{} or more retried messages", rule.threshold.unwrap_or(0))
        }
        AlertType::QueuePaused => "a paused queue".to_owned(),
    };
    super::alerts::Notice {
        event,
        subject: format!("[Wharf] {flag} alert {state}: {}", rule.name),
        text: format!(
            "Alert rule {} ({}, {}) {state}: it watches for {what} within {}.\n\
             From {} to {}: {} messages, {} failed, {} retried.\n",
            rule.name,
            rule.id,
            rule.alert_type.code(),
            rule.lookback,
            at(since),
            at(now),
            counts.total,
            counts.failed,
            counts.retried
        ),
        json: serde_json::json!({
            "event": event,
            "organization": engine.organization.name,
            "alert": {"id": rule.id, "name": rule.name, "alertType": {"code": rule.alert_type.code()},
                      "alertConfiguration": configuration(rule)},
            "environment": {"id": rule.environment_id, "environmentFlag": flag},
            "window": {"from": at(since), "to": at(now)},
            "counts": {"total": counts.total, "failed": counts.failed, "retried": counts.retried},
            "at": at(now),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_durations() {
        assert_eq!(iso_duration_seconds("PT30M"), Some(1800));
        assert_eq!(iso_duration_seconds("PT12H"), Some(43_200));
        assert_eq!(iso_duration_seconds("P3D"), Some(259_200));
        assert_eq!(iso_duration_seconds("P1DT1H"), Some(90_000));
        for bad in ["", "P", "PT", "12H", "PT0S", "PT1X", "PT1H2", "P1H"] {
            assert_eq!(iso_duration_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn breaches_by_type() {
        let c = |total, failed, retried| WindowCounts {
            total,
            failed,
            retried,
        };
        assert!(AlertType::NoTraffic.breached(c(0, 0, 0), 0));
        assert!(!AlertType::NoTraffic.breached(c(1, 0, 0), 0));
        assert!(AlertType::LowTraffic.breached(c(4, 0, 0), 5));
        assert!(!AlertType::LowTraffic.breached(c(5, 0, 0), 5));
        assert!(AlertType::ErrorThreshold.breached(c(9, 3, 0), 3));
        assert!(!AlertType::ErrorThreshold.breached(c(9, 2, 0), 3));
        assert!(AlertType::RetryThreshold.breached(c(9, 0, 2), 2));
        assert_eq!(
            "low-traffic".parse::<AlertType>().unwrap(),
            AlertType::LowTraffic
        );
        assert!("LOW-TRAFFIC".parse::<AlertType>().is_err());
    }
}
