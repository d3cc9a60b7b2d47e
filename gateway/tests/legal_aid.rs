//! The legal-aid case system over real HTTP, SM2-signed both ways: a 12345 ticket becomes an
//! application, its case goes through grant and assignment, and 12345 hears the milestones;
//! out-of-order and duplicated updates end in the right state; a missed deadline raises an
//! alert; reconciliation repairs a case that diverged.

mod common;

use std::time::Duration;

use common::*;
use contract_tests::legal_aid_sim::{GATEWAY_KEY, LegalAidSim};
use contract_tests::mapped_sim::MappedSim;
use hotline_gateway::app::Gateway;
use hotline_gateway::config::{AdapterKind, PartnerConfig};
use hotline_model::legal_aid::{Application, CaseStatus};
use serde_json::{Value, json};

struct World {
    gateway: Gateway,
    sim: LegalAidSim,
    s12345: MappedSim,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        let sim = LegalAidSim::start(0).await.unwrap();
        let s12345 = mapped_sim("12345").await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config(&dir);
        config.partners.insert(
            "legal-aid".into(),
            PartnerConfig {
                adapter: AdapterKind::LegalAid,
                signing_secret: GATEWAY_KEY.into(),
                verify_secret: LegalAidSim::public_key(),
                ..partner_config(sim.url(), fast_retry(4))
            },
        );
        config
            .partners
            .insert("12345".into(), mapped_partner(&s12345));
        // Reconciliation only when asked, in these tests.
        config.legal_aid.reconcile_interval = Duration::from_secs(3600);
        let gateway = Gateway::start(config).await.unwrap();
        let base = gateway.base_url();
        sim.set_gateway(&base);
        s12345.set_gateway(&base);
        Self {
            gateway,
            sim,
            s12345,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        get_json(&self.http, format!("{}{path}", self.base)).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post_json(&self.http, format!("{}{path}", self.base), body).await
    }

