//! The benchmark harness: the real `hotline-gateway serve` process, partner simulators and the
//! load generator as separate processes on loopback. Prints a table, and as its last line one
//! JSON object with the figures.
//!
//! ```sh
//! cargo build --release -p hotline-gateway
//! cargo run --release -p contract-tests --bin bench -- relay --tickets 50000
//! ```
//!
//! Scenarios: `relay` (12345 XML in, routed to 12315 JSON, acknowledged, against the ceiling) and
//! `crash` (SIGKILL under load), `faults` (a partner failing in every way, then recovering) and
//! `backlog` (a partner down while tickets queue).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hotline_adapters::mapped::load_folder;
use hotline_adapters::signature::Signer;
use http::HeaderMap;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const GATEWAY_SECRET: &str = "bench-gateway-secret-0001";
const PARTNER_SECRET: &str = "bench-partner-secret-0001";

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
    /// The gateway's store: `sqlite` (a file in the work folder) or `postgres` (a fresh schema
    /// on `DATABASE_URL`, default the project machines' server).
    #[arg(long, global = true, default_value = "sqlite")]
    store: String,
    /// How delivery work travels: `store` or `rabbitmq` (fresh queues on `AMQP_URL`).
    #[arg(long, global = true, default_value = "store")]
    queue: String,
}

/// The configuration lines for the chosen store and queue, set once in `main`.
static BACKEND: std::sync::OnceLock<(String, String, &'static str, &'static str)> =
    std::sync::OnceLock::new();

/// Prints a scenario's figures as the last line, with the backend they were measured on.
fn print_figures(mut figures: serde_json::Value) {
    if let Some(map) = figures.as_object_mut() {
        map.insert(
            "store".into(),
            BACKEND.get().map_or("sqlite", |b| b.2).into(),
        );
        map.insert(
            "queue".into(),
            BACKEND.get().map_or("store", |b| b.3).into(),
        );
    }
    println!("{figures}");
}

