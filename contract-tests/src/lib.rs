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
