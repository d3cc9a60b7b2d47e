//! `hotline-gateway demo`: the gateway on SQLite with simulated partners on loopback and a steady
//! trickle of tickets both ways, so that everything can be watched working on one machine.

mod platforms;
mod transfers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use contract_tests::behaviour::{Behaviour, CtiBehaviour};
use contract_tests::home_cti_sim::HomeCtiSim;
use contract_tests::mapped_sim::{MappedSim, MappedSimOptions};
use contract_tests::samples::random_draft;
use contract_tests::webhook_sim::{SimOptions, WebhookSim};
use hotline_model::TicketKind;
use serde_json::json;

use crate::Gateway;
use crate::config::{
    AdapterKind, BreakerConfig, Config, PartnerConfig, PrivacyConfig, RetryConfig, RouteConfig,
    ServerConfig, SlaConfig, StoreConfig, TransfersConfig,
};
use crate::transfer::hours::BusinessHours;

pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Time between two tickets from the home side.
    pub interval: Duration,
    /// The partner mapping folders.
    pub mappings_dir: PathBuf,
}

const GATEWAY_SECRET: &str = "demo-gateway-secret-2026";
const PARTNER_SECRET: &str = "demo-partner-secret-2026";

fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
    )
}

fn demo_retry() -> RetryConfig {
    RetryConfig {
        min_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(30),
        factor: 2.0,
        max_attempts: 4,
        jitter: true,
    }
}

