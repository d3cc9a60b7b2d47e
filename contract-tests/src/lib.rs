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
