//! What a message body is: the classification of everything a destination receives.
//!
//! Redox sends two shapes of JSON (docs/PROTOCOL.md section 4): its own data model, with a
//! top-level `Meta`, and FHIR R4 message bundles whose first entry is a `MessageHeader`. Either
//! can be an asynchronous notification or a synchronous query (section 6). This module reads
//! just enough of a body to tell which, to pull out the fields an operator searches by, and to
//! compute the duplicate key that makes retries idempotent. It never copies the body and never
//! panics, whatever bytes it is given.
//!
//! # Which data model messages are queries
//!
//! A data model message is a query exactly when its (`Meta.DataModel`, `Meta.EventType`) pair
//! is in [`SYNC_QUERIES`]; every other pair is a notification. The table is explicit, keyed by
//! data model *and* event type, because names do not tell: Scheduling `AvailableSlots` and
//! `Booked` and Clinical Decisions `Request` are queries, PatientAdmin `Arrival` and
//! Scheduling `New` are not, and `Query` means something only with its data model.
//!
//! The list is Redox's own, taken from its data model reference:
//!
//! * the table of synchronous event types, "Event types for data models",
//!   <https://docs.redoxengine.com/basics/redox-data-model-api/event-types-for-data-models>
//!   (and its earlier form, "Data Models & Event Types",
//!   <https://developer.redoxengine.com/core-concepts/data-models-and-event-types/>);
//! * each event type's reference page (linked from its entry in [`SYNC_QUERIES`]), which gives
//!   the exact `Meta.DataModel` value sent on the wire (`Clinical Summary` and `Clinical
//!   Decisions` with a space, although the tables write them without) and the event type the
//!   answer carries. Where the summary table and the event type's page disagree on the answer's
//!   name, the page and Redox's JSON schemas win: Scheduling `Booked` is answered by
//!   `BookedResponse` (the table says `BookedSlotsResponse`), PatientSearch `Query` by `Response`
//!   (the table says `QueryResponse`; the schema file is `patientsearch/response.json`);
//! * the Enrichment data model (`NormalizationQuery`, `NaturalLanguageProcessingQuery`), which
//!   the summary table leaves out but whose pages describe as queries with a matching response,
//!   <https://developer.redoxengine.com/data-models/Enrichment.html>;
//! * SSO `Sign-on`, which the table lists as "a special synchronous event type that doesn't
//!   follow the standard query/response suffix pattern": the application answers it (with a
//!   redirect or HTML), not with a data model, so its entry has no response event type.
//!
//! Data model names are compared as Redox writes them or with their spaces removed (so
//! `ClinicalSummary` finds `Clinical Summary`); event types are compared exactly. FHIR message
//! bundles are always notifications: FHIR queries are REST reads, which do not arrive as
//! message bundles.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

/// The shape of a body that parsed as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// A Redox data model message: a JSON object with a `Meta` object.
    DataModel,
    /// A FHIR `Bundle` of type `message`.
    FhirMessage,
    /// Valid JSON that is neither. Kept and handed to the application as it is: the destination
    /// is not the judge of what the customer's application understands.
    OtherJson,
}

impl EnvelopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeKind::DataModel => "data_model",
            EnvelopeKind::FhirMessage => "fhir_message",
            EnvelopeKind::OtherJson => "other_json",
        }
    }
}

/// Whether the sender waits for an answer in the same HTTP response (docs/PROTOCOL.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    /// Asynchronous: keep it durably, answer 2xx, hand it on later in order.
    Notification,
    /// Synchronous: answer with the application's response now; never queued.
    Query,
}

/// The key under which a received message is kept once, however often it is retried.
///
/// In order of preference: `Meta.Logs[0].ID` (stable across Redox's retries), the FHIR
/// `MessageHeader.id` or `Bundle.id`, and last the SHA-256 of the body bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DuplicateKey(String);

impl DuplicateKey {
    /// The key of a body with no identity of its own: its SHA-256.
    pub fn of_bytes(body: &[u8]) -> Self {
        DuplicateKey(format!("sha256:{}", hex::encode(Sha256::digest(body))))
    }

