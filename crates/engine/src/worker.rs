//! The delivery queue worker: first in, first out per destination, one message in flight per
//! destination, retried on the retry ladder until it is accepted (docs/PROTOCOL.md section 6).
//!
//! The queue lives in the store (`logs`, in `seq` order); this worker only decides what to try
//! next. It starts a destination's queue (a *drain*) when ingestion queued logs for it, and
//! reads every queue's head only when something else changed (startup, an operator's action,
//! another engine's change, a retry falling due). A drain reads a batch of its queue's logs
//! and sends them one at a time, each only after the previous one was accepted; a failing head
//! stays the head (the destination's queue is held: nothing behind it is attempted) and its
//! next try is moved to `now + ladder step`.
//!
//! Why the next message goes before the previous attempt is committed: a commit costs an
//! `fsync`, and waiting for it between messages capped one destination at the disk's serial
//! commit rate. The attempts are handed to the group committer as they finish; the next batch
//! is read behind the last log sent while they are committed, and a batch's attempts are all
//! committed before the batch after next is read, before a failure is recorded, and before a
//! drain ends. A crash in between loses only the record of an accepted attempt (at most two
//! batches' worth): the message is sent again after the restart with the same Log ID (at
//! least once), and never out of order, because the queue's order is the store's and the
//! resending starts at the oldest unrecorded log. Several engines on one PostgreSQL database
//! each work only the queues whose lease they hold: the store shows only those, and an
//! attempt starts only with enough lease left (`EngineStore::holds_queue`), so FIFO and
//! one-in-flight hold across processes.
//!
//! The worker calls the core (`crate::app`) for everything it needs: where a destination's
//! messages go, presenting its credential, committing attempts, alerts.

use crate::app::commit::Pending;
use crate::app::credentials::Credential;
use crate::app::{Engine, EngineError, SendError, rfc3339_text};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use wharf_delivery::push::PushOutcome;
use wharf_store::engine::{AttemptOutcome, AttemptRecord, LogRecord, Write};

/// Longest the worker sleeps with nothing due (a new message wakes it at once).
const IDLE: Duration = Duration::from_secs(60);
/// Most logs a drain reads from its queue at a time. At most two batches' attempts are being
/// committed at once, so twice this bounds how many accepted attempts a crash can forget.
const BATCH: usize = 128;
/// Fewest logs a drain reads at a time, however many drains run.
const MIN_BATCH: usize = 16;
/// Logs (each with its body) all drains together hold at once, shared out among the drains
/// running: 100 destinations draining 128 logs each held 12,800 bodies and raised the
/// engine's peak RSS by about 90 MiB (docs/experiments/engine-throughput.md, "Memory").
const LOGS_IN_MEMORY: usize = 2048;

/// How many logs a drain reads next, with `drains` drains running: a power of two, so the
/// store's reads come in four shapes whose prepared statements stay cached.
fn batch_size(drains: usize) -> usize {
    let share = (LOGS_IN_MEMORY / drains.max(1)).clamp(MIN_BATCH, BATCH);
    1 << share.ilog2()
}
/// How soon a queue is looked at again after its store read failed.
const STORE_RETRY: i64 = 1_000;

/// Threads of the delivery runtime.
const DELIVERY_THREADS: usize = 2;

/// Starts the worker on a runtime of its own; the receiver is answered when it has stopped.
///
/// Why its own runtime: on the server's runtime, a queue's drain is one task among as many
/// as there are requests in flight, and the scheduler gave it one turn in 65 while 64
/// connections ingested: delivery nearly stopped until ingestion did (measured: 11% of what
/// was accepted delivered by the time a 10 s burst ended). Its own threads get the CPU as the
/// server's threads do, from the operating system.
pub(crate) fn spawn(
    engine: Engine,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(DELIVERY_THREADS)
        .thread_name("delivery")
        .enable_all()
        .build()?;
    let (stopped, wait) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("delivery-worker".into())
        .spawn(move || {
            runtime.block_on(run(engine, shutdown));
            // The runtime's tasks (alerts on their way) end with it, here, off any async context.
            drop(runtime);
            let _ = stopped.send(());
        })?;
    Ok(wait)
}

