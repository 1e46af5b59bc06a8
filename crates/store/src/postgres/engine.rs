//! The engine's store on PostgreSQL, shared by several engine processes.
//!
//! Everything but queue work is plain shared state: any process serves the API, ingestion and
//! Verify and Save. Each destination's **queue** is worked by one process at a time: the one
//! holding its row in `queue_leases`. A heartbeat task renews this process's leases every
//! [`HEARTBEAT`](super::lease::HEARTBEAT), releases those of empty queues, and takes free or
//! expired ones up to a fair share (queues with work / live processes, from `engine_nodes`), so
//! three processes split twenty queues about evenly and a killed process's queues are taken over
//! once its leases expire. A process holding more than its share (it was alone when the others
//! joined) sheds the excess, which the others take once those leases run out.
//! [`PgEngine::queue_heads`] and [`PgEngine::queue_front`] return only heads this process may work
//! now (see `lease` for the margin), so the worker needs no other change to keep FIFO and
//! one-in-flight across processes.
//!
//! Enqueues (and resends) draw `seq` under a transaction-scoped lock, so `seq` order is commit
//! order: a queue never shows a later log while an earlier one is still to commit. Queue changes
//! send a NOTIFY; every process listens, so a message ingested by one wakes the holder at once.

use super::lease::{HEARTBEAT, Leases};
use super::{
    Pg, RETRY_MAX, RETRY_PAUSE, SingleUse, block_on, commit, notify, runtime, schema, sent,
    xact_lock,
};
use crate::column::{Col, Column};
use crate::engine::{
    AlertLinkRecord, AlertRuleRecord, ApiKeyRecord, AttemptOutcome, AttemptRecord, AuditRecord,
    AuthCredentialRecord, CountScope, CredentialDeletion, DestinationRecord, EngineStoreOptions,
    EnvironmentRecord, Erased, FilterRecord, LogFilter, LogRecord, LogSearch, LogStatus,
    Organization, PauseNote, QueueState, QueueStats, ResendRange, SourceRecord, SubscriptionFilter,
    SubscriptionRecord, TrafficCount, WindowCounts, Write,
};
use crate::{StoreError, now_millis};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The start of a query (its `WITH` clause) that finds `active` (queues with pending work,
/// not paused), `taken` (unexpired leases, whoever holds them) and `share` (one process's fair
/// share: queues active or taken / live processes, rounded up). Taking leases and shedding
/// them both count from it. `pending` walks the queue index from one destination to the next
/// (a loose index scan): one lookup per queue, however many logs wait in them.
macro_rules! fair_share {
    () => {
        "WITH RECURSIVE pending(d) AS (
            (SELECT destination_id FROM logs WHERE status = 'PENDING'
             ORDER BY destination_id LIMIT 1)
            UNION ALL
            SELECT (SELECT destination_id FROM logs
                    WHERE status = 'PENDING' AND destination_id > pending.d
                    ORDER BY destination_id LIMIT 1)
            FROM pending WHERE pending.d IS NOT NULL),
         live AS (
            SELECT greatest(count(*), 1) AS n FROM engine_nodes WHERE expires_at > now()),
         active AS (
            SELECT d AS destination_id FROM pending WHERE d IS NOT NULL
              AND d NOT IN (SELECT destination_id FROM paused_queues)),
         taken AS (SELECT destination_id FROM queue_leases WHERE expires_at > now()),
         share AS (
            SELECT ceil((SELECT count(*) FROM (SELECT destination_id FROM active
                          UNION SELECT destination_id FROM taken) u)::numeric
                        / (SELECT n FROM live))::bigint AS n)"
    };
}

/// The NOTIFY channel for queue changes.
const CHANNEL: &str = "wharf_queues";

#[derive(Clone)]
pub(crate) struct PgEngine {
    inner: Arc<Inner>,
}

struct Inner {
    pg: Arc<Pg>,
    holder: String,
    leases: Leases,
    /// Bumped by the listener (a queue changed in any process) and when leases are taken.
    changes: Arc<watch::Sender<u64>>,
    changes_rx: watch::Receiver<u64>,
    /// Whether this process takes queue leases at all.
    work_queues: bool,
    /// One round at a time (the heartbeat task and `queue_heads`), so a fair share is
    /// counted from the leases actually held.
    round: tokio::sync::Mutex<()>,
    /// Set when the leases were released at shutdown: none is taken again.
    released: std::sync::atomic::AtomicBool,
    /// When a round of taking leases last ran from `queue_heads`.
    last_take: std::sync::Mutex<Option<Instant>>,
    /// The token endpoint's client assertions (`jti`s) any engine accepted (`used_jtis`).
    jtis: SingleUse,
}

type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

const DESTINATION_COLUMNS: &str = "id, organization_id, environment_id, name, data_format,
    endpoint, verification_token, verification_method, auth_credential, verified_at, created_at,
    updated_at, setup_step";

fn destination(row: &Row) -> DestinationRecord {
    DestinationRecord {
        id: row.get(0),
        organization_id: row.get(1),
        environment_id: row.get(2),
        name: row.get(3),
        data_format: row.get::<_, Col<_>>(4).0,
        endpoint: row.get(5),
        verification_token: row.get(6),
        verification_method: row.get::<_, Col<_>>(7).0,
        auth_credential: row.get(8),
        verified_at: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
        setup_step: row.get(12),
    }
}

const CREDENTIAL_COLUMNS: &str = "id, organization_id, environment_id, name, strategy, fields,
    secrets, created_at, updated_at";

fn auth_credential(row: &Row) -> AuthCredentialRecord {
    AuthCredentialRecord {
        id: row.get(0),
        organization_id: row.get(1),
        environment_id: row.get(2),
        name: row.get(3),
        strategy: row.get::<_, Col<_>>(4).0,
        fields: row.get(5),
        secrets: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
    }
}

fn environment(row: &Row) -> EnvironmentRecord {
    EnvironmentRecord {
        id: row.get(0),
        organization_id: row.get(1),
        name: row.get(2),
        flag: row.get::<_, Col<_>>(3).0,
    }
}

fn organization(row: &Row) -> Organization {
    Organization {
        id: row.get(0),
        name: row.get(1),
        alert_email: row.get(2),
    }
}

/// A log's columns, read from [`LOGS`] (or a set of logs joined likewise): the body from its
/// message, or its own (older logs).
const LOG_COLUMNS: &str = "seq, id, organization_id, destination_id, source, data_model,
    event_type, content_type, COALESCE(content, body), status, attempts, next_attempt_at, created_at, updated_at,
    log_type, subscription_id, resends";

/// Logs with their message's body.
const LOGS: &str = "logs LEFT JOIN messages USING (message_id)";

/// A [`LogFilter`]'s values as [`LOG_FILTER`]'s parameters `$1` to `$10` (the listing, its
/// count and the search all start with them).
struct FilterValues<'a> {
    organization_id: &'a str,
    filter: &'a LogFilter,
    status: Option<&'static str>,
    log_type: Option<&'static str>,
}

impl<'a> FilterValues<'a> {
    fn new(organization_id: &'a str, filter: &'a LogFilter) -> Self {
        FilterValues {
            organization_id,
            filter,
            status: filter.status.map(Column::to_column),
            log_type: filter.log_type.map(Column::to_column),
        }
    }

    fn params(&self) -> Params<'_> {
        let f = self.filter;
        vec![
            &self.organization_id,
            &f.destination_id,
            &self.status,
            &f.data_model,
            &f.event_type,
            &f.created_after,
            &f.created_before,
            &self.log_type,
            &f.updated_after,
            &f.updated_before,
        ]
    }
}

/// A [`LogFilter`] as SQL over `logs`, with parameters `$1` (the organization) to `$10` in the
/// order of its fields; shared by the listing and its count so they cannot disagree.
const LOG_FILTER: &str = "organization_id = $1
    AND ($2::text IS NULL OR destination_id = $2)
    AND ($3::text IS NULL OR status = $3 OR ($3 = 'PENDING' AND status = 'HELD'))
    AND ($4::text IS NULL OR data_model = $4)
    AND ($5::text IS NULL OR event_type = $5)
    AND ($6::int8 IS NULL OR created_at >= $6)
    AND ($7::int8 IS NULL OR created_at <= $7)
    AND ($8::text IS NULL OR log_type = $8)
    AND ($9::int8 IS NULL OR updated_at >= $9)
    AND ($10::int8 IS NULL OR updated_at <= $10)";

/// An attempt row, as `id, log_id, started_at, duration_ms, status_code, error, response`.
fn attempt(r: &Row) -> AttemptRecord {
    AttemptRecord {
        id: r.get(0),
        log_id: r.get(1),
        started_at: r.get(2),
        duration_ms: r.get(3),
        status_code: r.get(4),
        error: r.get(5),
        response: r.get(6),
    }
}

