//! The HTTP(S) server: accepts connections, optionally over TLS with client certificates, and
//! serves the router on each with hyper. Header deadlines keep a slow client (slow loris) from
//! holding a connection; on shutdown no new connection is accepted and open ones finish their
//! requests.
//!
//! With `[server.tls]`, the server speaks TLS 1.2/1.3 only. With `client_ca`, a client that
//! presents a certificate must present one that chains to it (or the handshake fails); the
//! certificate's names ([`PeerIdentity`]) travel with each request, and a partner configured
//! with `tls_identity` must present it to use its ingress.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Longest wait for a request's headers, and for a TLS handshake.
const HEADER_DEADLINE: Duration = Duration::from_secs(10);
/// Longest wait for open connections at shutdown.
const DRAIN: Duration = Duration::from_secs(20);

/// `[server.tls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    pub cert: PathBuf,
    /// PEM private key of the server.
    pub key: PathBuf,
    /// PEM CA certificate(s) that partner client certificates must chain to.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// The names in a client certificate (subject CN and DNS subject-alternative names); empty
/// without TLS or without a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity(pub Vec<String>);

impl PeerIdentity {
    fn of(cert: &CertificateDer<'_>) -> Self {
        let Ok((_, x509)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
            return Self::default();
        };
        let mut names: Vec<String> = x509
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                    names.push((*dns).to_owned());
                }
            }
        }
        Self(names)
    }

    pub fn names(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }
}

/// The rustls configuration: TLS 1.2+ only, client certificates verified against `client_ca`.
pub fn tls_config(c: &TlsConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_file_iter(&c.cert)
        .with_context(|| format!("server.tls.cert: reading {}", c.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("server.tls.cert: {} is not PEM", c.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&c.key)
        .with_context(|| format!("server.tls.key: reading a PEM key from {}", c.key.display()))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &c.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("server.tls.client_ca: reading {}", ca.display()))?
            {
                roots
                    .add(cert.with_context(|| format!("server.tls.client_ca: {}", ca.display()))?)
                    .context("server.tls.client_ca: not a CA certificate")?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            // The home API and the dashboard are reached without a client certificate;
            // a certificate that is presented must verify.
            .allow_unauthenticated()
            .build()
            .context("server.tls.client_ca")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("server.tls: the key does not match the certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration in use, read again from its files on demand (SIGHUP or
/// `POST /api/v1/admin/tls/reload`): new connections use the new certificate, key and client CA;
/// open ones keep theirs. A reload that fails leaves the current configuration in place.
pub struct TlsReloader {
    files: TlsConfig,
    current: std::sync::RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsReloader {
    pub fn new(files: TlsConfig) -> anyhow::Result<Self> {
        let current = tls_config(&files)?;
        Ok(Self {
            files,
            current: std::sync::RwLock::new(current),
        })
    }

    pub fn reload(&self) -> anyhow::Result<()> {
        let fresh = tls_config(&self.files)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| anyhow::anyhow!("the TLS configuration lock is poisoned"))?;
        *current = fresh;
        Ok(())
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current
            .read()
            .ok()
            .map(|c| TlsAcceptor::from(Arc::clone(&c)))
    }
}

/// Serves `router` on `listener` until `shutdown`, over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<TlsReloader>>,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_DEADLINE);
    http.http2().timer(TokioTimer::new());
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let router = router.clone();
        // Each connection takes the configuration current when it arrives.
        let acceptor = match &tls {
            Some(t) => match t.acceptor() {
                Some(a) => Some(a),
                None => continue,
            },
            None => None,
        };
        let http = http.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let (identity, io) = match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_DEADLINE, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let identity = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(PeerIdentity::of)
                                .unwrap_or_default();
                            (identity, Io::Tls(Box::new(stream)))
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake refused");
                            metrics::counter!("hotline_tls_handshakes_refused_total").increment(1);
                            return;
                        }
                        Err(_) => {
                            tracing::info!(%peer, "TLS handshake too slow; connection closed");
                            return;
                        }
                    }
                }
                None => (PeerIdentity::default(), Io::Plain(tcp)),
            };
            // Wrap the router once (not every route, as Router::layer would) per connection.
            let app = tower::Layer::layer(&axum::Extension(identity), router);
            let service = TowerToHyperService::new(app);
            let result = match io {
                Io::Plain(s) => {
                    let conn = http.serve_connection_with_upgrades(TokioIo::new(s), service);
                    watcher.watch(conn.into_owned()).await
                }
                Io::Tls(s) => {
                    let conn = http.serve_connection_with_upgrades(TokioIo::new(*s), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {DRAIN:?}; closing them");
    }
    Ok(())
}

enum Io {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}
