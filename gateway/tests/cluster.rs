//! Two `hotline-gateway serve` processes on one PostgreSQL share the work: tickets accepted by
//! either are delivered once in effect, and when one is killed with SIGKILL in the middle of the
//! load the other finishes its deliveries (the killed one's leases run out). Needs the machine's
//! PostgreSQL (`DATABASE_URL`); fails when it is down.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use contract_tests::samples::random_draft;
use contract_tests::webhook_sim::Behaviour;
use serde_json::{Value, json};
use sqlx::Connection;

fn write_config(
    dir: &Path,
    name: &str,
    port: u16,
    db_url: &str,
    partner_url: &str,
    amqp_prefix: Option<&str>,
) -> std::path::PathBuf {
    let queue = match amqp_prefix {
        Some(prefix) => format!(
            "queue = \"rabbitmq\"\namqp_url = \"{}\"\namqp_prefix = \"{prefix}\"\n",
            amqp_url()
        ),
        None => String::new(),
    };
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[store]
kind = "postgres"
url = "{db_url}"

[api]
allow_anonymous = true

[delivery]
lease = "3s"
poll_interval = "100ms"
{queue}
[sla]
calendar_dir = "{calendar}"

[partners.{PARTNER}]
adapter = "webhook"
url = "{partner_url}"
signing_secret = "{OUR_SECRET}"
verify_secret = "{THEIR_SECRET}"
timeout = "1s"
concurrency = 8

[partners.{PARTNER}.breaker]
cooldown = "300ms"
max_cooldown = "1s"

[partners.{PARTNER}.retry]
min_delay = "100ms"
max_delay = "500ms"
factor = 2.0
max_attempts = 50
"#,
        calendar = mappings_dir().join("calendar").display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("config written");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_load_and_survive_one_being_killed() {
    cluster_run(None).await;
}

/// The same over RabbitMQ queues, with the broker restarted while the load runs as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_over_rabbitmq_survive_a_kill_and_a_broker_restart() {
    let prefix = format!("cl{}", uuid::Uuid::now_v7().simple());
    cluster_run(Some(&prefix)).await;
}

async fn cluster_run(amqp_prefix: Option<&str>) {
    let url = database_url();
    let mut admin = sqlx::PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required: {e}"));
    let schema = format!("cl_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let db_url = format!("{url}?options=-c%20search_path%3D{schema}");

    let sim = start_sim(PARTNER).await;
    // A flaky partner during the load: deliveries are failing, retrying and in flight when
    // A is killed.
    sim.set_behaviour(Behaviour::Flaky { percent: 40 });
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (free_port(), free_port());
    let (a_base, b_base) = (
        format!("http://127.0.0.1:{pa}"),
        format!("http://127.0.0.1:{pb}"),
    );
    let a_conf = write_config(dir.path(), "a", pa, &db_url, &sim.url(), amqp_prefix);
    let b_conf = write_config(dir.path(), "b", pb, &db_url, &sim.url(), amqp_prefix);
    let http = reqwest::Client::new();
    let mut a = spawn_serve(&a_conf);
    wait_ready(&http, &a_base).await; // A runs the migrations first
    let _b = spawn_serve(&b_conf);
    wait_ready(&http, &b_base).await;
    // The container health check: the binary asks the instance itself.
    let probe = Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .args(["probe", "--url", &format!("{b_base}/readyz")])
        .output()
        .unwrap();
    assert!(probe.status.success());
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "ready");

    // 300 tickets, alternately to A and B, 10 at a time; A is killed after the first 150.
    let mut accepted = BTreeSet::new();
    let mut killed = false;
    for round in 0..30 {
        if round == 15 {
            a.0.kill().expect("SIGKILL");
            a.0.wait().unwrap();
            killed = true;
        }
        if amqp_prefix.is_some() && round == 8 {
            rabbitmqctl(&["stop_app"]);
        }
        if amqp_prefix.is_some() && round == 20 {
            rabbitmqctl(&["start_app"]);
        }
        let mut sends = Vec::new();
        for j in 0..10 {
            let i = round * 10 + j;
            let base = if i % 2 == 0 && !killed {
                &a_base
            } else {
                &b_base
            };
            let body = json!({"external_id": format!("CL-{i}"), "target": PARTNER, "ticket": random_draft()});
            sends.push(
                http.post(format!("{base}/api/v1/tickets"))
                    .json(&body)
                    .send(),
            );
        }
        for s in futures::future::join_all(sends).await {
            if let Ok(r) = s
                && r.status().as_u16() == 201
            {
                let v: Value = r.json().await.unwrap();
                accepted.insert(v["id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(
        accepted.len(),
        300,
        "both instances accept; after the kill, B takes everything"
    );

    assert_each_delivered_once(&sim, &accepted, Duration::from_secs(60)).await;
    let raw = sim.hits().len();
    eprintln!("cluster: 300 tickets, {raw} attempts reached the partner (503s included)");
    let acked = wait_until(Duration::from_secs(20), || async {
        let r = http
            .get(format!(
                "{b_base}/api/v1/deliveries?status=acknowledged&limit=1000"
            ))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (v.as_array()?.len() == 300).then_some(())
    })
    .await;
    assert!(acked.is_some(), "every delivery recorded as acknowledged");
    if let Some(prefix) = amqp_prefix
        && let Ok(conn) =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
        && let Ok(ch) = conn.create_channel().await
    {
        for q in [
            format!("{prefix}.deliver.{PARTNER}"),
            format!("{prefix}.dead-letters"),
        ] {
            let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
        }
        let _ = ch
            .exchange_delete(format!("{prefix}.dlx").as_str().into(), Default::default())
            .await;
    }
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut admin)
        .await
        .unwrap();
}
