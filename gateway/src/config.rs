//! Configuration: one TOML file, overridable by environment variables, checked as a whole.
//!
//! Environment overrides: `HOTLINE_GATEWAY__<SECTION>__<KEY>=<value>` sets `section.key`
//! (lower-cased; `__` separates levels), e.g. `HOTLINE_GATEWAY__SERVER__LISTEN=0.0.0.0:8348` or
//! `HOTLINE_GATEWAY__PARTNERS__DEMO__SIGNING_SECRET=whsec_…`. Values are read as TOML values
//! when they parse as one (numbers, booleans), as strings otherwise.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "HOTLINE_GATEWAY__";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Folder of the partner mapping folders (`mappings/<partner>/`).
    #[serde(default = "defaults::mappings_dir")]
    pub mappings_dir: PathBuf,
    /// Partners by id (`12345`, `legal-aid`, ...).
    #[serde(default)]
    pub partners: BTreeMap<String, PartnerConfig>,
    /// Where tickets that partners send to 12348 go on to, first match wins.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub sla: SlaConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub transfers: TransfersConfig,
    /// Who may call the home API (`/api/v1`): clients, tokens, scopes.
    #[serde(default)]
    pub api: crate::api::auth::ApiConfig,
    /// The ops dashboard at `/ui`: users, roles, sessions.
    #[serde(default)]
    pub dashboard: crate::dashboard::DashboardConfig,
    /// Legal-aid case clocks and reconciliation (partner `legal-aid`).
    #[serde(default)]
    pub legal_aid: LegalAidConfig,
}

/// How often legal-aid clocks are checked and cases reconciled with the case system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegalAidConfig {
    #[serde(default = "defaults::legal_aid_check", with = "humantime_serde")]
    pub check_interval: Duration,
    #[serde(default = "defaults::legal_aid_reconcile", with = "humantime_serde")]
    pub reconcile_interval: Duration,
}

impl Default for LegalAidConfig {
    fn default() -> Self {
        Self {
            check_interval: defaults::legal_aid_check(),
            reconcile_interval: defaults::legal_aid_reconcile(),
        }
    }
}

/// Three-way call transfers (三方通话).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransfersConfig {
    /// The 12348 CTI: asked about partners' transfers (`POST <url>/transfers`) and told how
    /// transfers ended (`POST <url>/transfer-events`). Without it, partners' offers are refused.
    #[serde(default)]
    pub home_cti_url: Option<String>,
    /// Sent to the home CTI as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub home_cti_token: Option<String>,
    /// The longest a partner's (or the home CTI's) answer to an offer is awaited; then the
    /// transfer is refused as `unreachable` and the ticket is filed.
    #[serde(default = "defaults::answer_timeout", with = "humantime_serde")]
    pub answer_timeout: Duration,
    /// Granted but not connected within this → expired, and the ticket is filed.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How often timers and pending fallbacks are looked at.
    #[serde(default = "defaults::transfer_scan", with = "humantime_serde")]
    pub scan_interval: Duration,
    /// Business hours by partner id; a partner without an entry takes transfers around the clock.
    #[serde(default)]
    pub hours: BTreeMap<String, crate::transfer::hours::BusinessHours>,
}

impl Default for TransfersConfig {
    fn default() -> Self {
        Self {
            home_cti_url: None,
            home_cti_token: None,
            answer_timeout: defaults::answer_timeout(),
            connect_timeout: defaults::connect_timeout(),
            scan_interval: defaults::transfer_scan(),
            hours: BTreeMap::new(),
        }
    }
}