async fn run(engine: Engine, shutdown: watch::Receiver<bool>) {
    engine
        .worker_running
        .store(true, std::sync::atomic::Ordering::SeqCst);
    work(&engine, shutdown).await;
    engine
        .worker_running
        .store(false, std::sync::atomic::Ordering::SeqCst);
}

/// The destinations being drained, and the drains' reports.
struct Drains {
    in_flight: HashSet<String>,
    /// What the drains read of the worker's state.
    shared: Arc<Shared>,
    /// Logs were queued to these while their drain ran: start them again when it ends, or
    /// the new logs could wait for the next full look at every head.
    again: HashSet<String>,
    done_tx: mpsc::UnboundedSender<(String, Option<i64>)>,
}

impl Drains {
    fn start(&mut self, engine: &Engine, destination: String, stop: &watch::Receiver<bool>) {
        if !self.in_flight.insert(destination.clone()) {
            self.again.insert(destination);
            return;
        }
        self.shared
            .running
            .store(self.in_flight.len(), Ordering::Relaxed);
        let (engine, done, stop) = (engine.clone(), self.done_tx.clone(), stop.clone());
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let due = drain(&engine, &destination, &stop, &shared).await;
            let _ = done.send((destination, due));
        });
    }

    fn ended(&mut self, destination: &str) {
        self.in_flight.remove(destination);
        self.shared
            .running
            .store(self.in_flight.len(), Ordering::Relaxed);
    }
}

/// The worker's state its drains read.
#[derive(Default)]
struct Shared {
    /// How many drains run now (for their batch size).
    running: AtomicUsize,
    /// Counts the queue changes announced on a shared PostgreSQL database (every engine's,
    /// this one's included). Another engine may have put a log back in a queue ahead of where
    /// a drain reads (a subscription resumed there): the drain then reads its queue from the
    /// head again.
    elsewhere: AtomicU64,
}

async fn work(engine: &Engine, mut shutdown: watch::Receiver<bool>) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut drains = Drains {
        in_flight: HashSet::new(),
        shared: Arc::default(),
        again: HashSet::new(),
        done_tx,
    };
    // Queues changed by other engine processes on a shared database, or taken over by this one.
    let mut changes = engine.store.changes();
    let mut look = true;
    let mut next_due: Option<i64> = None;
    loop {
        if look {
            look = false;
            next_due = None;
            let now = engine.now_millis();
            match engine.db(|s| s.queue_heads()).await {
                Ok(heads) => {
                    for head in heads {
                        if drains.in_flight.contains(&head.destination_id) {
                            // Its drain may have read its queue before this change (a resend,
                            // a stop) and be about to end: look at it again when it does, or
                            // the change would wait for the next full look.
                            drains.again.insert(head.destination_id);
                            continue;
                        }
                        if head.next_attempt_at <= now {
                            drains.start(engine, head.destination_id, &shutdown);
                        } else {
                            next_due = Some(next_due.map_or(head.next_attempt_at, |t: i64| {
                                t.min(head.next_attempt_at)
                            }));
                        }
                    }
                }
                Err(_) => next_due = Some(now + STORE_RETRY),
            }
        }
        let now = engine.now_millis();
        let sleep = next_due.map_or(IDLE, |t| Duration::from_millis((t - now).max(0) as u64));
        tokio::select! {
            _ = engine.signals.queued_notify.notified() => {
                for destination in engine.signals.take_queued() {
                    if drains.in_flight.contains(&destination)
                        || engine.store.holds_queue(&destination)
                    {
                        drains.start(engine, destination, &shutdown);
                    } else {
                        // PostgreSQL: a queue no engine holds yet is taken in a look at every
                        // head (a round of taking leases).
                        look = true;
                    }
                }
            }
            _ = engine.signals.wake.notified() => look = true,
            _ = changes.changed() => {
                drains.shared.elsewhere.fetch_add(1, Ordering::Relaxed);
                look = true;
            }
            Some((destination, due)) = done_rx.recv() => {
                drains.ended(&destination);
                if drains.again.remove(&destination) {
                    drains.start(engine, destination, &shutdown);
                } else if let Some(due) = due {
                    next_due = Some(next_due.map_or(due, |t| t.min(due)));
                }
            }
            _ = tokio::time::sleep(sleep) => look = true,
            _ = shutdown.changed() => break,
        }
    }
    // Let the attempts in flight finish and be recorded, so nothing is sent twice needlessly
    // after a restart; a destination slower than the delivery timeout cannot hold us longer.
    let deadline = engine.config.delivery_timeout + Duration::from_secs(5);
    let finish = async {
        while !drains.in_flight.is_empty() {
            match done_rx.recv().await {
                Some((destination, _)) => drains.ended(&destination),
                None => break,
            }
        }
    };
    if tokio::time::timeout(deadline, finish).await.is_err() {
        tracing::warn!("some deliveries did not finish before shutdown; they will be retried");
    }
}