fn partner(adapter: AdapterKind, url: String, signing: String, verify: String) -> PartnerConfig {
    PartnerConfig {
        adapter,
        url,
        signing_secret: signing,
        verify_secret: verify,
        mapping: None,
        app_id: "hotline-12348".into(),
        poll_url: None,
        poll_ack_url: None,
        transfer_url: None,
        poll_interval: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(60),
        concurrency: 4,
        retry: demo_retry(),
        // Short pauses so that the down partner's dead letters and the breaker show quickly.
        breaker: BreakerConfig {
            failures: 5,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(20),
        },
        inbound_rate: None,
        inbound_burst: None,
        outbound_rate: None,
        tls_identity: None,
        bus: None,
        outbound_tls: None,
        allow_plain_http: false,
    }
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.mappings_dir.join("12345/mapping.toml").exists(),
        "no partner mappings in {} (run the demo from the repository root, or pass --mappings-dir)",
        opts.mappings_dir.display()
    );
    // The four partner hotlines, each a simulator speaking its own dialect.
    let mut sims = Vec::new();
    let mut partners = BTreeMap::new();
    let roles = [
        (
            "12345",
            Behaviour::Ack,
            "XML + HMAC-SHA256，同步回执 synchronous receipt",
        ),
        (
            "12315",
            Behaviour::Flaky { percent: 30 },
            "JSON + HMAC-SM3，30% 返回 503 被重试 flaky, retried",
        ),
        (
            "12333",
            Behaviour::Async {
                delay: Duration::from_secs(2),
            },
            "GB18030 XML，两步回执 two-step ack",
        ),
        (
            "12338",
            Behaviour::Ack,
            "JSON，网关轮询其发件箱 polled outbox",
        ),
    ];
    for (id, behaviour, _) in &roles {
        let sim = MappedSim::start(MappedSimOptions {
            dir: &opts.mappings_dir.join(id),
            app_id: "hotline-12348".into(),
            gateway_secret: GATEWAY_SECRET.into(),
            partner_secret: PARTNER_SECRET.into(),
        })
        .await?;
        sim.set_behaviour(behaviour.clone());
        sim.set_auto_reply(Some(Duration::from_secs(4)));
        let mut p = partner(
            AdapterKind::Mapped,
            sim.url(),
            GATEWAY_SECRET.into(),
            PARTNER_SECRET.into(),
        );
        if *id == "12338" {
            p.poll_url = Some(sim.outbox_url());
            p.poll_ack_url = Some(sim.outbox_ack_url());
        }
        // Their call centres: 12345 is always busy; the others take transfers.
        p.transfer_url = Some(sim.cti_url());
        if *id == "12345" {
            sim.set_cti(CtiBehaviour::Refuse(hotline_model::RefusalReason::Busy));
        }
        partners.insert((*id).to_owned(), p);
        sims.push(sim);
    }
    // A partner that is down, so that dead letters can be seen and replayed.
    let (ours, theirs) = (secret(), secret());
    let down = WebhookSim::start(
        SimOptions {
            partner: "demo-down".into(),
            verify_secret: ours.clone(),
            signing_secret: theirs.clone(),
            gateway: None,
            auto_receipt: None,
        },
        0,
    )
    .await?;
    down.set_behaviour(Behaviour::Fail { status: 503 });
    partners.insert(
        "demo-down".into(),
        partner(AdapterKind::Webhook, down.url(), ours, theirs),
    );

    // 12348 法网 and the legal-aid case system.
    let (platforms, extra) = platforms::start(&opts.mappings_dir).await?;
    partners.extend(extra);

    // The 12348 CTI: takes the partners' callers and hears how transfers ended.
    let home_cti = HomeCtiSim::start(None).await?;
    let closed = BusinessHours::closed_at(chrono::Utc::now(), 2);
    let mut config = Config {
        transfers: TransfersConfig {
            home_cti_url: Some(home_cti.url()),
            answer_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(20),
            hours: BTreeMap::from([("12338".to_owned(), closed.clone())]),
            ..TransfersConfig::default()
        },
        server: ServerConfig {
            listen: opts.listen,
            ..ServerConfig::default()
        },
        store: StoreConfig {
            path: opts.data_dir.join("gateway.db"),
            ..StoreConfig::default()
        },
        mappings_dir: opts.mappings_dir.clone(),
        sla: SlaConfig {
            calendar_dir: opts.mappings_dir.join("calendar"),
            scan_interval: Duration::from_secs(5),
            ..SlaConfig::default()
        },
        privacy: PrivacyConfig {
            caller_hash_key: "demo-caller-hash-key-2026".into(),
            // A fixed demo key, so demo-data/ stays readable across runs. Never use it for real.
            encryption: crate::seal::EncryptionConfig {
                active: "demo".into(),
                keys: std::collections::BTreeMap::from([(
                    "demo".to_owned(),
                    crate::seal::KeyConfig {
                        cipher: crate::seal::CipherKind::Aes256Gcm,
                        key: "ZGVtby1vbmx5LWtleS1kby1ub3QtdXNlLWZvci1yZWE=".into(),
                    },
                )]),
            },
            ..PrivacyConfig::default()
        },
        partners,
        routes: vec![
            RouteConfig {
                from: Some("12345".into()),
                kinds: vec![TicketKind::Complaint],
                to: "12315".into(),
                ..RouteConfig::default()
            },
            RouteConfig {
                from: Some("12345".into()),
                classification_prefix: Some("9.".into()),
                to: "12333".into(),
                ..RouteConfig::default()
            },
        ],
        ..Config::default()
    };
    let logins = demo_users()?;
    // The demo's home side (and whoever tries the API by hand) uses one admin token.
    let (api_token, api_hash) = crate::api::auth::new_token();
    config.api.clients.insert(
        "demo-home".into(),
        crate::api::auth::ApiClient {
            token_sha256: api_hash,
            scopes: vec![crate::api::auth::Scope::Admin],
        },
    );
    config.dashboard = crate::dashboard::DashboardConfig {
        users: logins
            .iter()
            .map(|(name, role, _, hash)| {
                (
                    (*name).to_owned(),
                    crate::dashboard::config::UserConfig {
                        role: *role,
                        password_hash: hash.clone(),
                    },
                )
            })
            .collect(),
        // The demo serves plain HTTP on loopback.
        secure_cookies: false,
        ..Default::default()
    };
    let problems = config.check();
    anyhow::ensure!(problems.is_empty(), "demo configuration: {problems:?}");
    let gateway = Gateway::start(config).await?;
    let base = gateway.base_url();
    for sim in &sims {
        sim.set_gateway(&base);
    }
    down.set_gateway(&base);
    platforms.set_gateway(&base);

    println!();
    println!("hotline-gateway 演示已启动 demo running");
    println!(
        "  数据目录 data:            {}",
        opts.data_dir.join("gateway.db").display()
    );
    println!("  运维控制台 dashboard:     {base}/ui");
    for (name, role, password, _) in &logins {
        println!(
            "    登录 login {name:<9} 密码 password {password}  ({})",
            role.label()
        );
    }
    println!("  接口 API:                 {base}/api/v1/tickets");
    println!("    令牌 token (Authorization: Bearer …): {api_token}");
    println!("  投递 deliveries:          {base}/api/v1/deliveries");
    println!("  死信 dead letters:        {base}/api/v1/deliveries?status=dead");
    println!("  接口文档 OpenAPI:         {base}/api/v1/openapi.json");
    println!("  指标 metrics:             {base}/metrics");
    println!("  模拟合作方 simulated partners:");
    for ((id, _, what), sim) in roles.iter().zip(&sims) {
        println!("    {id:<9} {}  {what}", sim.url());
    }
    println!(
        "    demo-down {}  故障中，投递进入死信 down: dead letters",
        down.url()
    );
    println!("    fawang    12348 法网: {}", platforms.fawang_line);
    println!(
        "    legal-aid {}  法律援助办案系统 (SM2)：12345 工单转法律援助申请，给予、指派进展回告 12345",
        platforms.legal_aid.url()
    );
    println!("  法律援助案件 legal-aid cases: {base}/api/v1/legal-aid/cases");
    println!("  路由 routes: 12345 投诉 → 12315；12345 劳动争议 (9.*) → 12333");
    println!("  三方通话 transfers:       {base}/api/v1/transfers");
    println!("  转接统计 transfer stats:  {base}/api/v1/stats/transfers");
    println!(
        "    → 12333 接通 completed；→ 12345 坐席忙转工单 busy → ticket；→ 12315 未接通超时转工单 \
         expired → ticket；→ 12338 非营业时间 ({}–{}) 直接转工单 closed → ticket；12345 → 12348 转入 inbound",
        closed.open.format("%H:%M"),
        closed.close.format("%H:%M")
    );
    println!("    本地 CTI 模拟 home CTI:  {}", home_cti.url());
    println!(
        "  每 {:?} 从 12348 发出一张工单，各合作方也向 12348 转办工单。",
        opts.interval
    );
    println!(
        "  A ticket leaves 12348 every {:?}; every partner sends tickets to 12348 too.",
        opts.interval
    );
    println!("  按 Ctrl-C 停止 press Ctrl-C to stop.");
    println!();

    let calls = tokio::spawn(transfers::run(
        base.clone(),
        api_token.clone(),
        sims.clone(),
        opts.interval * 2,
    ));
    let story = tokio::spawn(platforms.run(
        base.clone(),
        api_token.clone(),
        (opts.interval * 15).max(Duration::from_secs(10)),
    ));
    let trickle = tokio::spawn(trickle(base, api_token, sims, down, opts.interval));
    tokio::signal::ctrl_c().await?;
    println!("正在停止 stopping…");
    trickle.abort();
    calls.abort();
    story.abort();
    gateway.shutdown().await
}