/// (`[store]` section, lines for `[delivery]`, store name, queue name).
async fn backend(
    store: &str,
    queue: &str,
) -> anyhow::Result<(String, String, &'static str, &'static str)> {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let (store_toml, store_name) = match store {
        "sqlite" => (String::new(), "sqlite"),
        "postgres" => {
            use sqlx::Connection;
            let url = std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .with_context(|| format!("PostgreSQL at {url}"))?;
            sqlx::query(&format!("CREATE SCHEMA bench_{tag}"))
                .execute(&mut conn)
                .await?;
            (
                format!(
                    "kind = \"postgres\"\nurl = \"{url}?options=-c%20search_path%3Dbench_{tag}\"\n"
                ),
                "postgres",
            )
        }
        other => anyhow::bail!("--store: `{other}` is neither sqlite nor postgres"),
    };
    let (queue_toml, queue_name) = match queue {
        "store" => (String::new(), "store"),
        "rabbitmq" => {
            let url = std::env::var("AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
            (
                format!(
                    "queue = \"rabbitmq\"\namqp_url = \"{url}\"\namqp_prefix = \"bench{tag}\"\n"
                ),
                "rabbitmq",
            )
        }
        other => anyhow::bail!("--queue: `{other}` is neither store nor rabbitmq"),
    };
    Ok((store_toml, queue_toml, store_name, queue_name))
}

#[derive(Subcommand)]
enum Scenario {
    /// N tickets as 12345 XML to the gateway's 12345 ingress, routed to 12315 (JSON, HMAC-SM3),
    /// acknowledged by the 12315 simulator; the same load against a trivial server for the
    /// ceiling; then an open-loop load at half the measured maximum.
    Relay {
        #[arg(long, default_value_t = 50_000)]
        tickets: usize,
        /// Requests in flight at once (closed loop).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// How long the open-loop phase offers load.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        open_loop: Duration,
    },
    /// Load while the gateway is SIGKILLed at random moments and restarted; every accepted
    /// ticket must reach 12315 exactly once in effect.
    Crash {
        #[arg(long, default_value_t = 10)]
        kills: u32,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// 12315 fails in every way for a window (500s, timeouts, resets, malformed answers), then
    /// recovers: nothing lost, attempts bounded, recovery time, the breaker opened and closed.
    Faults {
        #[arg(long, default_value_t = 2000)]
        tickets: usize,
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        window: Duration,
    },
    /// 12315 down while tickets queue for it, then up: drain rate, memory, disk per ticket.
    Backlog {
        #[arg(long, default_value_t = 1_000_000)]
        tickets: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `name` beside this binary (target/release/…).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found; build it first: cargo build --release -p {}",
            path.display(),
            if name == "hotline-gateway" {
                "hotline-gateway"
            } else {
                "contract-tests --bins"
            }
        );
    }
    Ok(path)
}

/// Starts a process that prints `listening <url>` first; returns it and the URL.
async fn spawn_listening(mut cmd: Command) -> anyhow::Result<(Proc, String)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting a simulator")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let proc = Proc(child);
    let mut lines = BufReader::new(tokio::process::ChildStdout::from_std(stdout)?).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .context("the simulator did not start in time")??
        .context("the simulator exited")?;
    let url = line
        .strip_prefix("listening ")
        .context("unexpected first line")?
        .to_owned();
    // Keep draining its output so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((proc, url))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// 12345's dispatch messages, one per ticket number, signed as 12345.
struct Load {
    template: String,
    signer: Signer,
    content_type: String,
}

impl Load {
    fn new() -> anyhow::Result<Self> {
        let dir = repo().join("mappings/12345");
        let (_, profile) = load_folder(&dir)?;
        Ok(Self {
            template: std::fs::read_to_string(dir.join("samples/dispatch.xml"))?,
            signer: Signer {
                spec: profile.signature.clone(),
                app_id: "hotline-12348".into(),
                our_secret: GATEWAY_SECRET.into(),
                their_secret: PARTNER_SECRET.into(),
            },
            content_type: profile.content_type,
        })
    }

    fn number(i: usize) -> String {
        format!("BENCH-{i:08}")
    }

    fn request(&self, i: usize) -> anyhow::Result<(HeaderMap, Vec<u8>)> {
        let body = self
            .template
            .replace("12345-MSG-20261123-0001", &format!("M-{}", Self::number(i)))
            .replace("SD12345-2026112300017", &Self::number(i))
            .replace("13953112345", &format!("139{:08}", i % 100_000_000))
            .into_bytes();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", self.content_type.parse()?);
        self.signer.sign_as_partner(&mut headers, &body)?;
        Ok((headers, body))
    }
}

/// Sends tickets `range` with `concurrency` in flight; returns (send time as Unix ms, latency ms,
/// ok) per ticket.
async fn closed_loop(
    client: &reqwest::Client,
    load: &Arc<Load>,
    url: &str,
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> Vec<(usize, i64, f64, bool)> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(range.start));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, load, url, next) = (
            client.clone(),
            Arc::clone(load),
            url.to_owned(),
            Arc::clone(&next),
        );
        let end = range.end;
        tasks.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= end {
                    break;
                }
                out.push(send_one(&client, &load, &url, i).await);
            }
            out
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap_or_default());
    }
    all
}

async fn send_one(
    client: &reqwest::Client,
    load: &Load,
    url: &str,
    i: usize,
) -> (usize, i64, f64, bool) {
    let sent_ms = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let ok = match load.request(i) {
        Ok((headers, body)) => match client.post(url).headers(headers).body(body).send().await {
            Ok(r) => {
                let ok = r.status().is_success();
                let _ = r.bytes().await;
                ok
            }
            Err(_) => false,
        },
        Err(_) => false,
    };
    (i, sent_ms, started.elapsed().as_secs_f64() * 1000.0, ok)
}

/// The gateway's configuration: 12345 in, everything routed to the 12315 simulator.
fn write_config(dir: &Path, port: u16, sim_url: &str) -> anyhow::Result<PathBuf> {
    let config = dir.join("gateway.toml");
    let mappings = repo().join("mappings");
    std::fs::write(
        &config,
        format!(
            r#"mappings_dir = "{m}"
[server]
listen = "127.0.0.1:{port}"
[store]
path = "{db}"
{store}
[api]
allow_anonymous = true

[delivery]
poll_interval = "200ms"
claim_batch = 256
{queue}[sla]
calendar_dir = "{m}/calendar"
[privacy]
caller_hash_key = "bench-caller-hash-key-0001"
[partners.12345]
adapter = "mapped"
url = "http://127.0.0.1:9/unused"
signing_secret = "{GATEWAY_SECRET}"
verify_secret = "{PARTNER_SECRET}"
[partners.12315]
adapter = "mapped"
url = "{sim_url}/inbox"
signing_secret = "{GATEWAY_SECRET}"
verify_secret = "{PARTNER_SECRET}"
concurrency = 32
timeout = "5s"
[partners.12315.retry]
min_delay = "200ms"
max_delay = "5s"
max_attempts = 50
[partners.12315.breaker]
failures = 5
cooldown = "1s"
max_cooldown = "4s"
[[routes]]
from = "12345"
to = "12315"
"#,
            m = mappings.display(),
            db = dir.join("bench.db").display(),
            store = BACKEND.get().map_or("", |b| b.0.as_str()),
            queue = BACKEND.get().map_or("", |b| b.1.as_str()),
        ),
    )?;
    Ok(config)
}