/// Works one destination's queue, a batch of logs at a time, for as long as its heads are
/// accepted. Returns when the queue is empty (`None`), when its head is not due or just
/// failed (`Some(when it is due)`), when this process may no longer work it, or at shutdown;
/// every attempt made is committed (or kept trying to be, see [`record_when_back`]) first.
///
/// The next batch is read, behind the last log sent, while the previous batch's attempts are
/// still being committed: waiting for those commits before reading again left PostgreSQL's
/// drain idle for 10-40 ms per batch of 128 (its commits took longer than the sends). At most
/// two batches' attempts are uncommitted at once: a batch's sends end by waiting for the
/// batch before it.
async fn drain(
    engine: &Engine,
    destination: &str,
    stop: &watch::Receiver<bool>,
    shared: &Shared,
) -> Option<i64> {
    // The previous batch's attempts, being committed while this batch is read and sent.
    let mut committing = Records::default();
    // The `seq` of the last log accepted in this drain: the next batch starts behind it.
    let mut after = None;
    loop {
        let epoch = engine.signals.epoch();
        let elsewhere = shared.elsewhere.load(Ordering::Relaxed);
        let id = destination.to_owned();
        let size = batch_size(shared.running.load(Ordering::Relaxed));
        let batch = match engine.db(move |s| s.queue_front(&id, after, size)).await {
            Ok(batch) if batch.is_empty() => return settle(engine, committing, stop, None).await,
            Ok(batch) => batch,
            Err(_) => {
                let retry = Some(engine.now_millis() + STORE_RETRY);
                return settle(engine, committing, stop, retry).await;
            }
        };
        let target = target(engine, destination).await;
        let mut records = Records::default();
        let mut ended = None;
        let mut reordered = false;
        for head in batch {
            if *stop.borrow() {
                break;
            }
            if engine.signals.epoch() != epoch {
                reordered = true;
                break;
            }
            if head.next_attempt_at > engine.now_millis() {
                ended = Some(Some(head.next_attempt_at));
                break;
            }
            let seq = head.seq;
            match attempt(engine, &target, head, &mut records).await {
                Attempted::Accepted => after = Some(seq),
                Attempted::Failed(retry_at) => {
                    ended = Some(Some(retry_at));
                    break;
                }
                Attempted::NotOurs => {
                    ended = Some(None);
                    break;
                }
            }
        }
        let previous = std::mem::take(&mut committing).finish(engine, stop).await;
        if let Some(due) = ended {
            records.finish(engine, stop).await;
            return due;
        }
        if *stop.borrow() {
            records.finish(engine, stop).await;
            return None;
        }
        if !previous {
            let retry = Some(engine.now_millis() + STORE_RETRY);
            return settle(engine, records, stop, retry).await;
        }
        if reordered || shared.elsewhere.load(Ordering::Relaxed) != elsewhere {
            // An operator's change (a stop, a resend, a pause, a subscription resumed), here or
            // in another engine, may have reordered the queue: read it again from its head,
            // once every attempt made is committed.
            if !records.finish(engine, stop).await {
                return Some(engine.now_millis() + STORE_RETRY);
            }
            after = None;
            continue;
        }
        committing = records;
    }
}

/// Ends a drain once `records` are committed: `due`, or a retry soon if one could not be
/// recorded (its log is still pending and must be read again).
async fn settle(
    engine: &Engine,
    records: Records,
    stop: &watch::Receiver<bool>,
    due: Option<i64>,
) -> Option<i64> {
    if records.finish(engine, stop).await || *stop.borrow() {
        due
    } else {
        Some(engine.now_millis() + STORE_RETRY)
    }
}

/// What one attempt did to the drain.
enum Attempted {
    /// Accepted: the next log may go (its record is being committed).
    Accepted,
    /// Refused or not delivered: the queue is held until this time.
    Failed(i64),
    /// Another engine works this queue now; nothing was sent.
    NotOurs,
}

