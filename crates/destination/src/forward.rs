//! The forwarder: hands kept messages to the customer's application, in arrival order.
//!
//! One task per destination with a `forward_url`. It takes the oldest message still marked
//! `received`, POSTs it with its original bytes and content type, and moves on only after a
//! 2xx; anything else is retried with capped exponential backoff while later messages wait, so
//! the application sees each destination's messages in the order they arrived (FIFO). Progress
//! lives in the inbox (`forwarded` status), so a restart resumes where it stopped; a message
//! whose 2xx was not yet recorded when the process died is sent again (at least once, never
//! less). Malformed messages are never forwarded.
//!
//! Each attempt goes through `wharf_delivery::push`, the engine's own sending path: the same
//! timeout handling, transport error wording and address rules (the `forward_url` is resolved
//! and the connection pinned to the checked address, re-resolved every minute; link-local
//! and cloud metadata addresses are refused, private ones allowed, since the application is
//! usually on the same machine or network).
//!
//! Poison messages: strict order holds by default, so a message the application keeps
//! refusing holds everything behind it. The forwarder records every failed attempt on the row
//! (attempts, first failure, last error: what `/_wharf` and `/metrics` show), reports the head
//! stuck once it has failed for `stuck_alert_after` (`alerts`), and moves it to the dead
//! letters itself only when the destination sets `dead_letter_after`. An operator's skip or
//! replay happens beside it, in the inbox: while retrying, the forwarder looks at the row at
//! least every second and moves on when the message is no longer waiting, and it reads the
//! head again from the start of the order whenever none of its own `forwarded` marks is still
//! being committed, so a replayed message (older than what it last sent) is found.
//!
//! Several destination servers on one PostgreSQL database: each destination is forwarded by one
//! of them at a time, the holder of its forwarder lease (`Inbox::holds_forwarder`, checked
//! before every attempt); the others wait and take over when it stops or dies.

use crate::alerts::{Alert, Alerts, Change};
use crate::config::DestinationConfig;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use wharf_delivery::push::{Credentials, push};
use wharf_delivery::ssrf::{PrivateAccess, Refused, pinned_client};
use wharf_store::{Inbox, MessageStatus, StoredMessage};

/// Header with Wharf's identifier of the message (stable across forwarding attempts).
pub const MESSAGE_ID_HEADER: &str = "wharf-message-id";
/// Header with the message's duplicate key, for an application that de-duplicates itself.
pub const DEDUP_KEY_HEADER: &str = "wharf-dedup-key";
/// Header with the destination's configured name (percent-encoded if not plain ASCII).
pub const DESTINATION_HEADER: &str = "wharf-destination";

/// First wait after a failed attempt; doubled after each further failure up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How long a resolved and checked `forward_url` address is used before it is resolved again
/// (the engine's `client_ttl` default).
const CLIENT_TTL: Duration = Duration::from_secs(60);
/// How often a waiting forwarder looks at the inbox without being woken: an operator's replay
/// from another process (SQLite) sends no notification.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// How much of the application's answer is read (and dropped): enough to reuse the
/// connection after a short answer. Answers are not kept: they may carry PHI.
const ANSWER_READ: usize = 4096;

