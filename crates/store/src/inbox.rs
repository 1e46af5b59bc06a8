//! The destination inbox: every message a destination has answered 200 for, in arrival order.
//!
//! [`Inbox`] is what a running server holds: it keeps messages through the group-commit
//! [`writer`](crate::writer) and reads them back for the forwarder. [`InboxReader`] is the
//! read-only view used by `wharf destination inbox` beside a running server. Both dispatch to
//! SQLite (`sqlite::inbox`, one process) or PostgreSQL (`postgres::inbox`, several processes
//! on one database, with a forwarder lease per destination). The operator's changes beside a
//! running server (discard a malformed message, skip a poison message into the dead letters,
//! replay a dead letter) run on a connection of their own ([`discard_malformed`],
//! [`dead_letter`], [`replay_dead_letters`]); a commit refused for lack of space comes back as
//! [`StoreError::NoSpace`], and [`Inbox::probe_write`] finds out when there is room again.

use crate::postgres::inbox::PgInbox;
pub use crate::writer::WriterOptions as InboxOptions;
use crate::writer::{self, Bookkeeping, KeepRequest, Sink, WriterHandle};
use crate::{Database, KeepError, StoreError, sqlite};
use rusqlite::{Connection, OpenFlags};
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
    /// Taken out of the forwarding order by an operator (`wharf destination skip`) or by the
    /// destination's `dead_letter_after`, after the application kept refusing it. Kept, never
    /// deleted by retention, forwarded again only when replayed.
    DeadLetter,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Forwarded => "forwarded",
            MessageStatus::Malformed => "malformed",
            MessageStatus::DeadLetter => "dead_letter",
        }
    }

    pub(crate) fn parse(s: &str) -> MessageStatus {
        match s {
            "forwarded" => MessageStatus::Forwarded,
            "malformed" => MessageStatus::Malformed,
            "dead_letter" => MessageStatus::DeadLetter,
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
    /// Failed forwarding attempts since it was kept (or last replayed).
    pub forward_attempts: i64,
    /// When the first of those failed (milliseconds since the epoch): how long it has been
    /// stuck at the head of its destination.
    pub first_failed_at: Option<i64>,
}

/// Which messages [`InboxReader::list`] returns: a page of the inbox in arrival order.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    /// Only this destination's messages (its configured name).
    pub destination: Option<&'a str>,
    /// Only messages with this status.
    pub status: Option<MessageStatus>,
    /// Only messages after this sequence number (`MessageSummary::id`): the next page forward.
    pub after: Option<i64>,
    /// Only messages before this sequence number: the next page backward.
    pub before: Option<i64>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    /// Most messages returned.
    pub limit: usize,
}

impl ListQuery<'_> {
    /// The oldest `limit` messages.
    pub fn oldest(limit: usize) -> Self {
        ListQuery {
            destination: None,
            status: None,
            after: None,
            before: None,
            newest_first: false,
            limit,
        }
    }

    /// The statement both backends run, with `$1`.. or `?1`.. (`placeholder`) for the
    /// destination, the lower and upper sequence bounds (exclusive) and the limit, in that
    /// order. The status and the order are written into the statement (they come from enums),
    /// so SQLite sees the status as a constant and can use a partial index on it.
    pub(crate) fn sql(&self, columns: &str, placeholder: char) -> String {
        let status = self
            .status
            .map(|s| format!(" AND status = '{}'", s.as_str()))
            .unwrap_or_default();
        let order = if self.newest_first { "DESC" } else { "ASC" };
        let p = placeholder;
        // Messages waiting to be forwarded of one destination are found through the pending
        // index (destination, id). Any other listing walks the sequence (or the malformed
        // index): given a plain `destination = ?` there, a planner may rather read the whole
        // destination through an index that starts with it (the duplicate-key index before
        // inbox migration 6; PostgreSQL's still) and sort it.
        let destination =
            if self.destination.is_some() && self.status == Some(MessageStatus::Received) {
                format!("destination = {p}1")
            } else {
                format!("(CAST({p}1 AS TEXT) IS NULL OR destination = {p}1)")
            };
        format!(
            "SELECT {columns} FROM inbox
             WHERE {destination} AND id > {p}2 AND id < {p}3{status}
             ORDER BY id {order} LIMIT {p}4"
        )
    }

    pub(crate) fn bounds(&self) -> (i64, i64) {
        (
            self.after.unwrap_or(i64::MIN),
            self.before.unwrap_or(i64::MAX),
        )
    }
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
    /// When the first of the failed forwarding attempts failed (cleared by a replay).
    pub first_failed_at: Option<i64>,
    /// When the message was moved to the dead letters, and why.
    pub dead_lettered_at: Option<i64>,
    pub dead_letter_reason: Option<String>,
}

