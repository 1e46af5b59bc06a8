//! Subscriptions, the routing rule as Redox has it: (source, destination, data model), source
//! and destination in one environment. No subscription, no transfer; `Meta.Destinations`
//! only narrows a message to some of the subscribed destinations. Create, list (with the
//! filters Redox's listing takes), read, delete, pause and resume; and each subscription's one
//! filter (Redox's v0 filters).
//!
//! Pausing holds the subscription's messages, in order, where they are in their destination's
//! queue (the store keeps them as held: not sent, read back as pending); other subscriptions
//! to the same destination keep flowing. Resuming puts them back where they were, due at once.
//!
//! A filter is `send` (deliver only when every rule holds) or `block-all` (deliver nothing).
//! A rule is a JSONPath into the message, the values it is compared with (exactly,
//! case-sensitive) and `allowList` (true: one of the values found is in the list; false: none
//! is). A blocked message is kept as a log with status `filtered`, never queued, so it holds
//! nothing up. Filters apply to asynchronous messages only, as Redox's.

use super::{Engine, EngineError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, Instant};
use wharf_protocol::platform::FilterAction;
use wharf_store::engine::{
    EnvironmentRecord, FilterRecord, SourceRecord, SubscriptionFilter, SubscriptionRecord,
};

/// Most subscriptions one listing returns (Redox's `_count` maximum).
pub const MAX_PAGE: usize = 50;
/// How long a source's routes are kept at hand for ingestion; local changes clear them.
const ROUTES_TTL: Duration = Duration::from_secs(1);

/// A source's subscriptions for one data model, each with its filter.
/// Shared: ingestion reads a source's routes for every message, and a source subscribed to
/// many destinations has many (copying them per message was a quarter of the request path).
pub type Routes = std::sync::Arc<Vec<(SubscriptionRecord, Option<FilterRecord>)>>;

/// Routes by (source id, data model), with when they were read.
pub type RouteCache =
    std::sync::Mutex<std::collections::HashMap<(String, String), (Routes, Instant)>>;

/// One rule of a filter, as Redox writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// A JSONPath into the message, e.g. `$.Patient.Demographics.FirstName`.
    pub path: String,
    /// The values compared with what the path finds (exactly, case-sensitive).
    pub values: Vec<String>,
    /// `true` (the default): the rule holds when a value found is in `values` ("is in");
    /// `false`: when none is ("is not in").
    #[serde(default = "yes")]
    pub allow_list: bool,
}

fn yes() -> bool {
    true
}

/// A filter as a create or update gives it.
#[derive(Debug, Clone)]
pub struct FilterInput {
    /// Present: replace this filter (it must be the subscription's).
    pub id: Option<String>,
    pub name: String,
    pub action: FilterAction,
    pub rules: Vec<Rule>,
}

/// Forgets every source's routes (a subscription, filter or source changed here).
pub fn forget_routes(engine: &Engine) {
    engine
        .routes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// Where a source's messages of `data_model` go: its subscriptions with their filters.
pub async fn routes(
    engine: &Engine,
    source_id: &str,
    data_model: &str,
) -> Result<Routes, EngineError> {
    let key = (source_id.to_owned(), data_model.to_owned());
    if let Some((routes, at)) = engine
        .routes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        && at.elapsed() < ROUTES_TTL
    {
        return Ok(routes.clone());
    }
    let (source, model) = key.clone();
    let routes = std::sync::Arc::new(engine.db(move |s| s.routes(&source, &model)).await?);
    engine
        .routes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, (routes.clone(), Instant::now()));
    Ok(routes)
}

/// Creates a subscription in `env` (or returns the one that exists): the source and the
/// destination must both be of `env`.
pub async fn create(
    engine: &Engine,
    env: &EnvironmentRecord,
    source_id: &str,
    destination_id: &str,
    data_model: &str,
) -> Result<SubscriptionRecord, EngineError> {
    let data_model = data_model.trim();
    if data_model.is_empty() {
        return Err(EngineError::bad_request(
            "`dataModel` is required, e.g. \"PatientAdmin\"",
        ));
    }
    let (source, _) = super::sources::read(engine, source_id).await.map_err(|_| {
        EngineError::bad_request(format!("`source.id`: source {source_id} does not exist"))
    })?;
    let destination = engine
        .destination_record(destination_id)
        .await
        .map_err(|_| {
            EngineError::bad_request(format!(
                "`destination.id`: destination {destination_id} does not exist"
            ))
        })?;
    if source.environment_id != env.id || destination.environment_id != env.id {
        return Err(EngineError::bad_request(format!(
            "the source and the destination must both be in environment {} ({}): create the subscription in their environment",
            env.id, env.flag
        )));
    }
    subscribe(engine, &source, &destination.id, data_model).await
}