fn log(row: &Row) -> LogRecord {
    LogRecord {
        seq: row.get(0),
        id: row.get(1),
        organization_id: row.get(2),
        destination_id: row.get(3),
        source: row.get(4),
        data_model: row.get(5),
        event_type: row.get(6),
        content_type: row.get(7),
        body: row.get(8),
        status: row.get::<_, Col<_>>(9).0,
        attempts: row.get(10),
        next_attempt_at: row.get(11),
        created_at: row.get(12),
        updated_at: row.get(13),
        log_type: row.get::<_, Col<_>>(14).0,
        subscription_id: row.get(15),
        resends: row.get(16),
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl PgEngine {
    /// Connects, migrates, registers this process and starts its lease heartbeat. Attempts
    /// take at most `attempt_bound`: a queue is only worked with that much lease left.
    pub(crate) fn open(url: &str, options: &EngineStoreOptions) -> Result<PgEngine, StoreError> {
        let pg = Pg::connect(url, options.max_connections)?;
        block_on(schema::migrate(&pg, schema::Component::Engine))?;
        let (changes, changes_rx) = watch::channel(0);
        let changes = Arc::new(changes);
        let inner = Arc::new(Inner {
            pg: pg.clone(),
            holder: super::holder_name(),
            leases: Leases::new(options.attempt_bound),
            changes: changes.clone(),
            changes_rx,
            last_take: Default::default(),
            work_queues: options.work_queues,
            released: Default::default(),
            round: Default::default(),
            jtis: SingleUse::new("used_jtis", &[]),
        });
        super::spawn_listener(&pg, CHANNEL, changes);
        if options.work_queues {
            block_on(inner.heartbeat_within_deadline(true))?;
            let weak = Arc::downgrade(&inner);
            let woken = inner.changes_rx.clone();
            runtime().spawn(heartbeats(weak, woken));
        }
        tracing::info!(database = %pg.describe, holder = %inner.holder, "engine store on PostgreSQL");
        Ok(PgEngine { inner })
    }

    fn pg(&self) -> &Pg {
        &self.inner.pg
    }

    /// Changes after a queue changed in any process, and after this process took leases.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes_rx.clone()
    }

    pub(crate) fn holds_queue(&self, destination_id: &str) -> bool {
        self.inner.leases.holds(destination_id)
    }

    /// Gives up every queue lease (at shutdown, after the last attempt was recorded), so other
    /// processes take the queues over at once instead of after the lease expires.
    pub(crate) fn release_leases(&self) -> Result<(), StoreError> {
        self.inner
            .released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.leases.clear();
        self.pg().run(async {
            let client = self.pg().client().await?;
            client
                .execute(
                    "DELETE FROM queue_leases WHERE holder = $1",
                    &[&self.inner.holder],
                )
                .await?;
            client
                .execute(
                    "DELETE FROM engine_nodes WHERE holder = $1",
                    &[&self.inner.holder],
                )
                .await?;
            client.batch_execute(&notify(CHANNEL)).await?;
            Ok(())
        })
    }

    fn query<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: impl Fn(&Row) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.pg().query(sql, params, map)
    }

    fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        map: impl Fn(&Row) -> T,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.query(sql, params, map)?.into_iter().next())
    }

    /// The row of `table` with this `id` (`columns` read by `map`): the engine's records by id.
    fn row_by_id<T>(
        &self,
        table: &str,
        columns: &str,
        id: &str,
        map: fn(&Row) -> T,
    ) -> Result<Option<T>, StoreError> {
        self.query_opt(
            &format!("SELECT {columns} FROM {table} WHERE id = $1"),
            &[&id],
            map,
        )
    }

    /// An environment's rows of `table`, oldest first: the engine's records by environment.
    fn rows_of_environment<T>(
        &self,
        table: &str,
        columns: &str,
        environment_id: &str,
        map: fn(&Row) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.query(
            &format!(
                "SELECT {columns} FROM {table} WHERE environment_id = $1 ORDER BY created_at, id"
            ),
            &[&environment_id],
            map,
        )
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.pg().run(async {
            let client = self.pg().client().await?;
            let statement = client.prepare_cached(sql).await?;
            // A single statement is its own commit: from here its outcome may be unknown.
            sent();
            Ok(client.execute(&statement, params).await?)
        })
    }

    /// Runs `sql` in a transaction with the queue lock and a NOTIFY: for writes that change
    /// queue order or what is due.
    fn queue_write(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(&xact_lock("logs")).await?;
            let statement = tx.prepare_cached(sql).await?;
            let changed = tx.execute(&statement, params).await?;
            if changed > 0 {
                tx.batch_execute(&notify(CHANNEL)).await?;
            }
            commit(tx).await?;
            self.inner.queue_changed_here();
            Ok(changed)
        })
    }

    pub(crate) fn ensure_organization(&self, name: &str) -> Result<Organization, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            let id = uuid::Uuid::new_v4().to_string();
            // Several engines may start at once: the name is unique, the loser finds the
            // winner's row (and its environments, committed in the same transaction).
            let inserted = tx
                .execute(
                    "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING",
                    &[&id, &name, &now_millis()],
                )
                .await?;
            if inserted == 1 {
                for flag in ["Development", "Staging", "Production"] {
                    tx.execute(
                        "INSERT INTO environments (id, organization_id, name, flag)
                         VALUES ($1, $2, $3, $3)",
                        &[&uuid::Uuid::new_v4().to_string(), &id, &flag],
                    )
                    .await?;
                }
            }
            let row = tx
                .query_one(
                    "SELECT id, name, alert_email FROM organizations WHERE name = $1",
                    &[&name],
                )
                .await?;
            commit(tx).await?;
            Ok(organization(&row))
        })
    }

    pub(crate) fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        self.query(
            "SELECT id, name, alert_email FROM organizations ORDER BY created_at",
            &[],
            organization,
        )
    }

    pub(crate) fn environments(
        &self,
        organization_id: &str,
    ) -> Result<Vec<EnvironmentRecord>, StoreError> {
        self.query(
            "SELECT id, organization_id, name, flag FROM environments WHERE organization_id = $1
             ORDER BY CASE flag WHEN 'Development' THEN 0 WHEN 'Staging' THEN 1 ELSE 2 END",
            &[&organization_id],
            environment,
        )
    }

    pub(crate) fn environment(&self, id: &str) -> Result<Option<EnvironmentRecord>, StoreError> {
        self.query_opt(
            "SELECT id, organization_id, name, flag FROM environments WHERE id = $1",
            &[&id],
            environment,
        )
    }

    pub(crate) fn insert_destination(&self, d: &DestinationRecord) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "INSERT INTO destinations ({DESTINATION_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ),
            &[
                &d.id,
                &d.organization_id,
                &d.environment_id,
                &d.name,
                &d.data_format.to_column(),
                &d.endpoint,
                &d.verification_token,
                &d.verification_method.to_column(),
                &d.auth_credential,
                &d.verified_at,
                &d.created_at,
                &d.updated_at,
                &d.setup_step,
            ],
        )?;
        Ok(())
    }

    pub(crate) fn update_destination(&self, d: &DestinationRecord) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE destinations SET name = $2, data_format = $3, endpoint = $4,
                verification_token = $5, verification_method = $6, auth_credential = $7,
                verified_at = $8, updated_at = $9, environment_id = $10, setup_step = $11
             WHERE id = $1",
            &[
                &d.id,
                &d.name,
                &d.data_format.to_column(),
                &d.endpoint,
                &d.verification_token,
                &d.verification_method.to_column(),
                &d.auth_credential,
                &d.verified_at,
                &d.updated_at,
                &d.environment_id,
                &d.setup_step,
            ],
        )? == 1)
    }

    pub(crate) fn destination(&self, id: &str) -> Result<Option<DestinationRecord>, StoreError> {
        self.row_by_id("destinations", DESTINATION_COLUMNS, id, destination)
    }

    pub(crate) fn destinations(
        &self,
        environment_id: &str,
    ) -> Result<Vec<DestinationRecord>, StoreError> {
        self.rows_of_environment(
            "destinations",
            DESTINATION_COLUMNS,
            environment_id,
            destination,
        )
    }

    pub(crate) fn endpoint_taken_elsewhere(
        &self,
        endpoint: &str,
        organization_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .query_opt(
                "SELECT EXISTS (SELECT 1 FROM destinations
                                WHERE endpoint = $1 AND organization_id <> $2)",
                &[&endpoint, &organization_id],
                |r| r.get::<_, bool>(0),
            )?
            .unwrap_or(false))
    }

    /// Deletes the destination with its logs, their attempts and its pause, in one
    /// transaction. PostgreSQL has no secure delete: the rows are gone from every query at
    /// once, and their bytes from the table's pages when (auto)vacuum reclaims them and new
    /// rows reuse the space (docs/SECURITY.md).
    pub(crate) fn delete_destination(&self, id: &str) -> Result<bool, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "DELETE FROM attempts WHERE log_id IN (SELECT id FROM logs WHERE destination_id = $1)",
                &[&id],
            )
            .await?;
            // The bodies no other destination's log shares.
            tx.execute(
                "DELETE FROM messages WHERE message_id IN (
                    SELECT message_id FROM logs WHERE destination_id = $1)
                   AND NOT EXISTS (SELECT 1 FROM logs o WHERE o.message_id = messages.message_id
                                     AND o.destination_id <> $1)",
                &[&id],
            )
            .await?;
            tx.execute("DELETE FROM logs WHERE destination_id = $1", &[&id])
                .await?;
            tx.execute("DELETE FROM paused_queues WHERE destination_id = $1", &[&id])
                .await?;
            tx.execute(
                "DELETE FROM filters WHERE subscription_id IN (
                    SELECT id FROM subscriptions WHERE destination_id = $1)",
                &[&id],
            )
            .await?;
            tx.execute(
                "DELETE FROM alert_links WHERE subscription_id IN (
                    SELECT id FROM subscriptions WHERE destination_id = $1)",
                &[&id],
            )
            .await?;
            tx.execute("DELETE FROM subscriptions WHERE destination_id = $1", &[&id])
                .await?;
            let deleted = tx
                .execute("DELETE FROM destinations WHERE id = $1", &[&id])
                .await?
                == 1;
            commit(tx).await?;
            Ok(deleted)
        })
    }

    pub(crate) fn insert_auth_credential(
        &self,
        c: &AuthCredentialRecord,
    ) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "INSERT INTO auth_credentials ({CREDENTIAL_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &c.id,
                &c.organization_id,
                &c.environment_id,
                &c.name,
                &c.strategy.to_column(),
                &c.fields,
                &c.secrets,
                &c.created_at,
                &c.updated_at,
            ],
        )?;
        Ok(())
    }

    pub(crate) fn update_auth_credential(
        &self,
        c: &AuthCredentialRecord,
    ) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE auth_credentials SET name = $2, fields = $3, secrets = $4, updated_at = $5
             WHERE id = $1",
            &[&c.id, &c.name, &c.fields, &c.secrets, &c.updated_at],
        )? == 1)
    }

    pub(crate) fn auth_credential(
        &self,
        id: &str,
    ) -> Result<Option<AuthCredentialRecord>, StoreError> {
        self.row_by_id("auth_credentials", CREDENTIAL_COLUMNS, id, auth_credential)
    }

    pub(crate) fn auth_credentials(
        &self,
        environment_id: &str,
    ) -> Result<Vec<AuthCredentialRecord>, StoreError> {
        self.rows_of_environment(
            "auth_credentials",
            CREDENTIAL_COLUMNS,
            environment_id,
            auth_credential,
        )
    }

    pub(crate) fn destinations_using(
        &self,
        credential_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.query(
            "SELECT id FROM destinations WHERE auth_credential = $1 ORDER BY created_at, id",
            &[&credential_id],
            |r| r.get(0),
        )
    }

    pub(crate) fn delete_auth_credential(
        &self,
        id: &str,
    ) -> Result<CredentialDeletion, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            // The row lock keeps a new link from slipping in between the check and the delete
            // (linking takes a key-share lock on the same row through the foreign key).
            let exists = tx
                .query_opt(
                    "SELECT id FROM auth_credentials WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?
                .is_some();
            if !exists {
                return Ok(CredentialDeletion::NotFound);
            }
            let users: Vec<String> = tx
                .query(
                    "SELECT id FROM destinations WHERE auth_credential = $1 ORDER BY created_at, id",
                    &[&id],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !users.is_empty() {
                return Ok(CredentialDeletion::InUse(users));
            }
            tx.execute("DELETE FROM auth_credentials WHERE id = $1", &[&id])
                .await?;
            commit(tx).await?;
            Ok(CredentialDeletion::Deleted)
        })
    }

    /// The heads of unpaused queues this process holds the lease of. Free queues are taken
    /// first (a round of taking leases, at most every 100 ms), so a lone process never waits
    /// for its heartbeat.
    pub(crate) fn queue_heads(&self) -> Result<Vec<LogRecord>, StoreError> {
        if self.inner.taking()
            && self.inner.may_take()
            && let Err(e) = block_on(self.inner.heartbeat_within_deadline(false))
        {
            tracing::warn!(error = %e, "could not take queue leases");
        }
        // Only the held queues' heads, one index lookup each: this runs on every wake-up of
        // the worker, and a scan of every pending log would cost as much as the backlog.
        let held = self.inner.leases.held();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let heads = self.query(
            &format!(
                "SELECT {LOG_COLUMNS} FROM unnest($1::text[]) AS q(queue)
                 CROSS JOIN LATERAL (SELECT * FROM logs
                     WHERE destination_id = q.queue AND status = 'PENDING'
                     ORDER BY seq LIMIT 1) AS logs
                 LEFT JOIN messages USING (message_id)
                 WHERE q.queue NOT IN (SELECT destination_id FROM paused_queues)
                 ORDER BY next_attempt_at"
            ),
            &[&held],
            log,
        )?;
        // Checked after the read: a lease released meanwhile is then already seen as gone.
        Ok(heads
            .into_iter()
            .filter(|h| self.holds_queue(&h.destination_id))
            .collect())
    }

    pub(crate) fn queue_front(
        &self,
        destination_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let logs = self.query(
            &format!(
                "SELECT {LOG_COLUMNS} FROM {LOGS} WHERE destination_id = $1 AND status = 'PENDING'
                   AND seq > $3
                   AND NOT EXISTS (SELECT 1 FROM paused_queues WHERE destination_id = $1)
                 ORDER BY seq LIMIT $2"
            ),
            &[&destination_id, &(limit as i64), &after.unwrap_or(i64::MIN)],
            log,
        )?;
        // Checked after the read: a lease released meanwhile is then already seen as gone.
        if !self.holds_queue(destination_id) {
            return Ok(Vec::new());
        }
        Ok(logs)
    }

    /// Group commit: every write of the batch in one transaction, each kind of row in one
    /// multi-row statement, so one round trip and one WAL flush cover the whole batch.
    pub(crate) fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        let now = now_millis();
        let mut enqueued: Vec<&LogRecord> = Vec::new();
        let mut queries: Vec<&LogRecord> = Vec::new();
        let mut attempts: Vec<&AttemptRecord> = Vec::new();
        let mut succeeded: Vec<&str> = Vec::new();
        let mut retry_ids: Vec<&str> = Vec::new();
        let mut retry_at: Vec<i64> = Vec::new();
        for write in writes {
            match write {
                Write::Enqueue(logs) => enqueued.extend(logs),
                Write::Attempt(attempt, outcome) => {
                    attempts.push(attempt);
                    match outcome {
                        AttemptOutcome::Succeeded => succeeded.push(&attempt.log_id),
                        AttemptOutcome::RetryAt(at) => {
                            retry_ids.push(&attempt.log_id);
                            retry_at.push(*at);
                        }
                    }
                }
                Write::Query(query) => {
                    queries.push(&query.0);
                    attempts.push(&query.1);
                }
            }
        }
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            if !enqueued.is_empty() {
                tx.batch_execute(&xact_lock("logs")).await?;
                insert_logs(&tx, &enqueued, false).await?;
            }
            if !queries.is_empty() {
                insert_logs(&tx, &queries, true).await?;
            }
            if !attempts.is_empty() {
                let ids: Vec<&str> = attempts.iter().map(|a| a.id.as_str()).collect();
                let logs: Vec<&str> = attempts.iter().map(|a| a.log_id.as_str()).collect();
                let started: Vec<i64> = attempts.iter().map(|a| a.started_at).collect();
                let durations: Vec<i64> = attempts.iter().map(|a| a.duration_ms).collect();
                let statuses: Vec<Option<i64>> = attempts.iter().map(|a| a.status_code).collect();
                let errors: Vec<Option<&str>> =
                    attempts.iter().map(|a| a.error.as_deref()).collect();
                let responses: Vec<Option<&[u8]>> =
                    attempts.iter().map(|a| a.response.as_deref()).collect();
                let statement = tx
                    .prepare_cached(
                        "INSERT INTO attempts (id, log_id, started_at, duration_ms, status_code,
                            error, response)
                         SELECT id, log_id, started_at, duration_ms, status_code, error, response
                         FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                                     $6::text[], $7::bytea[]) WITH ORDINALITY
                              AS t(id, log_id, started_at, duration_ms, status_code, error,
                                   response, ord)
                         -- Not for a log that is gone: its destination was deleted (and its
                         -- logs erased) while the attempt was under way.
                         WHERE EXISTS (SELECT 1 FROM logs l WHERE l.id = t.log_id)
                         ORDER BY ord",
                    )
                    .await?;
                tx.execute(
                    &statement,
                    &[
                        &ids, &logs, &started, &durations, &statuses, &errors, &responses,
                    ],
                )
                .await?;
            }
            if !succeeded.is_empty() {
                let statement = tx
                    .prepare_cached(
                        "UPDATE logs SET status = 'SUCCEEDED', attempts = attempts + 1,
                            updated_at = $2
                         WHERE id = ANY($1) AND status = 'PENDING'",
                    )
                    .await?;
                tx.execute(&statement, &[&succeeded, &now]).await?;
            }
            if !retry_ids.is_empty() {
                let statement = tx
                    .prepare_cached(
                        "UPDATE logs l SET attempts = l.attempts + 1, next_attempt_at = t.at,
                            updated_at = $3
                         FROM unnest($1::text[], $2::int8[]) AS t(id, at)
                         WHERE l.id = t.id AND l.status = 'PENDING'",
                    )
                    .await?;
                tx.execute(&statement, &[&retry_ids, &retry_at, &now])
                    .await?;
            }
            if !enqueued.is_empty() {
                tx.batch_execute(&notify(CHANNEL)).await?;
            }
            commit(tx).await?;
            if !enqueued.is_empty() {
                self.inner.queue_changed_here();
            }
            Ok(())
        })
    }

    pub(crate) fn set_paused(&self, destination_id: &str, paused: bool) -> Result<(), StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            let now = now_millis();
            if paused {
                tx.execute(
                    "INSERT INTO paused_queues (destination_id, paused_at) VALUES ($1, $2)
                     ON CONFLICT (destination_id) DO NOTHING",
                    &[&destination_id, &now],
                )
                .await?;
            } else {
                tx.execute(
                    "DELETE FROM paused_queues WHERE destination_id = $1",
                    &[&destination_id],
                )
                .await?;
                tx.execute(
                    "UPDATE logs SET next_attempt_at = $2 WHERE seq = (
                        SELECT min(seq) FROM logs WHERE destination_id = $1 AND status = 'PENDING')",
                    &[&destination_id, &now],
                )
                .await?;
            }
            tx.batch_execute(&notify(CHANNEL)).await?;
            commit(tx).await?;
            self.inner.queue_changed_here();
            Ok(())
        })
    }

    pub(crate) fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.query(
            "SELECT d.id,
                    (SELECT count(*) FROM logs l WHERE l.destination_id = d.id AND l.status = 'PENDING'),
                    COALESCE((SELECT l.attempts > 0 FROM logs l WHERE l.destination_id = d.id
                              AND l.status = 'PENDING' ORDER BY l.seq LIMIT 1), false),
                    EXISTS (SELECT 1 FROM paused_queues p WHERE p.destination_id = d.id)
             FROM destinations d ORDER BY d.id",
            &[],
            |r| QueueStats {
                destination_id: r.get(0),
                depth: r.get(1),
                held: r.get(2),
                paused_by_operator: r.get(3),
            },
        )
    }

    /// Whether the database takes writes: it is reachable, not a read-only standby, and a
    /// row can be written (then rolled back, so the probe leaves nothing behind).
    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            let read_only: String = tx
                .query_one("SHOW transaction_read_only", &[])
                .await?
                .get(0);
            if read_only == "on" {
                return Err(StoreError::Unavailable(format!(
                    "{} is read-only (a standby?); point database_url at the primary",
                    self.pg().describe
                )));
            }
            tx.execute(
                "INSERT INTO engine_nodes (holder, expires_at) VALUES ('readiness probe', now())
                 ON CONFLICT (holder) DO NOTHING",
                &[],
            )
            .await?;
            tx.rollback().await?;
            Ok(())
        })
    }

    pub(crate) fn queue(&self, destination_id: &str) -> Result<QueueState, StoreError> {
        self.pg().run(async {
            let client = self.pg().client().await?;
            let pause = client
                .query_opt(
                    "SELECT paused_at, paused_by, reason FROM paused_queues WHERE destination_id = $1",
                    &[&destination_id],
                )
                .await?
                .map(|r| PauseNote {
                    at: r.get(0),
                    by: r.get(1),
                    reason: r.get(2),
                });
            let depth: i64 = client
                .query_one(
                    "SELECT count(*) FROM logs WHERE destination_id = $1 AND status = 'PENDING'",
                    &[&destination_id],
                )
                .await?
                .get(0);
            let head = client
                .query_opt(
                    &format!(
                        "SELECT {LOG_COLUMNS} FROM {LOGS}
                         WHERE destination_id = $1 AND status = 'PENDING' ORDER BY seq LIMIT 1"
                    ),
                    &[&destination_id],
                )
                .await?
                .map(|r| log(&r));
            Ok(QueueState {
                paused_by_operator: pause.is_some(),
                pause,
                depth,
                head,
            })
        })
    }

    pub(crate) fn note_pause(
        &self,
        destination_id: &str,
        by: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE paused_queues SET paused_by = $2, reason = $3 WHERE destination_id = $1",
            &[&destination_id, &by, &reason],
        )?;
        Ok(())
    }

    pub(crate) fn stop(&self, log_id: &str) -> Result<bool, StoreError> {
        Ok(self.queue_write(
            "UPDATE logs SET status = 'FAILED', updated_at = $2
             WHERE id = $1 AND status IN ('PENDING', 'HELD')",
            &[&log_id, &now_millis()],
        )? == 1)
    }

    pub(crate) fn resend(&self, log_id: &str) -> Result<bool, StoreError> {
        Ok(self.queue_write(
            "UPDATE logs SET seq = nextval(pg_get_serial_sequence('logs', 'seq')),
                status = 'PENDING', next_attempt_at = $2, updated_at = $2, resends = resends + 1
             WHERE id = $1 AND status NOT IN ('PENDING', 'HELD')",
            &[&log_id, &now_millis()],
        )? == 1)
    }

    pub(crate) fn latest_attempts(
        &self,
        log_ids: &[String],
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        self.query(
            "SELECT DISTINCT ON (log_id) id, log_id, started_at, duration_ms, status_code, error,
                    response
             FROM attempts WHERE log_id = ANY($1) ORDER BY log_id, started_at DESC, n DESC",
            &[&log_ids],
            attempt,
        )
    }

    pub(crate) fn log(
        &self,
        id: &str,
    ) -> Result<Option<(LogRecord, Vec<AttemptRecord>)>, StoreError> {
        let Some(record) = self.query_opt(
            &format!("SELECT {LOG_COLUMNS} FROM {LOGS} WHERE id = $1"),
            &[&id],
            log,
        )?
        else {
            return Ok(None);
        };
        let attempts = self.query(
            "SELECT id, log_id, started_at, duration_ms, status_code, error, response
             FROM attempts WHERE log_id = $1 ORDER BY started_at, n",
            &[&id],
            attempt,
        )?;
        Ok(Some((record, attempts)))
    }

    pub(crate) fn logs(
        &self,
        organization_id: &str,
        filter: &LogFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let (offset, limit) = (offset as i64, limit as i64);
        let filter = FilterValues::new(organization_id, filter);
        let mut params = filter.params();
        params.extend([&limit as &(dyn ToSql + Sync), &offset]);
        self.query(
            &format!(
                "SELECT {LOG_COLUMNS} FROM {LOGS} WHERE {LOG_FILTER}
                 ORDER BY seq DESC LIMIT $11 OFFSET $12"
            ),
            &params,
            log,
        )
    }

    /// How many of the organization's logs match `filter`.
    pub(crate) fn count_logs(
        &self,
        organization_id: &str,
        filter: &LogFilter,
    ) -> Result<u64, StoreError> {
        let filter = FilterValues::new(organization_id, filter);
        let params = filter.params();
        let counted = self.query(
            &format!("SELECT count(*) FROM logs WHERE {LOG_FILTER}"),
            &params,
            |r| r.get::<_, i64>(0),
        )?;
        Ok(counted.first().copied().unwrap_or(0) as u64)
    }

    pub(crate) fn append_audit(&self, e: &AuditRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO audit (organization_id, at, actor_kind, actor_name, action, subject,
                 address) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &e.organization_id,
                &e.at,
                &e.actor_kind,
                &e.actor_name,
                &e.action,
                &e.subject,
                &e.address,
            ],
        )?;
        Ok(())
    }

    pub(crate) fn audit(
        &self,
        organization_id: &str,
        since: Option<i64>,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (offset, limit) = (offset as i64, limit as i64);
        self.query(
            "SELECT seq, organization_id, at, actor_kind, actor_name, action, subject, address
             FROM audit WHERE organization_id = $1 AND ($2::int8 IS NULL OR at >= $2)
             ORDER BY seq DESC LIMIT $3 OFFSET $4",
            &[&organization_id, &since, &limit, &offset],
            |r| AuditRecord {
                seq: r.get(0),
                organization_id: r.get(1),
                at: r.get(2),
                actor_kind: r.get(3),
                actor_name: r.get(4),
                action: r.get(5),
                subject: r.get(6),
                address: r.get(7),
            },
        )
    }
}

