//! The engine's store on SQLite: three connections to one file.
//!
//! * the **writer's** (`crate::writer`, opened by [`SqliteEngine::writer_connection`]): the hot
//!   writes (ingested logs, attempts), a batch per transaction ([`apply_on`]), with the WAL's
//!   checkpoints on a thread of their own;
//! * a **reader** for the delivery path's reads (queue heads, destinations), which in WAL mode
//!   never waits for the writer;
//! * one behind a mutex for everything else: management operations are a few per second at
//!   most.
//!
//! One process owns the file, so every queue is trivially this process's to work (no leases).

use crate::column::{Col, Column};
use crate::engine::{
    AlertLinkRecord, AlertRuleRecord, ApiKeyRecord, AttemptOutcome, AttemptRecord, AuditRecord,
    AuthCredentialRecord, CountScope, CredentialDeletion, DestinationRecord, ENGINE_FILE,
    EnvironmentRecord, Erased, FilterRecord, LogFilter, LogRecord, LogSearch, LogStatus,
    Organization, PauseNote, QueueState, QueueStats, ResendRange, SourceRecord, SubscriptionFilter,
    SubscriptionRecord, TrafficCount, WindowCounts, Write,
};
use crate::sqlite::checkpoint::{self, WalState};
use crate::{StoreError, now_millis, sqlite as schema};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Pages of a new engine database. A message body of a few KiB (Redox's usual) does not fit
/// twice in SQLite's default 4 KiB page, so each took a page of its own: the store grew to
/// twice the bodies' bytes. 16 KiB pages hold seven 2 KiB bodies.
const PAGE_SIZE: u32 = 16 * 1024;

/// The engine's SQLite store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct SqliteEngine {
    conn: Arc<Mutex<Connection>>,
    /// A second connection for the delivery path's reads (queue heads, destinations): in WAL
    /// mode a reader never waits for the writer, so a group commit's `fsync` does not hold up
    /// the next delivery, and the next delivery's read does not hold up ingestion.
    reader: Arc<Mutex<Connection>>,
    path: std::path::PathBuf,
}

const DESTINATION_COLUMNS: &str = "id, organization_id, environment_id, name, data_format,
    endpoint, verification_token, verification_method, auth_credential, verified_at, created_at,
    updated_at, setup_step";

fn destination(row: &Row<'_>) -> rusqlite::Result<DestinationRecord> {
    Ok(DestinationRecord {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        environment_id: row.get(2)?,
        name: row.get(3)?,
        data_format: row.get::<_, Col<_>>(4)?.0,
        endpoint: row.get(5)?,
        verification_token: row.get(6)?,
        verification_method: row.get::<_, Col<_>>(7)?.0,
        auth_credential: row.get(8)?,
        verified_at: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        setup_step: row.get(12)?,
    })
}

const CREDENTIAL_COLUMNS: &str = "id, organization_id, environment_id, name, strategy, fields,
    secrets, created_at, updated_at";

