//! Wires the parts together and runs them until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState};
use crate::config::{Config, StoreKind};
use crate::delivery::DeliveryEngine;
use crate::intake::{CallerMatch, Intake};
use crate::sla::scan::Scanner;
use crate::sla::{Calendar, Sla};
use crate::store::Store;
use crate::transfer::{Timers, Transfers};
use crate::{partners, telemetry};

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub engine: Arc<DeliveryEngine>,
    pub intake: Arc<Intake>,
    pub sla: Arc<Sla>,
    pub transfers: Arc<Transfers>,
    pub legal_aid: Arc<crate::legal_aid::LegalAid>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    server: JoinHandle<std::io::Result<()>>,
}

/// What a TLS reload did: whether anything had TLS settings, and what could not be read (the
/// configuration in use stays for those).
#[derive(Debug, Default)]
pub struct TlsReload {
    pub reloaded: Vec<String>,
    pub failed: Vec<String>,
}

/// Reads every TLS file again: the server's certificate, key and client CA (`[server.tls]`) and
/// each partner's outbound CA and client certificate (`[partners.<id>.outbound_tls]`). New
/// connections use them; a part that fails keeps what it had. Certificate rotation without a
/// restart, on SIGHUP or `POST /api/v1/admin/tls/reload`.
pub fn reload_tls(
    server: Option<&crate::serve::TlsReloader>,
    engine: &DeliveryEngine,
) -> TlsReload {
    let mut out = TlsReload::default();
    if let Some(server) = server {
        match server.reload() {
            Ok(()) => out.reloaded.push("server.tls".into()),
            Err(e) => out.failed.push(format!("server.tls: {e:#}")),
        }
    }
    for (id, p) in engine.partners() {
        match p.adapter.reload_tls() {
            Ok(true) => out.reloaded.push(format!("partners.{id}.outbound_tls")),
            Ok(false) => {}
            Err(e) => out.failed.push(format!("partners.{id}.{e}")),
        }
    }
    for f in &out.failed {
        tracing::error!(problem = %f, "TLS reload failed; the current configuration stays");
    }
    if !out.reloaded.is_empty() {
        tracing::info!(parts = ?out.reloaded, "TLS configuration reloaded");
    }
    out
}

/// `kill -HUP` reads the TLS files again (certificate rotation without a restart).
fn spawn_tls_reload_on_sighup(
    tls: Option<Arc<crate::serve::TlsReloader>>,
    engine: Arc<DeliveryEngine>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload TLS through the API instead");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let done = reload_tls(tls.as_deref(), &engine);
                    if done.reloaded.is_empty() && done.failed.is_empty() {
                        tracing::info!("SIGHUP: no TLS settings, nothing to reload");
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
}

/// What both the server and the command-line jobs need: the store, the delivery engine (its
/// workers not started), the SLA clocks, intake and legal aid.
pub struct Core {
    pub store: Arc<dyn Store>,
    pub engine: Arc<DeliveryEngine>,
    pub sla: Arc<Sla>,
    pub intake: Arc<Intake>,
    pub legal_aid: Arc<crate::legal_aid::LegalAid>,
}

impl Core {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let sealer = crate::seal::Sealer::from_config(&config.privacy.encryption)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if sealer.is_none() {
            tracing::warn!(
                "privacy.encryption is off: callers' personal data is stored in clear; set an active key"
            );
        }
        let seal = crate::store::Seal::new(sealer);
        let store = crate::store::open(&config.store, seal)
            .await
            .with_context(|| match config.store.kind {
                StoreKind::Sqlite => format!("opening {}", config.store.path.display()),
                StoreKind::Postgres => "opening the PostgreSQL store".to_owned(),
            })?;
        // One client for the case system: its adapter delivers, legal aid reads cases.
        let case_system = partners::legal_aid_client(config)?;
        let partners = partners::build(config, case_system.clone())?;
        let engine = Arc::new(DeliveryEngine::new(
            Arc::clone(&store),
            partners,
            config.delivery.clone(),
        ));
        engine
            .load_pauses()
            .await
            .context("reading which partners are paused")?;
        let calendar = Calendar::load_dir(&config.sla.calendar_dir).with_context(|| {
            format!(
                "loading the working-day calendar from {}",
                config.sla.calendar_dir.display()
            )
        })?;
        let sla = Arc::new(Sla::new(
            calendar,
            config.sla.calendar_dir.clone(),
            config.sla.policy.clone(),
            config.sla.partners.clone(),
            config.sla.kinds.clone(),
        ));
        if config.privacy.caller_hash_key == crate::config::defaults::DEV_HASH_KEY {
            tracing::warn!("privacy.caller_hash_key is the development default; set your own");
        }
        let intake = Arc::new(Intake::new(
            Arc::clone(&store),
            Arc::clone(&engine),
            config.routes.clone(),
            Arc::clone(&sla),
            CallerMatch {
                key: config.privacy.caller_hash_key.clone(),
                count: config.sla.repeat_caller_count,
                days: config.sla.repeat_caller_days,
            },
        ));
        let legal_aid = Arc::new(crate::legal_aid::LegalAid::new(
            Arc::clone(&store),
            Arc::clone(&intake),
            case_system,
        ));
        Ok(Self {
            store,
            engine,
            sla,
            intake,
            legal_aid,
        })
    }
}

