//! The group-commit writer: the one thread that commits a store's hot writes, for the
//! destination's inbox (messages kept, forwarding marks, retention) and for the engine (logs
//! queued at ingestion, delivery attempts). [`Batch`] is what differs between the two: what an
//! item is and how a batch of them is committed; the thread, its channels, its batching and
//! its WAL checkpoints are this module's, once.
//!
//! Why one thread: SQLite allows one writer at a time, and a commit with `synchronous=FULL`
//! costs an `fsync`; on PostgreSQL a commit costs a round trip and a WAL flush, and a batch
//! goes in as multi-row statements, so the same batching pays there too. Callers therefore do
//! not write; they send their item with a oneshot reply into a channel. The writer takes
//! whatever is waiting (up to a batch limit), writes it all in one transaction, commits once,
//! and only then replies to every member. Under load, one `fsync` acknowledges hundreds of
//! writes; with no load, a lone write commits at once (the writer never waits to fill a batch).
//!
//! Why not commit on the request tasks themselves (leader/follower): it saves the hand-off's
//! wake-ups, but a leader blocks its HTTP worker for the inserts and the `fsync`, and measured
//! slower with a higher p99 than this thread (docs/experiments/).
//!
//! Backpressure: requests from outside (a message to keep, a message ingested) go through a
//! **bounded** channel; when it is full the caller is refused at once and answers 503 with
//! `Retry-After`; nothing queues without bound. Bookkeeping (forwarding marks, retention,
//! delivery attempts) uses a second, unbounded channel so it is never refused: each is bounded
//! by its producer (one forward in flight per destination, one batch of attempts per queue).
//! Bookkeeping is taken first, so it is not starved by a flood of new messages.

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
    #[error("the writer's queue is full; retry shortly")]
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

/// The senders' side of a writer thread: its bounded channel for requests from outside and
/// its unbounded one for bookkeeping. Dropping every clone stops the thread after it has
/// committed everything already sent.
pub(crate) struct Channels<I> {
    requests: Sender<I>,
    bookkeeping: Sender<I>,
}

impl<I> Clone for Channels<I> {
    fn clone(&self) -> Self {
        Channels {
            requests: self.requests.clone(),
            bookkeeping: self.bookkeeping.clone(),
        }
    }
}

/// The writer cannot take a request now.
pub(crate) enum Refused {
    /// Its queue is full: answer 503 and let the sender retry.
    Full,
    /// It has stopped.
    Stopped,
}

impl<I> Channels<I> {
    /// Queues a request from outside, or refuses it at once when the queue is full.
    pub(crate) fn try_request(&self, item: I) -> Result<(), Refused> {
        self.requests.try_send(item).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Stopped,
        })
    }

    /// Queues bookkeeping; never refused while the writer runs.
    pub(crate) fn bookkeeping(&self, item: I) -> Result<(), StoreError> {
        self.bookkeeping
            .send(item)
            .map_err(|_| StoreError::WriterStopped)
    }
}

/// The inbox writer's handle.
#[derive(Clone)]
pub(crate) struct WriterHandle(Channels<Item>);

impl From<Refused> for KeepError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Full => KeepError::Busy,
            Refused::Stopped => KeepError::Store(StoreError::WriterStopped),
        }
    }
}

impl WriterHandle {
    pub fn try_keep(&self, request: KeepRequest) -> Result<(), KeepError> {
        Ok(self.0.try_request(Item::Keep(request))?)
    }

    pub fn bookkeeping(&self, item: Bookkeeping) -> Result<(), StoreError> {
        self.0.bookkeeping(Item::Book(item))
    }
}

/// What a writer thread commits: one store's kind of write.
pub(crate) trait Batch: Send + 'static {
    /// One write with the channel its answer goes back on.
    type Item: Send + 'static;
    /// The body bytes `item` carries (a batch stops growing at `max_batch_bytes`).
    fn bytes(item: &Self::Item) -> usize;
    /// Commits `batch` in one transaction and answers every item in it.
    fn commit(&mut self, batch: Vec<Self::Item>);
    /// SQLite: the writer's connection and its WAL's checkpoint state.
    fn wal(&self) -> Option<(&Connection, &WalState)>;
}

/// How large a writer's queue and batches may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub queue_capacity: usize,
    pub max_batch: usize,
    pub max_batch_bytes: usize,
}

/// Starts a writer thread called `name` committing through `batch`.
pub(crate) fn spawn_thread<B: Batch>(
    name: &str,
    batch: B,
    limits: Limits,
) -> std::io::Result<(Channels<B::Item>, std::thread::JoinHandle<()>)> {
    let (requests, requests_rx) = crossbeam_channel::bounded(limits.queue_capacity.max(1));
    let (bookkeeping, bookkeeping_rx) = crossbeam_channel::unbounded();
    let thread_name = name.to_owned();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            crate::priority::set_current_thread_nice(crate::priority::WRITER_NICE, &thread_name);
            run(batch, limits, requests_rx, bookkeeping_rx);
            tracing::debug!(writer = %thread_name, "writer stopped");
        })?;
    Ok((
        Channels {
            requests,
            bookkeeping,
        },
        thread,
    ))
}