/// What every scenario starts from: the binaries beside this one, a work folder for the
/// gateway's configuration and database, the load and an HTTP client.
struct Bench {
    gateway_bin: PathBuf,
    sim_bin: PathBuf,
    work: tempfile::TempDir,
    load: Arc<Load>,
    client: reqwest::Client,
}

/// A running `hotline-gateway serve`, killed with SIGKILL when dropped.
struct Gateway {
    proc: Proc,
    config: PathBuf,
    base: String,
}

impl Gateway {
    fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    /// The 12345 ingress the load goes to.
    fn ingress(&self) -> String {
        format!("{}/partners/12345/messages", self.base)
    }
}

impl Bench {
    fn new(client: reqwest::Client) -> anyhow::Result<Self> {
        Ok(Self {
            gateway_bin: sibling("hotline-gateway")?,
            sim_bin: sibling("sim")?,
            work: tempfile::tempdir()?,
            load: Arc::new(Load::new()?),
            client,
        })
    }

    /// A gateway on a free port, routing 12345's tickets to the partner at `sim_url`.
    async fn gateway(&self, sim_url: &str) -> anyhow::Result<Gateway> {
        let port = free_port()?;
        let config = write_config(self.work.path(), port, sim_url)?;
        let base = format!("http://127.0.0.1:{port}");
        let proc = self.serve(&config, &base).await?;
        Ok(Gateway { proc, config, base })
    }

    /// Kills the gateway with SIGKILL and starts it again on the same configuration and database.
    async fn restart(&self, g: Gateway) -> anyhow::Result<Gateway> {
        let Gateway { proc, config, base } = g;
        drop(proc);
        let proc = self.serve(&config, &base).await?;
        Ok(Gateway { proc, config, base })
    }

