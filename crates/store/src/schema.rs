//! Opening a SQLite database the way every Wharf component needs it, and migrating its schema.
//!
//! Durability settings live here so no connection can forget them: WAL (readers never block
//! the writer) and `synchronous=FULL` (a commit is on disk before it returns, which is what lets
//! the destination answer 200 only for what it kept).

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// Each entry upgrades the schema by one version; the index + 1 is the version it produces.
/// Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: the destination inbox.
    "CREATE TABLE inbox (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
        message_id       TEXT NOT NULL UNIQUE,
        destination      TEXT NOT NULL,
        duplicate_key    TEXT NOT NULL,
        kind             TEXT NOT NULL,
        status           TEXT NOT NULL,
        data_model       TEXT,
        event_type       TEXT,
        log_id           TEXT,
        content_type     TEXT NOT NULL,
        body             BLOB NOT NULL,
        malformed_reason TEXT,
        received_at      INTEGER NOT NULL,
        forward_attempts INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        forwarded_at     INTEGER,
        UNIQUE (destination, duplicate_key)
    );
    CREATE INDEX inbox_pending ON inbox (destination, id) WHERE status = 'received';",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) the database at `path` with Wharf's durability settings.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Brings the schema up to [`SCHEMA_VERSION`], one transaction per step, and refuses a database
/// written by a newer binary rather than guess at its meaning.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        migrate(&mut conn, &path).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn, &path).unwrap_err();
        assert!(err.to_string().contains("newer than this binary"), "{err}");
    }
}