/// A partner's ticket for 12348, as a canonical document.
fn partner_ticket(partner: &str, n: u64, run: &str) -> serde_json::Value {
    let mut ticket = serde_json::to_value(random_draft()).unwrap_or_default();
    ticket["partner_number"] = format!("{partner}-{run}-{n:05}").into();
    json!({
        "message": {"id": format!("{partner}-MSG-{run}-{n:05}")},
        "ticket": ticket,
        "event": {},
    })
}

/// Home → partners every `interval`; one partner → 12348 every other round.
/// An HTTP client that sends the demo's API token.
pub(crate) fn api_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap_or_default()
}

async fn trickle(
    base: String,
    token: String,
    sims: Vec<MappedSim>,
    down: WebhookSim,
    interval: Duration,
) {
    let client = api_client(&token);
    let run = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    let mut targets: Vec<String> = sims.iter().map(|s| s.partner().to_owned()).collect();
    targets.push(down.partner());
    let mut tick = tokio::time::interval(interval);
    for n in 0u64.. {
        tick.tick().await;
        // Mostly to the working partners; now and then to the one that is down.
        let target = if n % 10 == 9 {
            &targets[targets.len() - 1]
        } else {
            &targets[n as usize % (targets.len() - 1)]
        };
        let body = json!({
            "external_id": format!("SD12348-{run}-{n:05}"),
            "target": target,
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
        if n % 5 == 0 {
            home_handles_partner_tickets(&client, &base).await;
        }
        if n % 2 == 0 {
            let from = &sims[(n as usize / 2) % sims.len()];
            let doc = partner_ticket(from.partner(), n, &run);
            let sent = if from.partner() == "12338" {
                from.queue("dispatch", &doc).map(|_| ())
            } else {
                from.send("dispatch", &doc).await.map(|_| ())
            };
            if let Err(e) = sent {
                tracing::warn!(partner = from.partner(), error = %e, "demo inbound ticket not sent");
            }
        }
    }
}

/// The home side's share of the work: sign for the tickets partners sent to 12348, then reply.
async fn home_handles_partner_tickets(client: &reqwest::Client, base: &str) {
    for (status, action, body) in [
        (
            "receipted",
            "reply",
            json!({"content": "已为来电人解答法律问题", "unit": "12348热线"}),
        ),
        ("dispatched", "receipt", json!({"unit": "12348热线"})),
    ] {
        let url = format!("{base}/api/v1/tickets?status={status}&limit=20");
        let Ok(tickets) = async {
            client
                .get(url)
                .send()
                .await?
                .json::<Vec<serde_json::Value>>()
                .await
        }
        .await
        else {
            continue;
        };
        let mut acted = 0;
        for t in tickets.iter().filter(|t| t["origin"] != "12348") {
            let Some(id) = t["id"].as_str() else { continue };
            // Only where 12348 itself must act (not tickets routed on to another partner).
            let clocks = async {
                client
                    .get(format!("{base}/api/v1/tickets/{id}/clocks"))
                    .send()
                    .await?
                    .json::<Vec<serde_json::Value>>()
                    .await
            }
            .await
            .unwrap_or_default();
            if !clocks
                .iter()
                .any(|c| c["party"] == "12348" && c["state"] == "running")
                || acted == 3
            {
                continue;
            }
            acted += 1;
            let _ = client
                .post(format!("{base}/api/v1/tickets/{id}/actions/{action}"))
                .json(&body)
                .send()
                .await;
        }
    }
}

/// The demo's dashboard users, one per role, with fresh random passwords: (name, role, password,
/// hash).
fn demo_users() -> anyhow::Result<Vec<(&'static str, crate::dashboard::Role, String, String)>> {
    use crate::dashboard::Role;
    [
        ("admin", Role::Admin),
        ("operator", Role::Operator),
        ("viewer", Role::Viewer),
    ]
    .into_iter()
    .map(|(name, role)| {
        let password: String = crate::dashboard::auth::random_token()
            .chars()
            .take(16)
            .collect();
        let hash = crate::dashboard::hash_password(&password)
            .map_err(|e| anyhow::anyhow!("hashing the demo password failed: {e}"))?;
        Ok((name, role, password, hash))
    })
    .collect()
}
