//! The destination inbox: every message a destination has answered 200 for, in arrival order.
//!
//! [`Inbox`] is what a running server holds: it keeps messages through the group-commit
//! [`writer`](crate::writer) and reads them back for the forwarder. [`InboxReader`] is the
//! read-only view used by `wharf destination inbox` beside a running server.

pub use crate::writer::WriterOptions as InboxOptions;
use crate::writer::{self, Bookkeeping, KeepRequest, WriterHandle};
use crate::{KeepError, StoreError, checkpoint, schema};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, watch};

/// The file name of the inbox database inside a destination's `data_dir`.
pub const INBOX_FILE: &str = "inbox.db";

/// Where a kept message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Kept; waiting to be forwarded (or staying in the inbox when there is no `forward_url`).
    Received,
    /// The application accepted it (answered 2xx).
    Forwarded,
    /// Kept, but not valid JSON: shown to the operator, never forwarded.
    Malformed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Forwarded => "forwarded",
            MessageStatus::Malformed => "malformed",
        }
    }

    fn parse(s: &str) -> MessageStatus {
        match s {
            "forwarded" => MessageStatus::Forwarded,
            "malformed" => MessageStatus::Malformed,
            _ => MessageStatus::Received,
        }
    }
}

/// A message to keep, as the destination classified it.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The destination's configured name.
    pub destination: String,
    pub duplicate_key: String,
    /// `data_model`, `fhir_message`, `other_json` or `malformed`.
    pub kind: String,
    pub status: MessageStatus,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    pub log_id: Option<String>,
    pub content_type: String,
    pub body: Body,
    pub malformed_reason: Option<String>,
}

/// A message body, shared (not copied) between the HTTP layer and the writer.
pub type Body = bytes::Bytes;

/// The outcome of keeping a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Arrival order within the inbox.
    pub id: i64,
    /// Wharf's identifier for the message (sent to the application as `wharf-message-id`).
    pub message_id: String,
    /// True when the same duplicate key was already kept: nothing new was written.
    pub duplicate: bool,
}

/// A kept message with its body, as the forwarder needs it.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: i64,
    pub message_id: String,
    pub destination: String,
    pub duplicate_key: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub forward_attempts: i64,
}

/// One inbox row without its body, for listings.
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub message_id: String,
    pub destination: String,
    pub duplicate_key: String,
    pub kind: String,
    pub status: MessageStatus,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    pub log_id: Option<String>,
    pub content_type: String,
    pub body_bytes: i64,
    /// Milliseconds since the Unix epoch.
    pub received_at: i64,
    pub forward_attempts: i64,
    pub last_error: Option<String>,
    pub malformed_reason: Option<String>,
    pub forwarded_at: Option<i64>,
}

/// Read access to an inbox database. Cheap to clone; one connection behind a mutex, which is
/// enough because reads are short and the writer never waits on them (WAL).
#[derive(Clone)]
pub struct InboxReader {
    conn: Arc<Mutex<Connection>>,
}

const SUMMARY_COLUMNS: &str = "id, message_id, destination, duplicate_key, kind, status,
    data_model, event_type, log_id, content_type, length(body), received_at, forward_attempts,
    last_error, malformed_reason, forwarded_at";

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
    })
}