fn auth_credential(row: &Row<'_>) -> rusqlite::Result<AuthCredentialRecord> {
    Ok(AuthCredentialRecord {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        environment_id: row.get(2)?,
        name: row.get(3)?,
        strategy: row.get::<_, Col<_>>(4)?.0,
        fields: row.get(5)?,
        secrets: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

fn destinations_using_in(conn: &Connection, credential_id: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM destinations WHERE auth_credential = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map(params![credential_id], |r| r.get(0))?;
    rows.collect()
}

fn environment(row: &Row<'_>) -> rusqlite::Result<EnvironmentRecord> {
    Ok(EnvironmentRecord {
        id: row.get(0)?,
        organization_id: row.get(1)?,
        name: row.get(2)?,
        flag: row.get::<_, Col<_>>(3)?.0,
    })
}

impl SqliteEngine {
    /// Opens (creating and migrating) `data_dir/engine.db`.
    pub(crate) fn open(data_dir: &Path) -> Result<Self, StoreError> {
        crate::private::dir(data_dir)?;
        let path = data_dir.join(ENGINE_FILE);
        let mut conn = schema::open_with_page_size(&path, Some(PAGE_SIZE))?;
        // Bodies are PHI: what is deleted (a deleted destination's logs) is overwritten with
        // zeros in the database file, not left on free pages until they are reused.
        conn.pragma_update(None, "secure_delete", true)?;
        schema::migrate(&mut conn, &path, schema::ENGINE_MIGRATIONS)?;
        let reader = schema::open(&path)?;
        Ok(SqliteEngine {
            conn: Arc::new(Mutex::new(conn)),
            reader: Arc::new(Mutex::new(reader)),
            path,
        })
    }

    /// The engine writer's own connection (`crate::writer`), with the WAL's checkpoints moved
    /// to a checkpointer thread: automatic checkpoints ran inside the commit that crossed the
    /// threshold, which every ingestion and attempt waiting on it then waited for too.
    pub(crate) fn writer_connection(
        &self,
        reset_bytes: u64,
    ) -> Result<(Connection, Arc<WalState>), StoreError> {
        let mut writer = schema::open(&self.path)?;
        let wal = checkpoint::spawn(
            "engine-checkpointer",
            &mut writer,
            schema::open(&self.path)?,
            i64::try_from(reset_bytes).unwrap_or(i64::MAX),
        )
        .map_err(|e| match e {
            checkpoint::SpawnError::Sqlite(e) => StoreError::Sqlite(e),
            checkpoint::SpawnError::Thread(e) => StoreError::DataDir {
                path: self.path.clone(),
                source: e,
            },
        })?;
        // The other connection's rare writes (records, operator actions) leave checkpoints to
        // the checkpointer as well.
        self.with(|conn| conn.pragma_update(None, "wal_autocheckpoint", 0))?;
        Ok((writer, wal))
    }

    /// Runs a read on the reader connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut conn)?)
    }

    /// The organization called `name`, created with its three environments on first use.
    pub(crate) fn ensure_organization(&self, name: &str) -> Result<Organization, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            let existing = tx
                .query_row(
                    "SELECT id, name, alert_email FROM organizations WHERE name = ?1",
                    params![name],
                    |r| {
                        Ok(Organization {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            alert_email: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            let organization = match existing {
                Some(o) => o,
                None => {
                    let o = Organization {
                        id: uuid::Uuid::new_v4().to_string(),
                        name: name.to_owned(),
                        alert_email: None,
                    };
                    tx.execute(
                        "INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, ?3)",
                        params![o.id, o.name, now_millis()],
                    )?;
                    for flag in ["Development", "Staging", "Production"] {
                        tx.execute(
                            "INSERT INTO environments (id, organization_id, name, flag)
                             VALUES (?1, ?2, ?3, ?3)",
                            params![uuid::Uuid::new_v4().to_string(), o.id, flag],
                        )?;
                    }
                    o
                }
            };
            tx.commit()?;
            Ok(organization)
        })
    }

    pub(crate) fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, name, alert_email FROM organizations ORDER BY created_at")?;
            let rows = stmt.query_map([], |r| {
                Ok(Organization {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    alert_email: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The organization's environments, Development first.
    pub(crate) fn environments(
        &self,
        organization_id: &str,
    ) -> Result<Vec<EnvironmentRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, organization_id, name, flag FROM environments WHERE organization_id = ?1
                 ORDER BY CASE flag WHEN 'Development' THEN 0 WHEN 'Staging' THEN 1 ELSE 2 END",
            )?;
            let rows = stmt.query_map(params![organization_id], environment)?;
            rows.collect()
        })
    }

    pub(crate) fn environment(&self, id: &str) -> Result<Option<EnvironmentRecord>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT id, organization_id, name, flag FROM environments WHERE id = ?1",
                params![id],
                environment,
            )
            .optional()
        })
    }

    pub(crate) fn insert_destination(&self, d: &DestinationRecord) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO destinations ({DESTINATION_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                params![
                    d.id,
                    d.organization_id,
                    d.environment_id,
                    d.name,
                    d.data_format.to_column(),
                    d.endpoint,
                    d.verification_token,
                    d.verification_method.to_column(),
                    d.auth_credential,
                    d.verified_at,
                    d.created_at,
                    d.updated_at,
                    d.setup_step
                ],
            )?;
            Ok(())
        })
    }

    /// Replaces every mutable field of an existing destination (the environment changes only
    /// while the dashboard's wizard sets it up). Returns false if it is gone.
    pub(crate) fn update_destination(&self, d: &DestinationRecord) -> Result<bool, StoreError> {
        self.with(|conn| {
            let changed = conn.execute(
                "UPDATE destinations SET name = ?2, data_format = ?3, endpoint = ?4,
                    verification_token = ?5, verification_method = ?6, auth_credential = ?7,
                    verified_at = ?8, updated_at = ?9, environment_id = ?10, setup_step = ?11
                 WHERE id = ?1",
                params![
                    d.id,
                    d.name,
                    d.data_format.to_column(),
                    d.endpoint,
                    d.verification_token,
                    d.verification_method.to_column(),
                    d.auth_credential,
                    d.verified_at,
                    d.updated_at,
                    d.environment_id,
                    d.setup_step
                ],
            )?;
            Ok(changed == 1)
        })
    }

    pub(crate) fn destination(&self, id: &str) -> Result<Option<DestinationRecord>, StoreError> {
        self.read(|conn| row_by_id(conn, "destinations", DESTINATION_COLUMNS, id, destination))
    }

    pub(crate) fn destinations(
        &self,
        environment_id: &str,
    ) -> Result<Vec<DestinationRecord>, StoreError> {
        self.with(|conn| {
            rows_of_environment(
                conn,
                "destinations",
                DESTINATION_COLUMNS,
                environment_id,
                destination,
            )
        })
    }

    /// Whether `endpoint` is used by a destination of another organization.
    pub(crate) fn endpoint_taken_elsewhere(
        &self,
        endpoint: &str,
        organization_id: &str,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM destinations
                                WHERE endpoint = ?1 AND organization_id <> ?2)",
                params![endpoint, organization_id],
                |r| r.get(0),
            )
        })
    }

    /// Deletes a destination. Returns false if it did not exist.
    pub(crate) fn delete_destination(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM attempts WHERE log_id IN (SELECT id FROM logs WHERE destination_id = ?1)",
                params![id],
            )?;
            // The bodies no other destination's log shares.
            tx.execute(
                "DELETE FROM messages WHERE message_id IN (
                    SELECT message_id FROM logs WHERE destination_id = ?1)
                   AND NOT EXISTS (SELECT 1 FROM logs o WHERE o.message_id = messages.message_id
                                     AND o.destination_id <> ?1)",
                params![id],
            )?;
            tx.execute("DELETE FROM logs WHERE destination_id = ?1", params![id])?;
            tx.execute("DELETE FROM paused_queues WHERE destination_id = ?1", params![id])?;
            tx.execute(
                "DELETE FROM filters WHERE subscription_id IN (
                    SELECT id FROM subscriptions WHERE destination_id = ?1)",
                params![id],
            )?;
            tx.execute(
                "DELETE FROM alert_links WHERE subscription_id IN (
                    SELECT id FROM subscriptions WHERE destination_id = ?1)",
                params![id],
            )?;
            tx.execute("DELETE FROM subscriptions WHERE destination_id = ?1", params![id])?;
            let deleted = tx.execute("DELETE FROM destinations WHERE id = ?1", params![id])? == 1;
            tx.commit()?;
            Ok(deleted)
        })?;
        // `secure_delete` zeroed the rows in the database file; the pages as they were before
        // are still frames of the WAL until a checkpoint copies the new ones back and the WAL
        // is truncated. Best effort: a reader holding an old snapshot makes it wait for the
        // next checkpoint.
        if let Err(e) =
            self.with(|conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
        {
            tracing::warn!(error = %e, "could not truncate the WAL after erasing a destination's logs; the next checkpoint will");
        }
        Ok(deleted)
    }

    pub(crate) fn insert_auth_credential(
        &self,
        c: &AuthCredentialRecord,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO auth_credentials ({CREDENTIAL_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    c.id,
                    c.organization_id,
                    c.environment_id,
                    c.name,
                    c.strategy.to_column(),
                    c.fields,
                    c.secrets,
                    c.created_at,
                    c.updated_at
                ],
            )?;
            Ok(())
        })
    }

    /// Replaces the mutable fields (name, fields, secrets, updated_at) of an existing auth
    /// credential. Returns false if it is gone.
    pub(crate) fn update_auth_credential(
        &self,
        c: &AuthCredentialRecord,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            let changed = conn.execute(
                "UPDATE auth_credentials SET name = ?2, fields = ?3, secrets = ?4, updated_at = ?5
                 WHERE id = ?1",
                params![c.id, c.name, c.fields, c.secrets, c.updated_at],
            )?;
            Ok(changed == 1)
        })
    }

    pub(crate) fn auth_credential(
        &self,
        id: &str,
    ) -> Result<Option<AuthCredentialRecord>, StoreError> {
        self.with(|conn| {
            row_by_id(
                conn,
                "auth_credentials",
                CREDENTIAL_COLUMNS,
                id,
                auth_credential,
            )
        })
    }

    /// An environment's auth credentials, oldest first.
    pub(crate) fn auth_credentials(
        &self,
        environment_id: &str,
    ) -> Result<Vec<AuthCredentialRecord>, StoreError> {
        self.with(|conn| {
            rows_of_environment(
                conn,
                "auth_credentials",
                CREDENTIAL_COLUMNS,
                environment_id,
                auth_credential,
            )
        })
    }

    /// The ids of the destinations that link this credential.
    pub(crate) fn destinations_using(
        &self,
        credential_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.with(|conn| destinations_using_in(conn, credential_id))
    }

    /// Deletes an auth credential unless a destination links it (checked in the same
    /// transaction, so a link cannot slip in between).
    pub(crate) fn delete_auth_credential(
        &self,
        id: &str,
    ) -> Result<CredentialDeletion, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let users = destinations_using_in(&tx, id)?;
            if !users.is_empty() {
                return Ok(CredentialDeletion::InUse(users));
            }
            let deleted = tx.execute("DELETE FROM auth_credentials WHERE id = ?1", params![id])?;
            tx.commit()?;
            Ok(if deleted == 1 {
                CredentialDeletion::Deleted
            } else {
                CredentialDeletion::NotFound
            })
        })
    }
}

/// Commits several writes in one transaction on the writer's connection (group commit): all
/// or none, one `fsync`. A failure of the commit itself that is an I/O error leaves the outcome
/// unknown ([`StoreError::at_commit`]); one before it (busy past the timeout, a full disk)
/// means nothing was written.
pub(crate) fn apply_on(conn: &mut Connection, writes: &[Write]) -> Result<(), StoreError> {
    let mut committing = false;
    let result = (|| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_millis();
        for write in writes {
            match write {
                Write::Enqueue(logs) => enqueue_in(&tx, logs)?,
                Write::Attempt(attempt, outcome) => attempt_in(&tx, attempt, *outcome, now)?,
                Write::Query(query) => query_in(&tx, &query.0, &query.1)?,
            }
        }
        committing = true;
        tx.commit()
    })();
    result.map_err(|e| {
        let e = StoreError::from(e);
        if committing { e.at_commit() } else { e }
    })
}

