//! The listening side both servers use: a TCP (or TLS) accept loop serving HTTP/1.1 and HTTP/2
//! through hyper, with the limits a server on the internet needs and a shutdown that drains.
//!
//! Written out rather than delegated to `axum::serve` because the servers need TLS whose
//! certificate can be swapped while running, a cap on open connections, timeouts against slow
//! and idle clients, and a shutdown that first lets in-flight requests finish (their messages
//! are then committed) before the caller stops its background workers.
//!
//! What each limit stops ([`ServeOptions`], config keys of the same names):
//!
//! | limit | stops | how |
//! |---|---|---|
//! | `max_connections` | thousands of connections exhausting file descriptors and memory | at the cap the loop stops accepting; new clients wait in the kernel's listen backlog until a connection closes |
//! | `header_read_timeout` | headers sent a byte a second (slowloris); idle HTTP/1.1 keep-alive | hyper closes a connection whose next request head is not complete in time |
//! | `idle_timeout` | connections that send nothing at all (before any request, or idle HTTP/2) | a connection with no bytes either way for this long is closed gracefully: requests in flight finish |
//! | `body_read_timeout` | bodies sent a byte a second | the body reports [`BodyReadTimeout`] once the request is this old; handlers answer 408 |
//! | [`TLS_HANDSHAKE_TIMEOUT`] | TLS handshakes that never finish | the connection is dropped |
//! | [`MAX_HEADER_BYTES`] | huge header sections held by many slow connections | HTTP/1.1: 431; HTTP/2: hyper's 16 KiB header list limit |
//!
//! Over TLS every response also carries `Strict-Transport-Security` ([`HSTS`]), set here so
//! no route of either server can forget it.

use crate::tls::TlsReloader;
use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;
use wharf_config::{ConfigError, err};

/// Default time a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a connection may stay silent (no bytes either way) before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time from a request's headers to the end of its body. 40 MiB (the protocol's
/// largest message) in 60 s needs about 5.5 Mbit/s.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default most connections open at once.
pub const MAX_CONNECTIONS: usize = 10_000;
/// The largest `max_connections` accepted; far above what one process's file descriptors allow.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;
/// How long a client may take to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests before closing their connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The most an HTTP/1.1 request head (request line and headers) may take: hyper's read buffer
/// limit. Redox's largest headers (a JWT, a SigV4 signature) are a few KiB; hyper's default of
/// about 400 KiB would let 10,000 slow connections hold 4 GB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The longest any of the timeouts may be set to: deadlines are computed as instants, and a
/// timeout of centuries would overflow them.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// The `Strict-Transport-Security` header every response over TLS carries: browsers (an
/// operator opening the status page or dashboard) then refuse plain HTTP to this host for a
/// year, so a network attacker cannot strip TLS from a later visit.
pub const HSTS: &str = "max-age=31536000";
/// How often "at max_connections" is logged at most, so an attack does not flood the log.
const CAP_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// The listener's limits. Defaults are the constants of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Most connections open at once (`max_connections`).
    pub max_connections: usize,
    /// Time to receive a complete request head (`header_read_timeout`).
    pub header_read_timeout: Duration,
    /// Silence after which a connection is closed (`idle_timeout`).
    pub idle_timeout: Duration,
    /// Time from a request's head to the end of its body (`body_read_timeout`).
    pub body_read_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
        }
    }
}

impl ServeOptions {
    /// Reads the four keys of a server's configuration file (`None`: the default), so both
    /// servers spell and check them the same way; errors name the key.
    pub fn from_config(
        max_connections: Option<usize>,
        header_read_timeout: Option<&str>,
        idle_timeout: Option<&str>,
        body_read_timeout: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let max_connections = max_connections.unwrap_or(MAX_CONNECTIONS);
        if !(1..=MAX_MAX_CONNECTIONS).contains(&max_connections) {
            return Err(err(
                "max_connections",
                format!(
                    "{max_connections} is out of range: use 1 to {MAX_MAX_CONNECTIONS} (and keep it below the process's open-file limit, `ulimit -n`)"
                ),
            ));
        }
        Ok(Self {
            max_connections,
            header_read_timeout: timeout(
                "header_read_timeout",
                header_read_timeout,
                HEADER_READ_TIMEOUT,
            )?,
            idle_timeout: timeout("idle_timeout", idle_timeout, IDLE_TIMEOUT)?,
            body_read_timeout: timeout("body_read_timeout", body_read_timeout, BODY_READ_TIMEOUT)?,
        })
    }
}