    fn log(id: &str) -> Self {
        DuplicateKey(format!("log:{id}"))
    }

    fn fhir(id: &str) -> Self {
        DuplicateKey(format!("fhir:{id}"))
    }

    /// Rebuilds a key read back from storage.
    pub fn from_stored(key: String) -> Self {
        DuplicateKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the destination learned from a body that is valid JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: EnvelopeKind,
    pub interaction: Interaction,
    pub duplicate_key: DuplicateKey,
    /// `Meta.DataModel`, or for FHIR the message header's event code.
    pub data_model: Option<String>,
    /// `Meta.EventType`, or for FHIR the message header's `eventUri` / `eventCoding.code`.
    pub event_type: Option<String>,
    /// `Meta.Logs[0].ID`: Redox's identifier of this message.
    pub log_id: Option<String>,
}

/// Why a body is not a message the destination can read. The body is still kept (and marked
/// malformed) by the destination: Redox's guidance is never to lose data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
}

/// One synchronous event type of Redox's data model API: the destination must answer it in
/// the same HTTP response, through the application, and never queue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncQuery {
    /// `Meta.DataModel` as Redox sends it (e.g. `Clinical Summary`).
    pub data_model: &'static str,
    /// `Meta.EventType` of the question (e.g. `PatientQuery`).
    pub event_type: &'static str,
    /// `Meta.EventType` of the answer (e.g. `PatientQueryResponse`), in the same data model;
    /// `None` for SSO `Sign-on`, which is answered with a redirect or HTML.
    pub response_event_type: Option<&'static str>,
    /// The Redox reference page this entry was taken from.
    pub reference: &'static str,
}

const fn q(
    data_model: &'static str,
    event_type: &'static str,
    response_event_type: &'static str,
    reference: &'static str,
) -> SyncQuery {
    SyncQuery {
        data_model,
        event_type,
        response_event_type: Some(response_event_type),
        reference,
    }
}

/// Every (data model, event type) pair Redox answers synchronously, with the event type of its
/// answer (see the module header for where the list comes from). Anything not listed here is a
/// notification.
pub const SYNC_QUERIES: &[SyncQuery] = &[
    q(
        "Clinical Decisions",
        "Request",
        "Response",
        "https://docs.redoxengine.com/api-reference/datamodels/clinical-decisions/clinical-decisions-request",
    ),
    q(
        "Clinical Summary",
        "PatientQuery",
        "PatientQueryResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/clinical-summary/clinical-summary-patient-query",
    ),
    q(
        "Clinical Summary",
        "VisitQuery",
        "VisitQueryResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/clinical-summary/clinical-summary-visit-query",
    ),
    q(
        "Clinical Summary",
        "DocumentQuery",
        "DocumentQueryResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/clinical-summary/clinical-summary-document-query",
    ),
    q(
        "Clinical Summary",
        "DocumentGet",
        "DocumentGetResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/clinical-summary/clinical-summary-document-get",
    ),
    q(
        "Enrichment",
        "NormalizationQuery",
        "NormalizationQueryResponse",
        "https://docs.redoxengine.com/permalink/enrichment-normalization-query",
    ),
    q(
        "Enrichment",
        "NaturalLanguageProcessingQuery",
        "NaturalLanguageProcessingQueryResponse",
        "https://developer.redoxengine.com/data-models/Enrichment.html",
    ),
    q(
        "Media",
        "Query",
        "QueryResponse",
        "https://developer.redoxengine.com/api-reference/datamodels/media/media-query",
    ),
    q(
        "Notes",
        "Query",
        "QueryResponse",
        "https://developer.redoxengine.com/api-reference/redox-data-model-api-reference/datamodels/notes/notes-query",
    ),
    q(
        "Order",
        "Query",
        "QueryResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/order/order-query",
    ),
    q(
        "Organization",
        "Query",
        "QueryResponse",
        "https://docs.redoxengine.com/basics/redox-data-model-api/event-types-for-data-models",
    ),
    q(
        "PatientAdmin",
        "CensusQuery",
        "CensusQueryResponse",
        "https://docs.redoxengine.com/permalink/patient-admin-census-query",
    ),
    q(
        "PatientAdmin",
        "VisitQuery",
        "VisitQueryResponse",
        "https://docs.redoxengine.com/permalink/patient-admin-visit-query",
    ),
    q(
        "PatientSearch",
        "Query",
        "Response",
        "https://docs.redoxengine.com/api-reference/datamodels/patient-search/patient-search-query/",
    ),
    q(
        "PatientSearch",
        "LocationQuery",
        "LocationQueryResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/patient-search/patient-search-location-query",
    ),
    q(
        "Provider",
        "ProviderQuery",
        "ProviderQueryResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/provider/provider-provider-query",
    ),
    q(
        "Referral",
        "Query",
        "QueryResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/referral/referral-query",
    ),
    q(
        "Results",
        "Query",
        "QueryResponse",
        "https://docs.redoxengine.com/api-reference/redox-data-model-api-reference/datamodels/results/results-query",
    ),
    q(
        "Scheduling",
        "AvailableSlots",
        "AvailableSlotsResponse",
        "https://docs.redoxengine.com/api-reference/datamodels/scheduling/scheduling-available-slots",
    ),
    q(
        "Scheduling",
        "Booked",
        "BookedResponse",
        "https://docs.redoxengine.com/api-reference/redox-data-model-api-reference/datamodels/scheduling/scheduling-booked",
    ),
    q(
        "Vaccination",
        "PatientQuery",
        "PatientQueryResponse",
        "https://docs.redoxengine.com/basics/redox-data-model-api/event-types-for-data-models",
    ),
    SyncQuery {
        data_model: "SSO",
        event_type: "Sign-on",
        response_event_type: None,
        reference: "https://docs.redoxengine.com/basics/redox-data-model-api/event-types-for-data-models",
    },
];

