//! Forwarding alerts: when the head of a destination has kept failing for `stuck_alert_after`
//! (a poison message holds everything behind it), when it moves again, and when a message is
//! moved to the dead letters by `dead_letter_after`.
//!
//! Each is logged (stuck and dead-lettered at warn, recovered at info), and POSTed as JSON to
//! `alert_webhook_url` when one is configured, the way the engine alerts a paused queue
//! (`engine::app::alerts`): in the background, so a slow receiver never holds the forwarder,
//! tried up to three times, through `wharf_delivery::push` like every other outbound call
//! (link-local and metadata addresses refused; the receiver is the operator's own, so private
//! addresses are allowed). The body names the destination, the message id, attempts and the
//! last error, never the message's body.

use std::time::Duration;
use wharf_delivery::push::{Credentials, push};
use wharf_delivery::ssrf::{PrivateAccess, pinned_client};

/// Attempts per alert.
const TRIES: u32 = 3;
/// How long one webhook call may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened to a destination's forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The head has failed for `stuck_alert_after`; everything behind it waits.
    Stuck,
    /// The head that was reported stuck was accepted, or moved out of the order.
    Recovered,
    /// `dead_letter_after` moved the head to the dead letters.
    DeadLettered { reason: String },
}

/// One alert about one message at the head of one destination.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    pub change: Change,
    pub destination: String,
    pub message_id: String,
    pub attempts: i64,
    /// Milliseconds since the epoch.
    pub failing_since: Option<i64>,
    pub last_error: Option<String>,
}

impl Alert {
    fn event(&self) -> &'static str {
        match self.change {
            Change::Stuck => "forwarding.stuck",
            Change::Recovered => "forwarding.recovered",
            Change::DeadLettered { .. } => "message.dead_lettered",
        }
    }

    /// The webhook's JSON body.
    pub fn json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "event": self.event(),
            "destination": self.destination,
            "messageId": self.message_id,
            "attempts": self.attempts,
            "failingSince": self.failing_since.map(wharf_store::rfc3339),
            "lastError": self.last_error,
            "at": wharf_store::rfc3339(wharf_store::now_millis()),
        });
        if let Change::DeadLettered { reason } = &self.change {
            body["reason"] = reason.clone().into();
        }
        body
    }
}

/// Where alerts go.
#[derive(Clone)]
pub(crate) struct Alerts {
    webhook: Option<reqwest::Url>,
    /// How long a head may fail before it is reported stuck.
    pub stuck_after: Duration,
}

impl Alerts {
    pub fn new(webhook: Option<reqwest::Url>, stuck_after: Duration) -> Self {
        Alerts {
            webhook,
            stuck_after,
        }
    }

    /// Logs `alert` and sends it to the webhook in the background.
    pub fn send(&self, alert: Alert) {
        let (destination, message_id, attempts) =
            (&alert.destination, &alert.message_id, alert.attempts);
        let error = alert.last_error.as_deref().unwrap_or("");
        match &alert.change {
            Change::Stuck => tracing::warn!(
                %destination, %message_id, attempts, last_error = %error,
                "forwarding is stuck: the application keeps refusing this message and every later one waits behind it; fix the application, or move it aside with `wharf destination skip`"
            ),
            Change::Recovered => tracing::info!(
                %destination, %message_id, attempts, "forwarding moves again"
            ),
            Change::DeadLettered { reason } => tracing::warn!(
                %destination, %message_id, attempts, last_error = %error, %reason,
                "moved a message the application keeps refusing to the dead letters; later messages go on (list them with `wharf destination dead-letters`, replay with `wharf destination replay`)"
            ),
        }
        let Some(url) = self.webhook.clone() else {
            return;
        };
        let body = alert.json().to_string().into_bytes();
        tokio::spawn(async move {
            for attempt in 1..=TRIES {
                let outcome = match pinned_client(&url, &PrivateAccess::all(true)).await {
                    Ok(client) => {
                        let outcome = push(
                            &client,
                            &url,
                            Credentials::none(),
                            "application/json",
                            body.clone(),
                            WEBHOOK_TIMEOUT,
                            1024,
                        )
                        .await;
                        if outcome.accepted() {
                            return;
                        }
                        outcome.describe("the alert webhook")
                    }
                    Err(e) => e.to_string(),
                };
                tracing::warn!(attempt, error = %outcome, "could not send a forwarding alert to alert_webhook_url");
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
            }
        });
    }
}
