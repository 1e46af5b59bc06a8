//! Ingestion (docs/PROTOCOL.md section 6): a source's message, authenticated by its key, classified,
//! and either queued durably (one log per target destination, committed before the answer) or,
//! for a query, relayed to its one destination and answered synchronously.
//!
//! Subscriptions route (see [`super::subscriptions`]): a message of a data model goes to every
//! destination its source subscribes to for it, or, when it names targets
//! (`Meta.Destinations[].ID`; `destination` query parameters for a FHIR bundle), to those,
//! each of which must be subscribed. Every target must be a destination of this organization
//! that passed Verify and Save, or nothing is queued. A subscription's filter may block a
//! message for its destination: it is kept as a `filtered` log and not queued.
//!
//! A query that fails at the destination is answered as Redox documents ("Responding to
//! queries"): 200 with `Meta.Errors`, whose item carries `DestinationStatusCode` and `Details`
//! when the destination answered with an error status; a destination that did not answer in
//! time is 504, and one that could not be reached 502, each with `Meta.Errors` too.

use super::credentials::Credential;
use super::sources::Sender;
use super::{Engine, EngineError, SendError, open_token, rfc3339_text};
use serde_json::{Value, json};
use std::sync::Arc;
use wharf_protocol::envelope::{self, EnvelopeKind, Interaction};
use wharf_protocol::platform::{LogStatus, LogType};
use wharf_store::engine::{
    AttemptRecord, DestinationRecord, FilterRecord, LogRecord, SourceRecord, SubscriptionRecord,
    Write,
};

/// How long a query may take end to end (docs/PROTOCOL.md section 6).
pub const QUERY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// A message as an authenticated source submitted it.
pub struct Submission<'a> {
    /// Who the request's bearer credential says is sending.
    pub sender: Sender,
    pub content_type: &'a str,
    /// Targets named outside the body (`?destination=` for FHIR bundles).
    pub query_targets: Vec<String>,
    pub body: &'a [u8],
}

/// What became of a submission.
#[derive(Debug)]
pub enum Ingested {
    /// Queued durably: one log per destination, in the order named.
    Queued {
        data_model: Option<String>,
        event_type: Option<String>,
        /// (log id, destination id) per target.
        logs: Vec<(String, String)>,
    },
    /// A query's answer, to hand back as it is.
    Answered(QueryAnswer),
}

/// The answer to a relayed query: the destination's own, or `Meta.Errors` saying why not.
#[derive(Debug)]
pub struct QueryAnswer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The sender of a request with this bearer credential (see [`super::sources::authenticate`]).
/// Called on the request's headers, before its body is read.
pub async fn authenticate(engine: &Engine, key: Option<&str>) -> Result<Sender, EngineError> {
    super::sources::authenticate(engine, key).await
}

