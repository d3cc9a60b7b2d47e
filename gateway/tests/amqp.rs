//! Deliveries through RabbitMQ (`delivery.queue = "rabbitmq"`) on the machine's broker
//! (`AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`; fails when it is down): claims
//! travel as persistent messages, final failures reach the dead-letter queue, and a broker
//! restart in the middle of a load loses nothing and delivers nothing twice in effect.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use contract_tests::webhook_sim::Behaviour;
use hotline_gateway::config::{Config, QueueKind};
use hotline_gateway::store::DeliveryStatus;
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

fn via_rabbitmq(prefix: &str) -> impl FnOnce(&mut Config) + use<> {
    let prefix = prefix.to_owned();
    move |c: &mut Config| {
        c.delivery.queue = QueueKind::Rabbitmq;
        c.delivery.amqp_url = Some(amqp_url());
        c.delivery.amqp_prefix = prefix;
        c.delivery.lease = Duration::from_secs(3);
        if let Some(p) = c.partners.get_mut(PARTNER) {
            p.timeout = Duration::from_secs(1);
        }
    }
}

/// Messages waiting in a queue; deletes the test's queues when `cleanup`.
async fn queue_depth(prefix: &str, queue: &str) -> u32 {
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {} is required: {e}", amqp_url()));
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            format!("{prefix}.{queue}").as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    q.message_count()
}

async fn cleanup(prefix: &str) {
    if let Ok(conn) =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
        && let Ok(ch) = conn.create_channel().await
    {
        for q in [
            format!("{prefix}.deliver.{PARTNER}"),
            format!("{prefix}.dead-letters"),
        ] {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = ch
            .exchange_delete(format!("{prefix}.dlx").as_str().into(), Default::default())
            .await;
    }
}

fn prefix() -> String {
    format!("t{}", uuid::Uuid::now_v7().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_travel_through_the_queue_and_final_failures_reach_the_dead_letters() {
    let prefix = prefix();
    let h = Harness::start_with(Behaviour::Ack, fast_retry(2), via_rabbitmq(&prefix)).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, created) = h.post_ticket(&format!("MQ-{i}")).await;
        assert_eq!(status, 201, "{created}");
        ids.push(first_delivery(&created));
    }
    for id in &ids {
        h.wait_for_status(id, DeliveryStatus::Acknowledged, Duration::from_secs(20))
            .await;
    }
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("hotline_amqp_published_total{partner=\"p1\"}"),
        "the claims went through the broker"
    );
    h.sim.set_behaviour(Behaviour::Fail { status: 400 });
    let (_, created) = h.post_ticket("MQ-DEAD").await;
    h.wait_for_status(
        &first_delivery(&created),
        DeliveryStatus::Dead,
        Duration::from_secs(20),
    )
    .await;
    let dead = wait_until(Duration::from_secs(5), || async {
        (queue_depth(&prefix, "dead-letters").await == 1).then_some(())
    })
    .await;
    assert!(
        dead.is_some(),
        "the final failure is in the dead-letter queue"
    );
    assert_eq!(queue_depth(&prefix, &format!("deliver.{PARTNER}")).await, 0);
    h.gateway.shutdown().await.unwrap();
    cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_in_the_middle_of_a_load_loses_nothing() {
    let prefix = prefix();
    let h = Harness::start_with(Behaviour::Ack, fast_retry(50), via_rabbitmq(&prefix)).await;
    let mut accepted = BTreeSet::new();
    for i in 0..150 {
        if i == 50 {
            // The broker goes away and comes back (its application restarted; durable queues
            // and persistent messages survive) while tickets keep coming.
            rabbitmqctl(&["stop_app"]);
        }
        if i == 75 {
            // Long enough for the gateway to notice and retry its connection.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        if i == 100 {
            rabbitmqctl(&["start_app"]);
        }
        let (status, created) = h.post_ticket(&format!("RS-{i}")).await;
        assert_eq!(
            status, 201,
            "the gateway accepts while the broker is down: {created}"
        );
        accepted.insert(created["id"].as_str().unwrap().to_owned());
    }
    assert_each_delivered_once(&h.sim, &accepted, Duration::from_secs(90)).await;
    assert!(
        h.metrics()
            .await
            .contains("hotline_amqp_reconnects_total{partner=\"p1\"}"),
        "the session reconnected"
    );
    h.gateway.shutdown().await.unwrap();
    cleanup(&prefix).await;
}

/// The delivery queue over `amqps://` behind a TLS front that demands a client certificate
/// (the broker itself is the machine's RabbitMQ): with `delivery.amqp_tls` the gateway presents
/// its certificate, trusts the front's CA, and the claims travel through TLS to be delivered.
/// Bad files stop the start, naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_travel_through_a_broker_reached_over_mutual_tls() {
    use common::certs::{broker_behind_tls, ca, leaf, write};
    let (broker_ca, client_ca) = (ca("queue broker CA"), ca("queue client CA"));
    let (proxy, via) = broker_behind_tls(&broker_ca, &client_ca).await;
    let files = tempfile::tempdir().unwrap();
    let ours = leaf(&client_ca, "hotline-gateway", &[]);
    let tls = hotline_adapters::http::OutboundTls {
        ca: Some(write(files.path(), "broker-ca.pem", &broker_ca.pem)),
        cert: Some(write(files.path(), "client.pem", &ours.0)),
        key: Some(write(files.path(), "client.key", &ours.1)),
    };

    // A key file that is not one: the gateway does not start, and says which setting.
    let dir = tempfile::tempdir().unwrap();
    let mut bad = base_config(&dir);
    via_rabbitmq(&prefix())(&mut bad);
    bad.delivery.amqp_url = Some(via.clone());
    bad.delivery.amqp_tls = Some(hotline_adapters::http::OutboundTls {
        key: Some(write(files.path(), "broken.key", "not a key")),
        ..tls.clone()
    });
    assert!(bad.check().is_empty(), "{:?}", bad.check());
    let err = match hotline_gateway::Gateway::start(bad).await {
        Ok(_) => panic!("started with a broken key file"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("delivery.amqp_tls.key:") && err.contains("broken.key"),
        "{err}"
    );

    let prefix = prefix();
    let (url, tls) = (via, tls.clone());
    let mq = via_rabbitmq(&prefix);
    let h = Harness::start_with(Behaviour::Ack, fast_retry(2), move |c| {
        mq(c);
        c.delivery.amqp_url = Some(url);
        c.delivery.amqp_tls = Some(tls);
        assert!(c.check().is_empty(), "{:?}", c.check());
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, created) = h.post_ticket(&format!("MQ-TLS-{i}")).await;
        assert_eq!(status, 201, "{created}");
        ids.push(first_delivery(&created));
    }
    for id in &ids {
        h.wait_for_status(id, DeliveryStatus::Acknowledged, Duration::from_secs(30))
            .await;
    }
    assert!(
        proxy.carried() >= 1,
        "the session went through the TLS front"
    );
    assert_eq!(proxy.refused(), 0, "every handshake was accepted");
    h.gateway.shutdown().await.unwrap();
    cleanup(&prefix).await;
}
