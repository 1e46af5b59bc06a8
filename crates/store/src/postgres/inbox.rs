//! The destination inbox on PostgreSQL, shared by several destination processes.
//!
//! Any process keeps messages: its writer thread commits each batch in one transaction with
//! one multi-row `INSERT ... ON CONFLICT (destination, duplicate_key) DO NOTHING`, so a retry
//! that reaches another process is still kept once and gets the original message id back. The
//! batch takes a transaction-scoped lock first, so `id` (arrival order) is handed out in commit
//! order across processes: a forwarder that has seen id n never sees an id below n appear later.
//! Each commit that kept something sends a NOTIFY; every process listens, so the forwarder that
//! holds a destination's lease wakes whichever process kept the message.
//!
//! One process at a time forwards a destination: the holder of its row in `forwarder_leases`,
//! taken when free or expired and renewed by a heartbeat (see `lease` for the safety margin).

use super::lease::{HEARTBEAT, Leases};
use super::{
    Pg, RETRY_MAX, RETRY_PAUSE, SingleUse, block_on, commit, notify, runtime, schema, xact_lock,
};
use crate::StoreError;
use crate::inbox::{Kept, ListQuery, MessageStatus, MessageSummary, OperatorChange, StoredMessage};
use crate::now_millis;
use crate::writer::{BatchOutcome, Bookkeeping, Item, KeepRequest};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The NOTIFY channel for new inbox rows.
const CHANNEL: &str = "wharf_inbox";

pub(crate) struct PgInbox {
    pg: Arc<Pg>,
    forwarders: Option<Arc<Forwarders>>,
    /// Single-use credentials accepted by the servers (`replay_seen`); expired issued tokens
    /// are swept with them.
    replays: SingleUse,
}

fn replays() -> SingleUse {
    SingleUse::new("replay_seen", &["issued_tokens"])
}

/// The forwarder leases of this process.
struct Forwarders {
    pg: Arc<Pg>,
    holder: String,
    leases: Leases,
    /// Destinations this process would forward, lease or not.
    wanted: Mutex<HashSet<String>>,
    poke: Notify,
    /// Bumped when a lease is gained, so a waiting forwarder looks again.
    committed: Arc<watch::Sender<u64>>,
}

const SUMMARY_COLUMNS: &str = "id, message_id, destination, duplicate_key, kind, status,
    data_model, event_type, log_id, content_type, octet_length(body)::int8, received_at,
    forward_attempts, last_error, malformed_reason, forwarded_at, first_failed_at,
    dead_lettered_at, dead_letter_reason";

const STORED_COLUMNS: &str = "id, message_id, destination, duplicate_key, content_type, body,
    forward_attempts, first_failed_at";

fn stored(r: &Row) -> StoredMessage {
    StoredMessage {
        id: r.get(0),
        message_id: r.get(1),
        destination: r.get(2),
        duplicate_key: r.get(3),
        content_type: r.get(4),
        body: r.get(5),
        forward_attempts: r.get(6),
        first_failed_at: r.get(7),
    }
}

fn summary(row: &Row) -> MessageSummary {
    MessageSummary {
        id: row.get(0),
        message_id: row.get(1),
        destination: row.get(2),
        duplicate_key: row.get(3),
        kind: row.get(4),
        status: MessageStatus::parse(row.get(5)),
        data_model: row.get(6),
        event_type: row.get(7),
        log_id: row.get(8),
        content_type: row.get(9),
        body_bytes: row.get(10),
        received_at: row.get(11),
        forward_attempts: row.get(12),
        last_error: row.get(13),
        malformed_reason: row.get(14),
        forwarded_at: row.get(15),
        first_failed_at: row.get(16),
        dead_lettered_at: row.get(17),
        dead_letter_reason: row.get(18),
    }
}

