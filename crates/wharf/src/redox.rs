//! Redox's side in miniature: `wharf verify` (Verify and Save) and `wharf send` (messages as
//! Redox pushes them), for testing any endpoint from the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use wharf_protocol::{CONTENT_TYPE_FHIR_JSON, CONTENT_TYPE_JSON, VERIFICATION_TOKEN_HEADER};
/// How long `send` waits for each message (docs/PROTOCOL.md section 6).
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
    /// Straight to a destination: `URL FILE...` (with --token). Through an engine (with
    /// --engine and --key): `FILE...`. Files are Redox data model JSON or FHIR bundles, sent in
    /// this order, before any --example.
    #[arg(required_unless_present = "example", value_name = "URL|FILE")]
    targets: Vec<String>,
    /// Also send these bundled examples, which travel inside the binary (so this works from any
    /// directory): adt, scheduling, fhir, query; several as `--example adt,fhir`. See
    /// `wharf examples`.
    #[arg(long, value_name = "NAME", value_delimiter = ',', value_parser = crate::examples::parse)]
    example: Vec<&'static crate::examples::Example>,
    /// The destination's verification token (sending straight to a destination).
    #[arg(long, env = "WHARF_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Submit through this engine's /endpoint instead of straight to a destination.
    #[arg(long, value_name = "URL")]
    engine: Option<reqwest::Url>,
    /// The source API key for --engine.
    #[arg(long, env = "WHARF_SOURCE_KEY", hide_env_values = true)]
    key: Option<String>,
    /// With --engine: the destination ID to address (sets Meta.Destinations, or the
    /// `destination` query parameter for FHIR bundles). Without it, files must name their own.
    #[arg(long)]
    destination: Option<String>,
    /// Also trust this PEM CA certificate (for endpoints with a private CA).
    #[arg(long)]
    ca_cert: Option<PathBuf>,
}

