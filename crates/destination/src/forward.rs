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
//! Several destination servers on one PostgreSQL database: each destination is forwarded by one
//! of them at a time, the holder of its forwarder lease (`Inbox::holds_forwarder`, checked
//! before every attempt); the others wait and take over when it stops or dies.

use crate::config::DestinationConfig;
use crate::error_chain;
use http::header::CONTENT_TYPE;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wharf_store::{Inbox, StoredMessage};

/// Header with Wharf's identifier of the message (stable across forwarding attempts).
pub const MESSAGE_ID_HEADER: &str = "wharf-message-id";
/// Header with the message's duplicate key, for an application that de-duplicates itself.
pub const DEDUP_KEY_HEADER: &str = "wharf-dedup-key";
/// Header with the destination's configured name (percent-encoded if not plain ASCII).
pub const DESTINATION_HEADER: &str = "wharf-destination";

/// First wait after a failed attempt; doubled after each further failure up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Makes a configured name safe for an HTTP header: visible ASCII and spaces pass, anything
/// else is percent-encoded.
pub fn header_safe(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

/// Forwards `destination`'s messages until `shutdown` turns true.
pub(crate) async fn run(
    inbox: Inbox,
    http: reqwest::Client,
    destination: DestinationConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(url) = destination.forward_url.clone() else {
        return;
    };
    let mut committed = inbox.subscribe();
    // Everything up to `cursor` was accepted by the application in this run. The inbox is the
    // truth across runs; the cursor only stops us re-reading rows whose `forwarded` mark is
    // still in the writer's queue.
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
        match deliver(
            &inbox,
            &http,
            &destination,
            &url,
            &message,
            &mut shutdown,
            &mut marks,
        )
        .await
        {
            Delivery::Accepted => cursor = message.id,
            Delivery::LeaseLost => {}
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
    /// This process may no longer forward the destination (another took it over).
    LeaseLost,
    Shutdown,
}

/// Sends one message until the application accepts it, shutdown comes, or the lease is lost.
async fn deliver(
    inbox: &Inbox,
    http: &reqwest::Client,
    destination: &DestinationConfig,
    url: &reqwest::Url,
    message: &StoredMessage,
    shutdown: &mut watch::Receiver<bool>,
    marks: &mut JoinSet<()>,
) -> Delivery {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if !inbox.holds_forwarder(&destination.name) {
            return Delivery::LeaseLost;
        }
        let attempt = http
            .post(url.clone())
            .timeout(destination.forward_timeout)
            .header(CONTENT_TYPE, &message.content_type)
            .header(MESSAGE_ID_HEADER, &message.message_id)
            .header(DEDUP_KEY_HEADER, header_safe(&message.duplicate_key))
            .header(DESTINATION_HEADER, header_safe(&destination.name))
            .body(message.body.clone())
            .send();
        let outcome = tokio::select! {
            r = attempt => r,
            _ = shutdown.changed() => return Delivery::Shutdown,
        };
        let failure = match outcome {
            Ok(response) if response.status().is_success() => {
                // The mark is not awaited: the cursor already keeps this run from sending it
                // again, and if the process dies before the mark commits, resending it after the
                // restart is exactly at-least-once.
                let inbox = inbox.clone();
                let id = message.id;
                marks.spawn(async move {
                    if let Err(e) = inbox.mark_forwarded(id).await {
                        tracing::warn!(error = %e, id, "could not record a forwarded message; it will be sent again after a restart");
                    }
                });
                return Delivery::Accepted;
            }
            Ok(response) => format!("the application answered HTTP {}", response.status()),
            Err(e) if e.is_timeout() => {
                format!("no answer within {:?}", destination.forward_timeout)
            }
            Err(e) => error_chain(&e),
        };
        tracing::warn!(
            destination = %destination.name, message_id = %message.message_id, error = %failure,
            retry_in = ?backoff, "forwarding failed; later messages wait behind this one"
        );
        if let Err(e) = inbox.record_forward_failure(message.id, failure).await {
            tracing::warn!(error = %e, "could not record a forwarding failure");
        }
        if sleep_or_shutdown(backoff, shutdown).await {
            return Delivery::Shutdown;
        }
        backoff = (backoff * 2).min(destination.forward_max_backoff);
    }
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