impl PgInbox {
    /// Connects and migrates for a running server: a NOTIFY listener bumps `committed`, and a
    /// heartbeat keeps the forwarder leases asked for with [`want_forwarder`](Self::want_forwarder).
    pub(crate) fn open(
        url: &str,
        forward_bound: Duration,
        max_connections: usize,
        committed: Arc<watch::Sender<u64>>,
    ) -> Result<PgInbox, StoreError> {
        let pg = Pg::connect(url, max_connections)?;
        block_on(schema::migrate(&pg, schema::Component::Inbox))?;
        super::spawn_listener(&pg, CHANNEL, committed.clone());
        let forwarders = Arc::new(Forwarders {
            pg: pg.clone(),
            holder: super::holder_name(),
            leases: Leases::new(forward_bound),
            wanted: Mutex::default(),
            poke: Notify::new(),
            committed,
        });
        runtime().spawn(heartbeats(Arc::downgrade(&forwarders)));
        tracing::info!(database = %pg.describe, holder = %forwarders.holder, "inbox on PostgreSQL");
        Ok(PgInbox {
            pg,
            forwarders: Some(forwarders),
            replays: replays(),
        })
    }

    /// Connects for reading only (a tool beside running servers): no migration, no leases.
    pub(crate) fn open_reader(url: &str) -> Result<PgInbox, StoreError> {
        Ok(PgInbox {
            pg: Pg::connect(url, 2)?,
            forwarders: None,
            replays: replays(),
        })
    }

    pub(crate) fn describe(&self) -> &str {
        &self.pg.describe
    }

    pub(crate) fn want_forwarder(&self, destination: &str) {
        if let Some(f) = &self.forwarders {
            f.wanted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(destination.to_owned());
            f.poke.notify_one();
        }
    }

    pub(crate) fn holds_forwarder(&self, destination: &str) -> bool {
        self.forwarders
            .as_ref()
            .is_some_and(|f| f.leases.holds(destination))
    }