/// Time limits, the working-day calendar, reminders and repeat-caller alerts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlaConfig {
    /// Folder of `<year>.toml` working-day calendars.
    #[serde(default = "defaults::calendar_dir")]
    pub calendar_dir: PathBuf,
    /// How often due and overdue clocks are looked for.
    #[serde(default = "defaults::scan_interval", with = "humantime_serde")]
    pub scan_interval: Duration,
    /// The time limits (Shandong rules by default).
    #[serde(default)]
    pub policy: crate::sla::SlaPolicy,
    /// Other limits for the clocks a given partner owns.
    #[serde(default)]
    pub partners: BTreeMap<String, crate::sla::SlaPolicy>,
    /// Other limits for tickets of a kind (`consultation`, `complaint` ...); a partner's own win.
    #[serde(default)]
    pub kinds: BTreeMap<hotline_model::TicketKind, crate::sla::SlaPolicy>,
    /// 重复来电预警: this many tickets from one caller …
    #[serde(default = "defaults::repeat_count")]
    pub repeat_caller_count: u32,
    /// … within this many days.
    #[serde(default = "defaults::repeat_days")]
    pub repeat_caller_days: u32,
}

impl Default for SlaConfig {
    fn default() -> Self {
        Self {
            calendar_dir: defaults::calendar_dir(),
            scan_interval: defaults::scan_interval(),
            policy: crate::sla::SlaPolicy::default(),
            partners: BTreeMap::new(),
            kinds: BTreeMap::new(),
            repeat_caller_count: defaults::repeat_count(),
            repeat_caller_days: defaults::repeat_days(),
        }
    }
}

/// Personal-data handling.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivacyConfig {
    /// Key of the keyed hash (HMAC-SHA256) of callers' phone numbers, used to match repeat callers
    /// without keeping the plain number for it. Set your own; changing it breaks matching with
    /// earlier tickets.
    #[serde(default = "defaults::caller_hash_key")]
    pub caller_hash_key: String,
    /// Encryption of callers' personal data at rest (`active` key id and `keys.<id>`); off
    /// when `active` is empty.
    #[serde(default)]
    pub encryption: crate::seal::EncryptionConfig,
    /// Blank callers' personal data this long after their ticket ended (closed, withdrawn,
    /// merged), e.g. `3y`; kept forever when unset.
    #[serde(default, with = "humantime_serde")]
    pub retention: Option<Duration>,
    /// How often the retention job looks for tickets to purge.
    #[serde(default = "defaults::retention_interval", with = "humantime_serde")]
    pub retention_interval: Duration,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            caller_hash_key: defaults::caller_hash_key(),
            encryption: crate::seal::EncryptionConfig::default(),
            retention: None,
            retention_interval: defaults::retention_interval(),
        }
    }
}

