//! Three-way call transfers end to end: the four partners' CTI simulators and the home CTI
//! simulator over real HTTP, the gateway on a SQLite file.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use common::{
    base_config, get_json, mapped_partner, mapped_sim, mappings_dir, post_json, wait_until,
};
use contract_tests::behaviour::CtiBehaviour;
use contract_tests::home_cti_sim::HomeCtiSim;
use contract_tests::mapped_sim::MappedSim;
use contract_tests::xsd;
use hotline_gateway::Gateway;
use hotline_gateway::config::{Config, TransfersConfig};
use hotline_gateway::transfer::hours::BusinessHours;
use hotline_gateway::transfer::machine::TransferState;
use hotline_model::{RefusalReason, TransferAnswer};
use serde_json::{Value, json};

const CTI_TOKEN: &str = "home-cti-token-0001";
const WAIT: Duration = Duration::from_secs(15);

struct World {
    gateway: Gateway,
    sims: BTreeMap<String, MappedSim>,
    home: HomeCtiSim,
    http: reqwest::Client,
    base: String,
    config: Config,
    _dir: tempfile::TempDir,
}

async fn world(connect_timeout: Duration) -> World {
    let mut sims = BTreeMap::new();
    for p in ["12345", "12315", "12333", "12338"] {
        sims.insert(p.to_owned(), mapped_sim(p).await);
    }
    let home = HomeCtiSim::start(Some(CTI_TOKEN.into())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let partners = sims
        .iter()
        .map(|(id, s)| {
            let mut p = mapped_partner(s);
            p.transfer_url = Some(s.cti_url());
            p.timeout = Duration::from_secs(5);
            (id.clone(), p)
        })
        .collect();
    let config = Config {
        partners,
        transfers: TransfersConfig {
            home_cti_url: Some(home.url()),
            home_cti_token: Some(CTI_TOKEN.into()),
            answer_timeout: Duration::from_secs(1),
            connect_timeout,
            scan_interval: Duration::from_millis(100),
            hours: BTreeMap::from([("12338".to_owned(), BusinessHours::closed_at(Utc::now(), 2))]),
        },
        ..base_config(&dir)
    };
    assert!(config.check().is_empty(), "{:?}", config.check());
    boot(sims, home, config, dir).await
}

async fn boot(
    sims: BTreeMap<String, MappedSim>,
    home: HomeCtiSim,
    config: Config,
    dir: tempfile::TempDir,
) -> World {
    let gateway = Gateway::start(config.clone()).await.unwrap();
    let base = gateway.base_url();
    for s in sims.values() {
        s.set_gateway(&base);
    }
    World {
        gateway,
        sims,
        home,
        http: reqwest::Client::new(),
        base,
        config,
        _dir: dir,
    }
}

impl World {
    fn sim(&self, p: &str) -> &MappedSim {
        &self.sims[p]
    }

    async fn restart(self) -> World {
        self.restart_with(|_| {}).await
    }

    /// Stops the gateway and starts it again on the same database, with `tweak` applied.
    async fn restart_with(self, tweak: impl FnOnce(&mut Config)) -> World {
        let World {
            gateway,
            sims,
            home,
            mut config,
            _dir,
            ..
        } = self;
        gateway.shutdown().await.unwrap();
        tweak(&mut config);
        boot(sims, home, config, _dir).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post_json(&self.http, format!("{}{path}", self.base), body).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        get_json(&self.http, format!("{}{path}", self.base)).await
    }

    /// Asks for a transfer to `target`; the answer must be 201.
    async fn transfer(&self, call: &str, target: &str) -> Value {
        let (status, t) = self.post("/api/v1/transfers", &request(call, target)).await;
        assert_eq!(status, 201, "{t}");
        t
    }

    async fn event(&self, id: &str, event: &str, event_id: Option<&str>) -> (u16, Value) {
        self.post(
            &format!("/api/v1/transfers/{id}/events"),
            &json!({"event": event, "event_id": event_id}),
        )
        .await
    }

    async fn detail(&self, id: &str) -> Value {
        let (status, d) = self.get(&format!("/api/v1/transfers/{id}")).await;
        assert_eq!(status, 200, "{d}");
        d
    }

    /// Waits until the transfer is in `state`.
    async fn wait_state(&self, id: &str, state: &str) -> Value {
        wait_until(WAIT, || async {
            let d = self.detail(id).await;
            (d["transfer"]["state"] == state).then_some(d)
        })
        .await
        .unwrap_or_else(|| panic!("transfer {id} never became {state}"))
    }

    /// Waits until the partner received a dispatch whose canonical content is `content`.
    async fn wait_dispatch(&self, partner: &str, title: &str) -> Value {
        let sim = self.sim(partner);
        wait_until(WAIT, || async {
            sim.received()
                .into_iter()
                .find(|r| r.message_type == "dispatch" && r.envelope["ticket"]["title"] == title)
                .map(|r| r.envelope)
        })
        .await
        .unwrap_or_else(|| panic!("{partner} never received the fallback ticket `{title}`"))
    }
}

fn draft(title: &str) -> Value {
    json!({
        "kind": "help",
        "urgency": "urgent",
        "caller": {"name": "王强", "phone": "13912345678"},
        "region_code": "370102",
        "classification_code": "9.3",
        "title": title,
        "content": "来电人反映用人单位拖欠工资三个月，希望人社部门介入。",
        "received_at": "2026-11-23T10:04:55+08:00"
    })
}

fn request(call: &str, target: &str) -> Value {
    json!({
        "call_id": call,
        "target": target,
        "agent_id": "A1027",
        "ticket_number": format!("SD12348-{call}"),
        "ticket": draft(&format!("转接 {call}")),
    })
}

fn log_kinds(detail: &Value) -> Vec<String> {
    detail["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn granted_then_connected_and_completed_with_the_context_handed_over() {
    let w = world(Duration::from_secs(5)).await;
    let t = w.transfer("C-100", "12333").await;
    assert_eq!(t["state"], "granted", "{t}");
    let grant = &t["grant"];
    assert!(
        grant["dial_target"]
            .as_str()
            .unwrap()
            .starts_with("sip:zj0001@cti.12333"),
        "{t}"
    );
    assert_eq!(grant["token"], "TK000001");
    assert!(grant["expires_at"].is_string());
    assert_eq!(t["partner_ref"], "12333-ZJ-000001");

    // The 12333 agent's screen pop: who is calling, why, and the 12348 numbers.
    let offers = w.sim("12333").offers();
    assert_eq!(offers.len(), 1);
    let offer = &offers[0].envelope;
    assert_eq!(offer["transfer"]["id"], t["id"]);
    assert_eq!(offer["transfer"]["call_id"], "C-100");
    assert_eq!(offer["transfer"]["agent_id"], "A1027");
    assert_eq!(offer["transfer"]["ticket_number"], "SD12348-C-100");
    assert_eq!(offer["ticket"]["caller"]["phone"], "13912345678");
    assert_eq!(offer["ticket"]["kind"], "help");
    assert_eq!(offer["ticket"]["title"], "转接 C-100");
    // What went on the wire is valid GB18030 XML by 12333's schema.
    let xsd_file = mappings_dir().join("12333/12333.xsd");
    xsd::validate(&xsd_file, &w.sim("12333").offer_bytes()[0]).unwrap();

    let id = t["id"].as_str().unwrap();
    for e in ["ringing", "connected", "originator_left", "completed"] {
        let (status, r) = w.event(id, e, None).await;
        assert_eq!(status, 200, "{e}: {r}");
        assert_eq!(r["outcome"], "applied", "{e}: {r}");
    }
    let d = w.detail(id).await;
    let tr = &d["transfer"];
    assert_eq!(tr["state"], "completed");
    for at in [
        "answered_at",
        "ringing_at",
        "connected_at",
        "originator_left_at",
        "ended_at",
    ] {
        assert!(tr[at].is_string(), "{at} missing: {tr}");
    }
    assert!(tr.get("fallback_ticket_id").is_none(), "{tr}");
    assert!(tr.get("deadline_at").is_none(), "{tr}");
    assert_eq!(
        log_kinds(&d),
        [
            "requested:applied",
            "granted:applied",
            "ringing:applied",
            "connected:applied",
            "originator_left:applied",
            "completed:applied"
        ]
    );
    // No ticket was filed for a transfer that worked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(w.sim("12333").received().is_empty());
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_transfer_becomes_a_ticket_to_the_same_partner() {
    let w = world(Duration::from_secs(5)).await;
    w.sim("12345")
        .set_cti(CtiBehaviour::Refuse(RefusalReason::Busy));
    let t = w.transfer("C-200", "12345").await;
    assert_eq!(t["state"], "refused", "{t}");
    assert_eq!(t["reason"], "busy");
    let ticket_id = t["fallback_ticket_id"]
        .as_str()
        .expect("fallback ticket in the answer");

    let sent = w.wait_dispatch("12345", "转接 C-200").await;
    assert_eq!(sent["ticket"]["id"], ticket_id);
    assert_eq!(sent["ticket"]["caller"]["phone"], "13912345678");
    let (status, ticket) = w.get(&format!("/api/v1/tickets/{ticket_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        ticket["external_id"],
        format!("ZJ-{}", t["id"].as_str().unwrap())
    );
    let (_, events) = w.get(&format!("/api/v1/tickets/{ticket_id}/events")).await;
    assert!(
        events
            .to_string()
            .contains("三方通话转接未成功（对方坐席忙）"),
        "{events}"
    );
    let d = w.detail(t["id"].as_str().unwrap()).await;
    assert_eq!(
        log_kinds(&d),
        ["requested:applied", "refused:applied", "fallback:applied"]
    );
    // The agent learnt it from the answer; nothing more to tell the CTI.
    assert_eq!(d["transfer"]["notify_pending"], false);
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn granted_but_never_connected_expires_into_a_ticket_and_the_cti_is_told() {
    let w = world(Duration::from_millis(800)).await;
    let t = w.transfer("C-300", "12315").await;
    assert_eq!(t["state"], "granted");
    let id = t["id"].as_str().unwrap();
    w.event(id, "ringing", Some("ev-1")).await;
    let d = w.wait_state(id, "expired").await;
    let ticket_id = wait_until(WAIT, || async {
        w.detail(id).await["transfer"]["fallback_ticket_id"]
            .as_str()
            .map(str::to_owned)
    })
    .await
    .expect("a fallback ticket");
    assert!(
        d["transfer"]["detail"]
            .as_str()
            .unwrap()
            .contains("not connected within")
    );
    let sent = w.wait_dispatch("12315", "转接 C-300").await;
    assert_eq!(sent["ticket"]["id"], ticket_id.as_str());
    let notice = wait_until(WAIT, || async { w.home.notices().into_iter().next() })
        .await
        .expect("the home CTI is told");
    assert_eq!(notice["transfer_id"], id);
    assert_eq!(notice["call_id"], "C-300");
    assert_eq!(notice["state"], "expired");
    assert_eq!(notice["fallback_ticket_id"], ticket_id.as_str());
    assert!(
        notice["message"].as_str().unwrap().contains("已转为工单"),
        "{notice}"
    );
    // Once the notice is recorded, a connection reported after the expiry is too late, and is
    // recorded as refused.
    wait_until(WAIT, || async {
        (w.detail(id).await["transfer"]["notify_pending"] == false).then_some(())
    })
    .await
    .expect("the notice is recorded");
    let (status, body) = w.event(id, "connected", None).await;
    assert_eq!(status, 409, "{body}");
    let kinds = log_kinds(&w.detail(id).await);
    assert!(kinds.contains(&"expired:applied".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"notified:applied".to_owned()), "{kinds:?}");
    assert_eq!(kinds.last().unwrap(), "connected:rejected");
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_home_cti_is_told_once_it_answers_again() {
    let w = world(Duration::from_millis(500)).await;
    w.home.set_down(true);
    let t = w.transfer("C-350", "12333").await;
    let id = t["id"].as_str().unwrap();
    let d = w.wait_state(id, "expired").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(w.home.notices().is_empty());
    assert_eq!(
        w.detail(id).await["transfer"]["notify_pending"],
        true,
        "{d}"
    );
    // The CTI is back: the next round tells it.
    w.home.set_down(false);
    let notice = wait_until(WAIT, || async { w.home.notices().into_iter().next() })
        .await
        .expect("the home CTI is told after all");
    assert_eq!(notice["transfer_id"], id);
    assert_eq!(notice["state"], "expired");
    wait_until(WAIT, || async {
        (w.detail(id).await["transfer"]["notify_pending"] == false).then_some(())
    })
    .await
    .expect("the notice is recorded");
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_offer_left_unanswered_by_a_stop_is_refused_and_filed() {
    let w = world(Duration::from_secs(30)).await;
    let t = w.transfer("C-450", "12333").await;
    let id: uuid::Uuid = t["id"].as_str().unwrap().parse().unwrap();
    // As a gateway that stopped while 12333 was still answering leaves it in the store.
    let store = &w.gateway.store;
    let mut left = store.transfer(id).await.unwrap().unwrap();
    left.state = TransferState::Requested;
    left.grant = None;
    left.answered_at = None;
    left.deadline_at = Some(Utc::now() - chrono::Duration::seconds(1));
    left.version += 1;
    store.update_transfer(&left, vec![]).await.unwrap();

    let d = w.wait_state(&id.to_string(), "refused").await;
    assert_eq!(d["transfer"]["reason"], "unreachable", "{d}");
    w.wait_dispatch("12333", "转接 C-450").await;
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn outside_business_hours_the_ticket_is_filed_without_a_call() {
    let w = world(Duration::from_secs(5)).await;
    let t = w.transfer("C-400", "12338").await;
    assert_eq!(t["state"], "refused", "{t}");
    assert_eq!(t["reason"], "closed");
    assert!(t["fallback_ticket_id"].is_string());
    w.wait_dispatch("12338", "转接 C-400").await;
    assert!(
        w.sim("12338").offers().is_empty(),
        "the closed partner was called"
    );
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_partner_that_never_answers_or_answers_with_an_error() {
    let w = world(Duration::from_secs(5)).await;
    w.sim("12345")
        .set_cti(CtiBehaviour::Silent(Duration::from_secs(4)));
    let started = std::time::Instant::now();
    let t = w.transfer("C-500", "12345").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(t["state"], "refused");
    assert_eq!(t["reason"], "unreachable");
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("no answer within 1s"),
        "{t}"
    );
    assert!(t["fallback_ticket_id"].is_string());

    w.sim("12333").set_cti(CtiBehaviour::Error);
    let t = w.transfer("C-501", "12333").await;
    assert_eq!(t["state"], "refused");
    assert_eq!(
        t["reason"], "unreachable",
        "HTTP 500 counts as unreachable: {t}"
    );
    assert!(
        t["detail"].as_str().unwrap().contains("模拟系统故障"),
        "{t}"
    );
    assert!(t["fallback_ticket_id"].is_string());
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn events_out_of_order_duplicated_and_impossible() {
    let w = world(Duration::from_secs(5)).await;
    let t = w.transfer("C-600", "12333").await;
    let id = t["id"].as_str().unwrap();
    // Connected before ringing is accepted; the late ringing changes nothing.
    let (s, r) = w.event(id, "connected", Some("e1")).await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("applied")), "{r}");
    let (s, r) = w.event(id, "ringing", Some("e2")).await;
    assert_eq!((s, r["outcome"].as_str()), (200, Some("late")), "{r}");
    assert_eq!(r["transfer"]["state"], "connected");
    // The same event twice: answered as before.
    let (s, r) = w.event(id, "connected", Some("e1")).await;
    assert_eq!((s, r["duplicate"].as_bool()), (200, Some(true)), "{r}");
    // Failed, then completed: the completion is refused and recorded.
    let (s, r) = w.event(id, "failed", Some("e3")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["transfer"]["state"], "failed");
    assert!(r["transfer"]["fallback_ticket_id"].is_string(), "{r}");
    let (s, r) = w.event(id, "completed", Some("e4")).await;
    assert_eq!(s, 409, "{r}");
    assert_eq!(r["error"], "transfer_state");
    assert!(r["message"].as_str().unwrap().contains("failed"), "{r}");
    let (s, _) = w.event(id, "completed", Some("e4")).await;
    assert_eq!(s, 409, "a repeated impossible event stays refused");
    let kinds = log_kinds(&w.detail(id).await);
    assert_eq!(
        kinds,
        [
            "requested:applied",
            "granted:applied",
            "connected:applied",
            "ringing:late",
            "failed:applied",
            "fallback:applied",
            "completed:rejected"
        ]
    );

    // Unknown transfers, unknown events and bad requests.
    let (s, r) = w
        .event("019ab2c4-0000-7000-8000-000000000000", "ringing", None)
        .await;
    assert_eq!(s, 404, "{r}");
    let (s, r) = w
        .post(
            &format!("/api/v1/transfers/{id}/events"),
            &json!({"event": "exploded"}),
        )
        .await;
    assert_eq!(s, 422, "{r}");
    assert_eq!(r["field"], "event", "{r}");
    let mut bad = request("C-601", "99999");
    bad["ticket"]["caller"]["phone"] = json!("12");
    let (s, r) = w.post("/api/v1/transfers", &bad).await;
    assert_eq!(s, 422, "{r}");
    let fields: Vec<_> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].clone())
        .collect();
    assert!(fields.contains(&json!("target")), "{r}");
    assert!(fields.contains(&json!("ticket.caller.phone")), "{r}");
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_inbound_transfer_from_12345_is_answered_by_the_home_cti() {
    let w = world(Duration::from_secs(5)).await;
    let offer: Value = serde_json::from_slice(
        &std::fs::read(mappings_dir().join("canonical/transfer_request.json")).unwrap(),
    )
    .unwrap();
    let sim = w.sim("12345");
    let (status, answer) = sim.offer_transfer(&offer).await.unwrap();
    assert_eq!(status, 200);
    let (offer_id, answer) = answer.unwrap();
    assert_eq!(offer_id, offer["transfer"]["id"].as_str().unwrap());
    let TransferAnswer::Granted(g) = answer else {
        panic!("not granted: {answer:?}")
    };
    assert!(g.dial_target.starts_with("sip:12348-queue-1@"), "{g:?}");
    let asks = w.home.asks();
    assert_eq!(asks.len(), 1);
    assert_eq!(asks[0]["partner"], "12345");
    assert_eq!(asks[0]["offer"]["ticket"]["caller"]["phone"], "13705318888");
    assert_eq!(asks[0]["offer"]["call_id"], "CALL-20261123-100455-0007");

    // The same offer again: the same answer, the home CTI is not asked twice.
    let (_, again) = sim.offer_transfer(&offer).await.unwrap();
    assert!(
        matches!(again.unwrap().1, TransferAnswer::Granted(ref g2) if g2.dial_target == g.dial_target)
    );
    assert_eq!(w.home.asks().len(), 1);

    // The home CTI reports the call like any other.
    let transfer_id = asks[0]["transfer_id"].as_str().unwrap();
    let (s, r) = w.event(transfer_id, "completed", None).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["transfer"]["direction"], "inbound");
    assert_eq!(r["transfer"]["state"], "completed");

    // Refused by 12348: 12345 is told, with the number of the ticket filed at 12348 instead.
    w.home
        .set_behaviour(CtiBehaviour::Refuse(RefusalReason::NoAgent));
    let mut second = offer.clone();
    second["transfer"]["id"] = json!("ZJ12345-SECOND");
    let (status, answer) = sim.offer_transfer(&second).await.unwrap();
    assert_eq!(status, 200);
    let TransferAnswer::Refused {
        reason,
        ticket_number,
        ..
    } = answer.unwrap().1
    else {
        panic!("not refused")
    };
    assert_eq!(reason, RefusalReason::NoAgent);
    let ticket_id = ticket_number.expect("the fallback ticket's number");
    let (s, ticket) = w.get(&format!("/api/v1/tickets/{ticket_id}")).await;
    assert_eq!(s, 200, "{ticket}");
    assert_eq!(ticket["origin"], "12345");

    // A broken offer is refused in 12345's dialect, naming the field.
    let mut broken = offer.clone();
    broken["transfer"]["id"] = json!("ZJ12345-THIRD");
    broken["ticket"]["region_code"] = json!("37");
    let (status, answer) = sim.offer_transfer(&broken).await.unwrap();
    assert_eq!(status, 422);
    assert!(answer.is_err());
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_partner_offers_transfers_in_its_own_dialect() {
    let w = world(Duration::from_secs(5)).await;
    let offer: Value = serde_json::from_slice(
        &std::fs::read(mappings_dir().join("canonical/transfer_request.json")).unwrap(),
    )
    .unwrap();
    for (i, p) in ["12315", "12333", "12338"].into_iter().enumerate() {
        let mut o = offer.clone();
        o["transfer"]["id"] = json!(format!("{p}-OFFER-1"));
        let (status, answer) = w.sim(p).offer_transfer(&o).await.unwrap();
        assert_eq!(status, 200, "{p}");
        let (id, answer) = answer.unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(id, format!("{p}-OFFER-1"));
        assert!(
            matches!(answer, TransferAnswer::Granted(_)),
            "{p}: {answer:?}"
        );
        assert_eq!(w.home.asks()[i]["partner"], p);
    }
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_confidential_caller_is_not_named_to_the_partner() {
    let w = world(Duration::from_secs(5)).await;
    let mut req = request("C-800", "12315");
    req["ticket"]["confidential"] = json!(true);
    let (status, t) = w.post("/api/v1/transfers", &req).await;
    assert_eq!(status, 201, "{t}");
    let offer = &w.sim("12315").offers()[0].envelope;
    assert!(offer["ticket"].get("caller").is_none(), "{offer}");
    assert_eq!(offer["ticket"]["confidential"], true);
    assert_eq!(offer["ticket"]["title"], "转接 C-800");
    let wire = String::from_utf8(w.sim("12315").offer_bytes()[0].clone()).unwrap();
    assert!(
        !wire.contains("13912345678") && !wire.contains("王强"),
        "{wire}"
    );
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_restart_during_transfers_resumes_them() {
    let w = world(Duration::from_secs(4)).await;
    let live = w.transfer("C-700", "12333").await;
    let idle = w.transfer("C-701", "12315").await;
    let (s, _) = w.event(live["id"].as_str().unwrap(), "ringing", None).await;
    assert_eq!(s, 200);
    let w = w.restart().await;
    // The transfer that goes on: reported after the restart like before.
    let live_id = live["id"].as_str().unwrap();
    let (s, r) = w.event(live_id, "connected", None).await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = w.event(live_id, "completed", None).await;
    assert_eq!(
        (s, r["transfer"]["state"].as_str()),
        (200, Some("completed")),
        "{r}"
    );
    // The one that never connects: its timer ran on across the restart.
    let idle_id = idle["id"].as_str().unwrap();
    w.wait_state(idle_id, "expired").await;
    w.wait_dispatch("12315", "转接 C-701").await;
    wait_until(WAIT, || async {
        w.detail(idle_id).await["transfer"]["fallback_ticket_id"]
            .as_str()
            .map(str::to_owned)
    })
    .await
    .expect("the fallback ticket is linked");

    let (s, stats) = w.get("/api/v1/stats/transfers?hours=1").await;
    assert_eq!(s, 200);
    let row = |p: &str| {
        stats["partners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["partner"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("no stats for {p}: {stats}"))
    };
    let a = row("12333");
    assert_eq!(
        (a["requested"].as_u64(), a["completed"].as_u64()),
        (Some(1), Some(1)),
        "{a}"
    );
    assert_eq!(a["success_rate"], 1.0);
    assert!(a["grant_ms_p50"].is_i64(), "{a}");
    assert!(a["connect_ms_p50"].is_i64(), "{a}");
    let b = row("12315");
    assert_eq!(
        (b["expired"].as_u64(), b["fallbacks"].as_u64()),
        (Some(1), Some(1)),
        "{b}"
    );
    assert_eq!(b["success_rate"], 0.0);
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_fallback_that_cannot_be_filed_raises_an_alert_once() {
    let w = world(Duration::from_millis(1500)).await;
    let t = w.transfer("C-900", "12315").await;
    assert_eq!(t["state"], "granted");
    let id = t["id"].as_str().unwrap().to_owned();
    // 12315 leaves the configuration before the grant runs out.
    let w = w
        .restart_with(|c| {
            c.partners.remove("12315");
        })
        .await;
    let d = w.wait_state(&id, "expired").await;
    let d = wait_until(WAIT, || async {
        let d = w.detail(&id).await;
        let settled =
            d["transfer"]["fallback_error"].is_string() && d["transfer"]["notify_pending"] == false;
        settled.then_some(d)
    })
    .await
    .unwrap_or_else(|| panic!("no fallback error recorded: {d}"));
    assert!(
        d["transfer"]["fallback_error"]
            .as_str()
            .unwrap()
            .contains("unknown partner `12315`"),
        "{d}"
    );
    let (s, alerts) = w.get("/api/v1/alerts?kind=transfer_unfiled").await;
    assert_eq!(s, 200, "{alerts}");
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts}");
    assert!(
        alerts[0]["message"].as_str().unwrap().contains(&id),
        "{alerts}"
    );
    // Not tried again round after round.
    let entries = d["log"].as_array().unwrap().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = w.detail(&id).await;
    assert_eq!(later["log"].as_array().unwrap().len(), entries, "{later}");
    assert_eq!(
        log_kinds(&later)
            .iter()
            .filter(|k| k.starts_with("fallback"))
            .count(),
        1
    );
    w.gateway.shutdown().await.unwrap();
}
