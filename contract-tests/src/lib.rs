//! Partner simulators and golden samples that pin every partner's wire format.
//!
//! The simulators speak real HTTP on loopback and check what they receive as strictly as the real
//! partner would; tests and the demo tell them how to misbehave.

pub mod behaviour;
pub mod bus_sim;
pub mod golden;
pub mod home_cti_sim;
pub mod legal_aid_sim;
pub mod mapped_sim;
pub mod samples;
pub mod wait;
pub mod webhook_sim;
pub mod xsd;

/// Serves `app` on a loopback `port` (0: any free one) in the background; where it listens.
pub async fn serve(
    port: u16,
    app: axum::Router,
    what: &'static str,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    Ok(addr)
}

/// A TLS front for a plain TCP service (a partner's broker reached over `amqps://`): each
/// connection to the returned loopback address is handshaken with `tls` (which decides whether
/// client certificates are required) and then carried to `upstream` byte for byte.
pub struct TlsProxy {
    pub addr: std::net::SocketAddr,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    carried: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    pub async fn start(
        upstream: String,
        tls: std::sync::Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        use std::sync::atomic::Ordering::Relaxed;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let carried = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r, c) = (refused.clone(), carried.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, upstream, r, c) =
                    (acceptor.clone(), upstream.clone(), r.clone(), c.clone());
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::info!(error = %e, "TLS proxy: handshake refused");
                            r.fetch_add(1, Relaxed);
                            return;
                        }
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    c.fetch_add(1, Relaxed);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Ok(Self {
            addr,
            refused,
            carried,
            task,
        })
    }

    /// Handshakes refused so far (an untrusted or missing client certificate).
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connections carried to the upstream service so far.
    pub fn carried(&self) -> usize {
        self.carried.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` over TLS on a loopback `port` (0: any free one) in the background, each
/// connection through `tls` (which decides whether client certificates are required). A failed
/// handshake closes that connection only.
pub async fn serve_tls(
    port: u16,
    app: axum::Router,
    what: &'static str,
    tls: std::sync::Arc<rustls::ServerConfig>,
) -> std::io::Result<std::net::SocketAddr> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "{what} stopped accepting");
                    return;
                }
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let stream = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::info!(error = %e, "{what}: TLS handshake refused");
                        return;
                    }
                };
                let service = TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
