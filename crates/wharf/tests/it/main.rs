//! Integration tests of the `wharf` binary itself: configuration mistakes, Redox's side in
//! miniature (`verify`, `send`), the inbox listing, and crash safety under SIGKILL.
//!
//! Like the servers' own suites, these run on SQLite by default and on PostgreSQL with
//! `WHARF_TEST_BACKEND=postgres` (each test then gets a schema of its own: [`TestDir`]).

mod auth;
mod cli;
mod crash;
mod faults;
mod ops;
mod platform;
mod resend;
mod setup_dev;
mod shared_database;
mod soak;
mod ssrf;
mod up;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

pub const TOKEN: &str = "cli-token-0123456789abcdef-012345";

pub fn wharf() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
    command.env_remove("RUST_LOG").kill_on_drop(true);
    command
}

pub async fn run(args: &[&str]) -> Output {
    wharf().args(args).output().await.unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test's directory and its database: SQLite files under the directory, or with
/// `WHARF_TEST_BACKEND=postgres` a PostgreSQL schema of the test's own, dropped with this.
pub struct TestDir {
    dir: tempfile::TempDir,
    pg: Option<wharf_testkit::postgres::PgSchema>,
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir {
            dir: tempfile::tempdir().unwrap(),
            pg: wharf_testkit::postgres::backend_is_postgres()
                .then(wharf_testkit::postgres::PgSchema::create),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The PostgreSQL URL the test's servers use, when not on SQLite.
    pub fn database_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|pg| pg.url.as_str())
    }

    /// The configuration line selecting the test's database (empty on SQLite).
    pub fn database_toml(&self) -> String {
        self.database_url()
            .map(|url| format!("database_url = {url:?}\n"))
            .unwrap_or_default()
    }

    /// The inbox of a destination server whose `data_dir` is `data_dir` under this test.
    pub fn inbox(&self, data_dir: &Path) -> wharf_store::InboxReader {
        let database = wharf_store::Database::from_config(data_dir, self.database_url());
        wharf_store::InboxReader::open_database(&database).unwrap()
    }
}

/// Writes a destination config for one Development destination at `/redox`.
pub fn write_config(dir: &TestDir, port: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.path().join("destination.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{}[[destinations]]\nname = \"Acme\"\npath = \"/redox\"\nenvironment = \"Development\"\nverification_token = \"{TOKEN}\"\n{extra}\n",
            dir.path().join("data").display(),
            dir.database_toml()
        ),
    )
    .unwrap();
    path
}

/// Waits until the server at `addr` answers its health check.
pub async fn wait_healthy(addr: SocketAddr) {
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server at {addr} did not become healthy");
}
