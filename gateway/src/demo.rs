//! `hotline-gateway demo`: the gateway on SQLite with simulated partners on loopback and a steady
//! trickle of tickets both ways, so that everything can be watched working on one machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use contract_tests::samples::random_draft;
use contract_tests::webhook_sim::{Behaviour, SimOptions, WebhookSim};
use serde_json::json;

use crate::Gateway;
use crate::config::{AdapterKind, Config, PartnerConfig, RetryConfig, ServerConfig, StoreConfig};

pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Time between two tickets from the home side.
    pub interval: Duration,
}

struct DemoPartner {
    id: &'static str,
    behaviour: Behaviour,
    what: &'static str,
}

fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
    )
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let partners = [
        DemoPartner {
            id: "demo-a",
            behaviour: Behaviour::Ack,
            what: "可靠，同步回执 reliable, synchronous receipt",
        },
        DemoPartner {
            id: "demo-b",
            behaviour: Behaviour::Flaky { percent: 40 },
            what: "不稳定，40% 返回 503 flaky: 40% answered 503, retried",
        },
        DemoPartner {
            id: "demo-c",
            behaviour: Behaviour::Async {
                delay: Duration::from_secs(2),
            },
            what: "两步回执：先 202，2 秒后异步确认 two-step: 202, then a late ack",
        },
        DemoPartner {
            id: "demo-d",
            behaviour: Behaviour::Fail { status: 503 },
            what: "故障中，投递进入死信 down: deliveries end as dead letters",
        },
    ];

    let mut sims = Vec::new();
    let mut configs = BTreeMap::new();
    for p in &partners {
        let (ours, theirs) = (secret(), secret());
        let sim = WebhookSim::start(
            SimOptions {
                partner: p.id.into(),
                verify_secret: ours.clone(),
                signing_secret: theirs.clone(),
                gateway: None,
                auto_receipt: Some(Duration::from_secs(3)),
            },
            0,
        )
        .await?;
        sim.set_behaviour(p.behaviour.clone());
        configs.insert(
            p.id.to_owned(),
            PartnerConfig {
                adapter: AdapterKind::Webhook,
                url: sim.url(),
                signing_secret: ours,
                verify_secret: theirs,
                mapping: None,
                app_id: "hotline-12348".into(),
                poll_url: None,
                poll_ack_url: None,
                poll_interval: Duration::from_secs(5),
                timeout: Duration::from_secs(5),
                ack_timeout: Duration::from_secs(60),
                concurrency: 4,
                retry: RetryConfig {
                    min_delay: Duration::from_secs(1),
                    max_delay: Duration::from_secs(30),
                    factor: 2.0,
                    max_attempts: 4,
                    jitter: true,
                },
            },
        );
        sims.push(sim);
    }

    let config = Config {
        server: ServerConfig {
            listen: opts.listen,
            ..ServerConfig::default()
        },
        store: StoreConfig {
            path: opts.data_dir.join("gateway.db"),
            ..StoreConfig::default()
        },
        partners: configs,
        ..Config::default()
    };
    let gateway = Gateway::start(config).await?;
    let base = gateway.base_url();
    for sim in &sims {
        sim.set_gateway(&base);
    }

    println!();
    println!("hotline-gateway 演示已启动 demo running");
    println!(
        "  数据目录 data:            {}",
        opts.data_dir.join("gateway.db").display()
    );
    println!("  接口 API:                 {base}/api/v1/tickets");
    println!("  死信 dead letters:        {base}/api/v1/deliveries?status=dead");
    println!("  接口文档 OpenAPI:         {base}/api/v1/openapi.json");
    println!("  指标 metrics:             {base}/metrics");
    println!("  模拟合作方 simulated partners:");
    for (p, sim) in partners.iter().zip(&sims) {
        println!("    {:<7} {}  {}", p.id, sim.url(), p.what);
    }
    println!(
        "  每 {:?} 从 12348 发出一张工单，合作方也会向 12348 转办工单。",
        opts.interval
    );
    println!(
        "  A ticket leaves 12348 every {:?}; the partners send tickets to 12348 too.",
        opts.interval
    );
    println!("  按 Ctrl-C 停止 press Ctrl-C to stop.");
    println!();

    let trickle = tokio::spawn(trickle(base, sims, opts.interval));
    tokio::signal::ctrl_c().await?;
    println!("正在停止 stopping…");
    trickle.abort();
    gateway.shutdown().await
}

/// Home → partners every `interval`; one partner → 12348 every third round.
async fn trickle(base: String, sims: Vec<WebhookSim>, interval: Duration) {
    let client = reqwest::Client::new();
    let run = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let mut tick = tokio::time::interval(interval);
    for n in 0u64.. {
        tick.tick().await;
        let target = &sims[n as usize % sims.len()];
        let body = json!({
            "external_id": format!("SD12348-{run}-{n:05}"),
            "target": target.partner(),
            "ticket": random_draft(),
        });
        match client
            .post(format!("{base}/api/v1/tickets"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "demo ticket refused"),
            Err(e) => tracing::warn!(error = %e, "demo ticket not sent"),
        }
        if n % 3 == 0 {
            let from = &sims[(n as usize / 3) % sims.len()];
            let number = format!("{}-IN-{run}-{n:05}", from.partner().to_uppercase());
            if let Err(e) = from.send_ticket(&number, &random_draft()).await {
                tracing::warn!(error = %e, "demo inbound ticket not sent");
            }
        }
    }
}