/// Sends tickets from partners on to another partner, e.g. a 12345 labour dispute to 12333.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouteConfig {
    /// Only tickets from this partner.
    #[serde(default)]
    pub from: Option<String>,
    /// Only tickets of these kinds.
    #[serde(default)]
    pub kinds: Vec<hotline_model::TicketKind>,
    /// Only tickets whose classification code starts with this.
    #[serde(default)]
    pub classification_prefix: Option<String>,
    /// Only tickets whose region code starts with this.
    #[serde(default)]
    pub region_prefix: Option<String>,
    /// The partner the ticket goes on to.
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerConfig {
    /// Address the HTTP API and the partner ingress listen on.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Deadline for reading a request and answering it.
    #[serde(default = "defaults::request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Serve HTTPS (TLS 1.2+) with this certificate; `client_ca` verifies partners'
    /// certificates. Plain HTTP when absent.
    #[serde(default)]
    pub tls: Option<crate::serve::TlsConfig>,
    /// Listen on a non-loopback address without `tls` (behind a TLS-terminating proxy on a
    /// private network). Loopback addresses need no permission.
    #[serde(default)]
    pub allow_plain_http: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: defaults::listen(),
            max_body_bytes: defaults::max_body_bytes(),
            request_timeout: defaults::request_timeout(),
            tls: None,
            allow_plain_http: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded default: one file, one node.
    #[default]
    Sqlite,
    /// PostgreSQL at `store.url`: several gateway instances share it.
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreConfig {
    #[serde(default)]
    pub kind: StoreKind,
    /// SQLite database file (created with its directory when missing).
    #[serde(default = "defaults::db_path")]
    pub path: PathBuf,
    /// PostgreSQL connection URL (`kind = "postgres"`), e.g. `postgres://gw@db:5432/hotline`.
    #[serde(default)]
    pub url: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            path: defaults::db_path(),
            url: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryConfig {
    /// How long a worker holds a claimed delivery; after that, another worker may take it.
    #[serde(default = "defaults::lease", with = "humantime_serde")]
    pub lease: Duration,
    /// How often idle workers look for due deliveries (new ones wake them at once).
    #[serde(default = "defaults::poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Most deliveries one worker claims at a time.
    #[serde(default = "defaults::claim_batch")]
    pub claim_batch: u32,
    /// How claimed deliveries reach the instances that send them: straight from the store
    /// (`store`, the default), or through per-partner RabbitMQ queues (`rabbitmq`).
    #[serde(default)]
    pub queue: QueueKind,
    /// RabbitMQ URL for `queue = "rabbitmq"`, e.g. `amqp://gw:…@mq:5672/%2f`.
    #[serde(default)]
    pub amqp_url: Option<String>,
    /// Prefix of the exchanges and queues the gateway declares.
    #[serde(default = "defaults::amqp_prefix")]
    pub amqp_prefix: String,
    /// For an `amqps://` `amqp_url`: the client certificate (`cert`, `key`) we present to the
    /// broker and a CA (`ca`) trusted for its certificate beside the system's roots; read at
    /// each new connection.
    #[serde(default)]
    pub amqp_tls: Option<hotline_adapters::http::OutboundTls>,
}

/// Where delivery work travels between the store and the senders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// Each instance's workers claim from the store.
    #[default]
    Store,
    /// Claims are published to RabbitMQ; consumers on any instance send them.
    Rabbitmq,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            lease: defaults::lease(),
            poll_interval: defaults::poll_interval(),
            claim_batch: defaults::claim_batch(),
            queue: QueueKind::Store,
            amqp_url: None,
            amqp_prefix: defaults::amqp_prefix(),
            amqp_tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdapterKind {
    /// Canonical JSON over HTTP, signed the Standard Webhooks way.
    Webhook,
    /// Defined by data: `mappings/<partner>/mapping.toml` and `partner.toml`.
    Mapped,
    /// The legal-aid case system: JSON over HTTPS signed with SM2; `signing_secret` is our SM2
    /// private key, `verify_secret` the case system's public key (hex). Partner id `legal-aid`.
    LegalAid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartnerConfig {
    pub adapter: AdapterKind,
    /// Where deliveries to the partner go (HTTP partners; empty for a partner on a bus).
    #[serde(default)]
    pub url: String,
    /// Secret we sign deliveries with (`whsec_` + base64 for `webhook`).
    pub signing_secret: String,
    /// Secret the partner signs its messages to us with (`whsec_` + base64 for `webhook`).
    pub verify_secret: String,
    /// `mapped`: the mapping folder under `mappings_dir` (default: the partner id).
    #[serde(default)]
    pub mapping: Option<String>,
    /// `mapped`: our app id at the partner, sent with signed requests.
    #[serde(default = "defaults::app_id")]
    pub app_id: String,
    /// Polled partners: the partner's outbox, polled every `poll_interval`.
    #[serde(default)]
    pub poll_url: Option<String>,
    /// Polled partners: where taken items are acknowledged.
    #[serde(default)]
    pub poll_ack_url: Option<String>,
    /// `mapped`: the partner CTI's endpoint for three-way call transfer offers.
    #[serde(default)]
    pub transfer_url: Option<String>,
    #[serde(default = "defaults::poll_every", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Deadline of one delivery request.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How long to wait for an asynchronous acknowledgement before sending again.
    #[serde(default = "defaults::ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Most deliveries in flight to this partner at once.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: u32,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Most requests a second the partner may make to its ingress (none: no limit); beyond it
    /// the answer is 429 with `Retry-After`, in the partner's dialect.
    #[serde(default)]
    pub inbound_rate: Option<u32>,
    /// Requests the partner may make at once before `inbound_rate` applies (default: the rate).
    #[serde(default)]
    pub inbound_burst: Option<u32>,
    /// Most deliveries a second we send the partner, evenly spaced (none: no pacing).
    #[serde(default)]
    pub outbound_rate: Option<u32>,
    /// The name (certificate CN or DNS SAN) the partner's client certificate must carry to use
    /// its ingress; needs `server.tls.client_ca`. No certificate needed when absent.
    #[serde(default)]
    pub tls_identity: Option<String>,
    /// `mapped`: the partner is reached over AMQP (RabbitMQ) instead of HTTP.
    #[serde(default)]
    pub bus: Option<BusConfig>,
    /// The partner's HTTPS endpoint: the CA its server certificate chains to and the client
    /// certificate we present (mutual TLS).
    #[serde(default)]
    pub outbound_tls: Option<hotline_adapters::http::OutboundTls>,
    /// Reach the partner at `http://` (or `amqp://`) addresses beyond this machine, unencrypted
    /// (a private government network). Loopback addresses need no permission.
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// A partner on an AMQP 0-9-1 bus: we publish to its exchange and consume our queue, bound to
/// the exchange it publishes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// `amqp://user:pass@host:5672/vhost`.
    pub url: String,
    /// The partner's exchange, where our messages go (routing key: the message type).
    pub outbound_exchange: String,
    /// The exchange the partner publishes to for us.
    pub inbound_exchange: String,
    /// Our durable queue on `inbound_exchange`; poison messages go to `<queue>.dead-letters`.
    pub queue: String,
    /// Messages taken at a time before acknowledging.
    #[serde(default = "defaults::prefetch")]
    pub prefetch: u16,
}

/// The partner's circuit breaker: after `failures` attempts in a row time out or fail with a
/// 5xx, deliveries pause for `cooldown`, then one probes; each failed probe doubles the pause up
/// to `max_cooldown`. `failures = 0` turns it off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerConfig {
    #[serde(default = "defaults::breaker_failures")]
    pub failures: u32,
    #[serde(default = "defaults::breaker_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
    #[serde(default = "defaults::breaker_max_cooldown", with = "humantime_serde")]
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: defaults::breaker_failures(),
            cooldown: defaults::breaker_cooldown(),
            max_cooldown: defaults::breaker_max_cooldown(),
        }
    }
}