impl InboxReader {
    /// Opens an existing inbox read-only (for tools running beside a server).
    pub fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(INBOX_FILE);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(InboxReader {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }

    /// Every message, oldest first, optionally for one destination only.
    pub fn list(
        &self,
        destination: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        self.with(|conn| {
            let sql = format!(
                "SELECT {SUMMARY_COLUMNS} FROM inbox
                 WHERE (?1 IS NULL OR destination = ?1) ORDER BY id LIMIT ?2"
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params![destination, limit as i64], summary)?;
            rows.collect()
        })
    }

    /// The newest messages first, optionally only those with `status`.
    pub fn recent(
        &self,
        status: Option<MessageStatus>,
        limit: usize,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        self.with(|conn| {
            let sql = format!(
                "SELECT {SUMMARY_COLUMNS} FROM inbox
                 WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![status.map(MessageStatus::as_str), limit as i64],
                summary,
            )?;
            rows.collect()
        })
    }

    /// One message by Wharf's message id.
    pub fn get(&self, message_id: &str) -> Result<Option<MessageSummary>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                &format!("SELECT {SUMMARY_COLUMNS} FROM inbox WHERE message_id = ?1"),
                params![message_id],
                summary,
            )
            .optional()
        })
    }

    /// The oldest message of `destination` still waiting to be forwarded, after `after_id`.
    pub fn next_to_forward(
        &self,
        destination: &str,
        after_id: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        self.with(|conn| {
            conn.prepare_cached(
                "SELECT id, message_id, destination, duplicate_key, content_type, body,
                        forward_attempts
                 FROM inbox WHERE destination = ?1 AND status = 'received' AND id > ?2
                 ORDER BY id LIMIT 1",
            )?
            .query_row(params![destination, after_id], |r| {
                Ok(StoredMessage {
                    id: r.get(0)?,
                    message_id: r.get(1)?,
                    destination: r.get(2)?,
                    duplicate_key: r.get(3)?,
                    content_type: r.get(4)?,
                    body: r.get(5)?,
                    forward_attempts: r.get(6)?,
                })
            })
            .optional()
        })
    }

    /// When the oldest message still waiting to be forwarded to `destination` arrived
    /// (milliseconds since the epoch), if any waits: the forwarder's lag.
    pub fn oldest_unforwarded(&self, destination: &str) -> Result<Option<i64>, StoreError> {
        self.with(|conn| {
            conn.prepare_cached(
                "SELECT received_at FROM inbox WHERE destination = ?1 AND status = 'received'
                 ORDER BY id LIMIT 1",
            )?
            .query_row(params![destination], |r| r.get(0))
            .optional()
        })
    }

    /// How many messages each status holds for `destination`.
    pub fn count_by_status(
        &self,
        destination: &str,
    ) -> Result<Vec<(MessageStatus, i64)>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT status, count(*) FROM inbox WHERE destination = ?1 GROUP BY status ORDER BY status",
            )?;
            let rows = stmt.query_map(params![destination], |r| {
                Ok((MessageStatus::parse(&r.get::<_, String>(0)?), r.get(1)?))
            })?;
            rows.collect()
        })
    }
}