/// A positive duration key of at most [`MAX_TIMEOUT`].
fn timeout(key: &str, value: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let duration = wharf_config::duration(key, value, default)?;
    if duration > MAX_TIMEOUT {
        return Err(err(key, "must be at most 24h"));
    }
    Ok(duration)
}

/// Serves `router` on `listener` with the default [`ServeOptions`]; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    router: Router,
    shutdown: watch::Receiver<bool>,
) {
    serve_with(listener, tls, router, shutdown, ServeOptions::default()).await
}

/// Serves `router` on `listener` until `shutdown` changes, then stops accepting and waits (up
/// to [`DRAIN_TIMEOUT`]) for the requests in flight. With `tls`, every connection is TLS,
/// using the certificate current when it connects.
///
/// At `max_connections` the loop stops accepting rather than accepting and closing: a client
/// then waits in the kernel's listen backlog and is served, in arrival order, as soon as a
/// connection closes (idle ones close within `idle_timeout`, slow ones within the read
/// timeouts), instead of being refused outright; beyond the backlog the kernel sheds new
/// connections without costing this process a file descriptor.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    options: ServeOptions,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut connections = JoinSet::new();
    let mut last_cap_warning: Option<Instant> = None;

    'accepting: loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if last_cap_warning.is_none_or(|at| at.elapsed() >= CAP_WARNING_INTERVAL) {
                    last_cap_warning = Some(Instant::now());
                    tracing::warn!(
                        max_connections = options.max_connections,
                        "at max_connections: new connections wait until one closes (raise max_connections if this is normal load)"
                    );
                }
                loop {
                    tokio::select! {
                        permit = slots.clone().acquire_owned() => {
                            break permit.expect("the semaphore is never closed");
                        }
                        Some(_) = connections.join_next() => {}
                        _ = shutdown.changed() => break 'accepting,
                    }
                }
            }
        };
        let (stream, remote) = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => break pair,
                    Err(e) => {
                        // Usually out of file descriptors: wait a moment rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                // Finished connection tasks are reaped as they end, so the set stays small.
                Some(_) = connections.join_next() => {}
                _ = shutdown.changed() => break 'accepting,
            }
        };
        let _ = stream.set_nodelay(true);
        let body_read_timeout = options.body_read_timeout;
        let hsts = tls.is_some();
        let service = router
            .clone()
            .map_request(move |request: http::Request<hyper::body::Incoming>| {
                let (mut parts, body) = request.into_parts();
                parts.extensions.insert(ConnectInfo(remote));
                let body = DeadlineBody::new(body, body_read_timeout);
                http::Request::from_parts(parts, axum::body::Body::new(body))
            })
            .map_response(move |mut response: axum::response::Response| {
                if hsts {
                    response.headers_mut().insert(
                        http::header::STRICT_TRANSPORT_SECURITY,
                        http::HeaderValue::from_static(HSTS),
                    );
                }
                response
            });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.current()));
        let shutdown = shutdown.clone();
        let idle_timeout = options.idle_timeout;
        connections.spawn(async move {
            // Held for the connection's whole life, TLS handshake included.
            let _permit = permit;
            let io: Box<dyn Io> = match acceptor {
                None => Box::new(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => Box::new(stream),
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            let activity = Activity::new();
            let io = TokioIo::new(Tracked {
                inner: io,
                activity: activity.clone(),
            });
            let conn = builder.serve_connection(io, service);
            let mut conn = std::pin::pin!(conn);
            let mut shutdown = shutdown;
            // Closing is graceful either way: requests in flight finish first.
            let mut closing = false;
            let result = loop {
                let idle_deadline = activity.last() + idle_timeout;
                tokio::select! {
                    result = conn.as_mut() => break result,
                    _ = shutdown.changed(), if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = tokio::time::sleep_until(idle_deadline), if !closing => {
                        if activity.last() + idle_timeout <= Instant::now() {
                            tracing::debug!(%remote, "closing a connection idle for {idle_timeout:?}");
                            closing = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some connections did not finish within {DRAIN_TIMEOUT:?}; closing them");
        connections.shutdown().await;
    }
}

/// The byte stream of one connection, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// When a connection last moved a byte, shared between its stream and its driver.
#[derive(Clone)]
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// A stream that records when bytes last moved through it.
struct Tracked {
    inner: Box<dyn Io>,
    activity: Activity,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error a request body reports when it has not ended `body_read_timeout` after the
/// request's head arrived. Handlers find it with [`is_body_read_timeout`] and answer 408.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the request body did not arrive within {0:?} (body_read_timeout); send it faster, or ask the operator to raise body_read_timeout"
)]
pub struct BodyReadTimeout(pub Duration);

/// Whether `error`, or any error it wraps, is a [`BodyReadTimeout`].
pub fn is_body_read_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyReadTimeout>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body with a deadline for its last byte, counted from when the request's head
/// arrived: a per-read timeout would let a client trickling a byte a second hold a handler
/// (and its connection slot) forever. The timer is only armed once the body has to be waited
/// for, so bodies that arrived with their head cost nothing.
struct DeadlineBody<B> {
    inner: B,
    started: Instant,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    expired: bool,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, limit: Duration) -> Self {
        Self {
            inner,
            started: Instant::now(),
            limit,
            timer: None,
            expired: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let (started, limit) = (this.started, this.limit);
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + limit)));
        if timer.as_mut().poll(cx).is_ready() {
            this.expired = true;
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn options_come_from_config_keys_with_defaults() {
        assert_eq!(
            ServeOptions::from_config(None, None, None, None).unwrap(),
            ServeOptions::default()
        );
        let o = ServeOptions::from_config(Some(50), Some("5s"), Some("2s"), Some("1s")).unwrap();
        assert_eq!(o.max_connections, 50);
        assert_eq!(o.header_read_timeout, Duration::from_secs(5));
        assert_eq!(o.idle_timeout, Duration::from_secs(2));
        assert_eq!(o.body_read_timeout, Duration::from_secs(1));
        let e = ServeOptions::from_config(Some(0), None, None, None).unwrap_err();
        assert_eq!(e.key, "max_connections");
        let e = ServeOptions::from_config(None, None, None, Some("soon")).unwrap_err();
        assert_eq!(e.key, "body_read_timeout");
        let e = ServeOptions::from_config(None, Some("0s"), None, None).unwrap_err();
        assert_eq!(e.key, "header_read_timeout");
        let e =
            ServeOptions::from_config(None, None, Some("18446744073709551615s"), None).unwrap_err();
        assert_eq!(e.key, "idle_timeout");
    }

    /// A body that sends one byte every `every`, forever.
    struct Trickle {
        every: Duration,
        next: Pin<Box<tokio::time::Sleep>>,
    }

    impl Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.next.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let at = Instant::now() + self.every;
            self.next.as_mut().reset(at);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    #[tokio::test]
    async fn a_trickling_body_fails_at_its_deadline_not_per_read() {
        let every = Duration::from_millis(20);
        let trickle = Trickle {
            every,
            next: Box::pin(tokio::time::sleep(every)),
        };
        let started = Instant::now();
        let limit = Duration::from_millis(400);
        let error = DeadlineBody::new(trickle, limit)
            .collect()
            .await
            .unwrap_err();
        assert!(is_body_read_timeout(&*error), "{error}");
        let elapsed = started.elapsed();
        assert!(
            elapsed >= limit && elapsed < limit * 5,
            "cut off at the deadline, not earlier or much later: {elapsed:?}"
        );
    }

    #[tokio::test]
    async fn a_body_that_ends_in_time_is_untouched() {
        let body = http_body_util::Full::new(Bytes::from_static(b"hello"));
        let collected = DeadlineBody::new(body, Duration::from_secs(1))
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&collected[..], b"hello");
    }
}
