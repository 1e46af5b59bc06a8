//! Ingestion: `POST /endpoint`, where sources submit data for delivery (PROTOCOL.md section 6).
//!
//! A source authenticates with `Authorization: Bearer <source api_key>`. A data model message
//! names its targets in `Meta.Destinations[].ID`; a FHIR bundle names them with `destination`
//! query parameters. Every target must be a destination of this organization that passed
//! Verify and Save, or nothing is queued. One log per target is committed to the queue before
//! the 200, whose body carries the new logs in `Meta.Logs`.

use super::{ApiError, State, bearer, find_secret, unauthorized};
use crate::commit::CommitError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use wharf_protocol::envelope::{self, EnvelopeKind, Interaction};
use wharf_store::engine::{AttemptRecord, FAILED, LogRecord, PENDING, SUCCEEDED, Write};
use wharf_store::now_millis;

pub(super) fn routes() -> Router<State> {
    Router::new().route("/endpoint", post(ingest))
}

async fn ingest(
    axum::extract::State(state): axum::extract::State<State>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let refused = |reason: &'static str, message: &str| {
        let mut response = unauthorized(message);
        response
            .extensions_mut()
            .insert(wharf_serve::metrics::AuthFailure(reason));
        Ok(response)
    };
    let Some(presented) = bearer(&headers) else {
        return refused(
            "missing_source_key",
            "missing source key: send Authorization: Bearer <source api_key>",
        );
    };
    let Some(index) = find_secret(
        presented,
        state.config.sources.iter().map(|s| s.api_key.as_str()),
    ) else {
        tracing::warn!(reason = "wrong_source_key", "ingestion refused");
        return refused("wrong_source_key", "the source key is not valid");
    };
    let source = state.config.sources[index].name.clone();
    let env = envelope::parse(&body)
        .map_err(|e| ApiError::bad_request(format!("cannot deliver this message: {e}")))?;
    let is_query = env.interaction == Interaction::Query;
    let targets = match env.kind {
        EnvelopeKind::DataModel => data_model_targets(&body),
        EnvelopeKind::FhirMessage => query_targets(query.as_deref()),
        EnvelopeKind::OtherJson => {
            return Err(ApiError::bad_request(
                "the body is neither a Redox data model message (with Meta) nor a FHIR message bundle",
            ));
        }
    };
    if targets.is_empty() {
        return Err(ApiError::bad_request(match env.kind {
            EnvelopeKind::FhirMessage => "name the target with ?destination=<destination id>",
            _ => "Meta.Destinations names no destination: add [{\"ID\": \"<destination id>\"}]",
        }));
    }
    if is_query && targets.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "a query ({}) must name exactly one destination in Meta.Destinations; it names {}",
            env.event_type.as_deref().unwrap_or("query"),
            targets.len()
        )));
    }
    let mut records = Vec::with_capacity(targets.len());
    for id in &targets {
        let lookup = id.clone();
        let record = state
            .db(move |s| s.destination(&lookup))
            .await?
            .filter(|d| d.organization_id == state.organization.id)
            .ok_or_else(|| ApiError::bad_request(format!("destination {id} does not exist")))?;
        if record.verified_at.is_none() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "destination {id} ({}) is not verified and receives no data: run Verify and Save first",
                    record.name
                ),
            ));
        }
        records.push(record);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(wharf_protocol::CONTENT_TYPE_JSON)
        .to_owned();
    if is_query {
        let submission = Submission {
            source: &source,
            content_type: &content_type,
            body: &body,
            env: &env,
        };
        return Ok(relay_query(&state, &records[0], &submission).await);
    }
    let submission = Submission {
        source: &source,
        content_type: &content_type,
        body: &body,
        env: &env,
    };
    let now = now_millis();
    let logs: Vec<LogRecord> = targets
        .iter()
        .map(|destination| submission.log(&state, destination, "SEND", now))
        .collect();
    let answer: Vec<Value> = logs
        .iter()
        .map(|l| json!({"ID": l.id, "DestinationID": l.destination_id}))
        .collect();
    match state.committer.try_commit(Write::Enqueue(logs)).await {
        Ok(()) => {}
        Err(CommitError::Busy) => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine is busy; retry shortly",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(1));
            return Ok(response);
        }
        Err(CommitError::Failed(e)) => {
            // The store cannot be written (disk full or read-only, database locked): nothing
            // was queued, and the source must keep the message and send it again.
            tracing::error!(error = %e, "ingestion could not queue a message; answering 503");
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine cannot write to its store right now, so nothing was queued; keep the message and send it again later",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, axum::http::HeaderValue::from(5));
            return Ok(response);
        }
    }
    state.wake.notify_one();
    Ok((
        StatusCode::OK,
        axum::Json(json!({"Meta": {
            "DataModel": env.data_model,
            "EventType": env.event_type,
            "Logs": answer,
        }})),
    )
        .into_response())
}

