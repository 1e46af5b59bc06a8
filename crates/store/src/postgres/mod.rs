//! PostgreSQL: one database shared by several engine or destination processes.
//!
//! The store's API is synchronous (callers run it on blocking threads, as with SQLite) while
//! tokio-postgres is async. Every call therefore runs its future to completion on the calling
//! thread ([`block_on`]) inside the context of one process-wide **store runtime**, whose two
//! threads drive the sockets (the connections' I/O tasks) and the background tasks (NOTIFY
//! listeners, lease heartbeats). Why not `Handle::block_on` on the caller's runtime: it panics on
//! a thread that is running async code (the engine opens its store from `start`, tests call the
//! store from `#[tokio::test]`), and on a current-thread runtime the blocked thread would be the
//! very one that must drive the socket. Why poll on the caller's thread instead of spawning: the
//! calls borrow `&str` and `&[Write]`, and polling in place lets the future borrow them instead
//! of copying message bodies into a `'static` task.
//!
//! * [`schema`]: the migrations, recorded in `schema_migrations`.
//! * [`engine`]: the engine's store, queue leases across engine processes.
//! * [`inbox`]: the destination inbox: group commit with multi-row inserts, forwarder leases.
//! * [`lease`]: leases held in memory with the margin that makes them safe to act on.
//!
//! **Outages.** Every operation runs under one deadline ([`OPERATION_TIMEOUT`], through
//! [`Pg::run`]), connecting included ([`CONNECT_TIMEOUT`], [`CREATE_TIMEOUT`]), so a server that
//! stops answering (SIGSTOP, a partition) costs a request a few seconds, never a hang. Its
//! failures are classified ([`crate::StoreErrorKind`]): unreachable, timed out before the
//! commit was sent, or refused by a server that is starting, stopping, read-only or full is
//! `Unavailable` (nothing was committed); a connection lost or a deadline passed after `COMMIT`
//! was sent is `OutcomeUnknown` ([`commit`], and [`sent`] for single-statement writes). The pool
//! checks a connection is open before lending it (`RecyclingMethod::Fast`: deadpool drops those
//! whose socket closed, so after a restart the next operation connects afresh), and drops every
//! idle connection after a deadline passed (one of them may still be waiting for its answer).
//! The NOTIFY listener and the lease heartbeats retry within [`RETRY_PAUSE`]`..`[`RETRY_MAX`],
//! so work resumes within a second of the server accepting connections again.

pub(crate) mod engine;
pub(crate) mod inbox;
pub(crate) mod lease;
pub(crate) mod schema;

pub use schema::{Component, probe};

use crate::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The longest one store operation may take, from asking the pool for a connection to the
/// answer of its last statement (`COMMIT` included). Past it the operation fails as
/// `Unavailable`, or `OutcomeUnknown` if its commit had been sent. Schema migrations at start
/// are not bounded by it.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a TCP connection to the server may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a new pooled connection may take, TLS and authentication included (a stopped
/// server accepts TCP connections in its kernel backlog and then never answers).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(3);
/// The first pause before the NOTIFY listener or a lease heartbeat tries again after a failure.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// The longest such pause, however long the outage: work resumes at most this long after the
/// server accepts connections again.
pub const RETRY_MAX: Duration = Duration::from_millis(400);