impl PgEngine {
    /// The organization's logs matching `search`, newest first. With terms, the GIN index
    /// finds the bodies and only their logs are read.
    pub(crate) fn search_logs(
        &self,
        organization_id: &str,
        search: &LogSearch,
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let limit = limit as i64;
        let terms: Option<&[String]> = (!search.terms.is_empty()).then_some(&search.terms[..]);
        let filter = FilterValues::new(organization_id, &search.filter);
        let mut params = filter.params();
        params.extend([
            &search.before_seq as &(dyn ToSql + Sync),
            &search.environment_id,
            &search.source,
            &terms,
            &limit,
        ]);
        // With terms (each a `tsquery` of its words, all of them required): the GIN index
        // finds the bodies first, then only their logs are read (`logs_by_message`), fenced by
        // `OFFSET 0`. Written as one condition over the join, the planner walked every log
        // newest first for `ORDER BY seq DESC LIMIT`, computing each body's terms on the way:
        // 36 s at a million logs (docs/BENCHMARKS.md, "Log search").
        let (logs, matching) = if terms.is_some() {
            (
                "(SELECT * FROM logs WHERE message_id = ANY (ARRAY(
                     SELECT message_id FROM messages WHERE wharf_body_terms(content) @@
                       (SELECT string_agg('(' || wharf_terms(t)::text || ')', ' & ')
                        FROM unnest($14::text[]) AS t)::tsquery)) OFFSET 0) AS logs
                 LEFT JOIN messages USING (message_id)",
                "TRUE",
            )
        } else {
            (LOGS, "$14::text[] IS NULL")
        };
        self.query(
            &format!(
                "SELECT {LOG_COLUMNS} FROM {logs} WHERE {matching} AND organization_id = $1
                   AND ($2::text IS NULL OR destination_id = $2)
                   AND ($3::text IS NULL OR status = $3)
                   AND ($4::text IS NULL OR data_model = $4)
                   AND ($5::text IS NULL OR event_type = $5)
                   AND ($6::int8 IS NULL OR created_at >= $6)
                   AND ($7::int8 IS NULL OR created_at <= $7)
                   AND ($8::text IS NULL OR log_type = $8)
                   AND ($9::int8 IS NULL OR updated_at >= $9)
                   AND ($10::int8 IS NULL OR updated_at <= $10)
                   AND ($11::int8 IS NULL OR seq < $11)
                   AND ($12::text IS NULL OR destination_id IN
                        (SELECT id FROM destinations WHERE environment_id = $12))
                   AND ($13::text IS NULL OR source = $13)
                 ORDER BY seq DESC LIMIT $15"
            ),
            &params,
            log,
        )
    }

    /// Requeues the finished logs of `range` in creation order, one transaction under the
    /// queue lock: new `seq`s drawn in that order, so they go to the back as they came.
    pub(crate) fn resend_range(&self, range: &ResendRange) -> Result<u64, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(&xact_lock("logs")).await?;
            let status = range.status.map(Column::to_column);
            let ids: Vec<String> = tx
                .query(
                    "SELECT id FROM logs WHERE organization_id = $1 AND status <> 'PENDING'
                       AND log_type = 'SEND' AND created_at >= $2 AND created_at <= $3
                       AND ($4::text IS NULL OR destination_id = $4)
                       AND ($5::text IS NULL OR status = $5)
                       AND ($6::text IS NULL OR destination_id IN
                            (SELECT id FROM destinations WHERE environment_id = $6))
                     ORDER BY created_at, seq",
                    &[
                        &range.organization_id,
                        &range.created_after,
                        &range.created_before,
                        &range.destination_id,
                        &status,
                        &range.environment_id,
                    ],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if ids.is_empty() {
                tx.commit().await?;
                return Ok(0);
            }
            let mut seqs: Vec<i64> = tx
                .query(
                    "SELECT nextval(pg_get_serial_sequence('logs', 'seq'))
                     FROM generate_series(1, $1::int8)",
                    &[&(ids.len() as i64)],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            seqs.sort_unstable();
            tx.execute(
                "UPDATE logs l SET seq = t.seq, status = 'PENDING', next_attempt_at = $3,
                    updated_at = $3, resends = l.resends + 1
                 FROM unnest($1::text[], $2::int8[]) AS t(id, seq) WHERE l.id = t.id",
                &[&ids, &seqs, &now_millis()],
            )
            .await?;
            tx.batch_execute(&notify(CHANNEL)).await?;
            commit(tx).await?;
            self.inner.queue_changed_here();
            Ok(ids.len() as u64)
        })
    }

    /// Erases up to `limit` bodies past retention whose logs are all finished, with their
    /// index entries (the GIN index's go with the row) and their logs' attempts' answers.
    /// PostgreSQL has no secure delete: the bytes leave the table's pages when vacuum
    /// reclaims them, which a sweep that erased anything asks for at once.
    pub(crate) fn erase_payloads(&self, before: i64, limit: usize) -> Result<Erased, StoreError> {
        let erased = self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            let messages: Vec<i64> = tx
                .query(
                    "SELECT DISTINCT message_id FROM logs
                     WHERE message_id IS NOT NULL AND created_at < $1
                       AND NOT EXISTS (SELECT 1 FROM logs o WHERE o.message_id = logs.message_id
                                         AND (o.status = 'PENDING' OR o.created_at >= $1))
                     LIMIT $2",
                    &[&before, &(limit as i64)],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute(
                "UPDATE attempts SET response = NULL WHERE response IS NOT NULL
                   AND log_id IN (SELECT id FROM logs WHERE message_id = ANY($1))",
                &[&messages],
            )
            .await?;
            let payloads = tx
                .execute(
                    "UPDATE logs SET message_id = NULL WHERE message_id = ANY($1)",
                    &[&messages],
                )
                .await?;
            let bodies = tx
                .execute(
                    "DELETE FROM messages WHERE message_id = ANY($1)",
                    &[&messages],
                )
                .await?;
            commit(tx).await?;
            Ok(Erased {
                bodies,
                payloads,
                logs: 0,
            })
        })?;
        if erased.bodies > 0 {
            self.vacuum("messages, attempts");
        }
        Ok(erased)
    }

    /// Deletes up to `limit` finished logs created before `before`, their attempts and
    /// unshared bodies.
    pub(crate) fn delete_logs_before(
        &self,
        organization_id: &str,
        before: i64,
        limit: usize,
    ) -> Result<Erased, StoreError> {
        let erased = self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            let rows = tx
                .query(
                    "SELECT id, message_id FROM logs WHERE organization_id = $3 AND created_at < $1
                       AND status <> 'PENDING' LIMIT $2",
                    &[&before, &(limit as i64), &organization_id],
                )
                .await?;
            let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            let messages: Vec<i64> = rows.iter().filter_map(|r| r.get(1)).collect();
            tx.execute("DELETE FROM attempts WHERE log_id = ANY($1)", &[&ids])
                .await?;
            let logs = tx
                .execute("DELETE FROM logs WHERE id = ANY($1)", &[&ids])
                .await?;
            let bodies = tx
                .execute(
                    "DELETE FROM messages WHERE message_id = ANY($1)
                       AND NOT EXISTS (SELECT 1 FROM logs o WHERE o.message_id = messages.message_id)",
                    &[&messages],
                )
                .await?;
            commit(tx).await?;
            Ok(Erased {
                bodies,
                payloads: 0,
                logs,
            })
        })?;
        if erased.logs > 0 {
            self.vacuum("messages, attempts, logs");
        }
        Ok(erased)
    }

    /// Asks PostgreSQL to reclaim the dead rows of `tables` now rather than when autovacuum
    /// comes round. Best effort: a failure is logged and autovacuum still will.
    fn vacuum(&self, tables: &str) {
        let sql = format!("VACUUM {tables}");
        if let Err(e) = self.pg().run(async {
            let client = self.pg().client().await?;
            client.batch_execute(&sql).await?;
            Ok::<_, StoreError>(())
        }) {
            tracing::warn!(error = %e, "could not vacuum after erasing payloads; autovacuum will");
        }
    }

    pub(crate) fn traffic(
        &self,
        organization_id: &str,
        since: i64,
    ) -> Result<Vec<TrafficCount>, StoreError> {
        self.query(
            "SELECT destination_id, (created_at / 3600000) * 3600000 AS hour, status, count(*)
             FROM logs WHERE organization_id = $1 AND created_at >= $2
             GROUP BY destination_id, hour, status ORDER BY destination_id, hour",
            &[&organization_id, &since],
            |r| TrafficCount {
                destination_id: r.get(0),
                hour: r.get(1),
                status: r.get::<_, Col<_>>(2).0,
                count: r.get(3),
            },
        )
    }

    pub(crate) fn window_counts(
        &self,
        organization_id: &str,
        scope: CountScope<'_>,
        since: i64,
    ) -> Result<WindowCounts, StoreError> {
        let (destinations, subscriptions): (Option<Vec<&str>>, Option<&[i64]>) = match scope {
            CountScope::Destinations(ids) => (Some(ids.iter().map(String::as_str).collect()), None),
            CountScope::Subscriptions(ids) => (None, Some(ids)),
        };
        Ok(self
            .query(
                "SELECT count(*), count(*) FILTER (WHERE status = 'FAILED'),
                        count(*) FILTER (WHERE attempts > 1)
                 FROM logs WHERE organization_id = $1 AND created_at >= $2 AND log_type = 'SEND'
                   AND ($3::text[] IS NULL OR destination_id = ANY($3))
                   AND ($4::bigint[] IS NULL OR subscription_id = ANY($4))",
                &[&organization_id, &since, &destinations, &subscriptions],
                |r| WindowCounts {
                    total: r.get(0),
                    failed: r.get(1),
                    retried: r.get(2),
                },
            )?
            .into_iter()
            .next()
            .unwrap_or_default())
    }
}