impl Gateway {
    /// Opens the store, starts the delivery workers and the HTTP server.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        if config.api.allow_anonymous {
            tracing::warn!("api.allow_anonymous: /api/v1 answers requests without a token");
        } else if config.api.clients.is_empty() {
            tracing::warn!("no [api.clients]: every /api/v1 request is refused");
        }
        if config.delivery.queue == crate::config::QueueKind::Rabbitmq
            && let Some(tls) = &config.delivery.amqp_tls
        {
            tls.amqp_as("delivery.amqp_tls")?;
        }
        let Core {
            store,
            engine,
            sla,
            intake,
            legal_aid,
        } = Core::build(&config).await?;
        let polled: Vec<_> = engine
            .partners()
            .iter()
            .filter(|(_, p)| p.adapter.polled())
            .map(|(id, p)| crate::poller::Poller {
                partner: id.clone(),
                adapter: Arc::clone(&p.adapter),
                every: config
                    .partners
                    .get(id)
                    .map_or(std::time::Duration::from_secs(5), |c| c.poll_interval),
            })
            .collect();
        let transfers = Arc::new(Transfers::new(
            Arc::clone(&store),
            Arc::clone(&engine),
            Arc::clone(&intake),
            Arc::clone(&sla),
            config.transfers.clone(),
        ));
        let tls = config
            .server
            .tls
            .clone()
            .map(|files| crate::serve::TlsReloader::new(files).map(Arc::new))
            .transpose()?;
        let state = AppState {
            legal_aid: Arc::clone(&legal_aid),
            tls: tls.clone(),
            transfers: Arc::clone(&transfers),
            store: Arc::clone(&store),
            engine: Arc::clone(&engine),
            intake: Arc::clone(&intake),
            sla: Arc::clone(&sla),
            dashboard: Arc::new(crate::dashboard::Dashboard::new(
                config.dashboard.clone(),
                config.partners.clone(),
            )),
            api: Arc::new(config.api.clone()),
            metrics: telemetry::prometheus(),
        };
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("listening on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        engine.spawn(&tracker, shutdown.clone());
        let leases = crate::cluster::Leases::new(Arc::clone(&store));
        tracing::info!(instance = %leases.holder, "scheduled jobs run under leases");
        Scanner {
            store: Arc::clone(&store),
            intake: Arc::clone(&intake),
            sla: Arc::clone(&sla),
            every: config.sla.scan_interval,
        }
        .spawn(&tracker, shutdown.clone(), leases.clone());
        Timers {
            transfers: Arc::clone(&transfers),
            every: config.transfers.scan_interval,
        }
        .spawn(&tracker, shutdown.clone(), leases.clone());
        if let Some(keep) = config.privacy.retention {
            crate::retention::Retention {
                store: Arc::clone(&store),
                keep,
                every: config.privacy.retention_interval,
            }
            .spawn(&tracker, shutdown.clone(), leases.clone());
        }
        legal_aid.spawn(
            config.legal_aid.check_interval,
            config.legal_aid.reconcile_interval,
            &tracker,
            shutdown.clone(),
            leases.clone(),
        );
        for poller in polled {
            poller.spawn(
                Arc::clone(&store),
                Arc::clone(&intake),
                &tracker,
                shutdown.clone(),
                leases.clone(),
            );
        }
        crate::subscriber::spawn(&state, &tracker, &shutdown);
        let router = api::router(
            state,
            config.server.max_body_bytes,
            config.server.request_timeout,
        );
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Always handled: SIGHUP's default action would end the process.
        spawn_tls_reload_on_sighup(tls.clone(), Arc::clone(&engine), shutdown.clone());
        let stop = shutdown.clone();
        let server =
            tokio::spawn(async move { crate::serve::serve(listener, tls, router, stop).await });
        tracing::info!(%addr, scheme, "hotline-gateway listening");
        Ok(Self {
            addr,
            store,
            engine,
            intake,
            sla,
            transfers,
            legal_aid,
            shutdown,
            tracker,
            server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops taking requests, lets attempts in flight finish, and returns.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.server.await??;
        Ok(())
    }
}
