//! Partners defined by mapping folders, end to end over real HTTP with their simulators.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{
    MAPPED_GATEWAY_SECRET, MAPPED_PARTNER_SECRET, base_config, get_json, mapped_partner,
    mapped_sim, mappings_dir, post_json, wait_until,
};
use contract_tests::behaviour::Behaviour;
use contract_tests::mapped_sim::{MappedSim, MappedSimOptions, eventually};
use hotline_gateway::Gateway;
use hotline_gateway::config::{Config, RouteConfig};
use hotline_gateway::store::DeliveryStatus;
use hotline_model::TicketKind;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn sample(partner: &str, name: &str) -> Vec<u8> {
    std::fs::read(mappings_dir().join(partner).join("samples").join(name)).unwrap()
}

struct World {
    gateway: Gateway,
    s12345: MappedSim,
    s12315: MappedSim,
    s12333: MappedSim,
    s12338: MappedSim,
    http: reqwest::Client,
    base: String,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let (s12345, s12315, s12333, s12338) = (
        mapped_sim("12345").await,
        mapped_sim("12315").await,
        mapped_sim("12333").await,
        mapped_sim("12338").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let mut partners = BTreeMap::new();
    for s in [&s12345, &s12315, &s12333, &s12338] {
        let mut p = mapped_partner(s);
        if s.partner() == "12338" {
            p.poll_url = Some(s.outbox_url());
            p.poll_ack_url = Some(s.outbox_ack_url());
        }
        p.poll_interval = Duration::from_millis(100);
        partners.insert(s.partner().to_owned(), p);
    }
    let config = Config {
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
        ..base_config(&dir)
    };
    assert!(config.check().is_empty(), "{:?}", config.check());
    let gateway = Gateway::start(config).await.unwrap();
    let base = gateway.base_url();
    for s in [&s12345, &s12315, &s12333, &s12338] {
        s.set_gateway(&base);
    }
    World {
        gateway,
        s12345,
        s12315,
        s12333,
        s12338,
        http: reqwest::Client::new(),
        base,
        _dir: dir,
    }
}

impl World {
    async fn get(&self, path: &str) -> Value {
        let (status, body) = get_json(&self.http, format!("{}{path}", self.base)).await;
        assert!(!body.is_null(), "GET {path}: {status}, no JSON");
        body
    }
}

/// Creates a ticket from 12348 for `target`; returns its first delivery's id.
async fn post_ticket(
    http: &reqwest::Client,
    base: &str,
    external_id: &str,
    target: &str,
) -> String {
    let body = serde_json::json!({
        "external_id": external_id, "target": target,
        "ticket": contract_tests::samples::random_draft(),
    });
    let created: Value = http
        .post(format!("{base}/api/v1/tickets"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["deliveries"][0].as_str().unwrap().to_owned()
}

/// Waits until a delivery has `status`; returns it.
async fn wait_delivery(http: &reqwest::Client, base: &str, id: &str, status: &str) -> Value {
    wait_until(WAIT, || async {
        let v: Value = http
            .get(format!("{base}/api/v1/deliveries/{id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["status"] == status).then_some(v)
    })
    .await
    .unwrap_or_else(|| panic!("delivery {id} never became {status}"))
}

fn complaint_from_12345() -> Vec<u8> {
    String::from_utf8(sample("12345", "dispatch.xml"))
        .unwrap()
        .replace("<SQLX>4</SQLX>", "<SQLX>2</SQLX>")
        .into_bytes()
}

#[tokio::test]
async fn a_12345_complaint_reaches_12315_as_its_json_with_the_12345_number_kept() {
    let w = world().await;
    let (status, answer) = w.s12345.send_raw(complaint_from_12345()).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        w.s12345.answer_code(&answer).as_deref(),
        Some("0000"),
        "{answer}"
    );
    let ticket_id = answer["LYBH"].as_str().unwrap().to_owned();

    if !eventually(WAIT, || !w.s12315.received().is_empty()).await {
        panic!("12315 got nothing: {}", w.get("/api/v1/deliveries").await);
    }
    let got = &w.s12315.received()[0];
    assert_eq!(got.message_type, "dispatch");
    let raw: Value = serde_json::from_slice(&w.s12315.raw()[0]).unwrap();
    assert_eq!(raw["msgType"], 1001);
    assert_eq!(raw["appealType"], 1, "投诉 in 12315's code table");
    assert_eq!(raw["urgent"], 1);
    assert_eq!(raw["sourceSystem"], "12345");
    assert_eq!(
        raw["sourceNo"], "SD12345-2026112300017",
        "the 12345 number is kept"
    );
    assert_eq!(raw["gatewayId"], ticket_id.as_str());
    assert_eq!(
        raw["acceptTime"], 1795397415000i64,
        "20261123093015 Beijing time"
    );
    assert_eq!(raw["consumer"]["phone"], "13953112345");
    assert_eq!(raw["involvedUnits"][1], "历下区法律援助中心");

    // 12315's receipt number lands on the ticket beside 12345's.
    let ticket = wait_until(WAIT, || async {
        let t = w.get(&format!("/api/v1/tickets/{ticket_id}")).await;
        t["partner_numbers"].get("12315").is_some().then_some(t)
    })
    .await
    .expect("acknowledged by 12315");
    assert_eq!(ticket["partner_numbers"]["12345"], "SD12345-2026112300017");
    assert_eq!(
        ticket["partner_numbers"]["12315"],
        got.partner_number.as_str()
    );
    assert_eq!(ticket["origin"], "12345");
    assert_eq!(ticket["status"], "dispatched");

    // 12315 reports the result (办结) in its dialect; the gateway records it on the ticket.
    let mut reply = serde_json::json!({
        "message": {"id": "12315-R-1"},
        "ticket": {"id": ticket_id, "partner_number": got.partner_number},
        "event": {"content": "商家已同意退货并退款", "unit": "历下区市场监管局"},
    });
    let (status, answer) = w.s12315.send("reply", &reply).await.unwrap();
    assert_eq!(
        (status, w.s12315.answer_code(&answer).as_deref()),
        (200, Some("200")),
        "{answer}"
    );
    let (_, again) = w.s12315.send("reply", &reply).await.unwrap();
    assert!(
        again["msg"].as_str().unwrap().contains("duplicate"),
        "{again}"
    );
    let ticket = w.get(&format!("/api/v1/tickets/{ticket_id}")).await;
    assert_eq!(ticket["status"], "replied");

    // The ticket came from 12345: 12315's reply is relayed to 12345, in 12345's XML.
    assert!(
        eventually(WAIT, || w
            .s12345
            .received()
            .iter()
            .any(|r| r.message_type == "reply"))
        .await,
        "12345 never heard of the reply"
    );
    let relayed = w
        .s12345
        .received()
        .into_iter()
        .find(|r| r.message_type == "reply")
        .unwrap();
    assert_eq!(relayed.envelope["event"]["content"], "商家已同意退货并退款");
    assert_eq!(
        relayed.envelope["ticket"]["partner_number"],
        "SD12345-2026112300017"
    );

    // A second, different reply is refused by the lifecycle, in 12315's dialect, and recorded.
    reply["message"]["id"] = "12315-R-2".into();
    reply["event"]["content"] = "补充说明".into();
    let (status, answer) = w.s12315.send("reply", &reply).await.unwrap();
    assert_eq!(
        (status, answer["code"].as_str()),
        (200, Some("4001")),
        "{answer}"
    );
    assert!(
        answer["msg"].as_str().unwrap().contains("already replied"),
        "{answer}"
    );
    let timeline = w.get(&format!("/api/v1/tickets/{ticket_id}/events")).await;
    assert!(
        timeline["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["entry"] == "refused"),
        "{timeline}"
    );

    // Without our id, 12315 can name the ticket by its own number: a satisfied callback closes it.
    let callback = serde_json::json!({
        "message": {"id": "12315-C-1"},
        "ticket": {"partner_number": got.partner_number},
        "event": {"satisfaction": "satisfied"},
    });
    let (status, answer) = w.s12315.send("callback", &callback).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["gatewayId"], ticket_id.as_str());
    let ticket = w.get(&format!("/api/v1/tickets/{ticket_id}")).await;
    assert_eq!(ticket["status"], "closed");
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn partner_result_codes_are_classified() {
    let w = world().await;
    w.s12315.set_behaviour(Behaviour::Code {
        code: "5001".into(),
        times: 2,
    });
    w.s12345.send_raw(complaint_from_12345()).await.unwrap();
    let deliveries = wait_until(WAIT, || async {
        let d = w
            .get("/api/v1/deliveries?partner=12315&status=acknowledged")
            .await;
        (d.as_array()?.len() == 1).then_some(d)
    })
    .await
    .expect("acknowledged after two busy answers");
    assert_eq!(deliveries[0]["attempts"], 3);
    let ticket_id = deliveries[0]["ticket_id"].as_str().unwrap();
    let timeline = w.get(&format!("/api/v1/tickets/{ticket_id}/events")).await;
    let codes: Vec<&str> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entry"] == "attempt")
        .map(|e| e["attempt"]["partner_code"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(codes, ["5001", "5001", "200"]);

    // A permanent code (4001: a field refused) dead-letters at once, with the reason.
    w.s12315.set_behaviour(Behaviour::Code {
        code: "4001".into(),
        times: 1,
    });
    let second = complaint_from_12345();
    let second = String::from_utf8(second)
        .unwrap()
        .replace("SD12345-2026112300017", "SD12345-2026112300018")
        .replace("12345-MSG-20261123-0001", "12345-MSG-20261123-0002");
    w.s12345.send_raw(second.into_bytes()).await.unwrap();
    let dead = wait_until(WAIT, || async {
        let d = w.get("/api/v1/deliveries?status=dead").await;
        (d.as_array()?.len() == 1).then_some(d)
    })
    .await
    .expect("dead-lettered");
    assert_eq!(dead[0]["attempts"], 1);
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("4001"),
        "{dead}"
    );
    let d = dead[0]["id"].as_str().unwrap();
    let status = w
        .http
        .post(format!("{}/api/v1/deliveries/{d}/retry", w.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202);
    wait_delivery(&w.http, &w.base, d, DeliveryStatus::Acknowledged.as_str()).await;
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_partner_input_is_answered_in_the_partners_dialect_and_nothing_is_stored() {
    let w = world().await;
    let xml = String::from_utf8(complaint_from_12345()).unwrap();

    let (status, answer) = w
        .s12345
        .send_raw(xml.replace("<SQLX>2</SQLX>", "<SQLX>7</SQLX>").into_bytes())
        .await
        .unwrap();
    assert_eq!(status, 422);
    assert_eq!(answer["JGDM"], "1002", "{answer}");
    assert!(
        answer["JGMS"].as_str().unwrap().contains("SQLX"),
        "{answer}"
    );

    let (status, answer) = w
        .s12345
        .send_raw(xml.replace("<LDHM>13953112345</LDHM>", "").into_bytes())
        .await
        .unwrap();
    assert_eq!((status, answer["JGDM"].as_str()), (422, Some("1002")));
    assert!(
        answer["JGMS"].as_str().unwrap().starts_with("LDHM"),
        "{answer}"
    );

    let (status, answer) = w
        .s12345
        .send_raw(b"<GDXX><XXLX>GD01".to_vec())
        .await
        .unwrap();
    assert_eq!((status, answer["JGDM"].as_str()), (400, Some("1001")));

    // A forged signature.
    let forged = w
        .http
        .post(format!("{}/partners/12345/messages", w.base))
        .header("x-app-id", "hotline-12348")
        .header("x-timestamp", chrono::Utc::now().timestamp().to_string())
        .header("x-nonce", "n1")
        .header("x-signature", "00".repeat(32))
        .body(xml.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert!(forged.text().await.unwrap().contains("<JGDM>1003</JGDM>"));

    // 12315 always answers HTTP 200; the code says what went wrong.
    let (status, answer) = w.s12315.send_raw(b"{not json".to_vec()).await.unwrap();
    assert_eq!(
        (status, answer["code"].as_str()),
        (200, Some("4000")),
        "{answer}"
    );

    let tickets = w.get("/api/v1/tickets").await;
    assert_eq!(tickets, serde_json::json!([]), "nothing half-stored");
    assert!(w.s12315.hits().is_empty());
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_12345_labour_dispute_goes_on_to_12333_in_gb18030_and_its_late_ack_completes_it() {
    let w = world().await;
    w.s12333.set_behaviour(Behaviour::Async {
        delay: Duration::from_millis(400),
    });
    // The shipped sample: 求助, classification 9.3 (labour), so the second route applies.
    let (status, answer) = w
        .s12345
        .send_raw(sample("12345", "dispatch.xml"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    let ticket_id = answer["LYBH"].as_str().unwrap().to_owned();

    assert!(
        eventually(WAIT, || !w.s12333.raw().is_empty()).await,
        "12333 got nothing"
    );
    let raw = &w.s12333.raw()[0];
    assert!(raw.starts_with(br#"<?xml version="1.0" encoding="GB18030"?>"#));
    assert!(
        std::str::from_utf8(raw).is_err(),
        "GB18030 bytes on the wire, not UTF-8"
    );
    let text = encoding_rs::GB18030.decode(raw).0;
    assert!(text.contains("<Category>求助</Category>"), "{text}");
    assert!(text.contains("<Urgency>紧急</Urgency>"), "{text}");
    assert!(
        text.contains("<CallTime>2026-11-23 09:30:15</CallTime>"),
        "{text}"
    );
    assert!(
        text.contains("<SourceNo>SD12345-2026112300017</SourceNo>"),
        "{text}"
    );

    // First only "received": the delivery waits for 12333's own acknowledgement.
    let waiting = wait_until(WAIT, || async {
        let d = w.get("/api/v1/deliveries?partner=12333").await;
        (d[0]["status"] == "awaiting_ack").then_some(d)
    })
    .await
    .expect("awaiting the late acknowledgement");
    assert_eq!(waiting[0]["partner_ref"], Value::Null);
    let done = wait_until(WAIT, || async {
        let d = w.get("/api/v1/deliveries?partner=12333").await;
        (d[0]["status"] == "acknowledged").then_some(d)
    })
    .await
    .expect("acknowledged by the late 回执确认");
    let number = w.s12333.received()[0].partner_number.clone();
    assert_eq!(done[0]["partner_ref"], number.as_str());
    assert_eq!(done[0]["attempts"], 1);
    let ticket = w.get(&format!("/api/v1/tickets/{ticket_id}")).await;
    assert_eq!(ticket["partner_numbers"]["12333"], number.as_str());
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn partner_12338_is_polled_and_acked_and_takes_pushed_tickets() {
    let w = world().await;
    let item: Value = serde_json::from_slice(&sample("12338", "dispatch.json")).unwrap();
    let mut broken = item.clone();
    broken["item_id"] = "12338-outbox-000732".into();
    broken["case_no"] = "FL12338-BROKEN".into();
    broken["category"] = "gossip".into();
    w.s12338.queue_raw(item.clone());
    w.s12338.queue_raw(broken);

    assert!(
        eventually(WAIT, || w.s12338.acked().len() + w.s12338.refused().len()
            == 2)
        .await
    );
    assert_eq!(w.s12338.acked(), ["12338-outbox-000731"]);
    let refused = w.s12338.refused();
    assert_eq!(refused[0].0, "12338-outbox-000732");
    assert!(
        refused[0].1.contains("category") && refused[0].1.contains("gossip"),
        "{refused:?}"
    );

    let tickets = w.get("/api/v1/tickets?origin=12338").await;
    let tickets = tickets.as_array().unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["external_id"], "FL12338-370102-20261123-0093");
    assert_eq!(tickets[0]["confidential"], true);
    assert_eq!(tickets[0]["kind"], "help");

    // The cursor moved on: a new item is taken, the old ones are not taken again.
    let mut third = item.clone();
    third["item_id"] = "12338-outbox-000733".into();
    third["case_no"] = "FL12338-370102-20261123-0094".into();
    w.s12338.queue_raw(third);
    assert!(eventually(WAIT, || w.s12338.acked().len() == 2).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        w.s12338.acked(),
        ["12338-outbox-000731", "12338-outbox-000733"]
    );
    assert_eq!(
        w.gateway.store.cursor("12338").await.unwrap().as_deref(),
        Some("3")
    );
    assert_eq!(
        w.get("/api/v1/tickets?origin=12338")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // What 12348 sends 12338 is pushed, with a synchronous receipt.
    let d = post_ticket(&w.http, &w.base, "SD12348-PUSH-1", "12338").await;
    let acked = wait_delivery(&w.http, &w.base, &d, "acknowledged").await;
    assert_eq!(
        acked["partner_ref"],
        w.s12338.received()[0].partner_number.as_str()
    );
    w.gateway.shutdown().await.unwrap();
}

/// A fifth partner that exists only as a folder of data in the tests: a province's own 12345
/// variant with other field names, codes, time format, encoding (GBK) and signature headers.
#[tokio::test]
async fn a_partner_defined_only_by_data_exchanges_tickets_both_ways() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contract-tests/data/hb12345");
    let hb = MappedSim::start(MappedSimOptions {
        dir: &folder,
        app_id: "hotline-12348".into(),
        gateway_secret: MAPPED_GATEWAY_SECRET.into(),
        partner_secret: MAPPED_PARTNER_SECRET.into(),
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
mappings_dir = "{mappings}"
[server]
listen = "127.0.0.1:0"
[store]
path = "{db}"
[api]
allow_anonymous = true
[delivery]
poll_interval = "50ms"
[sla]
calendar_dir = "{calendar}"
[partners.hb12345]
adapter = "mapped"
mapping = "{folder}"
url = "{url}"
signing_secret = "{MAPPED_GATEWAY_SECRET}"
verify_secret = "{MAPPED_PARTNER_SECRET}"
timeout = "2s"
"#,
        mappings = mappings_dir().display(),
        db = dir.path().join("gw.db").display(),
        folder = folder.display(),
        calendar = mappings_dir().join("calendar").display(),
        url = hb.url(),
    );
    let config = Config::from_toml(&text, Vec::new()).unwrap_or_else(|p| panic!("{p:?}"));
    let gateway = Gateway::start(config).await.unwrap();
    hb.set_gateway(&gateway.base_url());
    let http = reqwest::Client::new();

    // Partner → 12348: GBK XML, its own codes and time format.
    let (status, answer) = hb
        .send_raw(std::fs::read(folder.join("samples/dispatch.xml")).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["fanhui"]["daima"], "00", "{answer}");
    let ticket: Value = http
        .get(format!(
            "{}/api/v1/tickets?origin=hb12345",
            gateway.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ticket[0]["kind"], "consultation");
    assert_eq!(ticket[0]["received_at"], "2026-11-23T16:45:00+08:00");
    assert_eq!(ticket[0]["caller"]["name"], "周敏");

    // 12348 → partner: arrives as GBK XML the partner's own checks accept, and is acknowledged.
    let base = gateway.base_url();
    let d = post_ticket(&http, &base, "SD12348-HB-1", "hb12345").await;
    let done = wait_delivery(&http, &base, &d, "acknowledged").await;
    assert_eq!(
        done["partner_ref"],
        hb.received()[0].partner_number.as_str()
    );
    let raw = &hb.raw()[0];
    assert!(raw.starts_with(br#"<?xml version="1.0" encoding="GBK"?><gongdan>"#));
    gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_partner_can_send_its_tickets_to_12348() {
    let w = world().await;
    let cases = [
        (&w.s12345, "dispatch.xml", "SD12345-2026112300017"),
        (&w.s12315, "dispatch.json", "1237010220261123000456"),
        (&w.s12333, "dispatch.xml", "RS12333-2026-0047715"),
    ];
    for (sim, file, number) in cases {
        let (status, answer) = sim.send_raw(sample(sim.partner(), file)).await.unwrap();
        assert_eq!(status, 200, "{}: {answer}", sim.partner());
        let code = sim.answer_code(&answer);
        assert!(
            matches!(code.as_deref(), Some("0000" | "200")),
            "{}: {answer}",
            sim.partner()
        );
        let tickets = w
            .get(&format!("/api/v1/tickets?origin={}", sim.partner()))
            .await;
        assert_eq!(tickets[0]["external_id"], number, "{}", sim.partner());
        assert_eq!(tickets[0]["partner_numbers"][sim.partner()], number);
    }
    let gb = w.get("/api/v1/tickets?origin=12333").await;
    assert_eq!(gb[0]["caller"]["name"], "刘强", "GB18030 decoded");
    assert_eq!(gb[0]["received_at"], "2026-11-23T13:55:40+08:00");
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_message_type_a_partner_does_not_take_is_skipped_with_the_reason() {
    use hotline_gateway::store::NewEvent;
    use hotline_model::{Event, EventBody, HOME};
    let w = world().await;
    let d = post_ticket(&w.http, &w.base, "SD12348-W-1", "12315").await;
    let dispatched = wait_delivery(&w.http, &w.base, &d, "acknowledged").await;
    let ticket_id = dispatched["ticket_id"].as_str().unwrap().parse().unwrap();
    // 12315's mapping has no `withdraw` message.
    w.gateway
        .store
        .record_event(NewEvent {
            event: Event::new(
                ticket_id,
                HOME,
                EventBody::Withdraw {
                    reason: Some("来电人撤回".into()),
                },
            ),
            status: None,
            expected_status: None,
            targets: vec!["12315".into()],
            keys: vec![],
            numbers: vec![],
            clocks: vec![],
        })
        .await
        .unwrap();
    w.gateway.engine.wake("12315");
    let skipped = wait_until(WAIT, || async {
        let d = w
            .get("/api/v1/deliveries?partner=12315&status=skipped")
            .await;
        (d.as_array()?.len() == 1).then_some(d)
    })
    .await
    .expect("skipped");
    assert_eq!(skipped[0]["message_type"], "withdraw");
    assert!(
        skipped[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("does not support"),
        "{skipped}"
    );
    assert_eq!(w.s12315.received().len(), 1, "only the dispatch went out");
    w.gateway.shutdown().await.unwrap();
}

async fn act(w: &World, ticket: &str, action: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/api/v1/tickets/{ticket}/actions/{action}", w.base);
    post_json(&w.http, url, &body).await
}

/// 12348 acts on the ticket: accepted (202), and the ticket moves to `status`.
async fn act_expecting(w: &World, ticket: &str, action: &str, body: Value, status: &str) {
    let (s, answer) = act(w, ticket, action, body).await;
    assert_eq!(
        (s, answer["status"].as_str()),
        (202, Some(status)),
        "{action}: {answer}"
    );
}

/// 12345 sends a message about its ticket `number`, in its XML; the HTTP status and its answer.
async fn from_12345(w: &World, number: &str, kind: &str, id: &str, event: Value) -> (u16, Value) {
    let doc = serde_json::json!({
        "message": {"id": id, "type": kind},
        "ticket": {"partner_number": number},
        "event": event,
    });
    w.s12345.send(kind, &doc).await.unwrap()
}

async fn status_of(w: &World, ticket: &str) -> String {
    w.get(&format!("/api/v1/tickets/{ticket}")).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The 12345 messages 12348 sent so far, by type, in order.
fn seen_by_12345(w: &World) -> Vec<String> {
    w.s12345
        .received()
        .into_iter()
        .map(|r| r.message_type)
        .collect()
}

#[tokio::test]
async fn a_12345_ticket_round_trip_through_the_whole_lifecycle() {
    let w = world().await;
    // A consultation that no route sends on: it stays with 12348.
    let xml = String::from_utf8(sample("12345", "dispatch.xml"))
        .unwrap()
        .replace("<SQLX>4</SQLX>", "<SQLX>1</SQLX>")
        .replace("<WTFL>9.3</WTFL>", "<WTFL>2.1</WTFL>");
    let (_, answer) = w.s12345.send_raw(xml.into_bytes()).await.unwrap();
    let t = answer["LYBH"].as_str().unwrap().to_owned();
    let number = "SD12345-2026112300017";

    // 12348 signs for it (签收) → 12345 gets a QSXX.
    act_expecting(
        &w,
        &t,
        "receipt",
        serde_json::json!({"unit": "历下区司法局"}),
        "receipted",
    )
    .await;
    assert!(eventually(WAIT, || !seen_by_12345(&w).is_empty()).await);
    // 12348 asks for 5 more working days (延期) → YQXX.
    let extend = serde_json::json!({"working_days": 5, "reason": "需多部门核实"});
    act_expecting(&w, &t, "extend", extend, "extension_requested").await;
    assert!(eventually(WAIT, || seen_by_12345(&w).len() >= 2).await);
    // 12345 approves (延期审批), in its XML.
    let approve = serde_json::json!({"approved": true, "working_days": 5});
    let (s, a) = from_12345(&w, number, "extension_decision", "Y-1", approve).await;
    assert_eq!((s, a["JGDM"].as_str()), (200, Some("0000")), "{a}");
    assert_eq!(status_of(&w, &t).await, "in_progress");
    // 12348 replies (办结) → BJXX.
    let reply = serde_json::json!({"content": "已告知来电人劳动仲裁程序"});
    act_expecting(&w, &t, "reply", reply, "replied").await;
    assert!(eventually(WAIT, || seen_by_12345(&w).len() >= 3).await);
    // 12345 calls the caller back: unsatisfied; then sends it back for rework (退回重办).
    let unsatisfied = serde_json::json!({"satisfaction": "unsatisfied", "note": "未解决"});
    let (s, _) = from_12345(&w, number, "callback", "H-1", unsatisfied).await;
    assert_eq!(s, 200);
    assert_eq!(status_of(&w, &t).await, "called_back");
    let rework = serde_json::json!({"reason": "来电人不满意，请重新办理"});
    let (s, _) = from_12345(&w, number, "reopen", "C-1", rework).await;
    assert_eq!(s, 200);
    assert_eq!(status_of(&w, &t).await, "reopened");
    // 12348 replies again → BJXX; 12345's second callback is satisfied: closed.
    let reply = serde_json::json!({"content": "已协调法律援助中心跟进"});
    act_expecting(&w, &t, "reply", reply, "replied").await;
    assert!(eventually(WAIT, || seen_by_12345(&w).len() >= 4).await);
    let satisfied = serde_json::json!({"satisfaction": "satisfied"});
    let (s, _) = from_12345(&w, number, "callback", "H-2", satisfied).await;
    assert_eq!(s, 200);
    assert_eq!(status_of(&w, &t).await, "closed");

    // What 12345 saw, in its own dialect.
    assert_eq!(
        seen_by_12345(&w),
        ["receipt", "extension_request", "reply", "reply"]
    );
    let raw: Vec<String> = w
        .s12345
        .raw()
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(
        raw[0].contains("<QSXX><XXLX>QS01</XXLX>")
            && raw[0].contains(&format!("<GDBH>{number}</GDBH>"))
    );
    assert!(raw[1].contains("<YQTS>5</YQTS>"));
    assert!(raw[3].contains("<BJNR>已协调法律援助中心跟进</BJNR>"));
    // And the whole story on the timeline, whichever system caused each step.
    let timeline = w.get(&format!("/api/v1/tickets/{t}/events")).await;
    let steps: Vec<String> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entry"] == "event")
        .map(|e| {
            format!(
                "{}:{}",
                e["event"]["source"].as_str().unwrap(),
                e["event"]["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "12345:dispatch",
            "12348:receipt",
            "12348:extension_request",
            "12345:extension_decision",
            "12348:reply",
            "12345:callback",
            "12345:reopen",
            "12348:reply",
            "12345:callback",
        ]
    );

    // Closed is final: a further action is refused, said why, and recorded.
    let (s, body) = act(&w, &t, "reply", serde_json::json!({"content": "再次答复"})).await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"], "illegal_transition");
    assert!(
        body["message"].as_str().unwrap().contains("closed"),
        "{body}"
    );
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn actions_check_their_input_and_repeat_safely() {
    let w = world().await;
    let d = post_ticket(&w.http, &w.base, "SD12348-A-1", "12315").await;
    let t = wait_delivery(&w.http, &w.base, &d, "acknowledged").await["ticket_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = act(&w, &t, "extend", serde_json::json!({"working_days": 5})).await;
    assert_eq!((s, body["field"].as_str()), (422, Some("reason")), "{body}");
    let (s, body) = act(
        &w,
        &t,
        "extend",
        serde_json::json!({"working_days": 20, "reason": "x"}),
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (422, Some("working_days")),
        "{body}"
    );
    let (s, body) = act(
        &w,
        &t,
        "callback",
        serde_json::json!({"satisfaction": "meh"}),
    )
    .await;
    assert_eq!(
        (s, body["field"].as_str()),
        (422, Some("satisfaction")),
        "{body}"
    );
    let (s, body) = act(&w, &t, "teleport", serde_json::json!({})).await;
    assert_eq!(s, 404, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("receipt"),
        "{body}"
    );
    let (s, _) = act(
        &w,
        "0190a0a0-0000-7000-8000-000000000000",
        "urge",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(s, 404);
    let (s, body) = act(&w, &t, "dispatch", serde_json::json!({"target": "nobody"})).await;
    assert_eq!((s, body["field"].as_str()), (422, Some("target")), "{body}");

    // The same Idempotency-Key twice: one urge.
    for _ in 0..2 {
        let r = w
            .http
            .post(format!("{}/api/v1/tickets/{t}/actions/urge", w.base))
            .header("idempotency-key", "urge-1")
            .json(&serde_json::json!({"note": "请尽快办理"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    assert!(
        eventually(WAIT, || w
            .s12315
            .received()
            .iter()
            .any(|r| r.message_type == "urge"))
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let urges = w
        .s12315
        .received()
        .into_iter()
        .filter(|r| r.message_type == "urge")
        .count();
    assert_eq!(urges, 1);
    // A withdrawn ticket takes no reply.
    let withdraw = serde_json::json!({"reason": "来电人撤回"});
    act_expecting(&w, &t, "withdraw", withdraw, "withdrawn").await;
    let (s, _) = act(&w, &t, "reply", serde_json::json!({"content": "x"})).await;
    assert_eq!(s, 409);
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn joint_handling_one_lead_reply_and_assisting_answers_as_progress() {
    let w = world().await;
    let body = serde_json::json!({
        "external_id": "SD12348-LB-1", "target": "12315", "assisting": ["12333"],
        "ticket": contract_tests::samples::random_draft(),
    });
    let (s, created) = {
        let r = w
            .http
            .post(format!("{}/api/v1/tickets", w.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(s, 201, "{created}");
    assert_eq!(
        created["deliveries"].as_array().unwrap().len(),
        2,
        "lead and assisting unit"
    );
    let t = created["id"].as_str().unwrap().to_owned();
    assert!(
        eventually(WAIT, || !w.s12315.received().is_empty()
            && !w.s12333.received().is_empty())
        .await
    );
    let clocks = w.get(&format!("/api/v1/tickets/{t}/clocks")).await;
    let owners: Vec<String> = clocks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["kind"].as_str().unwrap(),
                c["party"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(owners, ["receipt:12315", "reply:12315", "receipt:12333"]);

    // The assisting unit answers: recorded as progress, the ticket is not replied.
    let n12333 = w.s12333.received()[0].partner_number.clone();
    let answer = serde_json::json!({
        "message": {"id": "12333-R-1"}, "ticket": {"id": t, "partner_number": n12333},
        "event": {"content": "人社部门已约谈用人单位", "unit": "市中区人社局"},
    });
    let (s, a) = w.s12333.send("reply", &answer).await.unwrap();
    assert_eq!(s, 200, "{a}");
    assert_eq!(status_of(&w, &t).await, "in_progress");
    let timeline = w.get(&format!("/api/v1/tickets/{t}/events")).await;
    let progress = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entry"] == "event" && e["event"]["kind"] == "progress")
        .expect("the assisting answer as progress");
    assert!(
        progress["event"]["note"]
            .as_str()
            .unwrap()
            .contains("人社部门已约谈用人单位")
    );
    // The lead replies: one reply for the ticket.
    let n12315 = w.s12315.received()[0].partner_number.clone();
    let reply = serde_json::json!({
        "message": {"id": "12315-R-9"}, "ticket": {"id": t, "partner_number": n12315},
        "event": {"content": "经联合处理，已督促商家退款"},
    });
    let (s, _) = w.s12315.send("reply", &reply).await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(status_of(&w, &t).await, "replied");

    let (s, bad) = {
        let mut b = body.clone();
        b["external_id"] = "SD12348-LB-2".into();
        b["assisting"] = serde_json::json!(["12315"]);
        let r = w
            .http
            .post(format!("{}/api/v1/tickets", w.base))
            .json(&b)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (s, bad["field"].as_str()),
        (422, Some("assisting[0]")),
        "{bad}"
    );
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_oversized_partner_message_is_refused_in_its_dialect() {
    let w = world().await;
    let huge = format!(
        "<GDXX><XXLX>GD01</XXLX><SQNR>{}</SQNR></GDXX>",
        "长".repeat(600_000)
    );
    let r = w
        .http
        .post(format!("{}/partners/12345/messages", w.base))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let text = r.text().await.unwrap();
    assert!(text.contains("<XYXX><JGDM>1001</JGDM>"), "{text}");
    w.gateway.shutdown().await.unwrap();
}
