//! The listening side: TCP (or TLS) accept loop, HTTP/1.1 and HTTP/2 through hyper, graceful
//! shutdown, and the lifetime of the background tasks (the forwarders and retention).
//!
//! The accept loop, its connection cap and timeouts are `wharf-serve`'s; this module adds the
//! shutdown order: first drain in-flight requests (whose messages are then committed), then
//! stop the forwarders and the retention task.

use crate::config::Config;
use crate::metrics::DestinationMetrics;
use crate::{App, forward, receive};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wharf_serve::{TlsError, TlsReloader};
use wharf_store::{Inbox, InboxOptions, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the inbox (data_dir or database_url): {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("{0}; change `listen`")]
    Bind(#[from] wharf_serve::BindError),
}

/// A running destination server: the shared server handle and its inbox.
pub struct Running {
    server: wharf_serve::Server,
    inbox: Inbox,
}

impl Running {
    /// The server's TLS certificate holder ([`wharf_serve::Server::tls`]).
    pub fn tls(&self) -> Option<Arc<TlsReloader>> {
        self.server.tls()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The server's inbox.
    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// Stops accepting, drains in-flight requests, stops the forwarders, and returns when done.
    pub async fn shutdown(self) {
        self.server.shutdown().await
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        self.server.run_until(signal).await
    }
}

/// Opens the inbox, binds the listener, and starts serving and forwarding.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let tls = config.tls.clone().map(TlsReloader::load).transpose()?;
    let metrics = DestinationMetrics::new();
    let database = wharf_store::Database::from_config(
        &config.data_dir,
        config.database_url.as_ref().map(|u| u.as_str()),
    );
    let inbox = Inbox::open_database(
        &database,
        InboxOptions {
            queue_capacity: config.writer_queue_capacity,
            wal_reset_bytes: config.wal_reset_bytes,
            on_batch: Some(crate::metrics::batch_observer(metrics.batch_sizes.clone())),
            // A forwarder lease (PostgreSQL) must outlast the longest forward.
            forward_bound: config
                .destinations
                .iter()
                .map(|d| d.forward_timeout)
                .max()
                .unwrap_or_default(),
            max_connections: config.database_max_connections,
            ..InboxOptions::default()
        },
    )?;
    let (listener, local_addr) = wharf_serve::running::bind(config.listen).await?;

    let http =
        wharf_delivery::client::build(None).expect("the HTTP client's fixed settings are valid");
    let clock: Arc<dyn wharf_auth::Clock> = Arc::new(wharf_auth::SystemClock);
    // On PostgreSQL the servers sharing the database share their memory of single-use
    // credentials too; on SQLite each keeps its own.
    let shared_replays = inbox.shared_replays();
    let guards: HashMap<String, Arc<crate::strategy::Guard>> = config
        .destinations
        .iter()
        .filter_map(|d| {
            let auth = d.auth.clone()?;
            let guard =
                crate::strategy::Guard::new(&d.path, auth, clock.clone(), shared_replays.clone());
            Some((d.path.clone(), Arc::new(guard)))
        })
        .collect();
    let token_endpoints = guards
        .values()
        .filter_map(|g| Some((g.config.token_path.clone()?, g.clone())))
        .collect();
    let app = Arc::new(App {
        forwarders_running: Default::default(),
        metrics,
        admin_token: config.admin_token.clone(),
        metrics_token: config.metrics_token.clone().map(Arc::new),
        auth_limiter: crate::throttle::AuthLimiter::new(
            config.auth_failure_limit,
            config.auth_failure_window,
        ),
        guards,
        token_endpoints,
        destinations: config
            .destinations
            .iter()
            .map(|d| (d.path.clone(), d.clone()))
            .collect::<HashMap<_, _>>(),
        inbox: inbox.clone(),
        no_space: Default::default(),
        http: http.clone(),
    });
    let alerts =
        crate::alerts::Alerts::new(config.alert_webhook_url.clone(), config.stuck_alert_after);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut background = JoinSet::new();
    for destination in config
        .destinations
        .iter()
        .filter(|d| d.forward_url.is_some())
    {
        let running = app.forwarders_running.clone();
        running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let forwarder = forward::run(
            inbox.clone(),
            alerts.clone(),
            destination.clone(),
            shutdown_rx.clone(),
        );
        background.spawn(async move {
            forwarder.await;
            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
    // The retention task stops with the forwarders and is waited for like them.
    if let Some(retention) = config.forwarded_retention {
        background.spawn(crate::retention::run(
            inbox.clone(),
            retention,
            app.metrics.pruned.clone(),
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
    let task = tokio::spawn(serve(
        listener,
        tls.clone(),
        router,
        shutdown_rx,
        config.serve,
        background,
    ));
    Ok(Running {
        server: wharf_serve::Server::new("destination server", local_addr, shutdown_tx, task, tls),
        inbox,
    })
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(metrics).route_layer(axum::middleware::from_fn_with_state(
                app.metrics_token.clone(),
                wharf_serve::metrics::require_token,
            )),
        )
        .route("/_wharf", get(crate::page::page))
        .route("/_wharf/skip", axum::routing::post(crate::page::skip))
        .route("/_wharf/replay", axum::routing::post(crate::page::replay))
        .fallback(receive::receive)
        // Inside the metrics layer, so its 429s and the failures it counts are recorded.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::throttle::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.metrics.registry.clone(),
            wharf_serve::metrics::record,
        ))
        .layer(axum::middleware::from_fn(wharf_serve::request_id::layer))
        .with_state(app)
}

/// `/metrics`: Prometheus text, inbox depths read now.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let reader = app.inbox.reader().clone();
    let destinations: Vec<(String, bool)> = app
        .destinations
        .values()
        .map(|d| (d.name.clone(), d.forward_url.is_some()))
        .collect();
    let app2 = app.clone();
    match tokio::task::spawn_blocking(move || app2.metrics.render(&reader, &destinations)).await {
        Ok(text) => wharf_serve::metrics::respond(text),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Ready when the inbox writer is running, the inbox can be read and takes writes, and every
/// forwarder is running; otherwise 503 saying which is not. While the inbox refuses writes for
/// lack of space, each call tries a write as large as the last refused message (the
/// load balancer that reads this sends nothing else meanwhile) and is ready again once one
/// succeeds.
async fn readyz(State(app): State<Arc<App>>) -> (StatusCode, String) {
    let unavailable = |why: &str| (StatusCode::SERVICE_UNAVAILABLE, why.to_owned());
    if !app.inbox.writer_running() {
        return unavailable("the inbox writer is not running");
    }
    let reader = app.inbox.reader().clone();
    if !matches!(
        tokio::task::spawn_blocking(move || reader.list(&wharf_store::ListQuery::oldest(1))).await,
        Ok(Ok(_))
    ) {
        return unavailable("the inbox cannot be read");
    }
    if let Some((_, needed)) = app.no_space.current() {
        match app.inbox.probe_write(needed).await {
            Ok(()) => app.no_space.cleared(),
            Err(e) if e.is_no_space() => {
                app.no_space.refused(e.to_string(), needed);
                return unavailable(&format!("the inbox refuses writes: {e}"));
            }
            Err(e) => return unavailable(&format!("the inbox refuses writes: {e}")),
        }
    }
    let expected = app
        .destinations
        .values()
        .filter(|d| d.forward_url.is_some())
        .count();
    if app
        .forwarders_running
        .load(std::sync::atomic::Ordering::SeqCst)
        < expected
    {
        return unavailable("a forwarder has stopped");
    }
    (StatusCode::OK, "ready".to_owned())
}

/// Serves until shutdown, then waits for the background tasks (which saw the same signal) to
/// put down what they hold.
async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    router: Router,
    shutdown: watch::Receiver<bool>,
    options: wharf_serve::ServeOptions,
    mut background: JoinSet<()>,
) {
    wharf_serve::serve_with(listener, tls, router, shutdown, options).await;
    while background.join_next().await.is_some() {}
    tracing::info!("destination server stopped");
}
