//! The Verify and Save challenge (docs/PROTOCOL.md section 2), from both ends.
//!
//! The engine sends a fresh random challenge with the verification token; the destination
//! checks the token and echoes the challenge. This module builds and recognises the request and
//! judges the answer. Transport (headers, URLs, HTTP) belongs to the callers.

use serde::Serialize;
use serde_json::Value;

/// Name of the challenge field in the POST body and the GET query.
pub const CHALLENGE_FIELD: &str = "challenge";
/// Name of the token field in the POST body and the GET query.
pub const TOKEN_FIELD: &str = "verification-token";
/// The longest challenge a destination echoes. Redox sends a UUID (36 characters); anything far
/// longer is not a challenge but an attempt to make the destination reflect content.
pub const MAX_CHALLENGE_LEN: usize = 256;

/// A challenge request as the destination received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRequest {
    pub challenge: String,
    /// The token the sender put in the body or query, if any.
    pub token: Option<String>,
}

/// Why a request that looks like a challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the challenge is empty")]
    Empty,
    #[error("the challenge is longer than {MAX_CHALLENGE_LEN} characters")]
    TooLong,
    #[error("the challenge may only contain visible ASCII characters")]
    NotVisibleAscii,
}

/// Checks that a challenge is something safe to echo back as `text/plain`.
pub fn validate_challenge(challenge: &str) -> Result<(), ChallengeError> {
    if challenge.is_empty() {
        return Err(ChallengeError::Empty);
    }
    if challenge.len() > MAX_CHALLENGE_LEN {
        return Err(ChallengeError::TooLong);
    }
    if !challenge.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ChallengeError::NotVisibleAscii);
    }
    Ok(())
}

/// The largest body [`parse_post_body`] looks at: a challenge body is about 100 bytes.
pub const MAX_CHALLENGE_BODY: usize = 4096;

/// A cheap pre-check, so messages are not parsed twice: only a small body that mentions
/// `challenge` can be one. (A SIMD substring search: a byte-by-byte window scan of every 2 KB
/// message cost 2 % of the destination's CPU under load.)
pub fn may_be_challenge(body: &[u8]) -> bool {
    body.len() <= MAX_CHALLENGE_BODY && memchr::memmem::find(body, b"\"challenge\"").is_some()
}

/// Recognises a POST verification body: a JSON object with a string `challenge` that is not a
/// message (no `Meta`, no FHIR `resourceType`). Returns `None` for anything else, which the
/// destination then treats as a message.
pub fn parse_post_body(body: &[u8]) -> Option<ChallengeRequest> {
    #[derive(serde::Deserialize)]
    struct Probe {
        challenge: Option<Value>,
        #[serde(rename = "verification-token")]
        token: Option<Value>,
        #[serde(rename = "Meta")]
        meta: Option<serde::de::IgnoredAny>,
        #[serde(rename = "resourceType")]
        resource_type: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    if probe.meta.is_some() || probe.resource_type.is_some() {
        return None;
    }
    let Some(Value::String(challenge)) = probe.challenge else {
        return None;
    };
    let token = match probe.token {
        Some(Value::String(t)) => Some(t),
        _ => None,
    };
    Some(ChallengeRequest { challenge, token })
}

/// The JSON body of a POST verification request.
pub fn post_body(token: &str, challenge: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "verification-token")]
        token: &'a str,
        challenge: &'a str,
    }
    serde_json::to_vec(&Body { token, challenge }).expect("two strings always serialise")
}

/// A fresh random challenge, as Redox sends: a UUID v4.
pub fn new_challenge() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether a 2xx answer passes verification: its body contains the challenge. The bare challenge
/// as text and `{"challenge":"..."}` both pass.
pub fn answer_contains(body: &[u8], challenge: &str) -> bool {
    !challenge.is_empty()
        && body
            .windows(challenge.len())
            .any(|w| w == challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_body_round_trips() {
        let body = post_body("tok", "c-1");
        assert_eq!(
            parse_post_body(&body),
            Some(ChallengeRequest {
                challenge: "c-1".into(),
                token: Some("tok".into())
            })
        );
    }

    #[test]
    fn only_small_bodies_naming_challenge_are_parsed() {
        assert!(may_be_challenge(&post_body("tok", "c-1")));
        assert!(may_be_challenge(br#"{ "challenge" : 1}"#));
        assert!(!may_be_challenge(br#"{"Meta":{"DataModel":"Scheduling"}}"#));
        assert!(!may_be_challenge(br#"{"challenges":"x"}"#));
        let mut large = br#"{"challenge":"x","pad":""#.to_vec();
        large.resize(MAX_CHALLENGE_BODY + 1, b' ');
        assert!(!may_be_challenge(&large));
    }

    #[test]
    fn messages_are_not_challenges() {
        assert_eq!(parse_post_body(br#"{"Meta":{},"challenge":"x"}"#), None);
        assert_eq!(
            parse_post_body(br#"{"resourceType":"Bundle","challenge":"x"}"#),
            None
        );
        assert_eq!(parse_post_body(br#"{"challenge":5}"#), None);
        assert_eq!(parse_post_body(b"not json"), None);
        assert_eq!(parse_post_body(br#"["challenge"]"#), None);
    }

    #[test]
    fn challenge_without_token_is_recognised() {
        assert_eq!(
            parse_post_body(br#"{"challenge":"abc"}"#),
            Some(ChallengeRequest {
                challenge: "abc".into(),
                token: None
            })
        );
    }

    #[test]
    fn validation_refuses_reflection() {
        assert!(validate_challenge(&new_challenge()).is_ok());
        assert_eq!(validate_challenge(""), Err(ChallengeError::Empty));
        assert_eq!(
            validate_challenge(&"a".repeat(MAX_CHALLENGE_LEN + 1)),
            Err(ChallengeError::TooLong)
        );
        assert_eq!(
            validate_challenge("<script> x"),
            Err(ChallengeError::NotVisibleAscii)
        );
    }

    #[test]
    fn answers_pass_when_they_contain_the_challenge() {
        let c = "0b7c6f8e-1111-4222-8333-944455556666";
        assert!(answer_contains(c.as_bytes(), c));
        assert!(answer_contains(
            format!("{{\"challenge\":\"{c}\"}}").as_bytes(),
            c
        ));
        assert!(!answer_contains(b"OK", c));
        assert!(!answer_contains(b"", c));
        assert!(!answer_contains(b"anything", ""));
    }
}
