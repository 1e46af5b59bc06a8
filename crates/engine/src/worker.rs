//! The delivery queue worker: first in, first out per destination, one message in flight per
//! destination, retried on the retry ladder until it is accepted (PROTOCOL.md section 6).
//!
//! The queue lives in the store (`logs`, in `seq` order); this worker only decides what to try
//! next. Each round it reads every destination's head; a head that is due and whose
//! destination has nothing in flight gets an attempt. A failing head stays the head (the
//! destination's queue is held: nothing behind it is attempted) and its next try is moved to
//! `now + ladder step`. Because every decision is read back from the store, a restart (even
//! after kill -9) resumes exactly where the last committed attempt left off: at least once,
//! order kept. Several engines on one PostgreSQL database each work only the queues whose
//! lease they hold: the store shows only those heads, and an attempt starts only with enough
//! lease left (`EngineStore::holds_queue`), so FIFO and one-in-flight hold across processes.
//!
//! The worker calls the core (`crate::app`) for everything it needs: where a destination's
//! messages go, presenting its credential, committing attempts, alerts.

use crate::app::credentials::Credential;
use crate::app::{Engine, EngineError, rfc3339_text};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use wharf_delivery::push::PushOutcome;
use wharf_store::engine::{AttemptOutcome, AttemptRecord, LogRecord, Write};

/// Longest the worker sleeps with nothing due (a new message wakes it at once).
const IDLE: Duration = Duration::from_secs(60);

pub(crate) async fn run(engine: Engine, shutdown: watch::Receiver<bool>) {
    engine
        .worker_running
        .store(true, std::sync::atomic::Ordering::SeqCst);
    work(&engine, shutdown).await;
    engine
        .worker_running
        .store(false, std::sync::atomic::Ordering::SeqCst);
}

async fn work(engine: &Engine, mut shutdown: watch::Receiver<bool>) {
    let mut in_flight: HashSet<String> = HashSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    // Queues changed by other engine processes on a shared database, or taken over by this one.
    let mut changes = engine.store.changes();
    loop {
        let heads = match engine.db(|s| s.queue_heads()).await {
            Ok(heads) => heads,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let now = engine.now_millis();
        let mut next_due: Option<i64> = None;
        for head in heads {
            if in_flight.contains(&head.destination_id) {
                continue;
            }
            if head.next_attempt_at <= now {
                in_flight.insert(head.destination_id.clone());
                let (engine, done, stop) = (engine.clone(), done_tx.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let destination = head.destination_id.clone();
                    drain(&engine, head, &stop).await;
                    let _ = done.send(destination);
                });
            } else {
                next_due =
                    Some(next_due.map_or(head.next_attempt_at, |t| t.min(head.next_attempt_at)));
            }
        }
        let sleep = next_due.map_or(IDLE, |t| Duration::from_millis((t - now).max(0) as u64));
        tokio::select! {
            _ = engine.wake.notified() => {}
            _ = changes.changed() => {}
            Some(destination) = done_rx.recv() => {
                in_flight.remove(&destination);
            }
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => break,
        }
    }
    // Let the attempts in flight finish and be recorded, so nothing is sent twice needlessly
    // after a restart; a destination slower than the delivery timeout cannot hold us longer.
    let deadline = engine.config.delivery_timeout + Duration::from_secs(5);
    let finish = async {
        while !in_flight.is_empty() {
            match done_rx.recv().await {
                Some(destination) => {
                    in_flight.remove(&destination);
                }
                None => break,
            }
        }
    };
    if tokio::time::timeout(deadline, finish).await.is_err() {
        tracing::warn!("some deliveries did not finish before shutdown; they will be retried");
    }
}

/// Works one destination's queue from `head` for as long as its heads are accepted: after a
/// success the next head is read (one indexed lookup) and sent at once, so a busy queue does not
/// wait for the scheduler's next round. Returns on a failure (the head now waits for its ladder
/// step), on an empty or paused queue, on a head that is not due, or at shutdown (after the
/// attempt in flight is recorded).
async fn drain(engine: &Engine, mut head: LogRecord, stop: &watch::Receiver<bool>) {
    loop {
        let destination = head.destination_id.clone();
        if !attempt(engine, head, stop).await || *stop.borrow() {
            return;
        }
        let next = engine.db(move |s| s.head_of(&destination)).await;
        match next {
            Ok(Some(next)) if next.next_attempt_at <= engine.now_millis() => head = next,
            _ => return,
        }
    }
}