/// Where a destination's logs go, read once per batch.
struct Target {
    name: String,
    url: reqwest::Url,
    token: String,
    credential: Option<Credential>,
    client: reqwest::Client,
}

/// The attempts of one batch handed to the committer, oldest first.
#[derive(Default)]
struct Records(VecDeque<(Write, Pending, bool)>);

impl Records {
    /// Waits until every attempt is committed. An accepted attempt that could not be
    /// recorded is kept trying until the store is back ([`record_when_back`]). Returns false
    /// if one could not be recorded: its log is still pending and the queue is read again.
    async fn finish(mut self, engine: &Engine, stop: &watch::Receiver<bool>) -> bool {
        let mut all = true;
        while let Some((write, pending, accepted)) = self.0.pop_front() {
            let log_id = match &write {
                Write::Attempt(record, _) => record.log_id.clone(),
                _ => String::new(),
            };
            match pending.wait().await {
                Ok(()) => {}
                // Accepted but not recorded: sending it again would deliver it twice, so the
                // outcome is recorded once the store is back (the queue waits meanwhile).
                Err(
                    EngineError::Unavailable
                    | EngineError::OutcomeUnknown
                    | EngineError::NoSpace(_),
                ) if accepted => {
                    all &= record_when_back(engine, write, stop).await;
                }
                Err(e) => {
                    // Not recorded: the head stays due and is tried again (at least once). An
                    // unavailable store was logged already, once for the whole outage.
                    if matches!(
                        e,
                        EngineError::Unavailable
                            | EngineError::OutcomeUnknown
                            | EngineError::NoSpace(_)
                    ) {
                        tracing::debug!(log = %log_id, error = %e, "could not record a delivery attempt");
                    } else {
                        tracing::error!(log = %log_id, error = %e, "could not record a delivery attempt");
                    }
                    all = false;
                }
            }
        }
        all
    }
}

/// One attempt at the head of a destination's queue, handed to the committer whatever
/// happens.
async fn attempt(
    engine: &Engine,
    target: &Result<Target, SendError>,
    head: LogRecord,
    records: &mut Records,
) -> Attempted {
    // Time-ordered, as Log IDs are (see `app::ingest`): the attempts' index grows at its end.
    let attempt_id = uuid::Uuid::now_v7().to_string();
    let started_at = engine.now_millis();
    let outcome = match target {
        // Several engines on one database: the queue's lease must outlast this attempt, or
        // another engine could start the same queue's next one meanwhile. Not sending is
        // safe: the head stays due for whoever holds the lease.
        Ok(_) if !engine.store.holds_queue(&head.destination_id) => return Attempted::NotOurs,
        Ok(target) => {
            let body = wharf_protocol::envelope::stamp(
                &head.body,
                &wharf_protocol::envelope::Stamp {
                    log_id: &head.id,
                    attempt_id: &attempt_id,
                    source_name: &head.source,
                    destination_id: &head.destination_id,
                    destination_name: &target.name,
                    now_rfc3339: &rfc3339_text(started_at),
                },
            );
            // A resent log says so (docs/PROTOCOL.md section 4): a receiver that drops
            // retries by Log ID delivers it again.
            let marks = match head.resends {
                0 => Vec::new(),
                n => vec![(wharf_protocol::RESEND_HEADER.to_owned(), n.to_string())],
            };
            crate::app::present::push_marked(
                engine,
                &target.client,
                &target.url,
                &target.token,
                target.credential.as_ref(),
                &marks,
                &head.content_type,
                body,
                engine.config.delivery_timeout,
                wharf_delivery::push::RESPONSE_EXCERPT_BYTES,
            )
            .await
        }
        Err(reason) => crate::app::present::failed(reason),
    };
    let accepted = outcome.accepted();
    if outcome.status.is_some() || outcome.error.is_some() {
        engine
            .metrics
            .attempt(accepted, outcome.duration.as_secs_f64());
    }
    alert_if_changed(engine, &head, &outcome).await;
    let retry_at = engine.now_millis()
        + engine
            .config
            .retry_ladder
            .delay_after(head.attempts as usize + 1)
            .as_millis() as i64;
    let next = if accepted {
        AttemptOutcome::Succeeded
    } else {
        AttemptOutcome::RetryAt(retry_at)
    };
    let record = AttemptRecord {
        id: attempt_id,
        log_id: head.id.clone(),
        started_at,
        duration_ms: outcome.duration.as_millis() as i64,
        status_code: outcome.status.map(i64::from),
        error: outcome.error.clone(),
        response: (!outcome.response.is_empty()).then(|| outcome.response.clone()),
    };
    if accepted {
        tracing::debug!(log = %head.id, destination = %head.destination_id, "delivered");
    } else {
        tracing::warn!(
            log = %head.id, destination = %head.destination_id, status = ?outcome.status,
            error = ?outcome.error, "delivery failed; the destination's queue is held and the message retried"
        );
    }
    let write = Write::Attempt(record, next);
    match engine.committer.submit(write.clone()) {
        Ok(pending) => records.0.push_back((write, pending, accepted)),
        Err(e) => {
            // The committer stopped (shutdown): the head stays pending and is sent again.
            tracing::debug!(log = %head.id, error = %e, "could not record a delivery attempt");
            return Attempted::Failed(engine.now_millis() + STORE_RETRY);
        }
    }
    if accepted {
        Attempted::Accepted
    } else {
        Attempted::Failed(retry_at)
    }
}