/// Stores a subscription of `source` to a destination of its environment.
pub async fn subscribe(
    engine: &Engine,
    source: &SourceRecord,
    destination_id: &str,
    data_model: &str,
) -> Result<SubscriptionRecord, EngineError> {
    let now = engine.now_millis();
    let record = SubscriptionRecord {
        id: 0,
        organization_id: engine.organization.id.clone(),
        environment_id: source.environment_id.clone(),
        source_id: source.id.clone(),
        destination_id: destination_id.to_owned(),
        data_model: data_model.to_owned(),
        paused: false,
        created_at: now,
        updated_at: now,
    };
    let kept = engine.db(move |s| s.insert_subscription(&record)).await?;
    forget_routes(engine);
    tracing::info!(subscription = kept.id, source = %source.id, destination = %destination_id, data_model, "subscription");
    Ok(kept)
}

/// A subscription of this organization, or `NotFound`.
pub async fn read(engine: &Engine, id: i64) -> Result<SubscriptionRecord, EngineError> {
    engine
        .db(move |s| s.subscription(id))
        .await?
        .filter(|s| s.organization_id == engine.organization.id)
        .ok_or_else(|| EngineError::not_found(format!("subscription {id}")))
}

/// A page of an environment's subscriptions (`page` from 0, at most [`MAX_PAGE`]).
pub async fn list(
    engine: &Engine,
    env_id: &str,
    filter: SubscriptionFilter,
    page: usize,
    count: usize,
) -> Result<(EnvironmentRecord, Vec<SubscriptionRecord>), EngineError> {
    let env = super::destinations::environment(engine, env_id).await?;
    let count = count.clamp(1, MAX_PAGE);
    let lookup = env.id.clone();
    let records = engine
        .db(move |s| s.subscriptions(&lookup, &filter, page * count, count))
        .await?;
    Ok((env, records))
}

/// Deletes a subscription and its filter: the source's next messages of its data model do not
/// go to its destination. Messages it held are queued (they were accepted while it existed).
pub async fn delete(engine: &Engine, id: i64) -> Result<(), EngineError> {
    read(engine, id).await?;
    if !engine.db(move |s| s.delete_subscription(id)).await? {
        return Err(EngineError::not_found(format!("subscription {id}")));
    }
    forget_routes(engine);
    engine.signals.changed();
    tracing::info!(subscription = id, "subscription deleted");
    Ok(())
}

/// Pauses (holding its messages in order) or resumes a subscription.
pub async fn set_paused(
    engine: &Engine,
    id: i64,
    paused: bool,
) -> Result<SubscriptionRecord, EngineError> {
    read(engine, id).await?;
    if !engine
        .db(move |s| s.set_subscription_paused(id, paused))
        .await?
    {
        return Err(EngineError::not_found(format!("subscription {id}")));
    }
    forget_routes(engine);
    engine.signals.changed();
    tracing::info!(subscription = id, paused, "subscription paused or resumed");
    read(engine, id).await
}

/// A subscription's filters (only its current one unless `deleted`).
pub async fn filters(
    engine: &Engine,
    subscription_id: i64,
    deleted: bool,
) -> Result<Vec<FilterRecord>, EngineError> {
    read(engine, subscription_id).await?;
    engine
        .db(move |s| s.filters(subscription_id, deleted))
        .await
}

