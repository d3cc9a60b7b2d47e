use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hotline_gateway::config::Config;
use hotline_gateway::delivery::RetryPolicy;
use hotline_gateway::demo::{self, DemoOptions};
use hotline_gateway::sla::Calendar;
use hotline_gateway::{Gateway, telemetry};

/// The service allocates many small, short-lived buffers from several threads at once (bodies,
/// documents, statements); mimalloc serves those with less locking than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hotline-gateway: 12348 公共法律服务热线 integration gateway.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (production entry point).
    Serve {
        #[arg(long, short, env = "HOTLINE_GATEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Check a configuration file and report every problem with its line.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check the working-day calendar (工作日) by hand.
    Calendar {
        /// Folder of `<year>.toml` calendar files.
        #[arg(long, default_value = "mappings/calendar", global = true)]
        calendar_dir: PathBuf,
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// Work with partner mappings (`mappings/<partner>/`).
    Mapping {
        #[command(subcommand)]
        command: MappingCommand,
    },
    /// Create or bring up to date the configured store's schema, then exit.
    Migrate {
        #[arg(long, short, env = "HOTLINE_GATEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Write every ticket, event, delivery, clock, alert, transfer and audit entry of the
    /// configured store to a JSON Lines file (stop the gateway first).
    Export {
        #[arg(long, short, env = "HOTLINE_GATEWAY_CONFIG")]
        config: PathBuf,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Load an export into the configured store, which must be empty: e.g. move an installation
    /// from SQLite to PostgreSQL. Checks every table's count at the end.
    Import {
        #[arg(long, short, env = "HOTLINE_GATEWAY_CONFIG")]
        config: PathBuf,
        file: PathBuf,
    },
    /// Ask a running gateway whether it is ready (`GET <url>`); exit 0 if it answers 2xx. For
    /// container health checks, where the image has no curl.
    Probe {
        #[arg(long, default_value = "http://127.0.0.1:8348/readyz")]
        url: String,
    },
    /// Compare every open legal-aid case with the case system now and repair what differs
    /// (`reconcile legal-aid`); prints a report. Safe while the gateway runs.
    Reconcile {
        #[command(subcommand)]
        what: ReconcileCommand,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Make a home-API client token: prints the token (give it to the client) and the
    /// `[api.clients.<name>]` table holding only its SHA-256 (put it in the configuration).
    ApiToken {
        #[arg(long)]
        name: String,
        /// Comma-separated: tickets, transfers, legal-aid, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// Hash a dashboard password for `[dashboard.users.<name>] password_hash`: reads the password
    /// from the first line of standard input, prints the Argon2id PHC string.
    HashPassword,
    /// Run the gateway on SQLite with simulated partners and a trickle of tickets.
    Demo {
        #[arg(long, default_value = "demo-data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8348")]
        listen: SocketAddr,
        /// Time between two tickets from the home side, e.g. 500ms or 2s.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// The partner mapping folders.
        #[arg(long, default_value = "mappings")]
        mappings_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ReconcileCommand {
    /// The legal-aid case system (partner `legal-aid`).
    LegalAid {
        #[arg(long, short, env = "HOTLINE_GATEWAY_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Prints FROM plus DAYS working days, in RFC 3339 with +08:00.
    AddWorkingDays {
        /// RFC 3339 time, e.g. 2026-09-18T15:00:00+08:00.
        #[arg(long)]
        from: chrono::DateTime<chrono::FixedOffset>,
        #[arg(long)]
        days: u32,
    },
    /// Prints `true` or `false`.
    IsWorkingDay { date: chrono::NaiveDate },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain: an edited, inserted or deleted entry is reported and the
    /// exit status is non-zero. Prints the head (last entry and hash) to keep elsewhere.
    Verify {
        #[arg(long, short, env = "HOTLINE_GATEWAY_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum MappingCommand {
    /// Translate one message by hand: a partner's wire message to canonical JSON (--decode), or
    /// canonical JSON to the partner's wire message (--encode). Prints the result or the errors.
    Test {
        #[arg(long)]
        partner: String,
        /// Message type: dispatch, receipt, return, reply, urge, callback, ack ...
        #[arg(long)]
        message: String,
        #[arg(long, conflicts_with = "encode", required_unless_present = "encode")]
        decode: bool,
        #[arg(long)]
        encode: bool,
        #[arg(long, default_value = "mappings")]
        mappings_dir: PathBuf,
        file: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // Before anything in the process touches SQLite.
    hotline_gateway::store::configure_sqlite();
    telemetry::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::CheckConfig { config } => return check_config(&config),
        Command::HashPassword => hash_password(),
        Command::ApiToken { name, scopes } => api_token(&name, &scopes),
        Command::Probe { url } => probe(&url).await,
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => audit_verify(&config).await,
        Command::Migrate { config } => migrate(&config).await,
        Command::Export { config, out } => export(&config, &out).await,
        Command::Import { config, file } => import(&config, &file).await,
        Command::Reconcile {
            what: ReconcileCommand::LegalAid { config },
        } => reconcile_legal_aid(&config).await,
        Command::Calendar {
            calendar_dir,
            command,
        } => return calendar(&calendar_dir, command),
        Command::Mapping {
            command:
                MappingCommand::Test {
                    partner,
                    message,
                    decode,
                    encode: _,
                    mappings_dir,
                    file,
                },
        } => {
            return match hotline_gateway::mapping_cli::test(
                &mappings_dir.join(&partner),
                &message,
                decode,
                &file,
            ) {
                Ok(out) => {
                    println!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("错误 error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Demo {
            data_dir,
            listen,
            interval,
            mappings_dir,
        } => {
            demo::run(DemoOptions {
                data_dir,
                listen,
                interval,
                mappings_dir,
            })
            .await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("错误 error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|problems| anyhow::anyhow!("{problems}"))
}

async fn migrate(path: &std::path::Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let db = hotline_gateway::store::dump::open(&config.store).await?;
    let counts = db.counts().await?;
    println!(
        "存储已是最新 store schema up to date ({:?}): {} tickets, {} deliveries",
        config.store.kind,
        counts.get("tickets").copied().unwrap_or(0),
        counts.get("deliveries").copied().unwrap_or(0)
    );
    Ok(())
}

fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} 行 rows ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

async fn reconcile_legal_aid(path: &std::path::Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let core = hotline_gateway::app::Core::build(&config).await?;
    let legal_aid = core.legal_aid;
    if !legal_aid.configured() {
        anyhow::bail!(
            "没有配置法律援助办案系统 no legal-aid case system is configured (partner `legal-aid`)"
        );
    }
    let bar = progress(0, "核对 reconcile");
    let report = legal_aid
        .reconcile(|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await?;
    bar.finish();
    println!("核对案件 checked {} open cases", report.checked);
    for (case, from, to) in &report.repaired {
        println!("已修复 repaired {case}: version {from} → {to}");
    }
    for case in &report.unknown {
        println!("本网关未知 unknown to the gateway: {case}");
    }
    for case in &report.ahead {
        println!("本网关领先 the gateway is ahead of the case system: {case}");
    }
    for (case, why) in &report.failed {
        println!("未能核对 could not compare {case}: {why}");
    }
    if !report.failed.is_empty() {
        anyhow::bail!("{} cases could not be compared", report.failed.len());
    }
    Ok(())
}

async fn export(path: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let db = hotline_gateway::store::dump::open(&config.store).await?;
    let total: u64 = db.counts().await?.values().sum();
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let bar = progress(total, "导出 export");
    let n = db.export(&mut writer, || bar.inc(1)).await?;
    use std::io::Write;
    writer.flush()?;
    writer.get_ref().sync_all()?;
    bar.finish();
    println!("已导出 exported {n} rows to {}", out.display());
    Ok(())
}

async fn import(path: &std::path::Path, file: &std::path::Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let db = hotline_gateway::store::dump::open(&config.store).await?;
    let text = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let total = {
        use std::io::BufRead;
        std::io::BufReader::new(std::fs::File::open(file)?)
            .lines()
            .count()
            .saturating_sub(1) as u64
    };
    let bar = progress(total, "导入 import");
    let counts = db
        .import(std::io::BufReader::new(text), || bar.inc(1))
        .await?;
    bar.finish();
    println!(
        "已导入 imported {} rows ({} tickets, {} deliveries); every table's count matches the export",
        counts.values().sum::<u64>(),
        counts.get("tickets").copied().unwrap_or(0),
        counts.get("deliveries").copied().unwrap_or(0)
    );
    Ok(())
}

async fn audit_verify(path: &std::path::Path) -> anyhow::Result<()> {
    use hotline_gateway::store::AuditQuery;
    let config = load_config(path)?;
    let store = hotline_gateway::store::open(&config.store, Default::default()).await?;
    // Newest first, page by page; checked oldest first.
    let mut entries = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .audit_log(&AuditQuery {
                before,
                limit: Some(1000),
                ..AuditQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        entries.extend(page);
    }
    entries.reverse();
    let (seq, hash) = hotline_gateway::audit::verify(&entries)?;
    println!("审计链完整 audit chain intact: {seq} entries, head {hash}");
    Ok(())
}

async fn probe(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("no answer from {url}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
    println!("{body}");
    Ok(())
}

fn api_token(name: &str, scopes: &[String]) -> anyhow::Result<()> {
    use hotline_gateway::api::auth::Scope;
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "--name: letters, digits and '-' only"
    );
    let scopes: Vec<Scope> = scopes
        .iter()
        .map(|s| {
            serde_json::from_value(serde_json::Value::String(s.trim().to_owned())).map_err(|_| {
                anyhow::anyhow!(
                    "--scopes: unknown scope `{s}`; use tickets, transfers, legal-aid or admin"
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let (token, hash) = hotline_gateway::api::auth::new_token();
    let list = scopes
        .iter()
        .map(|s| format!("\"{}\"", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    println!("# 令牌 token, for the client only (shown once): {token}");
    println!("[api.clients.{name}]");
    println!("token_sha256 = \"{hash}\"");
    println!("scopes = [{list}]");
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        password.chars().count() >= 12,
        "密码至少 12 个字符 / the password needs at least 12 characters"
    );
    let hash = hotline_gateway::dashboard::hash_password(password)
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    println!("{hash}");
    Ok(())
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let config = Config::load(&path)?;
    let gateway = Gateway::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    gateway.shutdown().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn calendar(dir: &std::path::Path, command: CalendarCommand) -> ExitCode {
    let cal = match Calendar::load_dir(dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("错误 error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let provisional = match command {
        CalendarCommand::AddWorkingDays { from, days } => {
            let d = cal.add_working_days(from, days);
            println!("{}", d.at.to_rfc3339());
            d.provisional
        }
        CalendarCommand::IsWorkingDay { date } => {
            let (working, provisional) = cal.is_working_day(date);
            println!("{working}");
            provisional
        }
    };
    if provisional {
        let loaded: Vec<String> = cal.years().map(|y| y.to_string()).collect();
        eprintln!(
            "注意 provisional: reaches a year with no calendar loaded (loaded: {}); counted on weekends alone",
            loaded.join(", ")
        );
    }
    ExitCode::SUCCESS
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!(
                "配置正确 configuration OK: {} ({} partners)",
                path.display(),
                config.partners.len()
            );
            for (id, p) in &config.partners {
                let schedule: Vec<String> = RetryPolicy::new(p.retry.clone())
                    .schedule()
                    .into_iter()
                    .map(|d| humantime::format_duration(d).to_string())
                    .collect();
                println!("  {id}: {} → retries after {}", p.url, schedule.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!("{problems}");
            eprintln!(
                "配置有 {} 处错误 {} problem(s) found",
                problems.list.len(),
                problems.list.len()
            );
            ExitCode::FAILURE
        }
    }
}