const ALERT_COLUMNS: &str = "id, organization_id, environment_id, name, alert_type, configuration, notification, ignore_days, ignore_holidays, time_zone, status, breached_at, created_at, updated_at";

fn alert_rule(r: &Row) -> AlertRuleRecord {
    AlertRuleRecord {
        id: r.get(0),
        organization_id: r.get(1),
        environment_id: r.get(2),
        name: r.get(3),
        alert_type: r.get(4),
        configuration: r.get(5),
        notification: r.get(6),
        ignore_days: r.get(7),
        ignore_holidays: r.get(8),
        time_zone: r.get(9),
        status: r.get(10),
        breached_at: r.get(11),
        created_at: r.get(12),
        updated_at: r.get(13),
    }
}

const ALERT_LINK_COLUMNS: &str = "id, organization_id, environment_id, alert_id, subscription_id, active, created_at, updated_at";

fn alert_link(r: &Row) -> AlertLinkRecord {
    AlertLinkRecord {
        id: r.get(0),
        organization_id: r.get(1),
        environment_id: r.get(2),
        alert_id: r.get(3),
        subscription_id: r.get(4),
        active: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    }
}

impl PgEngine {
    pub(crate) fn insert_alert_rule(&self, a: &AlertRuleRecord) -> Result<(), StoreError> {
        self.insert_alert_rule_with(a, "").map(drop)
    }