/// Whether a `Meta.DataModel` value names a table's data model: as written, or with the spaces
/// left out (`ClinicalSummary` for `Clinical Summary`).
fn same_data_model(sent: &str, listed: &str) -> bool {
    sent == listed || sent.bytes().eq(listed.bytes().filter(|&b| b != b' '))
}

/// The [`SYNC_QUERIES`] entry of a data model / event type pair, if it is a synchronous query.
pub fn sync_query(data_model: &str, event_type: &str) -> Option<&'static SyncQuery> {
    SYNC_QUERIES
        .iter()
        .find(|q| q.event_type == event_type && same_data_model(data_model, q.data_model))
}

/// Whether a data model / event type pair is a synchronous query: listed in [`SYNC_QUERIES`].
/// A message without either field is a notification.
pub fn is_query(data_model: Option<&str>, event_type: Option<&str>) -> bool {
    matches!((data_model, event_type), (Some(m), Some(e)) if sync_query(m, e).is_some())
}

/// Classifies a body. Valid JSON always yields an [`Envelope`]; anything else a clear error.
pub fn parse(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(EnvelopeError::Empty);
    }
    // Borrowed raw values validate the whole document (serde_json skips nested values without
    // recursing on the stack) but only the few fields we look at are materialised.
    let top: &RawValue =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::InvalidJson(e.to_string()))?;
    let object: HashMap<String, &RawValue> = match serde_json::from_str(top.get()) {
        Ok(object) => object,
        Err(_) => return Ok(other_json(body)),
    };

    if let Some(meta) = object.get("Meta")
        && let Ok(Value::Object(meta)) = serde_json::from_str::<Value>(meta.get())
    {
        return Ok(data_model(body, &meta));
    }
    let resource_type = string_field(&object, "resourceType");
    let bundle_type = string_field(&object, "type");
    if resource_type.as_deref() == Some("Bundle") && bundle_type.as_deref() == Some("message") {
        return Ok(fhir_message(body, &object));
    }
    Ok(other_json(body))
}

fn string_field(object: &HashMap<String, &RawValue>, key: &str) -> Option<String> {
    object
        .get(key)
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
}

