//! The listening side: TCP (or TLS) accept loop, HTTP/1.1 and HTTP/2 through hyper, graceful
//! shutdown, and the forwarder tasks' lifetime.
//!
//! Written out rather than delegated to `axum::serve` because the server needs TLS, a header
//! read timeout against slow clients, and a shutdown that first drains in-flight requests (whose
//! messages are then committed) before it stops the forwarders.

use crate::config::Config;
use crate::{App, forward, receive, tls};
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::get;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use wharf_store::{Inbox, InboxOptions, StoreError};

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the inbox in data_dir: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {addr}: {source} (is another server using it? change `listen`)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running destination server.
pub struct Running {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    inbox: Inbox,
}

impl Running {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The server's inbox.
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Stops accepting, drains in-flight requests, stops the forwarders, and returns when done.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down: draining in-flight requests");
        self.shutdown().await;
    }
}

/// Opens the inbox, binds the listener, and starts serving and forwarding.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
    let inbox = Inbox::open(
        &config.data_dir,
        InboxOptions {
            queue_capacity: config.writer_queue_capacity,
            ..InboxOptions::default()
        },
    )?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;

    let http =
        wharf_delivery::client::build(None).expect("the HTTP client's fixed settings are valid");
    let clock: Arc<dyn wharf_auth::Clock> = Arc::new(wharf_auth::SystemClock);
    let guards: HashMap<String, Arc<crate::strategy::Guard>> = config
        .destinations
        .iter()
        .filter_map(|d| {
            let auth = d.auth.clone()?;
            let guard = crate::strategy::Guard::new(auth, tls.is_some(), clock.clone());
            Some((d.path.clone(), Arc::new(guard)))
        })
        .collect();
    let token_endpoints = guards
        .values()
        .filter_map(|g| Some((g.config.token_path.clone()?, g.clone())))
        .collect();
    let app = Arc::new(App {
        guards,
        token_endpoints,
        destinations: config
            .destinations
            .iter()
            .map(|d| (d.path.clone(), d.clone()))
            .collect::<HashMap<_, _>>(),
        inbox: inbox.clone(),
        http: http.clone(),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut forwarders = JoinSet::new();
    for destination in config
        .destinations
        .iter()
        .filter(|d| d.forward_url.is_some())
    {
        forwarders.spawn(forward::run(
            inbox.clone(),
            http.clone(),
            destination.clone(),
            shutdown_rx.clone(),
        ));
    }
    for d in &config.destinations {
        tracing::info!(
            destination = %d.name, path = %d.path, environment = %d.environment,
            forwarding = d.forward_url.is_some(), queries = d.query_url.is_some(),
            "destination ready"
        );
    }
    tracing::info!(address = %local_addr, tls = tls.is_some(), "destination server listening");

    let router = router(app);
    let task = tokio::spawn(accept_loop(listener, tls, router, shutdown_rx, forwarders));
    Ok(Running {
        local_addr,
        shutdown: shutdown_tx,
        task,
        inbox,
    })
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(receive::receive)
        .with_state(app)
}

/// Ready when the inbox can be read; the writer's health shows in every keep.
async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let reader = app.inbox.reader().clone();
    match tokio::task::spawn_blocking(move || reader.list(None, 1)).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "the inbox cannot be read"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    mut forwarders: JoinSet<()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);

    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Usually out of file descriptors: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request
                });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let result = match acceptor {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%remote, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%remote, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {DRAIN_TIMEOUT:?}; closing them");
    }
    // Forwarders saw the same shutdown signal; wait for them to put down what they hold.
    while forwarders.join_next().await.is_some() {}
    tracing::info!("destination server stopped");
}
