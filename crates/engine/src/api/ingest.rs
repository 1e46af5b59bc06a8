//! `POST /endpoint`: where sources submit data for delivery, authenticated with
//! `Authorization: Bearer <source api_key>`. A notification is answered 200 with its new logs
//! in `Meta.Logs` once durably queued; a query is answered with the destination's answer (see
//! `crate::app::ingest`).

use super::bearer;
use super::models::ErrorBody;
use crate::app::Engine;
use crate::app::EngineError;
use crate::app::ingest::{Ingested, Submission};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wharf_serve::metrics::AuthFailure;

/// Submits a Redox data model message (targets in `Meta.Destinations[].ID`) or a FHIR message
/// bundle (targets as `?destination=<id>`).
#[utoipa::path(operation_id = "ingest_ingest", post, path = "/endpoint", tag = "Ingestion", security(("sourceKey" = [])),
    params(("destination" = Option<String>, Query, description = "a FHIR bundle's target; repeat for several")),
    request_body(content = Object, description = "a Redox data model message or a FHIR message bundle"),
    responses((status = 200, description = "queued (Meta.Logs), or a query's answer", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 503, description = "not queued, or (after a lost commit) maybe queued: see the message; retry after Retry-After", body = ErrorBody)))]
pub(super) async fn ingest(
    State(engine): State<Engine>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let source_key = bearer(&headers);
    let result = submit(&engine, &headers, query.as_deref(), body).await;
    match result {
        Ok(Ingested::Queued {
            data_model,
            event_type,
            logs,
        }) => {
            let logs: Vec<_> = logs
                .iter()
                .map(|(id, destination)| json!({"ID": id, "DestinationID": destination}))
                .collect();
            axum::Json(json!({"Meta": {
                "DataModel": data_model,
                "EventType": event_type,
                "Logs": logs,
            }}))
            .into_response()
        }
        Ok(Ingested::Answered(answer)) => (
            StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
            [(header::CONTENT_TYPE, "application/json")],
            answer.body,
        )
            .into_response(),
        Err(e) => {
            let reason = match (&e, source_key) {
                (EngineError::Unauthorized(_), None) => Some("missing_source_key"),
                (EngineError::Unauthorized(_), Some(_)) => Some("wrong_source_key"),
                _ => None,
            };
            let mut response = e.into_response();
            if let Some(reason) = reason {
                response.extensions_mut().insert(AuthFailure(reason));
            }
            response
        }
    }
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

/// Authenticates the source on the headers, before a byte of the body is read (a stranger is
/// refused at once and cannot make the engine hold up to 40 MiB first), then reads the body
/// and hands the submission to the core.
async fn submit(
    engine: &Engine,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
) -> Result<Ingested, EngineError> {
    let sender = crate::app::ingest::authenticate(engine, bearer(headers)).await?;
    let body = read_body(headers, body).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(wharf_protocol::CONTENT_TYPE_JSON);
    let submission = Submission {
        sender,
        content_type,
        query_targets: query_targets(query),
        body: &body,
    };
    crate::app::ingest::ingest(engine, submission).await
}

/// The body of an authenticated submission, at most [`wharf_protocol::MAX_BODY_BYTES`]: a
/// declared length beyond it is refused before reading, a chunked one as soon as it passes it.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, EngineError> {
    let limit = wharf_protocol::MAX_BODY_BYTES;
    let too_large = || {
        EngineError::TooLarge(format!(
            "the body is larger than {} MiB, the most a message may be: split it or send less",
            limit >> 20
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over_limit {
            too_large()
        } else {
            EngineError::bad_request(format!("the body could not be read to its end: {e}"))
        }
    })
}
