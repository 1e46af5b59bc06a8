//! What a message body is: the classification of everything a destination receives.
//!
//! Redox sends two shapes of JSON (PROTOCOL.md section 4): its own data model, with a
//! top-level `Meta`, and FHIR R4 message bundles whose first entry is a `MessageHeader`. Either
//! can be an asynchronous notification or a synchronous query (section 6). This module reads
//! just enough of a body to tell which, to pull out the fields an operator searches by, and to
//! compute the duplicate key that makes retries idempotent. It never copies the body and never
//! panics, whatever bytes it is given.

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

/// Whether the sender waits for an answer in the same HTTP response (PROTOCOL.md section 6).
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

/// Event types that Redox sends synchronously and waits on (PROTOCOL.md section 6).
const QUERY_EVENT_TYPES: &[&str] = &[
    "Query",
    "PatientQuery",
    "DocumentQuery",
    "DocumentGet",
    "LocationQuery",
    "ProviderQuery",
    "OrganizationQuery",
];

/// Whether a data model / event type pair is a synchronous query.
pub fn is_query(data_model: Option<&str>, event_type: Option<&str>) -> bool {
    let by_event =
        event_type.is_some_and(|e| QUERY_EVENT_TYPES.contains(&e) || e.ends_with("Query"));
    let by_model = data_model.is_some_and(|m| m.ends_with("Search") || m.ends_with("Query"));
    by_event || by_model
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

/// Stamps a data model message as the engine delivers it (PROTOCOL.md section 4):
/// `Meta.Logs` becomes `[{ID: log_id, AttemptID: attempt_id}]`, and `Meta.Source` and
/// `Meta.EventDateTime` are filled in when missing. Other bodies (FHIR bundles, anything
/// without a `Meta` object) are returned unchanged.
pub fn stamp(
    body: &[u8],
    log_id: &str,
    attempt_id: &str,
    source_name: &str,
    now_rfc3339: &str,
) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let Some(meta) = value.get_mut("Meta").and_then(Value::as_object_mut) else {
        return body.to_vec();
    };
    meta.insert(
        "Logs".into(),
        serde_json::json!([{ "ID": log_id, "AttemptID": attempt_id }]),
    );
    if meta.get("Source").is_none_or(Value::is_null) {
        meta.insert("Source".into(), serde_json::json!({ "Name": source_name }));
    }
    if meta.get("EventDateTime").is_none_or(Value::is_null) {
        meta.insert(
            "EventDateTime".into(),
            Value::String(now_rfc3339.to_owned()),
        );
    }
    serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec())
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

    #[test]
    fn queries_are_recognised_by_event_type_and_data_model() {
        for body in [
            &br#"{"Meta":{"DataModel":"Clinical Summary","EventType":"PatientQuery"}}"#[..],
            br#"{"Meta":{"DataModel":"PatientSearch","EventType":"Query"}}"#,
            br#"{"Meta":{"DataModel":"Media","EventType":"DocumentGet"}}"#,
            br#"{"Meta":{"DataModel":"PatientSearch"}}"#,
        ] {
            assert_eq!(parse(body).unwrap().interaction, Interaction::Query);
        }
        let note = br#"{"Meta":{"DataModel":"Scheduling","EventType":"New"}}"#;
        assert_eq!(parse(note).unwrap().interaction, Interaction::Notification);
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
        let stamped: Value =
            serde_json::from_slice(&stamp(body, "L1", "A1", "feed", "2026-01-01T00:00:00Z"))
                .unwrap();
        assert_eq!(
            stamped["Meta"]["Logs"],
            serde_json::json!([{"ID": "L1", "AttemptID": "A1"}])
        );
        assert_eq!(stamped["Meta"]["Source"]["Name"], "EHR");
        assert_eq!(stamped["Meta"]["EventDateTime"], "2026-01-01T00:00:00Z");
        let fhir = br#"{"resourceType":"Bundle","type":"message"}"#;
        assert_eq!(stamp(fhir, "L", "A", "s", "t"), fhir.to_vec());
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