/// Queues `logs`; consecutive logs with the same body (one message to several destinations)
/// share one `messages` row.
fn enqueue_in(tx: &rusqlite::Transaction<'_>, logs: &[LogRecord]) -> rusqlite::Result<()> {
    // FILTERED when a filter blocked it; otherwise PENDING, or HELD while its subscription
    // is paused (read in this transaction, so a pause committed before it holds it).
    let mut insert = tx.prepare_cached(
        "INSERT INTO logs (id, organization_id, destination_id, source, data_model,
            event_type, content_type, body, status, attempts, next_attempt_at,
            created_at, updated_at, message_id, subscription_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, x'',
            CASE WHEN ?12 THEN 'FILTERED'
                 WHEN EXISTS (SELECT 1 FROM subscriptions WHERE id = ?11 AND paused) THEN 'HELD'
                 ELSE 'PENDING' END,
            0, ?8, ?9, ?9, ?10, ?11)",
    )?;
    let mut stored: Option<(&[u8], i64)> = None;
    for l in logs {
        let message_id = match stored {
            Some((body, id)) if body == l.body.as_slice() => id,
            _ => {
                let id = store_body(tx, &l.body)?;
                stored = Some((&l.body, id));
                id
            }
        };
        insert.execute(params![
            l.id,
            l.organization_id,
            l.destination_id,
            l.source,
            l.data_model,
            l.event_type,
            l.content_type,
            l.next_attempt_at,
            l.created_at,
            message_id,
            l.subscription_id,
            l.status == LogStatus::Filtered
        ])?;
    }
    Ok(())
}

/// Keeps a body in `messages` with its entry in the full-text index, and answers its id.
fn store_body(tx: &rusqlite::Transaction<'_>, body: &[u8]) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO messages (content) VALUES (?1)")?
        .execute(params![body])?;
    let id = tx.last_insert_rowid();
    // The same text the index was built from in migration 10: the bytes read as TEXT.
    tx.prepare_cached("INSERT INTO message_terms (rowid, content) VALUES (?1, CAST(?2 AS TEXT))")?
        .execute(params![id, body])?;
    Ok(id)
}

fn insert_attempt(tx: &rusqlite::Transaction<'_>, attempt: &AttemptRecord) -> rusqlite::Result<()> {
    // Not for a log that is gone: its destination was deleted (and its logs erased) while
    // the attempt was under way.
    tx.prepare_cached(
        "INSERT INTO attempts (id, log_id, started_at, duration_ms, status_code, error, response)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM logs WHERE id = ?2)",
    )?
    .execute(params![
        attempt.id,
        attempt.log_id,
        attempt.started_at,
        attempt.duration_ms,
        attempt.status_code,
        attempt.error,
        attempt.response
    ])?;
    Ok(())
}

fn query_in(
    tx: &rusqlite::Transaction<'_>,
    log: &LogRecord,
    attempt: &AttemptRecord,
) -> rusqlite::Result<()> {
    let message_id = if log.body.is_empty() {
        None
    } else {
        Some(store_body(tx, &log.body)?)
    };
    tx.prepare_cached(
        "INSERT INTO logs (id, organization_id, destination_id, source, data_model, event_type,
            content_type, body, status, attempts, next_attempt_at, created_at, updated_at, log_type,
            subscription_id, message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, x'', ?8, 1, ?9, ?9, ?9, 'REQUEST', ?10, ?11)",
    )?
    .execute(params![
        log.id,
        log.organization_id,
        log.destination_id,
        log.source,
        log.data_model,
        log.event_type,
        log.content_type,
        log.status.to_column(),
        log.created_at,
        log.subscription_id,
        message_id
    ])?;
    insert_attempt(tx, attempt)?;
    Ok(())
}

fn attempt_in(
    tx: &rusqlite::Transaction<'_>,
    attempt: &AttemptRecord,
    outcome: AttemptOutcome,
    now: i64,
) -> rusqlite::Result<()> {
    insert_attempt(tx, attempt)?;
    match outcome {
        AttemptOutcome::Succeeded => tx
            .prepare_cached(
                "UPDATE logs SET status = 'SUCCEEDED', attempts = attempts + 1, updated_at = ?2
                 WHERE id = ?1 AND status = 'PENDING'",
            )?
            .execute(params![attempt.log_id, now])?,
        AttemptOutcome::RetryAt(at) => tx
            .prepare_cached(
                "UPDATE logs SET attempts = attempts + 1, next_attempt_at = ?2, updated_at = ?3
                 WHERE id = ?1 AND status = 'PENDING'",
            )?
            .execute(params![attempt.log_id, at, now])?,
    };
    Ok(())
}

/// A log's columns, read from [`LOGS`]: the body from its message, or its own (older logs).
const LOG_COLUMNS: &str = "seq, id, organization_id, destination_id, source, data_model,
    event_type, content_type, COALESCE(content, body), status, attempts, next_attempt_at, created_at, updated_at,
    log_type, subscription_id, resends";

/// Logs with their message's body.
const LOGS: &str = "logs LEFT JOIN messages USING (message_id)";

/// A [`LogFilter`] as SQL over `logs`, with parameters `?1` (the organization) to `?10` in the
/// order of its fields; shared by the listing and its count so they cannot disagree.
const LOG_FILTER: &str = "organization_id = ?1
    AND (?2 IS NULL OR destination_id = ?2)
    AND (?3 IS NULL OR status = ?3 OR (?3 = 'PENDING' AND status = 'HELD'))
    AND (?4 IS NULL OR data_model = ?4) AND (?5 IS NULL OR event_type = ?5)
    AND (?6 IS NULL OR created_at >= ?6) AND (?7 IS NULL OR created_at <= ?7)
    AND (?8 IS NULL OR log_type = ?8)
    AND (?9 IS NULL OR updated_at >= ?9) AND (?10 IS NULL OR updated_at <= ?10)";

/// An attempt row, as `id, log_id, started_at, duration_ms, status_code, error, response`.
fn attempt(r: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        id: r.get(0)?,
        log_id: r.get(1)?,
        started_at: r.get(2)?,
        duration_ms: r.get(3)?,
        status_code: r.get(4)?,
        error: r.get(5)?,
        response: r.get(6)?,
    })
}

