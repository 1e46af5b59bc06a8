//! The destination inbox on SQLite: the reads, and the batch the group-commit writer commits.
//!
//! The writer thread owns one connection ([`write_batch`]) and the map of duplicate keys
//! (`duplicates`); readers share another behind a mutex, which is enough because reads are
//! short and WAL never makes the writer wait on them.

use crate::inbox::{Kept, ListQuery, MessageStatus, MessageSummary, OperatorChange, StoredMessage};
use crate::now_millis;
use crate::sqlite::duplicates::{DuplicateKeys, KeyHash};
use crate::writer::{BatchOutcome, Bookkeeping, Item, KeepRequest};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

pub(crate) const SUMMARY_COLUMNS: &str = "id, message_id, destination, duplicate_key, kind, status,
    data_model, event_type, log_id, content_type, length(body), received_at, forward_attempts,
    last_error, malformed_reason, forwarded_at, first_failed_at, dead_lettered_at,
    dead_letter_reason";

fn summary(row: &Row<'_>) -> rusqlite::Result<MessageSummary> {
    Ok(MessageSummary {
        id: row.get(0)?,
        message_id: row.get(1)?,
        destination: row.get(2)?,
        duplicate_key: row.get(3)?,
        kind: row.get(4)?,
        status: MessageStatus::parse(&row.get::<_, String>(5)?),
        data_model: row.get(6)?,
        event_type: row.get(7)?,
        log_id: row.get(8)?,
        content_type: row.get(9)?,
        body_bytes: row.get(10)?,
        received_at: row.get(11)?,
        forward_attempts: row.get(12)?,
        last_error: row.get(13)?,
        malformed_reason: row.get(14)?,
        forwarded_at: row.get(15)?,
        first_failed_at: row.get(16)?,
        dead_lettered_at: row.get(17)?,
        dead_letter_reason: row.get(18)?,
    })
}

pub(crate) fn list(
    conn: &Connection,
    query: &ListQuery<'_>,
) -> rusqlite::Result<Vec<MessageSummary>> {
    let (after, before) = query.bounds();
    let mut stmt = conn.prepare_cached(&query.sql(SUMMARY_COLUMNS, '?'))?;
    let rows = stmt.query_map(
        params![query.destination, after, before, query.limit as i64],
        summary,
    )?;
    rows.collect()
}

pub(crate) fn get(conn: &Connection, message_id: &str) -> rusqlite::Result<Option<MessageSummary>> {
    conn.query_row(
        &format!("SELECT {SUMMARY_COLUMNS} FROM inbox WHERE message_id = ?1"),
        params![message_id],
        summary,
    )
    .optional()
}

const STORED_COLUMNS: &str = "id, message_id, destination, duplicate_key, content_type, body,
    forward_attempts, first_failed_at";

fn stored(r: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        message_id: r.get(1)?,
        destination: r.get(2)?,
        duplicate_key: r.get(3)?,
        content_type: r.get(4)?,
        body: r.get(5)?,
        forward_attempts: r.get(6)?,
        first_failed_at: r.get(7)?,
    })
}

pub(crate) fn next_to_forward(
    conn: &Connection,
    destination: &str,
    after_id: i64,
) -> rusqlite::Result<Option<StoredMessage>> {
    conn.prepare_cached(&format!(
        "SELECT {STORED_COLUMNS}
         FROM inbox WHERE destination = ?1 AND status = 'received' AND id > ?2
         ORDER BY id LIMIT 1"
    ))?
    .query_row(params![destination, after_id], stored)
    .optional()
}

/// An operator's change ([`OperatorChange`]) in one IMMEDIATE transaction; returns the ids
/// it applied to.
pub(crate) fn operator_change(
    conn: &mut Connection,
    message_ids: &[String],
    change: OperatorChange<'_>,
    now: i64,
) -> rusqlite::Result<Vec<String>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut changed = Vec::new();
    for id in message_ids {
        let rows = match change {
            OperatorChange::DiscardMalformed => tx.execute(
                "DELETE FROM inbox WHERE message_id = ?1 AND status = 'malformed'",
                params![id],
            )?,
            OperatorChange::DeadLetter { reason } => tx.execute(
                "UPDATE inbox SET status = 'dead_letter', dead_lettered_at = ?2,
                    dead_letter_reason = ?3
                 WHERE message_id = ?1 AND status = 'received'",
                params![id, now, reason],
            )?,
            OperatorChange::Replay => tx.execute(
                "UPDATE inbox SET status = 'received', forward_attempts = 0,
                    first_failed_at = NULL, dead_lettered_at = NULL, dead_letter_reason = NULL
                 WHERE message_id = ?1 AND status = 'dead_letter'",
                params![id],
            )?,
        };
        if rows == 1 {
            changed.push(id.clone());
        }
    }
    tx.commit()?;
    Ok(changed)
}