fn non_empty_str(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        // Redox's legacy identifiers are numbers; keep them as their decimal text.
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn other_json(body: &[u8]) -> Envelope {
    Envelope {
        kind: EnvelopeKind::OtherJson,
        interaction: Interaction::Notification,
        duplicate_key: DuplicateKey::of_bytes(body),
        data_model: None,
        event_type: None,
        log_id: None,
    }
}

fn data_model(body: &[u8], meta: &serde_json::Map<String, Value>) -> Envelope {
    let data_model = non_empty_str(meta.get("DataModel"));
    let event_type = non_empty_str(meta.get("EventType"));
    let log_id = meta
        .get("Logs")
        .and_then(Value::as_array)
        .and_then(|logs| logs.first())
        .and_then(|log| non_empty_str(log.get("ID")));
    let duplicate_key = match &log_id {
        Some(id) => DuplicateKey::log(id),
        None => DuplicateKey::of_bytes(body),
    };
    let interaction = if is_query(data_model.as_deref(), event_type.as_deref()) {
        Interaction::Query
    } else {
        Interaction::Notification
    };
    Envelope {
        kind: EnvelopeKind::DataModel,
        interaction,
        duplicate_key,
        data_model,
        event_type,
        log_id,
    }
}

/// The little of a FHIR bundle entry we read.
#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    resource: Option<&'a RawValue>,
}

fn fhir_message(body: &[u8], bundle: &HashMap<String, &RawValue>) -> Envelope {
    let header: Option<serde_json::Map<String, Value>> = bundle
        .get("entry")
        .and_then(|raw| serde_json::from_str::<Vec<Entry<'_>>>(raw.get()).ok())
        .and_then(|entries| entries.into_iter().next())
        .and_then(|entry| entry.resource)
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .and_then(|v| match v {
            Value::Object(m)
                if m.get("resourceType").and_then(Value::as_str) == Some("MessageHeader") =>
            {
                Some(m)
            }
            _ => None,
        });

    let header_id = header.as_ref().and_then(|h| non_empty_str(h.get("id")));
    let bundle_id = string_field(bundle, "id").filter(|s| !s.is_empty());
    let duplicate_key = match header_id.or(bundle_id) {
        Some(id) => DuplicateKey::fhir(&id),
        None => DuplicateKey::of_bytes(body),
    };
    let event_type = header.as_ref().and_then(|h| {
        non_empty_str(h.get("eventUri"))
            .or_else(|| non_empty_str(h.get("eventCoding").and_then(|c| c.get("code"))))
    });
    Envelope {
        kind: EnvelopeKind::FhirMessage,
        // FHIR messaging to a destination is a notification; FHIR queries are REST reads,
        // which do not arrive as message bundles.
        interaction: Interaction::Notification,
        duplicate_key,
        data_model: Some("FHIR".to_owned()),
        event_type,
        log_id: None,
    }
}

/// What the engine writes into a data model message as it delivers it (docs/PROTOCOL.md section 4).
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    pub log_id: &'a str,
    pub attempt_id: &'a str,
    pub source_name: &'a str,
    /// The destination this copy goes to: its ID and its name, as Redox names it in
    /// `Meta.Destinations[0]`.
    pub destination_id: &'a str,
    pub destination_name: &'a str,
    /// Now, as RFC 3339 text (for a missing `Meta.EventDateTime`).
    pub now_rfc3339: &'a str,
}

