//! The group-commit writer: the only thread that writes to the inbox.
//!
//! Why one thread: SQLite allows one writer at a time, and a commit with `synchronous=FULL`
//! costs an `fsync`; on PostgreSQL a commit costs a round trip and a WAL flush, and a batch
//! goes in as one multi-row insert, so the same batching pays there too (`postgres::inbox`). Handlers therefore do not write; they send their row with a oneshot reply
//! into a **bounded** channel. The writer takes whatever is waiting (up to a batch limit),
//! writes it all in one IMMEDIATE transaction, commits once, and only then replies to every
//! member. Under load, one `fsync` acknowledges dozens of messages; with no load, a lone
//! message commits at once (the writer never waits to fill a batch).
//!
//! Why not commit on the request tasks themselves (leader/follower): it saves the hand-off's
//! wake-ups, but a leader blocks its HTTP worker for the inserts and the `fsync`, and measured
//! slower with a higher p99 than this thread (docs/BENCHMARKS.md, "Leader/follower commits").
//!
//! Backpressure: when the channel is full the handler gets [`KeepError::Busy`] at once and
//! answers 503 with `Retry-After`; nothing queues without bound. Bookkeeping writes from the
//! forwarder use a second, unbounded channel so they are never refused (they are bounded by the
//! forwarder itself: one in flight per destination).

use crate::inbox::{Kept, NewMessage};
use crate::postgres::inbox::PgInbox;
use crate::sqlite::checkpoint::{self, WalState};
use crate::sqlite::duplicates::DuplicateKeys;
use crate::{StoreError, StoreErrorKind};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, select};
use rusqlite::Connection;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Why a message could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// The writer's queue is full: answer 503 and let the sender retry.
    #[error("the inbox writer queue is full; retry shortly")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request to keep one message (from the bounded ingest channel).
pub(crate) struct KeepRequest {
    pub message: NewMessage,
    pub reply: Reply<Kept>,
}

/// Bookkeeping from the forwarder and the retention task (from the unbounded internal channel).
pub(crate) enum Bookkeeping {
    Forwarded {
        id: i64,
        reply: Reply<()>,
    },
    ForwardFailed {
        id: i64,
        error: String,
        /// Also move it to the dead letters, for this reason (`dead_letter_after`).
        dead_letter: Option<String>,
        reply: Reply<()>,
    },
    /// Write `bytes` bytes that need space (`Inbox::probe_write`, for `/readyz` while the
    /// disk is full).
    Probe {
        bytes: usize,
        reply: Reply<()>,
    },
    /// Delete at most `limit` forwarded messages forwarded before `before` (milliseconds since
    /// the epoch), oldest first; answered with how many went.
    Prune {
        before: i64,
        limit: u32,
        reply: Reply<u64>,
    },
}

/// What one committed batch did: one `Kept` per keep request and one count per prune request,
/// each in batch order, and how many messages were new.
pub(crate) struct BatchOutcome {
    pub kept: Vec<Kept>,
    pub new_rows: u64,
    pub pruned: Vec<u64>,
}

/// Called with the number of messages in every committed batch that had some (for the
/// group-commit batch-size metric).
pub type BatchObserver = std::sync::Arc<dyn Fn(usize) + Send + Sync>;

/// Default WAL size past which the SQLite inbox's WAL is restarted. Each restart pauses the
/// writer for one sync of the database file, longer the more was copied since the last one;
/// 512 MiB makes those pauses a quarter as frequent as 128 MiB did, which took the benchmark's
/// p99 from 11.8-14.9 ms to 8.4-12.1 ms in alternating runs, at the price of a longer longest
/// pause (up to about 150 ms instead of 90 ms) and a larger WAL file (`docs/BENCHMARKS.md`,
/// "WAL restarts and p99").
pub const DEFAULT_WAL_RESET_BYTES: u64 = 512 * 1024 * 1024;

/// Tuning for the writer.
#[derive(Clone)]
pub struct WriterOptions {
    /// Requests that may wait for the writer before new ones are refused with `Busy`.
    pub queue_capacity: usize,
    /// Most rows in one transaction.
    pub max_batch: usize,
    /// Most body bytes in one transaction, so a burst of large messages commits in pieces.
    pub max_batch_bytes: usize,
    /// SQLite only: WAL size past which the WAL is restarted from its beginning (see
    /// `checkpoint`); [`DEFAULT_WAL_RESET_BYTES`] by default.
    pub wal_reset_bytes: u64,
    /// Told how many messages every committed batch kept (or found already kept); batches of
    /// bookkeeping alone (forwarding marks, retention) are not reported.
    pub on_batch: Option<BatchObserver>,
    /// PostgreSQL only: the longest one forward to the application may take. A forwarder
    /// lease is only acted on with this much of it left (see `postgres::lease`).
    pub forward_bound: Duration,
    /// PostgreSQL only: most connections this process opens (the writer, the forwarders'
    /// reads, `/metrics`), besides the one that listens for notifications.
    pub max_connections: usize,
}