/// How long a query may take end to end (PROTOCOL.md section 6).
pub const QUERY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Relays a query to its one destination and answers with the destination's answer, or with
/// Redox-shaped `Meta.Errors` saying why there is none. Queries are not queued or retried.
async fn relay_query(
    state: &State,
    destination: &wharf_store::engine::DestinationRecord,
    submission: &Submission<'_>,
) -> Response {
    let env = submission.env;
    let fail = |status: StatusCode, text: String| {
        tracing::warn!(destination = %destination.id, %status, reason = %text, "query failed");
        let body = wharf_protocol::errors::meta_errors(
            env.data_model.as_deref(),
            env.event_type.as_deref(),
            "query",
            "wharf-engine",
            &text,
        );
        (status, axum::Json(body)).into_response()
    };
    let (Some(endpoint), Some(sealed)) = (&destination.endpoint, &destination.verification_token)
    else {
        return fail(
            StatusCode::BAD_GATEWAY,
            "the destination has no endpoint or token".into(),
        );
    };
    let token = match super::open_token(state, destination, sealed) {
        Ok(t) => t,
        Err(_) => {
            return fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the destination's token cannot be opened".into(),
            );
        }
    };
    let url = match reqwest::Url::parse(endpoint) {
        Ok(u) => u,
        Err(e) => {
            return fail(
                StatusCode::BAD_GATEWAY,
                format!("the endpoint is not a URL: {e}"),
            );
        }
    };
    let client = match state.client_for(&url).await {
        Ok(c) => c,
        Err(reason) => return fail(StatusCode::BAD_GATEWAY, reason),
    };
    let credential = match crate::present::linked_credential(state, destination).await {
        Ok(c) => c,
        Err(reason) => return fail(StatusCode::BAD_GATEWAY, reason),
    };
    let started_at = now_millis();
    let log = submission.log(state, &destination.id, "REQUEST", started_at);
    let attempt_id = uuid::Uuid::new_v4().to_string();
    let stamped = envelope::stamp(
        submission.body,
        &log.id,
        &attempt_id,
        submission.source,
        &super::rfc3339_text(started_at),
    );
    let outcome = crate::present::push(
        state,
        &client,
        &url,
        &token,
        credential.as_ref(),
        submission.content_type,
        stamped,
        QUERY_DEADLINE,
        wharf_protocol::MAX_BODY_BYTES,
    )
    .await;
    record_query(state, log, attempt_id, started_at, &outcome).await;
    if outcome.truncated {
        return fail(
            StatusCode::BAD_GATEWAY,
            "the destination's answer is larger than 40 MiB".into(),
        );
    }
    match (outcome.status, outcome.error) {
        (Some(status), None) if (200..300).contains(&status) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, "application/json")],
            outcome.response,
        )
            .into_response(),
        (Some(status), None) => fail(
            StatusCode::BAD_GATEWAY,
            format!("the destination answered the query with HTTP {status}"),
        ),
        (_, Some(error)) if error.starts_with("timeout") => fail(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the destination did not answer the query within {QUERY_DEADLINE:?}"),
        ),
        (_, error) => fail(StatusCode::BAD_GATEWAY, error.unwrap_or_default()),
    }
}

/// What a source submitted, from which every log of it is made.
struct Submission<'a> {
    source: &'a str,
    content_type: &'a str,
    body: &'a [u8],
    env: &'a envelope::Envelope,
}

impl Submission<'_> {
    /// A new pending log of this submission for one destination.
    fn log(&self, state: &State, destination_id: &str, log_type: &str, now: i64) -> LogRecord {
        LogRecord {
            seq: 0,
            log_type: log_type.into(),
            id: uuid::Uuid::new_v4().to_string(),
            organization_id: state.organization.id.clone(),
            destination_id: destination_id.to_owned(),
            source: self.source.to_owned(),
            data_model: self.env.data_model.clone(),
            event_type: self.env.event_type.clone(),
            content_type: self.content_type.to_owned(),
            body: self.body.to_vec(),
            status: PENDING.into(),
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Keeps a query as a REQUEST log with its one attempt, so it can be found like any other
/// message. A failure to record does not fail the query: the requester already has its answer.
async fn record_query(
    state: &State,
    mut log: LogRecord,
    attempt_id: String,
    started_at: i64,
    outcome: &wharf_delivery::push::PushOutcome,
) {
    log.status = if outcome.accepted() && !outcome.truncated {
        SUCCEEDED
    } else {
        FAILED
    }
    .into();
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
    if let Err(e) = state
        .committer
        .commit(Write::Query(Box::new((log, attempt))))
        .await
    {
        tracing::warn!(log = %log_id, error = %e, "could not record a query log");
    }
}

/// `Meta.Destinations[].ID`, in order, without repeats.
fn data_model_targets(body: &[u8]) -> Vec<String> {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
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

/// `?destination=<id>` parameters, in order, without repeats.
fn query_targets(query: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let pairs = query.map(|q| {
        reqwest::Url::parse(&format!("http://x/?{q}"))
            .map(|u| {
                u.query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    });
    for (k, v) in pairs.into_iter().flatten() {
        if k == "destination" && !v.is_empty() && !ids.contains(&v) {
            ids.push(v);
        }
    }
    ids
}
