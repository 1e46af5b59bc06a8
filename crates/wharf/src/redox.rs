//! Redox's side in miniature: `wharf verify` (Verify and Save) and `wharf send` (messages as
//! Redox pushes them), for testing any endpoint from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use wharf_protocol::{CONTENT_TYPE_FHIR_JSON, CONTENT_TYPE_JSON, VERIFICATION_TOKEN_HEADER};
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

/// The outbound client, trusting `--ca-cert` too when given.
pub fn client(ca_cert: Option<&PathBuf>) -> Result<reqwest::Client, String> {
    let pem = ca_cert
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| format!("cannot read --ca-cert {}: {e}", path.display()))
        })
        .transpose()?;
    wharf_delivery::client::build(pem.as_deref()).map_err(|e| format!("--ca-cert: {e}"))
}

/// [`client`], or exit status 2 after saying why (a bad `--ca-cert` is a usage mistake).
fn usable_client(ca_cert: Option<&PathBuf>) -> Result<reqwest::Client, ExitCode> {
    client(ca_cert).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub async fn verify_cmd(args: &VerifyArgs) -> ExitCode {
    let client = match usable_client(args.ca_cert.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let method = match args.method {
        Method::Post => wharf_delivery::Method::Post,
        Method::Get => wharf_delivery::Method::Get,
    };
    match wharf_delivery::verify(&client, &args.url, &args.token, method).await {
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
                println!(
                    "{}: {}",
                    path.display(),
                    wharf_delivery::describe_transport_error(&e)
                );
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
