//! Redox-shaped error bodies: `{"Meta": {..., "Errors": [{ID, Text, Type, Module}]}}`.
//!
//! Used wherever a synchronous answer fails (docs/PROTOCOL.md section 6), so a requester that reads
//! Redox's format finds the reason where it expects it.

use serde_json::{Value, json};

/// Builds a Redox-shaped error body. `data_model` and `event_type` echo the request's, when known.
pub fn meta_errors(
    data_model: Option<&str>,
    event_type: Option<&str>,
    error_type: &str,
    module: &str,
    text: &str,
) -> Value {
    json!({
        "Meta": {
            "DataModel": data_model,
            "EventType": event_type,
            "Errors": [{
                "ID": uuid::Uuid::new_v4().to_string(),
                "Text": text,
                "Type": error_type,
                "Module": module,
            }],
        }
    })
}

/// Whether a JSON body already carries a non-empty `Meta.Errors` list.
pub fn has_meta_errors(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("Meta")?
                .get("Errors")?
                .as_array()
                .map(|a| !a.is_empty())
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_redox() {
        let v = meta_errors(
            Some("PatientSearch"),
            Some("Query"),
            "query",
            "wharf",
            "boom",
        );
        assert_eq!(v["Meta"]["DataModel"], "PatientSearch");
        assert_eq!(v["Meta"]["Errors"][0]["Text"], "boom");
        assert_eq!(v["Meta"]["Errors"][0]["Module"], "wharf");
        assert!(has_meta_errors(&serde_json::to_vec(&v).unwrap()));
        assert!(!has_meta_errors(br#"{"Meta":{"Errors":[]}}"#));
        assert!(!has_meta_errors(b"nope"));
    }
}