    pub(crate) fn release_forwarder(&self, destination: &str) -> Result<(), StoreError> {
        let Some(f) = &self.forwarders else {
            return Ok(());
        };
        f.wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(destination);
        f.leases.remove(destination);
        self.pg.run(async {
            let client = self.pg.client().await?;
            client
                .execute(
                    "DELETE FROM forwarder_leases WHERE destination = $1 AND holder = $2",
                    &[&destination, &f.holder],
                )
                .await?;
            // Wakes the other processes' forwarders, waiting for this lease.
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
        self.pg.query(sql, params, map)
    }

    pub(crate) fn list(&self, query: &ListQuery<'_>) -> Result<Vec<MessageSummary>, StoreError> {
        let (after, before) = query.bounds();
        self.query(
            &query.sql(SUMMARY_COLUMNS, '$'),
            &[&query.destination, &after, &before, &(query.limit as i64)],
            summary,
        )
    }

    pub(crate) fn get(&self, message_id: &str) -> Result<Option<MessageSummary>, StoreError> {
        Ok(self
            .query(
                &format!("SELECT {SUMMARY_COLUMNS} FROM inbox WHERE message_id = $1"),
                &[&message_id],
                summary,
            )?
            .into_iter()
            .next())
    }

    pub(crate) fn next_to_forward(
        &self,
        destination: &str,
        after_id: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {STORED_COLUMNS}
                     FROM inbox WHERE destination = $1 AND status = 'received' AND id > $2
                     ORDER BY id LIMIT 1"
                ),
                &[&destination, &after_id],
                stored,
            )?
            .into_iter()
            .next())
    }

    /// Records the single-use credential `digest` until `expires_at` (Unix seconds), unless it
    /// is recorded already and not expired at `now`: true for its first use, false for a
    /// replay ([`SingleUse::first_use`]).
    pub(crate) fn first_use(
        &self,
        digest: &[u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.replays.first_use(&self.pg, digest, expires_at, now)
    }

    /// Records an access token issued by `destination`'s token endpoint (its SHA-256 `digest`)
    /// for `client_id` until `expires_at`.
    pub(crate) fn record_token(
        &self,
        digest: &[u8; 32],
        destination: &str,
        client_id: &str,
        registration: &[u8; 32],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.pg.run(async {
            let client = self.pg.client().await?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO issued_tokens
                         (digest, destination, client_id, registration, expires_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (digest) DO NOTHING",
                )
                .await?;
            super::sent();
            client
                .execute(
                    &statement,
                    &[
                        &digest.as_slice(),
                        &destination,
                        &client_id,
                        &registration.as_slice(),
                        &expires_at,
                    ],
                )
                .await?;
            Ok(())
        })
    }

    /// The client, its registration digest and the expiry of the access token with `digest`
    /// that `destination` issued, if any (expired or not).
    pub(crate) fn issued_token(
        &self,
        digest: &[u8; 32],
        destination: &str,
    ) -> Result<Option<(String, Vec<u8>, i64)>, StoreError> {
        Ok(self
            .query(
                "SELECT client_id, registration, expires_at FROM issued_tokens
                 WHERE digest = $1 AND destination = $2",
                &[&digest.as_slice(), &destination],
                |r| (r.get(0), r.get(1), r.get(2)),
            )?
            .into_iter()
            .next())
    }

    /// Rows of `replay_seen`, expired ones not yet swept included (for tests).
    pub(crate) fn replay_rows(&self) -> Result<i64, StoreError> {
        Ok(self
            .query("SELECT count(*) FROM replay_seen", &[], |r| r.get(0))?
            .into_iter()
            .next()
            .unwrap_or(0))
    }

    /// An operator's change ([`OperatorChange`]) in one statement; returns the ids it applied
    /// to. A replay wakes the forwarding servers (NOTIFY), as a new message does.
    pub(crate) fn operator_change(
        &self,
        message_ids: &[String],
        change: OperatorChange<'_>,
    ) -> Result<Vec<String>, StoreError> {
        let now = now_millis();
        let changed: Vec<String> = match change {
            OperatorChange::DiscardMalformed => self.query(
                "DELETE FROM inbox WHERE message_id = ANY($1) AND status = 'malformed'
                 RETURNING message_id",
                &[&message_ids],
                |r| r.get(0),
            )?,
            OperatorChange::DeadLetter { reason } => self.query(
                "UPDATE inbox SET status = 'dead_letter', dead_lettered_at = $2,
                    dead_letter_reason = $3
                 WHERE message_id = ANY($1) AND status = 'received'
                 RETURNING message_id",
                &[&message_ids, &now, &reason],
                |r| r.get(0),
            )?,
            OperatorChange::Replay => self.query(
                "UPDATE inbox SET status = 'received', forward_attempts = 0,
                    first_failed_at = NULL, dead_lettered_at = NULL, dead_letter_reason = NULL
                 WHERE message_id = ANY($1) AND status = 'dead_letter'
                 RETURNING message_id",
                &[&message_ids],
                |r| r.get(0),
            )?,
        };
        if matches!(change, OperatorChange::Replay) && !changed.is_empty() {
            self.pg.run(async {
                let client = self.pg.client().await?;
                client.batch_execute(&notify(CHANNEL)).await?;
                Ok(())
            })?;
        }
        // In the order asked, as SQLite answers.
        Ok(message_ids
            .iter()
            .filter(|id| changed.contains(id))
            .cloned()
            .collect())
    }

    pub(crate) fn message(&self, message_id: &str) -> Result<Option<StoredMessage>, StoreError> {
        Ok(self
            .query(
                &format!("SELECT {STORED_COLUMNS} FROM inbox WHERE message_id = $1"),
                &[&message_id],
                stored,
            )?
            .into_iter()
            .next())
    }

    pub(crate) fn count_by_status(
        &self,
        destination: &str,
    ) -> Result<Vec<(MessageStatus, i64)>, StoreError> {
        // One statement: the sum is read from its snapshot (every change committed before it,
        // whoever folds them concurrently), and the rows it could delete are folded into one
        // per status, so the table stays a few rows per destination between scrapes.
        self.query(
            "WITH folded AS (
                DELETE FROM inbox_count_changes WHERE destination = $1 RETURNING status, delta
             ), refolded AS (
                INSERT INTO inbox_count_changes (destination, status, delta)
                SELECT $1, status, sum(delta) FROM folded GROUP BY status HAVING sum(delta) <> 0
             )
             SELECT status, sum(delta)::BIGINT FROM inbox_count_changes WHERE destination = $1
             GROUP BY status HAVING sum(delta) > 0 ORDER BY status",
            &[&destination],
            |r| (MessageStatus::parse(r.get(0)), r.get(1)),
        )
    }

    /// [`write_batch`](Self::write_batch) on this thread, under the operation deadline.
    pub(crate) fn commit_batch(&self, batch: &[Item]) -> Result<BatchOutcome, StoreError> {
        self.pg.run(self.write_batch(batch))
    }

    /// Commits one writer batch in one transaction and says what it did ([`BatchOutcome`]).
    async fn write_batch(&self, batch: &[Item]) -> Result<BatchOutcome, StoreError> {
        let keeps: Vec<&crate::inbox::NewMessage> = batch
            .iter()
            .filter_map(|item| match item {
                Item::Keep(KeepRequest { message, .. }) => Some(message),
                Item::Book(_) => None,
            })
            .collect();
        let mut forwarded: Vec<i64> = Vec::new();
        let mut failed_ids: Vec<i64> = Vec::new();
        let mut failed_errors: Vec<&str> = Vec::new();
        let mut dead_ids: Vec<i64> = Vec::new();
        let mut dead_reasons: Vec<&str> = Vec::new();
        let mut probe: Option<usize> = None;
        let mut prunes: Vec<(i64, u32)> = Vec::new();
        for item in batch {
            match item {
                Item::Book(Bookkeeping::Forwarded { id, .. }) => forwarded.push(*id),
                Item::Book(Bookkeeping::ForwardFailed {
                    id,
                    error,
                    dead_letter,
                    ..
                }) => {
                    failed_ids.push(*id);
                    failed_errors.push(error);
                    if let Some(reason) = dead_letter {
                        dead_ids.push(*id);
                        dead_reasons.push(reason);
                    }
                }
                Item::Book(Bookkeeping::Probe { bytes, .. }) => {
                    probe = Some(probe.unwrap_or(0).max(*bytes));
                }
                Item::Book(Bookkeeping::Prune { before, limit, .. }) => {
                    prunes.push((*before, *limit));
                }
                Item::Keep(_) => {}
            }
        }
        let now = now_millis();
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await?;
        let mut kept = Vec::with_capacity(keeps.len());
        let mut new_rows = 0;
        if !keeps.is_empty() {
            tx.batch_execute(&xact_lock("inbox")).await?;
            let message_ids: Vec<String> = keeps
                .iter()
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect();
            let destinations: Vec<&str> = keeps.iter().map(|m| m.destination.as_str()).collect();
            let keys: Vec<&str> = keeps.iter().map(|m| m.duplicate_key.as_str()).collect();
            let kinds: Vec<&str> = keeps.iter().map(|m| m.kind.as_str()).collect();
            let statuses: Vec<&str> = keeps.iter().map(|m| m.status.as_str()).collect();
            let models: Vec<Option<&str>> = keeps.iter().map(|m| m.data_model.as_deref()).collect();
            let events: Vec<Option<&str>> = keeps.iter().map(|m| m.event_type.as_deref()).collect();
            let logs: Vec<Option<&str>> = keeps.iter().map(|m| m.log_id.as_deref()).collect();
            let types: Vec<&str> = keeps.iter().map(|m| m.content_type.as_str()).collect();
            let bodies: Vec<&[u8]> = keeps.iter().map(|m| &m.body[..]).collect();
            let reasons: Vec<Option<&str>> = keeps
                .iter()
                .map(|m| m.malformed_reason.as_deref())
                .collect();
            let insert = tx
                .prepare_cached(
                    "INSERT INTO inbox (message_id, destination, duplicate_key, kind, status,
                        data_model, event_type, log_id, content_type, body, malformed_reason,
                        received_at)
                     SELECT mid, dest, key, kind, st, dm, et, lid, ct, body, mr, $12
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                 $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[],
                                 $11::text[]) WITH ORDINALITY
                          AS t(mid, dest, key, kind, st, dm, et, lid, ct, body, mr, ord)
                     ORDER BY ord
                     ON CONFLICT (destination, duplicate_key) DO NOTHING
                     RETURNING id, message_id",
                )
                .await?;
            let params: [&(dyn ToSql + Sync); 12] = [
                &message_ids,
                &destinations,
                &keys,
                &kinds,
                &statuses,
                &models,
                &events,
                &logs,
                &types,
                &bodies,
                &reasons,
                &now,
            ];
            let inserted: HashMap<String, i64> = tx
                .query(&insert, &params)
                .await?
                .iter()
                .map(|r| (r.get(1), r.get(0)))
                .collect();
            // Retries of kept messages (earlier, in another process, or twice in this batch)
            // get the original row back.
            let mut existing: HashMap<(String, String), (i64, String)> = HashMap::new();
            if inserted.len() < keeps.len() {
                let lookup = tx
                    .prepare_cached(
                        "SELECT i.id, i.message_id, i.destination, i.duplicate_key FROM inbox i
                         JOIN unnest($1::text[], $2::text[]) AS k(dest, key)
                           ON i.destination = k.dest AND i.duplicate_key = k.key",
                    )
                    .await?;
                for row in tx.query(&lookup, &[&destinations, &keys]).await? {
                    existing.insert((row.get(2), row.get(3)), (row.get(0), row.get(1)));
                }
            }
            for (m, message_id) in keeps.iter().zip(message_ids) {
                match inserted.get(&message_id) {
                    Some(&id) => {
                        new_rows += 1;
                        kept.push(Kept {
                            id,
                            message_id,
                            duplicate: false,
                        });
                    }
                    None => {
                        let key = (m.destination.clone(), m.duplicate_key.clone());
                        let (id, message_id) = existing.get(&key).cloned().ok_or_else(|| {
                            StoreError::Postgres(
                                "a duplicate message's original row was not found".into(),
                            )
                        })?;
                        kept.push(Kept {
                            id,
                            message_id,
                            duplicate: true,
                        });
                    }
                }
            }
        }
        if !failed_ids.is_empty() {
            let statement = tx
                .prepare_cached(
                    "UPDATE inbox i SET forward_attempts = i.forward_attempts + 1,
                        last_error = t.error, first_failed_at = coalesce(i.first_failed_at, $3)
                     FROM unnest($1::int8[], $2::text[]) AS t(id, error) WHERE i.id = t.id",
                )
                .await?;
            tx.execute(&statement, &[&failed_ids, &failed_errors, &now])
                .await?;
        }
        if !dead_ids.is_empty() {
            // Only messages still waiting: an operator may have moved one meanwhile.
            let statement = tx
                .prepare_cached(
                    "UPDATE inbox i SET status = 'dead_letter', dead_lettered_at = $3,
                        dead_letter_reason = t.reason
                     FROM unnest($1::int8[], $2::text[]) AS t(id, reason)
                     WHERE i.id = t.id AND i.status = 'received'",
                )
                .await?;
            tx.execute(&statement, &[&dead_ids, &dead_reasons, &now])
                .await?;
        }
        if let Some(bytes) = probe {
            // Bytes that must find room (the column is stored uncompressed).
            let statement = tx
                .prepare_cached(
                    "INSERT INTO inbox_probe (id, at, pad) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at, pad = EXCLUDED.pad",
                )
                .await?;
            tx.execute(&statement, &[&now, &vec![0u8; bytes]]).await?;
        }
        if !forwarded.is_empty() {
            let statement = tx
                .prepare_cached(
                    "UPDATE inbox SET status = 'forwarded', forwarded_at = $2,
                        forward_attempts = forward_attempts + 1, last_error = NULL
                     WHERE id = ANY($1)",
                )
                .await?;
            tx.execute(&statement, &[&forwarded, &now]).await?;
        }
        let mut pruned = Vec::with_capacity(prunes.len());
        for (before, limit) in prunes {
            // Oldest first through `inbox_forwarded`, `limit` at a time. Several servers may
            // prune at once: a row another one deleted first is simply not counted here.
            let statement = tx
                .prepare_cached(
                    "DELETE FROM inbox WHERE id IN (
                        SELECT id FROM inbox WHERE status = 'forwarded' AND forwarded_at < $1
                        ORDER BY forwarded_at LIMIT $2)",
                )
                .await?;
            pruned.push(
                tx.execute(&statement, &[&before, &i64::from(limit)])
                    .await?,
            );
        }
        if new_rows > 0 {
            tx.batch_execute(&notify(CHANNEL)).await?;
        }
        commit(tx).await?;
        Ok(BatchOutcome {
            kept,
            new_rows,
            pruned,
        })
    }
}