    /// Inserts `a` unless a rule with its id exists (the configuration's rules, which several
    /// engines starting at once all try to insert); whether it was inserted.
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
    ) -> Result<u64, StoreError> {
        self.execute(
            &format!(
                "INSERT INTO alert_rules ({ALERT_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) {on_conflict}"
            ),
            &[
                &a.id,
                &a.organization_id,
                &a.environment_id,
                &a.name,
                &a.alert_type,
                &a.configuration,
                &a.notification,
                &a.ignore_days,
                &a.ignore_holidays,
                &a.time_zone,
                &a.status,
                &a.breached_at,
                &a.created_at,
                &a.updated_at,
            ],
        )
    }

    pub(crate) fn set_queue_breach(
        &self,
        alert_id: &str,
        destination_id: &str,
        breach: Option<(&str, i64)>,
    ) -> Result<bool, StoreError> {
        // One statement each: the row changes once across engines, and the rule's
        // `breached_at` follows its queues (the earliest breach still open).
        let changed = match breach {
            Some((log_id, at)) => self.execute(
                "WITH added AS (
                     INSERT INTO alert_queue_breaches (alert_id, destination_id, log_id, breached_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (alert_id, destination_id) DO NOTHING
                     RETURNING breached_at)
                 UPDATE alert_rules SET breached_at = LEAST(
                     (SELECT min(breached_at) FROM alert_queue_breaches WHERE alert_id = $1),
                     (SELECT breached_at FROM added))
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM added)",
                &[&alert_id, &destination_id, &log_id, &at],
            )?,
            None => self.execute(
                "WITH gone AS (
                     DELETE FROM alert_queue_breaches WHERE alert_id = $1 AND destination_id = $2
                     RETURNING destination_id)
                 UPDATE alert_rules SET breached_at =
                     (SELECT min(breached_at) FROM alert_queue_breaches
                      WHERE alert_id = $1 AND destination_id <> $2)
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM gone)",
                &[&alert_id, &destination_id],
            )?,
        };
        Ok(changed == 1)
    }

    pub(crate) fn update_alert_rule(&self, a: &AlertRuleRecord) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE alert_rules SET name = $2, alert_type = $3, configuration = $4,
                notification = $5, ignore_days = $6, ignore_holidays = $7, time_zone = $8,
                status = $9, breached_at = $10, updated_at = $11
             WHERE id = $1",
            &[
                &a.id,
                &a.name,
                &a.alert_type,
                &a.configuration,
                &a.notification,
                &a.ignore_days,
                &a.ignore_holidays,
                &a.time_zone,
                &a.status,
                &a.breached_at,
                &a.updated_at,
            ],
        )? == 1)
    }

    pub(crate) fn alert_rule(&self, id: &str) -> Result<Option<AlertRuleRecord>, StoreError> {
        self.row_by_id("alert_rules", ALERT_COLUMNS, id, alert_rule)
    }

    pub(crate) fn alert_rules(
        &self,
        environment_id: Option<&str>,
    ) -> Result<Vec<AlertRuleRecord>, StoreError> {
        self.query(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alert_rules
                 WHERE $1::text IS NULL OR environment_id = $1 ORDER BY created_at, id"
            ),
            &[&environment_id],
            alert_rule,
        )
    }

    pub(crate) fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
        // One statement: its links go with it (the foreign key is checked at its end).
        Ok(self.execute(
            "WITH links AS (DELETE FROM alert_links WHERE alert_id = $1),
                  breaches AS (DELETE FROM alert_queue_breaches WHERE alert_id = $1)
             DELETE FROM alert_rules WHERE id = $1",
            &[&id],
        )? == 1)
    }

    pub(crate) fn insert_alert_link(
        &self,
        l: &AlertLinkRecord,
    ) -> Result<AlertLinkRecord, StoreError> {
        self.pg().run(async {
            let client = self.pg().client().await?;
            client
                .execute(
                    &format!(
                        "INSERT INTO alert_links ({ALERT_LINK_COLUMNS})
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                         ON CONFLICT (alert_id, subscription_id) DO NOTHING"
                    ),
                    &[
                        &l.id,
                        &l.organization_id,
                        &l.environment_id,
                        &l.alert_id,
                        &l.subscription_id,
                        &l.active,
                        &l.created_at,
                        &l.updated_at,
                    ],
                )
                .await?;
            let row = client
                .query_one(
                    &format!(
                        "SELECT {ALERT_LINK_COLUMNS} FROM alert_links
                         WHERE alert_id = $1 AND subscription_id = $2"
                    ),
                    &[&l.alert_id, &l.subscription_id],
                )
                .await?;
            Ok(alert_link(&row))
        })
    }

    pub(crate) fn alert_link(&self, id: &str) -> Result<Option<AlertLinkRecord>, StoreError> {
        self.row_by_id("alert_links", ALERT_LINK_COLUMNS, id, alert_link)
    }

    pub(crate) fn alert_links(
        &self,
        environment_id: &str,
        alert_id: Option<&str>,
    ) -> Result<Vec<AlertLinkRecord>, StoreError> {
        self.query(
            &format!(
                "SELECT {ALERT_LINK_COLUMNS} FROM alert_links
                 WHERE environment_id = $1 AND ($2::text IS NULL OR alert_id = $2)
                 ORDER BY created_at, id"
            ),
            &[&environment_id, &alert_id],
            alert_link,
        )
    }

    pub(crate) fn set_alert_link_active(
        &self,
        id: &str,
        active: bool,
        at: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE alert_links SET active = $2, updated_at = $3 WHERE id = $1",
            &[&id, &active, &at],
        )? == 1)
    }

    /// Records a single-use credential every engine of the database must refuse a second
    /// time (the token endpoint's `jti`s).
    pub(crate) fn first_use(
        &self,
        digest: &[u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner
            .jtis
            .first_use(self.pg(), digest, expires_at, now)
    }

    pub(crate) fn delete_alert_link(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM alert_links WHERE id = $1", &[&id])? == 1)
    }

    pub(crate) fn set_alert_breach(
        &self,
        id: &str,
        breached_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE alert_rules SET breached_at = $2
             WHERE id = $1 AND (breached_at IS NULL) <> ($2::int8 IS NULL)",
            &[&id, &breached_at],
        )? == 1)
    }
}

