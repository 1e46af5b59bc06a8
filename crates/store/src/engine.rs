//! The engine's records (organizations, their three environments, destinations, auth
//! credentials, OAuth API keys, sources, subscriptions and their filters, logs and attempts,
//! the audit log) and [`EngineStore`], the one handle the engine uses.
//!
//! `EngineStore` dispatches to a backend chosen at open: SQLite (`sqlite::engine`, the default,
//! one process) or PostgreSQL (`postgres::engine`, several engine processes on one database,
//! each queue worked by the holder of its lease). Why an enum and not a trait object: the set is
//! closed and known here, the callers keep one concrete, cloneable type (and can still name a
//! method, as `EngineStore::stop`), and adding a method costs one line in the list below plus
//! its two implementations, exactly as a trait would, without object-safety or boxing.
//! Secrets arrive here already sealed (the engine holds the master key); the store only keeps
//! bytes.

use crate::postgres::engine::PgEngine;
use crate::sqlite::checkpoint::WalState;
use crate::sqlite::engine::SqliteEngine;
use crate::writer::{
    Batch, BatchObserver, Channels, KeepError, Limits, shared_failure, spawn_thread,
};
use crate::{Database, StoreError};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
pub use wharf_auth::strategy::Strategy;
pub use wharf_protocol::Environment;
pub use wharf_protocol::platform::{
    DataFormat, FilterAction, LogStatus, LogType, VerificationMethod,
};

/// The file name of the engine database inside its `data_dir`.
pub const ENGINE_FILE: &str = "engine.db";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub alert_email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRecord {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    pub flag: Environment,
}

/// A destination record. `verification_token` is sealed (ciphertext), never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationRecord {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    pub data_format: DataFormat,
    pub endpoint: Option<String>,
    pub verification_token: Option<Vec<u8>>,
    pub verification_method: VerificationMethod,
    pub auth_credential: Option<String>,
    pub verified_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The dashboard's setup wizard step (2-7) this destination resumes at: it was saved
    /// half-way. `None` once it passed Verify and Save, and for destinations made by the API.
    pub setup_step: Option<i64>,
}

/// An auth credential (docs/PROTOCOL.md section 5). `fields` is the JSON object of its non-secret
/// fields; `secrets` is the JSON object of its secret fields, sealed (ciphertext), never clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCredentialRecord {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    pub strategy: Strategy,
    /// JSON object text.
    pub fields: String,
    pub secrets: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What [`EngineStore::delete_auth_credential`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialDeletion {
    Deleted,
    NotFound,
    /// Refused: these destinations link the credential.
    InUse(Vec<String>),
}

/// An OAuth API key of an environment (Redox's `apikeys`): the public keys a client signs its
/// token requests with, as a JWK set, or a JWKS URL (which wins when both are kept). Its `id`
/// is the client ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    pub jwks_url: Option<String>,
    /// JSON text of `{"keys": [...]}`, public keys only.
    pub jwk_set: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A system that sends data into one environment. Its `apiKey` is kept only as its SHA-256
/// (`api_key_digest`), so the store cannot show it again; a source from the configuration's
/// `[[sources]]` has `config_name` and keeps its key in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    pub api_key_digest: Option<Vec<u8>>,
    /// The `[[sources]]` name it was made from; `None` for a source made by the API.
    pub config_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The routing rule: messages of `data_model` from a source go to a destination (both in
/// one environment). Numeric id, as Redox shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Assigned by the store ([`EngineStore::insert_subscription`] ignores it).
    pub id: i64,
    pub organization_id: String,
    pub environment_id: String,
    pub source_id: String,
    pub destination_id: String,
    pub data_model: String,
    /// Paused: its new messages are held (kept in order, not sent) until it is resumed.
    pub paused: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which subscriptions a listing returns; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionFilter {
    pub source_id: Option<String>,
    pub destination_id: Option<String>,
    pub data_model: Option<String>,
}

/// A subscription's filter (at most one that is not deleted per subscription). `rules` is
/// the JSON text of `[{"path", "values", "allowList"}]`, checked by the engine before it is
/// kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRecord {
    pub id: String,
    pub subscription_id: i64,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    pub action: FilterAction,
    pub rules: String,
    /// How many times it was saved (Redox's `version`), from 1.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

/// One message to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Queue order.
    pub seq: i64,
    /// The subscription that routed it (`None` for logs from before subscriptions).
    pub subscription_id: Option<i64>,
    /// `Send` for a queued notification, `Request` for a relayed query.
    pub log_type: LogType,
    pub id: String,
    pub organization_id: String,
    pub destination_id: String,
    pub source: String,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    pub content_type: String,
    pub body: Vec<u8>,
    pub status: LogStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// How often an operator resent it (0: never). Each resend's attempts carry the count in
    /// the `wharf-resend` header, so a receiver that drops retries by Log ID can tell a
    /// deliberate resend from a retry (docs/PROTOCOL.md section 4).
    pub resends: i64,
}

/// One try at delivering a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub id: String,
    pub log_id: String,
    pub started_at: i64,
    pub duration_ms: i64,
    /// The HTTP status, when the destination answered.
    pub status_code: Option<i64>,
    /// The transport error, when it did not.
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub response: Option<Vec<u8>>,
}

