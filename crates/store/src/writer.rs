//! The group-commit writer: the only thread that writes to the inbox.
//!
//! Why one thread: SQLite allows one writer at a time, and a commit with `synchronous=FULL`
//! costs an `fsync`. Handlers therefore do not write; they send their row with a oneshot reply
//! into a **bounded** channel. The writer takes whatever is waiting (up to a batch limit),
//! writes it all in one IMMEDIATE transaction, commits once, and only then replies to every
//! member. Under load, one `fsync` acknowledges dozens of messages; with no load, a lone
//! message commits at once (the writer never waits to fill a batch).
//!
//! Backpressure: when the channel is full the handler gets [`KeepError::Busy`] at once and
//! answers 503 with `Retry-After`; nothing queues without bound. Bookkeeping writes from the
//! forwarder use a second, unbounded channel so they are never refused (they are bounded by the
//! forwarder itself: one in flight per destination).

use crate::checkpoint::{self, WalState};
use crate::inbox::{Kept, NewMessage};
use crate::{StoreError, now_millis};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, select};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::PathBuf;
use std::sync::Arc;
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

/// Bookkeeping from the forwarder (from the unbounded internal channel).
pub(crate) enum Bookkeeping {
    Forwarded {
        id: i64,
        reply: Reply<()>,
    },
    ForwardFailed {
        id: i64,
        error: String,
        reply: Reply<()>,
    },
}

/// Called with the size of every committed batch (for the group-commit batch-size metric).
pub type BatchObserver = std::sync::Arc<dyn Fn(usize) + Send + Sync>;

/// Tuning for the writer.
#[derive(Clone)]
pub struct WriterOptions {
    /// Requests that may wait for the writer before new ones are refused with `Busy`.
    pub queue_capacity: usize,
    /// Most rows in one transaction.
    pub max_batch: usize,
    /// Most body bytes in one transaction, so a burst of large messages commits in pieces.
    pub max_batch_bytes: usize,
    /// WAL size past which the WAL is restarted from its beginning (see `checkpoint`).
    pub wal_reset_bytes: i64,
    /// Told the size of every committed batch.
    pub on_batch: Option<BatchObserver>,
}

impl std::fmt::Debug for WriterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterOptions")
            .field("queue_capacity", &self.queue_capacity)
            .field("max_batch", &self.max_batch)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("wal_reset_bytes", &self.wal_reset_bytes)
            .field("on_batch", &self.on_batch.is_some())
            .finish()
    }
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue_capacity: 4096,
            max_batch: 512,
            max_batch_bytes: 16 * 1024 * 1024,
            wal_reset_bytes: crate::checkpoint::RESET_BYTES,
            on_batch: None,
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