/// The runtime that drives every PostgreSQL connection of this process. Never dropped: a
/// runtime cannot be dropped from async code, and store handles are dropped anywhere.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wharf-postgres")
            .enable_all()
            .build()
            .expect("the PostgreSQL store runtime starts (threads and an I/O driver)")
    })
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread, with the store runtime's I/O and timers.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let _context = runtime().enter();
    // Unconstrained: polled from inside a task of another runtime (startup, tests), tokio's
    // cooperative budget would belong to that task and could run dry with nobody resetting it.
    let mut future = std::pin::pin!(tokio::task::unconstrained(future));
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// A pool of connections to one database (and schema), with what a listener needs to open its
/// own connection.
pub(crate) struct Pg {
    pub pool: Pool,
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    /// Where, for messages: never the password.
    pub describe: String,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` without its password, for messages and logs.
pub fn describe(url: &str) -> String {
    match split_root_cert(url)
        .0
        .parse::<tokio_postgres::Config>()
        .ok()
    {
        Some(config) => {
            let host = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(path) => path.display().to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let mut text = format!(
                "postgres://{}@{host}:{port}/{}",
                config.get_user().unwrap_or(""),
                config.get_dbname().unwrap_or("")
            );
            if let Some(options) = config.get_options() {
                text.push_str(&format!(" (options {options})"));
            }
            text
        }
        None => "postgres://<unparsable URL>".to_owned(),
    }
}

/// Takes `sslrootcert=<file>` out of the URL's query (tokio-postgres refuses options it does
/// not know; we read that one ourselves).
fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut root = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(
                    percent_encoding::percent_decode_str(path)
                        .decode_utf8()
                        .map(|p| p.into_owned())
                        .unwrap_or_else(|_| path.to_owned()),
                );
                false
            }
            None => true,
        })
        .collect();
    if rest.is_empty() {
        (base.to_owned(), root)
    } else {
        (format!("{base}?{}", rest.join("&")), root)
    }
}

/// TLS to the database: with `sslmode=require` the server's certificate is verified against the
/// public web roots, plus `sslrootcert` when the URL names one (a private CA, a managed
/// service's CA). Any other mode connects without TLS: tokio-postgres's `prefer` would try TLS
/// and then fail on a self-signed certificate instead of falling back, which helps nobody.
fn tls(root_cert: Option<&str>, describe: &str) -> Result<MakeRustlsConnect, StoreError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = root_cert {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| StoreError::Postgres(format!(
                "cannot read sslrootcert {path:?} for {describe}: {e}; give a PEM file of CA certificates"
            )))?;
        for cert in certs {
            roots.add(cert).map_err(|e| {
                StoreError::Postgres(format!(
                    "sslrootcert {path:?} holds a certificate rustls refuses: {e}"
                ))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Postgres(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

impl Pg {
    /// Runs one read on a pooled connection and maps every row (the blocking API's reads).
    pub fn query<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        map: impl Fn(&tokio_postgres::Row) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let statement = client.prepare_cached(sql).await?;
            Ok(client
                .query(&statement, params)
                .await?
                .iter()
                .map(map)
                .collect())
        })
    }

    /// Opens a pool of up to `max_size` connections to `url` and checks that one connects, so
    /// a wrong URL or a stopped server is reported at start, not at the first request.
    pub fn connect(url: &str, max_size: usize) -> Result<Arc<Pg>, StoreError> {
        let describe = describe(url);
        let (url, root_cert) = split_root_cert(url);
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Postgres(format!(
                "database_url {describe} is not a valid PostgreSQL URL: {e}; write it as postgres://user:password@host:5432/database"
            ))
        })?;
        if config.get_ssl_mode() != SslMode::Require {
            config.ssl_mode(SslMode::Disable);
        }
        config.application_name("wharf");
        config.connect_timeout(CONNECT_TIMEOUT);
        // A server that vanished without closing its sockets (a partition, a dead host) is
        // noticed by the kernel even on an idle connection, such as the NOTIFY listener's.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        config.keepalives_interval(Duration::from_secs(2));
        config.keepalives_retries(3);
        config.tcp_user_timeout(Duration::from_secs(15));
        let tls = tls(root_cert.as_deref(), &describe)?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            // Fast: a connection whose socket closed (the server restarted or died) is dropped
            // instead of lent, without a round trip per checkout; one that is open but
            // stuck is dealt with by the operation deadline (`run`).
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(OPERATION_TIMEOUT))
            .create_timeout(Some(CREATE_TIMEOUT))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .map_err(|e| StoreError::Postgres(format!("cannot set up the pool: {e}")))?;
        let pg = Arc::new(Pg {
            pool,
            config,
            tls,
            describe,
        });
        drop(block_on(pg.client())?);
        Ok(pg)
    }

    /// A connection from the pool.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            let text = error_chain(&e);
            let unavailable = match &e {
                deadpool_postgres::PoolError::Timeout(_) | deadpool_postgres::PoolError::Closed => {
                    true
                }
                deadpool_postgres::PoolError::Backend(e) => {
                    crate::postgres_kind(e) == crate::StoreErrorKind::Unavailable
                }
                _ => false,
            };
            let hint = if text.contains("TLS") || text.contains("certificate") {
                "with sslmode=require the server's certificate must chain to a public root or to \
                 the URL's sslrootcert, and name the URL's host"
            } else {
                "check database_url and that the server is running and reachable"
            };
            let text = format!(
                "cannot connect to PostgreSQL at {}: {text}; {hint}",
                self.describe
            );
            if unavailable {
                StoreError::Unavailable(text)
            } else {
                StoreError::Postgres(text)
            }
        })
    }

    /// Runs one store operation on this thread under [`OPERATION_TIMEOUT`] (see [`deadline`]).
    pub(crate) fn run<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        block_on(self.deadline(operation))
    }

    /// Awaits `operation` for at most [`OPERATION_TIMEOUT`]. Past it: `OutcomeUnknown` if the
    /// operation had sent its commit ([`commit`], [`sent`]), else `Unavailable` (the operation's
    /// transaction is dropped, and with it rolled back, before its `COMMIT` was ever sent).
    /// Every idle connection is then dropped: the one the operation held may still be waiting
    /// for its answer, and the next operation must not queue behind it.
    pub(crate) async fn deadline<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let committed = Arc::new(AtomicBool::new(false));
        let outcome = tokio::time::timeout(
            OPERATION_TIMEOUT,
            COMMIT_SENT.scope(committed.clone(), operation),
        )
        .await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                self.pool.retain(|_, _| false);
                let text = format!(
                    "PostgreSQL at {} did not answer within {} s",
                    self.describe,
                    OPERATION_TIMEOUT.as_secs()
                );
                Err(if committed.load(Ordering::SeqCst) {
                    StoreError::OutcomeUnknown(text)
                } else {
                    StoreError::Unavailable(text)
                })
            }
        }
    }
}

tokio::task_local! {
    /// Set by the operation running under [`Pg::deadline`] once its commit has been sent.
    static COMMIT_SENT: Arc<AtomicBool>;
}

/// Marks the running operation's write as sent: from here a lost connection or a passed
/// deadline leaves its outcome unknown. For single statements outside a transaction (each is
/// its own commit); transactions use [`commit`].
pub(crate) fn sent() {
    let _ = COMMIT_SENT.try_with(|sent| sent.store(true, Ordering::SeqCst));
}

/// Commits `tx`. A failure with no answer from the server (the connection broke, an I/O
/// error) is `OutcomeUnknown`: `COMMIT` may have reached the server and taken effect.
pub(crate) async fn commit(tx: deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
    sent();
    tx.commit()
        .await
        .map_err(|e| StoreError::from(e).at_commit())
}

/// Whether `e` is the connection failing (it could not be made, was closed, broke, or timed
/// out), not an answer from the server or a mistake of the caller.
pub(crate) fn connection_failed(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    // Connect and startup timeouts carry no source.
    let text = e.to_string();
    text.starts_with("timeout waiting for server")
        || text.starts_with("error connecting to server")
        || text.starts_with("error communicating with the server")
}

pub(crate) use wharf_protocol::error_chain;

/// Runs `sql` (several statements allowed) on its own connection to `url`: for tools and test
/// harnesses that create or drop a schema.
pub fn execute(url: &str, sql: &str) -> Result<(), StoreError> {
    let pg = Pg::connect(url, 1)?;
    block_on(async {
        let client = pg.client().await?;
        client.batch_execute(sql).await?;
        Ok(())
    })
}

/// Starts a task that bumps `changed` whenever another connection sends `NOTIFY channel` with
/// this connection's schema as payload (see `notify`), and once after every (re)connect, since
/// notifications sent while it was disconnected are lost. It reconnects after failures and ends
/// when every receiver of `changed` is gone.
pub(crate) fn spawn_listener(
    pg: &Arc<Pg>,
    channel: &'static str,
    changed: Arc<watch::Sender<u64>>,
) {
    let (config, tls, describe) = (pg.config.clone(), pg.tls.clone(), pg.describe.clone());
    runtime().spawn(async move {
        let mut backoff = RETRY_PAUSE;
        let mut failures = 0u64;
        while !changed.is_closed() {
            match listen(&config, &tls, channel, &changed).await {
                Ok(Listened::Stopped) => return,
                Ok(Listened::Lost(e)) => {
                    // It was listening: a new outage, retried at once.
                    tracing::warn!(database = %describe, error = %e, "lost the PostgreSQL notification connection; reconnecting");
                    backoff = RETRY_PAUSE;
                    failures = 0;
                }
                Err(e) => {
                    // Said once per outage, not at every try.
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(database = %describe, error = %e, "cannot open the PostgreSQL notification connection; retrying until it opens");
                    } else {
                        tracing::debug!(database = %describe, error = %e, failures, "notification connection still failing");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = changed.closed() => return,
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    });
}

/// How a listening connection ended.
enum Listened {
    /// Every receiver is gone: stop.
    Stopped,
    /// The connection broke or closed after it was listening: why.
    Lost(String),
}

async fn listen(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    channel: &str,
    changed: &watch::Sender<u64>,
) -> Result<Listened, StoreError> {
    // Connecting and subscribing are bounded: a stopped server accepts the TCP connection
    // and never answers. Once listening, the connection may stay silent for as long as it likes.
    let (client, driver, mut rx) = tokio::time::timeout(CREATE_TIMEOUT, async {
        let (client, mut connection) = config.connect(tls.clone()).await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        if tx.send(n.payload().to_owned()).is_err() {
                            return Ok(());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        });
        Ok::<_, StoreError>((client, driver, rx))
    })
    .await
    .map_err(|_| {
        StoreError::Unavailable(format!(
            "no answer within {} s while connecting",
            CREATE_TIMEOUT.as_secs()
        ))
    })??;
    let subscribed = tokio::time::timeout(CREATE_TIMEOUT, async {
        let schema: Option<String> = client
            .query_one("SELECT current_schema()", &[])
            .await?
            .get(0);
        client.batch_execute(&format!("LISTEN {channel}")).await?;
        Ok::<_, StoreError>(schema.unwrap_or_default())
    })
    .await;
    let schema = match subscribed {
        Ok(Ok(schema)) => schema,
        Ok(Err(e)) => {
            driver.abort();
            return Err(e);
        }
        Err(_) => {
            driver.abort();
            return Err(StoreError::Unavailable(format!(
                "no answer to LISTEN within {} s",
                CREATE_TIMEOUT.as_secs()
            )));
        }
    };
    changed.send_modify(|n| *n += 1);
    loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(payload) if payload == schema => changed.send_modify(|n| *n += 1),
                Some(_) => {}
                None => break,
            },
            _ = changed.closed() => {
                driver.abort();
                return Ok(Listened::Stopped);
            }
        }
    }
    Ok(Listened::Lost(match driver.await {
        Ok(Err(e)) => error_chain(&e),
        _ => "the server closed the connection".to_owned(),
    }))
}

/// SQL that tells every listener on `channel` of this schema that something changed; delivered
/// when the surrounding transaction commits, and not at all if it rolls back.
pub(crate) fn notify(channel: &str) -> String {
    format!("SELECT pg_notify('{channel}', current_schema())")
}

/// SQL taking a transaction-scoped lock named `what` within this schema. Serializing the
/// transactions that draw sequence numbers makes commit order equal number order, which is what
/// lets a reader that sees number n trust that nothing below n is still to appear.
pub(crate) fn xact_lock(what: &str) -> String {
    format!("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.{what}'))")
}

/// A name for this process among others on one database: host, pid and a random suffix (so a
/// restarted process with a reused pid is someone new).
pub(crate) fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

/// How often (seconds) a process sweeps the expired rows of a [`SingleUse`] table, at most.
const SINGLE_USE_SWEEP_INTERVAL: i64 = 60;

/// Single-use credentials several processes share through one table of `(digest BYTEA
/// PRIMARY KEY, expires_at BIGINT)`: the destination servers' `replay_seen`, the engines'
/// `used_jtis`.
pub(crate) struct SingleUse {
    table: &'static str,
    /// Tables of other expiring rows (`expires_at`) swept with it.
    also_sweep: &'static [&'static str],
    /// When (Unix seconds) this process last swept.
    swept: AtomicI64,
}

impl SingleUse {
    pub(crate) const fn new(table: &'static str, also_sweep: &'static [&'static str]) -> Self {
        Self {
            table,
            also_sweep,
            swept: AtomicI64::new(0),
        }
    }

    /// Records the single-use credential `digest` until `expires_at` (Unix seconds), unless it
    /// is recorded already and not expired at `now`: true for its first use, false for a
    /// replay. One statement, so of several processes racing on the same digest exactly one is
    /// told "first": the others wait on the primary key's row and then see it. A row that has
    /// expired is taken over (its credential could not pass its other checks any more anyway).
    pub(crate) fn first_use(
        &self,
        pg: &Pg,
        digest: &[u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let table = self.table;
        let first = pg.run(async {
            let client = pg.client().await?;
            let statement = client
                .prepare_cached(&format!(
                    "INSERT INTO {table} (digest, expires_at) VALUES ($1, $2)
                     ON CONFLICT (digest) DO UPDATE SET expires_at = EXCLUDED.expires_at
                         WHERE {table}.expires_at <= $3
                     RETURNING 1"
                ))
                .await?;
            sent();
            let rows = client
                .query(&statement, &[&digest.as_slice(), &expires_at, &now])
                .await?;
            Ok(!rows.is_empty())
        })?;
        let last = self.swept.load(Ordering::Relaxed);
        if now >= last + SINGLE_USE_SWEEP_INTERVAL
            && self
                .swept
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && let Err(e) = pg.run(async {
                let client = pg.client().await?;
                for table in std::iter::once(&table).chain(self.also_sweep) {
                    client
                        .execute(
                            &format!("DELETE FROM {table} WHERE expires_at <= $1"),
                            &[&now],
                        )
                        .await?;
                }
                Ok(())
            })
        {
            // The rows stay until the next sweep; nothing is accepted wrongly meanwhile.
            tracing::debug!(error = %e, table, "could not sweep expired single-use rows");
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_cert_is_taken_out_of_the_url() {
        let (url, root) =
            split_root_cert("postgres://u:p@h/db?sslmode=require&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!(url, "postgres://u:p@h/db?sslmode=require");
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(split_root_cert("postgres://h/db").0, "postgres://h/db");
    }

    #[test]
    fn descriptions_never_show_the_password() {
        let text = describe("postgres://wharf:secret@db.example:6432/wharf?sslmode=require");
        assert_eq!(text, "postgres://wharf@db.example:6432/wharf");
        assert!(!text.contains("secret"));
    }
}
