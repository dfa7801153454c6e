//! Built-in TLS for the console (`[console] cert_file` / `key_file`, PEM): rustls through
//! tokio-rustls. Handshakes run in their own tasks (a slow client holds up no one) and finished
//! connections are handed to axum through [`TlsListener`]. On SIGHUP the files are read again
//! and new connections get the new certificate; a pair that does not load is refused, logged,
//! and the one in use kept.

use axum::serve::Listener;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("console.cert_file {path}: cannot read a PEM certificate chain: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("console.key_file {path}: cannot read a PEM private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("console.cert_file and console.key_file do not make a usable pair: {0}")]
    Pair(String),
}

/// Reads the PEM pair into an acceptor.
pub fn load(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| e.to_string());
    let cert_pem = read(cert).map_err(|reason| TlsError::Cert { path: cert.into(), reason })?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Cert { path: cert.into(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Cert { path: cert.into(), reason: "no CERTIFICATE block in the file".into() });
    }
    let key_pem = read(key).map_err(|reason| TlsError::Key { path: key.into(), reason })?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key { path: key.into(), reason: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsError::Pair(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Connections whose handshake finished, for axum.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task has stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Starts accepting TLS on `tcp` with the pair at `cert`/`key` (already checked by `load`),
/// reloading it on SIGHUP, until `shutdown`. The listener, and the task to await.
pub fn serve_tls(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    files: (PathBuf, PathBuf),
    shutdown: CancellationToken,
) -> std::io::Result<(TlsListener, impl Future<Output = ()>)> {
    let local = tcp.local_addr()?;
    let (tx, ready) = mpsc::channel(64);
    let current = Arc::new(RwLock::new(acceptor));
    let accepting = async move {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(error = %e, "console: cannot watch for SIGHUP; the certificate will not be reloaded");
                None
            }
        };
        loop {
            let reload = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(()) = reload => match load(&files.0, &files.1) {
                    Ok(a) => {
                        *current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = a;
                        tracing::info!("console: TLS certificate reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "console: TLS certificate not reloaded; the one in use is kept"),
                },
                accepted = tcp.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "console: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let acceptor = current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                let _ = tx.send((tls, peer)).await;
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "console: TLS handshake failed"),
                            Err(_) => tracing::debug!("console: TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    };
    Ok((TlsListener { ready, local }, accepting))
}