    /// A ticket 12345 sends to 12348, in 12345's XML; its gateway id.
    async fn ticket_from_12345(&self, number: &str) -> String {
        let mut doc: Value = serde_json::from_slice(
            &std::fs::read(mappings_dir().join("12345/samples/dispatch.canonical.json")).unwrap(),
        )
        .unwrap();
        doc["message"]["id"] = format!("12345-{number}").into();
        doc["ticket"]["partner_number"] = number.into();
        let (status, answer) = self.s12345.send("dispatch", &doc).await.unwrap();
        assert_eq!(status, 200, "{answer}");
        let (_, tickets) = self.get("/api/v1/tickets?origin=12345").await;
        tickets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["partner_numbers"]["12345"] == number)
            .and_then(|t| t["id"].as_str())
            .unwrap()
            .to_owned()
    }

    /// Files the example application for `ticket` and waits for its case number.
    async fn file(&self, ticket: &str) -> String {
        let (status, body) = self
            .post(
                "/api/v1/legal-aid/applications",
                &json!({"ticket_id": ticket, "application": Application::example()}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let delivery = body["deliveries"][0].as_str().unwrap().to_owned();
        wait_until(Duration::from_secs(20), || async {
            let (_, d) = self.get(&format!("/api/v1/deliveries/{delivery}")).await;
            (d["status"] == "acknowledged")
                .then(|| d["partner_ref"].as_str().map(str::to_owned))
                .flatten()
        })
        .await
        .expect("the case system files the application")
    }

    async fn case(&self, case_no: &str) -> Value {
        let (status, c) = self
            .get(&format!("/api/v1/legal-aid/cases/{case_no}"))
            .await;
        assert_eq!(status, 200, "{c}");
        c
    }

    async fn wait_case(&self, case_no: &str, version: u64) -> Value {
        wait_until(Duration::from_secs(20), || async {
            let (status, c) = self
                .get(&format!("/api/v1/legal-aid/cases/{case_no}"))
                .await;
            (status == 200 && c["version"] == version).then_some(c)
        })
        .await
        .unwrap_or_else(|| panic!("case {case_no} never reached version {version}"))
    }
}

fn assigned() -> CaseStatus {
    CaseStatus::Assigned {
        lawyer: "张伟".into(),
        firm: "山东泉城律师事务所".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_12345_ticket_becomes_an_application_and_12345_hears_grant_and_assignment() {
    let w = World::start().await;
    let ticket = w.ticket_from_12345("G-LA-0001").await;

    // Everything wrong is named at once, before anything is sent.
    let mut bad = serde_json::to_value(Application::example()).unwrap();
    bad["applicant"]["id_number"] = "110105194912310021".into();
    bad["applicant"]["phone"] = "12345".into();
    bad["opposing_party"] = "".into();
    let (status, body) = w
        .post(
            "/api/v1/legal-aid/applications",
            &json!({"ticket_id": ticket, "application": bad}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        vec![
            "application.opposing_party",
            "application.applicant.id_number",
            "application.applicant.phone"
        ],
        "{body}"
    );
    assert!(w.sim.cases().is_empty(), "nothing was sent");

    // Filed: the case system checked our SM2 signature and gave a case number.
    let case_no = w.file(&ticket).await;
    let filed = w.sim.case(&case_no).expect("filed");
    assert_eq!(filed.application.gateway_ref.to_string(), ticket);
    assert_eq!(filed.application.origin, "12345");
    assert_eq!(filed.application.applicant.id_card, "11010519491231002X");

    // 受理 → 审查 → 给予 → 指派, each reported by the case system.
    for status in [
        CaseStatus::Accepted,
        CaseStatus::Reviewing,
        CaseStatus::Granted,
        assigned(),
    ] {
        let (s, answer) = w.sim.advance(&case_no, status).await.unwrap();
        assert_eq!(s, 200, "{answer}");
        assert_eq!(answer["applied"], true, "{answer}");
    }
    let c = w.case(&case_no).await;
    assert_eq!(
        (c["version"].as_u64(), c["status"].as_str()),
        (Some(4), Some("assigned"))
    );
    assert_eq!(c["lawyer"], "张伟");
    assert!(
        c["decided_at"].is_string() && c["assigned_at"].is_string(),
        "{c}"
    );
    assert!(c["assignment_due"].is_string(), "{c}");

    // 12345 receives the milestones in its XML: accepted, granted, assigned.
    let milestones = wait_until(Duration::from_secs(20), || async {
        let got: Vec<String> = w
            .s12345
            .received()
            .into_iter()
            .filter(|r| r.message_type == "case_status")
            .filter_map(|r| r.envelope["event"]["status"].as_str().map(str::to_owned))
            .collect();
        (got.len() >= 3).then_some(got)
    })
    .await
    .expect("12345 hears the milestones");
    assert_eq!(milestones, vec!["accepted", "granted", "assigned"]);
    let assigned_note = w
        .s12345
        .received()
        .into_iter()
        .find(|r| r.envelope["event"]["status"] == "assigned")
        .unwrap();
    let first = w
        .s12345
        .received()
        .into_iter()
        .find(|r| r.message_type == "case_status")
        .unwrap();
    assert_eq!(
        first.envelope["ticket"]["partner_number"], "G-LA-0001",
        "12345 is told under its own number"
    );
    assert_eq!(first.envelope["event"]["case_no"], case_no.as_str());
    assert!(
        assigned_note.envelope["event"]["note"]
            .as_str()
            .unwrap()
            .contains("张伟"),
        "{:?}",
        assigned_note.envelope
    );
    // And the ticket's timeline shows them.
    let (_, events) = w.get(&format!("/api/v1/tickets/{ticket}/events")).await;
    assert!(
        events.to_string().contains("已决定给予法律援助"),
        "{events}"
    );
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_order_and_duplicated_updates_end_in_the_right_state() {
    let w = World::start().await;
    let ticket = w.ticket_from_12345("G-LA-0002").await;
    let case_no = w.file(&ticket).await;
    for status in [
        CaseStatus::Accepted,
        CaseStatus::Reviewing,
        CaseStatus::MaterialsRequested {
            materials: vec!["劳动合同".into(), "工资欠条".into()],
        },
        CaseStatus::Granted,
    ] {
        w.sim.advance_quietly(&case_no, status).unwrap();
    }
    // 3 first: held, and 1 and 2 are named as missing.
    let (s, a) = w.sim.push(&case_no, 3).await.unwrap();
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (a["applied"].as_bool(), a["missingVersions"].clone()),
        (Some(false), json!([1, 2]))
    );
    // 4, then 1 twice: the gateway asks for what is missing and lands on version 4.
    w.sim.push(&case_no, 4).await.unwrap();
    w.sim.push(&case_no, 1).await.unwrap();
    let (s, a) = w.sim.push(&case_no, 1).await.unwrap();
    assert_eq!(s, 200, "a duplicate is answered, not refused: {a}");
    let c = w.wait_case(&case_no, 4).await;
    assert_eq!(c["status"], "granted");
    // A stale version changes nothing.
    let (_, a) = w.sim.push(&case_no, 2).await.unwrap();
    assert_eq!(a["applied"], true, "{a}");
    assert_eq!(w.case(&case_no).await["status"], "granted");
    // Each milestone reached the ticket exactly once.
    let (_, events) = w.get(&format!("/api/v1/tickets/{ticket}/events")).await;
    let text = events.to_string();
    assert_eq!(text.matches("法律援助申请已受理").count(), 1, "{text}");
    assert_eq!(
        text.matches("需补充材料：劳动合同、工资欠条").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("已决定给予法律援助").count(), 1, "{text}");
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_updates_are_refused_with_the_field_and_forgeries_with_401() {
    let w = World::start().await;
    let ticket = w.ticket_from_12345("G-LA-0003").await;
    let case_no = w.file(&ticket).await;
    let now = "2026-11-24T09:00:00+08:00";
    let body = json!({"caseNo": case_no, "version": 1, "gatewayRef": ticket,
        "receivedAt": now, "at": now, "status": "ASSIGNED", "lawyer": "张伟"});
    let (s, a) = w
        .sim
        .send_signed(serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    assert_eq!((s, a["field"].as_str()), (422, Some("firm")), "{a}");
    let body = json!({"caseNo": case_no, "version": 1, "gatewayRef": uuid::Uuid::now_v7(),
        "receivedAt": now, "at": now, "status": "ACCEPTED"});
    let (s, a) = w
        .sim
        .send_signed(serde_json::to_vec(&body).unwrap())
        .await
        .unwrap();
    assert_eq!((s, a["field"].as_str()), (422, Some("gatewayRef")), "{a}");
    // Signed with another key.
    let forged = w
        .http
        .post(format!("{}/partners/legal-aid/cases/updates", w.base))
        .header("x-la-appid", "hotline-12348")
        .header("x-la-timestamp", chrono::Utc::now().timestamp().to_string())
        .header("x-la-nonce", "n-1")
        .header("x-la-signature", "00".repeat(64))
        .body(r#"{"caseNo":"X"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_repairs_a_diverged_case_and_missed_deadlines_raise_alerts() {
    let w = World::start().await;
    let ticket = w.ticket_from_12345("G-LA-0004").await;
    let case_no = w.file(&ticket).await;
    w.sim.advance(&case_no, CaseStatus::Accepted).await.unwrap();
    // The case system moves on without telling the gateway (a lost callback).
    w.sim.advance_quietly(&case_no, CaseStatus::Granted);
    w.sim.advance_quietly(&case_no, assigned());
    assert_eq!(w.case(&case_no).await["version"], 1);
    let (s, report) = w.post("/api/v1/legal-aid/reconcile", &json!({})).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["checked"], 1, "{report}");
    assert_eq!(report["repaired"], json!([[case_no, 1, 3]]), "{report}");
    let c = w.case(&case_no).await;
    assert_eq!(
        (c["version"].as_u64(), c["status"].as_str()),
        (Some(3), Some("assigned"))
    );
    // Nothing left to repair.
    let (_, again) = w.post("/api/v1/legal-aid/reconcile", &json!({})).await;
    assert_eq!(again["repaired"], json!([]), "{again}");

    // A second case never decided: past its 7 days, the clock check raises an alert.
    let other = w.ticket_from_12345("G-LA-0005").await;
    let late = w.file(&other).await;
    w.sim.advance(&late, CaseStatus::Accepted).await.unwrap();
    let raised = w
        .gateway
        .legal_aid
        .check_clocks(chrono::Utc::now() + chrono::Duration::days(8))
        .await
        .unwrap();
    assert_eq!(raised, 1, "only the undecided case is overdue");
    let (_, alerts) = w.get("/api/v1/alerts?kind=legal_aid_overdue").await;
    let alerts = alerts.as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0]["message"].as_str().unwrap().contains(&late));
    w.gateway.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_reconciles_legal_aid_and_reports_what_it_repaired() {
    let w = World::start().await;
    let ticket = w.ticket_from_12345("G-LA-0006").await;
    let case_no = w.file(&ticket).await;
    w.sim.advance(&case_no, CaseStatus::Accepted).await.unwrap();
    w.sim.advance_quietly(&case_no, CaseStatus::Granted);
    let World {
        gateway, sim, _dir, ..
    } = w;
    gateway.shutdown().await.unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = _dir.path().join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "mappings_dir = {:?}\n[store]\npath = {:?}\n[sla]\ncalendar_dir = {:?}\n\
             [partners.legal-aid]\nadapter = \"legal-aid\"\nurl = {:?}\n\
             signing_secret = {GATEWAY_KEY:?}\nverify_secret = {:?}\n",
            root.join("mappings").display().to_string(),
            _dir.path().join("gateway.db").display().to_string(),
            root.join("mappings/calendar").display().to_string(),
            sim.url(),
            LegalAidSim::public_key(),
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hotline-gateway"))
        .args([
            "reconcile",
            "legal-aid",
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("checked 1 open cases"), "{stdout}");
    assert!(
        stdout.contains(&format!("repaired {case_no}: version 1 → 2")),
        "{stdout}"
    );
    let store = hotline_gateway::store::SqliteStore::open(&_dir.path().join("gateway.db"))
        .await
        .unwrap();
    use hotline_gateway::store::Store;
    let case = store.legal_aid_case(&case_no).await.unwrap().unwrap();
    assert_eq!((case.version, case.status.name()), (2, "granted"));
}