/// Renews and takes forwarder leases every [`HEARTBEAT`], and at once when a forwarder asks.
/// After a failed round (the database is down or did not answer) the next comes after
/// [`RETRY_PAUSE`], doubling up to [`RETRY_MAX`]. Ends when the inbox is gone.
async fn heartbeats(forwarders: Weak<Forwarders>) {
    let mut failures: u32 = 0;
    loop {
        let Some(f) = forwarders.upgrade() else {
            return;
        };
        match f.pg.deadline(f.heartbeat()).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(failures, "forwarder lease heartbeat works again");
                }
                failures = 0;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(error = %e, "forwarder lease heartbeat failed; retrying until it works");
                } else {
                    tracing::debug!(error = %e, failures, "forwarder lease heartbeat still failing");
                }
            }
        }
        let pause = if failures > 0 {
            RETRY_PAUSE
                .saturating_mul(1 << (failures - 1).min(8))
                .min(RETRY_MAX)
        } else {
            HEARTBEAT
        };
        let poked = tokio::select! {
            _ = tokio::time::sleep(pause) => false,
            _ = f.poke.notified() => true,
        };
        drop(f);
        if poked {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Forwarders {
    async fn heartbeat(&self) -> Result<(), StoreError> {
        let client = self.pg.client().await?;
        let lease = self.leases.duration.as_secs_f64();
        let sent = Instant::now();
        let renewed: Vec<String> = client
            .query(
                "UPDATE forwarder_leases SET expires_at = now() + make_interval(secs => $2)
                 WHERE holder = $1 RETURNING destination",
                &[&self.holder, &lease],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        self.leases.renewed(renewed, sent);
        let wanted: Vec<String> = {
            let wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            wanted.iter().cloned().collect()
        };
        let missing: Vec<String> = wanted
            .into_iter()
            .filter(|d| !self.leases.held().contains(d))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let sent = Instant::now();
        let taken: Vec<String> = client
            .query(
                "INSERT INTO forwarder_leases (destination, holder, expires_at)
                 SELECT d, $2, now() + make_interval(secs => $3) FROM unnest($1::text[]) AS d
                 ON CONFLICT (destination) DO UPDATE
                    SET holder = excluded.holder, expires_at = excluded.expires_at
                    WHERE forwarder_leases.expires_at <= now()
                       OR forwarder_leases.holder = excluded.holder
                 RETURNING destination",
                &[&missing, &self.holder, &lease],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !taken.is_empty() {
            tracing::info!(holder = %self.holder, destinations = ?taken, "took forwarder leases");
            self.leases.granted(taken, sent);
            self.committed.send_modify(|n| *n += 1);
        }
        Ok(())
    }
}
