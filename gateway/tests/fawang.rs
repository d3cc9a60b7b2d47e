//! 12348 法网 on the provincial bus: the machine's RabbitMQ (`AMQP_URL`; fails when it is down)
//! between the gateway and the 法网 simulator. A consultation handed off from 法网 becomes a
//! ticket with its transcript, 12348 answers it and the answer reaches the app user; web work
//! orders keep their business field and target unit; poison and forged messages are answered
//! and dead-lettered; a broker restart in the middle of a flow loses nothing.

mod common;

use std::time::Duration;

use common::*;
use contract_tests::bus_sim::{BusSim, BusSimOptions};
use hotline_gateway::app::Gateway;
use hotline_gateway::config::{AdapterKind, BusConfig, Config};
use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};

/// One test at a time here: one of them restarts the broker.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct World {
    gateway: Gateway,
    sim: BusSim,
    base: String,
    http: reqwest::Client,
    prefix: String,
    dir: tempfile::TempDir,
}

fn bus(prefix: &str) -> BusConfig {
    BusConfig {
        url: amqp_url(),
        outbound_exchange: format!("{prefix}.fawang.in"),
        inbound_exchange: format!("{prefix}.fawang.out"),
        queue: format!("{prefix}.gateway.from-fawang"),
        prefetch: 8,
    }
}

fn config(dir: &tempfile::TempDir, prefix: &str) -> Config {
    let mut config = base_config(dir);
    config.partners.insert(
        "fawang".into(),
        hotline_gateway::config::PartnerConfig {
            adapter: AdapterKind::Mapped,
            url: String::new(),
            signing_secret: MAPPED_GATEWAY_SECRET.into(),
            verify_secret: MAPPED_PARTNER_SECRET.into(),
            ack_timeout: Duration::from_secs(20),
            bus: Some(bus(prefix)),
            ..partner_config(String::new(), fast_retry(6))
        },
    );
    config
}