/// One entry of the audit log: who (an operator account or a named management key) did what
/// to which record, when, and from which address. The log is append-only: the store has no
/// method that changes or deletes an entry, and the database refuses `UPDATE` and `DELETE` on
/// the table (triggers), so a record of who read PHI cannot be edited afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Append order (assigned by the store; ignored by [`EngineStore::append_audit`]).
    pub seq: i64,
    pub organization_id: String,
    /// When (ms since the epoch).
    pub at: i64,
    /// `operator` (a dashboard account) or `api_key` (a named management key).
    pub actor_kind: String,
    pub actor_name: String,
    /// What was done, e.g. `log.phi.read`.
    pub action: String,
    /// The record it was done to (a log id).
    pub subject: String,
    /// The client's address, when known.
    pub address: Option<String>,
}

/// One write of a group commit.
#[derive(Debug, Clone)]
pub enum Write {
    /// Queue these logs at the back of their destinations' queues, in the order given (`seq`
    /// is ignored). A log with status `Filtered` is kept as such and never queued; any other
    /// is PENDING, or held (read back as pending, not sent) while its subscription is paused,
    /// decided in the same transaction as the pause so none slips past it.
    Enqueue(Vec<LogRecord>),
    /// Record an attempt and move its log on: to SUCCEEDED, or to its next try.
    Attempt(AttemptRecord, AttemptOutcome),
    /// Record a finished query: its log (with its final status) and its one attempt.
    Query(Box<(LogRecord, AttemptRecord)>),
}

/// Which logs a listing returns; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub destination_id: Option<String>,
    pub status: Option<LogStatus>,
    pub log_type: Option<LogType>,
    pub data_model: Option<String>,
    pub event_type: Option<String>,
    /// Created at or after (ms since the epoch).
    pub created_after: Option<i64>,
    /// Created at or before (ms since the epoch), as Redox's `createdBefore`.
    pub created_before: Option<i64>,
    /// Last changed at or after (ms since the epoch).
    pub updated_after: Option<i64>,
    /// Last changed at or before (ms since the epoch).
    pub updated_before: Option<i64>,
}

/// A search of an organization's logs: the listing's filters, narrowed further, newest first,
/// a page at a time by keyset (`before_seq`), not by offset, so a deep page costs what the
/// first does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSearch {
    pub filter: LogFilter,
    /// Only logs to destinations of this environment.
    pub environment_id: Option<String>,
    /// Only logs from this source.
    pub source: Option<String>,
    /// Terms whose every word must occur in the log's body, in any order, case-insensitive,
    /// as the full-text index splits words. Empty: the body is not searched.
    pub terms: Vec<String>,
    /// Only logs before this one in queue order (the cursor of the previous page).
    pub before_seq: Option<i64>,
}

/// Which logs [`EngineStore::resend_range`] puts back at the end of their queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendRange {
    pub organization_id: String,
    /// Created at or after (ms since the epoch).
    pub created_after: i64,
    /// Created at or before (ms since the epoch).
    pub created_before: i64,
    /// Only logs to destinations of this environment.
    pub environment_id: Option<String>,
    pub destination_id: Option<String>,
    /// Only logs with this status (never `Pending`: those are queued already).
    pub status: Option<LogStatus>,
}

/// What one retention sweep erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Message bodies deleted (each may have been shared by several logs).
    pub bodies: u64,
    /// Logs whose body (and their attempts' answers) are gone; their metadata stays.
    pub payloads: u64,
    /// Logs deleted whole, metadata and attempts.
    pub logs: u64,
}

