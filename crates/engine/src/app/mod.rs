//! The engine's core: its context ([`Engine`]: store, configuration with the secrets' master
//! key, organization, group committer, outbound clients, credential presenter, clock) and its
//! use cases, in the engine's typed domain.
//!
//! The HTTP API (`crate::api`), the dashboard (`crate::dashboard`) and the delivery worker
//! (`crate::worker`) all call this layer and none of them imports another; nothing here knows
//! about HTTP routes, JSON envelopes or HTML. Every use case answers with an [`EngineError`]
//! when it cannot be done, and `crate::http` maps that error to a status once for every caller.
//!
//! * [`destinations`]: create, change, move, delete, Verify and Save.
//! * [`credentials`]: auth credentials: strategy fields checked, secrets sealed.
//! * [`ingest`]: a source's message: authenticated, classified, routed by its subscriptions
//!   (and their filters), queued durably or relayed.
//! * [`apikeys`]: OAuth API keys (JWK sets or JWKS URLs) per environment.
//! * [`token`]: `/v2/auth/token`: client assertions exchanged for five-minute bearer tokens,
//!   and those tokens checked.
//! * [`sources`]: sources (API-made with an `apiKey` shown once, or from `[[sources]]`), and
//!   who a request's bearer credential says is sending.
//! * [`subscriptions`]: the routing rule (source, destination, data model), pause and resume,
//!   and each subscription's filter.
//! * [`logs`]: list, read (without PHI, or with it: recorded in the audit log first), stop,
//!   resend.
//! * [`audit`]: who read PHI, when, from where (append-only).
//! * [`queues`]: a destination's queue state; operator pause and resume.
//! * [`present`]: presenting a linked auth credential on an outgoing request.
//! * [`commit`]: group commit of ingested logs and attempts.
//! * [`signals`]: new logs and operator changes told to the delivery worker; destination
//!   records kept at hand for ingestion.
//! * [`alerts`]: queue paused / recovered notifications.
//! * [`error`]: [`EngineError`], and the store's failures logged once per state change.

pub mod alert_rules;
pub mod alerts;
pub mod apikeys;
pub mod audit;
pub mod commit;
pub mod credentials;
pub mod destinations;
pub mod error;
pub mod ingest;
pub mod logs;
pub mod present;
pub mod queues;
pub mod retention;
pub mod signals;
pub mod sources;
mod store_threads;
pub mod subscriptions;
pub mod token;
pub mod traffic;

pub use error::{EngineError, SendError};

use crate::config::EngineConfig;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use wharf_auth::clock::Clock;
use wharf_store::engine::{DestinationRecord, EngineStore, Organization};

/// The engine's context: what every use case needs. Cheap to clone.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

pub struct Inner {
    pub store: EngineStore,
    pub config: EngineConfig,
    pub organization: Organization,
    /// What the delivery worker is told: new logs per destination, operator changes.
    pub signals: signals::QueueSignals,
    pub committer: commit::Committer,
    /// Outbound clients per endpoint, pinned to an SSRF-checked address, with their creation
    /// time: reused (keep-alive) for `config.client_ttl` (60 s by default), then resolved and
    /// checked again.
    clients:
        std::sync::Mutex<std::collections::HashMap<String, (reqwest::Client, std::time::Instant)>>,
    /// Access tokens and keys of auth credentials, for presenting them on requests.
    pub presenter: present::Presenter,
    pub metrics: crate::metrics::EngineMetrics,
    pub alerts: Arc<alerts::Alerts>,
    /// Set by the delivery worker while it runs (for `/readyz`).
    pub worker_running: std::sync::atomic::AtomicBool,
    /// Store failures, logged once per state change (see [`error::StoreHealth`]).
    pub store_health: error::StoreHealth,
    /// What every timestamp the core writes, and every credential it presents, is judged by.
    pub clock: Arc<dyn Clock>,
    /// Where [`Engine::db`] runs store operations.
    store_threads: store_threads::StoreThreads,
    /// The token endpoint's fetched JWKS and used `jti`s.
    pub oauth: token::OAuth,
    /// Senders authenticated by a source key, kept a second.
    pub senders: sources::SenderCache,
    /// Sources' routes (subscriptions with filters) by data model, kept a second.
    pub routes: subscriptions::RouteCache,
}

impl Inner {
    /// A client for `url`: checked and pinned, reused while fresh.
    pub async fn client_for(
        &self,
        url: &reqwest::Url,
    ) -> Result<reqwest::Client, wharf_delivery::ssrf::Refused> {
        let key = url.origin().ascii_serialization();
        if let Some((client, made)) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && made.elapsed() < self.config.client_ttl
        {
            return Ok(client.clone());
        }
        let client = self.fresh_client(url).await?;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (client.clone(), std::time::Instant::now()));
        Ok(client)
    }

    /// A new client for `url`: its host resolved now, every address checked, the connection
    /// pinned to the checked one (Verify and Save always uses a fresh one).
    pub async fn fresh_client(
        &self,
        url: &reqwest::Url,
    ) -> Result<reqwest::Client, wharf_delivery::ssrf::Refused> {
        wharf_delivery::ssrf::pinned_client_with(
            &self.config.resolver,
            url,
            &self.config.private_endpoints,
        )
        .await
    }

    /// Whether the store's filesystem has room (1 MiB) for writes: SQLite's data directory;
    /// always on PostgreSQL, whose own answer to a write says.
    pub fn has_room(&self) -> bool {
        self.config.database_url.is_some()
            || wharf_store::free_bytes(&self.config.data_dir).is_none_or(|free| free >= 1 << 20)
    }

    /// The engine's public base URL (`public_url`, else `http://` + the listening address).
    pub fn public_url(&self) -> String {
        self.config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.config.listen))
    }
}

