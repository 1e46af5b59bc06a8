//! Integration tests of the destination server over real sockets: one binary, one module per
//! capability. Each test starts its own server on a free port with its own data directory.

mod challenge;
mod forwarding;
mod interop;
mod messages;
mod operations;
mod queries;
mod strategies;
mod tls;

use std::time::Duration;
use wharf_destination::{Config, Running};
use wharf_store::{InboxReader, MessageSummary};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A running server with its own temporary data directory.
pub struct Harness {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub client: reqwest::Client,
    text: String,
}

/// One Development destination at `/redox` with [`TOKEN`], plus `extra` keys.
pub fn destination(extra: &str) -> String {
    format!(
        "[[destinations]]\nname = \"Acme\"\npath = \"/redox\"\nenvironment = \"Development\"\nverification_token = \"{TOKEN}\"\n{extra}\n"
    )
}

impl Harness {
    pub async fn start(destinations: &str) -> Harness {
        Harness::start_with(destinations, "", reqwest::Client::new(), "http").await
    }

    pub async fn start_with(
        destinations: &str,
        top: &str,
        client: reqwest::Client,
        scheme: &str,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{top}\n{destinations}",
            dir.path().join("data").display()
        );
        let running = start(&text).await;
        let base = format!("{scheme}://localhost:{}", running.local_addr().port());
        Harness {
            running: Some(running),
            dir,
            base,
            client,
            text,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs `body` to `path` with the token in the `verification-token` header (if any).
    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header("verification-token", token);
        }
        request.send().await.unwrap()
    }

    pub fn inbox(&self) -> Vec<MessageSummary> {
        InboxReader::open_existing(&self.dir.path().join("data"))
            .unwrap()
            .list(None, 100_000)
            .unwrap()
    }

    /// Stops the server gracefully and starts it again on the same data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.restart_stopped().await;
    }

    /// Starts a stopped harness again on the same data directory.
    pub async fn restart_stopped(&mut self) {
        let running = start(&self.text).await;
        let scheme = self.base.split(':').next().unwrap().to_owned();
        self.base = format!("{scheme}://localhost:{}", running.local_addr().port());
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

async fn start(text: &str) -> Running {
    let config = Config::parse(text, &wharf_destination::config::ProcessEnv).unwrap();
    wharf_destination::start(config).await.unwrap()
}

/// A data model notification whose `Meta.Logs[0].ID` is `log_id`.
pub fn notification(log_id: &str) -> String {
    format!(
        r#"{{"Meta":{{"DataModel":"PatientAdmin","EventType":"Arrival","Logs":[{{"ID":"{log_id}","AttemptID":"{}"}}]}},"Patient":{{"Identifiers":[]}}}}"#,
        uuid::Uuid::new_v4()
    )
}

pub const WAIT: Duration = Duration::from_secs(20);