/// Creates a subscription's filter, or replaces it (`input.id` names the current one).
pub async fn save_filter(
    engine: &Engine,
    subscription_id: i64,
    input: FilterInput,
) -> Result<FilterRecord, EngineError> {
    let subscription = read(engine, subscription_id).await?;
    if input.name.trim().is_empty() {
        return Err(EngineError::bad_request("`filter.name` is required"));
    }
    for (i, rule) in input.rules.iter().enumerate() {
        Path::parse(&rule.path)
            .map_err(|why| EngineError::bad_request(format!("`filter.rules[{i}].path` {why}")))?;
        if rule.values.is_empty() {
            return Err(EngineError::bad_request(format!(
                "`filter.rules[{i}].values` is empty: list the values the rule compares with"
            )));
        }
    }
    let current = engine
        .db(move |s| s.filters(subscription_id, false))
        .await?
        .into_iter()
        .next();
    let id = match (&input.id, &current) {
        (Some(given), Some(current)) if *given == current.id => given.clone(),
        (Some(given), _) => {
            return Err(EngineError::not_found(format!(
                "filter {given} of subscription {subscription_id}"
            )));
        }
        (None, Some(current)) => {
            return Err(EngineError::conflict(format!(
                "subscription {subscription_id} already has filter {}: send its `id` to change it, or delete it first",
                current.id
            )));
        }
        (None, None) => uuid::Uuid::new_v4().to_string(),
    };
    let now = engine.now_millis();
    let record = FilterRecord {
        id,
        subscription_id,
        organization_id: engine.organization.id.clone(),
        environment_id: subscription.environment_id.clone(),
        name: input.name,
        action: input.action,
        rules: serde_json::to_string(&input.rules)
            .map_err(|e| EngineError::internal(e.to_string()))?,
        version: 1,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let kept = engine.db(move |s| s.save_filter(&record)).await?;
    forget_routes(engine);
    Ok(kept)
}

/// Deletes a subscription's filter (kept for `showDeleted`): its messages flow unfiltered.
pub async fn delete_filter(
    engine: &Engine,
    subscription_id: i64,
    filter_id: &str,
) -> Result<(), EngineError> {
    read(engine, subscription_id).await?;
    let lookup = filter_id.to_owned();
    let now = engine.now_millis();
    if !engine
        .db(move |s| s.delete_filter(subscription_id, &lookup, now))
        .await?
    {
        return Err(EngineError::not_found(format!(
            "filter {filter_id} of subscription {subscription_id}"
        )));
    }
    forget_routes(engine);
    Ok(())
}

/// A filter's rules as kept.
pub fn rules(filter: &FilterRecord) -> Vec<Rule> {
    serde_json::from_str(&filter.rules).unwrap_or_default()
}

/// Whether a filter lets `message` through: `block-all` never does; `send` when every rule
/// holds.
pub fn passes(filter: &FilterRecord, message: &Value) -> bool {
    match filter.action {
        FilterAction::BlockAll => false,
        FilterAction::Send => rules(filter).iter().all(|rule| holds(rule, message)),
    }
}

/// Whether one rule holds for `message`: with `allowList`, some value found at its path is
/// one of its values; without, none is (a path that finds nothing holds then).
pub fn holds(rule: &Rule, message: &Value) -> bool {
    let Ok(path) = Path::parse(&rule.path) else {
        return false;
    };
    let found = path.select(message);
    let listed = found
        .iter()
        .any(|v| scalar_text(v).is_some_and(|text| rule.values.contains(&text)));
    listed == rule.allow_list
}

/// A scalar as the text a rule's values are compared with.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The JSONPath subset filters take: `$`, then `.name`, `['name']`, `[n]`, `[*]` and `.*`
/// steps (what Redox's examples use: `$.Patient.Demographics.FirstName`,
/// `$.Patient.Identifiers[*].ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<Step>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Name(String),
    Index(usize),
    All,
}

