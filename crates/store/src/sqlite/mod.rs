//! SQLite, the embedded default: opening a database the way every Wharf component needs it,
//! migrating its schema (versions in `PRAGMA user_version`), and the SQLite side of each store.
//!
//! * [`engine`]: the engine's store on one connection behind a mutex.
//! * [`inbox`]: the inbox's reads and the batch its writer commits.
//! * [`checkpoint`]: keeping the WAL small without stalling the writer.
//!
//! Durability settings live here so no connection can forget them: WAL (readers never block
//! the writer) and `synchronous=FULL` (a commit is on disk before it returns, which is what lets
//! the destination answer 200 only for what it kept).

pub(crate) mod checkpoint;
pub(crate) mod duplicates;
pub(crate) mod engine;
pub(crate) mod inbox;

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// The inbox's migrations. Each entry upgrades the schema by one version; the index + 1 is the
/// version it produces. Append only: a released migration never changes.
pub const INBOX_MIGRATIONS: &[&str] = &[
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
    // 2: forwarded messages by age, for deleting them after `forwarded_retention`.
    "CREATE INDEX inbox_forwarded ON inbox (forwarded_at) WHERE status = 'forwarded';",
    // 3: messages per destination and status, kept by triggers in the transaction that changes
    // them, so `/metrics` and the status page read a few rows instead of counting the inbox
    // (which read every row's page: 3 s per scrape at 500,000 messages). Migration 5 drops the
    // insert trigger: the writer counts new rows per batch since.
    "CREATE TABLE inbox_counts (
        destination TEXT NOT NULL,
        status      TEXT NOT NULL,
        count       INTEGER NOT NULL,
        PRIMARY KEY (destination, status)
    ) WITHOUT ROWID;
    INSERT INTO inbox_counts (destination, status, count)
        SELECT destination, status, count(*) FROM inbox NOT INDEXED GROUP BY destination, status;
    CREATE TRIGGER inbox_counts_insert AFTER INSERT ON inbox BEGIN
        INSERT INTO inbox_counts (destination, status, count) VALUES (new.destination, new.status, 1)
            ON CONFLICT (destination, status) DO UPDATE SET count = count + 1;
    END;
    CREATE TRIGGER inbox_counts_delete AFTER DELETE ON inbox BEGIN
        UPDATE inbox_counts SET count = count - 1
            WHERE destination = old.destination AND status = old.status;
    END;
    CREATE TRIGGER inbox_counts_update AFTER UPDATE OF status ON inbox
        WHEN old.status IS NOT new.status BEGIN
        UPDATE inbox_counts SET count = count - 1
            WHERE destination = old.destination AND status = old.status;
        INSERT INTO inbox_counts (destination, status, count) VALUES (new.destination, new.status, 1)
            ON CONFLICT (destination, status) DO UPDATE SET count = count + 1;
    END;",
    // 4: malformed messages, for the status page and `wharf destination inbox --status
    // malformed`, which otherwise read every row looking for the few there are.
    "CREATE INDEX inbox_malformed ON inbox (id) WHERE status = 'malformed';",
    // 5: new rows are counted by the writer, once per destination and status per batch
    // (`inbox::write_batch`), instead of by a trigger per row.
    "DROP TRIGGER inbox_counts_insert;",
    // 6: duplicate keys are found by the writer in memory (`duplicates.rs`) instead of through a
    // unique index on (destination, duplicate_key), whose random keys cost a scattered index
    // page per message. SQLite cannot drop a table constraint, so the table is rebuilt without
    // it (a copy of the whole inbox, once), keeping every row id and the AUTOINCREMENT
    // sequence (ids are arrival order and are never reused). `inbox_keys`, on `id` first so
    // it is appended to, is what the writer reads its keys from when the inbox opens.
    "DROP TRIGGER inbox_counts_delete;
    DROP TRIGGER inbox_counts_update;
    CREATE TABLE inbox_rebuilt (
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
        forwarded_at     INTEGER
    );
    INSERT INTO inbox_rebuilt (id, message_id, destination, duplicate_key, kind, status,
            data_model, event_type, log_id, content_type, body, malformed_reason, received_at,
            forward_attempts, last_error, forwarded_at)
        SELECT id, message_id, destination, duplicate_key, kind, status,
            data_model, event_type, log_id, content_type, body, malformed_reason, received_at,
            forward_attempts, last_error, forwarded_at
        FROM inbox ORDER BY id;
    DELETE FROM sqlite_sequence WHERE name = 'inbox_rebuilt';
    INSERT INTO sqlite_sequence (name, seq) SELECT 'inbox_rebuilt', max(
        coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0),
        coalesce((SELECT max(id) FROM inbox), 0));
    DROP TABLE inbox;
    ALTER TABLE inbox_rebuilt RENAME TO inbox;
    CREATE INDEX inbox_pending ON inbox (destination, id) WHERE status = 'received';
    CREATE INDEX inbox_forwarded ON inbox (forwarded_at) WHERE status = 'forwarded';
    CREATE INDEX inbox_malformed ON inbox (id) WHERE status = 'malformed';
    CREATE INDEX inbox_keys ON inbox (id, destination, duplicate_key);
    CREATE TRIGGER inbox_counts_delete AFTER DELETE ON inbox BEGIN
        UPDATE inbox_counts SET count = count - 1
            WHERE destination = old.destination AND status = old.status;
    END;
    CREATE TRIGGER inbox_counts_update AFTER UPDATE OF status ON inbox
        WHEN old.status IS NOT new.status BEGIN
        UPDATE inbox_counts SET count = count - 1
            WHERE destination = old.destination AND status = old.status;
        INSERT INTO inbox_counts (destination, status, count) VALUES (new.destination, new.status, 1)
            ON CONFLICT (destination, status) DO UPDATE SET count = count + 1;
    END;",
    // 7: poison messages. A message the application keeps refusing can be moved out of the
    // forwarding order to the dead letters (status 'dead_letter', by an operator or by
    // `dead_letter_after`), with when and why; `first_failed_at` says how long the head has
    // been failing. Dead letters are few, so they get a partial index like malformed ones.
    // `inbox_probe` holds the one row `/readyz` rewrites while the disk is full, to find out
    // when a write succeeds again. Adding nullable columns rewrites no row.
    "ALTER TABLE inbox ADD COLUMN first_failed_at INTEGER;
    ALTER TABLE inbox ADD COLUMN dead_lettered_at INTEGER;
    ALTER TABLE inbox ADD COLUMN dead_letter_reason TEXT;
    CREATE INDEX inbox_dead_letters ON inbox (id) WHERE status = 'dead_letter';
    CREATE TABLE inbox_probe (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        at  INTEGER NOT NULL,
        pad BLOB NOT NULL
    );",
];

