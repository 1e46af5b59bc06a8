//! The audit log: who read PHI, when, and from which address, recorded by the core before the
//! PHI leaves it. Both ways PHI is read (the management API's log read, the dashboard's "Show
//! PHI") go through [`crate::app::logs::read_phi`], which records the read here first; if the
//! record cannot be written, the PHI is not returned (503). The store keeps the log
//! append-only; the API exports it and the dashboard shows it.

use super::logs::Page;
use super::{Engine, EngineError};
use std::net::IpAddr;
use wharf_store::engine::AuditRecord;

/// Reading a log's PHI: its body, its attempts' answers (a query's answer among them).
pub const PHI_READ: &str = "log.phi.read";

/// What kind of caller an [`Actor`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A dashboard operator account (`[[operators]]`, or `admin` for `dashboard_password_hash`).
    Operator,
    /// A named management key (`api_keys`), over the API or signed in to the dashboard.
    ApiKey,
    /// An OAuth API key's access token (`/v2/auth/token`), named by its client ID.
    OAuthClient,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Operator => "operator",
            ActorKind::ApiKey => "api_key",
            ActorKind::OAuthClient => "oauth_client",
        }
    }
}

/// Who is asking: the name the audit log records, and whether they may see PHI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorKind,
    pub name: String,
    /// Operators as configured (`may_view_phi`); management keys always may: they could read
    /// every log over the API anyway.
    pub may_view_phi: bool,
}

/// An actor and the client address their request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub actor: Actor,
    pub address: Option<IpAddr>,
}

impl Access {
    /// The named management key `index` of `api_keys`.
    pub fn api_key(engine: &Engine, index: usize, address: Option<IpAddr>) -> Access {
        let name = engine
            .config
            .api_key_names
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("key-{}", index + 1));
        Access {
            actor: Actor {
                kind: ActorKind::ApiKey,
                name,
                may_view_phi: true,
            },
            address,
        }
    }
}

impl Access {
    /// The holder of an access token of the OAuth API key `client_id`. It may read PHI, as a
    /// management key may: the token authorizes the whole Platform API.
    pub fn oauth_client(client_id: &str, address: Option<IpAddr>) -> Access {
        Access {
            actor: Actor {
                kind: ActorKind::OAuthClient,
                name: client_id.to_owned(),
                may_view_phi: true,
            },
            address,
        }
    }
}

/// Appends an entry saying `access` did `action` to `subject`. Any failure is `Unavailable`
/// (503): a caller about to return PHI must not return it unrecorded, whatever the reason.
pub async fn record(
    engine: &Engine,
    access: &Access,
    action: &'static str,
    subject: &str,
) -> Result<(), EngineError> {
    let entry = AuditRecord {
        seq: 0,
        organization_id: engine.organization.id.clone(),
        at: engine.now_millis(),
        actor_kind: access.actor.kind.as_str().to_owned(),
        actor_name: access.actor.name.clone(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        address: access.address.map(|a| a.to_string()),
    };
    engine
        .db(move |s| s.append_audit(&entry))
        .await
        .map_err(|e| match e {
            EngineError::Unavailable | EngineError::NoSpace(_) => e,
            other => {
                tracing::error!(error = %other, action, subject, "the audit log could not be written; refusing the read");
                EngineError::Unavailable
            }
        })
}

/// A page of audit entries, newest first, and whether another page follows.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub entries: Vec<AuditRecord>,
    pub page: Page,
    pub has_next: bool,
}

/// The organization's audit entries at or after `since` (ms since the epoch), newest first.
pub async fn list(
    engine: &Engine,
    since: Option<i64>,
    page: Page,
) -> Result<AuditPage, EngineError> {
    let org_id = engine.organization.id.clone();
    let (entries, has_next) = page
        .read(async |offset, limit| {
            engine
                .db(move |s| s.audit(&org_id, since, offset, limit))
                .await
        })
        .await?;
    Ok(AuditPage {
        entries,
        page,
        has_next,
    })
}
