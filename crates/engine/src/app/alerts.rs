//! Alerts (docs/PROTOCOL.md section 6): when a destination's queue pauses (a delivery failed, so
//! the queue is held and the message retried) and when it recovers (the held message, or the
//! next one after an operator stopped it, was accepted), the organization's alert contact is
//! told, by a webhook (a JSON POST) and/or an email over SMTP.
//!
//! Only queues of the environments in `alert_environments` alert (Production by default):
//! Development destinations fail all day while someone works on them. Alerts are sent in the
//! background, so a slow mail server never delays a delivery; each channel is tried up to three
//! times, and what fails is logged (without credentials).

use crate::config::{AlertConfig, SmtpSecurity};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use wharf_protocol::Environment;

/// Attempts per channel and alert.
const TRIES: usize = 3;
/// How long one webhook call may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What happened to a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A delivery failed and the queue is held.
    Paused { reason: String },
    /// A delivery succeeded after the queue was held.
    Recovered,
}

/// One alert.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    pub change: Change,
    pub destination_id: String,
    pub destination_name: String,
    pub environment: Environment,
    pub log_id: String,
    pub at: String,
}

impl Alert {
    fn event(&self) -> &'static str {
        match self.change {
            Change::Paused { .. } => "queue.paused",
            Change::Recovered => "queue.recovered",
        }
    }

    /// The webhook's JSON body.
    pub fn json(&self, organization: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "event": self.event(),
            "organization": organization,
            "destination": {"id": self.destination_id, "name": self.destination_name},
            "environment": self.environment,
            "logId": self.log_id,
            "at": self.at,
        });
        if let Change::Paused { reason } = &self.change {
            body["reason"] = reason.clone().into();
        }
        body
    }

    fn subject(&self) -> String {
        match self.change {
            Change::Paused { .. } => format!(
                "[Wharf] {} queue paused: {}",
                self.environment, self.destination_name
            ),
            Change::Recovered => format!(
                "[Wharf] {} queue recovered: {}",
                self.environment, self.destination_name
            ),
        }
    }

    fn text(&self) -> String {
        match &self.change {
            Change::Paused { reason } => format!(
                "Deliveries to destination {} ({}) in {} are failing, so its queue is paused: \
                 new messages wait behind log {}, which is retried on the retry ladder.\n\n\
                 Last failure: {reason}\nAt: {}\n\nResend or stop the log from the dashboard or \
                 the API once you know why.\n",
                self.destination_name, self.destination_id, self.environment, self.log_id, self.at
            ),
            Change::Recovered => format!(
                "Destination {} ({}) in {} accepted log {}: its queue is moving again.\nAt: {}\n",
                self.destination_name, self.destination_id, self.environment, self.log_id, self.at
            ),
        }
    }
}

/// Which queues are paused (as far as this process has seen), and where alerts go.
pub(crate) struct Alerts {
    config: AlertConfig,
    organization: String,
    paused: Mutex<HashSet<String>>,
    http: reqwest::Client,
}

impl Alerts {
    pub fn new(config: AlertConfig, organization: String) -> Self {
        Self {
            http: wharf_delivery::client::build(None)
                .expect("the HTTP client's fixed settings are valid"),
            config,
            organization,
            paused: Mutex::new(HashSet::new()),
        }
    }

    /// Records a delivery's outcome for a queue; returns the alert to send, if the queue's
    /// state changed and its environment alerts.
    pub fn observe(
        &self,
        destination_id: &str,
        environment: Environment,
        accepted: bool,
        reason: Option<&str>,
    ) -> Option<Change> {
        if !self.config.environments.contains(&environment) {
            return None;
        }
        let mut paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        match accepted {
            false if paused.insert(destination_id.to_owned()) => Some(Change::Paused {
                reason: reason.unwrap_or("the delivery failed").to_owned(),
            }),
            true if paused.remove(destination_id) => Some(Change::Recovered),
            _ => None,
        }
    }

    /// Sends `alert` on every configured channel, in the background.
    pub fn send(self: &std::sync::Arc<Self>, alert: Alert) {
        let alerts = self.clone();
        tokio::spawn(async move {
            tracing::warn!(event = alert.event(), destination = %alert.destination_id, environment = %alert.environment, "queue alert");
            if let Some(url) = &alerts.config.webhook_url {
                alerts
                    .webhook(url, &alert.json(&alerts.organization), alert.event())
                    .await;
            }
            if !alerts.config.email_to.is_empty() {
                alerts
                    .email(
                        &alerts.config.email_to,
                        &alert.subject(),
                        &alert.text(),
                        alert.event(),
                    )
                    .await;
            }
        });
    }

    /// Sends a notice (an alert rule firing or recovering) to its own channels, in the
    /// background, with the same tries as a queue alert: a webhook, and email through the
    /// engine's `[smtp]`.
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

    fn alerts(environments: &[&str]) -> Alerts {
        Alerts::new(
            AlertConfig {
                environments: environments.iter().map(|e| e.parse().unwrap()).collect(),
                ..AlertConfig::default()
            },
            "Acme".into(),
        )
    }

    #[tokio::test]
    async fn a_queue_alerts_once_when_it_pauses_and_once_when_it_recovers() {
        let a = alerts(&["Production"]);
        assert_eq!(a.observe("d1", Environment::Production, true, None), None);
        assert!(
            matches!(a.observe("d1", Environment::Production, false, Some("HTTP 500")), Some(Change::Paused { reason }) if reason == "HTTP 500")
        );
        assert_eq!(
            a.observe("d1", Environment::Production, false, Some("HTTP 500")),
            None,
            "still paused"
        );
        assert_eq!(
            a.observe("d2", Environment::Production, true, None),
            None,
            "other queues are separate"
        );
        assert_eq!(
            a.observe("d1", Environment::Production, true, None),
            Some(Change::Recovered)
        );
        assert_eq!(a.observe("d1", Environment::Production, true, None), None);
        assert_eq!(
            a.observe("d3", Environment::Development, false, Some("x")),
            None,
            "Development does not alert"
        );
    }
}