/// Read access to an inbox database. Cheap to clone. On SQLite one connection behind a mutex,
/// which is enough because reads are short and the writer never waits on them (WAL); on
/// PostgreSQL the inbox's pool.
#[derive(Clone)]
pub struct InboxReader {
    backend: ReaderBackend,
}

#[derive(Clone)]
enum ReaderBackend {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(Arc<PgInbox>),
}

/// Runs a read on whichever backend the reader has.
macro_rules! read {
    ($self:ident, $name:ident($($arg:expr),*)) => {
        match &$self.backend {
            ReaderBackend::Sqlite(conn) => {
                let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                Ok(sqlite::inbox::$name(&conn, $($arg),*)?)
            }
            ReaderBackend::Postgres(pg) => pg.$name($($arg),*),
        }
    };
}

impl InboxReader {
    /// Opens an existing SQLite inbox read-only (for tools running beside a server).
    pub fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(INBOX_FILE);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(InboxReader {
            backend: ReaderBackend::Sqlite(Arc::new(Mutex::new(conn))),
        })
    }

    /// Opens an existing inbox on either backend, read-only in intent (nothing is migrated).
    pub fn open_database(database: &Database) -> Result<Self, StoreError> {
        match database {
            Database::Sqlite(data_dir) => InboxReader::open_existing(data_dir),
            Database::Postgres(url) => Ok(InboxReader {
                backend: ReaderBackend::Postgres(Arc::new(PgInbox::open_reader(url)?)),
            }),
        }
    }

    /// One page of messages (see [`ListQuery`]).
    pub fn list(&self, query: &ListQuery<'_>) -> Result<Vec<MessageSummary>, StoreError> {
        read!(self, list(query))
    }

    /// The newest messages first, optionally only those with `status`.
    pub fn recent(
        &self,
        status: Option<MessageStatus>,
        limit: usize,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        self.list(&ListQuery {
            status,
            newest_first: true,
            ..ListQuery::oldest(limit)
        })
    }

    /// One message with its body, exactly as it was received, by Wharf's message id.
    pub fn message(&self, message_id: &str) -> Result<Option<StoredMessage>, StoreError> {
        read!(self, message(message_id))
    }

    /// One message by Wharf's message id.
    pub fn get(&self, message_id: &str) -> Result<Option<MessageSummary>, StoreError> {
        read!(self, get(message_id))
    }

    /// The oldest message of `destination` still waiting to be forwarded, after `after_id`.
    pub fn next_to_forward(
        &self,
        destination: &str,
        after_id: i64,
    ) -> Result<Option<StoredMessage>, StoreError> {
        read!(self, next_to_forward(destination, after_id))
    }

    /// The head of `destination`'s forwarding order: its oldest message still waiting to be
    /// forwarded, if any waits. Its `received_at` is the forwarder's lag; its attempts, first
    /// failure and last error say whether it is stuck (a poison message).
    pub fn head(&self, destination: &str) -> Result<Option<MessageSummary>, StoreError> {
        Ok(self
            .list(&ListQuery {
                destination: Some(destination),
                status: Some(MessageStatus::Received),
                ..ListQuery::oldest(1)
            })?
            .pop())
    }

    /// How many messages each status holds for `destination`.
    pub fn count_by_status(
        &self,
        destination: &str,
    ) -> Result<Vec<(MessageStatus, i64)>, StoreError> {
        read!(self, count_by_status(destination))
    }
}

/// What an operator's command does to the messages it names, beside a running server
/// ([`discard_malformed`], [`dead_letter`], [`replay_dead_letters`]). Each applies only to
/// messages in the one status it is meant for, so a message that moved on meanwhile (the
/// forwarder delivered it, another operator replayed it) is left alone and not reported.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OperatorChange<'a> {
    /// Delete malformed messages.
    DiscardMalformed,
    /// Move messages waiting to be forwarded to the dead letters, saying why.
    DeadLetter { reason: &'a str },
    /// Move dead letters back to waiting, with their attempts and first failure forgotten.
    Replay,
}

/// Runs an operator's change on its own connection (SQLite: `data_dir/inbox.db`; the file
/// lock orders it with the writer's transactions) or on the PostgreSQL database.
fn operator_change(
    database: &Database,
    message_ids: &[String],
    change: OperatorChange<'_>,
) -> Result<Vec<String>, StoreError> {
    match database {
        Database::Sqlite(data_dir) => {
            sqlite_operator_change(&data_dir.join(INBOX_FILE), message_ids, change)
        }
        Database::Postgres(url) => PgInbox::open_reader(url)?.operator_change(message_ids, change),
    }
}

