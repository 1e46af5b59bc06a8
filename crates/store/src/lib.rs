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

mod column;
pub mod engine;
pub mod inbox;
pub mod postgres;
mod priority;
pub mod private;
mod sqlite;
pub mod writer;

pub use inbox::{
    Body, INBOX_FILE, Inbox, InboxOptions, InboxReader, Kept, ListQuery, MessageStatus,
    MessageSummary, NewMessage, SharedReplays, SharedToken, StoredMessage, dead_letter,
    discard_malformed, replay_dead_letters,
};
pub use writer::{DEFAULT_WAL_RESET_BYTES, KeepError};

/// A storage failure. The text says what failed; callers add what the user should do, and
/// [`StoreError::kind`] says how to answer the request that met it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A data directory or database file other users of the machine could read: it holds PHI
    /// or sealed secrets, so the server will not use it.
    #[error(
        "{} can be read by other users of this machine (mode {mode:o}) and holds PHI or sealed secrets: run `chmod {wanted} {}` (or `chmod -R go-rwx` on the data directory) and start again",
        path.display(), path.display()
    )]
    Exposed {
        path: std::path::PathBuf,
        mode: u32,
        wanted: &'static str,
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
    /// PostgreSQL refused the work for a reason retrying will not cure (a constraint, the
    /// schema, the URL or TLS settings): [`StoreErrorKind::Other`].
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The database cannot do the work now and did none of it:
    /// [`StoreErrorKind::Unavailable`].
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The connection broke, or the deadline passed, after the commit was sent:
    /// [`StoreErrorKind::OutcomeUnknown`].
    #[error(
        "the database connection was lost after the commit was sent, so the write may or may not have been committed: {0}"
    )]
    OutcomeUnknown(String),
    #[error("the inbox could not commit, so nothing in that batch was kept: {0}")]
    CommitFailed(String),
    /// The store refused a write for lack of space (SQLite's `SQLITE_FULL`, which is how it
    /// reports `ENOSPC`; PostgreSQL's `disk_full`, 53100): [`StoreErrorKind::Unavailable`].
    /// `database` is empty until the caller that knows it names it.
    #[error("{}", no_space_text(database, *needed, *free, detail))]
    NoSpace {
        database: String,
        /// Bytes the refused write needed at least (the message's size), where known.
        needed: Option<u64>,
        /// Bytes free on the filesystem holding the database, where known (SQLite).
        free: Option<u64>,
        /// What the database said.
        detail: String,
    },
    #[error("the inbox writer has stopped; the server is shutting down")]
    WriterStopped,
}

/// What a [`StoreError`] means for the request that met it, so a server can answer it without
/// reading the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// The store cannot do the work now, and **nothing of it was committed**: PostgreSQL
    /// cannot be reached or did not answer in time (stopped, down, partitioned, its pool or a
    /// statement deadline passed before the commit was sent), is starting up or shutting
    /// down, has too many connections, is read-only (a hot standby after a failover) or out of
    /// disk or memory, or cancelled the statement (a lock or statement timeout, a
    /// serialization failure or deadlock, rolled back); SQLite stayed busy or locked past its
    /// busy timeout, is read-only, or hit a disk I/O error or a full disk; the inbox writer
    /// has stopped (shutdown). Retrying later can succeed: answer 503 with `Retry-After`.
    Unavailable,
    /// The commit was sent and its answer never came (the connection broke, or the deadline
    /// passed, after `COMMIT` left; SQLite reported an I/O error while committing): the write
    /// may or may not have been committed, and retrying it may apply it twice. Answer 503
    /// saying so, never "nothing was done".
    OutcomeUnknown,
    /// Anything else: a bug, a constraint violation, a schema, configuration or corrupt-file
    /// problem. Retrying does not help: answer 500 and log it.
    Other,
}

