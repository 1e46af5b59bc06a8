//! Helpers for Wharf's integration tests (never used by the product).
//!
//! * [`Recorder`]: a real HTTP server standing in for the customer's application: it records
//!   every request and answers as the test tells it to.
//! * [`TestCa`]: a throwaway certificate authority and server certificate (rcgen), written to
//!   PEM files, with a client that trusts it.
//! * [`SmtpListener`]: a local SMTP server that records the mail it is sent (alert tests).
//! * [`wait_until`]: polling with a deadline, for effects that happen in the background.
//! * [`postgres`]: a fresh PostgreSQL schema per test; whether to run on PostgreSQL at all.
//! * [`PgCluster`]: a private PostgreSQL server a test starts, stops, kills and restarts.
//! * [`SmallDisk`]: a small tmpfs, for the tests of a full disk.

pub mod cluster;
pub mod disk;
pub use disk::SmallDisk;
pub mod postgres;
pub use cluster::PgCluster;
pub mod smtp;
pub use smtp::{Mail, SmtpListener};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the recorder received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the recorder answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            content_type: "text/plain",
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Decide = dyn Fn(usize, &Received) -> Reply + Send + Sync;

struct Shared {
    received: Mutex<Vec<Received>>,
    decide: Box<Decide>,
    /// Requests being answered now, and the most ever at once, per path.
    in_flight: Mutex<std::collections::HashMap<String, (usize, usize)>>,
}

/// Counts a request as in flight on its path until dropped (answered, or its connection gone).
struct InFlight {
    shared: Arc<Shared>,
    path: String,
}

impl InFlight {
    fn start(shared: &Arc<Shared>, path: &str) -> InFlight {
        let mut paths = shared.in_flight.lock().unwrap();
        let (now, most) = paths.entry(path.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        InFlight {
            shared: shared.clone(),
            path: path.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((now, _)) = self.shared.in_flight.lock().unwrap().get_mut(&self.path) {
            *now -= 1;
        }
    }
}

/// A recording HTTP application server on 127.0.0.1.
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Starts a recorder that answers 200 to everything.
    pub async fn ok() -> Recorder {
        Recorder::start(|_, _| Reply::status(200)).await
    }

    /// Starts a recorder on a fresh port. `decide` gets the request's index (0-based, in
    /// arrival order) and the request, and says how to answer.
    pub async fn start(
        decide: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Recorder::serve(listener, decide)
    }

    /// Starts a recorder on a given address (to bring an application "back up").
    pub async fn start_on(
        addr: SocketAddr,
        decide: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> Recorder {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Recorder::serve(listener, decide)
    }

    fn serve(
        listener: tokio::net::TcpListener,
        decide: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> Recorder {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            decide: Box::new(decide),
            in_flight: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Recorder { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    /// The most requests this recorder was answering at once on any one path (a path's
    /// requests overlap when the next arrives before the previous one's answer was sent).
    pub fn max_in_flight_per_path(&self) -> usize {
        self.shared
            .in_flight
            .lock()
            .unwrap()
            .values()
            .map(|(_, most)| *most)
            .max()
            .unwrap_or(0)
    }
}

async fn record(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let received = Received {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let _in_flight = InFlight::start(&shared, &received.path);
    let reply = {
        let mut all = shared.received.lock().unwrap();
        let reply = (shared.decide)(all.len(), &received);
        all.push(received);
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    (
        StatusCode::from_u16(reply.status).unwrap(),
        [(http::header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

/// A test certificate authority and a server certificate for `localhost` and 127.0.0.1.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub ca_path: PathBuf,
}

impl TestCa {
    /// Generates a CA and a server certificate signed by it, written as PEM files into `dir`.
    pub fn new(dir: &Path) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Wharf Test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let cert_path = dir.join("server.pem");
        let key_path = dir.join("server-key.pem");
        let ca_path = dir.join("ca.pem");
        std::fs::write(&cert_path, server_cert.pem()).unwrap();
        std::fs::write(&key_path, server_key.serialize_pem()).unwrap();
        std::fs::write(&ca_path, ca_cert.pem()).unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            cert_path,
            key_path,
            ca_path,
        }
    }

    /// A client that trusts only this CA.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only(vec![
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap(),
            ])
            .build()
            .unwrap()
    }
}

/// Polls `check` every 20 ms until it returns true or `timeout` passes; returns the last answer.
pub async fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
