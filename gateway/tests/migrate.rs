//! Moving an installation from SQLite to PostgreSQL with `hotline-gateway export` / `import`:
//! tickets, history, pending deliveries, clocks, the audit chain and pauses all arrive, and the
//! pending deliveries can be claimed on the new store.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use contract_tests::webhook_sim::Behaviour;
use hotline_gateway::store::{
    AuditQuery, DeliveryQuery, DeliveryStatus, NewAudit, Pause, PgStore, SqliteStore, Store,
    TicketQuery,
};
use sqlx::Connection;
use sqlx::postgres::PgConnectOptions;

fn gateway(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn everything<S: Store + ?Sized>(
    s: &S,
) -> (
    Vec<hotline_model::Ticket>,
    Vec<hotline_gateway::store::Delivery>,
    Vec<hotline_gateway::store::AuditEntry>,
    Vec<Pause>,
) {
    let tickets = s
        .tickets(&TicketQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let deliveries = s
        .deliveries(&DeliveryQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let audit = s.audit_log(&AuditQuery::default()).await.unwrap();
    (tickets, deliveries, audit, s.pauses().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_moves_from_sqlite_to_postgres_without_losing_anything() {
    // An installation with history: acknowledged, dead and pending deliveries, clocks, audit.
    let h = Harness::start(Behaviour::Ack, fast_retry(2)).await;
    for i in 0..4 {
        let (_, created) = h.post_ticket(&format!("MV-OK-{i}")).await;
        h.wait_for_status(
            &first_delivery(&created),
            DeliveryStatus::Acknowledged,
            Duration::from_secs(10),
        )
        .await;
    }
    h.sim.set_behaviour(Behaviour::Fail { status: 400 });
    let (_, created) = h.post_ticket("MV-DEAD").await;
    h.wait_for_status(
        &first_delivery(&created),
        DeliveryStatus::Dead,
        Duration::from_secs(10),
    )
    .await;
    let pause = Pause {
        partner: PARTNER.into(),
        since: chrono::DateTime::from_timestamp_millis(chrono::Utc::now().timestamp_millis())
            .unwrap(),
        by: "li".into(),
        reason: "迁移 migration".into(),
    };
    h.gateway.engine.pause(pause).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..3 {
        let (_, created) = h.post_ticket(&format!("MV-WAIT-{i}")).await;
        pending.push(first_delivery(&created));
    }
    h.gateway
        .store
        .record_audit(NewAudit {
            actor: "li".into(),
            role: "operator".into(),
            action: "partner.pause".into(),
            target: Some(PARTNER.into()),
            reason: Some("迁移 migration".into()),
            detail: serde_json::json!({}),
        })
        .await
        .unwrap();
    // Stop the gateway, keep its database.
    let data = h.stop().await;
    let sqlite_path = data.path().join("gateway.db");
    let dir = tempfile::tempdir().unwrap();
    let source = SqliteStore::open(&sqlite_path).await.unwrap();
    let before = everything(&source).await;
    let clocks_before = source.clocks(before.0[0].id).await.unwrap();
    drop(source);

    let url = database_url();
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required: {e}"));
    let schema = format!("mv_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mappings = mappings_dir();
    let sqlite_toml = dir.path().join("sqlite.toml");
    std::fs::write(
        &sqlite_toml,
        format!(
            "mappings_dir = {:?}\n[store]\nkind = \"sqlite\"\npath = {:?}\n[sla]\ncalendar_dir = {:?}\n",
            mappings.display().to_string(),
            sqlite_path.display().to_string(),
            mappings.join("calendar").display().to_string()
        ),
    )
    .unwrap();
    let pg_url = format!("{url}?options=-c%20search_path%3D{schema}");
    let pg_toml = dir.path().join("pg.toml");
    std::fs::write(
        &pg_toml,
        format!(
            "mappings_dir = {:?}\n[store]\nkind = \"postgres\"\nurl = {pg_url:?}\n[sla]\ncalendar_dir = {:?}\n",
            mappings.display().to_string(),
            mappings.join("calendar").display().to_string()
        ),
    )
    .unwrap();
    let dump = dir.path().join("dump.jsonl");

    let (ok, out, err) = gateway(&["migrate", "--config", pg_toml.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("0 tickets"), "{out}");
    let (ok, out, err) = gateway(&[
        "export",
        "--config",
        sqlite_toml.to_str().unwrap(),
        "--out",
        dump.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("exported"), "{out}");
    let (ok, out, err) = gateway(&[
        "import",
        "--config",
        pg_toml.to_str().unwrap(),
        dump.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("8 tickets") && out.contains("8 deliveries"),
        "{out}"
    );

    let options: PgConnectOptions = url.parse().unwrap();
    let target: Arc<dyn Store> = Arc::new(
        PgStore::open_with(options.options([("search_path", schema.as_str())]))
            .await
            .unwrap(),
    );
    let after = everything(target.as_ref()).await;
    assert_eq!(after.0, before.0, "tickets, with their numbers");
    assert_eq!(
        after.1, before.1,
        "deliveries, with status, attempts and schedule"
    );
    assert_eq!(after.2, before.2, "the audit log");
    assert!(after.2.iter().all(hotline_gateway::audit::entry_intact));
    assert_eq!(after.3, before.3, "the pause");
    assert_eq!(target.clocks(after.0[0].id).await.unwrap(), clocks_before);
    assert_eq!(
        target
            .attempts_for_ticket(after.0[0].id)
            .await
            .unwrap()
            .len(),
        1
    );
    // The pending deliveries go on from the new store; new rows get fresh sequence numbers.
    let claims = target
        .claim(PARTNER, chrono::Utc::now(), Duration::from_secs(30), 10)
        .await
        .unwrap();
    let mut claimed: Vec<String> = claims.iter().map(|c| c.delivery.id.to_string()).collect();
    claimed.sort();
    pending.sort();
    assert_eq!(claimed, pending);
    target
        .accept_ticket(store_new_ticket("MV-NEW"))
        .await
        .expect("new tickets after the import");

    // A second import into a store that is no longer empty is refused.
    let (ok, _, err) = gateway(&[
        "import",
        "--config",
        pg_toml.to_str().unwrap(),
        dump.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("not empty"), "{err}");
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}
