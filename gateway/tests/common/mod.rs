//! Shared test harness: a gateway on a temporary SQLite file with simulated partners on loopback.
#![allow(dead_code)]

pub mod certs;
pub mod tickets;

use std::time::Duration;

use contract_tests::mapped_sim::{MappedSim, MappedSimOptions};
use contract_tests::samples::random_draft;
use contract_tests::webhook_sim::{Behaviour, SimOptions, WebhookSim};
use hotline_gateway::Gateway;
use hotline_gateway::config::{
    AdapterKind, BreakerConfig, Config, DeliveryConfig, PartnerConfig, RetryConfig, ServerConfig,
    SlaConfig, StoreConfig,
};
use hotline_gateway::store::{Delivery, DeliveryStatus};
use serde_json::{Value, json};

pub const OUR_SECRET: &str = "whsec_dGVzdC1nYXRld2F5LXNpZ25pbmctc2VjcmV0";
pub const THEIR_SECRET: &str = "whsec_dGVzdC1wYXJ0bmVyLXNpZ25pbmctc2VjcmV0";

/// Fast retries so that tests finish quickly: 100 ms, 200 ms, 400 ms ... with jitter.
pub fn fast_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        factor: 2.0,
        max_attempts,
        jitter: true,
    }
}

pub fn partner_config(url: String, retry: RetryConfig) -> PartnerConfig {
    PartnerConfig {
        adapter: AdapterKind::Webhook,
        url,
        signing_secret: OUR_SECRET.into(),
        verify_secret: THEIR_SECRET.into(),
        mapping: None,
        app_id: "hotline-12348".into(),
        poll_url: None,
        poll_ack_url: None,
        transfer_url: None,
        poll_interval: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        ack_timeout: Duration::from_secs(30),
        concurrency: 4,
        retry,
        // A short pause, like the fast retries: a flaky partner may trip it in a test.
        breaker: BreakerConfig {
            failures: 5,
            cooldown: Duration::from_millis(200),
            max_cooldown: Duration::from_secs(1),
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

pub async fn start_sim(partner: &str) -> WebhookSim {
    WebhookSim::start(
        SimOptions {
            partner: partner.into(),
            verify_secret: OUR_SECRET.into(),
            signing_secret: THEIR_SECRET.into(),
            gateway: None,
            auto_receipt: None,
        },
        0,
    )
    .await
    .expect("simulator starts")
}

pub struct Harness {
    pub gateway: Gateway,
    pub sim: WebhookSim,
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A gateway for tests, without partners: any loopback port, its database in `dir`, fast
/// polling, the repository's mappings and calendar.
pub fn base_config(dir: &tempfile::TempDir) -> Config {
    Config {
        server: ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..ServerConfig::default()
        },
        store: StoreConfig {
            path: dir.path().join("gateway.db"),
            ..StoreConfig::default()
        },
        delivery: DeliveryConfig {
            lease: Duration::from_secs(10),
            poll_interval: Duration::from_millis(50),
            claim_batch: 16,
            ..DeliveryConfig::default()
        },
        mappings_dir: mappings_dir(),
        sla: sla_config(),
        // Feature tests call the API without a token; tests/api_auth.rs checks tokens.
        api: hotline_gateway::api::auth::ApiConfig {
            allow_anonymous: true,
            ..Default::default()
        },
        ..Config::default()
    }
}

/// A configuration for tests: one partner, fast polling, a database in `dir`.
pub fn test_config(dir: &tempfile::TempDir, url: String, retry: RetryConfig) -> Config {
    let mut config = base_config(dir);
    config.server.max_body_bytes = 64 * 1024;
    config
        .partners
        .insert(PARTNER.to_owned(), partner_config(url, retry));
    config
}

pub const PARTNER: &str = "p1";

impl Harness {
    pub async fn start(behaviour: Behaviour, retry: RetryConfig) -> Self {
        Self::start_with(behaviour, retry, |_| {}).await
    }

    /// Starts with the configuration changed by `tweak`.
    pub async fn start_with(
        behaviour: Behaviour,
        retry: RetryConfig,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let sim = start_sim(PARTNER).await;
        sim.set_behaviour(behaviour);
        let dir = tempfile::tempdir().expect("temp dir");
        Self::boot(sim, dir, reqwest::Client::new(), retry, tweak).await
    }

    /// Stops the gateway; the folder with its database stays until the returned guard drops.
    pub async fn stop(self) -> tempfile::TempDir {
        self.gateway.shutdown().await.expect("clean shutdown");
        self._dir
    }

    /// Stops the gateway and starts it again on the same database.
    pub async fn restart(self, tweak: impl FnOnce(&mut Config)) -> Self {
        let Harness {
            gateway,
            sim,
            http,
            _dir,
            ..
        } = self;
        gateway.shutdown().await.expect("clean shutdown");
        Self::boot(sim, _dir, http, fast_retry(5), tweak).await
    }

    async fn boot(
        sim: WebhookSim,
        dir: tempfile::TempDir,
        http: reqwest::Client,
        retry: RetryConfig,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = test_config(&dir, sim.url(), retry);
        tweak(&mut config);
        let gateway = Gateway::start(config).await.expect("gateway starts");
        let base = gateway.base_url();
        sim.set_gateway(&base);
        Self {
            gateway,
            sim,
            base,
            http,
            _dir: dir,
        }
    }

    pub async fn post_ticket(&self, external_id: &str) -> (u16, Value) {
        self.post_json(
            "/api/v1/tickets",
            &json!({"external_id": external_id, "target": PARTNER, "ticket": random_draft()}),
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        post_json(&self.http, format!("{}{path}", self.base), body).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        get_json(&self.http, format!("{}{path}", self.base)).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn delivery(&self, id: &str) -> Delivery {
        let (status, body) = self.get(&format!("/api/v1/deliveries/{id}")).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body).expect("delivery JSON")
    }

    /// Waits until the delivery reaches `status`, failing after `within`.
    pub async fn wait_for_status(
        &self,
        id: &str,
        status: DeliveryStatus,
        within: Duration,
    ) -> Delivery {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let d = self.delivery(id).await;
            if d.status == status {
                return d;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("delivery {id} never became {status:?}; last: {d:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[allow(unused_imports)]
pub use contract_tests::wait::wait_until;

/// POSTs `body` as JSON; the status and the JSON answer (null when there is none).
pub async fn post_json(http: &reqwest::Client, url: String, body: &Value) -> (u16, Value) {
    let r = http
        .post(url)
        .json(body)
        .send()
        .await
        .expect("request sent");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// GETs `url`; the status and the JSON answer (null when there is none).
pub async fn get_json(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).send().await.expect("request sent");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub fn first_delivery(created: &Value) -> String {
    created["deliveries"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no delivery in {created}"))
        .to_owned()
}

/// The secrets of the mapped partners' simulators: ours, and theirs.
pub const MAPPED_GATEWAY_SECRET: &str = "gateway-secret-0123456789";
pub const MAPPED_PARTNER_SECRET: &str = "partner-secret-9876543210";

/// The simulator of a partner defined by its folder in `mappings/`.
pub async fn mapped_sim(partner: &str) -> MappedSim {
    MappedSim::start(MappedSimOptions {
        dir: &mappings_dir().join(partner),
        app_id: "hotline-12348".into(),
        gateway_secret: MAPPED_GATEWAY_SECRET.into(),
        partner_secret: MAPPED_PARTNER_SECRET.into(),
    })
    .await
    .expect("simulator starts")
}

/// The configuration of a mapped partner whose simulator is `sim`: pushed both ways, fast retries.
pub fn mapped_partner(sim: &MappedSim) -> PartnerConfig {
    PartnerConfig {
        adapter: AdapterKind::Mapped,
        url: sim.url(),
        signing_secret: MAPPED_GATEWAY_SECRET.into(),
        verify_secret: MAPPED_PARTNER_SECRET.into(),
        ..partner_config(sim.url(), fast_retry(4))
    }
}

/// The repository's folder of partner mappings.
pub fn mappings_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mappings")
}

/// SLA settings with the repository's calendar.
pub fn sla_config() -> SlaConfig {
    SlaConfig {
        calendar_dir: mappings_dir().join("calendar"),
        ..SlaConfig::default()
    }
}

pub const DASHBOARD_PASSWORD: &str = "correct horse battery staple";

/// Dashboard users wang (admin), li (operator) and zhao (viewer), all with
/// [`DASHBOARD_PASSWORD`]; three failures lock a user out.
pub fn dashboard_users(config: &mut Config) {
    let hash = hotline_gateway::dashboard::hash_password(DASHBOARD_PASSWORD).expect("hash");
    config.dashboard = hotline_gateway::dashboard::DashboardConfig {
        users: [
            ("wang", hotline_gateway::dashboard::Role::Admin),
            ("li", hotline_gateway::dashboard::Role::Operator),
            ("zhao", hotline_gateway::dashboard::Role::Viewer),
        ]
        .into_iter()
        .map(|(name, role)| {
            (
                name.to_owned(),
                hotline_gateway::dashboard::config::UserConfig {
                    role,
                    password_hash: hash.clone(),
                },
            )
        })
        .collect(),
        max_failures: 3,
        secure_cookies: false,
        live_interval: Duration::from_millis(200),
        ..hotline_gateway::dashboard::DashboardConfig::default()
    };
}

// ---- Real processes and services on this machine ----

/// The machine's PostgreSQL (`DATABASE_URL`, default the project machines' server).
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The machine's RabbitMQ (`AMQP_URL`, default the project machines' broker).
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Runs `rabbitmqctl` (e.g. `stop_app` / `start_app`: the broker restarted in a test).
pub fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `hotline-gateway serve` process, killed when the test ends however it ends.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_serve(config: &std::path::Path) -> Running {
    Running(
        std::process::Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("gateway process starts"),
    )
}

pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    let ready = wait_until(Duration::from_secs(30), || async {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    assert!(ready.is_some(), "gateway at {base} never became ready");
}

/// Waits until the simulator took a dispatch of every `accepted` ticket, then checks nothing
/// else arrived and each ticket came under one message id (once in effect, however often sent).
pub async fn assert_each_delivered_once(
    sim: &WebhookSim,
    accepted: &std::collections::BTreeSet<String>,
    within: Duration,
) {
    let ticket_of = |r: &contract_tests::behaviour::Received| {
        r.envelope["ticket"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let got = wait_until(within, || async {
        let got: std::collections::BTreeSet<String> = sim
            .received()
            .iter()
            .filter(|r| r.message_type == "dispatch")
            .map(ticket_of)
            .collect();
        accepted.is_subset(&got).then_some(got)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "only {} of {} delivered",
            sim.received().len(),
            accepted.len()
        )
    });
    assert_eq!(&got, accepted, "nothing lost, nothing extra");
    let mut ids: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for r in sim.received() {
        ids.entry(ticket_of(&r))
            .or_default()
            .insert(r.message_id.clone());
    }
    assert!(
        ids.values().all(|m| m.len() == 1),
        "a ticket delivered under two message ids"
    );
}

/// A new ticket for the store directly: a dispatch from the home system to [`PARTNER`].
pub fn store_new_ticket(external_id: &str) -> hotline_gateway::store::NewTicket {
    tickets::new_ticket(external_id, &[PARTNER])
}
