//! The engine: what Redox runs for its customers.
//!
//! Destination records and auth credentials of one organization behind a management API
//! shaped like Redox's Platform API, Verify and Save, ingestion from sources (notifications
//! queued durably, queries relayed), the durable per-destination FIFO queue on Redox's retry
//! ladder with its logs and attempts, alerts when a queue pauses and recovers, a dashboard,
//! `/metrics`, `/healthz` and `/readyz`.
//!
//! One core and three callers, each arrow pointing one way:
//!
//! * [`app`]: the core: the engine's context, its use cases, its typed domain and
//!   [`app::EngineError`]. It knows nothing of HTTP.
//! * [`api`]: the Platform API (`/platform/v1/...`, in Redox's documented shapes, with its
//!   OpenAPI document) and ingestion; calls `app`.
//! * [`dashboard`]: the operators' web pages under `/dashboard` (server-rendered HTML); calls
//!   `app`.
//! * `worker`: the delivery worker (FIFO per destination, retry ladder); calls `app`.
//!
//! Beside them: `http` (the one mapping of `EngineError` to HTTP, for the API and the
//! dashboard), [`config`] (the TOML configuration and its validation), [`secrets`] (sealing
//! secrets at rest with the master key), `metrics` (the Prometheus series) and `rate_limit`
//! (requests per client per window on ingestion, the API and the sign-in form). Apart from
//! the server: [`client`], a client of the management API for the commands that drive an
//! engine over HTTP (`wharf up`, the benchmarks).

mod api;
mod app;
pub mod client;
pub mod config;
pub mod dashboard;
mod http;
mod metrics;
mod rate_limit;
mod schedule;
pub mod secrets;
mod worker;

pub use api::{OPENAPI_PATH, openapi_document};
pub use config::EngineConfig;

use tokio::sync::watch;
use wharf_store::StoreError;
use wharf_store::engine::EngineStore;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the engine database (data_dir or database_url): {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] wharf_serve::TlsError),
    #[error("{0}; change `listen`")]
    Bind(#[from] wharf_serve::BindError),
    #[error("cannot start the delivery worker's threads: {0}")]
    Worker(std::io::Error),
    #[error("cannot record the configuration's [[sources]] as sources: {0}")]
    Sources(app::EngineError),
    #[error(
        "cannot record the configuration's paused-queue alerts (alert_webhook_url, alert_email) as alert rules: {0}"
    )]
    AlertRules(app::EngineError),
}

/// A running engine.
pub type Running = wharf_serve::Server;

/// Opens the store (creating the default organization on first start) and serves the API.
pub async fn start(config: EngineConfig) -> Result<Running, StartError> {
    let database = wharf_store::Database::from_config(
        &config.data_dir,
        config.database_url.as_ref().map(|u| u.as_str()),
    );
    // A queue is only worked while its lease outlasts one attempt (PostgreSQL; see
    // wharf_store::postgres::lease).
    let options = wharf_store::engine::EngineStoreOptions {
        attempt_bound: config.delivery_timeout,
        work_queues: true,
        max_connections: config.database_max_connections,
        ..Default::default()
    };
    let store = EngineStore::open_database(&database, &options)?;
    let organization = store.ensure_organization(&config.organization)?;
    let (listener, local_addr) = wharf_serve::running::bind(config.listen).await?;
    let tls = config
        .tls
        .clone()
        .map(wharf_serve::TlsReloader::load)
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(address = %local_addr, tls = tls.is_some(), organization = %organization.name, "engine listening");
    let mut config = config;
    config
        .public_url
        .get_or_insert_with(|| format!("{scheme}://{local_addr}"));
    let serve_options = config.serve;
    let leases = store.clone();
    let clock = std::sync::Arc::new(wharf_auth::clock::SystemClock);
    let engine = app::Engine::new(store, config, organization, clock);
    app::sources::sync_config(&engine)
        .await
        .map_err(StartError::Sources)?;
    app::alert_rules::sync_config(&engine)
        .await
        .map_err(StartError::AlertRules)?;
    let router = api::router(engine.clone());
    let (shutdown, signal) = watch::channel(false);
    let schedule = schedule::spawn(engine.clone(), signal.clone());
    let worker = worker::spawn(engine, signal.clone()).map_err(StartError::Worker)?;
    let serving_tls = tls.clone();
    let task = tokio::spawn(async move {
        // First the HTTP side drains (answered requests are committed), then the delivery
        // worker finishes the attempts it has in flight and records them.
        wharf_serve::serve_with(listener, serving_tls, router, signal, serve_options).await;
        let _ = worker.await;
        let _ = schedule.await;
        // Other engines on the same database take this one's queues over at once.
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || leases.release_leases()).await {
            tracing::warn!(error = %e, "could not release queue leases; they expire by themselves");
        }
        tracing::info!("engine stopped");
    });
    Ok(wharf_serve::Server::new(
        "engine", local_addr, shutdown, task, tls,
    ))
}