/// Inserts logs in the order given (their `seq` follows it): queued ones as PENDING, finished
/// queries as `REQUEST` logs with their final status.
async fn insert_logs(
    tx: &deadpool_postgres::Transaction<'_>,
    logs: &[&LogRecord],
    queries: bool,
) -> Result<(), StoreError> {
    let ids: Vec<&str> = logs.iter().map(|l| l.id.as_str()).collect();
    let orgs: Vec<&str> = logs.iter().map(|l| l.organization_id.as_str()).collect();
    let dests: Vec<&str> = logs.iter().map(|l| l.destination_id.as_str()).collect();
    let sources: Vec<&str> = logs.iter().map(|l| l.source.as_str()).collect();
    let models: Vec<Option<&str>> = logs.iter().map(|l| l.data_model.as_deref()).collect();
    let events: Vec<Option<&str>> = logs.iter().map(|l| l.event_type.as_deref()).collect();
    let types: Vec<&str> = logs.iter().map(|l| l.content_type.as_str()).collect();
    let next: Vec<i64> = logs.iter().map(|l| l.next_attempt_at).collect();
    let created: Vec<i64> = logs.iter().map(|l| l.created_at).collect();
    let subscriptions: Vec<Option<i64>> = logs.iter().map(|l| l.subscription_id).collect();
    if queries {
        let statuses: Vec<&str> = logs.iter().map(|l| l.status.to_column()).collect();
        let bodies: Vec<&[u8]> = logs.iter().map(|l| l.body.as_slice()).collect();
        let statement = tx
            .prepare_cached(
                "INSERT INTO logs (id, organization_id, destination_id, source, data_model,
                    event_type, content_type, body, status, attempts, next_attempt_at,
                    created_at, updated_at, log_type, subscription_id)
                 SELECT id, org, dest, src, dm, et, ct, body, st, 1, ca, ca, ca, 'REQUEST', sub
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::text[], $7::text[], $8::bytea[], $9::text[], $10::int8[],
                             $11::int8[], $12::int8[])
                      WITH ORDINALITY AS t(id, org, dest, src, dm, et, ct, body, st, nat, ca, sub,
                                           ord)
                 ORDER BY ord",
            )
            .await?;
        tx.execute(
            &statement,
            &[
                &ids,
                &orgs,
                &dests,
                &sources,
                &models,
                &events,
                &types,
                &bodies,
                &statuses,
                &next,
                &created,
                &subscriptions,
            ],
        )
        .await?;
        return Ok(());
    }
    // One `messages` row per run of logs with the same body (one message to several
    // destinations), its id drawn from the sequence first so the logs can name it.
    let mut bodies: Vec<&[u8]> = Vec::new();
    let mut body_of: Vec<usize> = Vec::with_capacity(logs.len());
    for l in logs {
        if bodies.last() != Some(&l.body.as_slice()) {
            bodies.push(&l.body);
        }
        body_of.push(bodies.len() - 1);
    }
    let drawn = tx
        .prepare_cached(
            "SELECT nextval(pg_get_serial_sequence('messages', 'message_id'))
             FROM generate_series(1, $1::int8)",
        )
        .await?;
    let message_ids: Vec<i64> = tx
        .query(&drawn, &[&(bodies.len() as i64)])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let insert_messages = tx
        .prepare_cached(
            "INSERT INTO messages (message_id, content)
             SELECT * FROM unnest($1::int8[], $2::bytea[])",
        )
        .await?;
    tx.execute(&insert_messages, &[&message_ids, &bodies])
        .await?;
    let log_messages: Vec<i64> = body_of.iter().map(|&i| message_ids[i]).collect();
    let filtered: Vec<bool> = logs
        .iter()
        .map(|l| l.status == LogStatus::Filtered)
        .collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO logs (id, organization_id, destination_id, source, data_model,
                event_type, content_type, body, status, attempts, next_attempt_at, created_at,
                updated_at, message_id, subscription_id)
             SELECT id, org, dest, src, dm, et, ct, ''::bytea,
                    -- FILTERED when a filter blocked it; HELD while its subscription is paused
                    -- (pausing takes the same lock as this transaction, so none slips past).
                    CASE WHEN filtered THEN 'FILTERED'
                         WHEN EXISTS (SELECT 1 FROM subscriptions s WHERE s.id = sub AND s.paused)
                         THEN 'HELD'
                         ELSE 'PENDING' END,
                    0, nat, ca, ca, mid, sub
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::bool[])
                  WITH ORDINALITY AS t(id, org, dest, src, dm, et, ct, nat, ca, mid, sub, filtered,
                                       ord)
             ORDER BY ord",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &ids,
            &orgs,
            &dests,
            &sources,
            &models,
            &events,
            &types,
            &next,
            &created,
            &log_messages,
            &subscriptions,
            &filtered,
        ],
    )
    .await?;
    Ok(())
}