/// One attempt at the head of a destination's queue, recorded whatever happens. Returns
/// whether the destination accepted it (and the attempt was recorded).
async fn attempt(engine: &Engine, head: LogRecord, stop: &watch::Receiver<bool>) -> bool {
    let attempt_id = uuid::Uuid::new_v4().to_string();
    let started_at = engine.now_millis();
    let outcome = match target(engine, &head).await {
        Ok((name, url, token, credential)) => match engine.client_for(&url).await {
            // Several engines on one database: the queue's lease must outlast this attempt, or
            // another engine could start the same queue's next one meanwhile. Not sending is
            // safe: the head stays due for whoever holds the lease.
            Ok(_) if !engine.store.holds_queue(&head.destination_id) => return false,
            Ok(client) => {
                let body = wharf_protocol::envelope::stamp(
                    &head.body,
                    &wharf_protocol::envelope::Stamp {
                        log_id: &head.id,
                        attempt_id: &attempt_id,
                        source_name: &head.source,
                        destination_id: &head.destination_id,
                        destination_name: &name,
                        now_rfc3339: &rfc3339_text(started_at),
                    },
                );
                crate::app::present::push(
                    engine,
                    &client,
                    &url,
                    &token,
                    credential.as_ref(),
                    &head.content_type,
                    body,
                    engine.config.delivery_timeout,
                    wharf_delivery::push::RESPONSE_EXCERPT_BYTES,
                )
                .await
            }
            Err(reason) => crate::app::present::failed(reason),
        },
        Err(reason) => crate::app::present::failed(reason),
    };
    let accepted = outcome.accepted();
    if outcome.status.is_some() || outcome.error.is_some() {
        engine
            .metrics
            .attempt(accepted, outcome.duration.as_secs_f64());
    }
    alert_if_changed(engine, &head, &outcome).await;
    let next = if accepted {
        AttemptOutcome::Succeeded
    } else {
        let wait = engine
            .config
            .retry_ladder
            .delay_after(head.attempts as usize + 1);
        AttemptOutcome::RetryAt(engine.now_millis() + wait.as_millis() as i64)
    };
    let record = AttemptRecord {
        id: attempt_id.clone(),
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
    match engine.committer.commit(write.clone()).await {
        Ok(()) => accepted,
        // Accepted but not recorded: sending it again would deliver it twice, so the outcome
        // is kept here and recorded once the store is back (the queue waits meanwhile).
        Err(EngineError::Unavailable | EngineError::OutcomeUnknown | EngineError::NoSpace(_))
            if accepted =>
        {
            record_when_back(engine, write, &head.id, &attempt_id, stop).await
        }
        Err(e) => {
            // Not recorded: the head stays due and is tried again (at least once). An
            // unavailable store was logged already, once for the whole outage.
            if matches!(
                e,
                EngineError::Unavailable | EngineError::OutcomeUnknown | EngineError::NoSpace(_)
            ) {
                tracing::debug!(log = %head.id, error = %e, "could not record a delivery attempt");
            } else {
                tracing::error!(log = %head.id, error = %e, "could not record a delivery attempt");
            }
            false
        }
    }
}

/// Longest wait between tries at recording an accepted attempt while the store is down.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(1);

/// Records an accepted attempt whose first commit failed, trying until the store answers or
/// the engine stops. After an unknown outcome the first commit may have landed: the attempt
/// is looked up before each try, so it is never recorded twice. Returns whether it is recorded
/// (if the engine stops first, the message is sent again after the restart: at least once).
async fn record_when_back(
    engine: &Engine,
    write: Write,
    log_id: &str,
    attempt_id: &str,
    stop: &watch::Receiver<bool>,
) -> bool {
    let mut wait = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            tracing::warn!(log = %log_id, "stopping before an accepted delivery could be recorded; it will be sent again");
            return false;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECORD_RETRY_MAX);
        let (log, attempt) = (log_id.to_owned(), attempt_id.to_owned());
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

/// Tells the alert contact when this attempt paused or resumed its destination's queue (see
/// `alerts`). Costs nothing when no alert channel is configured.
async fn alert_if_changed(engine: &Engine, head: &LogRecord, outcome: &PushOutcome) {
    let alerts = &engine.config.alerts;
    if alerts.webhook_url.is_none() && alerts.email_to.is_empty() {
        return;
    }
    let id = head.destination_id.clone();
    let Ok(Some(destination)) = engine.db(move |s| s.destination(&id)).await else {
        return;
    };
    let env_id = destination.environment_id.clone();
    let Ok(Some(environment)) = engine.db(move |s| s.environment(&env_id)).await else {
        return;
    };
    let reason = match (&outcome.status, &outcome.error) {
        (_, Some(error)) => error.clone(),
        (Some(status), None) => format!("the destination answered HTTP {status}"),
        (None, None) => "the delivery failed".to_owned(),
    };
    if let Some(change) = engine.alerts.observe(
        &destination.id,
        environment.flag,
        outcome.accepted(),
        Some(&reason),
    ) {
        engine.alerts.send(crate::app::alerts::Alert {
            change,
            destination_id: destination.id,
            destination_name: destination.name,
            environment: environment.flag,
            log_id: head.id.clone(),
            at: rfc3339_text(engine.now_millis()),
        });
    }
}

/// Where a log goes (the destination's name, endpoint, token and auth credential), or why it
/// cannot go now.
async fn target(
    engine: &Engine,
    head: &LogRecord,
) -> Result<(String, reqwest::Url, String, Option<Credential>), String> {
    let id = head.destination_id.clone();
    let Some(record) = engine
        .db(move |s| s.destination(&id))
        .await
        .map_err(|_| "the destination record could not be read".to_owned())?
    else {
        // Queued by an ingestion that raced the destination's deletion: erase it as the
        // deletion erased the rest (the attempt recorded next finds no log and is dropped).
        let id = head.destination_id.clone();
        if let Err(e) = engine.db(move |s| s.delete_destination(&id)).await {
            tracing::warn!(destination = %head.destination_id, error = %e, "could not erase a deleted destination's log; retrying later");
        }
        return Err("the destination was deleted".to_owned());
    };
    let (url, token, credential) = crate::app::ingest::target(engine, &record).await?;
    Ok((record.name, url, token, credential))
}