/// Longest wait between tries at recording an accepted attempt while the store is down.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(1);

/// Records an accepted attempt whose first commit failed, trying until the store answers or
/// the engine stops. After an unknown outcome the first commit may have landed: the attempt
/// is looked up before each try, so it is never recorded twice. Returns whether it is recorded
/// (if the engine stops first, the message is sent again after the restart: at least once).
async fn record_when_back(engine: &Engine, write: Write, stop: &watch::Receiver<bool>) -> bool {
    let Write::Attempt(record, _) = &write else {
        return false;
    };
    let (log_id, attempt_id) = (record.log_id.clone(), record.id.clone());
    let mut wait = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            tracing::warn!(log = %log_id, "stopping before an accepted delivery could be recorded; it will be sent again");
            return false;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECORD_RETRY_MAX);
        let (log, attempt) = (log_id.clone(), attempt_id.clone());
        let recorded = engine
            .db(move |s| {
                Ok(s.log(&log)?
                    .is_some_and(|(_, tries)| tries.iter().any(|t| t.id == attempt)))
            })
            .await;
        match recorded {
            Ok(true) => return true,
            Ok(false) => {
                if engine.committer.commit(write.clone()).await.is_ok() {
                    return true;
                }
            }
            Err(_) => {}
        }
    }
}

/// Tells the core's alert rules what this attempt did to its queue (see
/// `app::alert_rules::queue_attempted`): they notify when it paused or moved again.
async fn alert_if_changed(engine: &Engine, head: &LogRecord, outcome: &PushOutcome) {
    let failure = (!outcome.accepted()).then(|| match (&outcome.status, &outcome.error) {
        (_, Some(error)) => error.clone(),
        (Some(status), None) => format!("the destination answered HTTP {status}"),
        (None, None) => "the delivery failed".to_owned(),
    });
    crate::app::alert_rules::queue_attempted(
        engine,
        &head.destination_id,
        &head.id,
        head.attempts,
        failure,
    )
    .await;
}

/// Where a destination's logs go (its name, endpoint, token, auth credential and a client
/// for the endpoint), or why they cannot go now.
async fn target(engine: &Engine, destination: &str) -> Result<Target, SendError> {
    let id = destination.to_owned();
    let Some(record) = engine
        .db(move |s| s.destination(&id))
        .await
        .map_err(|_| SendError::RecordUnreadable)?
    else {
        // Queued by an ingestion that raced the destination's deletion: erase it as the
        // deletion erased the rest (the attempt recorded next finds no log and is dropped).
        let id = destination.to_owned();
        if let Err(e) = engine.db(move |s| s.delete_destination(&id)).await {
            tracing::warn!(destination = %destination, error = %e, "could not erase a deleted destination's log; retrying later");
        }
        return Err(SendError::Deleted);
    };
    let (url, token, credential) = crate::app::ingest::target(engine, &record).await?;
    let client = engine.client_for(&url).await?;
    Ok(Target {
        name: record.name,
        url,
        token,
        credential,
        client,
    })
}