impl World {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// As [`World::start`], the gateway's configuration changed by `change` first.
    async fn start_with(change: impl FnOnce(&mut Config)) -> Self {
        let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
        let b = bus(&prefix);
        let sim = BusSim::start(BusSimOptions {
            dir: &mappings_dir().join("fawang"),
            amqp_url: amqp_url(),
            outbound_exchange: b.outbound_exchange.clone(),
            inbound_exchange: b.inbound_exchange.clone(),
            name: format!("{prefix}.fawang-sim"),
            app_id: "hotline-12348".into(),
            gateway_secret: MAPPED_GATEWAY_SECRET.into(),
            partner_secret: MAPPED_PARTNER_SECRET.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at {} is required: {e}", amqp_url()));
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&dir, &prefix);
        change(&mut config);
        let gateway = Gateway::start(config).await.unwrap();
        let base = gateway.base_url();
        Self {
            gateway,
            sim,
            base,
            http: reqwest::Client::new(),
            prefix,
            dir,
        }
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = get_json(&self.http, format!("{}{path}", self.base)).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn act(&self, ticket: &str, action: &str, body: Value) -> (u16, Value) {
        let url = format!("{}/api/v1/tickets/{ticket}/actions/{action}", self.base);
        post_json(&self.http, url, &body).await
    }

    /// Waits for the gateway's answer to message `id`.
    async fn answer(&self, id: &str) -> contract_tests::bus_sim::Answer {
        wait_until(Duration::from_secs(20), || async { self.sim.answer_to(id) })
            .await
            .unwrap_or_else(|| panic!("no answer to {id}; answers: {:?}", self.sim.answers()))
    }

    /// The messages waiting in our queue `<prefix>.gateway.from-fawang<suffix>`, or `None`
    /// while it is not there (the gateway declares it when it first subscribes).
    async fn queue_depth(&self, suffix: &str) -> Option<u32> {
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        ch.queue_declare(
            format!("{}.gateway.from-fawang{suffix}", self.prefix)
                .as_str()
                .into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()
        .map(|q| q.message_count())
    }

    async fn queue_declared(&self) -> bool {
        self.queue_depth("").await.is_some()
    }

    async fn dead_letters(&self) -> u32 {
        self.queue_depth(".dead-letters")
            .await
            .expect("the dead-letter queue is declared")
    }

    async fn finish(self) {
        self.gateway.shutdown().await.unwrap();
        drop(self.sim);
        if let Ok(conn) =
            lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
            && let Ok(ch) = conn.create_channel().await
        {
            let p = &self.prefix;
            for q in [
                format!("{p}.gateway.from-fawang"),
                format!("{p}.gateway.from-fawang.dead-letters"),
                format!("{p}.fawang-sim.inbox"),
                format!("{p}.fawang-sim.answers"),
            ] {
                let _ = ch
                    .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for ex in [
                format!("{p}.fawang.in"),
                format!("{p}.fawang.out"),
                format!("{p}.gateway.from-fawang.dlx"),
            ] {
                let _ = ch
                    .exchange_delete(ex.as_str().into(), Default::default())
                    .await;
            }
        }
    }
}

fn sample(name: &str) -> Value {
    let path = mappings_dir()
        .join("canonical")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A handoff from 法网 as its canonical form, with its own message id and order number.
fn handoff(n: &str) -> Value {
    let mut doc = sample("dispatch.handoff");
    doc["message"]["id"] = format!("fw-handoff-{n}").into();
    doc["ticket"]["partner_number"] = format!("FW-{n}").into();
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handed_off_consultation_becomes_a_ticket_and_its_answer_reaches_the_app_user() {
    let _one = BROKER.lock().await;
    let w = World::start().await;

    let id = w.sim.publish("dispatch", &handoff("0001")).await.unwrap();
    let answer = w.answer(&id).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(w.sim.answer_code(&answer).as_deref(), Some("0"));
    let ticket = answer.body["gatewayId"].as_str().unwrap().to_owned();

    // The ticket carries the chat so far, the channel and who asked.
    let t = w.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(t["origin"], "fawang");
    assert_eq!(t["channel"], "online_consultation");
    assert_eq!(t["kind"], "consultation");
    assert_eq!(t["partner_numbers"]["fawang"], "FW-0001");
    let transcript = t["transcript"].as_array().expect("transcript");
    assert_eq!(transcript.len(), 3, "{t}");
    assert!(transcript[2].as_str().unwrap().contains("已转12348热线"));

    // A duplicate of the same message (法网 published it twice) is the same ticket.
    w.sim.publish("dispatch", &handoff("0001")).await.unwrap();

    // 12348 signs for it and answers: both reach 法网 over the bus, in its dialect.
    let (s, body) = w
        .act(&ticket, "receipt", json!({"unit": "12348热线"}))
        .await;
    assert_eq!(s, 202, "{body}");
    let (s, body) = w
        .act(
            &ticket,
            "reply",
            json!({"content": "口头辞退不符合法定程序，可主张经济补偿，建议先申请劳动仲裁。", "unit": "12348热线"}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let reply_delivery = body["deliveries"][0].as_str().unwrap().to_owned();
    let got = wait_until(Duration::from_secs(20), || async {
        w.sim
            .received()
            .into_iter()
            .find(|r| r.message_type == "reply")
    })
    .await
    .expect("the answer reaches 法网");
    assert_eq!(got.partner_number, "FW-0001");
    assert!(
        got.envelope["event"]["content"]
            .as_str()
            .unwrap()
            .contains("劳动仲裁")
    );
    // 法网's ACK message completes the delivery (the broker's confirm alone only awaits it).
    let d = wait_until(Duration::from_secs(20), || async {
        let d = w.get(&format!("/api/v1/deliveries/{reply_delivery}")).await;
        (d["status"] == "acknowledged").then_some(d)
    })
    .await
    .expect("法网 acknowledges the reply");
    assert_eq!(d["partner"], "fawang");
    let tickets = w.get("/api/v1/tickets?origin=fawang").await;
    assert_eq!(tickets.as_array().map(Vec::len), Some(1), "{tickets}");

    // The app user rates the answer: a callback on the ticket.
    let mut rating = sample("callback");
    rating["message"]["id"] = "fw-eval-0001".into();
    rating["ticket"] = json!({"id": ticket, "partner_number": "FW-0001"});
    rating["event"]["satisfaction"] = "satisfied".into();
    let id = w.sim.publish("callback", &rating).await.unwrap();
    assert_eq!(w.answer(&id).await.status, 200);
    let events = w.get(&format!("/api/v1/tickets/{ticket}/events")).await;
    assert!(events.to_string().contains("satisfied"), "{events}");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_web_work_order_keeps_its_business_field_and_target_unit() {
    let _one = BROKER.lock().await;
    let w = World::start().await;
    let mut order = sample("dispatch");
    order["message"]["id"] = "fw-web-0001".into();
    order["ticket"]["partner_number"] = "FW-WEB-0001".into();
    order["ticket"]["channel"] = "web".into();
    order["ticket"]["classification_code"] = "LABOR".into();
    order["ticket"]["units"] = json!(["市中区法律援助中心"]);
    let id = w.sim.publish("dispatch", &order).await.unwrap();
    let answer = w.answer(&id).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let ticket = answer.body["gatewayId"].as_str().unwrap();
    let t = w.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(t["channel"], "web");
    assert_eq!(t["classification_code"], "LABOR");
    assert_eq!(t["units"], json!(["市中区法律援助中心"]));
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_and_forged_messages_are_answered_and_dead_lettered() {
    let _one = BROKER.lock().await;
    let w = World::start().await;
    // Not JSON at all.
    w.sim
        .publish_raw("WORK_ORDER", b"<html>oops</html>", "fw-bad-1")
        .await
        .unwrap();
    let a = w.answer("fw-bad-1").await;
    assert_eq!(a.status, 400, "{a:?}");
    // A work order without its region code: the answer names the field.
    let order = r#"{"msgType":"WORK_ORDER","msgId":"fw-noregion-1","orderNo":"FW-0002","createTime":"2026-11-24 09:00:12","user":{"name":"王芳","mobile":"13912345678"},"appealType":"CONSULT","title":"咨询","question":"咨询劳动合同"}"#;
    w.sim
        .publish_raw("WORK_ORDER", order.as_bytes(), "fw-noregion-1")
        .await
        .unwrap();
    let a = w.answer("fw-noregion-1").await;
    assert_eq!(a.status, 422, "{a:?}");
    assert!(
        a.body["msg"].as_str().unwrap().contains("regionCode"),
        "{a:?}"
    );
    // A forged signature.
    w.sim
        .publish_forged(br#"{"msgType":"WORK_ORDER"}"#, "fw-forged-1")
        .await
        .unwrap();
    let a = w.answer("fw-forged-1").await;
    assert_eq!(a.status, 401, "{a:?}");
    // All three wait in the dead-letter queue for ops; none became a ticket.
    let dead = wait_until(Duration::from_secs(10), || async {
        let n = w.dead_letters().await;
        (n == 3).then_some(n)
    })
    .await;
    assert_eq!(dead, Some(3));
    let tickets = w.get("/api/v1/tickets?origin=fawang").await;
    assert_eq!(tickets, json!([]), "{tickets}");
    w.finish().await;
}

/// Runs `sql` on the gateway's SQLite database from outside, as an operator's mistake would.
async fn tamper(w: &World, sql: &str) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(w.dir.path().join("gateway.db"))
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    sqlx::Executor::execute(&mut conn, sql).await.unwrap();
}

#[tokio::test]
async fn a_message_that_cannot_be_stored_now_goes_back_to_the_broker_with_pauses_then_in() {
    let _one = BROKER.lock().await;
    let w = World::start().await;
    // The store cannot take a ticket while its idempotency keys' table is away.
    tamper(&w, "ALTER TABLE inbound_keys RENAME TO inbound_keys_away").await;
    let id = w.sim.publish("dispatch", &handoff("0301")).await.unwrap();
    let first = w.answer(&id).await;
    assert_eq!(first.status, 503, "{first:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refused = w
        .sim
        .answers()
        .iter()
        .filter(|a| a.correlation_id == id)
        .inspect(|a| assert_eq!(a.status, 503, "{a:?}"))
        .count();
    // Handed back and taken again after 0.2, 0.4, 0.8, 1.6 s: about five answers in 3 s, not
    // one per broker round trip.
    assert!(
        (2..=7).contains(&refused),
        "{refused} answers to one message in 3 s"
    );
    // The store is back: the message the broker kept becomes the ticket.
    tamper(&w, "ALTER TABLE inbound_keys_away RENAME TO inbound_keys").await;
    let taken = wait_until(Duration::from_secs(20), || async {
        w.sim
            .answers()
            .into_iter()
            .find(|a| a.correlation_id == id && a.status == 200)
    })
    .await
    .unwrap_or_else(|| panic!("not taken after the store came back: {:?}", w.sim.answers()));
    let ticket = taken.body["gatewayId"].as_str().unwrap().to_owned();
    let t = w.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(t["partner_numbers"]["fawang"], "FW-0301");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_in_the_middle_of_a_flow_loses_nothing() {
    let _one = BROKER.lock().await;
    let w = World::start().await;
    let before = 20;
    for i in 0..before {
        w.sim
            .publish("dispatch", &handoff(&format!("R{i:03}")))
            .await
            .unwrap();
    }
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    rabbitmqctl(&["start_app"]);
    // The simulator publishes again as soon as the broker is back; the gateway reconnects.
    let after = 20;
    for i in before..before + after {
        w.sim
            .publish("dispatch", &handoff(&format!("R{i:03}")))
            .await
            .unwrap();
    }
    let total = before + after;
    let all = wait_until(Duration::from_secs(60), || async {
        let t = w.get("/api/v1/tickets?origin=fawang&limit=1000").await;
        let items = t.as_array().cloned().unwrap_or_default();
        (items.len() >= total).then_some(items)
    })
    .await
    .expect("every handoff became a ticket");
    assert_eq!(all.len(), total, "each handoff exactly once");
    // And the way back works after the restart: a reply reaches 法网 and is acknowledged.
    let ticket = all[0]["id"].as_str().unwrap();
    let (s, body) = w
        .act(ticket, "reply", json!({"content": "已电话答复用户"}))
        .await;
    assert_eq!(s, 202, "{body}");
    let delivery = body["deliveries"][0].as_str().unwrap().to_owned();
    wait_until(Duration::from_secs(30), || async {
        let d = w.get(&format!("/api/v1/deliveries/{delivery}")).await;
        (d["status"] == "acknowledged").then_some(())
    })
    .await
    .expect("the reply is delivered and acknowledged after the restart");
    w.finish().await;
}

/// 法网's bus over `amqps://` behind a TLS front that demands a client certificate from its own
/// CA (the broker itself is the machine's RabbitMQ): with a certificate it does not trust, every
/// connection is refused at the handshake and none reaches the broker; with the partner's
/// certificate written over the same files (no restart: they are read at each new connection),
/// the gateway subscribes, takes a work order and answers it, both connections through TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_is_reached_over_mutual_tls_with_the_partner_certificate() {
    use common::certs::{broker_behind_tls, ca, leaf, write};
    let _one = BROKER.lock().await;
    let (broker_ca, client_ca, rogue) = (ca("bus broker CA"), ca("bus client CA"), ca("rogue"));
    let (proxy, via) = broker_behind_tls(&broker_ca, &client_ca).await;
    let files = tempfile::tempdir().unwrap();
    let untrusted = leaf(&rogue, "hotline-12348", &[]);
    let cert = write(files.path(), "client.pem", &untrusted.0);
    let key = write(files.path(), "client.key", &untrusted.1);
    let tls = hotline_adapters::http::OutboundTls {
        ca: Some(write(files.path(), "broker-ca.pem", &broker_ca.pem)),
        cert: Some(cert.clone()),
        key: Some(key.clone()),
    };
    let w = World::start_with(move |c| {
        let p = c.partners.get_mut("fawang").unwrap();
        p.bus.as_mut().unwrap().url = via;
        p.outbound_tls = Some(tls);
        assert!(c.check().is_empty(), "{:?}", c.check());
    })
    .await;

    wait_until(Duration::from_secs(10), || async {
        (proxy.refused() >= 2).then_some(())
    })
    .await
    .expect("the gateway tried the bus with its certificate");
    assert_eq!(
        proxy.carried(),
        0,
        "an untrusted certificate reached the broker"
    );
    assert!(!w.queue_declared().await, "the gateway got onto the bus");

    let trusted = leaf(&client_ca, "hotline-12348", &[]);
    std::fs::write(&cert, &trusted.0).unwrap();
    std::fs::write(&key, &trusted.1).unwrap();
    wait_until(Duration::from_secs(20), || async {
        w.queue_declared().await.then_some(())
    })
    .await
    .expect("subscribed over TLS with the partner's certificate");
    let mut order = sample("dispatch");
    order["message"]["id"] = "fw-tls-0001".into();
    order["ticket"]["partner_number"] = "FW-TLS-0001".into();
    let id = w.sim.publish("dispatch", &order).await.unwrap();
    let answer = w.answer(&id).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        proxy.carried() >= 2,
        "the subscription and the answer's publisher both went through TLS: {}",
        proxy.carried()
    );
    w.finish().await;
}
