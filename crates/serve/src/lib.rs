//! HTTP serving both Wharf servers share.
//!
//! | module | owns |
//! |---|---|
//! | [`limit`] | the sliding-window counter per client both servers' limits use (engine: request rate; destination: failed authentication) |
//! | [`listener`] | the TCP (or TLS) accept loop: HTTP/1.1 and HTTP/2, connection cap, header, body, idle and handshake timeouts, graceful drain |
//! | [`tls`] | PEM files to rustls, and the certificate that reloads on demand (SIGHUP) |
//! | [`metrics`] | the Prometheus registry, per-route request counts and latency, the `/metrics` text |
//! | [`running`] | a started server's handle (address, TLS, graceful stop) and binding its address |
//! | [`request_id`] | an `x-request-id` on every request and response, in every log line of the request |
//! | [`page`] | the security headers of both servers' HTML pages |

pub mod limit;
pub mod listener;
pub mod metrics;
pub mod page;
pub mod request_id;
pub mod running;
pub mod tls;

pub use listener::{BodyReadTimeout, ServeOptions, is_body_read_timeout, serve, serve_with};
pub use metrics::Metrics;
pub use running::{BindError, Server};
pub use tls::{TlsError, TlsFiles, TlsReloader};