/// The engine's migrations (same rules).
pub const ENGINE_MIGRATIONS: &[&str] = &[
    // 1: organizations, their environments, destinations.
    "CREATE TABLE organizations (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        alert_email TEXT,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE environments (
        id              TEXT PRIMARY KEY,
        organization_id TEXT NOT NULL REFERENCES organizations (id),
        name            TEXT NOT NULL,
        flag            TEXT NOT NULL,
        UNIQUE (organization_id, flag)
    );
    CREATE TABLE destinations (
        id                  TEXT PRIMARY KEY,
        organization_id     TEXT NOT NULL REFERENCES organizations (id),
        environment_id      TEXT NOT NULL REFERENCES environments (id),
        name                TEXT NOT NULL,
        data_format         TEXT NOT NULL,
        endpoint            TEXT,
        verification_token  BLOB,              -- sealed with the master key, never in clear
        verification_method TEXT NOT NULL,
        auth_credential     TEXT,
        verified_at         INTEGER,           -- NULL: not verified
        created_at          INTEGER NOT NULL,
        updated_at          INTEGER NOT NULL
    );
    CREATE INDEX destinations_by_environment ON destinations (environment_id, created_at);
    CREATE INDEX destinations_by_endpoint ON destinations (endpoint);",
    // 2: logs (one message to one destination, in queue order) and their attempts.
    "CREATE TABLE logs (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- queue order
        id              TEXT NOT NULL UNIQUE,               -- the Log ID
        organization_id TEXT NOT NULL,
        destination_id  TEXT NOT NULL,
        source          TEXT NOT NULL,
        data_model      TEXT,
        event_type      TEXT,
        content_type    TEXT NOT NULL,
        body            BLOB NOT NULL,
        status          TEXT NOT NULL,                      -- PENDING, SUCCEEDED, FAILED
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    CREATE INDEX logs_queue ON logs (destination_id, seq) WHERE status = 'PENDING';
    CREATE INDEX logs_by_org ON logs (organization_id, created_at);
    CREATE TABLE attempts (
        id           TEXT PRIMARY KEY,                      -- the AttemptID
        log_id       TEXT NOT NULL REFERENCES logs (id),
        started_at   INTEGER NOT NULL,
        duration_ms  INTEGER NOT NULL,
        status_code  INTEGER,
        error        TEXT,
        response     BLOB
    );
    CREATE INDEX attempts_by_log ON attempts (log_id, started_at);",
    // 3: queues an operator paused.
    "CREATE TABLE paused_queues (
        destination_id TEXT PRIMARY KEY,
        paused_at      INTEGER NOT NULL
    );",
    // 4: log types: SEND (queued notifications) and REQUEST (relayed queries).
    "ALTER TABLE logs ADD COLUMN log_type TEXT NOT NULL DEFAULT 'SEND';",
    // 5: auth credentials (docs/PROTOCOL.md section 5). `fields` holds the non-secret fields as a
    // JSON object; `secrets` the secret ones, sealed as one blob. A destination may only link a
    // credential that exists (the triggers), and the store refuses to delete a linked one.
    "CREATE TABLE auth_credentials (
        id              TEXT PRIMARY KEY,
        organization_id TEXT NOT NULL REFERENCES organizations (id),
        environment_id  TEXT NOT NULL REFERENCES environments (id),
        name            TEXT NOT NULL,
        strategy        TEXT NOT NULL,
        fields          TEXT NOT NULL,     -- JSON object, never a secret
        secrets         BLOB,              -- sealed with the master key, never in clear
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    CREATE INDEX auth_credentials_by_environment ON auth_credentials (environment_id, created_at);
    CREATE INDEX destinations_by_auth_credential ON destinations (auth_credential)
        WHERE auth_credential IS NOT NULL;
    CREATE TRIGGER destinations_link_insert BEFORE INSERT ON destinations
        WHEN NEW.auth_credential IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM auth_credentials WHERE id = NEW.auth_credential)
        BEGIN SELECT RAISE(ABORT, 'no such auth credential'); END;
    CREATE TRIGGER destinations_link_update BEFORE UPDATE OF auth_credential ON destinations
        WHEN NEW.auth_credential IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM auth_credentials WHERE id = NEW.auth_credential)
        BEGIN SELECT RAISE(ABORT, 'no such auth credential'); END;",
    // 6: the dashboard's setup wizard: the step a destination saved half-way resumes at
    // (NULL once it passed Verify and Save, and for destinations made through the API).
    "ALTER TABLE destinations ADD COLUMN setup_step INTEGER;",
    // 7: the audit log (who read PHI, and other operator actions): append-only, which the
    // triggers enforce for anything that writes the file, not just for this code.
    "CREATE TABLE audit (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        organization_id TEXT NOT NULL,
        at              INTEGER NOT NULL,
        actor_kind      TEXT NOT NULL,
        actor_name      TEXT NOT NULL,
        action          TEXT NOT NULL,
        subject         TEXT NOT NULL,
        address         TEXT
    );
    CREATE INDEX audit_by_org ON audit (organization_id, seq);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    // 8: a message's body once, however many destinations it goes to: the logs of one
    // ingestion point at one `messages` row (`logs.body` stays empty). Logs written before
    // keep their body in `logs.body` (`message_id` NULL).
    "CREATE TABLE messages (
        message_id INTEGER PRIMARY KEY,
        content    BLOB NOT NULL
    );
    ALTER TABLE logs ADD COLUMN message_id INTEGER;
    CREATE INDEX logs_by_message ON logs (message_id) WHERE message_id IS NOT NULL;",
    // 9: OAuth API keys, sources, subscriptions (the routing rule) and their filters; each log
    // names the subscription that routed it, and a paused subscription's logs wait as HELD.
    "CREATE TABLE apikeys (
        id              TEXT PRIMARY KEY,
        organization_id TEXT NOT NULL,
        environment_id  TEXT NOT NULL REFERENCES environments (id),
        name            TEXT NOT NULL,
        jwks_url        TEXT,
        jwk_set         TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
    );
    CREATE INDEX apikeys_by_environment ON apikeys (environment_id, created_at);
    CREATE TABLE sources (
        id              TEXT PRIMARY KEY,
        organization_id TEXT NOT NULL,
        environment_id  TEXT NOT NULL REFERENCES environments (id),
        name            TEXT NOT NULL,
        api_key_digest  BLOB UNIQUE,
        config_name     TEXT,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        UNIQUE (environment_id, config_name)
    );
    CREATE INDEX sources_by_environment ON sources (environment_id, created_at);
    CREATE TABLE subscriptions (
        id              INTEGER PRIMARY KEY,
        organization_id TEXT NOT NULL,
        environment_id  TEXT NOT NULL,
        source_id       TEXT NOT NULL REFERENCES sources (id),
        destination_id  TEXT NOT NULL REFERENCES destinations (id),
        data_model      TEXT NOT NULL,
        paused          INTEGER NOT NULL DEFAULT 0,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        UNIQUE (source_id, data_model, destination_id)
    );
    CREATE INDEX subscriptions_by_environment ON subscriptions (environment_id, id);
    CREATE INDEX subscriptions_by_destination ON subscriptions (destination_id);
    CREATE TABLE filters (
        id              TEXT PRIMARY KEY,
        subscription_id INTEGER NOT NULL,
        organization_id TEXT NOT NULL,
        environment_id  TEXT NOT NULL,
        name            TEXT NOT NULL,
        action          TEXT NOT NULL,
        rules           TEXT NOT NULL,
        version         INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        deleted_at      INTEGER
    );
    CREATE UNIQUE INDEX filters_current ON filters (subscription_id) WHERE deleted_at IS NULL;
    ALTER TABLE logs ADD COLUMN subscription_id INTEGER;
    CREATE INDEX logs_held ON logs (subscription_id, seq) WHERE status = 'HELD';",
    // 10: payload search and retention (issue 29). Every body lives in `messages`, so one index
    // covers them and one delete erases them: bodies still inline (relayed queries, logs from
    // before migration 8) move there, under ids that cannot meet the table's own (`-seq`;
    // its own are positive), and a trigger moves a query's body as it is written.
    // `message_terms` is the full-text index of the bodies: contentless (it keeps which bodies
    // hold each word, not the text) and without positions (`detail = none`: search needs every
    // word, in any order, never a phrase; with positions the index made the store 1.59 times
    // the bodies' bytes against issue 27's 1.5), with `secure-delete`, so deleting a body's entry (FTS5's
    // `delete` command, given the words it indexed) removes its words from the index's pages
    // instead of leaving them behind a delete marker. (`contentless_delete = 1` would not need
    // the body to delete, but it leaves the words in the index behind a tombstone.)
    // `logs_bodies_by_age` finds the bodies past their retention without reading the logs
    // already erased.
    "INSERT INTO messages (message_id, content)
        SELECT -seq, body FROM logs WHERE message_id IS NULL AND length(body) > 0;
    UPDATE logs SET message_id = -seq, body = x'' WHERE message_id IS NULL AND length(body) > 0;
    CREATE TRIGGER logs_body_to_messages AFTER INSERT ON logs WHEN length(new.body) > 0 BEGIN
        INSERT INTO messages (content) VALUES (new.body);
        UPDATE logs SET message_id = last_insert_rowid(), body = x'' WHERE seq = new.seq;
    END;
    CREATE VIRTUAL TABLE message_terms USING fts5(
        content, content = '', detail = none, tokenize = 'unicode61 remove_diacritics 2');
    INSERT INTO message_terms (message_terms, rank) VALUES ('secure-delete', 1);
    INSERT INTO message_terms (rowid, content)
        SELECT message_id, CAST(content AS TEXT) FROM messages;
    CREATE TRIGGER messages_terms_insert AFTER INSERT ON messages BEGIN
        INSERT INTO message_terms (rowid, content) VALUES (new.message_id, CAST(new.content AS TEXT));
    END;
    CREATE TRIGGER messages_terms_delete AFTER DELETE ON messages BEGIN
        INSERT INTO message_terms (message_terms, rowid, content)
            VALUES ('delete', old.message_id, CAST(old.content AS TEXT));
    END;
    CREATE INDEX logs_bodies_by_age ON logs (created_at) WHERE message_id IS NOT NULL;",
    // 11: traffic alert rules (issue 29), evaluated by the engine on a schedule; `breached_at`
    // is whether (since when) a rule is in breach, so it notifies once per breach and once
    // on recovery, across restarts.
    "CREATE TABLE alert_rules (
        id               TEXT PRIMARY KEY,
        organization_id  TEXT NOT NULL,
        environment_id   TEXT NOT NULL,
        name             TEXT NOT NULL,
        alert_type       TEXT NOT NULL,   -- no-traffic, error-threshold, low-traffic, retry-threshold
        configuration    TEXT NOT NULL,   -- JSON: alertLookbackISODuration and the threshold
        notification     TEXT NOT NULL,   -- JSON: {type, configuration}
        ignore_days      TEXT NOT NULL,   -- JSON list of weekdays
        ignore_holidays  BOOLEAN NOT NULL,
        time_zone        TEXT NOT NULL,
        status           TEXT NOT NULL,   -- active, paused
        subscription_ids TEXT NOT NULL,   -- JSON list, as linked
        breached_at      INTEGER,              -- NULL: not in breach (fired once, recovered once)
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE INDEX alert_rules_by_environment ON alert_rules (environment_id, created_at);",
    // 12: the writer stores a body and its index entry itself (`engine::store_body`) instead
    // of through insert triggers. A statement with a trigger runs in a statement journal, and
    // FTS5 flushes its pending terms to a new index segment at every statement savepoint:
    // with the triggers, every ingested message wrote a segment of its own and merged it,
    // 15% of the engine's samples at ingestion (docs/experiments/engine-throughput.md). Without
    // them, one group commit's bodies are indexed in one flush at its end.
    "DROP TRIGGER logs_body_to_messages;
    DROP TRIGGER messages_terms_insert;",
    // 13: alert links (issue 29; Redox's `alertLinks`): a rule applied to a subscription,
    // active or paused, replacing the list of subscriptions a rule kept as given. Those that
    // name a subscription of the rule's environment become active links; the rest named
    // nothing the engine has, and go. A rule counts its links' logs through `logs_by_org`
    // (the window's logs, then their subscription): no index more for ingestion to write.
    "CREATE TABLE alert_links (
        id              TEXT PRIMARY KEY,
        organization_id TEXT NOT NULL,
        environment_id  TEXT NOT NULL,
        alert_id        TEXT NOT NULL REFERENCES alert_rules (id),
        subscription_id INTEGER NOT NULL REFERENCES subscriptions (id),
        active          BOOLEAN NOT NULL,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL,
        UNIQUE (alert_id, subscription_id)
    );
    CREATE INDEX alert_links_by_environment ON alert_links (environment_id, created_at);
    CREATE INDEX alert_links_by_subscription ON alert_links (subscription_id);
    INSERT OR IGNORE INTO alert_links
        SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||
                     substr(hex(randomblob(2)), 2) || '-' ||
                     substr('89ab', 1 + (abs(random()) % 4), 1) ||
                     substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))),
               a.organization_id, a.environment_id, a.id, s.id, 1, a.updated_at, a.updated_at
        FROM alert_rules a,
             json_each(CASE WHEN json_valid(a.subscription_ids) THEN a.subscription_ids
                            ELSE '[]' END) j
        JOIN subscriptions s ON s.id = CAST(j.value AS INTEGER)
                            AND s.environment_id = a.environment_id;
    ALTER TABLE alert_rules DROP COLUMN subscription_ids;",
    // 14: how often an operator resent each log (issue 30): deliveries of a resend carry the
    // count, so a receiver that drops retries by Log ID delivers a resend again.
    "ALTER TABLE logs ADD COLUMN resends INTEGER NOT NULL DEFAULT 0;",
    // 15: who paused a queue and why (issue 30), shown beside the pause.
    "ALTER TABLE paused_queues ADD COLUMN paused_by TEXT;
    ALTER TABLE paused_queues ADD COLUMN reason TEXT;",
    // 16: which queues a `queue-paused` alert rule (the config's paused-queue alerts, issue 29)
    // is in breach for: one row per paused queue, inserted once (the one engine whose insert
    // lands notifies) and deleted once on recovery.
    "CREATE TABLE alert_queue_breaches (
        alert_id       TEXT NOT NULL REFERENCES alert_rules (id),
        destination_id TEXT NOT NULL,
        log_id         TEXT NOT NULL,
        breached_at    INTEGER NOT NULL,
        PRIMARY KEY (alert_id, destination_id)
    );",
];

