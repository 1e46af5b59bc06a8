//! `POST /endpoint`: where sources submit data for delivery, authenticated with
//! `Authorization: Bearer <source api_key>`. A notification is answered 200 with its new logs
//! in `Meta.Logs` once durably queued; a query is answered with the destination's answer (see
//! `crate::app::ingest`).

use super::bearer;
use super::models::ErrorBody;
use crate::app::Engine;
use crate::app::EngineError;
use crate::app::ingest::{Ingested, Submission};
use axum::body::Bytes;
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
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(wharf_protocol::CONTENT_TYPE_JSON);
    let source_key = bearer(&headers);
    let submission = Submission {
        source_key,
        content_type,
        query_targets: query_targets(query.as_deref()),
        body: &body,
    };
    match crate::app::ingest::ingest(&engine, submission).await {
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
