//! The outbound HTTP client and its error descriptions.

use std::time::Duration;

/// An outbound client as Redox's is: redirects are never followed (a destination that
/// redirects is answering something other than 2xx), connections time out after 10 s, and
/// `extra_roots` (PEM) are trusted besides the system's roots.
pub fn build(extra_roots: Option<&[u8]>) -> Result<reqwest::Client, String> {
    builder(extra_roots)?
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The builder behind [`build`], for callers that add to it (such as pinning an address).
pub fn builder(extra_roots: Option<&[u8]>) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10));
    if let Some(pem) = extra_roots {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        builder = builder.tls_certs_merge(certs);
    }
    Ok(builder)
}

/// An error and its causes on one line: reqwest's own message alone says only "error sending
/// request", while the cause says "connection refused".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
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