impl StoreError {
    /// How a request that met this error should be answered (see [`StoreErrorKind`]).
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Sqlite(e) => sqlite_kind(e),
            StoreError::Unavailable(_) | StoreError::WriterStopped | StoreError::NoSpace { .. } => {
                StoreErrorKind::Unavailable
            }
            StoreError::OutcomeUnknown(_) => StoreErrorKind::OutcomeUnknown,
            StoreError::DataDir { .. }
            | StoreError::Exposed { .. }
            | StoreError::SchemaTooNew { .. }
            | StoreError::DatabaseSchemaTooNew { .. }
            | StoreError::InboxInUse { .. }
            | StoreError::Postgres(_)
            | StoreError::CommitFailed(_) => StoreErrorKind::Other,
        }
    }

    /// An error of the same kind with the same text: for answering every writer of a failed
    /// batch (a `StoreError` is not `Clone`, since rusqlite's errors are not). An
    /// [`StoreErrorKind::Other`] error becomes [`StoreError::CommitFailed`].
    pub fn copy(&self) -> StoreError {
        match self {
            StoreError::NoSpace {
                database,
                needed,
                free,
                detail,
            } => StoreError::NoSpace {
                database: database.clone(),
                needed: *needed,
                free: *free,
                detail: detail.clone(),
            },
            other if other.is_no_space() => StoreError::NoSpace {
                database: String::new(),
                needed: None,
                free: None,
                detail: other.to_string(),
            },
            StoreError::Unavailable(text) => StoreError::Unavailable(text.clone()),
            StoreError::OutcomeUnknown(text) => StoreError::OutcomeUnknown(text.clone()),
            StoreError::CommitFailed(text) => StoreError::CommitFailed(text.clone()),
            StoreError::Postgres(text) => StoreError::Postgres(text.clone()),
            StoreError::WriterStopped => StoreError::WriterStopped,
            other => match other.kind() {
                StoreErrorKind::Unavailable => StoreError::Unavailable(other.to_string()),
                StoreErrorKind::OutcomeUnknown => StoreError::OutcomeUnknown(other.to_string()),
                StoreErrorKind::Other => StoreError::CommitFailed(other.to_string()),
            },
        }
    }

    /// Whether the store refused the write for lack of space: SQLite's `SQLITE_FULL` (its
    /// answer to `ENOSPC`, and to a database at its `max_page_count`), PostgreSQL's
    /// `disk_full` (53100).
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } => true,
            StoreError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            StoreError::Unavailable(text) => text.starts_with(&format!("{PG_ANSWERED}53100")),
            _ => false,
        }
    }

    /// This error as [`StoreError::NoSpace`] naming `database`, with the bytes free on the
    /// filesystem holding `dir` (SQLite's directory; `None` on PostgreSQL) and `needed`, when
    /// it is a refusal for lack of space; any other error unchanged.
    pub fn no_space_in(
        self,
        database: String,
        dir: Option<&std::path::Path>,
        needed: Option<u64>,
    ) -> StoreError {
        if !self.is_no_space() {
            return self;
        }
        let detail = match self {
            StoreError::NoSpace { detail, .. } => detail,
            other => other.to_string(),
        };
        StoreError::NoSpace {
            database,
            needed,
            free: dir.and_then(free_bytes),
            detail,
        }
    }

    /// This error, met while the commit was being sent or awaited: a lost connection there
    /// leaves the outcome unknown, and so does an SQLite I/O error (the commit record may be
    /// in the WAL without its sync having succeeded). An answer from the server (a database
    /// error) still means the commit did not happen.
    pub(crate) fn at_commit(self) -> StoreError {
        match &self {
            StoreError::Unavailable(text) if !text.starts_with(PG_ANSWERED) => {
                StoreError::OutcomeUnknown(text.clone())
            }
            StoreError::Sqlite(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure) =>
            {
                StoreError::OutcomeUnknown(self.to_string())
            }
            _ => self,
        }
    }
}

/// The text of [`StoreError::NoSpace`]: the cause first, then where and how much.
fn no_space_text(database: &str, needed: Option<u64>, free: Option<u64>, detail: &str) -> String {
    let mut text = String::from("no space left on the device");
    if !database.is_empty() {
        text.push_str(" holding ");
        text.push_str(database);
    }
    match (needed, free) {
        (Some(needed), Some(free)) => text.push_str(&format!(
            ": this write needs at least {needed} bytes and the filesystem has {free} bytes free"
        )),
        (Some(needed), None) => {
            text.push_str(&format!(": this write needs at least {needed} bytes"))
        }
        (None, Some(free)) => text.push_str(&format!(": the filesystem has {free} bytes free")),
        (None, None) => {}
    }
    text.push_str(&format!(
        "; free space there (or lift the database's size limit) and it accepts writes again ({detail})"
    ));
    text
}

/// Bytes available to this process on the filesystem holding `path`, if it can be asked.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// How SQLite's failures map to kinds: the busy handler gave up (another connection held the
/// lock past `busy_timeout`), or the disk cannot take the write, is transient; the rest is not.
fn sqlite_kind(e: &rusqlite::Error) -> StoreErrorKind {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(
            DatabaseBusy
            | DatabaseLocked
            | DiskFull
            | SystemIoFailure
            | ReadOnly
            | OutOfMemory
            | CannotOpen
            | FileLockingProtocolFailed,
        ) => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Other,
    }
}

/// Prefix of the text of an [`StoreError::Unavailable`] that the server itself answered with
/// (an SQLSTATE), as opposed to a connection that failed: an answer means the statement, even
/// a `COMMIT`, did not take effect.
const PG_ANSWERED: &str = "PostgreSQL answered ";