pub(crate) fn message(
    conn: &Connection,
    message_id: &str,
) -> rusqlite::Result<Option<StoredMessage>> {
    conn.prepare_cached(&format!(
        "SELECT {STORED_COLUMNS} FROM inbox WHERE message_id = ?1"
    ))?
    .query_row(params![message_id], stored)
    .optional()
}

pub(crate) fn count_by_status(
    conn: &Connection,
    destination: &str,
) -> rusqlite::Result<Vec<(MessageStatus, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, count FROM inbox_counts WHERE destination = ?1 AND count > 0 ORDER BY status",
    )?;
    let rows = stmt.query_map(params![destination], |r| {
        Ok((MessageStatus::parse(&r.get::<_, String>(0)?), r.get(1)?))
    })?;
    rows.collect()
}

/// Writes a whole batch in one IMMEDIATE transaction and says what it did ([`BatchOutcome`]).
///
/// Duplicates are found in `keys` (the writer's map of every row's duplicate key, see
/// `duplicates`); the map follows the batch: rows it inserts are added at once (so a second
/// copy later in the same batch is found) and taken back if the batch does not commit, and
/// rows it deletes (or finds deleted by another process) are forgotten once it has.
///
/// New rows are counted into `inbox_counts` here, once per destination and status at the end
/// of the batch, rather than by a trigger per row (migration 5 dropped `inbox_counts_insert`):
/// a trigger made every insert open a statement journal and run an upsert of its own, about
/// 6 % of the writer's CPU per message (`docs/experiments/destination-throughput.md`).
/// Deletes and status changes are rarer and still counted by their triggers.
pub(crate) fn write_batch(
    conn: &mut Connection,
    keys: &mut DuplicateKeys,
    batch: &[Item],
) -> rusqlite::Result<BatchOutcome> {
    let mut added = Vec::new();
    let mut deleted = Vec::new();
    let result = write_batch_with(conn, keys, batch, &mut added, &mut deleted);
    match &result {
        Ok(_) => deleted
            .into_iter()
            .for_each(|(hash, id)| keys.remove(hash, id)),
        Err(_) => added
            .into_iter()
            .for_each(|(hash, id)| keys.remove(hash, id)),
    }
    result
}

/// Adds one new row of `destination` in `status` to the batch's counts.
fn count_new_row<'a>(
    counted: &mut Vec<(&'a str, &'a str, i64)>,
    destination: &'a str,
    status: &'a str,
) {
    match counted
        .iter_mut()
        .find(|(d, s, _)| *d == destination && *s == status)
    {
        Some((_, _, n)) => *n += 1,
        None => counted.push((destination, status, 1)),
    }
}