fn log(row: &Row<'_>) -> rusqlite::Result<LogRecord> {
    Ok(LogRecord {
        seq: row.get(0)?,
        id: row.get(1)?,
        organization_id: row.get(2)?,
        destination_id: row.get(3)?,
        source: row.get(4)?,
        data_model: row.get(5)?,
        event_type: row.get(6)?,
        content_type: row.get(7)?,
        body: row.get(8)?,
        status: row.get::<_, Col<_>>(9)?.0,
        attempts: row.get(10)?,
        next_attempt_at: row.get(11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
        log_type: row.get::<_, Col<_>>(14)?.0,
        subscription_id: row.get(15)?,
        resends: row.get(16)?,
    })
}

impl SqliteEngine {
    /// The head (oldest pending log) of every destination's queue that an operator has not
    /// paused, due or not.
    pub(crate) fn queue_heads(&self) -> Result<Vec<LogRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM {LOGS} WHERE seq IN (
                    SELECT min(seq) FROM logs WHERE status = 'PENDING' GROUP BY destination_id)
                   AND destination_id NOT IN (SELECT destination_id FROM paused_queues)
                 ORDER BY next_attempt_at"
            ))?;
            let rows = stmt.query_map([], log)?;
            rows.collect()
        })
    }

    /// The first `limit` pending logs of one destination's queue, in queue order, unless an
    /// operator paused it.
    pub(crate) fn queue_front(
        &self,
        destination_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.read(|conn| {
            // The pause first: a paused queue's logs are not read at all.
            let paused: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM paused_queues WHERE destination_id = ?1)",
                )?
                .query_row(params![destination_id], |r| r.get(0))?;
            if paused {
                return Ok(Vec::new());
            }
            // The limit is part of the text: a bound LIMIT made SQLite prepare the statement
            // again on every run (seen in the delivery path's profile). For the same reason
            // `+seq` keeps the bound `after` out of the index range (a value the planner would
            // look at): the index is walked from the queue's head, and `after` skips at most
            // the two batches whose attempts are being committed.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM {LOGS} WHERE destination_id = ?1 AND status = 'PENDING'
                   AND +seq > ?2
                 ORDER BY seq LIMIT {limit}"
            ))?;
            let rows = stmt.query_map(params![destination_id, after.unwrap_or(i64::MIN)], log)?;
            rows.collect()
        })
    }

    /// Pauses (or resumes) a destination's queue on an operator's request. Resuming also
    /// makes its head due at once.
    pub(crate) fn set_paused(&self, destination_id: &str, paused: bool) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if paused {
                tx.execute(
                    "INSERT OR IGNORE INTO paused_queues (destination_id, paused_at) VALUES (?1, ?2)",
                    params![destination_id, now_millis()],
                )?;
            } else {
                tx.execute(
                    "DELETE FROM paused_queues WHERE destination_id = ?1",
                    params![destination_id],
                )?;
                tx.execute(
                    "UPDATE logs SET next_attempt_at = ?2 WHERE seq = (
                        SELECT min(seq) FROM logs WHERE destination_id = ?1 AND status = 'PENDING')",
                    params![destination_id, now_millis()],
                )?;
            }
            tx.commit()
        })
    }

    /// Every queue with pending logs or an operator pause, for metrics: destination id,
    /// pending logs, whether its head has failed at least once (the queue is held), and
    /// whether an operator paused it.
    pub(crate) fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT d.id,
                        (SELECT count(*) FROM logs l WHERE l.destination_id = d.id AND l.status = 'PENDING'),
                        COALESCE((SELECT l.attempts > 0 FROM logs l WHERE l.destination_id = d.id
                                  AND l.status = 'PENDING' ORDER BY l.seq LIMIT 1), 0),
                        EXISTS (SELECT 1 FROM paused_queues p WHERE p.destination_id = d.id)
                 FROM destinations d ORDER BY d.id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(QueueStats {
                    destination_id: r.get(0)?,
                    depth: r.get(1)?,
                    held: r.get(2)?,
                    paused_by_operator: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Whether a write transaction can be taken and committed (for readiness): takes the
    /// write lock and commits an empty transaction.
    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.commit()
        })
    }

    /// A destination's queue: operator-paused or not, depth, and its head.
    pub(crate) fn queue(&self, destination_id: &str) -> Result<QueueState, StoreError> {
        self.with(|conn| {
            let pause = conn
                .query_row(
                    "SELECT paused_at, paused_by, reason FROM paused_queues WHERE destination_id = ?1",
                    params![destination_id],
                    |r| {
                        Ok(PauseNote {
                            at: r.get(0)?,
                            by: r.get(1)?,
                            reason: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            let depth: i64 = conn.query_row(
                "SELECT count(*) FROM logs WHERE destination_id = ?1 AND status = 'PENDING'",
                params![destination_id],
                |r| r.get(0),
            )?;
            let head = conn
                .query_row(
                    &format!(
                        "SELECT {LOG_COLUMNS} FROM {LOGS} WHERE destination_id = ?1 AND status = 'PENDING'
                         ORDER BY seq LIMIT 1"
                    ),
                    params![destination_id],
                    log,
                )
                .optional()?;
            Ok(QueueState {
                paused_by_operator: pause.is_some(),
                pause,
                depth,
                head,
            })
        })
    }

    /// Records who paused a paused queue and why.
    pub(crate) fn note_pause(
        &self,
        destination_id: &str,
        by: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE paused_queues SET paused_by = ?2, reason = ?3 WHERE destination_id = ?1",
                params![destination_id, by, reason],
            )?;
            Ok(())
        })
    }

    /// Stops a pending log: it becomes FAILED and its queue moves on. False if it was not
    /// pending.
    pub(crate) fn stop(&self, log_id: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute(
                "UPDATE logs SET status = 'FAILED', updated_at = ?2
                 WHERE id = ?1 AND status IN ('PENDING', 'HELD')",
                params![log_id, now_millis()],
            )? == 1)
        })
    }

    /// Puts a finished log back at the end of its destination's queue, with the same Log ID
    /// and its attempts kept. False if it is still pending (or does not exist).
    pub(crate) fn resend(&self, log_id: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            let now = now_millis();
            Ok(conn.execute(
                "UPDATE logs SET seq = (SELECT max(seq) FROM logs) + 1, status = 'PENDING',
                    next_attempt_at = ?2, updated_at = ?2, resends = resends + 1
                 WHERE id = ?1 AND status NOT IN ('PENDING', 'HELD')",
                params![log_id, now],
            )? == 1)
        })
    }

    /// One log and its attempts, oldest first.
    pub(crate) fn latest_attempts(
        &self,
        log_ids: &[String],
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, log_id, started_at, duration_ms, status_code, error, response
                 FROM attempts WHERE log_id = ?1 ORDER BY started_at DESC, rowid DESC LIMIT 1",
            )?;
            let mut latest = Vec::new();
            for id in log_ids {
                if let Some(attempt) = stmt.query_row(params![id], attempt).optional()? {
                    latest.push(attempt);
                }
            }
            Ok(latest)
        })
    }

    pub(crate) fn log(
        &self,
        id: &str,
    ) -> Result<Option<(LogRecord, Vec<AttemptRecord>)>, StoreError> {
        self.with(|conn| {
            let Some(record) = conn
                .query_row(
                    &format!("SELECT {LOG_COLUMNS} FROM {LOGS} WHERE id = ?1"),
                    params![id],
                    log,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(
                "SELECT id, log_id, started_at, duration_ms, status_code, error, response
                 FROM attempts WHERE log_id = ?1 ORDER BY started_at, rowid",
            )?;
            let attempts = stmt
                .query_map(params![id], attempt)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((record, attempts)))
        })
    }

    /// The organization's logs matching `filter`, newest first.
    pub(crate) fn logs(
        &self,
        organization_id: &str,
        filter: &LogFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM {LOGS} WHERE {LOG_FILTER}
                 ORDER BY seq DESC LIMIT ?11 OFFSET ?12"
            ))?;
            let rows = stmt.query_map(
                params![
                    organization_id,
                    filter.destination_id,
                    filter.status.map(Column::to_column),
                    filter.data_model,
                    filter.event_type,
                    filter.created_after,
                    filter.created_before,
                    filter.log_type.map(Column::to_column),
                    filter.updated_after,
                    filter.updated_before,
                    limit as i64,
                    offset as i64
                ],
                log,
            )?;
            rows.collect()
        })
    }

    /// How many of the organization's logs match `filter`.
    pub(crate) fn count_logs(
        &self,
        organization_id: &str,
        filter: &LogFilter,
    ) -> Result<u64, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT count(*) FROM logs WHERE {LOG_FILTER}"))?
                .query_row(
                    params![
                        organization_id,
                        filter.destination_id,
                        filter.status.map(Column::to_column),
                        filter.data_model,
                        filter.event_type,
                        filter.created_after,
                        filter.created_before,
                        filter.log_type.map(Column::to_column),
                        filter.updated_after,
                        filter.updated_before,
                    ],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
        })
    }

    pub(crate) fn append_audit(&self, e: &AuditRecord) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO audit (organization_id, at, actor_kind, actor_name, action, subject,
                     address) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.organization_id,
                    e.at,
                    e.actor_kind,
                    e.actor_name,
                    e.action,
                    e.subject,
                    e.address
                ],
            )?;
            Ok(())
        })
    }

    pub(crate) fn audit(
        &self,
        organization_id: &str,
        since: Option<i64>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, organization_id, at, actor_kind, actor_name, action, subject, address
                 FROM audit WHERE organization_id = ?1 AND (?2 IS NULL OR at >= ?2)
                 ORDER BY seq DESC LIMIT ?3 OFFSET ?4",
            )?;
            let rows = stmt.query_map(
                params![organization_id, since, limit as i64, offset as i64],
                |r| {
                    Ok(AuditRecord {
                        seq: r.get(0)?,
                        organization_id: r.get(1)?,
                        at: r.get(2)?,
                        actor_kind: r.get(3)?,
                        actor_name: r.get(4)?,
                        action: r.get(5)?,
                        subject: r.get(6)?,
                        address: r.get(7)?,
                    })
                },
            )?;
            rows.collect()
        })
    }
}