fn sqlite_operator_change(
    path: &Path,
    message_ids: &[String],
    change: OperatorChange<'_>,
) -> Result<Vec<String>, StoreError> {
    if !path.exists() {
        return Err(StoreError::DataDir {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    let mut conn = sqlite::open(path)?;
    conn.pragma_update(None, "secure_delete", true)?;
    Ok(sqlite::inbox::operator_change(
        &mut conn,
        message_ids,
        change,
        crate::now_millis(),
    )?)
}

/// Deletes malformed messages by Wharf's message id, on its own connection beside a running
/// server (`wharf destination discard`): an operator's way to clear a malformed message once it
/// has been looked at, since nothing else ever deletes one. Messages with any other status are
/// left alone (they may be the only copy of a message the application still needs). Returns
/// the ids that were deleted; on SQLite their bytes are overwritten with zeros, as retention
/// does.
pub fn discard_malformed(
    database: &Database,
    message_ids: &[String],
) -> Result<Vec<String>, StoreError> {
    operator_change(database, message_ids, OperatorChange::DiscardMalformed)
}

/// Moves messages still waiting to be forwarded to the dead letters (`wharf destination
/// skip`): the forwarder passes over them, so the messages behind a poison message move again.
/// They are kept with `reason` and the time, are never deleted by retention, and can be
/// replayed ([`replay_dead_letters`]). Returns the ids that were moved; a message that is not
/// waiting (already forwarded, malformed, already a dead letter) is left alone. A forwarder
/// retrying the message when it moves notices before its next attempt.
pub fn dead_letter(
    database: &Database,
    message_ids: &[String],
    reason: &str,
) -> Result<Vec<String>, StoreError> {
    operator_change(database, message_ids, OperatorChange::DeadLetter { reason })
}

/// Puts dead letters back in the forwarding order (`wharf destination replay`). A message
/// keeps its arrival sequence number, so it goes back to where it arrived: before every
/// message of its destination that arrived after it and is still waiting, so it is the next
/// one sent unless an older one waits. What arrived after it and was already forwarded while it
/// was out cannot be undone; everything still waiting keeps arrival order. Its attempts and
/// first failure are forgotten, so `dead_letter_after` counts afresh. Returns the ids that
/// were replayed; a message that is not a dead letter is left alone.
pub fn replay_dead_letters(
    database: &Database,
    message_ids: &[String],
) -> Result<Vec<String>, StoreError> {
    operator_change(database, message_ids, OperatorChange::Replay)
}

/// An access token one of the servers sharing a database issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedToken {
    pub client_id: String,
    /// The digest of the client's registration the issuing server had.
    pub registration: Vec<u8>,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The memory of credentials that destination servers sharing one PostgreSQL database share:
/// single-use ones (SigV4 signatures, JWT `jti`s), so a request captured on its way to one of
/// them cannot be replayed to another, and the access tokens their token endpoints issued, so
/// a token from one is good at all. Keys are SHA-256 digests (the caller hashes); times are
/// Unix seconds. Cheap to clone. Blocking, like the rest of the store: call it from a blocking
/// thread.
#[derive(Clone)]
pub struct SharedReplays {
    pg: Arc<PgInbox>,
}

impl SharedReplays {
    /// Records `digest` until `expires_at` unless it is recorded and not expired at `now`:
    /// `Ok(true)` for its first use, `Ok(false)` for a replay. An error means the database
    /// could not say (refuse the request with 503: accepting could let a replay through).
    pub fn first_use(
        &self,
        digest: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let secs = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        self.pg.first_use(digest, secs(expires_at), secs(now))
    }

    /// Records an access token `destination`'s token endpoint issued (`digest`: its SHA-256)
    /// for `client_id`, registered as `registration` (a digest of its secret), until
    /// `expires_at`, so the other servers accept it too.
    pub fn record_token(
        &self,
        digest: &[u8; 32],
        destination: &str,
        client_id: &str,
        registration: &[u8; 32],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let expires_at = i64::try_from(expires_at).unwrap_or(i64::MAX);
        self.pg
            .record_token(digest, destination, client_id, registration, expires_at)
    }

    /// The access token with SHA-256 `digest` that `destination` issued, on any of the
    /// servers; `None` if none did.
    pub fn issued_token(
        &self,
        digest: &[u8; 32],
        destination: &str,
    ) -> Result<Option<SharedToken>, StoreError> {
        Ok(self
            .pg
            .issued_token(digest, destination)?
            .map(|(client_id, registration, exp)| SharedToken {
                client_id,
                registration,
                expires_at: u64::try_from(exp).unwrap_or(0),
            }))
    }

    /// Rows held, expired ones not yet swept included (for tests).
    pub fn rows(&self) -> Result<i64, StoreError> {
        self.pg.replay_rows()
    }
}

/// The inbox of a running destination server: keeps messages through the group-commit writer
/// and reads them back. Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    writer: WriterHandle,
    reader: InboxReader,
    committed: watch::Receiver<u64>,
    /// Bumped by an operator's replay in this process too, so the forwarders look again.
    committed_tx: Arc<watch::Sender<u64>>,
    path: PathBuf,
    /// The database as messages name it (the SQLite file, or PostgreSQL without password).
    describe: Arc<str>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    page_limit: writer::PageLimit,
}

/// The file whose lock says a process is serving `data_dir`'s inbox.
pub const INBOX_LOCK_FILE: &str = "inbox.lock";

/// Takes the lock that makes one process at a time the writer of `data_dir`'s SQLite inbox.
/// The writer's map of duplicate keys (`sqlite::duplicates`) is only complete if no other
/// process inserts, and two forwarders would each send every message; the lock turns that
/// mistake into a clear error at start instead. It is an advisory `flock`, released by the
/// kernel when the process ends, however it ends. Readers (`wharf destination inbox`) and the
/// operator's discard do not take it. A lock still held is waited for up to
/// [`INBOX_LOCK_WAIT`], so a server restarted while the old one is still exiting starts.
fn lock_inbox(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join(INBOX_LOCK_FILE);
    let file = crate::private::file_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::DataDir {
            path: path.clone(),
            source,
        })?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < INBOX_LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::InboxInUse {
                    path: data_dir.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::DataDir { path, source });
            }
        }
    }
}