/// The inbox of a running destination server: keeps messages through the group-commit writer
/// and reads them back. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    writer: WriterHandle,
    reader: InboxReader,
    committed: watch::Receiver<u64>,
    path: PathBuf,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Inbox {
    /// Opens (creating and migrating) `data_dir/inbox.db` and starts its writer thread.
    pub fn open(data_dir: &Path, options: InboxOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(INBOX_FILE);
        let mut conn = schema::open(&path)?;
        schema::migrate(&mut conn, &path, schema::INBOX_MIGRATIONS)?;
        let read_conn = schema::open(&path)?;
        let (committed_tx, committed) = watch::channel(0);
        let thread_error = |source| StoreError::DataDir {
            path: path.clone(),
            source,
        };
        let wal = checkpoint::spawn(&mut conn, schema::open(&path)?, options.wal_reset_bytes)
            .map_err(|e| match e {
                checkpoint::SpawnError::Sqlite(e) => StoreError::Sqlite(e),
                checkpoint::SpawnError::Thread(e) => thread_error(e),
            })?;
        let (writer, thread) =
            writer::spawn(conn, path.clone(), options, committed_tx, wal).map_err(thread_error)?;
        Ok(Inbox {
            writer,
            reader: InboxReader {
                conn: Arc::new(Mutex::new(read_conn)),
            },
            committed,
            path,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Whether the writer thread is still running (it stops only when the inbox is closed or
    /// it failed fatally); a server without it cannot keep anything and is not ready.
    pub fn writer_running(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn reader(&self) -> &InboxReader {
        &self.reader
    }

    /// A receiver that changes after every commit that kept a new message.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Keeps a message durably. Returns once the commit holding it is on disk, or at once with
    /// [`KeepError::Busy`] when the writer's queue is full.
    pub async fn keep(&self, message: NewMessage) -> Result<Kept, KeepError> {
        let (reply, wait) = oneshot::channel();
        self.writer.try_keep(KeepRequest { message, reply })?;
        match wait.await {
            Ok(result) => Ok(result?),
            Err(_) => Err(KeepError::Store(StoreError::WriterStopped)),
        }
    }

    /// Records that the application accepted message `id`.
    pub async fn mark_forwarded(&self, id: i64) -> Result<(), StoreError> {
        let (reply, wait) = oneshot::channel();
        self.writer
            .bookkeeping(Bookkeeping::Forwarded { id, reply })?;
        wait.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Records a failed forwarding attempt of message `id`.
    pub async fn record_forward_failure(&self, id: i64, error: String) -> Result<(), StoreError> {
        let (reply, wait) = oneshot::channel();
        self.writer
            .bookkeeping(Bookkeeping::ForwardFailed { id, error, reply })?;
        wait.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Stops accepting writes and waits until everything already sent is committed. Other
    /// clones of this inbox must have been dropped for the writer to see its channels close.
    pub fn close(self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(self.writer);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(destination: &str, key: &str) -> NewMessage {
        NewMessage {
            destination: destination.into(),
            duplicate_key: key.into(),
            kind: "data_model".into(),
            status: MessageStatus::Received,
            data_model: Some("PatientAdmin".into()),
            event_type: Some("Arrival".into()),
            log_id: None,
            content_type: "application/json".into(),
            body: Body::from_static(b"{\"Meta\":{}}"),
            malformed_reason: None,
        }
    }

    #[tokio::test]
    async fn keeps_once_per_duplicate_key_and_destination() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let first = inbox.keep(message("a", "log:1")).await.unwrap();
        assert!(!first.duplicate);
        let again = inbox.keep(message("a", "log:1")).await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message_id, first.message_id);
        let other = inbox.keep(message("b", "log:1")).await.unwrap();
        assert!(!other.duplicate, "keys are per destination");
        assert_eq!(inbox.reader().list(None, 100).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn concurrent_keeps_share_commits_and_keep_order() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let inbox = inbox.clone();
                tokio::spawn(async move { inbox.keep(message("a", &format!("k{i}"))).await })
            })
            .collect();
        for t in tasks {
            assert!(!t.await.unwrap().unwrap().duplicate);
        }
        let rows = inbox.reader().list(Some("a"), 1000).unwrap();
        assert_eq!(rows.len(), 200);
        assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[tokio::test]
    async fn forwarding_bookkeeping_moves_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let a = inbox.keep(message("d", "1")).await.unwrap();
        let b = inbox.keep(message("d", "2")).await.unwrap();
        let next = inbox.reader().next_to_forward("d", 0).unwrap().unwrap();
        assert_eq!(next.id, a.id);
        inbox
            .record_forward_failure(a.id, "503".into())
            .await
            .unwrap();
        inbox.mark_forwarded(a.id).await.unwrap();
        let next = inbox.reader().next_to_forward("d", 0).unwrap().unwrap();
        assert_eq!(next.id, b.id);
        let row = inbox.reader().get(&a.message_id).unwrap().unwrap();
        assert_eq!(row.status, MessageStatus::Forwarded);
        assert_eq!(row.forward_attempts, 2);
    }

    #[tokio::test]
    async fn full_queue_is_refused_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let options = InboxOptions {
            queue_capacity: 1,
            max_batch: 1,
            ..InboxOptions::default()
        };
        let inbox = Inbox::open(dir.path(), options).unwrap();
        // Hold the database's write lock so the writer stalls on its first batch.
        let blocker = schema::open(inbox.path()).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut waiting = Vec::new();
        let mut busy = 0;
        for i in 0..10 {
            let inbox = inbox.clone();
            let handle =
                tokio::spawn(async move { inbox.keep(message("a", &i.to_string())).await });
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if handle.is_finished() {
                match handle.await.unwrap() {
                    Err(KeepError::Busy) => busy += 1,
                    other => panic!("unexpected {other:?}"),
                }
            } else {
                waiting.push(handle);
            }
        }
        assert!(busy >= 7, "a full queue must refuse at once (busy={busy})");
        blocker.execute_batch("COMMIT").unwrap();
        for handle in waiting {
            handle.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn wal_stays_bounded_under_continuous_writes() {
        let dir = tempfile::tempdir().unwrap();
        let options = InboxOptions {
            wal_reset_bytes: 1024 * 1024,
            ..InboxOptions::default()
        };
        let inbox = Inbox::open(dir.path(), options).unwrap();
        let wal = dir.path().join(format!("{INBOX_FILE}-wal"));
        let mut largest = 0;
        // 24 MB of bodies, written continuously by 32 tasks for well over one checkpoint interval.
        for round in 0..24 {
            let tasks: Vec<_> = (0..32)
                .map(|i| {
                    let inbox = inbox.clone();
                    let mut m = message("a", &format!("{round}-{i}"));
                    m.body = Body::from(vec![b'x'; 32 * 1024]);
                    tokio::spawn(async move { inbox.keep(m).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(inbox.reader().list(None, 10_000).unwrap().len(), 24 * 32);
        assert!(
            largest < 16 * 1024 * 1024,
            "the WAL grew to {largest} bytes for 24 MB written with a 1 MB reset threshold"
        );
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        inbox.keep(message("a", "x")).await.unwrap();
        inbox.close();
        let reader = InboxReader::open_existing(dir.path()).unwrap();
        assert_eq!(reader.list(None, 10).unwrap().len(), 1);
        assert_eq!(
            reader.count_by_status("a").unwrap(),
            vec![(MessageStatus::Received, 1)]
        );
    }
}
