//! The legal-aid case system's wire format, pinned both ways by the files in
//! `contract-tests/golden/legal-aid/`: the application we file (`application.sent.json`, from
//! `Application::example()`), and each case status it reports (`update.<status>.json` → what it
//! decodes to, `update.<status>.canonical.json`). `BLESS=1` rewrites the expected files.

use std::path::PathBuf;
use std::time::Duration;

use contract_tests::golden::check;
use contract_tests::legal_aid_sim::{GATEWAY_KEY, LegalAidSim};
use hotline_adapters::legal_aid::{
    LegalAidAdapter, LegalAidClient, LegalAidSettings, WireCaseUpdate,
};
use hotline_adapters::{Adapter, Inbound, InboundRequest, OutboundMessage};
use hotline_model::legal_aid::{Application, CaseStatus};
use hotline_model::{Event, EventBody, Ticket};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/legal-aid")
}

fn adapter() -> LegalAidAdapter {
    let client = LegalAidClient::new(&LegalAidSettings {
        url: "http://127.0.0.1:9/api".into(),
        app_id: "hotline-12348".into(),
        private_key: GATEWAY_KEY.into(),
        public_key: LegalAidSim::public_key(),
        timeout: Duration::from_secs(1),
        tls: None,
    })
    .unwrap();
    LegalAidAdapter::with_client(std::sync::Arc::new(client))
}

fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s.into_bytes()
}

#[test]
fn the_application_we_file_is_pinned() {
    let mut ticket = Ticket::new(
        "12345",
        Some("G-2026-0042".into()),
        contract_tests::samples::random_draft(),
    );
    ticket.id = "019ab2c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".parse().unwrap();
    let mut event = Event::new(
        ticket.id,
        "12348",
        EventBody::LegalAid {
            application: Box::new(Application::example()),
        },
    );
    event.at = "2026-11-24T01:30:00Z".parse().unwrap();
    let msg = OutboundMessage {
        message_id: "019ab2c4-0000-7000-8000-00000000a001".parse().unwrap(),
        ticket,
        event,
    };
    let req = adapter().encode(&msg).unwrap();
    assert_eq!(req.url, "http://127.0.0.1:9/api/applications");
    assert!(req.headers.contains_key("x-la-signature"), "SM2-signed");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    check(&dir().join("application.sent.json"), &pretty(&body)).unwrap();
}

#[test]
fn every_case_status_decodes_as_pinned_and_encodes_back() {
    let statuses = [
        CaseStatus::Accepted,
        CaseStatus::Reviewing,
        CaseStatus::MaterialsRequested {
            materials: vec!["劳动合同".into(), "工资欠条".into()],
        },
        CaseStatus::Granted,
        CaseStatus::Refused {
            reasons: "申请人经济状况不符合本地经济困难标准".into(),
        },
        CaseStatus::Assigned {
            lawyer: "张伟".into(),
            firm: "山东泉城律师事务所".into(),
        },
        CaseStatus::Handling,
        CaseStatus::Closed,
        CaseStatus::Terminated {
            ground: "受援人要求终止法律援助".into(),
        },
    ];
    let a = adapter();
    let mut failures = Vec::new();
    for status in statuses {
        let name = status.name();
        let wire_file = dir().join(format!("update.{name}.json"));
        if std::env::var_os("BLESS").is_some() && !wire_file.exists() {
            let u = hotline_model::legal_aid::CaseUpdate {
                case_no: "FY-370102-2026-0042".into(),
                version: 3,
                ticket_id: "019ab2c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".parse().unwrap(),
                received_at: "2026-11-24T09:30:00+08:00".parse().unwrap(),
                at: "2026-11-26T15:00:00+08:00".parse().unwrap(),
                status: status.clone(),
            };
            let v = serde_json::to_value(WireCaseUpdate::from_update(&u)).unwrap();
            std::fs::write(&wire_file, pretty(&v)).unwrap();
        }
        let wire = std::fs::read(&wire_file).unwrap();
        // Signed as the case system, through the adapter's own decode.
        let signer = hotline_adapters::signature::Signer {
            spec: hotline_adapters::legal_aid::signature_spec(),
            app_id: "hotline-12348".into(),
            our_secret: contract_tests::legal_aid_sim::CASE_SYSTEM_KEY.into(),
            their_secret: String::new(),
        };
        let mut headers = http::HeaderMap::new();
        signer.sign(&mut headers, &wire).unwrap();
        let decoded = a.decode(&InboundRequest {
            method: http::Method::POST,
            path: "cases/updates".into(),
            headers,
            body: wire.clone().into(),
        });
        match decoded {
            Ok(Inbound::CaseUpdate(u)) => {
                assert_eq!(u.status, status, "{name}");
                if let Err(e) = check(
                    &dir().join(format!("update.{name}.canonical.json")),
                    &pretty(&serde_json::to_value(&*u).unwrap()),
                ) {
                    failures.push(e);
                }
                let back = serde_json::to_value(WireCaseUpdate::from_update(&u)).unwrap();
                let original: serde_json::Value = serde_json::from_slice(&wire).unwrap();
                if back != original {
                    failures.push(format!(
                        "{name}: does not encode back:\n{back}\nvs\n{original}"
                    ));
                }
            }
            other => failures.push(format!("{name}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
