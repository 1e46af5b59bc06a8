//! Verify and Save (docs/PROTOCOL.md section 2) from the sender's side: send a fresh challenge with
//! the verification token, and pass only a 2xx whose body contains it.
//!
//! The token travels twice: in the body (POST) or the query (GET), where Redox puts it, and in
//! the `verification-token` header that every request to a destination carries (section 3), so
//! a destination that checks that header before anything else does not refuse its own
//! challenge.

use crate::client::describe_transport_error;
use std::fmt;
use std::time::Duration;
use wharf_protocol::challenge;
use wharf_protocol::{
    APPLICATION_NAME, APPLICATION_NAME_HEADER, CONTENT_TYPE_JSON, VERIFICATION_TOKEN_HEADER,
};

/// How long Verify and Save waits for the endpoint (docs/PROTOCOL.md section 2, our choice).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(15);

/// How the challenge travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Token and challenge in a JSON body (Redox's default).
    Post,
    /// Token and challenge appended to the endpoint's query.
    Get,
}

/// Why Verify and Save failed, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The endpoint answered, but not with 2xx; with the beginning of what it said.
    Status(u16, Said),
    /// 2xx, but the body does not contain the challenge; with the beginning of the body.
    NoChallenge(u16, Said),
    /// No HTTP answer: refused, timeout, TLS, DNS...
    Transport(String),
}

/// The first bytes of an endpoint's answer to a challenge, as text safe to show: at most
/// [`SAID_BYTES`] bytes, invalid UTF-8 replaced, control characters escaped (`\n`, `\u{1b}`).
/// An endpoint's own explanation ("token mismatch", "missing Authorization") is usually what
/// tells an operator why verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Said(pub String);

/// How much of a refusing endpoint's answer is kept for the user.
pub const SAID_BYTES: usize = 300;

impl Said {
    /// The first [`SAID_BYTES`] of `body`, escaped; "…" marks a cut.
    pub fn of(body: &[u8]) -> Said {
        let cut = body.len() > SAID_BYTES;
        let text = String::from_utf8_lossy(&body[..body.len().min(SAID_BYTES)]);
        let mut shown: String = text
            .trim()
            .chars()
            .flat_map(|c| {
                let escaped: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                escaped
            })
            .collect();
        if cut {
            shown.push('…');
        }
        Said(shown)
    }
}

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            write!(f, "with an empty body")
        } else {
            write!(f, "saying: {}", self.0)
        }
    }
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyFailure::Status(s, said) => {
                write!(f, "the endpoint answered HTTP {s}, not 2xx, {said}")
            }
            VerifyFailure::NoChallenge(s, said) => write!(
                f,
                "the endpoint answered HTTP {s} but its body does not contain the challenge; it answered {said}"
            ),
            VerifyFailure::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// A challenge request, built before it is sent so an auth credential can sign it.
#[derive(Clone)]
pub struct Challenge {
    pub method: Method,
    /// The endpoint, with the challenge (and token) in the query for GET.
    pub url: reqwest::Url,
    /// The JSON body for POST; empty for GET.
    pub body: Vec<u8>,
    /// The fresh challenge value the answer must contain.
    pub challenge: String,
    /// The verification token, also sent as the `verification-token` header.
    token: String,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("method", &self.method)
            .field("url", &self.url.path())
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Challenge {
    /// A fresh challenge for `url`, carrying `token` in the body (POST) or query (GET).
    pub fn new(url: &reqwest::Url, token: &str, method: Method) -> Self {
        let challenge = challenge::new_challenge();
        match method {
            Method::Post => Self {
                method,
                url: url.clone(),
                body: challenge::post_body(token, &challenge),
                challenge,
                token: token.to_owned(),
            },
            Method::Get => {
                let mut url = url.clone();
                // Appended, keeping any query the endpoint already has.
                url.query_pairs_mut()
                    .append_pair(challenge::CHALLENGE_FIELD, &challenge)
                    .append_pair(challenge::TOKEN_FIELD, token);
                Self {
                    method,
                    url,
                    body: Vec::new(),
                    challenge,
                    token: token.to_owned(),
                }
            }
        }
    }

    /// The verification token the challenge carries (for a signer that covers the
    /// `verification-token` header). Never log it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The HTTP method's name.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            Method::Post => "POST",
            Method::Get => "GET",
        }
    }
}

