//! Helpers shared by the store's test binaries.

use wharf_store::engine::{EngineStore, EngineStoreOptions, LogRecord, LogStatus, LogType};
use wharf_store::{Database, Inbox, InboxOptions};
use wharf_testkit::postgres::PgSchema;

/// One backend's database for one test: SQLite in a temporary directory, or PostgreSQL in a
/// fresh schema of the test server (`WHARF_TEST_DATABASE_URL`), dropped afterwards.
// Each test binary compiles this module and uses only part of it.
#[allow(dead_code)]
pub struct Db {
    pub database: Database,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<PgSchema>,
}

#[allow(dead_code)]
impl Db {
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        Db {
            database: Database::Sqlite(dir.path().to_owned()),
            _dir: Some(dir),
            _schema: None,
        }
    }

    pub fn postgres() -> Db {
        let schema = PgSchema::create();
        Db {
            database: Database::Postgres(schema.url.clone()),
            _dir: None,
            _schema: Some(schema),
        }
    }

    pub fn engine(&self) -> EngineStore {
        EngineStore::open_database(&self.database, &EngineStoreOptions::default()).unwrap()
    }

    pub fn inbox(&self) -> Inbox {
        Inbox::open_database(&self.database, InboxOptions::default()).unwrap()
    }
}

/// A log queued for `destination`, ready to enqueue.
pub fn queued(id: &str, destination: &str) -> LogRecord {
    LogRecord {
        seq: 0,
        subscription_id: None,
        resends: 0,
        log_type: LogType::Send,
        id: id.into(),
        organization_id: "o".into(),
        destination_id: destination.into(),
        source: "s".into(),
        data_model: None,
        event_type: None,
        content_type: "application/json".into(),
        body: b"{}".to_vec(),
        status: LogStatus::Pending,
        attempts: 0,
        next_attempt_at: 0,
        created_at: 1,
        updated_at: 1,
    }
}