/// Opens (creating if needed) the database at `path` with Wharf's durability settings.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    open_with_page_size(path, None)
}

/// [`open`], creating a new database with pages of `page_size` bytes (an existing database
/// keeps the size it was made with).
pub fn open_with_page_size(path: &Path, page_size: Option<u32>) -> Result<Connection, StoreError> {
    crate::private::database_file(path)?;
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    if let Some(bytes) = page_size {
        // Only takes effect before the first write (and before WAL mode, which is one).
        conn.pragma_update(None, "page_size", bytes)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Brings the schema up to the last of `migrations`, one transaction per step, and refuses a
/// database written by a newer binary rather than guess at its meaning.
pub fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), StoreError> {
    let known = migrations.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > known {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            known,
        });
    }
    if found > 0 && found < known {
        tracing::info!(database = %path.display(), from = found, to = known, "migrating the database before listening; a large inbox can take minutes (docs/OPERATIONS.md)");
    }
    for (index, sql) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    if found < known {
        // A migration that rewrites a table leaves a WAL as large as the table, and a WAL
        // file keeps its largest size: copy it into the database and cut it back to nothing.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Engine migration 13: what a rule kept as its `subscription_ids` becomes active links
    /// where it named a subscription of the rule's environment, and the column goes.
    #[test]
    fn linked_subscriptions_of_old_rules_become_alert_links() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.db");
        let mut conn = open(&path).unwrap();
        migrate(&mut conn, &path, &ENGINE_MIGRATIONS[..11]).unwrap();
        // Rows as an engine before alert links left them (parents left out).
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        conn.execute_batch(
            r#"INSERT INTO subscriptions (id, organization_id, environment_id, source_id,
                   destination_id, data_model, created_at, updated_at)
                   VALUES (7, 'o', 'env', 's', 'd', 'PatientAdmin', 1, 1),
                          (8, 'o', 'other', 's', 'd2', 'PatientAdmin', 1, 1);
               INSERT INTO alert_rules (id, organization_id, environment_id, name, alert_type,
                   configuration, notification, ignore_days, ignore_holidays, time_zone, status,
                   subscription_ids, breached_at, created_at, updated_at)
                   VALUES ('r1', 'o', 'env', 'r', 'no-traffic', '{}', '{}', '[]', 0, 'UTC',
                           'active', '[7, "7", 8, 999, {"id": 7}]', NULL, 1, 5),
                          ('r2', 'o', 'env', 'r', 'no-traffic', '{}', '{}', '[]', 0, 'UTC',
                           'active', 'not json', NULL, 1, 5);"#,
        )
        .unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        migrate(&mut conn, &path, ENGINE_MIGRATIONS).unwrap();
        let links: Vec<(String, String, i64, bool, i64)> = conn
            .prepare("SELECT id, alert_id, subscription_id, active, created_at FROM alert_links")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(links.len(), 1, "{links:?}");
        let (id, alert, subscription, active, created_at) = &links[0];
        assert_eq!(
            (alert.as_str(), *subscription, *active, *created_at),
            ("r1", 7, true, 5)
        );
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert!(
            conn.prepare("SELECT subscription_ids FROM alert_rules")
                .is_err()
        );
    }

    #[test]
    fn migrates_once_and_refuses_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = open(&path).unwrap();
        migrate(&mut conn, &path, INBOX_MIGRATIONS).unwrap();
        migrate(&mut conn, &path, INBOX_MIGRATIONS).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "user_version", INBOX_MIGRATIONS.len() as i64 + 1)
            .unwrap();
        let err = migrate(&mut conn, &path, INBOX_MIGRATIONS).unwrap_err();
        assert!(err.to_string().contains("newer than this binary"), "{err}");
    }
}