/// Logs of one destination created in one hour with one status, for the dashboard's charts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficCount {
    pub destination_id: String,
    /// The hour's start (ms since the epoch, a multiple of 3,600,000).
    pub hour: i64,
    pub status: LogStatus,
    pub count: i64,
}

/// Logs created in a window, for alert rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    pub total: i64,
    pub failed: i64,
    /// Logs that needed more than one attempt.
    pub retried: i64,
}

/// A traffic alert rule (issue 29). Its type, configuration, notification, weekdays and
/// status are kept as the engine wrote them (text and JSON text: the engine parses them into
/// its own types and checks them before they are stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRuleRecord {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub name: String,
    pub alert_type: String,
    /// JSON object text.
    pub configuration: String,
    /// JSON object text.
    pub notification: String,
    /// JSON list text.
    pub ignore_days: String,
    pub ignore_holidays: bool,
    pub time_zone: String,
    pub status: String,
    /// Since when it is in breach (ms since the epoch); `None` when it is not.
    pub breached_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An alert link (Redox's `alertLinks`): one rule applied to one subscription, active or
/// paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertLinkRecord {
    pub id: String,
    pub organization_id: String,
    pub environment_id: String,
    pub alert_id: String,
    pub subscription_id: i64,
    /// A paused link is kept but does not count: the rule does not watch that subscription.
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which logs an alert rule counts.
#[derive(Debug, Clone, Copy)]
pub enum CountScope<'a> {
    /// The logs to these destinations (an unlinked rule: its environment's destinations).
    Destinations(&'a [String]),
    /// The logs routed by these subscriptions (a rule's active links).
    Subscriptions(&'a [i64]),
}

/// A destination's queue as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueState {
    pub paused_by_operator: bool,
    /// When an operator paused it, who and why (`None` while it is not paused).
    pub pause: Option<PauseNote>,
    /// Pending logs.
    pub depth: i64,
    /// The oldest pending log: the one being delivered or retried.
    pub head: Option<LogRecord>,
}

/// An operator's pause of a queue: when (ms since the epoch), who, and why. Pauses from
/// before these were recorded have neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseNote {
    pub at: i64,
    pub by: Option<String>,
    pub reason: Option<String>,
}

/// One queue's numbers, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub destination_id: String,
    pub depth: i64,
    /// Its head failed at least once and is being retried: the queue is held.
    pub held: bool,
    pub paused_by_operator: bool,
}

/// What an attempt did to its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded,
    /// Try again at this time (ms since the epoch).
    RetryAt(i64),
}

/// The engine's store. Cheap to clone.
#[derive(Clone)]
pub struct EngineStore {
    backend: Backend,
    /// The group-commit writer of the hot writes (`crate::writer`).
    writer: Channels<EngineItem>,
    /// Told the number of writes in every committed batch (for a metric), once set.
    on_batch: Arc<OnceLock<BatchObserver>>,
}

/// A commit handed to the writer: answered once the transaction holding it committed.
pub type Committed = oneshot::Receiver<Result<(), StoreError>>;

/// Writes committed together (all or none), with where the answer goes.
type EngineItem = (Vec<Write>, Answer);

/// Where a commit's answer goes: an async caller's oneshot, or a blocked thread's channel
/// ([`EngineStore::apply`], which may be called from any thread, a runtime's included).
enum Answer {
    Async(oneshot::Sender<Result<(), StoreError>>),
    Blocking(std::sync::mpsc::SyncSender<Result<(), StoreError>>),
}

/// Where the engine's writer commits.
enum EngineSink {
    Sqlite {
        conn: rusqlite::Connection,
        wal: Arc<WalState>,
    },
    Postgres(PgEngine),
}

struct EngineBatch {
    sink: EngineSink,
    on_batch: Arc<OnceLock<BatchObserver>>,
}

impl Batch for EngineBatch {
    type Item = EngineItem;

    fn bytes((writes, _): &EngineItem) -> usize {
        writes
            .iter()
            .map(|w| match w {
                // One body per message, however many logs share it.
                Write::Enqueue(logs) => logs.first().map_or(0, |l| l.body.len()),
                Write::Attempt(a, _) => a.response.as_ref().map_or(0, Vec::len),
                Write::Query(q) => q.0.body.len(),
            })
            .sum()
    }