impl Engine {
    /// The engine's context on `clock` (the system's, `wharf_auth::clock::SystemClock`, when
    /// serving).
    pub fn new(
        store: EngineStore,
        config: EngineConfig,
        organization: Organization,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let metrics = crate::metrics::EngineMetrics::new();
        let alerts = Arc::new(alerts::Alerts::new(config.alerts.clone()));
        let store_health = error::StoreHealth::new(
            &wharf_store::Database::from_config(
                &config.data_dir,
                config.database_url.as_ref().map(|u| u.as_str()),
            ),
            metrics.store_refused_no_space.clone(),
        );
        Engine(Arc::new(Inner {
            store: store.clone(),
            config,
            organization,
            signals: Default::default(),
            committer: commit::Committer::start(
                store.clone(),
                metrics.batch_sizes.clone(),
                store_health.clone(),
            ),
            clients: Default::default(),
            presenter: Default::default(),
            metrics,
            alerts,
            worker_running: Default::default(),
            store_health,
            clock,
            store_threads: Default::default(),
            oauth: Default::default(),
            senders: Default::default(),
            routes: Default::default(),
        }))
    }

    /// Runs a store operation off the async threads, on the store's own threads
    /// ([`store_threads`]). A failure becomes an [`EngineError`] (an unavailable store is 503,
    /// never 500) and is logged once per state change.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EngineStore) -> Result<T, wharf_store::StoreError> + Send + 'static,
    ) -> Result<T, EngineError> {
        let inner = self.0.clone();
        let (answer, result) = tokio::sync::oneshot::channel();
        self.store_threads.run(Box::new(move || {
            let _ = answer.send(f(&inner.store));
        }))?;
        let result = result
            .await
            .map_err(|_| EngineError::Internal("a store operation panicked".to_owned()))?;
        match result {
            Ok(value) => {
                self.store_health.succeeded();
                Ok(value)
            }
            Err(e) => Err(self.store_health.failed(e)),
        }
    }

    /// Now, in milliseconds since the epoch, by the engine's clock.
    pub fn now_millis(&self) -> i64 {
        self.clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// The record of a destination, read within the last [`signals::RECORD_TTL`] (for the
    /// paths every message takes: ingestion and delivery).
    pub async fn recent_destination(
        &self,
        id: &str,
    ) -> Result<Option<Arc<DestinationRecord>>, EngineError> {
        if let Some(record) = self.signals.record(id) {
            return Ok(Some(record));
        }
        let epoch = self.signals.epoch();
        let lookup = id.to_owned();
        let record = self
            .db(move |s| s.destination(&lookup))
            .await?
            .map(Arc::new);
        if let Some(record) = &record {
            self.signals.keep_record(record.clone(), epoch);
        }
        Ok(record)
    }

    /// The record of a destination of this organization, or `NotFound`.
    pub async fn destination_record(&self, id: &str) -> Result<DestinationRecord, EngineError> {
        let lookup = id.to_owned();
        self.db(move |s| s.destination(&lookup))
            .await?
            .filter(|d| d.organization_id == self.organization.id)
            .ok_or_else(|| EngineError::not_found(format!("destination {id}")))
    }
}

impl std::ops::Deref for Engine {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The context that seals a destination's verification token (record id and field, so a
/// sealed token copied into another record does not open).
pub fn token_context(id: &str) -> String {
    format!("destination/{id}/verificationToken")
}

/// Opens a destination's sealed verification token.
pub fn open_token(
    engine: &Engine,
    record: &DestinationRecord,
    sealed: &[u8],
) -> Result<String, EngineError> {
    let plain = engine
        .config
        .master_key
        .open(&token_context(&record.id), sealed)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    String::from_utf8(plain)
        .map_err(|_| EngineError::Internal("a stored token is not UTF-8".into()))
}

/// Compares a presented secret with each expected one in constant time (as SHA-256 digests,
/// so lengths do not leak, and always against all of them); returns the index of the match.
pub fn find_secret<'a>(presented: &str, expected: impl Iterator<Item = &'a str>) -> Option<usize> {
    let presented = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for (i, key) in expected.enumerate() {
        if bool::from(Sha256::digest(key.as_bytes()).ct_eq(&presented)) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// RFC 3339 text of a millisecond timestamp.
pub use wharf_store::rfc3339 as rfc3339_text;