fn run<B: Batch>(
    mut batch: B,
    limits: Limits,
    requests: Receiver<B::Item>,
    bookkeeping: Receiver<B::Item>,
) {
    let mut requests_open = true;
    let mut bookkeeping_open = true;
    while requests_open || bookkeeping_open {
        // Block for the first item; a closed channel is replaced by `never()` so `select!`
        // keeps waiting on the other.
        let never_requests = crossbeam_channel::never();
        let never_bookkeeping = crossbeam_channel::never();
        let req = if requests_open {
            &requests
        } else {
            &never_requests
        };
        let book = if bookkeeping_open {
            &bookkeeping
        } else {
            &never_bookkeeping
        };
        let first = select! {
            recv(book) -> item => match item {
                Ok(item) => item,
                Err(_) => { bookkeeping_open = false; continue; }
            },
            recv(req) -> item => match item {
                Ok(item) => item,
                Err(_) => { requests_open = false; continue; }
            },
        };
        if let Some((conn, wal)) = batch.wal()
            && wal.take_reset_request()
        {
            checkpoint::restart(conn, wal);
        }
        let items = gather::<B>(first, &limits, &requests, &bookkeeping);
        batch.commit(items);
        if let Some((_, wal)) = batch.wal() {
            wal.committed();
        }
    }
    if let Some((_, wal)) = batch.wal() {
        wal.stop();
    }
}

/// Takes whatever else is already waiting (bookkeeping first), without waiting for more.
fn gather<B: Batch>(
    first: B::Item,
    limits: &Limits,
    requests: &Receiver<B::Item>,
    bookkeeping: &Receiver<B::Item>,
) -> Vec<B::Item> {
    let mut bytes = B::bytes(&first);
    let mut items = vec![first];
    while items.len() < limits.max_batch && bytes < limits.max_batch_bytes {
        match bookkeeping.try_recv() {
            Ok(item) => {
                bytes += B::bytes(&item);
                items.push(item);
                continue;
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {}
        }
        match requests.try_recv() {
            Ok(item) => {
                bytes += B::bytes(&item);
                items.push(item);
            }
            Err(_) => break,
        }
    }
    items
}

/// A cap on the SQLite inbox file's pages, set while running (`Inbox::limit_pages`) and
/// applied by the writer before its next batch; [`PAGE_LIMIT_UNCHANGED`] when there is nothing
/// new to apply, 0 to lift the cap. Shared through an atomic so setting it never waits for
/// the writer.
pub(crate) type PageLimit = Arc<std::sync::atomic::AtomicU64>;
pub(crate) const PAGE_LIMIT_UNCHANGED: u64 = u64::MAX;

/// Starts the inbox's writer thread on an open, migrated connection. `committed` is bumped
/// after every commit that kept a new message, so the forwarder wakes without polling.
pub(crate) fn spawn(
    sink: Sink,
    describe: String,
    options: WriterOptions,
    committed: Arc<watch::Sender<u64>>,
    page_limit: PageLimit,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let limits = Limits {
        queue_capacity: options.queue_capacity,
        max_batch: options.max_batch,
        max_batch_bytes: options.max_batch_bytes,
    };
    let (channels, thread) = spawn_thread(
        "inbox-writer",
        InboxBatch {
            sink,
            describe,
            options,
            committed,
            page_limit,
        },
        limits,
    )?;
    Ok((WriterHandle(channels), thread))
}

/// An item of the inbox writer.
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

struct InboxBatch {
    sink: Sink,
    describe: String,
    options: WriterOptions,
    committed: Arc<watch::Sender<u64>>,
    page_limit: PageLimit,
}

impl Batch for InboxBatch {
    type Item = Item;

    fn bytes(item: &Item) -> usize {
        match item {
            Item::Keep(k) => k.message.body.len(),
            Item::Book(_) => 0,
        }
    }

    fn wal(&self) -> Option<(&Connection, &WalState)> {
        match &self.sink {
            Sink::Sqlite { conn, wal, .. } => Some((conn, wal)),
            Sink::Postgres(_) => None,
        }
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
                    let failure = Err(shared_failure(&error));
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

/// What each member of a failed batch is told. Unavailable and outcome-unknown failures keep
/// their kind (and their text says which); any other says nothing in the batch was kept.
pub(crate) fn shared_failure(error: &StoreError) -> StoreError {
    match error.kind() {
        StoreErrorKind::Other => StoreError::CommitFailed(error.to_string()),
        _ => error.copy(),
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