    /// Starts `hotline-gateway serve` and waits until it is ready.
    async fn serve(&self, config: &Path, base: &str) -> anyhow::Result<Proc> {
        let gateway = Proc(
            Command::new(&self.gateway_bin)
                .args(["serve", "--config"])
                .arg(config)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let ready = Instant::now();
        while self
            .client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map_or(true, |r| !r.status().is_success())
        {
            if ready.elapsed() > Duration::from_secs(30) {
                bail!("the gateway did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(gateway)
    }

    /// The 12315 simulator on `port` (0: any free one).
    async fn sim(&self, port: u16) -> anyhow::Result<(Proc, String)> {
        spawn_listening({
            let mut c = Command::new(&self.sim_bin);
            c.args(["--port", &port.to_string()])
                .args(["--partner-dir"])
                .arg(repo().join("mappings/12315"))
                .args(["--gateway-secret", GATEWAY_SECRET])
                .args(["--partner-secret", PARTNER_SECRET]);
            c
        })
        .await
    }

    /// Polls the simulator's counts until `ready` holds, then reads its arrivals until `done`
    /// holds of them too, or `limit` passes; the last whole stats, and whether `done` held.
    /// The arrivals (megabytes of JSON in a long run) are read only once the counts say they
    /// may be complete, so that polling costs the machine nothing while the load runs.
    async fn wait_sim(
        &self,
        sim_url: &str,
        limit: Duration,
        ready: impl Fn(&Value) -> bool,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<(Value, bool)> {
        let started = Instant::now();
        loop {
            let counts = sim_stats(&self.client, sim_url, false).await?;
            let late = started.elapsed() > limit;
            if ready(&counts) || late {
                let all = sim_stats(&self.client, sim_url, true).await?;
                if done(&all) {
                    return Ok((all, true));
                }
                if late {
                    return Ok((all, false));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Any stats will do.
fn anything(_: &Value) -> bool {
    true
}

/// The simulator has taken at least `n` messages.
fn taken_at_least(n: usize) -> impl Fn(&Value) -> bool {
    move |s| s["taken"].as_u64().unwrap_or(0) as usize >= n
}

/// What reached the partner, against what the gateway accepted: tickets that arrived (by number),
/// accepted ones that never did, and tickets that arrived under more than one message id.
struct Effects {
    delivered_unique: usize,
    lost: usize,
    duplicate_effects: usize,
}

fn effects<'a>(stats: &Value, accepted: impl IntoIterator<Item = &'a String>) -> Effects {
    let mut per_ticket: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    for x in stats["arrivals"].as_array().into_iter().flatten() {
        if let Some(n) = x[0].as_str() {
            *per_ticket.entry(n).or_default() += 1;
        }
    }
    Effects {
        delivered_unique: per_ticket.len(),
        lost: accepted
            .into_iter()
            .filter(|n| !per_ticket.contains_key(n.as_str()))
            .count(),
        duplicate_effects: per_ticket.values().filter(|&&c| c > 1).count(),
    }
}

async fn sim_stats(
    client: &reqwest::Client,
    sim_url: &str,
    arrivals: bool,
) -> anyhow::Result<Value> {
    Ok(client
        .get(format!("{sim_url}/stats?arrivals={arrivals}"))
        .send()
        .await?
        .json()
        .await?)
}

async fn relay(tickets: usize, concurrency: usize, open_loop: Duration) -> anyhow::Result<()> {
    let bench = Bench::new(
        reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()?,
    )?;
    let (client, load) = (&bench.client, &bench.load);

    // The ceiling: the same load generator against a server that only reads and answers 200.
    let (_trivial, trivial_url) = spawn_listening({
        let mut c = Command::new(&bench.sim_bin);
        c.arg("--trivial");
        c
    })
    .await?;
    let t = Instant::now();
    let ceiling_run = closed_loop(
        client,
        load,
        &format!("{trivial_url}/partners/12345/messages"),
        0..tickets,
        concurrency,
    )
    .await;
    let ceiling_per_s =
        ceiling_run.iter().filter(|r| r.3).count() as f64 / t.elapsed().as_secs_f64();

    // The 12315 simulator, and the gateway routing everything from 12345 to it.
    let (_sim, sim_url) = bench.sim(0).await?;
    let gateway = bench.gateway(&sim_url).await?;
    let ingress = gateway.ingress();

    let t = Instant::now();
    let started_ms = chrono::Utc::now().timestamp_millis();
    let run = closed_loop(client, load, &ingress, 0..tickets, concurrency).await;
    let accept_s = t.elapsed().as_secs_f64();
    let accepted = run.iter().filter(|r| r.3).count();
    // Wait for the simulator to have taken every accepted ticket.
    let limit = Duration::from_secs(600).saturating_sub(t.elapsed());
    let (stats, all) = bench
        .wait_sim(&sim_url, limit, taken_at_least(accepted), anything)
        .await?;
    if !all {
        bail!(
            "only {} of {accepted} tickets reached 12315",
            stats["taken"]
        );
    }
    // End to end: until the last ticket reached the partner, by the partner's own clock (on
    // this machine), not until this poll noticed it.
    let last_ms = stats["arrivals"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x[1].as_i64())
        .max();
    let e2e_s = last_ms.map_or_else(
        || t.elapsed().as_secs_f64(),
        |last| ((last - started_ms) as f64 / 1000.0).max(accept_s),
    );
    let sent: std::collections::HashMap<String, i64> =
        run.iter().map(|r| (Load::number(r.0), r.1)).collect();
    let mut e2e: Vec<f64> = stats["arrivals"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    let at = x[1].as_i64()?;
                    let from = sent.get(x[0].as_str()?)?;
                    Some((at - from) as f64)
                })
                .collect()
        })
        .unwrap_or_default();
    e2e.sort_by(f64::total_cmp);
    let mut accept: Vec<f64> = run.iter().filter(|r| r.3).map(|r| r.2).collect();
    accept.sort_by(f64::total_cmp);
    let accepted_per_s = accepted as f64 / accept_s;
    let acked_per_s = accepted as f64 / e2e_s;

    // Open loop at half the measured maximum: a fixed arrival rate, whatever the answers.
    let rate = (accepted_per_s / 2.0).max(1.0);
    let n_open = (rate * open_loop.as_secs_f64()) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(gap);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    for i in tickets..tickets + n_open {
        tick.tick().await;
        let (client, load, url) = (client.clone(), Arc::clone(load), ingress.clone());
        tasks.spawn(async move { send_one(&client, &load, &url, i).await });
    }
    let mut open: Vec<f64> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r
            && r.3
        {
            open.push(r.2);
        }
    }
    open.sort_by(f64::total_cmp);
    let rss = peak_rss_mb(gateway.pid()).unwrap_or(f64::NAN);
    drop(gateway);

    let figures = json!({
        "scenario": "relay",
        "tickets": tickets,
        "concurrency": concurrency,
        "accepted": accepted,
        "accepted_per_s": accepted_per_s.round(),
        "acked_per_s": acked_per_s.round(),
        "accept_p50_ms": percentile(&accept, 0.5),
        "accept_p99_ms": percentile(&accept, 0.99),
        "e2e_p99_ms": percentile(&e2e, 0.99),
        "peak_rss_mb": rss,
        "ceiling_per_s": ceiling_per_s.round(),
        "ratio": acked_per_s / ceiling_per_s,
        "open_loop_rate_per_s": rate.round(),
        "open_loop_sent": n_open,
        "open_loop_accept_p99_ms": percentile(&open, 0.99),
    });
    println!("relay: 12345 XML → gateway → 12315 JSON (acknowledged), {concurrency} in flight");
    println!("  tickets accepted        {accepted} of {tickets}");
    println!("  accepted per second     {accepted_per_s:.0}");
    println!("  acknowledged per second {acked_per_s:.0}   (end to end)");
    println!(
        "  accept p50 / p99        {:.1} / {:.1} ms",
        percentile(&accept, 0.5),
        percentile(&accept, 0.99)
    );
    println!("  end-to-end p99          {:.1} ms", percentile(&e2e, 0.99));
    println!("  gateway peak RSS        {rss:.1} MB");
    println!("  ceiling (trivial 200)   {ceiling_per_s:.0} per second");
    println!(
        "  ratio acked / ceiling   {:.3}",
        acked_per_s / ceiling_per_s
    );
    println!(
        "  open loop at {rate:.0}/s    {} sent, accept p99 {:.1} ms",
        n_open,
        percentile(&open, 0.99)
    );
    print_figures(figures);
    Ok(())
}

/// Load while the gateway is killed with SIGKILL at random moments and restarted; then every
/// ticket that got a 2xx must reach the partner, once in effect.
async fn crash(kills: u32, concurrency: usize) -> anyhow::Result<()> {
    let bench = Bench::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
    )?;
    let (_sim, sim_url) = bench.sim(0).await?;
    let mut gateway = bench.gateway(&sim_url).await?;
    let ingress = gateway.ingress();

    // The load: closed loop until told to stop; each ticket once, accepted or not.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, load, url, stop, next) = (
            bench.client.clone(),
            Arc::clone(&bench.load),
            ingress.clone(),
            Arc::clone(&stop),
            Arc::clone(&next),
        );
        senders.spawn(async move {
            let mut accepted = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let r = send_one(&client, &load, &url, i).await;
                if r.3 {
                    accepted.push(Load::number(i));
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            accepted
        });
    }
    for k in 0..kills {
        let wait = Duration::from_millis(300 + rand::random_range(0..1700));
        tokio::time::sleep(wait).await;
        println!("  kill {} after {wait:?}", k + 1);
        gateway = bench.restart(gateway).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut accepted = std::collections::HashSet::new();
    while let Some(r) = senders.join_next().await {
        accepted.extend(r.unwrap_or_default());
    }
    let sent = next.load(std::sync::atomic::Ordering::Relaxed);
    // Wait for every accepted ticket to arrive (or give up after two minutes).
    let (stats, _) = bench
        .wait_sim(
            &sim_url,
            Duration::from_secs(120),
            taken_at_least(accepted.len()),
            |s| effects(s, &accepted).lost == 0,
        )
        .await?;
    drop(gateway);
    let Effects {
        delivered_unique,
        lost,
        duplicate_effects,
    } = effects(&stats, &accepted);
    let taken = stats["taken"].as_u64().unwrap_or(0);
    let raw_redeliveries = stats["hits"].as_u64().unwrap_or(0).saturating_sub(taken);
    let figures = json!({
        "scenario": "crash",
        "kills": kills,
        "sent": sent,
        "accepted": accepted.len(),
        "delivered_unique": delivered_unique,
        "lost": lost,
        "duplicate_effects": duplicate_effects,
        "raw_redeliveries": raw_redeliveries,
    });
    println!("crash: SIGKILL under load, restart, check the partner's count");
    println!("  kills                  {kills}");
    println!("  tickets sent           {sent}");
    println!("  accepted (2xx)         {}", accepted.len());
    println!("  delivered (unique)     {delivered_unique}");
    println!("  lost                   {lost}   (must be 0)");
    println!("  duplicate effects      {duplicate_effects}   (must be 0)");
    println!(
        "  raw redeliveries       {raw_redeliveries}   (allowed: the partner dedups on the message id)"
    );
    print_figures(figures);
    if lost > 0 || duplicate_effects > 0 {
        bail!("{lost} lost, {duplicate_effects} duplicated");
    }
    Ok(())
}

/// Sums a Prometheus counter's samples whose labels contain `label`.
fn counter_sum(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The partner fails in every way for a while (500s, answers slower than the timeout, dropped
/// connections, malformed acknowledgements), then recovers.
async fn faults(tickets: usize, window: Duration) -> anyhow::Result<()> {
    const MAX_ATTEMPTS: u32 = 50; // as in write_config
    let bench = Bench::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
    )?;
    let client = &bench.client;
    let (_sim, sim_url) = bench.sim(0).await?;
    let gateway = bench.gateway(&sim_url).await?;
    let base = gateway.base.clone();
    let mode = |m: &str| json!({"mode": m, "slow_ms": 6000});
    client
        .post(format!("{sim_url}/admin/behaviour"))
        .json(&mode("chaos"))
        .send()
        .await?
        .error_for_status()?;
    let fault_start = Instant::now();
    let run = closed_loop(client, &bench.load, &gateway.ingress(), 0..tickets, 16).await;
    let accepted: Vec<String> = run
        .iter()
        .filter(|r| r.3)
        .map(|r| Load::number(r.0))
        .collect();
    tokio::time::sleep(window.saturating_sub(fault_start.elapsed())).await;
    let partners: Value = client
        .get(format!("{base}/api/v1/partners"))
        .send()
        .await?
        .json()
        .await?;
    let during = partners[0]["circuit"].clone();
    client
        .post(format!("{sim_url}/admin/behaviour"))
        .json(&mode("ack"))
        .send()
        .await?
        .error_for_status()?;
    let recovered = Instant::now();
    let (stats, _) = bench
        .wait_sim(
            &sim_url,
            Duration::from_secs(300),
            taken_at_least(accepted.len()),
            anything,
        )
        .await?;
    let recovery_s = recovered.elapsed().as_secs_f64();
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let partners: Value = client
        .get(format!("{base}/api/v1/partners"))
        .send()
        .await?
        .json()
        .await?;
    let after = partners[0]["circuit"].clone();
    let dead: Value = client
        .get(format!("{base}/api/v1/deliveries?status=dead&limit=1000"))
        .send()
        .await?
        .json()
        .await?;
    drop(gateway);
    let Effects {
        lost,
        duplicate_effects,
        ..
    } = effects(&stats, &accepted);
    let attempts = counter_sum(
        &metrics,
        "hotline_delivery_attempts_total",
        "partner=\"12315\"",
    );
    let attempts_per_ticket = attempts / accepted.len().max(1) as f64;
    let opened = after["opened"].as_u64().unwrap_or(0);
    let closed_again = after["state"] == "closed";
    let figures = json!({
        "scenario": "faults",
        "tickets": tickets,
        "accepted": accepted.len(),
        "fault_window_s": window.as_secs_f64(),
        "lost": lost,
        "duplicate_effects": duplicate_effects,
        "dead_letters": dead.as_array().map_or(0, Vec::len),
        "attempts_per_ticket": attempts_per_ticket,
        "attempts_bound": MAX_ATTEMPTS,
        "recovery_s": recovery_s,
        "breaker_opened": opened,
        "breaker_state_during": during["state"],
        "breaker_closed_after": closed_again,
    });
    println!("faults: 12315 fails in every way for {window:?}, then recovers");
    println!("  tickets accepted        {}", accepted.len());
    println!("  lost                    {lost}   (must be 0)");
    println!("  duplicate effects       {duplicate_effects}   (must be 0)");
    println!("  attempts per ticket     {attempts_per_ticket:.2}   (bound {MAX_ATTEMPTS})");
    println!("  recovery                {recovery_s:.1} s from recovery to an empty backlog");
    println!(
        "  circuit breaker         opened {opened} times; {} during the faults, {} after",
        during["state"], after["state"]
    );
    print_figures(figures);
    if lost > 0 || duplicate_effects > 0 {
        bail!("{lost} lost, {duplicate_effects} duplicated");
    }
    if opened == 0 || !closed_again {
        bail!("the circuit breaker did not open and close again: {after}");
    }
    Ok(())
}

/// Bytes of the SQLite database with its WAL.
fn disk_bytes(dir: &Path) -> u64 {
    ["bench.db", "bench.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// The partner is down while tickets queue for it, then comes up: how fast the backlog drains,
/// and whether memory grows with it.
async fn backlog(tickets: usize, concurrency: usize) -> anyhow::Result<()> {
    let bench = Bench::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
    )?;
    // Nothing listens on the partner's port yet: every delivery fails and waits to be retried.
    let sim_port = free_port()?;
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let gateway = bench.gateway(&sim_url).await?;
    let pid = gateway.pid();
    let t = Instant::now();
    let run = closed_loop(
        &bench.client,
        &bench.load,
        &gateway.ingress(),
        0..tickets,
        concurrency,
    )
    .await;
    let queue_s = t.elapsed().as_secs_f64();
    let accepted = run.iter().filter(|r| r.3).count();
    let rss_queued = peak_rss_mb(pid).unwrap_or(f64::NAN);
    let disk = disk_bytes(bench.work.path());
    println!("  {accepted} tickets queued in {queue_s:.1} s; the partner comes up");
    let (_sim, _) = bench.sim(sim_port).await?;
    let t = Instant::now();
    let (stats, all) = bench
        .wait_sim(
            &sim_url,
            Duration::from_secs(3600),
            taken_at_least(accepted),
            anything,
        )
        .await?;
    if !all {
        bail!(
            "the backlog did not drain: {} of {accepted}",
            stats["taken"]
        );
    }
    let drain_s = t.elapsed().as_secs_f64();
    let rss_drained = peak_rss_mb(pid).unwrap_or(f64::NAN);
    drop(gateway);
    // From the first arrival to the last: the retry wait before the first is reported apart.
    let times: Vec<i64> = stats["arrivals"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x[1].as_i64()).collect())
        .unwrap_or_default();
    let (first, last) = (
        times.iter().min().copied().unwrap_or(0),
        times.iter().max().copied().unwrap_or(0),
    );
    let flowing_s = ((last - first) as f64 / 1000.0).max(0.001);
    let first_after_s = drain_s - flowing_s;
    let drain_per_s = accepted as f64 / flowing_s;
    let per_ticket = disk as f64 / accepted.max(1) as f64;
    let figures = json!({
        "scenario": "backlog",
        "tickets": tickets,
        "accepted": accepted,
        "queue_per_s": (accepted as f64 / queue_s).round(),
        "drain_per_s": drain_per_s.round(),
        "drain_s": drain_s,
        "first_delivery_after_s": first_after_s,
        "peak_rss_mb_queued": rss_queued,
        "peak_rss_mb": rss_drained,
        "disk_bytes_per_ticket": per_ticket.round(),
    });
    println!("backlog: 12315 down while tickets queue for it, then up");
    println!("  tickets queued          {accepted}");
    println!(
        "  drained in              {drain_s:.1} s: first after {first_after_s:.1} s (retry wait), \
         then {drain_per_s:.0} per second"
    );
    println!("  peak RSS queued/drained {rss_queued:.1} / {rss_drained:.1} MB");
    println!("  disk per ticket         {per_ticket:.0} bytes (SQLite + WAL, before draining)");
    print_figures(figures);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let chosen = backend(&args.store, &args.queue).await?;
    let _ = BACKEND.set(chosen);
    match args.scenario {
        Scenario::Relay {
            tickets,
            concurrency,
            open_loop,
        } => relay(tickets, concurrency.max(1), open_loop).await,
        Scenario::Crash { kills, concurrency } => crash(kills, concurrency.max(1)).await,
        Scenario::Backlog {
            tickets,
            concurrency,
        } => backlog(tickets, concurrency.max(1)).await,
        Scenario::Faults { tickets, window } => faults(tickets, window).await,
    }
}