/// Starts the writer thread on an open, migrated connection. `committed` is bumped after every
/// commit that kept a new message, so the forwarder wakes without polling.
pub(crate) fn spawn(
    conn: Connection,
    path: PathBuf,
    options: WriterOptions,
    committed: watch::Sender<u64>,
    wal: Arc<WalState>,
) -> std::io::Result<(WriterHandle, std::thread::JoinHandle<()>)> {
    let (keep_tx, keep_rx) = crossbeam_channel::bounded(options.queue_capacity.max(1));
    let (book_tx, book_rx) = crossbeam_channel::unbounded();
    let thread = std::thread::Builder::new()
        .name("inbox-writer".into())
        .spawn(move || {
            Writer {
                conn,
                path,
                options,
                committed,
                wal,
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

enum Item {
    Keep(KeepRequest),
    Book(Bookkeeping),
}

enum Outcome {
    Kept(Reply<Kept>, Kept),
    Done(Reply<()>),
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    options: WriterOptions,
    committed: watch::Sender<u64>,
    wal: Arc<WalState>,
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
            if self.wal.take_reset_request() {
                checkpoint::restart(&self.conn, &self.wal);
            }
            let batch = self.gather(first, &keep_rx, &book_rx);
            self.commit(batch);
            self.wal.committed();
        }
        self.wal.stop();
        tracing::debug!(path = %self.path.display(), "inbox writer stopped");
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

    fn commit(&mut self, batch: Vec<Item>) {
        let size = batch.len();
        match write_batch(&mut self.conn, batch) {
            Ok((outcomes, new_rows)) => {
                if new_rows > 0 {
                    self.committed.send_modify(|n| *n += new_rows);
                }
                for outcome in outcomes {
                    match outcome {
                        Outcome::Kept(reply, kept) => {
                            let _ = reply.send(Ok(kept));
                        }
                        Outcome::Done(reply) => {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
                if let Some(observe) = &self.options.on_batch {
                    observe(size);
                }
                tracing::trace!(size, new_rows, "inbox batch committed");
            }
            Err((error, replies)) => {
                tracing::error!(%error, size, path = %self.path.display(), "inbox batch failed to commit; nothing in it was kept");
                let text = error.to_string();
                for reply in replies {
                    reply(text.clone());
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

type FailReply = Box<dyn FnOnce(String) + Send>;

/// Writes a whole batch in one transaction. On failure returns every reply so the caller can
/// tell each member that nothing was kept.
fn write_batch(
    conn: &mut Connection,
    batch: Vec<Item>,
) -> Result<(Vec<Outcome>, u64), (rusqlite::Error, Vec<FailReply>)> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut new_rows = 0;
    let result = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO inbox (message_id, destination, duplicate_key, kind, status,
                    data_model, event_type, log_id, content_type, body, malformed_reason, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let mut existing = tx.prepare_cached(
                "SELECT id, message_id FROM inbox WHERE destination = ?1 AND duplicate_key = ?2",
            )?;
            let mut forwarded = tx.prepare_cached(
                "UPDATE inbox SET status = 'forwarded', forwarded_at = ?2,
                    forward_attempts = forward_attempts + 1, last_error = NULL WHERE id = ?1",
            )?;
            let mut failed = tx.prepare_cached(
                "UPDATE inbox SET forward_attempts = forward_attempts + 1, last_error = ?2
                 WHERE id = ?1",
            )?;
            let now = now_millis();
            for item in &batch {
                match item {
                    Item::Keep(KeepRequest { message: m, .. }) => {
                        let message_id = uuid::Uuid::now_v7().to_string();
                        let inserted = insert.execute(params![
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
                        let kept = if inserted == 1 {
                            new_rows += 1;
                            Kept {
                                id: tx.last_insert_rowid(),
                                message_id,
                                duplicate: false,
                            }
                        } else {
                            let (id, message_id) = existing
                                .query_row(params![m.destination, m.duplicate_key], |r| {
                                    Ok((r.get(0)?, r.get(1)?))
                                })
                                .optional()?
                                .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                            Kept {
                                id,
                                message_id,
                                duplicate: true,
                            }
                        };
                        outcomes.push(kept);
                    }
                    Item::Book(Bookkeeping::Forwarded { id, .. }) => {
                        forwarded.execute(params![id, now])?;
                    }
                    Item::Book(Bookkeeping::ForwardFailed { id, error, .. }) => {
                        failed.execute(params![id, error])?;
                    }
                }
            }
        }
        tx.commit()
    })();

    match result {
        Ok(()) => {
            let mut kept = outcomes.into_iter();
            let outcomes = batch
                .into_iter()
                .map(|item| match item {
                    Item::Keep(k) => Outcome::Kept(k.reply, kept.next().expect("one per keep")),
                    Item::Book(Bookkeeping::Forwarded { reply, .. })
                    | Item::Book(Bookkeeping::ForwardFailed { reply, .. }) => Outcome::Done(reply),
                })
                .collect();
            Ok((outcomes, new_rows))
        }
        Err(error) => {
            let replies = batch
                .into_iter()
                .map(|item| -> FailReply {
                    match item {
                        Item::Keep(k) => Box::new(move |text| {
                            let _ = k.reply.send(Err(StoreError::CommitFailed(text)));
                        }),
                        Item::Book(Bookkeeping::Forwarded { reply, .. })
                        | Item::Book(Bookkeeping::ForwardFailed { reply, .. }) => {
                            Box::new(move |text| {
                                let _ = reply.send(Err(StoreError::CommitFailed(text)));
                            })
                        }
                    }
                })
                .collect();
            Err((error, replies))
        }
    }
}