    fn commit(&mut self, batch: Vec<EngineItem>) {
        let (items, replies): (Vec<Vec<Write>>, Vec<_>) = batch.into_iter().unzip();
        let writes: Vec<Write> = items.into_iter().flatten().collect();
        let result = match &mut self.sink {
            EngineSink::Sqlite { conn, .. } => crate::sqlite::engine::apply_on(conn, &writes),
            EngineSink::Postgres(pg) => pg.apply(&writes),
        };
        if result.is_ok()
            && let Some(observe) = self.on_batch.get()
        {
            observe(writes.len());
        }
        for reply in replies {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(shared_failure(e)),
            };
            match reply {
                Answer::Async(reply) => {
                    let _ = reply.send(answer);
                }
                Answer::Blocking(reply) => {
                    let _ = reply.send(answer);
                }
            }
        }
    }

    fn wal(&self) -> Option<(&rusqlite::Connection, &WalState)> {
        match &self.sink {
            EngineSink::Sqlite { conn, wal } => Some((conn, wal)),
            EngineSink::Postgres(_) => None,
        }
    }
}

#[derive(Clone)]
enum Backend {
    /// The sender only keeps [`EngineStore::changes`] open: one process sees its own changes.
    Sqlite(SqliteEngine, Arc<watch::Sender<u64>>),
    Postgres(PgEngine),
}

/// How the engine uses its store.
#[derive(Debug, Clone)]
pub struct EngineStoreOptions {
    /// The longest one delivery attempt may take (the engine's `delivery_timeout`): on
    /// PostgreSQL a queue is only worked while its lease has at least this much left.
    pub attempt_bound: Duration,
    /// Whether this process works queues (PostgreSQL): false for a tool or a test that only
    /// reads and writes records beside running engines, so it never takes a queue's lease.
    pub work_queues: bool,
    /// PostgreSQL: most connections this process opens (the API's blocking threads, the
    /// writer and the worker share them), besides the one that listens for notifications.
    pub max_connections: usize,
    /// SQLite: WAL size past which the WAL is restarted from its beginning (see
    /// `sqlite::checkpoint`).
    pub wal_reset_bytes: u64,
}

/// The engine's WAL restart size: half the inbox's (`DEFAULT_WAL_RESET_BYTES`), whose larger
/// one trades disk for fewer pauses of durable acknowledgements; the engine's WAL grew to
/// 1.4 GB in the benchmark with it (64 MiB kept it at 316 MB but cost throughput there).
pub const ENGINE_WAL_RESET_BYTES: u64 = 256 * 1024 * 1024;

/// Writes from sources that may wait for the writer before ingestion is refused.
const WRITER_QUEUE: usize = 8192;
/// Most writes in one transaction.
const WRITER_BATCH: usize = 512;
/// Most body bytes in one transaction.
const WRITER_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Connections per engine process unless configured: more would mostly queue inside
/// PostgreSQL on the machines an engine runs on.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

impl Default for EngineStoreOptions {
    fn default() -> Self {
        EngineStoreOptions {
            attempt_bound: Duration::from_secs(30),
            work_queues: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            wal_reset_bytes: ENGINE_WAL_RESET_BYTES,
        }
    }
}