impl Path {
    /// Parses a path, or says what is wrong with it (a bad request: the path came from one).
    pub fn parse(text: &str) -> Result<Path, EngineError> {
        let rest = text.strip_prefix('$').ok_or_else(|| {
            EngineError::bad_request(format!(
                "{text:?} must start with `$`, e.g. $.Patient.Demographics.FirstName"
            ))
        })?;
        let mut steps = Vec::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '.' => {
                    let start = i + 1;
                    let mut end = start;
                    while let Some(&(j, d)) = chars.peek() {
                        if d == '.' || d == '[' {
                            break;
                        }
                        end = j + d.len_utf8();
                        chars.next();
                    }
                    let name = &rest[start..end.max(start)];
                    match name {
                        "" => {
                            return Err(EngineError::bad_request(format!(
                                "{text:?} has an empty name after `.`"
                            )));
                        }
                        "*" => steps.push(Step::All),
                        _ => steps.push(Step::Name(name.to_owned())),
                    }
                }
                '[' => {
                    let close = rest[i..].find(']').map(|k| i + k).ok_or_else(|| {
                        EngineError::bad_request(format!("{text:?} has a `[` without `]`"))
                    })?;
                    let inner = rest[i + 1..close].trim();
                    let step = if inner == "*" {
                        Step::All
                    } else if let Some(quoted) = inner
                        .strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                    {
                        Step::Name(quoted.to_owned())
                    } else {
                        Step::Index(inner.parse().map_err(|_| {
                            EngineError::bad_request(format!(
                                "{text:?}: `[{inner}]` is not an index, `*` or a quoted name"
                            ))
                        })?)
                    };
                    steps.push(step);
                    while chars.peek().is_some_and(|&(j, _)| j <= close) {
                        chars.next();
                    }
                }
                _ => {
                    return Err(EngineError::bad_request(format!(
                        "{text:?}: unexpected {c:?}; write steps as .name, ['name'], [n] or [*]"
                    )));
                }
            }
        }
        Ok(Path(steps))
    }

    /// The values the path finds in `root`.
    pub fn select<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.0 {
            let mut next = Vec::new();
            for v in current {
                match (step, v) {
                    (Step::Name(n), Value::Object(o)) => next.extend(o.get(n)),
                    (Step::Index(i), Value::Array(a)) => next.extend(a.get(*i)),
                    (Step::All, Value::Array(a)) => next.extend(a.iter()),
                    (Step::All, Value::Object(o)) => next.extend(o.values()),
                    _ => {}
                }
            }
            current = next;
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(path: &str, values: &[&str], allow_list: bool) -> Rule {
        Rule {
            path: path.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            allow_list,
        }
    }

    fn filter(action: FilterAction, rules: &[Rule]) -> FilterRecord {
        FilterRecord {
            id: "f".into(),
            subscription_id: 1,
            organization_id: "o".into(),
            environment_id: "e".into(),
            name: "n".into(),
            action,
            rules: serde_json::to_string(rules).unwrap(),
            version: 1,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
        }
    }

    #[test]
    fn paths_select_names_indexes_and_wildcards() {
        let m = json!({"Patient": {"Identifiers": [{"ID": "1"}, {"ID": "2"}], "Demographics": {"FirstName": "Timothy"}}});
        let get = |p: &str| {
            Path::parse(p)
                .unwrap()
                .select(&m)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(get("$.Patient.Demographics.FirstName"), [json!("Timothy")]);
        assert_eq!(get("$.Patient.Identifiers[1].ID"), [json!("2")]);
        assert_eq!(get("$.Patient.Identifiers[*].ID"), [json!("1"), json!("2")]);
        assert_eq!(
            get("$['Patient']['Demographics'].FirstName"),
            [json!("Timothy")]
        );
        assert!(get("$.Patient.Nope").is_empty());
        assert!(Path::parse("Patient.X").is_err());
        assert!(Path::parse("$.Patient[x]").is_err());
        assert!(Path::parse("$..X").is_err());
    }

    #[test]
    fn send_needs_every_rule_case_sensitive_and_block_all_blocks() {
        let m = json!({"Meta": {"EventType": "Arrival"}, "Patient": {"Demographics": {"FirstName": "Timothy", "Sex": "Male"}}});
        let first = rule(
            "$.Patient.Demographics.FirstName",
            &["Timothy", "Barbara"],
            true,
        );
        let sex = rule("$.Patient.Demographics.Sex", &["Female"], false);
        assert!(passes(
            &filter(FilterAction::Send, &[first.clone(), sex.clone()]),
            &m
        ));
        let lower = rule("$.Patient.Demographics.FirstName", &["timothy"], true);
        assert!(
            !passes(&filter(FilterAction::Send, &[lower]), &m),
            "case-sensitive"
        );
        let male_blocked = rule("$.Patient.Demographics.Sex", &["Male"], false);
        assert!(
            !passes(&filter(FilterAction::Send, &[first, male_blocked]), &m),
            "all rules"
        );
        assert!(!passes(&filter(FilterAction::BlockAll, &[]), &m));
        let missing = rule("$.Patient.Nope", &["x"], false);
        assert!(
            passes(&filter(FilterAction::Send, &[missing]), &m),
            "not in: nothing found"
        );
        let missing = rule("$.Patient.Nope", &["x"], true);
        assert!(
            !passes(&filter(FilterAction::Send, &[missing]), &m),
            "in: nothing found"
        );
    }
}