const APIKEY_COLUMNS: &str =
    "id, organization_id, environment_id, name, jwks_url, jwk_set, created_at, updated_at";

fn apikey(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        organization_id: r.get(1)?,
        environment_id: r.get(2)?,
        name: r.get(3)?,
        jwks_url: r.get(4)?,
        jwk_set: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

const SOURCE_COLUMNS: &str = "id, organization_id, environment_id, name, api_key_digest,
    config_name, created_at, updated_at";

fn source(r: &Row<'_>) -> rusqlite::Result<SourceRecord> {
    Ok(SourceRecord {
        id: r.get(0)?,
        organization_id: r.get(1)?,
        environment_id: r.get(2)?,
        name: r.get(3)?,
        api_key_digest: r.get(4)?,
        config_name: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

const SUBSCRIPTION_COLUMNS: &str = "s.id, s.organization_id, s.environment_id, s.source_id,
    s.destination_id, s.data_model, s.paused, s.created_at, s.updated_at";

fn subscription(r: &Row<'_>) -> rusqlite::Result<SubscriptionRecord> {
    Ok(SubscriptionRecord {
        id: r.get(0)?,
        organization_id: r.get(1)?,
        environment_id: r.get(2)?,
        source_id: r.get(3)?,
        destination_id: r.get(4)?,
        data_model: r.get(5)?,
        paused: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

const FILTER_COLUMNS: &str = "f.id, f.subscription_id, f.organization_id, f.environment_id,
    f.name, f.action, f.rules, f.version, f.created_at, f.updated_at, f.deleted_at";

/// A filter row read from `FILTER_COLUMNS` starting at column `at`.
fn filter_at(r: &Row<'_>, at: usize) -> rusqlite::Result<FilterRecord> {
    Ok(FilterRecord {
        id: r.get(at)?,
        subscription_id: r.get(at + 1)?,
        organization_id: r.get(at + 2)?,
        environment_id: r.get(at + 3)?,
        name: r.get(at + 4)?,
        action: r.get::<_, Col<_>>(at + 5)?.0,
        rules: r.get(at + 6)?,
        version: r.get(at + 7)?,
        created_at: r.get(at + 8)?,
        updated_at: r.get(at + 9)?,
        deleted_at: r.get(at + 10)?,
    })
}

/// Queues a subscription's held logs again where they were (their `seq` unchanged), due now.
fn release_held(tx: &rusqlite::Transaction<'_>, subscription_id: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE logs SET status = 'PENDING', next_attempt_at = ?2
         WHERE subscription_id = ?1 AND status = 'HELD'",
        params![subscription_id, now_millis()],
    )
}

/// Deletes subscriptions (with their filters), releasing their held logs.
fn delete_subscriptions_in(tx: &rusqlite::Transaction<'_>, ids: &[i64]) -> rusqlite::Result<()> {
    for id in ids {
        release_held(tx, *id)?;
        tx.execute(
            "DELETE FROM filters WHERE subscription_id = ?1",
            params![id],
        )?;
        tx.execute(
            "DELETE FROM alert_links WHERE subscription_id = ?1",
            params![id],
        )?;
        tx.execute("DELETE FROM subscriptions WHERE id = ?1", params![id])?;
    }
    Ok(())
}

impl SqliteEngine {
    pub(crate) fn insert_apikey(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO apikeys ({APIKEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    k.id,
                    k.organization_id,
                    k.environment_id,
                    k.name,
                    k.jwks_url,
                    k.jwk_set,
                    k.created_at,
                    k.updated_at
                ],
            )?;
            Ok(())
        })
    }

    pub(crate) fn update_apikey(&self, k: &ApiKeyRecord) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute(
                "UPDATE apikeys SET name = ?2, jwks_url = ?3, jwk_set = ?4, updated_at = ?5
                 WHERE id = ?1",
                params![k.id, k.name, k.jwks_url, k.jwk_set, k.updated_at],
            )? == 1)
        })
    }

    pub(crate) fn apikey(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.with(|conn| row_by_id(conn, "apikeys", APIKEY_COLUMNS, id, apikey))
    }

    pub(crate) fn apikeys(&self, environment_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.with(|conn| {
            rows_of_environment(conn, "apikeys", APIKEY_COLUMNS, environment_id, apikey)
        })
    }

    pub(crate) fn delete_apikey(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|conn| Ok(conn.execute("DELETE FROM apikeys WHERE id = ?1", params![id])? == 1))
    }

    pub(crate) fn insert_source(&self, s: &SourceRecord) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO sources ({SOURCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (environment_id, config_name) DO NOTHING"
                ),
                params![
                    s.id,
                    s.organization_id,
                    s.environment_id,
                    s.name,
                    s.api_key_digest,
                    s.config_name,
                    s.created_at,
                    s.updated_at
                ],
            )?;
            Ok(())
        })
    }

    pub(crate) fn update_source(&self, s: &SourceRecord) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute(
                "UPDATE sources SET name = ?2, api_key_digest = ?3, updated_at = ?4 WHERE id = ?1",
                params![s.id, s.name, s.api_key_digest, s.updated_at],
            )? == 1)
        })
    }

    pub(crate) fn source(&self, id: &str) -> Result<Option<SourceRecord>, StoreError> {
        self.read(|conn| row_by_id(conn, "sources", SOURCE_COLUMNS, id, source))
    }

    pub(crate) fn sources(&self, environment_id: &str) -> Result<Vec<SourceRecord>, StoreError> {
        self.with(|conn| {
            rows_of_environment(conn, "sources", SOURCE_COLUMNS, environment_id, source)
        })
    }

    pub(crate) fn source_by_key_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<SourceRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {SOURCE_COLUMNS} FROM sources WHERE api_key_digest = ?1"
            ))?
            .query_row(params![digest], source)
            .optional()
        })
    }

    pub(crate) fn config_sources(
        &self,
        organization_id: &str,
        name: &str,
    ) -> Result<Vec<SourceRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SOURCE_COLUMNS} FROM sources
                 WHERE organization_id = ?1 AND config_name = ?2 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map(params![organization_id, name], source)?;
            rows.collect()
        })
    }

    pub(crate) fn delete_source(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let ids: Vec<i64> = tx
                .prepare("SELECT id FROM subscriptions WHERE source_id = ?1")?
                .query_map(params![id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            delete_subscriptions_in(&tx, &ids)?;
            let deleted = tx.execute("DELETE FROM sources WHERE id = ?1", params![id])? == 1;
            tx.commit()?;
            Ok(deleted)
        })
    }

    pub(crate) fn insert_subscription(
        &self,
        s: &SubscriptionRecord,
    ) -> Result<SubscriptionRecord, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO subscriptions (organization_id, environment_id, source_id,
                    destination_id, data_model, paused, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT (source_id, data_model, destination_id) DO NOTHING",
                params![
                    s.organization_id,
                    s.environment_id,
                    s.source_id,
                    s.destination_id,
                    s.data_model,
                    s.paused,
                    s.created_at
                ],
            )?;
            let kept = tx.query_row(
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s
                     WHERE source_id = ?1 AND data_model = ?2 AND destination_id = ?3"
                ),
                params![s.source_id, s.data_model, s.destination_id],
                subscription,
            )?;
            tx.commit()?;
            Ok(kept)
        })
    }

    pub(crate) fn subscription(&self, id: i64) -> Result<Option<SubscriptionRecord>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE id = ?1"),
                params![id],
                subscription,
            )
            .optional()
        })
    }

    pub(crate) fn subscriptions(
        &self,
        environment_id: &str,
        filter: &SubscriptionFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE environment_id = ?1
                   AND (?2 IS NULL OR source_id = ?2) AND (?3 IS NULL OR destination_id = ?3)
                   AND (?4 IS NULL OR data_model = ?4)
                 ORDER BY id LIMIT ?5 OFFSET ?6"
            ))?;
            let rows = stmt.query_map(
                params![
                    environment_id,
                    filter.source_id,
                    filter.destination_id,
                    filter.data_model,
                    limit as i64,
                    offset as i64
                ],
                subscription,
            )?;
            rows.collect()
        })
    }

    pub(crate) fn routes(
        &self,
        source_id: &str,
        data_model: &str,
    ) -> Result<Vec<(SubscriptionRecord, Option<FilterRecord>)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLUMNS}, {FILTER_COLUMNS} FROM subscriptions s
                 LEFT JOIN filters f ON f.subscription_id = s.id AND f.deleted_at IS NULL
                 WHERE s.source_id = ?1 AND s.data_model = ?2 ORDER BY s.id"
            ))?;
            let rows = stmt.query_map(params![source_id, data_model], |r| {
                let filter = match r.get::<_, Option<String>>(9)? {
                    Some(_) => Some(filter_at(r, 9)?),
                    None => None,
                };
                Ok((subscription(r)?, filter))
            })?;
            rows.collect()
        })
    }

    pub(crate) fn delete_subscription(&self, id: i64) -> Result<bool, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE id = ?1)",
                params![id],
                |r| r.get(0),
            )?;
            delete_subscriptions_in(&tx, &[id])?;
            tx.commit()?;
            Ok(exists)
        })
    }

    pub(crate) fn set_subscription_paused(
        &self,
        id: i64,
        paused: bool,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = tx.execute(
                "UPDATE subscriptions SET paused = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, paused, now_millis()],
            )? == 1;
            if changed {
                if paused {
                    tx.execute(
                        "UPDATE logs SET status = 'HELD'
                         WHERE subscription_id = ?1 AND status = 'PENDING'",
                        params![id],
                    )?;
                } else {
                    release_held(&tx, id)?;
                }
            }
            tx.commit()?;
            Ok(changed)
        })
    }

    pub(crate) fn save_filter(&self, f: &FilterRecord) -> Result<FilterRecord, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let updated = tx.execute(
                "UPDATE filters SET name = ?3, action = ?4, rules = ?5, version = version + 1,
                    updated_at = ?6
                 WHERE id = ?1 AND subscription_id = ?2 AND deleted_at IS NULL",
                params![
                    f.id,
                    f.subscription_id,
                    f.name,
                    f.action.to_column(),
                    f.rules,
                    f.updated_at
                ],
            )?;
            if updated == 0 {
                tx.execute(
                    "INSERT INTO filters (id, subscription_id, organization_id, environment_id,
                        name, action, rules, version, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8)",
                    params![
                        f.id,
                        f.subscription_id,
                        f.organization_id,
                        f.environment_id,
                        f.name,
                        f.action.to_column(),
                        f.rules,
                        f.created_at
                    ],
                )?;
            }
            let kept = tx.query_row(
                &format!("SELECT {FILTER_COLUMNS} FROM filters f WHERE id = ?1"),
                params![f.id],
                |r| filter_at(r, 0),
            )?;
            tx.commit()?;
            Ok(kept)
        })
    }

    pub(crate) fn filters(
        &self,
        subscription_id: i64,
        deleted: bool,
    ) -> Result<Vec<FilterRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {FILTER_COLUMNS} FROM filters f WHERE subscription_id = ?1
                   AND (?2 OR deleted_at IS NULL)
                 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map(params![subscription_id, deleted], |r| filter_at(r, 0))?;
            rows.collect()
        })
    }

    pub(crate) fn delete_filter(
        &self,
        subscription_id: i64,
        filter_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute(
                "UPDATE filters SET deleted_at = ?3, updated_at = ?3
                 WHERE id = ?2 AND subscription_id = ?1 AND deleted_at IS NULL",
                params![subscription_id, filter_id, at],
            )? == 1)
        })
    }
}