/// Defines each method once, forwarding it to the backend's method of the same name.
macro_rules! dispatch {
    ($( $(#[$doc:meta])* pub fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        impl EngineStore {
            $(
                $(#[$doc])*
                pub fn $name(&self $(, $arg: $ty)*) -> $ret {
                    match &self.backend {
                        Backend::Sqlite(store, _) => store.$name($($arg),*),
                        Backend::Postgres(store) => store.$name($($arg),*),
                    }
                }
            )*
        }
    };
}

impl EngineStore {
    /// Opens (creating and migrating) `data_dir/engine.db`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        EngineStore::open_database(
            &Database::Sqlite(data_dir.to_owned()),
            &EngineStoreOptions::default(),
        )
    }

    /// Opens (creating and migrating) the engine's store on `database`.
    pub fn open_database(
        database: &Database,
        options: &EngineStoreOptions,
    ) -> Result<Self, StoreError> {
        let (backend, sink, path) = match database {
            Database::Sqlite(data_dir) => {
                let store = SqliteEngine::open(data_dir)?;
                let (conn, wal) = store.writer_connection(options.wal_reset_bytes)?;
                (
                    Backend::Sqlite(store, Arc::new(watch::channel(0).0)),
                    EngineSink::Sqlite { conn, wal },
                    data_dir.join(ENGINE_FILE),
                )
            }
            Database::Postgres(url) => {
                let store = PgEngine::open(url, options)?;
                (
                    Backend::Postgres(store.clone()),
                    EngineSink::Postgres(store),
                    Default::default(),
                )
            }
        };
        let on_batch = Arc::new(OnceLock::new());
        let (writer, _thread) = spawn_thread(
            "engine-writer",
            EngineBatch {
                sink,
                on_batch: on_batch.clone(),
            },
            Limits {
                queue_capacity: WRITER_QUEUE,
                max_batch: WRITER_BATCH,
                max_batch_bytes: WRITER_BATCH_BYTES,
            },
        )
        .map_err(|source| StoreError::DataDir { path, source })?;
        Ok(EngineStore {
            backend,
            writer,
            on_batch,
        })
    }

    /// Commits logs a source sent (`Write::Enqueue`) through the writer, or refuses at once
    /// with [`KeepError::Busy`] when its queue is full (answer 503 with `Retry-After`).
    pub fn try_commit(&self, write: Write) -> Result<Committed, KeepError> {
        let (reply, committed) = oneshot::channel();
        self.writer
            .try_request((vec![write], Answer::Async(reply)))?;
        Ok(committed)
    }

    /// Commits the engine's own bookkeeping (delivery attempts, relayed queries) through the
    /// writer; never refused for a full queue (each caller bounds what it has outstanding).
    pub fn commit(&self, write: Write) -> Result<Committed, StoreError> {
        let (reply, committed) = oneshot::channel();
        self.writer
            .bookkeeping((vec![write], Answer::Async(reply)))?;
        Ok(committed)
    }

    /// Commits several writes in one transaction through the writer, all or none, and waits
    /// for it, blocking the thread (for tools and tests; async code uses [`EngineStore::commit`]).
    pub fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
        let (reply, committed) = std::sync::mpsc::sync_channel(1);
        self.writer
            .bookkeeping((writes.to_vec(), Answer::Blocking(reply)))?;
        committed.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// Tells `observe` the number of writes in every committed batch (set once; later calls
    /// are ignored).
    pub fn observe_batches(&self, observe: BatchObserver) {
        let _ = self.on_batch.set(observe);
    }

    /// Records the single-use credential `digest` (the token endpoint's client assertion
    /// `jti`) until `expires_at` (Unix seconds) where every engine of a shared PostgreSQL
    /// database sees it: `Ok(Some(true))` for its first use, `Ok(Some(false))` for a replay.
    /// `Ok(None)` on SQLite, where one engine owns the file and remembers them in its memory.
    /// An error means the database could not say: refuse, as accepting could let a replay
    /// through.
    pub fn first_use(
        &self,
        digest: &[u8; 32],
        expires_at: u64,
        now: u64,
    ) -> Result<Option<bool>, StoreError> {
        let secs = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
        match &self.backend {
            Backend::Sqlite(..) => Ok(None),
            Backend::Postgres(store) => store
                .first_use(digest, secs(expires_at), secs(now))
                .map(Some),
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(..) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Changes when another process changed a queue (ingested, resent, stopped, resumed) or
    /// this process took over queues: the delivery worker should look at its heads again.
    /// Never changes on SQLite, where the engine wakes its worker itself.
    pub fn changes(&self) -> watch::Receiver<u64> {
        match &self.backend {
            Backend::Sqlite(_, never) => never.subscribe(),
            Backend::Postgres(store) => store.changes(),
        }
    }

    /// Whether this process may start a delivery attempt on `destination_id`'s queue now:
    /// always on SQLite; on PostgreSQL while it holds the queue's lease with enough left.
    pub fn holds_queue(&self, destination_id: &str) -> bool {
        match &self.backend {
            Backend::Sqlite(..) => true,
            Backend::Postgres(store) => store.holds_queue(destination_id),
        }
    }

    /// Gives up this process's queue leases (at shutdown, after the worker recorded its last
    /// attempt) so other processes take over at once. Nothing to do on SQLite.
    pub fn release_leases(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(..) => Ok(()),
            Backend::Postgres(store) => store.release_leases(),
        }
    }
}

dispatch! {
    /// The organization called `name`, created with its three environments on first use.
    pub fn ensure_organization(&self, name: &str) -> Result<Organization, StoreError>;
    pub fn organizations(&self) -> Result<Vec<Organization>, StoreError>;
    /// The organization's environments, Development first.
    pub fn environments(&self, organization_id: &str) -> Result<Vec<EnvironmentRecord>, StoreError>;
    pub fn environment(&self, id: &str) -> Result<Option<EnvironmentRecord>, StoreError>;
    pub fn insert_destination(&self, d: &DestinationRecord) -> Result<(), StoreError>;
    /// Replaces every mutable field of an existing destination (the environment changes only
    /// while the dashboard's wizard sets it up). Returns false if it is gone.
    pub fn update_destination(&self, d: &DestinationRecord) -> Result<bool, StoreError>;
    pub fn destination(&self, id: &str) -> Result<Option<DestinationRecord>, StoreError>;
    pub fn destinations(&self, environment_id: &str) -> Result<Vec<DestinationRecord>, StoreError>;
    /// Whether `endpoint` is used by a destination of another organization.
    pub fn endpoint_taken_elsewhere(&self, endpoint: &str, organization_id: &str) -> Result<bool, StoreError>;
    /// Deletes a destination and erases its logs (bodies included) and their attempts (with
    /// the answers' first bytes) in one transaction; on SQLite the freed bytes are overwritten.
    /// Returns false if it did not exist (its logs, if any are left, are erased all the same).
    pub fn delete_destination(&self, id: &str) -> Result<bool, StoreError>;
    pub fn insert_auth_credential(&self, c: &AuthCredentialRecord) -> Result<(), StoreError>;
    /// Replaces the mutable fields (name, fields, secrets, updated_at) of an existing auth
    /// credential. Returns false if it is gone.
    pub fn update_auth_credential(&self, c: &AuthCredentialRecord) -> Result<bool, StoreError>;
    pub fn auth_credential(&self, id: &str) -> Result<Option<AuthCredentialRecord>, StoreError>;
    /// An environment's auth credentials, oldest first.
    pub fn auth_credentials(&self, environment_id: &str) -> Result<Vec<AuthCredentialRecord>, StoreError>;
    /// The ids of the destinations that link this credential.
    pub fn destinations_using(&self, credential_id: &str) -> Result<Vec<String>, StoreError>;
    /// Deletes an auth credential unless a destination links it (checked in the same
    /// transaction, so a link cannot slip in between).
    pub fn delete_auth_credential(&self, id: &str) -> Result<CredentialDeletion, StoreError>;
    /// The head (oldest pending log) of every destination's queue that an operator has not
    /// paused and this process may work, due or not.
    pub fn queue_heads(&self) -> Result<Vec<LogRecord>, StoreError>;
    /// The first `limit` pending logs of one destination's queue in queue order, from its head,
    /// or, with `after`, from the first log behind that `seq`; none if an operator paused it or
    /// this process may not work it. The delivery worker reads a batch at a time and sends
    /// them one by one, reading the next batch (`after` the last one sent) while the previous
    /// batch's attempts are still being committed. A log's `seq` follows commit order on both
    /// backends (PostgreSQL takes a lock to queue logs), so reading behind a `seq` never skips
    /// a log committed later.
    pub fn queue_front(&self, destination_id: &str, after: Option<i64>, limit: usize) -> Result<Vec<LogRecord>, StoreError>;
    /// Pauses (or resumes) a destination's queue on an operator's request. Resuming also
    /// makes its head due at once.
    pub fn set_paused(&self, destination_id: &str, paused: bool) -> Result<(), StoreError>;
    /// Records who paused a paused queue and why (nothing if it is not paused).
    pub fn note_pause(&self, destination_id: &str, by: &str, reason: &str) -> Result<(), StoreError>;
    /// Every queue with pending logs or an operator pause, for metrics: destination id,
    /// pending logs, whether its head has failed at least once (the queue is held), and
    /// whether an operator paused it.
    pub fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError>;
    /// Whether a write transaction can be taken and committed (for readiness).
    pub fn check_writable(&self) -> Result<(), StoreError>;
    /// A destination's queue: operator-paused or not, depth, and its head.
    pub fn queue(&self, destination_id: &str) -> Result<QueueState, StoreError>;
    /// Stops a pending (or held) log: it becomes FAILED and its queue moves on. False if it was not
    /// pending.
    pub fn stop(&self, log_id: &str) -> Result<bool, StoreError>;
    /// Puts a finished log back at the end of its destination's queue, with the same Log ID
    /// and its attempts kept. False if it is still pending (or does not exist).
    pub fn resend(&self, log_id: &str) -> Result<bool, StoreError>;
    /// The newest attempt of each of these logs that has one (in no particular order).
    pub fn latest_attempts(&self, log_ids: &[String]) -> Result<Vec<AttemptRecord>, StoreError>;
    /// One log and its attempts, oldest first.
    pub fn log(&self, id: &str) -> Result<Option<(LogRecord, Vec<AttemptRecord>)>, StoreError>;
    /// The organization's logs matching `filter`, newest first, skipping `offset`, at most `limit`.
    pub fn logs(&self, organization_id: &str, filter: &LogFilter, offset: usize, limit: usize) -> Result<Vec<LogRecord>, StoreError>;
    /// How many of the organization's logs match `filter` (the listing's total).
    pub fn count_logs(&self, organization_id: &str, filter: &LogFilter) -> Result<u64, StoreError>;
    /// The organization's logs matching `search`, newest first (queue order), at most `limit`.
    /// A payload search reads the full-text index (SQLite FTS5, PostgreSQL GIN over a
    /// `tsvector`), never every body.
    pub fn search_logs(&self, organization_id: &str, search: &LogSearch, limit: usize) -> Result<Vec<LogRecord>, StoreError>;
    /// Puts every finished log of `range` back at the end of its destination's queue, in the
    /// order they were first created, each with its Log ID and attempts kept; one transaction.
    /// Returns how many were queued.
    pub fn resend_range(&self, range: &ResendRange) -> Result<u64, StoreError>;
    /// Erases up to `limit` message bodies whose every log was created before `before` and
    /// is finished (a pending log's body is still to be delivered), with their entries in the
    /// search index and the answers of those logs' attempts. The logs keep their metadata.
    pub fn erase_payloads(&self, before: i64, limit: usize) -> Result<Erased, StoreError>;
    /// Deletes up to `limit` of the organization's finished logs created before `before`,
    /// their attempts and any body no other log shares.
    pub fn delete_logs_before(&self, organization_id: &str, before: i64, limit: usize) -> Result<Erased, StoreError>;
    /// The organization's logs created at or after `since`, counted per destination, hour
    /// and status.
    pub fn traffic(&self, organization_id: &str, since: i64) -> Result<Vec<TrafficCount>, StoreError>;
    /// The organization's logs created at or after `since` within `scope`, counted for alert
    /// rules.
    pub fn window_counts(&self, organization_id: &str, scope: CountScope<'_>, since: i64) -> Result<WindowCounts, StoreError>;
    pub fn insert_alert_rule(&self, rule: &AlertRuleRecord) -> Result<(), StoreError>;
    /// Inserts a rule unless one with its id exists (a config-defined rule, which engines
    /// starting at once on one database each try to create); true if this call inserted it.
    pub fn insert_alert_rule_if_absent(&self, rule: &AlertRuleRecord) -> Result<bool, StoreError>;
    /// Records that a `queue-paused` rule's queue (`destination_id`) paused at `log_id` (with
    /// `Some`) or moved again (`None`), and sets the rule's `breached_at` to its earliest open
    /// breach; true only for the one call that changed the queue's state, so one engine
    /// notifies, once.
    pub fn set_queue_breach(&self, alert_id: &str, destination_id: &str, breach: Option<(&str, i64)>) -> Result<bool, StoreError>;
    /// Replaces every mutable field of a rule (all but its ids and `created_at`). False if it
    /// is gone.
    pub fn update_alert_rule(&self, rule: &AlertRuleRecord) -> Result<bool, StoreError>;
    pub fn alert_rule(&self, id: &str) -> Result<Option<AlertRuleRecord>, StoreError>;
    /// An environment's rules (every environment's when `None`), oldest first.
    pub fn alert_rules(&self, environment_id: Option<&str>) -> Result<Vec<AlertRuleRecord>, StoreError>;
    /// Deletes a rule and its links.
    pub fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError>;
    /// Links a rule to a subscription; an existing link of the same pair is returned as it is.
    pub fn insert_alert_link(&self, link: &AlertLinkRecord) -> Result<AlertLinkRecord, StoreError>;
    pub fn alert_link(&self, id: &str) -> Result<Option<AlertLinkRecord>, StoreError>;
    /// An environment's links (one rule's when `alert_id` is given), oldest first.
    pub fn alert_links(&self, environment_id: &str, alert_id: Option<&str>) -> Result<Vec<AlertLinkRecord>, StoreError>;
    /// Activates or pauses a link. False if it is gone.
    pub fn set_alert_link_active(&self, id: &str, active: bool, at: i64) -> Result<bool, StoreError>;
    pub fn delete_alert_link(&self, id: &str) -> Result<bool, StoreError>;
    /// Records that a rule went into breach (`Some(since)`) or recovered (`None`), unless it
    /// is already so: true when this call changed it (so one process notifies, once).
    pub fn set_alert_breach(&self, id: &str, breached_at: Option<i64>) -> Result<bool, StoreError>;
    /// Appends one entry to the audit log (its `seq` is assigned here). There is no way to
    /// change or delete one.
    pub fn append_audit(&self, entry: &AuditRecord) -> Result<(), StoreError>;
    /// The organization's audit entries at or after `since` (ms since the epoch), newest
    /// first, skipping `offset`, at most `limit`.
    pub fn audit(&self, organization_id: &str, since: Option<i64>, offset: usize, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;
    pub fn insert_apikey(&self, k: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Replaces name, keys and updated_at of an OAuth API key. False if it is gone.
    pub fn update_apikey(&self, k: &ApiKeyRecord) -> Result<bool, StoreError>;
    pub fn apikey(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// An environment's OAuth API keys, oldest first.
    pub fn apikeys(&self, environment_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError>;
    pub fn delete_apikey(&self, id: &str) -> Result<bool, StoreError>;
    /// Records a source. A configuration's source (`config_name`) that another engine on the
    /// same database recorded first, starting at the same moment, is left as that engine wrote
    /// it.
    pub fn insert_source(&self, s: &SourceRecord) -> Result<(), StoreError>;
    /// Replaces name, key digest and updated_at of a source. False if it is gone.
    pub fn update_source(&self, s: &SourceRecord) -> Result<bool, StoreError>;
    pub fn source(&self, id: &str) -> Result<Option<SourceRecord>, StoreError>;
    /// An environment's sources, oldest first.
    pub fn sources(&self, environment_id: &str) -> Result<Vec<SourceRecord>, StoreError>;
    /// The source whose `apiKey` has this SHA-256.
    pub fn source_by_key_digest(&self, digest: &[u8]) -> Result<Option<SourceRecord>, StoreError>;
    /// The sources made from the configuration's `[[sources]]` entry of this name (one per
    /// environment it sends into), oldest first.
    pub fn config_sources(&self, organization_id: &str, name: &str) -> Result<Vec<SourceRecord>, StoreError>;
    /// Deletes a source with its subscriptions and their filters; its held messages are
    /// released to their queues. False if it did not exist.
    pub fn delete_source(&self, id: &str) -> Result<bool, StoreError>;
    /// Inserts a subscription and returns it with its id; an existing one of the same
    /// (source, destination, data model) is returned as it is.
    pub fn insert_subscription(&self, s: &SubscriptionRecord) -> Result<SubscriptionRecord, StoreError>;
    pub fn subscription(&self, id: i64) -> Result<Option<SubscriptionRecord>, StoreError>;
    /// An environment's subscriptions matching `filter`, by id, skipping `offset`, at most `limit`.
    pub fn subscriptions(&self, environment_id: &str, filter: &SubscriptionFilter, offset: usize, limit: usize) -> Result<Vec<SubscriptionRecord>, StoreError>;
    /// A source's subscriptions for one data model, each with its filter (if it has one):
    /// where a message goes.
    pub fn routes(&self, source_id: &str, data_model: &str) -> Result<Vec<(SubscriptionRecord, Option<FilterRecord>)>, StoreError>;
    /// Deletes a subscription and its filter; its held messages are released to their queue
    /// (they were accepted while it existed). False if it did not exist.
    pub fn delete_subscription(&self, id: i64) -> Result<bool, StoreError>;
    /// Pauses (its pending messages held, in order) or resumes (held messages queued again
    /// where they were, due at once) a subscription. False if it does not exist.
    pub fn set_subscription_paused(&self, id: i64, paused: bool) -> Result<bool, StoreError>;
    /// Creates a subscription's filter, or replaces the one it has (the record's id must be
    /// that filter's; its version goes up by one). Returns the filter as kept.
    pub fn save_filter(&self, f: &FilterRecord) -> Result<FilterRecord, StoreError>;
    /// A subscription's filters: its current one, and with `deleted` also those deleted.
    pub fn filters(&self, subscription_id: i64, deleted: bool) -> Result<Vec<FilterRecord>, StoreError>;
    /// Marks a subscription's filter deleted (kept for `showDeleted`). False if it is not
    /// that subscription's current filter.
    pub fn delete_filter(&self, subscription_id: i64, filter_id: &str, at: i64) -> Result<bool, StoreError>;
}
