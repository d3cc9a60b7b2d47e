//! What the gateway answers partners (acceptances and refusals) is in their dialect, and for XML
//! partners valid against their schema.

use std::time::Duration;

use contract_tests::golden::partner_dirs;
use contract_tests::xsd;
use hotline_adapters::mapped::{MappedAdapter, MappedSettings};
use hotline_adapters::{Adapter, IngressError, IngressReply};
use hotline_model::{RefusalReason, TransferAnswer, TransferGrant};
use uuid::Uuid;

#[test]
fn every_answer_we_give_an_xml_partner_is_valid_against_its_schema() {
    let mut checked = 0;
    for dir in partner_dirs() {
        let partner = dir.file_name().unwrap().to_string_lossy().into_owned();
        let adapter = MappedAdapter::load(MappedSettings {
            partner: partner.clone(),
            dir: dir.clone(),
            url: "http://127.0.0.1:9/".into(),
            app_id: "hotline-12348".into(),
            signing_secret: "s".repeat(16),
            verify_secret: "v".repeat(16),
            timeout: Duration::from_secs(1),
            ack_timeout: Duration::from_secs(1),
            poll_url: None,
            poll_ack_url: None,
            transfer_url: None,
            bus: None,
            tls: None,
        })
        .unwrap();
        let Some(schema) = adapter.mapping().schema_file(&dir) else {
            continue;
        };
        let answers = [
            adapter.respond(&IngressReply::TicketAccepted {
                ticket_id: Uuid::now_v7(),
                duplicate: false,
            }),
            adapter.respond(&IngressReply::EventRecorded {
                ticket_id: Uuid::now_v7(),
                duplicate: true,
            }),
            adapter.respond(&IngressReply::AckApplied { known: true }),
            adapter.respond(&IngressReply::Transfer {
                offer_id: "ZJ12345-20261123-0031".into(),
                answer: TransferAnswer::Granted(TransferGrant {
                    dial_target: "sip:12348-queue-7@cti.12348.sd.gov.cn".into(),
                    token: Some("H000007".into()),
                    expires_at: chrono::DateTime::parse_from_rfc3339("2026-11-23T10:06:00+08:00")
                        .ok(),
                    partner_ref: None,
                }),
            }),
            adapter.respond(&IngressReply::Transfer {
                offer_id: "ZJ12345-20261123-0032".into(),
                answer: TransferAnswer::Refused {
                    reason: RefusalReason::NoAgent,
                    detail: Some("无可用坐席".into()),
                    ticket_number: Some(Uuid::now_v7().to_string()),
                },
            }),
            adapter.reject(&IngressError::invalid(
                "SQLX",
                "unknown code `9` (code table `kind`)",
            )),
            adapter.reject(&IngressError::malformed(
                None,
                "malformed XML at byte 12: <&>",
            )),
            adapter.reject(&IngressError::unauthorized("signature does not match")),
            adapter.reject(&IngressError::not_found("no such ticket")),
            adapter.reject(&IngressError {
                status: http::StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                field: None,
                reason: "too many requests; try again in 1 s".into(),
            }),
        ];
        for a in answers {
            xsd::validate(&schema, &a.body)
                .unwrap_or_else(|e| panic!("{partner}: {e}\n{}", String::from_utf8_lossy(&a.body)));
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
}