/// The heartbeat task: a full round every [`HEARTBEAT`], and a round of taking leases whenever a
/// queue changed (a NOTIFY from any process). After a failed round (the database is down or
/// did not answer) the next one is full and comes after [`RETRY_PAUSE`], doubling up to
/// [`RETRY_MAX`], so leases are renewed (and queues worked) again within that long of the
/// database answering. Ends when the store is gone.
async fn heartbeats(inner: Weak<Inner>, mut woken: watch::Receiver<u64>) {
    let mut last_full = Instant::now();
    let mut failures: u32 = 0;
    loop {
        // The full round is due by the clock, whatever else is going on: under a stream of
        // notifications a timer raced against them in `select!` would never win (a new timer is
        // not ready at its first poll), the leases would go unrenewed and the queues stall.
        let wait = HEARTBEAT.saturating_sub(last_full.elapsed());
        if failures == 0 && !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = woken.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if !inner.taking() {
            return;
        }
        let full = failures > 0 || last_full.elapsed() >= HEARTBEAT;
        if full {
            last_full = Instant::now();
        }
        let pause = match inner.heartbeat_within_deadline(full).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(failures, "queue lease heartbeat works again");
                }
                failures = 0;
                // Under a stream of notifications, rounds of taking leases run at most this often.
                Duration::from_millis(50)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(error = %e, "queue lease heartbeat failed; retrying until it works");
                } else {
                    tracing::debug!(error = %e, failures, "queue lease heartbeat still failing");
                }
                RETRY_PAUSE
                    .saturating_mul(1 << (failures - 1).min(8))
                    .min(RETRY_MAX)
            }
        };
        drop(inner);
        tokio::time::sleep(pause).await;
    }
}