/// Takes a source's message: queued for every target, or relayed if it is a query.
pub async fn ingest(engine: &Engine, submission: Submission<'_>) -> Result<Ingested, EngineError> {
    let env = envelope::parse(submission.body)
        .map_err(|e| EngineError::bad_request(format!("cannot deliver this message: {e}")))?;
    let is_query = env.interaction == Interaction::Query;
    // Routing reads only `Meta`; the whole message is read into a tree only if a filter needs
    // it (a full `Value` of every 2 KiB body was a visible share of the request path).
    let (named, value) = match env.kind {
        EnvelopeKind::DataModel => {
            let value = meta_only(submission.body);
            (data_model_targets(&value), value)
        }
        EnvelopeKind::FhirMessage => (submission.query_targets.clone(), Value::Null),
        EnvelopeKind::OtherJson => {
            return Err(EngineError::bad_request(
                "the body is neither a Redox data model message (with Meta) nor a FHIR message bundle",
            ));
        }
    };
    let Some(data_model) = env.data_model.clone() else {
        return Err(EngineError::bad_request(
            "Meta.DataModel is missing: subscriptions route messages by data model, e.g. \"PatientAdmin\"",
        ));
    };
    let sources = sending_sources(engine, submission.sender, &value).await?;
    let routed = route(engine, &sources, &data_model, &named).await?;
    if is_query && routed.len() != 1 {
        return Err(EngineError::bad_request(format!(
            "a query ({}) goes to exactly one destination: name it in Meta.Destinations (it would go to {})",
            env.event_type.as_deref().unwrap_or("query"),
            routed.len()
        )));
    }
    let mut records = Vec::with_capacity(routed.len());
    for (_, subscription, _) in &routed {
        let id = &subscription.destination_id;
        let record = engine
            .recent_destination(id)
            .await?
            .filter(|d| d.organization_id == engine.organization.id)
            .ok_or_else(|| EngineError::bad_request(format!("destination {id} does not exist")))?;
        if record.verified_at.is_none() {
            return Err(EngineError::conflict(format!(
                "destination {id} ({}) is not verified and receives no data: run Verify and Save first",
                record.name
            )));
        }
        records.push(record);
    }
    let now = engine.now_millis();
    if is_query {
        let (source, subscription, _) = &routed[0];
        let message = Message {
            source: &source.name,
            subscription_id: Some(subscription.id),
            content_type: submission.content_type,
            body: submission.body,
            env: &env,
        };
        return Ok(Ingested::Answered(
            relay_query(engine, &records[0], &message).await,
        ));
    }
    let mut logs: Vec<LogRecord> = Vec::with_capacity(routed.len());
    let mut whole: Option<Value> = None;
    for (source, subscription, filter) in &routed {
        let message = Message {
            source: &source.name,
            subscription_id: Some(subscription.id),
            content_type: submission.content_type,
            body: submission.body,
            env: &env,
        };
        let mut log = message.log(engine, &subscription.destination_id, LogType::Send, now);
        // A blocked message is kept as a filtered log, never queued (so it holds nothing up).
        if let Some(filter) = filter
            && !super::subscriptions::passes(
                filter,
                whole.get_or_insert_with(|| match env.kind {
                    EnvelopeKind::DataModel => {
                        serde_json::from_slice(submission.body).unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                }),
            )
        {
            log.status = LogStatus::Filtered;
        }
        logs.push(log);
    }
    let answer = logs
        .iter()
        .map(|l| (l.id.clone(), l.destination_id.clone()))
        .collect();
    let queued: Vec<String> = logs
        .iter()
        .filter(|l| l.status != LogStatus::Filtered)
        .map(|l| l.destination_id.clone())
        .collect();
    engine.committer.try_commit(Write::Enqueue(logs)).await?;
    engine.signals.queued(queued.iter().map(String::as_str));
    Ok(Ingested::Queued {
        data_model: env.data_model.clone(),
        event_type: env.event_type.clone(),
        logs: answer,
    })
}

/// The source records a message is sent as: a source key's (one, or one per environment for
/// a `[[sources]]` entry of every environment); for an access token, the source its
/// `Meta.Source.ID` names in the token's environment.
async fn sending_sources(
    engine: &Engine,
    sender: Sender,
    message: &Value,
) -> Result<Arc<[SourceRecord]>, EngineError> {
    match sender {
        Sender::Sources(records) => Ok(records),
        Sender::Token(holder) => {
            let Some(id) = message["Meta"]["Source"]["ID"]
                .as_str()
                .filter(|s| !s.is_empty())
            else {
                return Err(EngineError::bad_request(
                    "Meta.Source.ID is missing: a message sent with an OAuth access token names its source's id there",
                ));
            };
            let (source, _) = super::sources::read(engine, id).await.map_err(|_| {
                EngineError::bad_request(format!("Meta.Source.ID: source {id} does not exist"))
            })?;
            if source.environment_id != holder.environment_id {
                return Err(EngineError::Forbidden(format!(
                    "Meta.Source.ID: source {id} is not in the environment of OAuth API key {}",
                    holder.client_id
                )));
            }
            Ok(Arc::from([source]))
        }
    }
}

/// One delivery of a message: as which source, by which subscription, through which filter.
type Routed = (SourceRecord, SubscriptionRecord, Option<FilterRecord>);

/// Where a message of `data_model` from `sources` goes: every subscribed destination, or of
/// those the ones `named` (each of which must be subscribed). A `[[sources]]` source
/// subscribes itself to a named destination of its environment on first use, so the
/// configuration's sources route as they did before subscriptions.
async fn route(
    engine: &Engine,
    sources: &[SourceRecord],
    data_model: &str,
    named: &[String],
) -> Result<Vec<Routed>, EngineError> {
    let mut subscribed = Vec::with_capacity(sources.len());
    for source in sources {
        subscribed.push((
            source,
            super::subscriptions::routes(engine, &source.id, data_model).await?,
        ));
    }
    // Every route, borrowed: a source may subscribe to many destinations and only the routes
    // taken are copied.
    let every = || {
        subscribed.iter().flat_map(|(source, routes)| {
            routes
                .iter()
                .map(move |(subscription, filter)| (*source, subscription, filter))
        })
    };
    let taken = |(source, subscription, filter): (
        &SourceRecord,
        &SubscriptionRecord,
        &Option<FilterRecord>,
    )| { (source.clone(), subscription.clone(), filter.clone()) };
    let name = sources.first().map(|s| s.name.as_str()).unwrap_or_default();
    if named.is_empty() {
        let all: Vec<Routed> = every().map(taken).collect();
        if all.is_empty() {
            return Err(EngineError::bad_request(format!(
                "source {name:?} has no subscription for {data_model}: subscribe it to a destination (POST /platform/v1/environments/{{environmentId}}/subscriptions), or name the destination in Meta.Destinations"
            )));
        }
        return Ok(all);
    }
    let mut chosen = Vec::with_capacity(named.len());
    for id in named {
        if let Some(found) = every().find(|(_, s, _)| s.destination_id == *id) {
            chosen.push(taken(found));
            continue;
        }
        let destination = engine
            .recent_destination(id)
            .await?
            .filter(|d| d.organization_id == engine.organization.id)
            .ok_or_else(|| EngineError::bad_request(format!("destination {id} does not exist")))?;
        let from_config = sources
            .iter()
            .find(|s| s.config_name.is_some() && s.environment_id == destination.environment_id);
        // Subscribed only once it may receive: a refused message leaves no subscription.
        if from_config.is_some() && destination.verified_at.is_none() {
            return Err(EngineError::conflict(format!(
                "destination {id} ({}) is not verified and receives no data: run Verify and Save first",
                destination.name
            )));
        }
        let Some(source) = from_config else {
            return Err(EngineError::bad_request(format!(
                "source {name:?} has no subscription to destination {id} ({}) for {data_model}: create one (POST /platform/v1/environments/{{environmentId}}/subscriptions) with the source and destination in one environment",
                destination.name
            )));
        };
        let subscription = super::subscriptions::subscribe(engine, source, id, data_model).await?;
        chosen.push((source.clone(), subscription, None));
    }
    Ok(chosen)
}

/// Where a destination's messages go, with which token and auth credential, or why they
/// cannot go now (the delivery worker and queries both ask).
pub async fn target(
    engine: &Engine,
    record: &DestinationRecord,
) -> Result<(reqwest::Url, String, Option<Credential>), SendError> {
    if record.verified_at.is_none() {
        return Err(SendError::NotVerified);
    }
    let endpoint = record.endpoint.clone().ok_or(SendError::NoEndpoint)?;
    let sealed = record
        .verification_token
        .as_ref()
        .ok_or(SendError::NoVerificationToken)?;
    let token = open_token(engine, record, sealed).map_err(|_| SendError::SealedToken)?;
    let url = reqwest::Url::parse(&endpoint).map_err(|e| SendError::NotUrl {
        what: "the endpoint",
        url: endpoint.clone(),
        reason: e.to_string(),
    })?;
    let credential = super::present::linked_credential(engine, record).await?;
    Ok((url, token, credential))
}

/// Relays a query to its one destination and answers with the destination's answer, or with
/// Redox-shaped `Meta.Errors` saying why there is none. Queries are not queued or retried.
async fn relay_query(
    engine: &Engine,
    destination: &DestinationRecord,
    message: &Message<'_>,
) -> QueryAnswer {
    let env = message.env;
    // `destination_status`: the destination's own error status and the start of its answer,
    // which Redox hands back as `DestinationStatusCode` and `Details`.
    let fail = |status: u16, text: String, destination_status: Option<(u16, String)>| {
        tracing::warn!(destination = %destination.id, status, reason = %text, "query failed");
        let mut body = wharf_protocol::errors::meta_errors(
            env.data_model.as_deref(),
            env.event_type.as_deref(),
            "query",
            "Send",
            &text,
        );
        if let Some((code, details)) = destination_status {
            body["Meta"]["Errors"][0]["DestinationStatusCode"] = json!(code);
            body["Meta"]["Errors"][0]["Details"] = Value::String(details);
        }
        QueryAnswer {
            status,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    };
    let (url, token, credential) = match target(engine, destination).await {
        Ok(target) => target,
        Err(reason) => return fail(502, reason.to_string(), None),
    };
    let client = match engine.client_for(&url).await {
        Ok(c) => c,
        Err(reason) => return fail(502, reason.to_string(), None),
    };
    let started_at = engine.now_millis();
    let log = message.log(engine, &destination.id, LogType::Request, started_at);
    let attempt_id = uuid::Uuid::now_v7().to_string();
    let stamped = envelope::stamp(
        message.body,
        &envelope::Stamp {
            log_id: &log.id,
            attempt_id: &attempt_id,
            source_name: message.source,
            destination_id: &destination.id,
            destination_name: &destination.name,
            now_rfc3339: &rfc3339_text(started_at),
        },
    );
    let outcome = super::present::push(
        engine,
        &client,
        &url,
        &token,
        credential.as_ref(),
        message.content_type,
        stamped,
        QUERY_DEADLINE,
        wharf_protocol::MAX_BODY_BYTES,
    )
    .await;
    record_query(engine, log, attempt_id, started_at, &outcome).await;
    if outcome.truncated {
        return fail(
            502,
            "the destination's answer is larger than 40 MiB".into(),
            None,
        );
    }
    match (outcome.status, outcome.error) {
        (Some(status), None) if (200..300).contains(&status) => QueryAnswer {
            status,
            body: outcome.response,
        },
        (Some(status), None) => {
            let excerpt =
                String::from_utf8_lossy(&outcome.response[..outcome.response.len().min(1024)])
                    .into_owned();
            fail(
                200,
                format!("the destination answered the query with HTTP {status}"),
                Some((status, excerpt)),
            )
        }
        (_, Some(error)) if error.starts_with("timeout") => fail(
            504,
            format!("the destination did not answer the query within {QUERY_DEADLINE:?}"),
            None,
        ),
        (_, error) => fail(502, error.unwrap_or_default(), None),
    }
}

/// What a source submitted, from which every log of it is made.
struct Message<'a> {
    source: &'a str,
    subscription_id: Option<i64>,
    content_type: &'a str,
    body: &'a [u8],
    env: &'a envelope::Envelope,
}

impl Message<'_> {
    /// A new pending log of this message for one destination.
    fn log(&self, engine: &Engine, destination_id: &str, log_type: LogType, now: i64) -> LogRecord {
        LogRecord {
            seq: 0,
            subscription_id: self.subscription_id,
            resends: 0,
            log_type,
            // Time-ordered (UUIDv7), like the attempts' ids: the store's indexes on them then
            // grow at their end instead of touching a random page per row. With random ids,
            // fan-out x50 wrote two random 16 KiB index pages to the WAL per delivery, and
            // the writer thread was half the engine's CPU (docs/experiments/engine-throughput.md).
            id: uuid::Uuid::now_v7().to_string(),
            organization_id: engine.organization.id.clone(),
            destination_id: destination_id.to_owned(),
            source: self.source.to_owned(),
            data_model: self.env.data_model.clone(),
            event_type: self.env.event_type.clone(),
            content_type: self.content_type.to_owned(),
            body: self.body.to_vec(),
            status: LogStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Keeps a query as a request log with its one attempt, so it can be found like any other
/// message. A failure to record does not fail the query: the requester already has its answer.
async fn record_query(
    engine: &Engine,
    mut log: LogRecord,
    attempt_id: String,
    started_at: i64,
    outcome: &wharf_delivery::push::PushOutcome,
) {
    log.status = if outcome.accepted() && !outcome.truncated {
        LogStatus::Succeeded
    } else {
        LogStatus::Failed
    };
    log.attempts = 1;
    let excerpt = &outcome.response[..outcome
        .response
        .len()
        .min(wharf_delivery::push::RESPONSE_EXCERPT_BYTES)];
    let log_id = log.id.clone();
    let attempt = AttemptRecord {
        id: attempt_id,
        log_id: log_id.clone(),
        started_at,
        duration_ms: outcome.duration.as_millis() as i64,
        status_code: outcome.status.map(i64::from),
        error: outcome.error.clone(),
        response: (!excerpt.is_empty()).then(|| excerpt.to_vec()),
    };
    if let Err(e) = engine
        .committer
        .commit(Write::Query(Box::new((log, attempt))))
        .await
    {
        tracing::warn!(log = %log_id, error = %e, "could not record a query log");
    }
}

/// A data model message with only its `Meta` read (the other members are skipped, not built).
fn meta_only(body: &[u8]) -> Value {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "Meta", default)]
        meta: Value,
    }
    match serde_json::from_slice::<Head>(body) {
        Ok(head) => json!({ "Meta": head.meta }),
        Err(_) => Value::Null,
    }
}

/// `Meta.Destinations[].ID`, in order, without repeats.
fn data_model_targets(value: &Value) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for d in value["Meta"]["Destinations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(id) = d["ID"].as_str().filter(|s| !s.is_empty())
            && !ids.iter().any(|x| x == id)
        {
            ids.push(id.to_owned());
        }
    }
    ids
}