/// The most of an answer to a challenge that is read: the answer need only hold the
/// challenge (a UUID), and an endpoint must not be able to make the engine buffer more.
pub const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Performs Verify and Save against `url` with the verification token alone.
pub async fn verify(
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: &str,
    method: Method,
) -> Result<(), VerifyFailure> {
    send(client, &Challenge::new(url, token, method), &[]).await
}

/// Sends a challenge with the headers of an auth credential (none for the token alone), and
/// checks the answer. The token travels in the body or query and, unless `headers` already
/// carry it (a signer that covers it), in the `verification-token` header.
pub async fn send(
    client: &reqwest::Client,
    challenge: &Challenge,
    headers: &[(String, String)],
) -> Result<(), VerifyFailure> {
    let mut request = match challenge.method {
        Method::Post => client
            .post(challenge.url.clone())
            .body(challenge.body.clone()),
        Method::Get => client.get(challenge.url.clone()),
    }
    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE_JSON);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(VERIFICATION_TOKEN_HEADER))
    {
        request = request.header(VERIFICATION_TOKEN_HEADER, &challenge.token);
    }
    let challenge = &challenge.challenge;
    let response = request
        .header(APPLICATION_NAME_HEADER, APPLICATION_NAME)
        .header(reqwest::header::CONNECTION, "close")
        .timeout(VERIFY_TIMEOUT)
        .send()
        .await
        .map_err(|e| VerifyFailure::Transport(describe_transport_error(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(VerifyFailure::Status(
            status.as_u16(),
            Said::of(&first_bytes(response).await),
        ));
    }
    let body = crate::client::read_limited(response, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| {
            VerifyFailure::Transport(format!("reading the answer to the challenge: {e}"))
        })?;
    if challenge::answer_contains(&body, challenge) {
        Ok(())
    } else {
        Err(VerifyFailure::NoChallenge(status.as_u16(), Said::of(&body)))
    }
}

/// The beginning of a refusal's body (a little more than [`SAID_BYTES`], so a cut shows), read
/// no further: what follows is not shown, and a refusal can be any size. Empty if it cannot
/// be read.
async fn first_bytes(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() <= SAID_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_testkit::{Received, Recorder, Reply};

    /// An endpoint that answers 200 and then streams a chunked body without end.
    async fn endless_answer() -> reqwest::Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 4096];
            let _ = socket.read(&mut head).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let chunk = [b"10000\r\n".to_vec(), vec![b'x'; 0x10000], b"\r\n".to_vec()].concat();
            // Stops when the client hangs up.
            while socket.write_all(&chunk).await.is_ok() {}
        });
        format!("http://{addr}/hook").parse().unwrap()
    }

    /// Issue 26, item 9: an endpoint cannot make the engine buffer its answer without limit.
    #[tokio::test]
    async fn an_endless_answer_is_cut_off_at_64_kib() {
        let url = endless_answer().await;
        let client = crate::client::build(None).unwrap();
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            verify(&client, &url, "tok", Method::Post),
        )
        .await
        .expect("answers at once instead of reading forever");
        match result {
            Err(VerifyFailure::Transport(e)) => assert!(e.contains("longer than 64 KiB"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn get_keeps_the_endpoints_own_query() {
        let endpoint = Recorder::start(|_, _| Reply::status(200)).await;
        let url: reqwest::Url = format!("{}?tenant=7", endpoint.url("/hook"))
            .parse()
            .unwrap();
        let client = crate::client::build(None).unwrap();
        // The recorder does not echo, so verification fails; what matters is what was sent.
        let result = verify(&client, &url, "tok", Method::Get).await;
        assert!(
            matches!(result, Err(VerifyFailure::NoChallenge(200, _))),
            "{result:?}"
        );
        let sent = &endpoint.received()[0];
        assert_eq!(sent.path, "/hook");
        let query = sent.query.as_deref().unwrap();
        assert!(query.starts_with("tenant=7&challenge="), "{query}");
        assert!(query.ends_with("&verification-token=tok"), "{query}");
        assert_eq!(sent.header("application-name"), Some("RedoxEngine"));
        assert_eq!(sent.header("verification-token"), Some("tok"));
    }

    /// A destination that checks the `verification-token` header before anything else, and
    /// then echoes the challenge from the body (POST) or the query (GET).
    fn strict_destination(token: &'static str) -> impl Fn(usize, &Received) -> Reply {
        move |_, request| {
            let tokens: Vec<_> = request
                .headers
                .get_all("verification-token")
                .iter()
                .collect();
            if tokens.len() != 1 || tokens[0] != token {
                return Reply::status(403);
            }
            let challenge = match request.query.as_deref() {
                Some(query) => query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("challenge="))
                    .unwrap()
                    .to_owned(),
                None => {
                    let body = challenge::parse_post_body(&request.body).unwrap();
                    assert_eq!(
                        body.token.as_deref(),
                        Some(token),
                        "the body keeps the token"
                    );
                    body.challenge
                }
            };
            Reply {
                status: 200,
                content_type: "text/plain",
                body: challenge.into_bytes(),
                delay: std::time::Duration::ZERO,
            }
        }
    }

    #[tokio::test]
    async fn post_and_get_challenges_carry_the_token_header_too() {
        let endpoint = Recorder::start(strict_destination("s3cret-token")).await;
        let url: reqwest::Url = endpoint.url("/hook").parse().unwrap();
        let client = crate::client::build(None).unwrap();
        for method in [Method::Post, Method::Get] {
            verify(&client, &url, "s3cret-token", method)
                .await
                .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        }
        let sent = endpoint.received();
        assert_eq!(sent.len(), 2);
        for request in &sent {
            assert_eq!(request.header("verification-token"), Some("s3cret-token"));
        }
        assert!(sent[0].query.is_none(), "POST: the token is in the body");
        let get_query = sent[1].query.as_deref().unwrap();
        assert!(
            get_query.contains("verification-token=s3cret-token"),
            "{get_query}"
        );
        // A wrong token is refused by the header check, and verification says so.
        let refused = verify(&client, &url, "other-token", Method::Post).await;
        assert!(
            matches!(refused, Err(VerifyFailure::Status(403, _))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_credential_header_carrying_the_token_is_not_doubled() {
        let endpoint = Recorder::start(strict_destination("s3cret-token")).await;
        let url: reqwest::Url = endpoint.url("/hook").parse().unwrap();
        let client = crate::client::build(None).unwrap();
        let challenge = Challenge::new(&url, "s3cret-token", Method::Get);
        assert_eq!(challenge.token(), "s3cret-token");
        assert!(
            !format!("{challenge:?}").contains("s3cret"),
            "{challenge:?}"
        );
        let signed = [("Verification-Token".to_string(), "s3cret-token".to_string())];
        send(&client, &challenge, &signed).await.unwrap();
        let sent = &endpoint.received()[0];
        assert_eq!(sent.headers.get_all("verification-token").iter().count(), 1);
    }

    #[test]
    fn what_a_refusing_endpoint_said_is_kept_short_and_escaped() {
        assert_eq!(Said::of(b"").to_string(), "with an empty body");
        assert_eq!(
            Said::of(b"token mismatch\n").to_string(),
            "saying: token mismatch"
        );
        assert_eq!(Said::of(b"a\x1bb\tc").0, "a\\u{1b}b\\tc");
        let long = Said::of(&[b'x'; SAID_BYTES + 50]);
        assert_eq!(long.0.chars().count(), SAID_BYTES + 1);
        assert!(long.0.ends_with('…'));
        assert_eq!(Said::of(&[0xff, b'o', b'k']).0, "\u{fffd}ok");
    }
}