/// An FTS5 query for `terms`: every word of every term required, in any order (a patient's
/// first and last names sit in separate fields of a body); each word quoted, so none is read
/// as an operator.
///
/// Words are split where the index's tokenizer splits them (at every character that is not a
/// letter or a digit), because the index keeps no positions (`detail = none`, migration 10) and
/// so cannot match a phrase: `O'Brien` is the words `O` and `Brien`, both required. A term
/// with no word at all matches nothing (`""`).
pub(crate) fn fts_query(terms: &[String]) -> String {
    let words: Vec<String> = terms
        .iter()
        .flat_map(|t| t.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\""))
        .collect();
    if words.is_empty() {
        return "\"\"".to_owned();
    }
    words.join(" AND ")
}

impl SqliteEngine {
    /// The organization's logs matching `search`, newest first. With terms, the matching
    /// bodies come from the full-text index first and only their logs are read (`CROSS JOIN`
    /// keeps that order: the planner would otherwise walk every log newest first and probe).
    pub(crate) fn search_logs(
        &self,
        organization_id: &str,
        search: &LogSearch,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let f = &search.filter;
        // Without terms, `+organization_id` keeps the planner off the (organization, created)
        // index, which would read every log of the organization to sort them: walking the
        // logs newest first and stopping at the page's end is what a page costs.
        let (from, matching) = if search.terms.is_empty() {
            (LOGS.to_owned(), "?14 IS NULL AND +organization_id = ?1")
        } else {
            (
                "(SELECT rowid AS hit FROM message_terms WHERE message_terms MATCH ?14) AS hits
                 CROSS JOIN logs ON logs.message_id = hits.hit
                 LEFT JOIN messages USING (message_id)"
                    .to_owned(),
                "organization_id = ?1",
            )
        };
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM {from} WHERE {matching}
                   AND (?2 IS NULL OR destination_id = ?2) AND (?3 IS NULL OR status = ?3)
                   AND (?4 IS NULL OR data_model = ?4) AND (?5 IS NULL OR event_type = ?5)
                   AND (?6 IS NULL OR created_at >= ?6) AND (?7 IS NULL OR created_at <= ?7)
                   AND (?8 IS NULL OR log_type = ?8)
                   AND (?9 IS NULL OR updated_at >= ?9) AND (?10 IS NULL OR updated_at <= ?10)
                   AND (?11 IS NULL OR seq < ?11)
                   AND (?12 IS NULL OR destination_id IN
                        (SELECT id FROM destinations WHERE environment_id = ?12))
                   AND (?13 IS NULL OR source = ?13)
                 ORDER BY seq DESC LIMIT ?15"
            ))?;
            let terms = (!search.terms.is_empty()).then(|| fts_query(&search.terms));
            let rows = stmt.query_map(
                params![
                    organization_id,
                    f.destination_id,
                    f.status.map(Column::to_column),
                    f.data_model,
                    f.event_type,
                    f.created_after,
                    f.created_before,
                    f.log_type.map(Column::to_column),
                    f.updated_after,
                    f.updated_before,
                    search.before_seq,
                    search.environment_id,
                    search.source,
                    terms,
                    limit as i64
                ],
                log,
            )?;
            rows.collect()
        })
    }

    /// Requeues the finished logs of `range` in creation order, one transaction.
    pub(crate) fn resend_range(&self, range: &ResendRange) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT seq FROM logs WHERE organization_id = ?1 AND status <> 'PENDING'
                       AND log_type = 'SEND' AND created_at >= ?2 AND created_at <= ?3
                       AND (?4 IS NULL OR destination_id = ?4) AND (?5 IS NULL OR status = ?5)
                       AND (?6 IS NULL OR destination_id IN
                            (SELECT id FROM destinations WHERE environment_id = ?6))
                     ORDER BY created_at, seq",
                )?;
                let rows = stmt.query_map(
                    params![
                        range.organization_id,
                        range.created_after,
                        range.created_before,
                        range.destination_id,
                        range.status.map(Column::to_column),
                        range.environment_id
                    ],
                    |r| r.get(0),
                )?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let now = now_millis();
            let mut requeue = tx.prepare_cached(
                "UPDATE logs SET seq = (SELECT max(seq) FROM logs) + 1, status = 'PENDING',
                    next_attempt_at = ?2, updated_at = ?2, resends = resends + 1
                 WHERE seq = ?1",
            )?;
            for seq in &ids {
                requeue.execute(params![seq, now])?;
            }
            drop(requeue);
            tx.commit()?;
            Ok(ids.len() as u64)
        })
    }

    /// Erases up to `limit` bodies past retention whose logs are all finished.
    pub(crate) fn erase_payloads(&self, before: i64, limit: usize) -> Result<Erased, StoreError> {
        let erased = self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let messages: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT DISTINCT message_id FROM logs
                     WHERE message_id IS NOT NULL AND created_at < ?1
                       AND NOT EXISTS (SELECT 1 FROM logs o WHERE o.message_id = logs.message_id
                                         AND (o.status = 'PENDING' OR o.created_at >= ?1))
                     LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![before, limit as i64], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut erased = Erased::default();
            for message_id in &messages {
                tx.prepare_cached(
                    "UPDATE attempts SET response = NULL WHERE response IS NOT NULL
                       AND log_id IN (SELECT id FROM logs WHERE message_id = ?1)",
                )?
                .execute(params![message_id])?;
                erased.payloads += tx
                    .prepare_cached("UPDATE logs SET message_id = NULL WHERE message_id = ?1")?
                    .execute(params![message_id])? as u64;
                // The trigger deletes its entry in `message_terms` as well.
                erased.bodies += tx
                    .prepare_cached("DELETE FROM messages WHERE message_id = ?1")?
                    .execute(params![message_id])? as u64;
            }
            tx.commit()?;
            Ok(erased)
        })?;
        if erased.bodies > 0 {
            self.truncate_wal();
        }
        Ok(erased)
    }

    /// Deletes up to `limit` finished logs created before `before` with their attempts and
    /// unshared bodies.
    pub(crate) fn delete_logs_before(
        &self,
        organization_id: &str,
        before: i64,
        limit: usize,
    ) -> Result<Erased, StoreError> {
        let erased = self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS expired (seq INTEGER PRIMARY KEY, id TEXT, message_id INTEGER)",
                [],
            )?;
            tx.execute("DELETE FROM temp.expired", [])?;
            tx.execute(
                "INSERT INTO temp.expired SELECT seq, id, message_id FROM logs
                 WHERE organization_id = ?3 AND created_at < ?1 AND status <> 'PENDING' LIMIT ?2",
                params![before, limit as i64, organization_id],
            )?;
            tx.execute(
                "DELETE FROM attempts WHERE log_id IN (SELECT id FROM temp.expired)",
                [],
            )?;
            let logs = tx.execute("DELETE FROM logs WHERE seq IN (SELECT seq FROM temp.expired)", [])?;
            let bodies = tx.execute(
                "DELETE FROM messages WHERE message_id IN (SELECT message_id FROM temp.expired)
                   AND NOT EXISTS (SELECT 1 FROM logs o WHERE o.message_id = messages.message_id)",
                [],
            )?;
            tx.execute("DELETE FROM temp.expired", [])?;
            tx.commit()?;
            Ok(Erased {
                bodies: bodies as u64,
                payloads: 0,
                logs: logs as u64,
            })
        })?;
        if erased.logs > 0 {
            self.truncate_wal();
        }
        Ok(erased)
    }

    /// After erasing PHI: `secure_delete` zeroed the rows in the database file, but the pages
    /// as they were are still frames of the WAL until a checkpoint copies the new ones back
    /// and the WAL is truncated. Best effort, as after deleting a destination.
    fn truncate_wal(&self) {
        if let Err(e) =
            self.with(|conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
        {
            tracing::warn!(error = %e, "could not truncate the WAL after erasing payloads; the next checkpoint will");
        }
    }

    /// The organization's logs since `since`, per destination, hour and status.
    pub(crate) fn traffic(
        &self,
        organization_id: &str,
        since: i64,
    ) -> Result<Vec<TrafficCount>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT destination_id, (created_at / 3600000) * 3600000 AS hour, status, count(*)
                 FROM logs WHERE organization_id = ?1 AND created_at >= ?2
                 GROUP BY destination_id, hour, status ORDER BY destination_id, hour",
            )?;
            let rows = stmt.query_map(params![organization_id, since], |r| {
                Ok(TrafficCount {
                    destination_id: r.get(0)?,
                    hour: r.get(1)?,
                    status: r.get::<_, Col<_>>(2)?.0,
                    count: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Logs since `since` to these destinations (all when `None`), for alert rules.
    pub(crate) fn window_counts(
        &self,
        organization_id: &str,
        scope: CountScope<'_>,
        since: i64,
    ) -> Result<WindowCounts, StoreError> {
        // One count per destination or subscription, summed: SQLite binds no lists.
        let (sql, keys): (&str, Vec<rusqlite::types::Value>) = match scope {
            CountScope::Destinations(ids) => (
                "AND destination_id = ?3",
                ids.iter().map(|id| id.clone().into()).collect(),
            ),
            CountScope::Subscriptions(ids) => (
                "AND subscription_id = ?3",
                ids.iter().map(|id| (*id).into()).collect(),
            ),
        };
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT count(*), COALESCE(sum(status = 'FAILED'), 0), COALESCE(sum(attempts > 1), 0)
                 FROM logs WHERE organization_id = ?1 AND created_at >= ?2 AND log_type = 'SEND' {sql}"
            ))?;
            keys.iter().try_fold(WindowCounts::default(), |sum, key| {
                let one = stmt.query_row(params![organization_id, since, key], |r| {
                    Ok(WindowCounts {
                        total: r.get(0)?,
                        failed: r.get(1)?,
                        retried: r.get(2)?,
                    })
                })?;
                Ok(WindowCounts {
                    total: sum.total + one.total,
                    failed: sum.failed + one.failed,
                    retried: sum.retried + one.retried,
                })
            })
        })
    }
}

