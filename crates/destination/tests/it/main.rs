//! Integration tests of the destination server over real sockets: one binary, one module per
//! capability. Each test starts its own server on a free port with its own data directory.

mod challenge;
mod forwarding;
mod guessing;
mod hostile;
mod interop;
mod messages;
mod operations;
mod queries;
mod strategies;
mod tls;

use std::time::Duration;
use wharf_destination::{Config, Running};
use wharf_store::{InboxReader, MessageSummary};

pub const TOKEN: &str = "test-token-0123456789abcdef-0123456789abcdef";

/// A running server with its own temporary data directory.
pub struct Harness {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub client: reqwest::Client,
    /// The server's PostgreSQL schema when the suite runs on PostgreSQL
    /// (`WHARF_TEST_BACKEND=postgres`), dropped with the harness.
    pub pg: Option<wharf_testkit::postgres::PgSchema>,
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
        let pg = wharf_testkit::postgres::backend_is_postgres()
            .then(wharf_testkit::postgres::PgSchema::create);
        let dir = tempfile::tempdir().unwrap();
        Harness::start_on(dir, pg, destinations, top, client, scheme).await
    }

    /// Like [`Harness::start_with`], with the data directory `dir/data` inside a directory the
    /// caller prepared (for example with a small file system mounted there).
    /// Always on SQLite: such tests are about SQLite's files.
    pub async fn start_in(
        dir: tempfile::TempDir,
        destinations: &str,
        top: &str,
        client: reqwest::Client,
        scheme: &str,
    ) -> Harness {
        Harness::start_on(dir, None, destinations, top, client, scheme).await
    }

    /// A server on PostgreSQL in `pg`'s schema, or on SQLite in `dir/data` without one.
    pub async fn start_on(
        dir: tempfile::TempDir,
        pg: Option<wharf_testkit::postgres::PgSchema>,
        destinations: &str,
        top: &str,
        client: reqwest::Client,
        scheme: &str,
    ) -> Harness {
        let database = pg
            .as_ref()
            .map(|s| format!("database_url = \"{}\"\n", s.url))
            .unwrap_or_default();
        // The port is chosen before the start so `public_url` (from which token endpoints'
        // URLs, the `aud` of client assertions, are built) can name it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let public_url = if top.contains("public_url") {
            String::new()
        } else {
            format!("public_url = \"{scheme}://localhost:{port}\"\n")
        };
        let text = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{database}{public_url}{top}\n{destinations}",
            dir.path().join("data").display()
        );
        let running = start(&text).await;
        let base = format!("{scheme}://localhost:{}", running.local_addr().port());
        Harness {
            running: Some(running),
            dir,
            base,
            client,
            pg,
            text,
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.running.as_ref().unwrap().local_addr().port()
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
        let database = wharf_store::Database::from_config(
            &self.dir.path().join("data"),
            self.pg.as_ref().map(|s| s.url.as_str()),
        );
        InboxReader::open_database(&database)
            .unwrap()
            .list(&wharf_store::ListQuery::oldest(100_000))
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
