//! One delivery attempt: POST a message to a destination with its verification token, and
//! report what happened (PROTOCOL.md sections 3 and 6).

use crate::client::describe_transport_error;
use std::time::{Duration, Instant};
use wharf_protocol::VERIFICATION_TOKEN_HEADER;

/// How much of a destination's answer is kept with the attempt.
pub const RESPONSE_EXCERPT_BYTES: usize = 16 * 1024;

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// The HTTP status, when the destination answered.
    pub status: Option<u16>,
    /// The transport error, when it did not (or the answer could not be read).
    pub error: Option<String>,
    /// The first [`RESPONSE_EXCERPT_BYTES`] of the answer.
    pub response: Vec<u8>,
    pub duration: Duration,
}

impl PushOutcome {
    /// 2xx: the destination kept the message, the next one may go.
    pub fn accepted(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// POSTs `body` to `url` with `verification-token` and `Authorization: Bearer` set to `token`.
pub async fn push(
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> PushOutcome {
    let started = Instant::now();
    let sent = client
        .post(url.clone())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(VERIFICATION_TOKEN_HEADER, token)
        .bearer_auth(token)
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            return PushOutcome {
                status: None,
                error: Some(describe_transport_error(&e)),
                response: Vec::new(),
                duration: started.elapsed(),
            };
        }
    };
    let status = response.status().as_u16();
    let mut excerpt = Vec::new();
    let mut error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_EXCERPT_BYTES - excerpt.len();
                excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if excerpt.len() >= RESPONSE_EXCERPT_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // An answer that cannot be read to the end (a timeout mid-body) is not a 2xx
                // the engine can trust.
                error = Some(describe_transport_error(&e));
                break;
            }
        }
    }
    PushOutcome {
        status: Some(status),
        error,
        response: excerpt,
        duration: started.elapsed(),
    }
}