/// The row of `table` with this `id` (`columns` read by `map`): the engine's records by id.
fn row_by_id<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    id: &str,
    map: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    conn.prepare_cached(&format!("SELECT {columns} FROM {table} WHERE id = ?1"))?
        .query_row(params![id], map)
        .optional()
}

/// An environment's rows of `table`, oldest first: the engine's records by environment.
fn rows_of_environment<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    environment_id: &str,
    map: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare_cached(&format!(
        "SELECT {columns} FROM {table} WHERE environment_id = ?1 ORDER BY created_at, id"
    ))?
    .query_map(params![environment_id], map)?
    .collect()
}

const ALERT_COLUMNS: &str = "id, organization_id, environment_id, name, alert_type, configuration, notification, ignore_days, ignore_holidays, time_zone, status, breached_at, created_at, updated_at";

fn alert_rule(r: &Row<'_>) -> rusqlite::Result<AlertRuleRecord> {
    Ok(AlertRuleRecord {
        id: r.get(0)?,
        organization_id: r.get(1)?,
        environment_id: r.get(2)?,
        name: r.get(3)?,
        alert_type: r.get(4)?,
        configuration: r.get(5)?,
        notification: r.get(6)?,
        ignore_days: r.get(7)?,
        ignore_holidays: r.get(8)?,
        time_zone: r.get(9)?,
        status: r.get(10)?,
        breached_at: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
    })
}