/// Exponential backoff with jitter. The defaults (5 s × 4ⁿ, capped at 10 h, 10 attempts) spread
/// retries over about a day: seconds first, then minutes, then hours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetryConfig {
    #[serde(default = "defaults::min_delay", with = "humantime_serde")]
    pub min_delay: Duration,
    #[serde(default = "defaults::max_delay", with = "humantime_serde")]
    pub max_delay: Duration,
    #[serde(default = "defaults::factor")]
    pub factor: f32,
    /// Attempts in all, the first included, before the delivery is dead-lettered.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "defaults::jitter")]
    pub jitter: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            min_delay: defaults::min_delay(),
            max_delay: defaults::max_delay(),
            factor: defaults::factor(),
            max_attempts: defaults::max_attempts(),
            jitter: defaults::jitter(),
        }
    }
}

pub mod defaults {
    use super::*;
    pub fn retention_interval() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn amqp_prefix() -> String {
        "hotline".into()
    }
    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8348))
    }
    pub fn max_body_bytes() -> usize {
        1024 * 1024
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn mappings_dir() -> PathBuf {
        PathBuf::from("mappings")
    }
    pub fn calendar_dir() -> PathBuf {
        PathBuf::from("mappings/calendar")
    }
    pub fn scan_interval() -> Duration {
        Duration::from_secs(30)
    }
    pub fn repeat_count() -> u32 {
        3
    }
    pub fn repeat_days() -> u32 {
        30
    }
    pub const DEV_HASH_KEY: &str = "hotline-gateway-development-only-key";
    pub fn caller_hash_key() -> String {
        DEV_HASH_KEY.into()
    }
    pub fn poll_every() -> Duration {
        Duration::from_secs(5)
    }
    pub fn app_id() -> String {
        "hotline-12348".into()
    }
    pub fn db_path() -> PathBuf {
        PathBuf::from("data/gateway.db")
    }
    pub fn lease() -> Duration {
        Duration::from_secs(60)
    }
    pub fn poll_interval() -> Duration {
        Duration::from_secs(1)
    }
    pub fn claim_batch() -> u32 {
        64
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn ack_timeout() -> Duration {
        Duration::from_secs(15 * 60)
    }
    pub fn concurrency() -> u32 {
        8
    }
    pub fn legal_aid_check() -> Duration {
        Duration::from_secs(300)
    }
    pub fn legal_aid_reconcile() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn prefetch() -> u16 {
        16
    }
    pub fn min_delay() -> Duration {
        Duration::from_secs(5)
    }
    pub fn max_delay() -> Duration {
        Duration::from_secs(10 * 3600)
    }
    pub fn factor() -> f32 {
        4.0
    }
    pub fn max_attempts() -> u32 {
        10
    }
    pub fn jitter() -> bool {
        true
    }
    pub fn breaker_failures() -> u32 {
        5
    }
    pub fn breaker_cooldown() -> Duration {
        Duration::from_secs(30)
    }
    pub fn breaker_max_cooldown() -> Duration {
        Duration::from_secs(300)
    }
    pub fn answer_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn transfer_scan() -> Duration {
        Duration::from_secs(1)
    }
}

/// One problem in a configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `partners.12345.url`.
    pub key: String,
    /// 1-based line in the file, when the key (or its table) is there.
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone)]
pub struct Problems {
    pub file: PathBuf,
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if p.key.is_empty() {
                write!(f, ": {}", p.message)?;
            } else {
                write!(f, ": `{}`: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Config {
    /// Reads, overrides from the environment and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| Problems {
            file: path.to_owned(),
            list: vec![Problem {
                key: String::new(),
                line: None,
                message: format!("cannot read: {e}"),
            }],
        })?;
        Self::from_toml(&text, std::env::vars()).map_err(|list| Problems {
            file: path.to_owned(),
            list,
        })
    }

    /// Parses TOML `text`, applies `env` overrides and checks the result.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Vec<Problem>> {
        let locate = hotline_adapters::toml_locate::Locator::new(text);
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            vec![Problem {
                key: String::new(),
                line: e.span().map(|s| locate.line_of(s.start)),
                message: e.message().trim().to_owned(),
            }]
        })?;
        apply_env(&mut table, env);

        let mut problems = Vec::new();
        let mut track = serde_path_to_error::Track::new();
        let de = serde_path_to_error::Deserializer::new(toml::Value::Table(table), &mut track);
        let parsed = serde_ignored::deserialize(de, |path| {
            let key = path.to_string();
            problems.push(Problem {
                line: locate.line(&key),
                key,
                message: "unknown key".into(),
            });
        });
        let config: Config = match parsed {
            Ok(c) => c,
            Err(e) => {
                let key = track.path().to_string();
                let key = if key == "." { String::new() } else { key };
                // The message may repeat the key on a second line; the key is reported apart.
                let message = e.to_string();
                let message = message.lines().next().unwrap_or_default().trim().to_owned();
                problems.push(Problem {
                    line: locate.line(&key),
                    key,
                    message,
                });
                return Err(problems);
            }
        };
        for (key, message) in config.check() {
            problems.push(Problem {
                line: locate.line(&key),
                key,
                message,
            });
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Problems a type cannot express, as (key, message).
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |key: String, msg: String| out.push((key, msg));
        if self.server.max_body_bytes < 1024 {
            bad(
                "server.max_body_bytes".into(),
                "must be at least 1024".into(),
            );
        }
        self.dashboard.check(&mut bad);
        self.api.check(&mut bad);
        if self.server.tls.is_none()
            && !self.server.listen.ip().is_loopback()
            && !self.server.allow_plain_http
        {
            bad(
                "server.tls".into(),
                format!(
                    "listening on {} beyond this machine needs TLS; or set \
                     server.allow_plain_http = true behind a TLS-terminating proxy",
                    self.server.listen
                ),
            );
        }
        let client_ca = self
            .server
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca.is_some());
        for (id, p) in &self.partners {
            if p.tls_identity.is_some() && !client_ca {
                bad(
                    format!("partners.{id}.tls_identity"),
                    "needs server.tls.client_ca to verify the partner's certificate".into(),
                );
            }
            if let Some(t) = &p.outbound_tls {
                check_tls_pair(format!("partners.{id}.outbound_tls"), t, &mut bad);
            }
        }
        if let Err(crate::seal::SealError::Config(key, msg)) =
            crate::seal::Sealer::from_config(&self.privacy.encryption)
        {
            bad(key, msg);
        }
        if self.store.kind == StoreKind::Postgres {
            match &self.store.url {
                None => bad(
                    "store.url".into(),
                    "required when store.kind = \"postgres\"".into(),
                ),
                Some(u) if !u.starts_with("postgres://") && !u.starts_with("postgresql://") => bad(
                    "store.url".into(),
                    "must be a postgres:// or postgresql:// URL".into(),
                ),
                Some(_) => {}
            }
        }
        if self.delivery.queue == QueueKind::Rabbitmq {
            match &self.delivery.amqp_url {
                None => bad(
                    "delivery.amqp_url".into(),
                    "required when delivery.queue = \"rabbitmq\"".into(),
                ),
                Some(u) if !u.starts_with("amqp://") && !u.starts_with("amqps://") => bad(
                    "delivery.amqp_url".into(),
                    "must be an amqp:// or amqps:// URL".into(),
                ),
                Some(_) => {}
            }
        }
        if let Some(t) = &self.delivery.amqp_tls {
            let tls_url = self.delivery.queue == QueueKind::Rabbitmq
                && self
                    .delivery
                    .amqp_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("amqps://"));
            if !tls_url {
                bad(
                    "delivery.amqp_tls".into(),
                    "would not be used: it applies to an amqps:// delivery.amqp_url with \
                     delivery.queue = \"rabbitmq\""
                        .into(),
                );
            }
            check_tls_pair("delivery.amqp_tls".into(), t, &mut bad);
        }
        if self.delivery.claim_batch == 0 {
            bad("delivery.claim_batch".into(), "must be at least 1".into());
        }
        if self.delivery.poll_interval.is_zero() {
            bad("delivery.poll_interval".into(), "must be positive".into());
        }
        for (id, p) in &self.partners {
            let key = |k: &str| format!("partners.{id}.{k}");
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                bad(
                    format!("partners.{id}"),
                    "partner ids use lowercase letters, digits and '-'".into(),
                );
            }
            if p.adapter == AdapterKind::LegalAid && id != hotline_adapters::legal_aid::PARTNER {
                bad(
                    format!("partners.{id}.adapter"),
                    "the legal-aid case system is partner `legal-aid`".into(),
                );
            }
            if id == hotline_model::HOME {
                bad(
                    format!("partners.{id}"),
                    "12348 is the home system, not a partner".into(),
                );
            }
            match &p.bus {
                None if p.url.is_empty() => bad(
                    key("url"),
                    "is required, unless the partner is on a bus ([partners.<id>.bus])".into(),
                ),
                None => check_url(&key("url"), &p.url, &mut bad),
                Some(b) => {
                    if p.adapter != AdapterKind::Mapped {
                        bad(key("bus"), "only `mapped` partners can be on a bus".into());
                    }
                    if !b.url.starts_with("amqp://") && !b.url.starts_with("amqps://") {
                        bad(key("bus.url"), "must be an amqp:// or amqps:// URL".into());
                    }
                    let https = [&p.poll_url, &p.poll_ack_url, &p.transfer_url]
                        .into_iter()
                        .flatten()
                        .any(|u| u.starts_with("https://"));
                    if p.outbound_tls.is_some() && b.url.starts_with("amqp://") && !https {
                        bad(
                            key("outbound_tls"),
                            "would not be used: the bus is reached over amqp://; use amqps:// \
                             in bus.url for TLS"
                                .into(),
                        );
                    }
                    for (name, v) in [
                        ("outbound_exchange", &b.outbound_exchange),
                        ("inbound_exchange", &b.inbound_exchange),
                        ("queue", &b.queue),
                    ] {
                        if v.is_empty() {
                            bad(key(&format!("bus.{name}")), "must not be empty".into());
                        }
                    }
                }
            }
            if !p.allow_plain_http {
                let bus = p.bus.as_ref().map(|b| b.url.as_str());
                for (name, u) in [
                    ("url", Some(p.url.as_str()).filter(|_| p.bus.is_none())),
                    ("poll_url", p.poll_url.as_deref()),
                    ("poll_ack_url", p.poll_ack_url.as_deref()),
                    ("transfer_url", p.transfer_url.as_deref()),
                    ("bus.url", bus),
                ] {
                    if let Some(host) = u.and_then(plain_beyond_loopback) {
                        bad(
                            key(name),
                            format!(
                                "sends citizens' data unencrypted to {host}: use https:// \
                                 (amqps://), or set partners.{id}.allow_plain_http = true on a \
                                 private network"
                            ),
                        );
                    }
                }
            }
            if let Some(u) = &p.transfer_url {
                check_url(&key("transfer_url"), u, &mut bad);
                if p.adapter != AdapterKind::Mapped {
                    bad(
                        key("transfer_url"),
                        "only `mapped` partners take transfers".into(),
                    );
                }
            }
            for (name, secret) in [
                ("signing_secret", &p.signing_secret),
                ("verify_secret", &p.verify_secret),
            ] {
                match p.adapter {
                    AdapterKind::Webhook if !hotline_adapters::webhook::is_valid_secret(secret) => {
                        bad(
                            key(name),
                            "must be `whsec_` followed by base64 of at least 16 bytes".into(),
                        );
                    }
                    AdapterKind::Mapped if secret.len() < 16 => {
                        bad(key(name), "must be at least 16 characters".into());
                    }
                    AdapterKind::LegalAid => {
                        let hex_len = if name == "signing_secret" { 64 } else { 130 };
                        if secret.len() != hex_len || hex::decode(secret).is_err() {
                            bad(
                                key(name),
                                format!(
                                    "must be an SM2 {} key in hex ({hex_len} characters)",
                                    if hex_len == 64 {
                                        "private"
                                    } else {
                                        "public (04…)"
                                    }
                                ),
                            );
                        }
                    }
                    _ => {}
                }
            }
            if p.adapter == AdapterKind::Mapped {
                let dir = self.mapping_folder(id, p);
                if let Err(problems) = hotline_adapters::mapped::load_folder(&dir) {
                    for problem in problems.0 {
                        bad(key("mapping"), problem.to_string());
                    }
                }
            }
            if p.timeout.is_zero() {
                bad(key("timeout"), "must be positive".into());
            } else if p.timeout >= self.delivery.lease {
                bad(
                    key("timeout"),
                    format!(
                        "must be shorter than delivery.lease ({}), or a slow request would be \
                         sent twice",
                        humantime::format_duration(self.delivery.lease)
                    ),
                );
            }
            if !(1..=1024).contains(&p.concurrency) {
                bad(key("concurrency"), "must be between 1 and 1024".into());
            }
            let r = &p.retry;
            if r.min_delay.is_zero() {
                bad(key("retry.min_delay"), "must be positive".into());
            }
            if r.max_delay < r.min_delay {
                bad(
                    key("retry.max_delay"),
                    "must not be less than retry.min_delay".into(),
                );
            }
            if !(r.factor >= 1.0 && r.factor.is_finite()) {
                bad(
                    key("retry.factor"),
                    "must be a number of at least 1.0".into(),
                );
            }
            if r.max_attempts == 0 {
                bad(key("retry.max_attempts"), "must be at least 1".into());
            }
            if p.inbound_rate == Some(0) {
                bad(
                    key("inbound_rate"),
                    "must be at least 1 (leave it out for no limit)".into(),
                );
            }
            match p.outbound_rate {
                Some(0) => bad(
                    key("outbound_rate"),
                    "must be at least 1 (leave it out for no pacing)".into(),
                ),
                // A claimed delivery may wait for its turn; it must still finish within its lease.
                Some(rate)
                    if Duration::from_secs_f64(f64::from(p.concurrency) / f64::from(rate))
                        + p.timeout
                        >= self.delivery.lease =>
                {
                    bad(
                        key("outbound_rate"),
                        format!(
                            "too low for concurrency {}: the last delivery in flight would wait \
                             past delivery.lease ({}); raise the rate or lower the concurrency",
                            p.concurrency,
                            humantime::format_duration(self.delivery.lease)
                        ),
                    );
                }
                _ => {}
            }
            if p.inbound_burst == Some(0) {
                bad(key("inbound_burst"), "must be at least 1".into());
            }
            let b = &p.breaker;
            if b.failures > 0 && b.cooldown.is_zero() {
                bad(key("breaker.cooldown"), "must be positive".into());
            }
            if b.max_cooldown < b.cooldown {
                bad(
                    key("breaker.max_cooldown"),
                    "must not be less than breaker.cooldown".into(),
                );
            }
        }
        if let Err(problems) = crate::sla::Calendar::load_dir(&self.sla.calendar_dir) {
            for p in problems.0 {
                bad("sla.calendar_dir".into(), p);
            }
        }
        if self.sla.scan_interval.is_zero() {
            bad("sla.scan_interval".into(), "must be positive".into());
        }
        if self.sla.repeat_caller_count < 2 {
            bad(
                "sla.repeat_caller_count".into(),
                "must be at least 2".into(),
            );
        }
        if self.privacy.caller_hash_key.len() < 16 {
            bad(
                "privacy.caller_hash_key".into(),
                "must be at least 16 characters".into(),
            );
        }
        let t = &self.transfers;
        if let Some(u) = &t.home_cti_url {
            check_url("transfers.home_cti_url", u, &mut bad);
        }
        for (name, d) in [
            ("answer_timeout", t.answer_timeout),
            ("connect_timeout", t.connect_timeout),
            ("scan_interval", t.scan_interval),
        ] {
            if d.is_zero() {
                bad(format!("transfers.{name}"), "must be positive".into());
            }
        }
        for id in t.hours.keys() {
            if !self.partners.contains_key(id) {
                bad(
                    format!("transfers.hours.{id}"),
                    format!("no partner `{id}` is configured"),
                );
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            if !self.partners.contains_key(&r.to) {
                bad(
                    format!("routes[{i}].to"),
                    format!("no partner `{}` is configured", r.to),
                );
            }
            if let Some(from) = &r.from
                && !self.partners.contains_key(from)
            {
                bad(
                    format!("routes[{i}].from"),
                    format!("no partner `{from}` is configured"),
                );
            }
        }
        out
    }

    /// The mapping folder of a `mapped` partner.
    pub fn mapping_folder(&self, id: &str, p: &PartnerConfig) -> PathBuf {
        self.mappings_dir.join(p.mapping.as_deref().unwrap_or(id))
    }
}