/// Whether PostgreSQL's SQLSTATE `code` means "not now" rather than "never".
fn sqlstate_unavailable(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources: disk full, out of memory, too many connections
        || code.starts_with("58") // system error, I/O error
        || matches!(
            code,
            "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now: starting up, shutting down, in recovery
                | "57P05" // idle_session_timeout
                | "57014" // query_canceled: statement_timeout, cancel request
                | "25006" // read_only_sql_transaction: a hot standby
                | "40001" // serialization_failure (rolled back)
                | "40P01" // deadlock_detected (rolled back)
                | "55P03" // lock_not_available: lock_timeout
                | "55000" // object_not_in_prerequisite_state: e.g. recovery in progress
        )
}

/// The kind of a PostgreSQL failure: what the server answered (its SQLSTATE), or whether the
/// connection itself failed (it could not be made, was closed, broke, or timed out), which
/// is `Unavailable` here and `OutcomeUnknown` while committing ([`StoreError::at_commit`]).
/// Anything else (a type the code got wrong, a message it could not parse) is a bug.
pub(crate) fn postgres_kind(e: &tokio_postgres::Error) -> StoreErrorKind {
    match e.as_db_error() {
        Some(db) if sqlstate_unavailable(db.code().code()) => StoreErrorKind::Unavailable,
        Some(_) => StoreErrorKind::Other,
        None if postgres::connection_failed(e) => StoreErrorKind::Unavailable,
        None => StoreErrorKind::Other,
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message (and detail) says what went wrong; the generic text does not.
        let text = match e.as_db_error() {
            Some(db) => {
                let text = match db.detail() {
                    Some(detail) => format!("{} ({detail})", db.message()),
                    None => db.message().to_owned(),
                };
                match postgres_kind(&e) {
                    StoreErrorKind::Unavailable => {
                        return StoreError::Unavailable(format!(
                            "{PG_ANSWERED}{}: {text}",
                            db.code().code()
                        ));
                    }
                    _ => text,
                }
            }
            None => postgres::error_chain(&e),
        };
        match postgres_kind(&e) {
            StoreErrorKind::Unavailable => StoreError::Unavailable(text),
            _ => StoreError::Postgres(text),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: std::ffi::c_int) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn sqlite_failures_are_classified() {
        use rusqlite::ffi::*;
        for code in [
            SQLITE_BUSY,
            SQLITE_LOCKED,
            SQLITE_FULL,
            SQLITE_IOERR,
            SQLITE_IOERR_FSYNC,
            SQLITE_READONLY,
            SQLITE_BUSY_SNAPSHOT,
        ] {
            assert_eq!(sqlite(code).kind(), StoreErrorKind::Unavailable, "{code}");
        }
        for code in [
            SQLITE_CONSTRAINT,
            SQLITE_CORRUPT,
            SQLITE_NOTADB,
            SQLITE_MISUSE,
        ] {
            assert_eq!(sqlite(code).kind(), StoreErrorKind::Other, "{code}");
        }
        assert_eq!(
            StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows).kind(),
            StoreErrorKind::Other
        );
        // While committing, an I/O error leaves the outcome unknown; being busy does not.
        assert_eq!(
            sqlite(SQLITE_IOERR_FSYNC).at_commit().kind(),
            StoreErrorKind::OutcomeUnknown
        );
        assert_eq!(
            sqlite(SQLITE_BUSY).at_commit().kind(),
            StoreErrorKind::Unavailable
        );
    }

    #[test]
    fn sqlstates_are_classified() {
        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "53300", "53100", "25006", "40001",
            "40P01", "55P03", "57014", "58030",
        ] {
            assert!(sqlstate_unavailable(code), "{code}");
        }
        for code in [
            "23505", "42P01", "42703", "22P02", "XX000", "28P01", "3D000",
        ] {
            assert!(!sqlstate_unavailable(code), "{code}");
        }
    }

    #[test]
    fn a_lost_connection_while_committing_is_outcome_unknown() {
        let lost = StoreError::Unavailable("connection closed".into());
        assert_eq!(lost.at_commit().kind(), StoreErrorKind::OutcomeUnknown);
        // The server answered the COMMIT with an error: it did not commit.
        let answered = StoreError::Unavailable(format!("{PG_ANSWERED}57P01: terminating"));
        assert_eq!(answered.at_commit().kind(), StoreErrorKind::Unavailable);
        let refused = StoreError::Postgres("duplicate key".into());
        assert_eq!(refused.at_commit().kind(), StoreErrorKind::Other);
    }

    #[test]
    fn copies_keep_kind_and_text() {
        for error in [
            sqlite(rusqlite::ffi::SQLITE_BUSY),
            StoreError::OutcomeUnknown("lost".into()),
            StoreError::Postgres("no".into()),
            StoreError::WriterStopped,
        ] {
            let copy = error.copy();
            assert_eq!(copy.kind(), error.kind());
            assert!(
                copy.to_string().contains(&error.to_string())
                    || copy.to_string() == error.to_string()
            );
        }
    }
}
