//! One delivery attempt: POST a message to a destination with its verification token, and
//! report what happened (docs/PROTOCOL.md sections 3 and 6).

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
    /// The answer, up to the `keep` bytes asked for.
    pub response: Vec<u8>,
    /// The answer was longer than `keep`; `response` holds only its beginning.
    pub truncated: bool,
    pub duration: Duration,
}

impl PushOutcome {
    /// 2xx: the destination kept the message, the next one may go.
    pub fn accepted(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// Why an attempt that was not accepted failed, in one line: the transport error, or
    /// "`who` answered HTTP 503" (`who`: "the application", "the destination"...).
    pub fn describe(&self, who: &str) -> String {
        match (&self.error, self.status) {
            (Some(error), _) => error.clone(),
            (None, Some(status)) => format!("{who} answered HTTP {status}"),
            (None, None) => format!("{who} did not answer"),
        }
    }
}

/// How a request authenticates (docs/PROTOCOL.md sections 3 and 5).
#[derive(Clone, Copy, Debug)]
pub struct Credentials<'a> {
    /// The verification token, sent as `verification-token`, and also as
    /// `Authorization: Bearer` when no auth credential supplies `Authorization`.
    pub token: Option<&'a str>,
    /// Headers an auth credential adds (`Authorization`, SigV4's `X-Amz-*`...), computed
    /// over this exact request.
    pub headers: &'a [(String, String)],
}

impl<'a> Credentials<'a> {
    /// No credentials: a call to a party of our own (the destination's application, an alert
    /// webhook), with `headers` added as they are.
    pub fn none() -> Self {
        Self {
            token: None,
            headers: &[],
        }
    }

    /// No token, only these headers.
    pub fn headers(headers: &'a [(String, String)]) -> Self {
        Self {
            token: None,
            headers,
        }
    }

    /// The verification token alone.
    pub fn token(token: &'a str) -> Self {
        Self {
            token: Some(token),
            headers: &[],
        }
    }
}

/// The headers a request carries for `credentials`, besides `Content-Type`.
pub fn credential_headers(credentials: Credentials<'_>) -> Vec<(String, String)> {
    let mut headers = Vec::with_capacity(credentials.headers.len() + 2);
    if let Some(token) = credentials.token {
        headers.push((VERIFICATION_TOKEN_HEADER.to_string(), token.to_string()));
        let credential_authorizes = credentials
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if !credential_authorizes {
            headers.push(("authorization".to_string(), format!("Bearer {token}")));
        }
    }
    headers.extend(credentials.headers.iter().cloned());
    headers
}

/// POSTs `body` to `url` authenticated by `credentials`, keeping at most `keep` bytes of the
/// answer ([`RESPONSE_EXCERPT_BYTES`] for a delivery log; the whole answer, bounded, for a
/// query relayed back to its requester).
pub async fn push(
    client: &reqwest::Client,
    url: &reqwest::Url,
    credentials: Credentials<'_>,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
    keep: usize,
) -> PushOutcome {
    let started = Instant::now();
    let mut request = client
        .post(url.clone())
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, content_type);
    for (name, value) in credential_headers(credentials) {
        request = request.header(name, value);
    }
    let sent = request.body(body).send().await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            return PushOutcome {
                status: None,
                error: Some(describe_transport_error(&e)),
                response: Vec::new(),
                truncated: false,
                duration: started.elapsed(),
            };
        }
    };
    let status = response.status().as_u16();
    let mut excerpt = Vec::new();
    let mut error = None;
    let mut truncated = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = keep - excerpt.len();
                excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    truncated = true;
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
        truncated,
        duration: started.elapsed(),
    }
}