/// Where `send` sends, and with which secret.
enum SendTo {
    Destination {
        url: reqwest::Url,
        token: String,
    },
    Engine {
        endpoint: reqwest::Url,
        key: String,
        destination: Option<String>,
    },
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// Why `--ca-cert` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaCertError {
    #[error("cannot read --ca-cert {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--ca-cert: {0}")]
    Client(#[from] wharf_delivery::client::ClientError),
}

/// The outbound client, trusting `--ca-cert` too when given.
fn client(ca_cert: Option<&PathBuf>) -> Result<reqwest::Client, CaCertError> {
    let pem = ca_cert
        .map(|path| {
            std::fs::read(path).map_err(|source| CaCertError::Read {
                path: path.clone(),
                source,
            })
        })
        .transpose()?;
    Ok(wharf_delivery::client::build(pem.as_deref())?)
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
    let (to, files): (SendTo, &[String]) = match (&args.engine, &args.key) {
        (Some(engine), Some(key)) => match engine.join("/endpoint") {
            Ok(endpoint) => (
                SendTo::Engine {
                    endpoint,
                    key: key.clone(),
                    destination: args.destination.clone(),
                },
                &args.targets[..],
            ),
            Err(e) => return usage(&format!("--engine {engine} is not a base URL: {e}")),
        },
        (Some(_), None) => return usage("--engine needs --key (the source API key)"),
        (None, _) => {
            let Some(token) = args.token.clone() else {
                return usage(
                    "sending straight to a destination needs --token (or use --engine and --key)",
                );
            };
            let Some(first) = args.targets.first() else {
                return usage("give the destination's URL (or use --engine and --key)");
            };
            let Ok(url) = first.parse::<reqwest::Url>() else {
                return usage(&format!(
                    "{first:?} is not a URL: give the destination's URL before the files"
                ));
            };
            if args.targets.len() < 2 && args.example.is_empty() {
                return usage("no files to send after the URL (or add --example NAME)");
            }
            (SendTo::Destination { url, token }, &args.targets[1..])
        }
    };
    let client = match usable_client(args.ca_cert.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Every file is read before anything is sent, so a missing one stops nothing half way.
    let mut messages: Vec<(String, Vec<u8>)> = Vec::with_capacity(files.len());
    for path in files {
        match std::fs::read(path) {
            Ok(bytes) => messages.push((path.clone(), bytes)),
            Err(e) => {
                let here = std::env::current_dir()
                    .map(|d| format!(" (relative paths are taken from {})", d.display()))
                    .unwrap_or_default();
                eprintln!(
                    "error: cannot read {path}: {e}{here}; the bundled examples need no file: --example NAME"
                );
                return ExitCode::from(2);
            }
        }
    }
    messages.extend(
        args.example
            .iter()
            .map(|e| (format!("example {}", e.name), e.body.as_bytes().to_vec())),
    );
    let total = messages.len();
    let progress = Progress::new(total);
    for (n, (path, bytes)) in messages.into_iter().enumerate() {
        let (body, content_type) = prepare_message(bytes);
        let request = match &to {
            SendTo::Destination { url, token } => client
                .post(url.clone())
                .header(VERIFICATION_TOKEN_HEADER, token)
                .bearer_auth(token)
                .body(body),
            SendTo::Engine {
                endpoint,
                key,
                destination,
            } => {
                let mut url = endpoint.clone();
                let body = match destination {
                    Some(id) if content_type == CONTENT_TYPE_FHIR_JSON => {
                        url.query_pairs_mut().append_pair("destination", id);
                        body
                    }
                    Some(id) => address(body, id),
                    None => body,
                };
                client.post(url).bearer_auth(key).body(body)
            }
        };
        let result = request
            .timeout(SEND_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                let status = response.status();
                let logs = response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["Meta"]["Logs"].as_array().cloned())
                    .filter(|_| matches!(to, SendTo::Engine { .. }))
                    .map(|logs| {
                        let ids: Vec<_> = logs
                            .iter()
                            .filter_map(|l| l["ID"].as_str().map(str::to_owned))
                            .collect();
                        format!(" (log {})", ids.join(", "))
                    })
                    .unwrap_or_default();
                progress.line(&format!("{path}: {status}{logs}"));
                progress.advance();
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                progress.line(&format!("{path}: {status} {}", text.trim()));
                progress.abandon();
                stop_note(total - n - 1);
                return ExitCode::FAILURE;
            }
            Err(e) => {
                progress.line(&format!(
                    "{path}: {}",
                    wharf_delivery::describe_transport_error(&e)
                ));
                progress.abandon();
                stop_note(total - n - 1);
                return ExitCode::FAILURE;
            }
        }
    }
    progress.finish();
    ExitCode::SUCCESS
}

/// How `send` reports: on a terminal with several files, a progress bar (files sent, rate,
/// time left) under the per-file lines; otherwise (a pipe, a log, one file) plain lines only,
/// so scripts and CI logs get exactly one line per file.
enum Progress {
    Bar(indicatif::ProgressBar),
    Plain,
}

impl Progress {
    fn new(files: usize) -> Self {
        use std::io::IsTerminal;
        if files < 2 || !std::io::stdout().is_terminal() {
            return Progress::Plain;
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(files as u64),
            indicatif::ProgressDrawTarget::stdout(),
        );
        let style = indicatif::ProgressStyle::with_template(
            "{bar:32} {pos}/{len} files sent, {per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Progress::Bar(bar)
    }

    fn line(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.println(text),
            Progress::Plain => println!("{text}"),
        }
    }

    fn advance(&self) {
        if let Progress::Bar(bar) = self {
            bar.inc(1);
        }
    }

    fn abandon(&self) {
        if let Progress::Bar(bar) = self {
            bar.abandon();
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// Addresses a data model message to one destination: `Meta.Destinations = [{ID}]`.
fn address(body: Vec<u8>, destination: &str) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    match value.get_mut("Meta").and_then(|m| m.as_object_mut()) {
        Some(meta) => {
            meta.insert(
                "Destinations".into(),
                serde_json::json!([{ "ID": destination }]),
            );
            serde_json::to_vec(&value).unwrap_or(body)
        }
        None => body,
    }
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