/// The host of an unencrypted `http://` or `amqp://` URL that leaves this machine.
fn plain_beyond_loopback(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "amqp") {
        return None;
    }
    let host = u.host_str()?;
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_owned())
}

/// A set of TLS files (`[partners.<id>.outbound_tls]`, `[delivery.amqp_tls]`) names a client
/// certificate with its key, or neither.
fn check_tls_pair(
    key: String,
    t: &hotline_adapters::http::OutboundTls,
    bad: &mut impl FnMut(String, String),
) {
    if t.cert.is_some() != t.key.is_some() {
        bad(
            key,
            "`cert` and `key` go together: set both for a client certificate, or neither".into(),
        );
    }
}

fn check_url(key: &str, url: &str, bad: &mut impl FnMut(String, String)) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        Ok(u) => bad(
            key.to_owned(),
            format!("scheme `{}` is not http or https", u.scheme()),
        ),
        Err(e) => bad(key.to_owned(), format!("not a URL: {e}")),
    }
}

/// Applies `HOTLINE_GATEWAY__A__B=v` overrides to the table.
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            continue;
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw));
        let (last, parents) = path.split_last().expect("split yields one part at least");
        let mut at = &mut *table;
        for p in parents {
            let entry = at
                .entry(p.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            let toml::Value::Table(t) = entry else {
                unreachable!("made a table just above")
            };
            at = t;
        }
        at.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests;
