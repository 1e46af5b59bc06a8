//! The outbound HTTP client, its error descriptions, and remote answers read within limits
//! (`read_limited`; `fetch_jwks`, the one JWKS fetch both servers use).

use std::time::Duration;

/// An outbound client as Redox's is: redirects are never followed (a destination that
/// redirects is answering something other than 2xx), connections time out after 10 s, and
/// `extra_roots` (PEM) are trusted besides the system's roots.
pub fn build(extra_roots: Option<&[u8]>) -> Result<reqwest::Client, ClientError> {
    builder(extra_roots)?.build().map_err(ClientError::Build)
}

/// Why an outbound client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The extra trusted roots are not PEM certificates.
    #[error(
        "not a PEM certificate bundle: {0}; give a file of one or more `-----BEGIN CERTIFICATE-----` blocks"
    )]
    NotPem(reqwest::Error),
    /// The TLS backend refused the settings (it has no usable roots, say).
    #[error("cannot build the HTTP client: {0}; check the system's CA certificates")]
    Build(reqwest::Error),
}

/// The builder behind [`build`], for callers that add to it (such as pinning an address).
pub fn builder(extra_roots: Option<&[u8]>) -> Result<reqwest::ClientBuilder, ClientError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10));
    if let Some(pem) = extra_roots {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(ClientError::NotPem)?;
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder)
}

/// Why an answer could not be read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The answer is longer than the limit: nothing more was read.
    TooLarge(usize),
    /// The connection failed or timed out mid-answer.
    Transport(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge(limit) => write!(f, "the answer is longer than {}", size(*limit)),
            ReadError::Transport(e) => f.write_str(e),
        }
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// Reads a remote answer of at most `limit` bytes. A remote server decides how much it sends,
/// so no answer is read without a limit: a declared length over it is refused before reading,
/// and a longer body is cut off as soon as it passes the limit.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ReadError::Transport(describe_transport_error(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub use wharf_protocol::error_chain;

/// How long a JWKS fetch may take.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS document read: a key set is a few KiB.
pub const JWKS_MAX_BYTES: usize = 1 << 20;

/// Why a JWKS document could not be fetched. The caller keeps the keys it already knows and
/// tries again later; the message says what to check.
#[derive(Debug, thiserror::Error)]
pub enum JwksFetchError {
    /// The request did not get an answer (timeout, DNS, TLS, refused connection).
    #[error("{0}; check that the JWKS URL is reachable from this server")]
    Transport(String),
    /// The server answered, but not with 2xx.
    #[error("the JWKS URL answered {0}; check that it serves the key set")]
    Status(reqwest::StatusCode),
    /// The answer broke off or was larger than [`JWKS_MAX_BYTES`].
    #[error("reading the JWKS document: {0}")]
    Read(ReadError),
}

/// GETs the JWKS document at `url` with `client` (which decides where it may connect: the
/// engine passes an SSRF-checked, pinned one), within [`JWKS_TIMEOUT`] and [`JWKS_MAX_BYTES`].
/// Both servers fetch key sets this way: the engine for OAuth API keys, the destination for
/// its JWT strategies.
pub async fn fetch_jwks(
    client: &reqwest::Client,
    url: &reqwest::Url,
) -> Result<Vec<u8>, JwksFetchError> {
    let response = client
        .get(url.clone())
        .timeout(JWKS_TIMEOUT)
        .send()
        .await
        .map_err(|e| JwksFetchError::Transport(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(JwksFetchError::Status(response.status()));
    }
    read_limited(response, JWKS_MAX_BYTES)
        .await
        .map_err(JwksFetchError::Read)
}

/// Names the kind of transport failure first (timeout, DNS, TLS, refused, reset), then the
/// details, as Verify and Save shows it to the user.
pub fn describe_transport_error(e: &reqwest::Error) -> String {
    let chain = error_chain(e);
    let lower = chain.to_lowercase();
    let kind = if e.is_timeout() {
        "timeout"
    } else if lower.contains("dns") || lower.contains("failed to lookup") {
        "DNS error"
    } else if [
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "alert",
        "invalidcontenttype",
    ]
    .iter()
    .any(|k| lower.contains(k))
    {
        // rustls names its failures without saying "TLS" ("received corrupt message of type
        // InvalidContentType" when the other end does not speak TLS at all).
        "TLS error"
    } else if lower.contains("connection refused") {
        "connection refused"
    } else if lower.contains("reset") {
        "connection reset"
    } else {
        "transport error"
    };
    format!("{kind}: {chain}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_testkit::{Recorder, Reply};

    /// A token endpoint's (or any remote's) answer is read up to its limit and no further.
    #[tokio::test]
    async fn answers_are_read_up_to_their_limit() {
        let server = Recorder::start(|_, _| Reply {
            body: vec![b'{'; (1 << 20) + 1],
            ..Reply::status(200)
        })
        .await;
        let client = build(None).unwrap();
        let get = || client.get(server.url("/token")).send();
        let declared = read_limited(get().await.unwrap(), 1 << 20).await;
        assert_eq!(declared, Err(ReadError::TooLarge(1 << 20)));
        assert_eq!(
            declared.unwrap_err().to_string(),
            "the answer is longer than 1 MiB"
        );
        let within = read_limited(get().await.unwrap(), 2 << 20).await.unwrap();
        assert_eq!(within.len(), (1 << 20) + 1);
    }
}