/// Makes a configured name safe for an HTTP header: visible ASCII and spaces pass, anything
/// else is percent-encoded.
pub fn header_safe(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

/// The outbound client for `url`: checked and pinned, reused for [`CLIENT_TTL`].
struct Client {
    url: reqwest::Url,
    pinned: Option<(reqwest::Client, Instant)>,
}

impl Client {
    async fn get(&mut self) -> Result<reqwest::Client, Refused> {
        if let Some((client, made)) = &self.pinned
            && made.elapsed() < CLIENT_TTL
        {
            return Ok(client.clone());
        }
        let client = pinned_client(&self.url, &PrivateAccess::all(true)).await?;
        self.pinned = Some((client.clone(), Instant::now()));
        Ok(client)
    }

    /// Forgets the pinned address (after a transport failure), so the next attempt resolves
    /// the name again.
    fn forget(&mut self) {
        self.pinned = None;
    }
}

/// Forwards `destination`'s messages until `shutdown` turns true.
pub(crate) async fn run(
    inbox: Inbox,
    alerts: Alerts,
    destination: DestinationConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(url) = destination.forward_url.clone() else {
        return;
    };
    let mut client = Client { url, pinned: None };
    let mut committed = inbox.subscribe();
    // Everything up to `cursor` was accepted by the application in this run. The inbox is the
    // truth across runs; the cursor only stops us re-reading rows whose `forwarded` mark is
    // still in the writer's queue, so it goes back to the start whenever no mark is.
    let mut cursor = 0;
    // The `forwarded` marks still being committed: awaited before the lease is given up.
    let mut marks = JoinSet::new();
    inbox.want_forwarder(&destination.name);
    tracing::info!(destination = %destination.name, "forwarder started");
    loop {
        if *shutdown.borrow() {
            break;
        }
        while marks.try_join_next().is_some() {}
        if marks.is_empty() {
            cursor = 0;
        }
        // Mark what is in the inbox now as seen before reading, so a commit that lands after the
        // read wakes us instead of being missed.
        committed.borrow_and_update();
        if !inbox.holds_forwarder(&destination.name) {
            // Another process forwards this destination; the change comes when the lease is
            // ours, the timer when it only expired.
            let open = tokio::select! {
                r = committed.changed() => r.is_ok(),
                r = shutdown.changed() => r.is_ok(),
                _ = tokio::time::sleep(Duration::from_secs(1)) => true,
            };
            if !open {
                break;
            }
            continue;
        }
        let next = {
            let reader = inbox.reader().clone();
            let name = destination.name.clone();
            tokio::task::spawn_blocking(move || reader.next_to_forward(&name, cursor)).await
        };
        let message = match next {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => {
                // A closed channel means the writer or the server is gone: stop.
                let open = tokio::select! {
                    r = committed.changed() => r.is_ok(),
                    r = shutdown.changed() => r.is_ok(),
                    _ = tokio::time::sleep(LOOK_AGAIN) => true,
                };
                if !open {
                    break;
                }
                continue;
            }
            Ok(Err(e)) => {
                tracing::error!(destination = %destination.name, error = %e, "forwarder cannot read the inbox; retrying");
                if sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await {
                    break;
                }
                continue;
            }
            Err(join) => {
                tracing::error!(destination = %destination.name, error = %join, "forwarder read task failed");
                continue;
            }
        };
        let forwarder = Forwarder {
            inbox: &inbox,
            alerts: &alerts,
            destination: &destination,
        };
        match forwarder
            .deliver(&mut client, &message, &mut shutdown, &mut marks)
            .await
        {
            Delivery::Accepted => cursor = message.id,
            Delivery::MovedOut | Delivery::LeaseLost => {}
            Delivery::Shutdown => break,
        }
    }
    while marks.join_next().await.is_some() {}
    inbox.release_forwarder(&destination.name).await;
    tracing::info!(destination = %destination.name, "forwarder stopped");
}

/// How sending one message ended.
enum Delivery {
    Accepted,
    /// It is no longer waiting: moved to the dead letters (by `dead_letter_after` or an
    /// operator). The next message is the head now.
    MovedOut,
    /// This process may no longer forward the destination (another took it over).
    LeaseLost,
    Shutdown,
}

struct Forwarder<'a> {
    inbox: &'a Inbox,
    alerts: &'a Alerts,
    destination: &'a DestinationConfig,
}

