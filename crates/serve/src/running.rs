//! A server started in the background, as both servers' `start` hands it back: its address,
//! its reloadable TLS certificate, and a graceful stop; and the one way both bind their
//! listening address, so a taken port is said the same way whichever server hit it.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::TlsReloader;

/// The listening address could not be bound. Says which address and why; the caller adds
/// which setting chose the address (`listen` in a file, `--destination-listen` for `wharf up`),
/// since only it knows the words the user typed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source} (is another server using it?)")]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds `addr`, returning the listener and the address actually bound (port 0 picks one).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| BindError { addr, source })?;
    Ok((listener, local))
}

/// A running server: stop it with [`Server::shutdown`] or [`Server::run_until`].
pub struct Server {
    name: &'static str,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    tls: Option<Arc<TlsReloader>>,
}

impl Server {
    /// `task` serves until `shutdown` turns true, then drains and returns. `name` is the
    /// server's name in the shutdown log line.
    pub fn new(
        name: &'static str,
        local_addr: SocketAddr,
        shutdown: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
        tls: Option<Arc<TlsReloader>>,
    ) -> Self {
        Server {
            name,
            local_addr,
            shutdown,
            task,
            tls,
        }
    }

    /// The TLS certificate holder, to reload `tls_cert` and `tls_key` (on SIGHUP): new
    /// connections get the new certificate, open ones finish on the old; a failed reload keeps
    /// the old one. `None` without TLS.
    pub fn tls(&self) -> Option<Arc<TlsReloader>> {
        self.tls.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish, and returns when the server is done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!(
            server = self.name,
            "shutting down: draining in-flight requests"
        );
        self.shutdown().await;
    }
}
