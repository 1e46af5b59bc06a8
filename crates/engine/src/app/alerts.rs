//! How alert notices leave (docs/PROTOCOL.md section 6): a webhook (a JSON POST) and/or an
//! email over SMTP, sent in the background so a slow mail server never delays a delivery; each
//! channel is tried up to three times, and what fails is logged (without credentials). What
//! is worth a notice is decided by the alert rules (`alert_rules`), the paused-queue alerts
//! included; this module also keeps the cheap, in-memory guess of which queues might be held,
//! so the delivery worker asks the rules only when a queue may have paused or moved again.

use crate::config::{AlertConfig, SmtpSecurity};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// Attempts per channel and alert.
const TRIES: usize = 3;
/// How long one webhook call may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where notices go out from, and which queues this process saw fail.
pub(crate) struct Alerts {
    config: AlertConfig,
    failing: Mutex<HashSet<String>>,
    http: reqwest::Client,
}

impl Alerts {
    pub fn new(config: AlertConfig) -> Self {
        Self {
            http: wharf_delivery::client::build(None)
                .expect("the HTTP client's fixed settings are valid"),
            config,
            failing: Mutex::new(HashSet::new()),
        }
    }

    /// Whether an attempt at the head of `destination_id`'s queue (which had failed
    /// `head_attempts` times before) may have paused the queue or moved it again, so the
    /// `queue-paused` rules are worth asking: its first failure as this process sees it, and a
    /// success after failures (the head had failed before, or this process saw the queue fail
    /// and an operator stopped that log). Every other attempt costs no query.
    pub fn queue_may_have_changed(
        &self,
        destination_id: &str,
        accepted: bool,
        head_attempts: i64,
    ) -> bool {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if accepted {
            failing.remove(destination_id) || head_attempts > 0
        } else {
            failing.insert(destination_id.to_owned())
        }
    }

    /// Sends a notice (an alert rule firing or recovering) to its own channels, in the
    /// background: a webhook, and email through the engine's `[smtp]`.
    pub fn send_notice(
        self: &std::sync::Arc<Self>,
        webhook: Option<reqwest::Url>,
        email_to: Vec<String>,
        notice: Notice,
    ) {
        let alerts = self.clone();
        tokio::spawn(async move {
            tracing::warn!(event = notice.event, "alert rule notice");
            if let Some(url) = &webhook {
                alerts.webhook(url, &notice.json, notice.event).await;
            }
            if !email_to.is_empty() {
                alerts
                    .email(&email_to, &notice.subject, &notice.text, notice.event)
                    .await;
            }
        });
    }

    async fn webhook(&self, url: &reqwest::Url, body: &serde_json::Value, event: &'static str) {
        for attempt in 1..=TRIES {
            let sent = self
                .http
                .post(url.clone())
                .timeout(WEBHOOK_TIMEOUT)
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => tracing::warn!(
                    attempt,
                    status = r.status().as_u16(),
                    "the alert webhook refused an alert"
                ),
                Err(e) => {
                    tracing::warn!(attempt, error = %wharf_delivery::client::describe_transport_error(&e), "the alert webhook could not be reached")
                }
            }
            tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
        }
        tracing::error!(event, "giving up on the alert webhook after {TRIES} tries");
    }

    async fn email(&self, to: &[String], subject: &str, text: &str, event: &'static str) {
        use lettre::AsyncTransport;
        let Some(smtp) = &self.config.smtp else {
            tracing::error!(
                event,
                "an alert goes by email but the engine has no [smtp]: configure [smtp] (docs/CONFIG.md)"
            );
            return;
        };
        let message = match build_message(smtp, to, subject, text) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "could not build the alert email");
                return;
            }
        };
        let transport = match transport(smtp) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "could not set up the SMTP client for alerts");
                return;
            }
        };
        for attempt in 1..=TRIES {
            match transport.send(message.clone()).await {
                Ok(_) => return,
                Err(e) => tracing::warn!(attempt, error = %e, "the alert email could not be sent"),
            }
            tokio::time::sleep(Duration::from_secs(attempt as u64)).await;
        }
        tracing::error!(event, "giving up on the alert email after {TRIES} tries");
    }
}

/// An alert rule's notice: what its webhook gets (`json`) and its email says.
#[derive(Debug, Clone)]
pub struct Notice {
    pub event: &'static str,
    pub subject: String,
    pub text: String,
    pub json: serde_json::Value,
}

/// Why an alert email could not be made ready to send. Logged (alerts have no caller to
/// answer); each says which configuration key to correct.
#[derive(Debug, thiserror::Error)]
enum EmailError {
    #[error("smtp.from {0:?} is not an email address: {1}; correct it in the configuration")]
    From(String, lettre::address::AddressError),
    #[error("alert_email {0:?} is not an email address: {1}; correct it in the configuration")]
    To(String, lettre::address::AddressError),
    #[error("the email could not be built: {0}")]
    Build(lettre::error::Error),
    #[error("the SMTP relay {0} cannot be used: {1}; check smtp.host and smtp.security")]
    Relay(String, lettre::transport::smtp::Error),
}

fn build_message(
    smtp: &crate::config::SmtpConfig,
    to: &[String],
    subject: &str,
    text: &str,
) -> Result<lettre::Message, EmailError> {
    let mut builder = lettre::Message::builder()
        .from(
            smtp.from
                .parse()
                .map_err(|e| EmailError::From(smtp.from.clone(), e))?,
        )
        .subject(subject);
    for address in to {
        builder = builder.to(address
            .parse()
            .map_err(|e| EmailError::To(address.clone(), e))?);
    }
    builder
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(text.to_owned())
        .map_err(EmailError::Build)
}

fn transport(
    smtp: &crate::config::SmtpConfig,
) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, EmailError> {
    use lettre::AsyncSmtpTransport;
    use lettre::transport::smtp::authentication::Credentials;
    let builder = match smtp.security {
        SmtpSecurity::None => {
            AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&smtp.host)
        }
        SmtpSecurity::StartTls => {
            AsyncSmtpTransport::<lettre::Tokio1Executor>::starttls_relay(&smtp.host)
                .map_err(|e| EmailError::Relay(smtp.host.clone(), e))?
        }
        SmtpSecurity::Tls => AsyncSmtpTransport::<lettre::Tokio1Executor>::relay(&smtp.host)
            .map_err(|e| EmailError::Relay(smtp.host.clone(), e))?,
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(30)));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_first_failure_and_a_success_after_failures_are_worth_asking() {
        let a = Alerts::new(AlertConfig::default());
        assert!(
            !a.queue_may_have_changed("d1", true, 0),
            "a queue that never failed"
        );
        assert!(
            a.queue_may_have_changed("d1", false, 0),
            "its first failure"
        );
        assert!(!a.queue_may_have_changed("d1", false, 1), "still failing");
        assert!(
            !a.queue_may_have_changed("d2", true, 0),
            "other queues are separate"
        );
        assert!(a.queue_may_have_changed("d1", true, 2), "it moves again");
        assert!(!a.queue_may_have_changed("d1", true, 0));
        assert!(
            a.queue_may_have_changed("d3", true, 4),
            "held before this process started"
        );
    }
}