/// [`write_batch`] up to its commit; `added` collects the keys of the rows it inserted,
/// `deleted` those of the rows it deleted or found gone.
fn write_batch_with(
    conn: &mut Connection,
    keys: &mut DuplicateKeys,
    batch: &[Item],
    added: &mut Vec<(KeyHash, i64)>,
    deleted: &mut Vec<(KeyHash, i64)>,
) -> rusqlite::Result<BatchOutcome> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut new_rows = 0;
    // (destination, status, rows inserted): a batch rarely holds more than a few destinations.
    let mut counted: Vec<(&str, &str, i64)> = Vec::new();
    let mut pruned = Vec::new();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO inbox (message_id, destination, duplicate_key, kind, status,
                data_model, event_type, log_id, content_type, body, malformed_reason, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        let mut forwarded = tx.prepare_cached(
            "UPDATE inbox SET status = 'forwarded', forwarded_at = ?2,
                forward_attempts = forward_attempts + 1, last_error = NULL WHERE id = ?1",
        )?;
        let mut failed = tx.prepare_cached(
            "UPDATE inbox SET forward_attempts = forward_attempts + 1, last_error = ?2,
                first_failed_at = coalesce(first_failed_at, ?3)
             WHERE id = ?1",
        )?;
        // Only a message still waiting: an operator may have moved it meanwhile.
        let mut dead = tx.prepare_cached(
            "UPDATE inbox SET status = 'dead_letter', dead_lettered_at = ?2,
                dead_letter_reason = ?3
             WHERE id = ?1 AND status = 'received'",
        )?;
        let now = now_millis();
        for item in batch {
            match item {
                Item::Keep(KeepRequest { message: m, .. }) => {
                    let hash = keys.hash(&m.destination, &m.duplicate_key);
                    let kept =
                        match keys.find(&tx, hash, &m.destination, &m.duplicate_key, deleted)? {
                            Some(existing) => Kept {
                                id: existing.id,
                                message_id: existing.message_id,
                                duplicate: true,
                            },
                            None => {
                                let message_id = uuid::Uuid::now_v7().to_string();
                                insert.execute(params![
                                    message_id,
                                    m.destination,
                                    m.duplicate_key,
                                    m.kind,
                                    m.status.as_str(),
                                    m.data_model,
                                    m.event_type,
                                    m.log_id,
                                    m.content_type,
                                    &m.body[..],
                                    m.malformed_reason,
                                    now,
                                ])?;
                                let id = tx.last_insert_rowid();
                                keys.insert(hash, id);
                                added.push((hash, id));
                                new_rows += 1;
                                count_new_row(&mut counted, &m.destination, m.status.as_str());
                                Kept {
                                    id,
                                    message_id,
                                    duplicate: false,
                                }
                            }
                        };
                    outcomes.push(kept);
                }
                Item::Book(Bookkeeping::Forwarded { id, .. }) => {
                    forwarded.execute(params![id, now])?;
                }
                Item::Book(Bookkeeping::ForwardFailed {
                    id,
                    error,
                    dead_letter,
                    ..
                }) => {
                    failed.execute(params![id, error, now])?;
                    if let Some(reason) = dead_letter {
                        dead.execute(params![id, now, reason])?;
                    }
                }
                Item::Book(Bookkeeping::Probe { bytes, .. }) => {
                    // A row of `bytes` zeros written over the last one: pages that must find
                    // room (in the WAL, and under a page cap), unlike an update that changes
                    // nothing.
                    tx.prepare_cached(
                        "INSERT INTO inbox_probe (id, at, pad) VALUES (1, ?1, zeroblob(?2))
                         ON CONFLICT (id) DO UPDATE SET at = excluded.at, pad = excluded.pad",
                    )?
                    .execute(params![now, *bytes as i64])?;
                }
                Item::Book(Bookkeeping::Prune { before, limit, .. }) => {
                    // Oldest first through `inbox_forwarded`, `limit` at a time, so a prune
                    // never holds the writer (and the acknowledgements waiting on it) for long.
                    let mut delete = tx.prepare_cached(
                        "DELETE FROM inbox WHERE id IN (
                            SELECT id FROM inbox
                            WHERE status = 'forwarded' AND forwarded_at < ?1
                            ORDER BY forwarded_at LIMIT ?2)
                         RETURNING id, destination, duplicate_key",
                    )?;
                    let mut rows = delete.query(params![before, limit])?;
                    let mut count = 0;
                    while let Some(row) = rows.next()? {
                        let hash = keys.hash(row.get_ref(1)?.as_str()?, row.get_ref(2)?.as_str()?);
                        deleted.push((hash, row.get(0)?));
                        count += 1;
                    }
                    pruned.push(count);
                }
            }
        }
        let mut count = tx.prepare_cached(
            "INSERT INTO inbox_counts (destination, status, count) VALUES (?1, ?2, ?3)
             ON CONFLICT (destination, status) DO UPDATE SET count = count + excluded.count",
        )?;
        for (destination, status, n) in &counted {
            count.execute(params![destination, status, n])?;
        }
    }
    tx.commit()?;
    Ok(BatchOutcome {
        kept: outcomes,
        new_rows,
        pruned,
    })
}