impl std::fmt::Debug for WriterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterOptions")
            .field("queue_capacity", &self.queue_capacity)
            .field("max_batch", &self.max_batch)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("wal_reset_bytes", &self.wal_reset_bytes)
            .field("on_batch", &self.on_batch.is_some())
            .field("forward_bound", &self.forward_bound)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue_capacity: 4096,
            max_batch: 512,
            max_batch_bytes: 16 * 1024 * 1024,
            wal_reset_bytes: DEFAULT_WAL_RESET_BYTES,
            on_batch: None,
            forward_bound: Duration::from_secs(30),
            max_connections: crate::DEFAULT_INBOX_MAX_CONNECTIONS,
        }
    }
}

/// The senders' side of the writer. Dropping every clone stops the thread after it has
/// committed everything already sent.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    keep: Sender<KeepRequest>,
    bookkeeping: Sender<Bookkeeping>,
}

impl WriterHandle {
    pub fn try_keep(&self, request: KeepRequest) -> Result<(), KeepError> {
        self.keep.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => KeepError::Busy,
            TrySendError::Disconnected(_) => KeepError::Store(StoreError::WriterStopped),
        })
    }

    pub fn bookkeeping(&self, item: Bookkeeping) -> Result<(), StoreError> {
        self.bookkeeping
            .send(item)
            .map_err(|_| StoreError::WriterStopped)
    }
}

/// A cap on the SQLite inbox file's pages, set while running (`Inbox::limit_pages`) and
/// applied by the writer before its next batch; [`PAGE_LIMIT_UNCHANGED`] when there is nothing
/// new to apply, 0 to lift the cap. Shared through an atomic so setting it never waits for
/// the writer.
pub(crate) type PageLimit = Arc<std::sync::atomic::AtomicU64>;
pub(crate) const PAGE_LIMIT_UNCHANGED: u64 = u64::MAX;

/// Starts the writer thread on an open, migrated connection. `committed` is bumped after every
/// commit that kept a new message, so the forwarder wakes without polling.
pub(crate) fn spawn(
    sink: Sink,
    describe: String,
    options: WriterOptions,
    committed: Arc<watch::Sender<u64>>,
    page_limit: PageLimit,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (keep_tx, keep_rx) = crossbeam_channel::bounded(options.queue_capacity.max(1));
    let (book_tx, book_rx) = crossbeam_channel::unbounded();
    let thread = std::thread::Builder::new()
        .name("inbox-writer".into())
        .spawn(move || {
            crate::priority::set_current_thread_nice(crate::priority::WRITER_NICE, "inbox-writer");
            Writer {
                sink,
                describe,
                options,
                committed,
                page_limit,
            }
            .run(keep_rx, book_rx)
        })?;
    Ok((
        WriterHandle {
            keep: keep_tx,
            bookkeeping: book_tx,
        },
        thread,
    ))
}

pub(crate) enum Item {
    Keep(KeepRequest),
    Book(Bookkeeping),
}

/// Where the writer commits.
pub(crate) enum Sink {
    Sqlite {
        conn: Connection,
        wal: Arc<WalState>,
        /// Every row's duplicate key, for finding retries without a unique index.
        keys: Box<DuplicateKeys>,
        /// `data_dir/inbox.lock`, held while this writer runs (`inbox::lock_inbox`).
        _lock: std::fs::File,
    },
    Postgres(Arc<PgInbox>),
}

struct Writer {
    sink: Sink,
    describe: String,
    options: WriterOptions,
    committed: Arc<watch::Sender<u64>>,
    page_limit: PageLimit,
}

impl Writer {
    fn run(mut self, keep_rx: Receiver<KeepRequest>, book_rx: Receiver<Bookkeeping>) {
        let mut keep_open = true;
        let mut book_open = true;
        while keep_open || book_open {
            // Block for the first item; a closed channel is replaced by `never()` so `select!`
            // keeps waiting on the other.
            let never_keep = crossbeam_channel::never();
            let never_book = crossbeam_channel::never();
            let keep = if keep_open { &keep_rx } else { &never_keep };
            let book = if book_open { &book_rx } else { &never_book };
            let first = select! {
                recv(keep) -> item => match item {
                    Ok(item) => Item::Keep(item),
                    Err(_) => { keep_open = false; continue; }
                },
                recv(book) -> item => match item {
                    Ok(item) => Item::Book(item),
                    Err(_) => { book_open = false; continue; }
                },
            };
            if let Sink::Sqlite { conn, wal, .. } = &self.sink
                && wal.take_reset_request()
            {
                checkpoint::restart(conn, wal);
            }
            let batch = self.gather(first, &keep_rx, &book_rx);
            self.commit(batch);
            if let Sink::Sqlite { wal, .. } = &self.sink {
                wal.committed();
            }
        }
        if let Sink::Sqlite { wal, .. } = &self.sink {
            wal.stop();
        }
        tracing::debug!(database = %self.describe, "inbox writer stopped");
    }

