//! How fast an agent gets the answer to a transfer request (`POST /api/v1/transfers`), the
//! partner CTI (12333 simulator, GB18030 XML, token) answering at once. The target: under
//! a second. Prints figures and the ceiling; asserts nothing.
//!
//! `cargo bench -p hotline-gateway --bench transfer_answer` (`-- <transfers> <concurrency>`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use contract_tests::mapped_sim::{MappedSim, MappedSimOptions};
use contract_tests::samples::random_draft;
use hotline_gateway::Gateway;
use hotline_gateway::config::{
    AdapterKind, Config, PartnerConfig, RetryConfig, ServerConfig, StoreConfig, TransfersConfig,
};
use serde_json::json;

const CEILING_MS: f64 = 1000.0;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(2000);
    let concurrency = args.get(1).copied().unwrap_or(8).max(1);
    let mappings = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mappings");
    let sim = MappedSim::start(MappedSimOptions {
        dir: &mappings.join("12333"),
        app_id: "hotline-12348".into(),
        gateway_secret: "bench-gateway-secret-0001".into(),
        partner_secret: "bench-partner-secret-0001".into(),
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let partner = PartnerConfig {
        adapter: AdapterKind::Mapped,
        url: sim.url(),
        signing_secret: "bench-gateway-secret-0001".into(),
        verify_secret: "bench-partner-secret-0001".into(),
        mapping: None,
        app_id: "hotline-12348".into(),
        poll_url: None,
        poll_ack_url: None,
        transfer_url: Some(sim.cti_url()),
        poll_interval: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(60),
        concurrency: 8,
        retry: RetryConfig::default(),
        breaker: Default::default(),
        inbound_rate: None,
        inbound_burst: None,
        outbound_rate: None,
        tls_identity: None,
        bus: None,
        outbound_tls: None,
        allow_plain_http: false,
    };
    let config = Config {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            ..ServerConfig::default()
        },
        store: StoreConfig {
            path: dir.path().join("bench.db"),
            ..StoreConfig::default()
        },
        mappings_dir: mappings.clone(),
        sla: hotline_gateway::config::SlaConfig {
            calendar_dir: mappings.join("calendar"),
            ..Default::default()
        },
        partners: BTreeMap::from([("12333".to_owned(), partner)]),
        transfers: TransfersConfig::default(),
        ..Config::default()
    };
    let gateway = Gateway::start(config).await?;
    let url = format!("{}/api/v1/transfers", gateway.base_url());
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = total.div_ceil(concurrency);
    for w in 0..concurrency {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let mut times = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let body = json!({
                    "call_id": format!("BENCH-{w}-{i}"),
                    "target": "12333",
                    "agent_id": "A0001",
                    "ticket": random_draft(),
                });
                let t = Instant::now();
                let r = client.post(&url).json(&body).send().await?;
                let status = r.status();
                let v: serde_json::Value = r.json().await?;
                anyhow::ensure!(
                    status.as_u16() == 201 && v["state"] == "granted",
                    "HTTP {status}: {v}"
                );
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(times)
        });
    }
    let mut times = Vec::with_capacity(total);
    while let Some(r) = tasks.join_next().await {
        times.extend(r??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let (p50, p95, p99) = (
        percentile(&times, 0.50),
        percentile(&times, 0.95),
        percentile(&times, 0.99),
    );
    println!("transfer answer: POST /api/v1/transfers → 12333 CTI (GB18030 XML) → granted");
    println!("  transfers          {}", times.len());
    println!("  concurrency        {concurrency}");
    println!("  per second         {:.0}", times.len() as f64 / elapsed);
    println!("  p50 / p95 / p99    {p50:.1} / {p95:.1} / {p99:.1} ms");
    println!(
        "  ceiling            {CEILING_MS:.0} ms (p99 {} it)",
        if p99 < CEILING_MS {
            "is under"
        } else {
            "is OVER"
        }
    );
    println!(
        "{}",
        json!({
            "transfers": times.len(),
            "concurrency": concurrency,
            "per_s": (times.len() as f64 / elapsed).round(),
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "ceiling_ms": CEILING_MS,
        })
    );
    gateway.shutdown().await
}
