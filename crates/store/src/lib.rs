//! Durable storage for Wharf.
//!
//! The destination's **inbox** keeps every message a destination answered 200 for, in
//! embedded SQLite. Writes go through one [`writer`] thread that commits in batches
//! (group commit), so many concurrent requests share one `fsync`; reads use their own
//! connection, which WAL mode lets run beside the writer.
//!
//! * [`inbox`]: the inbox's rows, reading them, and the handle the server holds.
//! * [`writer`]: the group-commit writer thread and its backpressure.
//! * [`engine`]: the engine's organizations, environments and destinations.
//! * [`schema`]: opening a database file and migrating it.
//! * `checkpoint`: keeping the WAL small without stalling the writer.

mod checkpoint;
pub mod engine;
pub mod inbox;
pub mod schema;
pub mod writer;

pub use inbox::{
    Body, INBOX_FILE, Inbox, InboxOptions, InboxReader, Kept, MessageStatus, MessageSummary,
    NewMessage, StoredMessage,
};
pub use writer::KeepError;

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
    #[error("the inbox could not commit, so nothing in that batch was kept: {0}")]
    CommitFailed(String),
    #[error("the inbox writer has stopped; the server is shutting down")]
    WriterStopped,
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