impl Forwarder<'_> {
    /// Sends one message until the application accepts it, it leaves the forwarding order,
    /// shutdown comes, or the lease is lost.
    async fn deliver(
        &self,
        client: &mut Client,
        message: &StoredMessage,
        shutdown: &mut watch::Receiver<bool>,
        marks: &mut JoinSet<()>,
    ) -> Delivery {
        let destination = self.destination;
        let headers = [
            (MESSAGE_ID_HEADER.to_owned(), message.message_id.clone()),
            (
                DEDUP_KEY_HEADER.to_owned(),
                header_safe(&message.duplicate_key),
            ),
            (
                DESTINATION_HEADER.to_owned(),
                header_safe(&destination.name),
            ),
        ];
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = message.forward_attempts;
        let mut first_failed_at = message.first_failed_at;
        // Reported stuck already (by this run): say so again when it moves.
        let mut reported = false;
        loop {
            if !self.inbox.holds_forwarder(&destination.name) {
                return Delivery::LeaseLost;
            }
            let attempt = async {
                // Said as the attempt's error, like the application's own answers.
                let http = client.get().await.map_err(|e| e.to_string())?;
                let outcome = push(
                    &http,
                    &client.url,
                    Credentials::headers(&headers),
                    &message.content_type,
                    message.body.clone(),
                    destination.forward_timeout,
                    ANSWER_READ,
                )
                .await;
                if outcome.accepted() {
                    Ok(())
                } else {
                    if outcome.status.is_none() {
                        client.forget();
                    }
                    Err(outcome.describe("the application"))
                }
            };
            let outcome = tokio::select! {
                r = attempt => r,
                _ = shutdown.changed() => return Delivery::Shutdown,
            };
            let failure = match outcome {
                Ok(()) => {
                    // The mark is not awaited: the cursor already keeps this run from sending it
                    // again, and if the process dies before the mark commits, resending it after
                    // the restart is exactly at-least-once.
                    let inbox = self.inbox.clone();
                    let id = message.id;
                    marks.spawn(async move {
                        if let Err(e) = inbox.mark_forwarded(id).await {
                            tracing::warn!(error = %e, id, "could not record a forwarded message; it will be sent again after a restart");
                        }
                    });
                    if reported {
                        self.alert(
                            Change::Recovered,
                            message,
                            attempts + 1,
                            first_failed_at,
                            None,
                        );
                    }
                    return Delivery::Accepted;
                }
                Err(failure) => failure,
            };
            attempts += 1;
            let now = wharf_store::now_millis();
            let first = *first_failed_at.get_or_insert(now);
            let failing_for = Duration::from_millis(u64::try_from(now - first).unwrap_or(0));
            let dead_letter = destination
                .dead_letter_after
                .and_then(|after| after.reason(attempts, failing_for));
            tracing::warn!(
                destination = %destination.name, message_id = %message.message_id, error = %failure,
                attempts, retry_in = ?backoff, "forwarding failed; later messages wait behind this one"
            );
            if let Err(e) = self
                .inbox
                .record_forward_failure(message.id, failure.clone(), dead_letter.clone())
                .await
            {
                tracing::warn!(error = %e, "could not record a forwarding failure");
            }
            if let Some(reason) = dead_letter {
                self.alert(
                    Change::DeadLettered { reason },
                    message,
                    attempts,
                    first_failed_at,
                    Some(failure),
                );
                return Delivery::MovedOut;
            }
            if !reported && failing_for >= self.alerts.stuck_after {
                reported = true;
                self.alert(
                    Change::Stuck,
                    message,
                    attempts,
                    first_failed_at,
                    Some(failure),
                );
            }
            match self.wait(backoff, message, shutdown).await {
                Wait::Retry => {}
                Wait::MovedOut => {
                    tracing::info!(
                        destination = %destination.name, message_id = %message.message_id,
                        "the message left the forwarding order (an operator moved it); going on with the next"
                    );
                    if reported {
                        self.alert(Change::Recovered, message, attempts, first_failed_at, None);
                    }
                    return Delivery::MovedOut;
                }
                Wait::Shutdown => return Delivery::Shutdown,
            }
            backoff = (backoff * 2).min(destination.forward_max_backoff);
        }
    }

    fn alert(
        &self,
        change: Change,
        message: &StoredMessage,
        attempts: i64,
        failing_since: Option<i64>,
        last_error: Option<String>,
    ) {
        self.alerts.send(Alert {
            change,
            destination: self.destination.name.clone(),
            message_id: message.message_id.clone(),
            attempts,
            failing_since,
            last_error,
        });
    }

    /// Waits `backoff` before the next attempt, looking at the message's row at least every
    /// [`LOOK_AGAIN`]: an operator may move it out of the order meanwhile.
    async fn wait(
        &self,
        backoff: Duration,
        message: &StoredMessage,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Wait {
        let until = Instant::now() + backoff;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if sleep_or_shutdown(left.min(LOOK_AGAIN), shutdown).await {
                return Wait::Shutdown;
            }
            let reader = self.inbox.reader().clone();
            let id = message.message_id.clone();
            let status = tokio::task::spawn_blocking(move || reader.get(&id)).await;
            // A read that fails leaves it waiting: the attempt itself will tell.
            if let Ok(Ok(row)) = status
                && row.is_none_or(|m| m.status != MessageStatus::Received)
            {
                return Wait::MovedOut;
            }
            if Instant::now() >= until {
                return Wait::Retry;
            }
        }
    }
}

enum Wait {
    Retry,
    MovedOut,
    Shutdown,
}

/// Sleeps; returns true if shutdown was requested meanwhile.
async fn sleep_or_shutdown(duration: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_safe_names() {
        assert_eq!(header_safe("Acme Scheduling"), "Acme Scheduling");
        assert_eq!(header_safe("Clínica"), "Cl%C3%ADnica");
        assert_eq!(header_safe("a\nb"), "a%0Ab");
    }
}
