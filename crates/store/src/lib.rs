//! Durable storage for Wharf, on embedded SQLite (the default, one process) or PostgreSQL
//! (several engine or destination processes sharing one database), chosen by [`Database`].
//!
//! The destination's **inbox** keeps every message a destination answered 200 for. Writes go
//! through one [`writer`] thread that commits in batches (group commit), so many concurrent
//! requests share one flush; reads run beside it. The engine's store keeps its records, logs
//! and queues; its hot writes arrive batched as well ([`engine::EngineStore::apply`]).
//!
//! * [`inbox`]: the inbox's rows, reading them, and the handle the server holds.
//! * [`writer`]: the group-commit writer thread and its backpressure.
//! * [`engine`]: the engine's records and queues.
//! * `sqlite`: opening and migrating SQLite files; each store's SQLite side; WAL checkpoints.
//! * [`postgres`]: the pool and runtime, migrations, each store's PostgreSQL side, leases.

pub mod engine;
pub mod inbox;
pub mod postgres;
mod priority;
mod sqlite;
pub mod writer;

pub use inbox::{
    Body, INBOX_FILE, Inbox, InboxOptions, InboxReader, Kept, ListQuery, MessageStatus,
    MessageSummary, NewMessage, StoredMessage, discard_malformed,
};
pub use writer::{DEFAULT_WAL_RESET_BYTES, KeepError};

/// A storage failure. The text says what failed; callers add what the user should do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database at {path} has schema version {found}, newer than this binary knows ({known}); run a newer wharf or point data_dir elsewhere"
    )]
    SchemaTooNew {
        path: std::path::PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "the database {database} has schema version {found} of the {component} tables, newer than this binary knows ({known}); run a newer wharf or point database_url elsewhere"
    )]
    DatabaseSchemaTooNew {
        database: String,
        component: &'static str,
        found: i64,
        known: i64,
    },
    #[error(
        "another process is already serving the inbox in {path}: SQLite serves one process at a time; stop the other one, give this server a data_dir of its own, or share a PostgreSQL database_url between servers"
    )]
    InboxInUse { path: std::path::PathBuf },
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    #[error("the inbox could not commit, so nothing in that batch was kept: {0}")]
    CommitFailed(String),
    #[error("the inbox writer has stopped; the server is shutting down")]
    WriterStopped,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message (and detail) says what went wrong; the generic text does not.
        match e.as_db_error() {
            Some(db) => StoreError::Postgres(match db.detail() {
                Some(detail) => format!("{} ({detail})", db.message()),
                None => db.message().to_owned(),
            }),
            None => StoreError::Postgres(e.to_string()),
        }
    }
}

/// Connections per destination server unless configured: the writer commits one batch at a
/// time, so a few more for the forwarders and `/metrics` suffice.
pub const DEFAULT_INBOX_MAX_CONNECTIONS: usize = 8;

/// Where a store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file in this data directory (the default).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database (`postgres://...`), shared by several processes.
    Postgres(String),
}

impl Database {
    /// PostgreSQL when `database_url` is set, else SQLite files in `data_dir`.
    pub fn from_config(data_dir: &std::path::Path, database_url: Option<&str>) -> Database {
        match database_url {
            Some(url) => Database::Postgres(url.to_owned()),
            None => Database::Sqlite(data_dir.to_owned()),
        }
    }

    /// For messages: the directory, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(dir) => format!("SQLite in {}", dir.display()),
            Database::Postgres(url) => postgres::describe(url),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Milliseconds since the Unix epoch: how every timestamp is stored.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 text (UTC) of a timestamp in milliseconds since the Unix epoch.
pub fn rfc3339(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| millis.to_string())
}