const ALERT_LINK_COLUMNS: &str = "id, organization_id, environment_id, alert_id, subscription_id, active, created_at, updated_at";

fn alert_link(r: &Row<'_>) -> rusqlite::Result<AlertLinkRecord> {
    Ok(AlertLinkRecord {
        id: r.get(0)?,
        organization_id: r.get(1)?,
        environment_id: r.get(2)?,
        alert_id: r.get(3)?,
        subscription_id: r.get(4)?,
        active: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

impl SqliteEngine {
    pub(crate) fn insert_alert_rule(&self, a: &AlertRuleRecord) -> Result<(), StoreError> {
        self.insert_alert_rule_with(a, "").map(drop)
    }

    /// Inserts `a` unless a rule with its id exists (the configuration's rules, which an
    /// engine inserts at every start); whether it was inserted.
    pub(crate) fn insert_alert_rule_if_absent(
        &self,
        a: &AlertRuleRecord,
    ) -> Result<bool, StoreError> {
        Ok(self.insert_alert_rule_with(a, "ON CONFLICT (id) DO NOTHING")? == 1)
    }

    /// Inserts `a`, with `on_conflict` after the values; the rows inserted.
    fn insert_alert_rule_with(
        &self,
        a: &AlertRuleRecord,
        on_conflict: &str,
    ) -> Result<usize, StoreError> {
        self.with(|conn| {
            conn.execute(
                &format!(
                    "INSERT INTO alert_rules ({ALERT_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                     {on_conflict}"
                ),
                params![
                    a.id,
                    a.organization_id,
                    a.environment_id,
                    a.name,
                    a.alert_type,
                    a.configuration,
                    a.notification,
                    a.ignore_days,
                    a.ignore_holidays,
                    a.time_zone,
                    a.status,
                    a.breached_at,
                    a.created_at,
                    a.updated_at
                ],
            )
        })
    }

    pub(crate) fn set_queue_breach(
        &self,
        alert_id: &str,
        destination_id: &str,
        breach: Option<(&str, i64)>,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let changed = match breach {
                Some((log_id, at)) => tx.execute(
                    "INSERT INTO alert_queue_breaches (alert_id, destination_id, log_id, breached_at)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (alert_id, destination_id) DO NOTHING",
                    params![alert_id, destination_id, log_id, at],
                )?,
                None => tx.execute(
                    "DELETE FROM alert_queue_breaches WHERE alert_id = ?1 AND destination_id = ?2",
                    params![alert_id, destination_id],
                )?,
            } == 1;
            tx.execute(
                "UPDATE alert_rules SET breached_at =
                     (SELECT min(breached_at) FROM alert_queue_breaches WHERE alert_id = ?1)
                 WHERE id = ?1",
                params![alert_id],
            )?;
            tx.commit()?;
            Ok(changed)
        })
    }

    pub(crate) fn update_alert_rule(&self, a: &AlertRuleRecord) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute(
                "UPDATE alert_rules SET name = ?2, alert_type = ?3, configuration = ?4,
                    notification = ?5, ignore_days = ?6, ignore_holidays = ?7, time_zone = ?8,
                    status = ?9, breached_at = ?10, updated_at = ?11
                 WHERE id = ?1",
                params![
                    a.id,
                    a.name,
                    a.alert_type,
                    a.configuration,
                    a.notification,
                    a.ignore_days,
                    a.ignore_holidays,
                    a.time_zone,
                    a.status,
                    a.breached_at,
                    a.updated_at
                ],
            )? == 1)
        })
    }

    pub(crate) fn alert_rule(&self, id: &str) -> Result<Option<AlertRuleRecord>, StoreError> {
        self.with(|conn| row_by_id(conn, "alert_rules", ALERT_COLUMNS, id, alert_rule))
    }

    pub(crate) fn alert_rules(
        &self,
        environment_id: Option<&str>,
    ) -> Result<Vec<AlertRuleRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alert_rules WHERE ?1 IS NULL OR environment_id = ?1
                 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map(params![environment_id], alert_rule)?;
            rows.collect()
        })
    }

    pub(crate) fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM alert_links WHERE alert_id = ?1", params![id])?;
            tx.execute(
                "DELETE FROM alert_queue_breaches WHERE alert_id = ?1",
                params![id],
            )?;
            let deleted = tx.execute("DELETE FROM alert_rules WHERE id = ?1", params![id])? == 1;
            tx.commit()?;
            Ok(deleted)
        })
    }

    pub(crate) fn insert_alert_link(
        &self,
        l: &AlertLinkRecord,
    ) -> Result<AlertLinkRecord, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute(
                &format!(
                    "INSERT INTO alert_links ({ALERT_LINK_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (alert_id, subscription_id) DO NOTHING"
                ),
                params![
                    l.id,
                    l.organization_id,
                    l.environment_id,
                    l.alert_id,
                    l.subscription_id,
                    l.active,
                    l.created_at,
                    l.updated_at
                ],
            )?;
            let kept = tx.query_row(
                &format!(
                    "SELECT {ALERT_LINK_COLUMNS} FROM alert_links
                     WHERE alert_id = ?1 AND subscription_id = ?2"
                ),
                params![l.alert_id, l.subscription_id],
                alert_link,
            )?;
            tx.commit()?;
            Ok(kept)
        })
    }

    pub(crate) fn alert_link(&self, id: &str) -> Result<Option<AlertLinkRecord>, StoreError> {
        self.with(|conn| row_by_id(conn, "alert_links", ALERT_LINK_COLUMNS, id, alert_link))
    }

    pub(crate) fn alert_links(
        &self,
        environment_id: &str,
        alert_id: Option<&str>,
    ) -> Result<Vec<AlertLinkRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ALERT_LINK_COLUMNS} FROM alert_links
                 WHERE environment_id = ?1 AND (?2 IS NULL OR alert_id = ?2)
                 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map(params![environment_id, alert_id], alert_link)?;
            rows.collect()
        })
    }

    pub(crate) fn set_alert_link_active(
        &self,
        id: &str,
        active: bool,
        at: i64,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute(
                "UPDATE alert_links SET active = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, active, at],
            )? == 1)
        })
    }

    pub(crate) fn delete_alert_link(&self, id: &str) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute("DELETE FROM alert_links WHERE id = ?1", params![id])? == 1)
        })
    }

    pub(crate) fn set_alert_breach(
        &self,
        id: &str,
        breached_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            Ok(conn.execute(
                "UPDATE alert_rules SET breached_at = ?2
                 WHERE id = ?1 AND (breached_at IS NULL) <> (?2 IS NULL)",
                params![id, breached_at],
            )? == 1)
        })
    }
}
