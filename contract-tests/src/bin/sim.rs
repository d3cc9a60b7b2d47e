//! A partner simulator as its own process, for benchmarks: `sim --partner-dir mappings/12315
//! --gateway-secret … --partner-secret …` runs that partner's simulator (taken messages at
//! `GET /stats`); `sim --trivial` runs the ceiling server, which reads each body and answers 200.
//! The first line printed is `listening <base URL>`.

use std::path::PathBuf;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use clap::Parser;
use contract_tests::mapped_sim::{MappedSim, MappedSimOptions};

#[derive(Parser)]
struct Args {
    /// A partner folder with mapping.toml and partner.toml.
    #[arg(long, required_unless_present = "trivial")]
    partner_dir: Option<PathBuf>,
    #[arg(long, default_value = "bench-gateway-secret-0001")]
    gateway_secret: String,
    #[arg(long, default_value = "bench-partner-secret-0001")]
    partner_secret: String,
    /// Read the body, answer 200, nothing else: the most one HTTP exchange can do.
    #[arg(long)]
    trivial: bool,
    /// Loopback port to listen on (0: any free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.trivial {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
        println!("listening http://{}", listener.local_addr()?);
        let app = Router::new().fallback(|_body: Bytes| async { StatusCode::OK });
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let dir = args
        .partner_dir
        .ok_or_else(|| anyhow::anyhow!("--partner-dir is required"))?;
    let sim = MappedSim::start_on(
        MappedSimOptions {
            dir: &dir,
            app_id: "hotline-12348".into(),
            gateway_secret: args.gateway_secret,
            partner_secret: args.partner_secret,
        },
        args.port,
    )
    .await?;
    sim.set_lean(true);
    println!("listening http://{}", sim.addr);
    std::future::pending::<()>().await;
    Ok(())
}