/// Stamps a data model message as the engine delivers it (docs/PROTOCOL.md section 4):
/// `Meta.Logs` becomes `[{ID: log_id, AttemptID: attempt_id}]`, `Meta.Destinations` becomes
/// `[{ID, Name}]` of the one destination this copy goes to (a message fanned out to several
/// reaches each naming only itself, as Redox delivers it), and `Meta.Source` and
/// `Meta.EventDateTime` are filled in when missing. Other bodies (FHIR bundles, anything
/// without a `Meta` object) are returned unchanged.
pub fn stamp(body: &[u8], stamp: &Stamp<'_>) -> Vec<u8> {
    // Only `Meta` is parsed and written again; every other member keeps its bytes and its
    // place (the patient's data is most of a message, and the delivery path stamps every copy).
    let Ok(members) = serde_json::from_slice::<Members<'_>>(body) else {
        return body.to_vec();
    };
    // As JSON parsers do, the last `Meta` counts if there are several.
    let Some(meta) = members
        .0
        .iter()
        .rev()
        .find(|(k, _)| k == "Meta")
        .map(|(_, v)| *v)
    else {
        return body.to_vec();
    };
    let Ok(Value::Object(mut meta)) = serde_json::from_str::<Value>(meta.get()) else {
        return body.to_vec();
    };
    meta.insert(
        "Logs".into(),
        serde_json::json!([{ "ID": stamp.log_id, "AttemptID": stamp.attempt_id }]),
    );
    meta.insert(
        "Destinations".into(),
        serde_json::json!([{ "ID": stamp.destination_id, "Name": stamp.destination_name }]),
    );
    if meta.get("Source").is_none_or(Value::is_null) {
        meta.insert(
            "Source".into(),
            serde_json::json!({ "Name": stamp.source_name }),
        );
    }
    if meta.get("EventDateTime").is_none_or(Value::is_null) {
        meta.insert(
            "EventDateTime".into(),
            Value::String(stamp.now_rfc3339.to_owned()),
        );
    }
    let mut out = Vec::with_capacity(body.len() + 256);
    out.push(b'{');
    let mut meta_written = false;
    for (i, (key, value)) in members.0.iter().enumerate() {
        // A repeated `Meta` key: written once, stamped.
        if key == "Meta" && meta_written {
            continue;
        }
        if i > 0 && out.len() > 1 {
            out.push(b',');
        }
        if serde_json::to_writer(&mut out, key).is_err() {
            return body.to_vec();
        }
        out.push(b':');
        if key == "Meta" {
            meta_written = true;
            if serde_json::to_writer(&mut out, &meta).is_err() {
                return body.to_vec();
            }
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
    out
}

/// A JSON object's members in document order, their values unparsed.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn data_model_notification_keyed_by_log_id() {
        let body = br#"{"Meta":{"DataModel":"PatientAdmin","EventType":"Arrival",
            "Logs":[{"ID":"d9f5d293-7110-461e-a875-3beb089e79f3","AttemptID":"a1"}]},
            "Patient":{}}"#;
        let env = parse(body).unwrap();
        assert_eq!(env.kind, EnvelopeKind::DataModel);
        assert_eq!(env.interaction, Interaction::Notification);
        assert_eq!(env.data_model.as_deref(), Some("PatientAdmin"));
        assert_eq!(env.event_type.as_deref(), Some("Arrival"));
        assert_eq!(
            env.duplicate_key.as_str(),
            "log:d9f5d293-7110-461e-a875-3beb089e79f3"
        );
    }

    #[test]
    fn retries_with_new_attempt_ids_share_a_key() {
        let first = br#"{"Meta":{"Logs":[{"ID":"L1","AttemptID":"A1"}]}}"#;
        let retry = br#"{"Meta":{"Logs":[{"ID":"L1","AttemptID":"A2"}]}}"#;
        assert_eq!(
            parse(first).unwrap().duplicate_key,
            parse(retry).unwrap().duplicate_key
        );
    }

    #[test]
    fn without_log_id_the_key_is_the_body_hash() {
        let body = br#"{"Meta":{"DataModel":"Results","EventType":"New","Logs":null}}"#;
        let env = parse(body).unwrap();
        assert_eq!(env.duplicate_key, DuplicateKey::of_bytes(body));
        assert!(env.duplicate_key.as_str().starts_with("sha256:"));
    }

    fn meta(data_model: &str, event_type: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"Meta": {
            "DataModel": data_model, "EventType": event_type,
            "Logs": [{"ID": "l1", "AttemptID": "a1"}],
        }}))
        .unwrap()
    }

    #[test]
    fn every_listed_pair_is_a_query_and_found_with_its_answer() {
        for entry in SYNC_QUERIES {
            let env = parse(&meta(entry.data_model, entry.event_type)).unwrap();
            assert_eq!(env.kind, EnvelopeKind::DataModel, "{entry:?}");
            assert_eq!(env.interaction, Interaction::Query, "{entry:?}");
            assert_eq!(
                sync_query(entry.data_model, entry.event_type),
                Some(entry),
                "{entry:?}"
            );
            assert!(is_query(Some(entry.data_model), Some(entry.event_type)));
            // The spelling Redox's tables use, without the space, finds the same entry.
            let unspaced = entry.data_model.replace(' ', "");
            assert_eq!(
                sync_query(&unspaced, entry.event_type),
                Some(entry),
                "{entry:?}"
            );
            assert!(entry.reference.starts_with("https://"), "{entry:?}");
        }
    }

    #[test]
    fn the_table_holds_redox_list() {
        let pairs: Vec<(&str, &str, Option<&str>)> = SYNC_QUERIES
            .iter()
            .map(|q| (q.data_model, q.event_type, q.response_event_type))
            .collect();
        let some = Some;
        assert_eq!(
            pairs,
            [
                ("Clinical Decisions", "Request", some("Response")),
                (
                    "Clinical Summary",
                    "PatientQuery",
                    some("PatientQueryResponse")
                ),
                ("Clinical Summary", "VisitQuery", some("VisitQueryResponse")),
                (
                    "Clinical Summary",
                    "DocumentQuery",
                    some("DocumentQueryResponse")
                ),
                (
                    "Clinical Summary",
                    "DocumentGet",
                    some("DocumentGetResponse")
                ),
                (
                    "Enrichment",
                    "NormalizationQuery",
                    some("NormalizationQueryResponse")
                ),
                (
                    "Enrichment",
                    "NaturalLanguageProcessingQuery",
                    some("NaturalLanguageProcessingQueryResponse")
                ),
                ("Media", "Query", some("QueryResponse")),
                ("Notes", "Query", some("QueryResponse")),
                ("Order", "Query", some("QueryResponse")),
                ("Organization", "Query", some("QueryResponse")),
                ("PatientAdmin", "CensusQuery", some("CensusQueryResponse")),
                ("PatientAdmin", "VisitQuery", some("VisitQueryResponse")),
                ("PatientSearch", "Query", some("Response")),
                (
                    "PatientSearch",
                    "LocationQuery",
                    some("LocationQueryResponse")
                ),
                ("Provider", "ProviderQuery", some("ProviderQueryResponse")),
                ("Referral", "Query", some("QueryResponse")),
                ("Results", "Query", some("QueryResponse")),
                (
                    "Scheduling",
                    "AvailableSlots",
                    some("AvailableSlotsResponse")
                ),
                ("Scheduling", "Booked", some("BookedResponse")),
                ("Vaccination", "PatientQuery", some("PatientQueryResponse")),
                ("SSO", "Sign-on", None),
            ]
        );
        let mut keys: Vec<_> = SYNC_QUERIES
            .iter()
            .map(|q| (q.data_model, q.event_type))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SYNC_QUERIES.len(), "each pair is listed once");
    }

    #[test]
    fn answers_and_close_non_queries_are_notifications() {
        let mut close = vec![
            ("Scheduling", "New"),
            ("Scheduling", "PushSlots"),
            ("Scheduling", "Reschedule"),
            ("PatientAdmin", "Arrival"),
            ("PatientAdmin", "NewPatient"),
            ("Clinical Summary", "PatientPush"),
            ("Clinical Summary", "VisitPush"),
            ("Results", "New"),
            ("Referral", "AuthReview"),
            ("Media", "New"),
            // A query event type of another data model is not a query here.
            ("Scheduling", "Query"),
            ("PatientAdmin", "PatientQuery"),
            ("Results", "Request"),
            ("Clinical Summary", "Booked"),
            // Case matters, as on the wire.
            ("Scheduling", "booked"),
            ("scheduling", "Booked"),
            // Names a suffix rule would have taken for queries.
            ("Results", "CustomQuery"),
            ("PatientSearch", "Push"),
            ("DeviceQuery", "New"),
        ];
        // Every answer is a notification if it ever reaches a destination as a request.
        close.extend(
            SYNC_QUERIES
                .iter()
                .filter_map(|q| q.response_event_type.map(|r| (q.data_model, r))),
        );
        for (data_model, event_type) in close {
            assert_eq!(
                parse(&meta(data_model, event_type)).unwrap().interaction,
                Interaction::Notification,
                "{data_model} {event_type}"
            );
            assert!(sync_query(data_model, event_type).is_none());
        }
        // Without a data model or an event type nothing is a query.
        for body in [
            &br#"{"Meta":{"DataModel":"PatientSearch"}}"#[..],
            br#"{"Meta":{"EventType":"Query"}}"#,
            br#"{"Meta":{"DataModel":null,"EventType":"PatientQuery"}}"#,
        ] {
            assert_eq!(parse(body).unwrap().interaction, Interaction::Notification);
        }
        assert!(!is_query(Some("Scheduling"), None));
        assert!(!is_query(None, Some("Booked")));
    }

    #[test]
    fn fhir_bundles_stay_notifications_whatever_their_event() {
        let body = br#"{"resourceType":"Bundle","id":"b1","type":"message","entry":[
            {"resource":{"resourceType":"MessageHeader","id":"mh-1",
             "eventCoding":{"code":"PatientQuery"}}}]}"#;
        let env = parse(body).unwrap();
        assert_eq!(env.kind, EnvelopeKind::FhirMessage);
        assert_eq!(env.interaction, Interaction::Notification);
    }

    #[test]
    fn fhir_message_bundle_keyed_by_header_id() {
        let body = br#"{"resourceType":"Bundle","id":"b1","type":"message","entry":[
            {"resource":{"resourceType":"MessageHeader","id":"mh-7",
             "eventUri":"https://fhir.redoxengine.com/EventDefinition/PatientAdminArrival"}},
            {"resource":{"resourceType":"Patient","id":"p"}}]}"#;
        let env = parse(body).unwrap();
        assert_eq!(env.kind, EnvelopeKind::FhirMessage);
        assert_eq!(env.duplicate_key.as_str(), "fhir:mh-7");
        assert_eq!(
            env.event_type.as_deref(),
            Some("https://fhir.redoxengine.com/EventDefinition/PatientAdminArrival")
        );
    }

    #[test]
    fn fhir_bundle_without_header_id_uses_bundle_id() {
        let body = br#"{"resourceType":"Bundle","id":"b1","type":"message","entry":[]}"#;
        assert_eq!(parse(body).unwrap().duplicate_key.as_str(), "fhir:b1");
    }

    #[test]
    fn other_json_is_kept_as_other() {
        for body in [
            &b"[1,2,3]"[..],
            b"\"text\"",
            b"{\"hello\":1}",
            b"{\"Meta\":5}",
        ] {
            let env = parse(body).unwrap();
            assert_eq!(env.kind, EnvelopeKind::OtherJson);
            assert_eq!(env.duplicate_key, DuplicateKey::of_bytes(body));
        }
    }

    #[test]
    fn invalid_json_is_a_clear_error() {
        assert_eq!(parse(b""), Err(EnvelopeError::Empty));
        assert_eq!(parse(b"  \n"), Err(EnvelopeError::Empty));
        let err = parse(b"{\"Meta\": ").unwrap_err();
        assert!(
            err.to_string().starts_with("the body is not valid JSON"),
            "{err}"
        );
        assert!(matches!(
            parse(b"\xff\xfe"),
            Err(EnvelopeError::InvalidJson(_))
        ));
    }

    #[test]
    fn very_deep_nesting_does_not_overflow_the_stack() {
        let depth = 100_000;
        let mut body = "[".repeat(depth);
        body.push_str(&"]".repeat(depth));
        // Either a classification or an error is fine; a stack overflow would abort the test.
        let _ = parse(body.as_bytes());
        let mut obj = String::from("{\"Meta\":");
        obj.push_str(&"[".repeat(depth));
        obj.push_str(&"]".repeat(depth));
        obj.push('}');
        let _ = parse(obj.as_bytes());
    }

    #[test]
    fn stamping_sets_logs_and_fills_gaps_only() {
        let body = br#"{"Meta":{"DataModel":"Results","Source":{"ID":"s","Name":"EHR"},"Logs":[{"ID":"old"}]}}"#;
        let at = Stamp {
            log_id: "L1",
            attempt_id: "A1",
            source_name: "feed",
            destination_id: "D1",
            destination_name: "Acme Scheduling",
            now_rfc3339: "2026-01-01T00:00:00Z",
        };
        let stamped: Value = serde_json::from_slice(&stamp(body, &at)).unwrap();
        assert_eq!(
            stamped["Meta"]["Logs"],
            serde_json::json!([{"ID": "L1", "AttemptID": "A1"}])
        );
        assert_eq!(
            stamped["Meta"]["Destinations"],
            serde_json::json!([{"ID": "D1", "Name": "Acme Scheduling"}])
        );
        assert_eq!(stamped["Meta"]["Source"]["Name"], "EHR");
        assert_eq!(stamped["Meta"]["EventDateTime"], "2026-01-01T00:00:00Z");
        let fhir = br#"{"resourceType":"Bundle","type":"message"}"#;
        assert_eq!(stamp(fhir, &at), fhir.to_vec());
    }

    #[test]
    fn stamping_keeps_every_other_member_as_it_was() {
        let body = br#"{"Patient":{"Name":"Timothy",  "Notes":"a\u00e9b"},"Meta":{"DataModel":"PatientAdmin"},"Visit":[1, 2.50]}"#;
        let at = Stamp {
            log_id: "L1",
            attempt_id: "A1",
            source_name: "feed",
            destination_id: "D1",
            destination_name: "Acme",
            now_rfc3339: "2026-01-01T00:00:00Z",
        };
        let stamped = String::from_utf8(stamp(body, &at)).unwrap();
        assert!(
            stamped.starts_with(r#"{"Patient":{"Name":"Timothy",  "Notes":"a\u00e9b"},"Meta":{"#),
            "{stamped}"
        );
        assert!(stamped.ends_with(r#"},"Visit":[1, 2.50]}"#), "{stamped}");
        let value: Value = serde_json::from_str(&stamped).unwrap();
        assert_eq!(value["Meta"]["Logs"][0]["ID"], "L1");
        assert_eq!(value["Meta"]["DataModel"], "PatientAdmin");
        // A repeated Meta member is written once: the last, as parsers read it.
        let twice = br#"{"Meta":{"DataModel":"A"},"Meta":{"DataModel":"B"}}"#;
        let stamped = String::from_utf8(stamp(twice, &at)).unwrap();
        assert_eq!(stamped.matches("\"Meta\"").count(), 1, "{stamped}");
        let value: Value = serde_json::from_str(&stamped).unwrap();
        assert_eq!(value["Meta"]["DataModel"], "B");
        assert_eq!(value["Meta"]["Logs"][0]["ID"], "L1");
    }

    proptest! {
        #[test]
        fn any_bytes_classify_or_fail_cleanly(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            match parse(&body) {
                Ok(env) => prop_assert!(!env.duplicate_key.as_str().is_empty()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn any_json_value_classifies(value in arb_json()) {
            let body = serde_json::to_vec(&value).unwrap();
            prop_assert!(parse(&body).is_ok());
        }

        #[test]
        fn any_meta_fields_classify_as_data_model(
            data_model in proptest::option::of(".{0,20}"),
            event_type in proptest::option::of(".{0,20}"),
            log_id in proptest::option::of("[a-zA-Z0-9-]{1,36}"),
        ) {
            let body = serde_json::json!({"Meta": {
                "DataModel": data_model, "EventType": event_type,
                "Logs": log_id.as_ref().map(|id| vec![serde_json::json!({"ID": id})]),
            }});
            let env = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
            prop_assert_eq!(env.kind, EnvelopeKind::DataModel);
            if let Some(id) = log_id {
                prop_assert_eq!(env.duplicate_key.as_str(), format!("log:{id}"));
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            ".{0,10}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::hash_map(
                    prop_oneof![
                        Just("Meta".to_owned()),
                        Just("resourceType".to_owned()),
                        Just("type".to_owned()),
                        Just("entry".to_owned()),
                        ".{0,6}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