impl Inner {
    /// Whether this process (still) takes queue leases.
    fn taking(&self) -> bool {
        self.work_queues && !self.released.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A queue changed through this process: the next `queue_heads` looks for free queues
    /// at once (other processes' changes reach the heartbeat by NOTIFY).
    fn queue_changed_here(&self) {
        *self.last_take.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether `queue_heads` may run a round of taking leases now: at most every 100 ms, since
    /// the worker asks on every wake-up and with several processes most queues are rightly
    /// someone else's.
    fn may_take(&self) -> bool {
        let mut last = self.last_take.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// [`Inner::heartbeat`] under the store's operation deadline, so a database that stopped
    /// answering holds neither the round's lock nor the worker for long.
    async fn heartbeat_within_deadline(&self, full: bool) -> Result<(), StoreError> {
        self.pg.deadline(self.heartbeat(full)).await
    }

    /// One round. `full`: also say this process is alive, renew its leases and release those
    /// of empty queues. Always: take free queues up to this process's fair share.
    async fn heartbeat(&self, full: bool) -> Result<(), StoreError> {
        let _round = self.round.lock().await;
        let client = self.pg.client().await?;
        let lease = seconds(self.leases.duration);
        if full {
            client
                .execute(
                    "INSERT INTO engine_nodes (holder, expires_at)
                     VALUES ($1, now() + make_interval(secs => $2))
                     ON CONFLICT (holder) DO UPDATE SET expires_at = excluded.expires_at",
                    &[&self.holder, &lease],
                )
                .await?;
            client
                .execute(
                    "DELETE FROM engine_nodes WHERE expires_at < now() - interval '1 day'",
                    &[],
                )
                .await?;
            let sent = Instant::now();
            let renewed: Vec<String> = client
                .query(
                    "UPDATE queue_leases SET expires_at = now() + make_interval(secs => $2)
                     WHERE holder = $1 RETURNING destination_id",
                    &[&self.holder, &lease],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            self.leases.renewed(renewed, sent);
            self.release_idle(&client).await?;
            self.shed_excess(&client).await?;
        }
        let sent = Instant::now();
        let held = self.leases.count() as i64;
        let taken: Vec<String> = client
            .query(
                concat!(
                    fair_share!(),
                    ", candidates AS (
                    SELECT destination_id FROM active
                    WHERE destination_id NOT IN (SELECT destination_id FROM taken)
                    ORDER BY random()
                    LIMIT greatest((SELECT n FROM share) - $2, 0))
                 INSERT INTO queue_leases (destination_id, holder, expires_at)
                 SELECT destination_id, $1, now() + make_interval(secs => $3) FROM candidates
                 ON CONFLICT (destination_id) DO UPDATE
                    SET holder = excluded.holder, expires_at = excluded.expires_at
                    WHERE queue_leases.expires_at <= now()
                 RETURNING destination_id"
                ),
                &[&self.holder, &held, &lease],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !taken.is_empty() {
            tracing::info!(holder = %self.holder, queues = taken.len(), "took queue leases");
            self.leases.granted(taken, sent);
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Gives up the queues held beyond this process's fair share, so an engine that joins gets
    /// work without waiting for busy queues to go idle. A shed lease is forgotten here at once
    /// (no attempt starts under it any more) but not deleted: its row is handed to no one and
    /// runs out at its `expires_at`. An attempt already under way ends before that (`lease`), so
    /// no other engine can start the queue's next attempt before this one is recorded.
    async fn shed_excess(&self, client: &deadpool_postgres::Object) -> Result<(), StoreError> {
        let share: i64 = client
            .query_one(concat!(fair_share!(), " SELECT n FROM share"), &[])
            .await?
            .get(0);
        let mut held = self.leases.held();
        let excess = held
            .len()
            .saturating_sub(usize::try_from(share).unwrap_or(0));
        if excess == 0 {
            return Ok(());
        }
        // Which ones does not matter for fairness; sorting only makes it reproducible.
        held.sort();
        let shed: Vec<String> = held.split_off(held.len() - excess);
        for destination in &shed {
            self.leases.remove(destination);
        }
        client
            .execute(
                "UPDATE queue_leases SET holder = 'shed by ' || holder
                 WHERE holder = $1 AND destination_id = ANY($2)",
                &[&self.holder, &shed],
            )
            .await?;
        tracing::info!(holder = %self.holder, queues = shed.len(), share, "shed queue leases beyond a fair share");
        Ok(())
    }

    /// Releases the leases of queues with nothing pending, so the work spreads again when it
    /// comes back. Forgotten here first and deleted only if still empty in the same statement:
    /// a head read after the delete is then no longer seen as held (see `queue_front`).
    async fn release_idle(&self, client: &deadpool_postgres::Object) -> Result<(), StoreError> {
        let idle: Vec<String> = client
            .query(
                "SELECT destination_id FROM queue_leases q WHERE holder = $1
                   AND NOT EXISTS (SELECT 1 FROM logs l
                                   WHERE l.destination_id = q.destination_id AND l.status = 'PENDING')",
                &[&self.holder],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if idle.is_empty() {
            return Ok(());
        }
        let forgotten: Vec<(String, Option<Instant>)> = idle
            .iter()
            .map(|d| (d.clone(), self.leases.remove(d)))
            .collect();
        let released: Vec<String> = client
            .query(
                "DELETE FROM queue_leases q WHERE holder = $1 AND destination_id = ANY($2)
                   AND NOT EXISTS (SELECT 1 FROM logs l
                                   WHERE l.destination_id = q.destination_id AND l.status = 'PENDING')
                 RETURNING destination_id",
                &[&self.holder, &idle],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (destination, until) in forgotten {
            if let Some(until) = until
                && !released.contains(&destination)
            {
                self.leases.restore(destination, until);
            }
        }
        Ok(())
    }
}

const APIKEY_COLUMNS: &str =
    "id, organization_id, environment_id, name, jwks_url, jwk_set, created_at, updated_at";

fn apikey(r: &Row) -> ApiKeyRecord {
    ApiKeyRecord {
        id: r.get(0),
        organization_id: r.get(1),
        environment_id: r.get(2),
        name: r.get(3),
        jwks_url: r.get(4),
        jwk_set: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    }
}

const SOURCE_COLUMNS: &str = "id, organization_id, environment_id, name, api_key_digest,
    config_name, created_at, updated_at";

fn source(r: &Row) -> SourceRecord {
    SourceRecord {
        id: r.get(0),
        organization_id: r.get(1),
        environment_id: r.get(2),
        name: r.get(3),
        api_key_digest: r.get(4),
        config_name: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    }
}

const SUBSCRIPTION_COLUMNS: &str = "s.id, s.organization_id, s.environment_id, s.source_id,
    s.destination_id, s.data_model, s.paused, s.created_at, s.updated_at";

fn subscription(r: &Row) -> SubscriptionRecord {
    SubscriptionRecord {
        id: r.get(0),
        organization_id: r.get(1),
        environment_id: r.get(2),
        source_id: r.get(3),
        destination_id: r.get(4),
        data_model: r.get(5),
        paused: r.get(6),
        created_at: r.get(7),
        updated_at: r.get(8),
    }
}

const FILTER_COLUMNS: &str = "f.id, f.subscription_id, f.organization_id, f.environment_id,
    f.name, f.action, f.rules, f.version, f.created_at, f.updated_at, f.deleted_at";

/// A filter row read from `FILTER_COLUMNS` starting at column `at`.
fn filter_at(r: &Row, at: usize) -> FilterRecord {
    FilterRecord {
        id: r.get(at),
        subscription_id: r.get(at + 1),
        organization_id: r.get(at + 2),
        environment_id: r.get(at + 3),
        name: r.get(at + 4),
        action: r.get::<_, Col<_>>(at + 5).0,
        rules: r.get(at + 6),
        version: r.get(at + 7),
        created_at: r.get(at + 8),
        updated_at: r.get(at + 9),
        deleted_at: r.get(at + 10),
    }
}

/// Deletes subscriptions (with their filters), queueing their held logs again where they were.
async fn delete_subscriptions_in(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[i64],
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE logs SET status = 'PENDING', next_attempt_at = $2
         WHERE subscription_id = ANY($1) AND status = 'HELD'",
        &[&ids, &now_millis()],
    )
    .await?;
    tx.execute(
        "DELETE FROM filters WHERE subscription_id = ANY($1)",
        &[&ids],
    )
    .await?;
    tx.execute(
        "DELETE FROM alert_links WHERE subscription_id = ANY($1)",
        &[&ids],
    )
    .await?;
    tx.execute("DELETE FROM subscriptions WHERE id = ANY($1)", &[&ids])
        .await?;
    Ok(())
}

impl PgEngine {
    pub(crate) fn insert_apikey(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "INSERT INTO apikeys ({APIKEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            &[
                &k.id,
                &k.organization_id,
                &k.environment_id,
                &k.name,
                &k.jwks_url,
                &k.jwk_set,
                &k.created_at,
                &k.updated_at,
            ],
        )?;
        Ok(())
    }

    pub(crate) fn update_apikey(&self, k: &ApiKeyRecord) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE apikeys SET name = $2, jwks_url = $3, jwk_set = $4, updated_at = $5
             WHERE id = $1",
            &[&k.id, &k.name, &k.jwks_url, &k.jwk_set, &k.updated_at],
        )? == 1)
    }

    pub(crate) fn apikey(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.row_by_id("apikeys", APIKEY_COLUMNS, id, apikey)
    }

    pub(crate) fn apikeys(&self, environment_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.rows_of_environment("apikeys", APIKEY_COLUMNS, environment_id, apikey)
    }

    pub(crate) fn delete_apikey(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute("DELETE FROM apikeys WHERE id = $1", &[&id])? == 1)
    }

    pub(crate) fn insert_source(&self, s: &SourceRecord) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "INSERT INTO sources ({SOURCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (environment_id, config_name) DO NOTHING"
            ),
            &[
                &s.id,
                &s.organization_id,
                &s.environment_id,
                &s.name,
                &s.api_key_digest,
                &s.config_name,
                &s.created_at,
                &s.updated_at,
            ],
        )?;
        Ok(())
    }

    pub(crate) fn update_source(&self, s: &SourceRecord) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE sources SET name = $2, api_key_digest = $3, updated_at = $4 WHERE id = $1",
            &[&s.id, &s.name, &s.api_key_digest, &s.updated_at],
        )? == 1)
    }

    pub(crate) fn source(&self, id: &str) -> Result<Option<SourceRecord>, StoreError> {
        self.row_by_id("sources", SOURCE_COLUMNS, id, source)
    }

    pub(crate) fn sources(&self, environment_id: &str) -> Result<Vec<SourceRecord>, StoreError> {
        self.rows_of_environment("sources", SOURCE_COLUMNS, environment_id, source)
    }

    pub(crate) fn source_by_key_digest(
        &self,
        digest: &[u8],
    ) -> Result<Option<SourceRecord>, StoreError> {
        self.query_opt(
            &format!("SELECT {SOURCE_COLUMNS} FROM sources WHERE api_key_digest = $1"),
            &[&digest],
            source,
        )
    }

    pub(crate) fn config_sources(
        &self,
        organization_id: &str,
        name: &str,
    ) -> Result<Vec<SourceRecord>, StoreError> {
        self.query(
            &format!(
                "SELECT {SOURCE_COLUMNS} FROM sources WHERE organization_id = $1 AND config_name = $2
                 ORDER BY created_at, id"
            ),
            &[&organization_id, &name],
            source,
        )
    }

    pub(crate) fn delete_source(&self, id: &str) -> Result<bool, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(&xact_lock("logs")).await?;
            let ids: Vec<i64> = tx
                .query("SELECT id FROM subscriptions WHERE source_id = $1", &[&id])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            delete_subscriptions_in(&tx, &ids).await?;
            let deleted = tx
                .execute("DELETE FROM sources WHERE id = $1", &[&id])
                .await?
                == 1;
            tx.batch_execute(&notify(CHANNEL)).await?;
            commit(tx).await?;
            self.inner.queue_changed_here();
            Ok(deleted)
        })
    }

    pub(crate) fn insert_subscription(
        &self,
        s: &SubscriptionRecord,
    ) -> Result<SubscriptionRecord, StoreError> {
        self.pg().run(async {
            let client = self.pg().client().await?;
            client
                .execute(
                    "INSERT INTO subscriptions (organization_id, environment_id, source_id,
                        destination_id, data_model, paused, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                     ON CONFLICT (source_id, data_model, destination_id) DO NOTHING",
                    &[
                        &s.organization_id,
                        &s.environment_id,
                        &s.source_id,
                        &s.destination_id,
                        &s.data_model,
                        &s.paused,
                        &s.created_at,
                    ],
                )
                .await?;
            let row = client
                .query_one(
                    &format!(
                        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s
                         WHERE source_id = $1 AND data_model = $2 AND destination_id = $3"
                    ),
                    &[&s.source_id, &s.data_model, &s.destination_id],
                )
                .await?;
            Ok(subscription(&row))
        })
    }

    pub(crate) fn subscription(&self, id: i64) -> Result<Option<SubscriptionRecord>, StoreError> {
        self.query_opt(
            &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE id = $1"),
            &[&id],
            subscription,
        )
    }

    pub(crate) fn subscriptions(
        &self,
        environment_id: &str,
        filter: &SubscriptionFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.query(
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE environment_id = $1
                   AND ($2::text IS NULL OR source_id = $2)
                   AND ($3::text IS NULL OR destination_id = $3)
                   AND ($4::text IS NULL OR data_model = $4)
                 ORDER BY id LIMIT $5 OFFSET $6"
            ),
            &[
                &environment_id,
                &filter.source_id,
                &filter.destination_id,
                &filter.data_model,
                &(limit as i64),
                &(offset as i64),
            ],
            subscription,
        )
    }

    pub(crate) fn routes(
        &self,
        source_id: &str,
        data_model: &str,
    ) -> Result<Vec<(SubscriptionRecord, Option<FilterRecord>)>, StoreError> {
        self.query(
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS}, {FILTER_COLUMNS} FROM subscriptions s
                 LEFT JOIN filters f ON f.subscription_id = s.id AND f.deleted_at IS NULL
                 WHERE s.source_id = $1 AND s.data_model = $2 ORDER BY s.id"
            ),
            &[&source_id, &data_model],
            |r| {
                let filter = r.get::<_, Option<String>>(9).map(|_| filter_at(r, 9));
                (subscription(r), filter)
            },
        )
    }

    pub(crate) fn delete_subscription(&self, id: i64) -> Result<bool, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute(&xact_lock("logs")).await?;
            let exists = tx
                .query_opt("SELECT 1 FROM subscriptions WHERE id = $1", &[&id])
                .await?
                .is_some();
            delete_subscriptions_in(&tx, &[id]).await?;
            tx.batch_execute(&notify(CHANNEL)).await?;
            commit(tx).await?;
            self.inner.queue_changed_here();
            Ok(exists)
        })
    }

    pub(crate) fn set_subscription_paused(
        &self,
        id: i64,
        paused: bool,
    ) -> Result<bool, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            // The lock ingestion takes to queue logs: a log queued after this commits sees the
            // pause, one queued before is held by the UPDATE below.
            tx.batch_execute(&xact_lock("logs")).await?;
            let now = now_millis();
            let changed = tx
                .execute(
                    "UPDATE subscriptions SET paused = $2, updated_at = $3 WHERE id = $1",
                    &[&id, &paused, &now],
                )
                .await?
                == 1;
            if changed {
                if paused {
                    tx.execute(
                        "UPDATE logs SET status = 'HELD'
                         WHERE subscription_id = $1 AND status = 'PENDING'",
                        &[&id],
                    )
                    .await?;
                } else {
                    tx.execute(
                        "UPDATE logs SET status = 'PENDING', next_attempt_at = $2
                         WHERE subscription_id = $1 AND status = 'HELD'",
                        &[&id, &now],
                    )
                    .await?;
                }
                tx.batch_execute(&notify(CHANNEL)).await?;
            }
            commit(tx).await?;
            self.inner.queue_changed_here();
            Ok(changed)
        })
    }

    pub(crate) fn save_filter(&self, f: &FilterRecord) -> Result<FilterRecord, StoreError> {
        self.pg().run(async {
            let mut client = self.pg().client().await?;
            let tx = client.transaction().await?;
            let updated = tx
                .execute(
                    "UPDATE filters SET name = $3, action = $4, rules = $5, version = version + 1,
                        updated_at = $6
                     WHERE id = $1 AND subscription_id = $2 AND deleted_at IS NULL",
                    &[
                        &f.id,
                        &f.subscription_id,
                        &f.name,
                        &f.action.to_column(),
                        &f.rules,
                        &f.updated_at,
                    ],
                )
                .await?;
            if updated == 0 {
                tx.execute(
                    "INSERT INTO filters (id, subscription_id, organization_id, environment_id,
                        name, action, rules, version, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)",
                    &[
                        &f.id,
                        &f.subscription_id,
                        &f.organization_id,
                        &f.environment_id,
                        &f.name,
                        &f.action.to_column(),
                        &f.rules,
                        &f.created_at,
                    ],
                )
                .await?;
            }
            let row = tx
                .query_one(
                    &format!("SELECT {FILTER_COLUMNS} FROM filters f WHERE id = $1"),
                    &[&f.id],
                )
                .await?;
            commit(tx).await?;
            Ok(filter_at(&row, 0))
        })
    }

    pub(crate) fn filters(
        &self,
        subscription_id: i64,
        deleted: bool,
    ) -> Result<Vec<FilterRecord>, StoreError> {
        self.query(
            &format!(
                "SELECT {FILTER_COLUMNS} FROM filters f WHERE subscription_id = $1
                   AND ($2 OR deleted_at IS NULL)
                 ORDER BY created_at, id"
            ),
            &[&subscription_id, &deleted],
            |r| filter_at(r, 0),
        )
    }

    pub(crate) fn delete_filter(
        &self,
        subscription_id: i64,
        filter_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.execute(
            "UPDATE filters SET deleted_at = $3, updated_at = $3
             WHERE id = $2 AND subscription_id = $1 AND deleted_at IS NULL",
            &[&subscription_id, &filter_id, &at],
        )? == 1)
    }
}