/// How long opening an inbox waits for another writer to let go of it.
pub const INBOX_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Inbox {
    /// Opens (creating and migrating) `data_dir/inbox.db` and starts its writer thread.
    pub fn open(data_dir: &Path, options: InboxOptions) -> Result<Self, StoreError> {
        Inbox::open_database(&Database::Sqlite(data_dir.to_owned()), options)
    }

    /// Opens (creating and migrating) the inbox on `database` and starts its writer thread.
    pub fn open_database(database: &Database, options: InboxOptions) -> Result<Self, StoreError> {
        let (committed_tx, committed) = watch::channel(0);
        let committed_tx = Arc::new(committed_tx);
        let (sink, reader, path, describe) = match database {
            Database::Sqlite(data_dir) => {
                crate::private::dir(data_dir)?;
                let path = data_dir.join(INBOX_FILE);
                let lock = lock_inbox(data_dir)?;
                let mut conn = sqlite::open(&path)?;
                // Bodies are PHI: what the retention task deletes is overwritten with zeros in
                // the database file, not left on free pages until they are reused. Only
                // deletions pay for it; the writer is the only connection that deletes. Set
                // before the migrations, so the pages of the table migration 6 replaces are
                // zeroed too.
                conn.pragma_update(None, "secure_delete", true)?;
                sqlite::migrate(&mut conn, &path, sqlite::INBOX_MIGRATIONS)?;
                let keys = Box::new(sqlite::duplicates::DuplicateKeys::load(&conn)?);
                let read_conn = sqlite::open(&path)?;
                let wal = sqlite::checkpoint::spawn(
                    "inbox-checkpointer",
                    &mut conn,
                    sqlite::open(&path)?,
                    i64::try_from(options.wal_reset_bytes).unwrap_or(i64::MAX),
                )
                .map_err(|e| match e {
                    sqlite::checkpoint::SpawnError::Sqlite(e) => StoreError::Sqlite(e),
                    sqlite::checkpoint::SpawnError::Thread(e) => StoreError::DataDir {
                        path: path.clone(),
                        source: e,
                    },
                })?;
                let reader = ReaderBackend::Sqlite(Arc::new(Mutex::new(read_conn)));
                let describe = path.display().to_string();
                let sink = Sink::Sqlite {
                    conn,
                    wal,
                    keys,
                    _lock: lock,
                };
                (sink, reader, path, describe)
            }
            Database::Postgres(url) => {
                let pg = Arc::new(PgInbox::open(
                    url,
                    options.forward_bound,
                    options.max_connections,
                    committed_tx.clone(),
                )?);
                let describe = pg.describe().to_owned();
                (
                    Sink::Postgres(pg.clone()),
                    ReaderBackend::Postgres(pg),
                    PathBuf::new(),
                    describe,
                )
            }
        };
        let page_limit = writer::PageLimit::new(writer::PAGE_LIMIT_UNCHANGED.into());
        let described: Arc<str> = describe.as_str().into();
        let (writer, thread) = writer::spawn(
            sink,
            describe,
            options,
            committed_tx.clone(),
            page_limit.clone(),
        )
        .map_err(|source| StoreError::DataDir {
            path: path.clone(),
            source,
        })?;
        Ok(Inbox {
            writer,
            reader: InboxReader { backend: reader },
            committed,
            committed_tx,
            path,
            describe: described,
            thread: Arc::new(Mutex::new(Some(thread))),
            page_limit,
        })
    }

    /// Caps the SQLite inbox file at `pages` database pages (`None` lifts the cap), from the
    /// writer's next batch on: a batch that would grow the file past it fails exactly as on a
    /// full disk (`SQLITE_FULL`), so nothing in it is kept and its senders are told, and later
    /// batches succeed once the cap is lifted. The cap cannot go below the file's current size,
    /// so `Some(1)` means "full from now". For tests that need a full disk without mounting
    /// one; no effect on PostgreSQL.
    pub fn limit_pages(&self, pages: Option<u32>) {
        self.page_limit.store(
            u64::from(pages.unwrap_or(0)),
            std::sync::atomic::Ordering::Release,
        );
    }

    /// The replay memory shared with the other servers of the same PostgreSQL database;
    /// `None` on SQLite, where one server owns the inbox and keeps that memory to itself.
    pub fn shared_replays(&self) -> Option<SharedReplays> {
        match &self.reader.backend {
            ReaderBackend::Postgres(pg) => Some(SharedReplays { pg: pg.clone() }),
            ReaderBackend::Sqlite(_) => None,
        }
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

    /// The SQLite file (empty on PostgreSQL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn reader(&self) -> &InboxReader {
        &self.reader
    }

    /// A receiver that changes after every commit that kept a new message (in any process
    /// sharing a PostgreSQL database), and when this process gains a forwarder lease.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// Asks to be the one process forwarding `destination`'s messages. On SQLite this process
    /// is the only one and always is; on PostgreSQL a lease is taken when free and renewed by
    /// a heartbeat, and [`subscribe`](Self::subscribe) changes when it is gained.
    pub fn want_forwarder(&self, destination: &str) {
        if let ReaderBackend::Postgres(pg) = &self.reader.backend {
            pg.want_forwarder(destination);
        }
    }

    /// Whether this process may forward one message of `destination` now (the lease has at
    /// least `forward_bound` left).
    pub fn holds_forwarder(&self, destination: &str) -> bool {
        match &self.reader.backend {
            ReaderBackend::Sqlite(_) => true,
            ReaderBackend::Postgres(pg) => pg.holds_forwarder(destination),
        }
    }

    /// Gives the forwarder lease of `destination` up (at shutdown, after its last mark was
    /// committed), so another process takes over at once.
    pub async fn release_forwarder(&self, destination: &str) {
        if let ReaderBackend::Postgres(pg) = &self.reader.backend {
            let (pg, destination) = (pg.clone(), destination.to_owned());
            let done = tokio::task::spawn_blocking(move || pg.release_forwarder(&destination));
            if let Ok(Err(e)) = done.await {
                tracing::warn!(error = %e, "could not release a forwarder lease; it expires by itself");
            }
        }
    }

    /// Keeps a message durably. Returns once the commit holding it is on disk, or at once with
    /// [`KeepError::Busy`] when the writer's queue is full.
    /// A commit refused for lack of space comes back as [`StoreError::NoSpace`], naming the
    /// database and what the message needed.
    pub async fn keep(&self, message: NewMessage) -> Result<Kept, KeepError> {
        let needed = message.body.len();
        let (reply, wait) = oneshot::channel();
        self.writer.try_keep(KeepRequest { message, reply })?;
        match wait.await {
            Ok(result) => Ok(result.map_err(|e| self.no_space(e, needed))?),
            Err(_) => Err(KeepError::Store(StoreError::WriterStopped)),
        }
    }

    /// `error` as [`StoreError::NoSpace`] when it is a refusal for lack of space, with the
    /// database named and, on SQLite, the space left on its filesystem.
    fn no_space(&self, error: StoreError, needed: usize) -> StoreError {
        let dir = self
            .path
            .parent()
            .filter(|_| !self.path.as_os_str().is_empty());
        error.no_space_in(self.describe.to_string(), dir, u64::try_from(needed).ok())
    }

    /// Writes `bytes` bytes (at most 1 MiB) through the writer and rolls nothing back: a
    /// write that needs space. `/readyz` uses it while the store refuses writes for lack of
    /// space, so a server its load balancer stopped sending to still finds out when space has
    /// returned. On SQLite the page cap of [`limit_pages`](Self::limit_pages) applies to it
    /// like to any write.
    pub async fn probe_write(&self, bytes: usize) -> Result<(), StoreError> {
        let bytes = bytes.clamp(1, 1 << 20);
        let (reply, wait) = oneshot::channel();
        self.writer
            .bookkeeping(Bookkeeping::Probe { bytes, reply })?;
        wait.await
            .map_err(|_| StoreError::WriterStopped)?
            .map_err(|e| self.no_space(e, bytes))
    }

    /// [`dead_letter`] from inside the server (the status page).
    pub fn dead_letter(
        &self,
        message_ids: &[String],
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.operator_change(message_ids, OperatorChange::DeadLetter { reason })
    }

    /// [`replay_dead_letters`] from inside the server (the status page); the forwarders are
    /// woken at once.
    pub fn replay_dead_letters(&self, message_ids: &[String]) -> Result<Vec<String>, StoreError> {
        self.operator_change(message_ids, OperatorChange::Replay)
    }

    fn operator_change(
        &self,
        message_ids: &[String],
        change: OperatorChange<'_>,
    ) -> Result<Vec<String>, StoreError> {
        let changed = match &self.reader.backend {
            ReaderBackend::Sqlite(_) => sqlite_operator_change(&self.path, message_ids, change)?,
            ReaderBackend::Postgres(pg) => pg.operator_change(message_ids, change)?,
        };
        self.committed_tx.send_modify(|_| {});
        Ok(changed)
    }

    /// Records that the application accepted message `id`.
    pub async fn mark_forwarded(&self, id: i64) -> Result<(), StoreError> {
        let (reply, wait) = oneshot::channel();
        self.writer
            .bookkeeping(Bookkeeping::Forwarded { id, reply })?;
        wait.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Records a failed forwarding attempt of message `id`; with `dead_letter`, also moves it
    /// to the dead letters for that reason (`dead_letter_after`), if it is still waiting.
    pub async fn record_forward_failure(
        &self,
        id: i64,
        error: String,
        dead_letter: Option<String>,
    ) -> Result<(), StoreError> {
        let (reply, wait) = oneshot::channel();
        self.writer.bookkeeping(Bookkeeping::ForwardFailed {
            id,
            error,
            dead_letter,
            reply,
        })?;
        wait.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Deletes at most `limit` messages forwarded before `before` (milliseconds since the
    /// epoch), oldest first, and returns how many went. Messages still waiting to be forwarded,
    /// and malformed ones, are never deleted: they are the only copy. Goes through the writer
    /// like every other write, so keep `limit` small and call again while it returns `limit`.
    pub async fn prune_forwarded(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        let (reply, wait) = oneshot::channel();
        self.writer.bookkeeping(Bookkeeping::Prune {
            before,
            limit,
            reply,
        })?;
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
    async fn full_queue_is_refused_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let options = InboxOptions {
            queue_capacity: 1,
            max_batch: 1,
            ..InboxOptions::default()
        };
        let inbox = Inbox::open(dir.path(), options).unwrap();
        // Hold the database's write lock so the writer stalls on its first batch.
        let blocker = sqlite::open(inbox.path()).unwrap();
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
        assert_eq!(
            inbox
                .reader()
                .list(&ListQuery::oldest(10_000))
                .unwrap()
                .len(),
            24 * 32
        );
        assert!(
            largest < 16 * 1024 * 1024,
            "the WAL grew to {largest} bytes for 24 MB written with a 1 MB reset threshold"
        );
    }

    #[tokio::test]
    async fn a_pruned_body_is_overwritten_not_left_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let phi = b"PATIENT-MRN-0042-JANE-DOE";
        let contains = |bytes: &[u8]| bytes.windows(phi.len()).any(|w| w == phi);
        let mut m = message("a", "phi");
        m.body = Body::from(phi.repeat(40));
        let kept = inbox.keep(m).await.unwrap();
        // A neighbour on the same page, so the page itself stays in use.
        inbox.keep(message("a", "other")).await.unwrap();
        inbox.mark_forwarded(kept.id).await.unwrap();
        let after = crate::now_millis() + 1;
        assert_eq!(inbox.prune_forwarded(after, 10).await.unwrap(), 1);
        let path = inbox.path().to_owned();
        inbox.close();
        // Copy every page into the database file and empty the WAL (whose old frames still
        // hold the body until the WAL is reused), as the running server does over time.
        let conn = sqlite::open(&path).unwrap();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "the checkpoint could not finish");
        drop(conn);
        let file = std::fs::read(&path).unwrap();
        assert!(
            !contains(&file),
            "the deleted body is still readable in {}",
            path.display()
        );
        let reader = InboxReader::open_existing(dir.path()).unwrap();
        assert_eq!(reader.list(&ListQuery::oldest(10)).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        inbox.keep(message("a", "x")).await.unwrap();
        inbox.close();
        let reader = InboxReader::open_existing(dir.path()).unwrap();
        assert_eq!(reader.list(&ListQuery::oldest(10)).unwrap().len(), 1);
        assert_eq!(
            reader.count_by_status("a").unwrap(),
            vec![(MessageStatus::Received, 1)]
        );
    }

    /// One process at a time serves an inbox: a second open of the same data directory waits
    /// [`INBOX_LOCK_WAIT`], then is refused with a message saying what to do; the lock goes
    /// with the writer.
    #[tokio::test]
    async fn a_second_writer_of_the_same_inbox_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let started = std::time::Instant::now();
        let err = Inbox::open(dir.path(), InboxOptions::default())
            .err()
            .expect("the inbox is in use");
        assert!(started.elapsed() >= INBOX_LOCK_WAIT);
        assert!(matches!(err, StoreError::InboxInUse { .. }), "{err}");
        assert!(err.to_string().contains("one process at a time"), "{err}");
        // Readers are not writers: listing beside the running server still works.
        InboxReader::open_existing(dir.path()).unwrap();
        inbox.close();
        Inbox::open(dir.path(), InboxOptions::default())
            .unwrap()
            .close();
    }

    /// A batch that fails to commit leaves no trace in the writer's map of duplicate keys: the
    /// same message sent again once the disk has room is kept, not called a duplicate of a row
    /// that was never written.
    #[tokio::test]
    async fn a_failed_batch_does_not_make_its_keys_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let big = || {
            let mut m = message("a", "x");
            m.body = Body::from(vec![b' '; 256 * 1024]);
            m
        };
        inbox.limit_pages(Some(1));
        assert!(inbox.keep(big()).await.is_err());
        inbox.limit_pages(None);
        let kept = inbox.keep(big()).await.unwrap();
        assert!(!kept.duplicate);
        let again = inbox.keep(big()).await.unwrap();
        assert!(again.duplicate);
        assert_eq!((again.id, again.message_id), (kept.id, kept.message_id));
    }

    /// A commit refused for lack of space says so, naming the database file, what the message
    /// needed and what the filesystem has; the probe write `/readyz` makes fails while the
    /// store is full and succeeds once it has room, without a restart.
    #[tokio::test]
    async fn a_full_database_is_named_as_such_and_the_probe_finds_when_it_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        inbox.probe_write(64 * 1024).await.unwrap();
        inbox.limit_pages(Some(1));
        let mut m = message("a", "big");
        m.body = Body::from(vec![b' '; 256 * 1024]);
        let Err(KeepError::Store(e)) = inbox.keep(m).await else {
            panic!("a full database refuses")
        };
        assert!(e.is_no_space(), "{e}");
        assert_eq!(e.kind(), crate::StoreErrorKind::Unavailable);
        let text = e.to_string();
        assert!(
            text.starts_with("no space left on the device holding "),
            "{text}"
        );
        assert!(text.contains(&inbox.path().display().to_string()), "{text}");
        assert!(text.contains("needs at least 262144 bytes"), "{text}");
        assert!(text.contains("bytes free"), "{text}");
        let probe = inbox.probe_write(256 * 1024).await.unwrap_err();
        assert!(probe.is_no_space(), "{probe}");
        inbox.limit_pages(None);
        inbox.probe_write(256 * 1024).await.unwrap();
        inbox.keep(message("a", "after")).await.unwrap();
    }

    /// Migration 6 rebuilds the inbox table without the unique (destination, duplicate_key)
    /// index: every row keeps its id and columns, ids go on after the highest ever handed out
    /// (even one since deleted), duplicates are still found (now by the writer's map, read
    /// from `inbox_keys`), and the count triggers still count.
    #[tokio::test]
    async fn migration_6_keeps_rows_ids_and_counts_and_drops_the_key_index() {
        let dir = tempfile::tempdir().unwrap();
        crate::private::dir(dir.path()).unwrap();
        let path = dir.path().join(INBOX_FILE);
        let mut conn = sqlite::open(&path).unwrap();
        sqlite::migrate(&mut conn, &path, &sqlite::INBOX_MIGRATIONS[..5]).unwrap();
        conn.execute_batch(
            "INSERT INTO inbox (message_id, destination, duplicate_key, kind, status,
                 content_type, body, received_at) VALUES
                 ('m1', 'a', 'k1', 'data_model', 'received', 'application/json', x'7b7d', 1),
                 ('m2', 'a', 'k2', 'data_model', 'forwarded', 'application/json', x'7b7d', 2),
                 ('m3', 'b', 'k1', 'malformed', 'malformed', 'application/json', x'00ff', 3),
                 ('m4', 'a', 'k4', 'data_model', 'received', 'application/json', x'7b7d', 4);
             DELETE FROM inbox WHERE id = 4;
             INSERT INTO inbox_counts (destination, status, count) VALUES
                 ('a', 'received', 1), ('a', 'forwarded', 1), ('b', 'malformed', 1);",
        )
        .unwrap();
        drop(conn);

        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let reader = inbox.reader();
        let rows: Vec<(i64, String)> = reader
            .list(&ListQuery::oldest(10))
            .unwrap()
            .into_iter()
            .map(|m| (m.id, m.message_id))
            .collect();
        assert_eq!(rows, [(1, "m1".into()), (2, "m2".into()), (3, "m3".into())]);
        assert_eq!(reader.message("m3").unwrap().unwrap().body, [0x00, 0xff]);
        let conn = sqlite::open(&path).unwrap();
        let unique_indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'inbox'
                 AND name LIKE 'sqlite_autoindex%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(unique_indexes, 1, "only message_id stays unique");

        let again = inbox.keep(message("a", "k1")).await.unwrap();
        assert_eq!((again.duplicate, again.message_id.as_str()), (true, "m1"));
        let again = inbox.keep(message("b", "k1")).await.unwrap();
        assert_eq!((again.duplicate, again.message_id.as_str()), (true, "m3"));
        let new = inbox.keep(message("a", "k4")).await.unwrap();
        assert_eq!(
            (new.duplicate, new.id),
            (false, 5),
            "id 4 is never handed out again"
        );

        assert_eq!(
            reader.count_by_status("a").unwrap(),
            vec![(MessageStatus::Forwarded, 1), (MessageStatus::Received, 2)]
        );
        inbox.mark_forwarded(new.id).await.unwrap();
        assert_eq!(
            reader.count_by_status("a").unwrap(),
            vec![(MessageStatus::Forwarded, 2), (MessageStatus::Received, 1)]
        );
        let discarded =
            discard_malformed(&Database::Sqlite(dir.path().to_owned()), &["m3".to_owned()])
                .unwrap();
        assert_eq!(discarded, ["m3"]);
        assert!(reader.count_by_status("b").unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_inbox_from_before_the_counts_table_is_counted_when_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let first = inbox.keep(message("a", "1")).await.unwrap();
        inbox.keep(message("a", "2")).await.unwrap();
        inbox.keep(message("b", "1")).await.unwrap();
        inbox.mark_forwarded(first.id).await.unwrap();
        let path = inbox.path().to_owned();
        inbox.close();
        // Back to schema version 2, as a wharf from before migrations 3 to 7 left it
        // (migration 5 already dropped `inbox_counts_insert`).
        let conn = sqlite::open(&path).unwrap();
        conn.execute_batch(
            "DROP TRIGGER inbox_counts_delete;
             DROP TRIGGER inbox_counts_update; DROP TABLE inbox_counts;
             DROP INDEX inbox_malformed;
             DROP INDEX inbox_dead_letters; DROP TABLE inbox_probe;
             ALTER TABLE inbox DROP COLUMN first_failed_at;
             ALTER TABLE inbox DROP COLUMN dead_lettered_at;
             ALTER TABLE inbox DROP COLUMN dead_letter_reason;
             PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(conn);
        let inbox = Inbox::open(dir.path(), InboxOptions::default()).unwrap();
        let reader = inbox.reader();
        assert_eq!(
            reader.count_by_status("a").unwrap(),
            vec![(MessageStatus::Forwarded, 1), (MessageStatus::Received, 1)]
        );
        assert_eq!(
            reader.count_by_status("b").unwrap(),
            vec![(MessageStatus::Received, 1)]
        );
        inbox.keep(message("b", "2")).await.unwrap();
        assert_eq!(
            inbox.reader().count_by_status("b").unwrap(),
            vec![(MessageStatus::Received, 2)]
        );
    }

    /// Every listing reads by sequence or through a partial index, never the whole inbox
    /// through another index with a sort (which is what a page of a large inbox would cost
    /// otherwise). Planned with the columns a listing reads, as the real statement is.
    #[test]
    fn listings_use_the_sequence_or_a_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INBOX_FILE);
        let mut conn = sqlite::open(&path).unwrap();
        sqlite::migrate(&mut conn, &path, sqlite::INBOX_MIGRATIONS).unwrap();
        let plan = |query: ListQuery<'_>| {
            let sql = format!(
                "EXPLAIN QUERY PLAN {}",
                query.sql(sqlite::inbox::SUMMARY_COLUMNS, '?')
            );
            let (after, before) = query.bounds();
            let mut stmt = conn.prepare(&sql).unwrap();
            let rows = stmt
                .query_map(
                    rusqlite::params![query.destination, after, before, 10],
                    |r| r.get::<_, String>(3),
                )
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let base = ListQuery::oldest(10);
        let cases = [
            (base, "INTEGER PRIMARY KEY"),
            (
                ListQuery {
                    newest_first: true,
                    ..base
                },
                "INTEGER PRIMARY KEY",
            ),
            (
                ListQuery {
                    destination: Some("d"),
                    ..base
                },
                "INTEGER PRIMARY KEY",
            ),
            (
                ListQuery {
                    destination: Some("d"),
                    status: Some(MessageStatus::Forwarded),
                    ..base
                },
                "INTEGER PRIMARY KEY",
            ),
            (
                ListQuery {
                    status: Some(MessageStatus::Malformed),
                    ..base
                },
                "inbox_malformed",
            ),
            (
                ListQuery {
                    destination: Some("d"),
                    status: Some(MessageStatus::Malformed),
                    ..base
                },
                "inbox_malformed",
            ),
            (
                ListQuery {
                    destination: Some("d"),
                    status: Some(MessageStatus::Received),
                    ..base
                },
                "inbox_pending",
            ),
            (
                ListQuery {
                    status: Some(MessageStatus::DeadLetter),
                    ..base
                },
                "inbox_dead_letters",
            ),
            (
                ListQuery {
                    destination: Some("d"),
                    status: Some(MessageStatus::DeadLetter),
                    ..base
                },
                "inbox_dead_letters",
            ),
        ];
        for (query, index) in cases {
            let plan = plan(query);
            assert!(plan.contains(index), "{query:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{query:?}: {plan}");
        }
    }
}
