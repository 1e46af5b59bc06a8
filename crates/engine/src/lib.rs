//! The engine: what Redox runs for its customers.
//!
//! Today: destination records of one organization behind a management API shaped like Redox's
//! Platform API, Verify and Save, ingestion of asynchronous messages from sources, and the
//! durable per-destination FIFO queue on Redox's retry ladder with its logs and attempts.
//! Queries, stop/resend, pause/resume, alerts and `wharf up` arrive with the rest of issue 3.
//!
//! * [`config`]: the TOML configuration and its validation.
//! * [`secrets`]: sealing secrets at rest with the master key.
//! * `api`: the management API (`/platform/v1/...`, one module per resource) and ingestion.
//! * `queue`: the delivery worker (FIFO per destination, retry ladder).
//! * `commit`: group commit for ingestion and attempts.

mod api;
mod commit;
pub mod config;
mod present;
mod queue;
pub mod secrets;

pub use config::EngineConfig;

use std::net::SocketAddr;
use tokio::sync::watch;
use wharf_store::StoreError;
use wharf_store::engine::EngineStore;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the engine database in data_dir: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source} (is another server using it? change `listen`)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running engine.
pub struct Running {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish, and returns when done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down the engine");
        self.shutdown().await;
    }
}

/// Opens the store (creating the default organization on first start) and serves the API.
pub async fn start(config: EngineConfig) -> Result<Running, StartError> {
    let store = EngineStore::open(&config.data_dir)?;
    let organization = store.ensure_organization(&config.organization)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(address = %local_addr, organization = %organization.name, "engine listening");
    let mut config = config;
    config
        .public_url
        .get_or_insert_with(|| format!("http://{local_addr}"));
    let state = api::State::new(store, config, organization);
    let router = api::router(state.clone());
    let (shutdown, mut signal) = watch::channel(false);
    let worker = tokio::spawn(queue::run(state, signal.clone()));
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = signal.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the engine's HTTP server failed");
        }
        let _ = worker.await;
    });
    Ok(Running {
        local_addr,
        shutdown,
        task,
    })
}
