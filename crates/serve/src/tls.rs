//! Loading a server's TLS certificate and key into rustls (aws-lc-rs provider), and swapping
//! them while running.
//!
//! [`TlsReloader`] holds the current configuration; every new connection takes whatever is
//! current, so a reload (on SIGHUP) serves the new certificate to new connections while
//! connections already open finish on the old one. A reload that fails (a half-written file,
//! a key that does not match) keeps the old certificate and says why.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// PEM files of a server's certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain from tls_cert {path}: {problem}")]
    Cert { path: String, problem: String },
    #[error("cannot read the private key from tls_key {path}: {problem}")]
    Key { path: String, problem: String },
    #[error("tls_cert and tls_key do not form a usable pair: {0}")]
    Pair(rustls::Error),
}

/// Builds the rustls server configuration: TLS 1.2 and 1.3 only, the aws-lc-rs provider's
/// default (modern, AEAD-only) cipher suites, HTTP/2 and HTTP/1.1 offered through ALPN.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = files.cert.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert_path.clone(),
            problem: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_path,
            problem: "no PEM CERTIFICATE block found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.display().to_string(),
        problem: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Pair)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The current TLS configuration of a running server, reloadable from its files.
#[derive(Debug)]
pub struct TlsReloader {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsReloader {
    /// Loads the files once; fails as [`server_config`] does.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let current = RwLock::new(server_config(&files)?);
        Ok(Arc::new(Self { files, current }))
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the files again; on success new connections get the new certificate, on failure
    /// the old one stays and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
        Ok(())
    }
}
