//! Redox's side in miniature: `wharf verify` (Verify and Save) and `wharf send` (messages as
//! Redox pushes them), for testing any endpoint from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use wharf_protocol::challenge;
use wharf_protocol::{
    APPLICATION_NAME, APPLICATION_NAME_HEADER, CONTENT_TYPE_FHIR_JSON, CONTENT_TYPE_JSON,
    VERIFICATION_TOKEN_HEADER,
};

/// How long Verify and Save waits for the endpoint (PROTOCOL.md section 2).
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `send` waits for each message (PROTOCOL.md section 6).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    Post,
    Get,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The destination's endpoint URL.
    url: reqwest::Url,
    /// The destination's verification token.
    #[arg(long, env = "WHARF_TOKEN", hide_env_values = true)]
    token: String,
    /// POST (token in a JSON body, the default) or GET (token in the query).
    #[arg(long, value_enum, default_value_t = Method::Post)]
    method: Method,
    /// Also trust this PEM CA certificate (for endpoints with a private CA).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct SendArgs {
    /// The destination's endpoint URL.
    url: reqwest::Url,
    /// The destination's verification token.
    #[arg(long, env = "WHARF_TOKEN", hide_env_values = true)]
    token: String,
    /// Also trust this PEM CA certificate (for endpoints with a private CA).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Message files (Redox data model JSON or FHIR bundles), sent in this order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// An outbound client as Redox's would be: no redirects followed, optional extra CA.
pub fn client(ca_cert: Option<&PathBuf>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read --ca-cert {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-cert {} is not a PEM certificate: {e}", path.display()))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// [`client`], or exit status 2 after saying why (a bad `--ca-cert` is a usage mistake).
fn usable_client(ca_cert: Option<&PathBuf>) -> Result<reqwest::Client, ExitCode> {
    client(ca_cert).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Why Verify and Save failed, in words for the user.
#[derive(Debug, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The endpoint answered, but not with 2xx.
    Status(u16),
    /// 2xx, but the body does not contain the challenge.
    NoChallenge(u16),
    /// No HTTP answer: refused, timeout, TLS, DNS...
    Transport(String),
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyFailure::Status(s) => write!(f, "the endpoint answered HTTP {s}, not 2xx"),
            VerifyFailure::NoChallenge(s) => write!(
                f,
                "the endpoint answered HTTP {s} but its body does not contain the challenge"
            ),
            VerifyFailure::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// Performs Verify and Save (PROTOCOL.md section 2) against `url`.
pub async fn verify(
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: &str,
    method: Method,
) -> Result<(), VerifyFailure> {
    let challenge = challenge::new_challenge();
    let request = match method {
        Method::Post => client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE_JSON)
            .body(challenge::post_body(token, &challenge)),
        Method::Get => {
            let mut url = url.clone();
            url.query_pairs_mut()
                .append_pair(challenge::CHALLENGE_FIELD, &challenge)
                .append_pair(challenge::TOKEN_FIELD, token);
            client
                .get(url)
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE_JSON)
        }
    };
    let response = request
        .header(APPLICATION_NAME_HEADER, APPLICATION_NAME)
        .header(reqwest::header::CONNECTION, "close")
        .timeout(VERIFY_TIMEOUT)
        .send()
        .await
        .map_err(|e| VerifyFailure::Transport(describe_transport_error(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(VerifyFailure::Status(status.as_u16()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| VerifyFailure::Transport(describe_transport_error(&e)))?;
    if challenge::answer_contains(&body, &challenge) {
        Ok(())
    } else {
        Err(VerifyFailure::NoChallenge(status.as_u16()))
    }
}

/// Names the kind of transport failure first (refused, timeout, TLS, DNS), then the details.
pub fn describe_transport_error(e: &reqwest::Error) -> String {
    let chain = wharf_destination::error_chain(e);
    let lower = chain.to_lowercase();
    let kind = if e.is_timeout() {
        "timeout"
    } else if lower.contains("dns") || lower.contains("failed to lookup") {
        "DNS error"
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
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

pub async fn verify_cmd(args: &VerifyArgs) -> ExitCode {
    let client = match usable_client(args.ca_cert.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match verify(&client, &args.url, &args.token, args.method).await {
        Ok(()) => {
            println!("Success!");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("Verification failed: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Prepares a file for sending as Redox would: a data model message gets `Meta.Logs` (a fresh
/// log ID and attempt ID) when it has none; anything else goes byte for byte. Returns the body
/// and its content type.
pub fn prepare_message(bytes: Vec<u8>) -> (Vec<u8>, &'static str) {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return (bytes, CONTENT_TYPE_JSON);
    };
    if value.get("resourceType").and_then(|v| v.as_str()) == Some("Bundle") {
        return (bytes, CONTENT_TYPE_FHIR_JSON);
    }
    let Some(meta) = value.get_mut("Meta").and_then(|m| m.as_object_mut()) else {
        return (bytes, CONTENT_TYPE_JSON);
    };
    let has_logs = meta
        .get("Logs")
        .and_then(|l| l.as_array())
        .is_some_and(|l| !l.is_empty());
    if has_logs {
        return (bytes, CONTENT_TYPE_JSON);
    }
    meta.insert(
        "Logs".into(),
        serde_json::json!([{
            "ID": uuid::Uuid::new_v4().to_string(),
            "AttemptID": uuid::Uuid::new_v4().to_string(),
        }]),
    );
    (
        serde_json::to_vec(&value).expect("a parsed value serialises"),
        CONTENT_TYPE_JSON,
    )
}

pub async fn send_cmd(args: &SendArgs) -> ExitCode {
    let client = match usable_client(args.ca_cert.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for (n, path) in args.files.iter().enumerate() {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let (body, content_type) = prepare_message(bytes);
        let result = client
            .post(args.url.clone())
            .timeout(SEND_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(VERIFICATION_TOKEN_HEADER, &args.token)
            .bearer_auth(&args.token)
            .body(body)
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                println!("{}: {}", path.display(), response.status());
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                println!("{}: {status} {}", path.display(), text.trim());
                stop_note(args.files.len() - n - 1);
                return ExitCode::FAILURE;
            }
            Err(e) => {
                println!("{}: {}", path.display(), describe_transport_error(&e));
                stop_note(args.files.len() - n - 1);
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Like Redox's queue, `send` stops at the first failure so the endpoint never sees a later
/// message before an earlier one.
fn stop_note(remaining: usize) {
    if remaining > 0 {
        println!("stopped: {remaining} later file(s) not sent, to keep their order");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_logs_only_when_absent() {
        let (body, ct) = prepare_message(br#"{"Meta":{"DataModel":"PatientAdmin"}}"#.to_vec());
        assert_eq!(ct, CONTENT_TYPE_JSON);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Meta"]["Logs"][0]["ID"].as_str().unwrap().len(), 36);
        let original = br#"{"Meta":{"Logs":[{"ID":"x"}]}}"#.to_vec();
        assert_eq!(prepare_message(original.clone()).0, original);
    }

    #[test]
    fn fhir_and_non_json_pass_through() {
        let fhir = br#"{"resourceType":"Bundle","type":"message"}"#.to_vec();
        assert_eq!(
            prepare_message(fhir.clone()),
            (fhir, CONTENT_TYPE_FHIR_JSON)
        );
        let junk = b"not json".to_vec();
        assert_eq!(prepare_message(junk.clone()), (junk, CONTENT_TYPE_JSON));
    }
}