    /// Takes whatever else is already waiting, without waiting for more.
    fn gather(
        &self,
        first: Item,
        keep_rx: &Receiver<KeepRequest>,
        book_rx: &Receiver<Bookkeeping>,
    ) -> Vec<Item> {
        let mut bytes = item_bytes(&first);
        let mut batch = vec![first];
        while batch.len() < self.options.max_batch && bytes < self.options.max_batch_bytes {
            match book_rx.try_recv() {
                Ok(item) => {
                    batch.push(Item::Book(item));
                    continue;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
            }
            match keep_rx.try_recv() {
                Ok(item) => {
                    bytes += item.message.body.len();
                    batch.push(Item::Keep(item));
                }
                Err(_) => break,
            }
        }
        batch
    }

    /// Commits the batch, then answers every member: with what was kept, or with the reason
    /// nothing in the batch was.
    fn commit(&mut self, batch: Vec<Item>) {
        let size = batch.len();
        let result = match &mut self.sink {
            Sink::Sqlite { conn, keys, .. } => {
                apply_page_limit(conn, &self.page_limit);
                crate::sqlite::inbox::write_batch(conn, keys, &batch).map_err(StoreError::from)
            }
            Sink::Postgres(pg) => pg.commit_batch(&batch),
        };
        match result {
            Ok(BatchOutcome {
                kept,
                new_rows,
                pruned,
            }) => {
                if new_rows > 0 {
                    self.committed.send_modify(|n| *n += new_rows);
                }
                // Observed before anyone is answered, so a client that got its 200 also sees
                // the batch in the metrics.
                if let Some(observe) = &self.options.on_batch
                    && !kept.is_empty()
                {
                    observe(kept.len());
                }
                let mut kept = kept.into_iter();
                let mut pruned = pruned.into_iter();
                for item in batch {
                    match item {
                        Item::Keep(k) => {
                            let _ = k.reply.send(Ok(kept.next().expect("one per keep")));
                        }
                        Item::Book(Bookkeeping::Forwarded { reply, .. })
                        | Item::Book(Bookkeeping::ForwardFailed { reply, .. })
                        | Item::Book(Bookkeeping::Probe { reply, .. }) => {
                            let _ = reply.send(Ok(()));
                        }
                        Item::Book(Bookkeeping::Prune { reply, .. }) => {
                            let _ = reply.send(Ok(pruned.next().expect("one per prune")));
                        }
                    }
                }
                tracing::trace!(size, new_rows, "inbox batch committed");
            }
            Err(error) => {
                match error.kind() {
                    StoreErrorKind::OutcomeUnknown => {
                        tracing::error!(%error, size, database = %self.describe, "inbox batch may or may not have committed")
                    }
                    _ => {
                        tracing::error!(%error, size, database = %self.describe, "inbox batch failed to commit; nothing in it was kept")
                    }
                }
                for item in batch {
                    // Unavailable and outcome-unknown failures keep their kind (and their
                    // text says which); any other says nothing in the batch was kept.
                    let failure = Err(match error.kind() {
                        StoreErrorKind::Other => StoreError::CommitFailed(error.to_string()),
                        _ => error.copy(),
                    });
                    match item {
                        Item::Keep(k) => {
                            let _ = k.reply.send(failure);
                        }
                        Item::Book(Bookkeeping::Forwarded { reply, .. })
                        | Item::Book(Bookkeeping::ForwardFailed { reply, .. })
                        | Item::Book(Bookkeeping::Probe { reply, .. }) => {
                            let _ = reply.send(failure.map(|_| ()));
                        }
                        Item::Book(Bookkeeping::Prune { reply, .. }) => {
                            let _ = reply.send(failure.map(|_| 0));
                        }
                    }
                }
            }
        }
    }
}

fn item_bytes(item: &Item) -> usize {
    match item {
        Item::Keep(k) => k.message.body.len(),
        Item::Book(_) => 0,
    }
}

/// Applies a page cap set since the last batch (`PRAGMA max_page_count` holds per connection,
/// so it must be the writer's own).
fn apply_page_limit(conn: &Connection, limit: &PageLimit) {
    let pages = limit.swap(PAGE_LIMIT_UNCHANGED, std::sync::atomic::Ordering::AcqRel);
    if pages == PAGE_LIMIT_UNCHANGED {
        return;
    }
    // 0 lifts the cap: SQLite's own largest page count.
    let pages = if pages == 0 { 4_294_967_294 } else { pages };
    if let Err(e) =
        conn.pragma_update_and_check(None, "max_page_count", pages, |row| row.get::<_, i64>(0))
    {
        tracing::warn!(error = %e, "could not set the inbox page limit");
    }
}
