use std::time::Duration;

use bytes::Bytes;
use hotline_model::{Caller, Event, EventBody, Ticket, TicketDraft, TicketKind, Urgency};
use http::{HeaderMap, Method, StatusCode};
use standardwebhooks::Webhook;
use uuid::Uuid;

use super::*;

const OUR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const THEIR_SECRET: &str = "whsec_dGhlaXItc2VjcmV0LWZvci10ZXN0aW5nIQ==";

fn adapter() -> WebhookAdapter {
    WebhookAdapter::new(WebhookSettings {
        partner: "demo".into(),
        url: "http://127.0.0.1:9/inbox".into(),
        signing_secret: OUR_SECRET.into(),
        verify_secret: THEIR_SECRET.into(),
        timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(300),
        tls: None,
    })
    .unwrap()
}

fn draft() -> TicketDraft {
    TicketDraft {
        kind: TicketKind::Complaint,
        urgency: Urgency::Urgent,
        caller: Caller {
            name: "李四".into(),
            phone: "13912345678".into(),
            id_number: None,
        },
        confidential: false,
        region_code: "370102".into(),
        address: Some("济南市历下区".into()),
        classification_code: None,
        title: "拖欠工资".into(),
        content: "工地拖欠三个月工资".into(),
        remarks: None,
        received_at: "2026-11-23T10:00:00+08:00".parse().unwrap(),
        units: vec![],
        channel: None,
        transcript: Vec::new(),
    }
}

fn message() -> OutboundMessage {
    let ticket = Ticket::new("12348", Some("SD-1".into()), draft());
    let event = Event::new(
        ticket.id,
        "12348",
        EventBody::Dispatch {
            units: vec![],
            note: None,
        },
    );
    OutboundMessage {
        message_id: Uuid::now_v7(),
        ticket,
        event,
    }
}

fn response(status: u16, body: &'static str) -> WireResponse {
    WireResponse {
        status: StatusCode::from_u16(status).unwrap(),
        headers: HeaderMap::new(),
        body: Bytes::from_static(body.as_bytes()),
    }
}

fn signed_inbound(secret: &str, body: &str) -> InboundRequest {
    let id = "msg_partner_1";
    let ts = chrono::Utc::now().timestamp();
    let sig = Webhook::new(secret)
        .unwrap()
        .sign(id, ts, body.as_bytes())
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", id.parse().unwrap());
    headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    headers.insert("webhook-signature", sig.parse().unwrap());
    InboundRequest {
        method: Method::POST,
        path: "messages".into(),
        headers,
        body: Bytes::from(body.to_owned()),
    }
}

#[test]
fn deliveries_verify_with_a_standard_webhooks_library() {
    let msg = message();
    let req = adapter().encode(&msg).unwrap();
    assert_eq!(
        req.headers["webhook-id"],
        msg.message_id.to_string().as_str()
    );
    Webhook::new(OUR_SECRET)
        .unwrap()
        .verify(&req.body, &req.headers)
        .expect("signature verifies");
    assert!(
        Webhook::new(THEIR_SECRET)
            .unwrap()
            .verify(&req.body, &req.headers)
            .is_err(),
        "a different key must not verify"
    );
    let env: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(env["type"], "dispatch");
    assert_eq!(env["message_id"], msg.message_id.to_string());
    assert_eq!(env["ticket"]["kind"], "complaint");
    assert_eq!(env["ticket"]["urgency"], "urgent");
    assert_eq!(env["ticket"]["caller"]["phone"], "13912345678");
    assert_eq!(env["event"]["kind"], "dispatch");
}

#[test]
fn answers_are_classified() {
    let a = adapter();
    assert_eq!(
        a.classify(&response(200, r#"{"partner_ticket_number":"P-9"}"#)),
        Outcome::Acknowledged {
            partner_ref: Some("P-9".into())
        }
    );
    assert_eq!(
        a.classify(&response(204, "")),
        Outcome::Acknowledged { partner_ref: None }
    );
    assert_eq!(
        a.classify(&response(202, "")),
        Outcome::AwaitingAck {
            within: Duration::from_secs(300)
        }
    );
    assert!(matches!(
        a.classify(&response(200, "<html>")),
        Outcome::Retryable { reason, .. } if reason.contains("malformed acknowledgement")
    ));
    assert!(matches!(
        a.classify(&response(503, "")),
        Outcome::Retryable { .. }
    ));
    assert!(matches!(
        a.classify(&response(400, "bad")),
        Outcome::Permanent { .. }
    ));
}

#[test]
fn inbound_ticket_is_decoded_after_the_signature_is_checked() {
    let body = serde_json::json!({
        "type": "ticket", "message_id": "m-1", "partner_number": "P-100",
        "ticket": serde_json::to_value(draft()).unwrap(),
    })
    .to_string();
    let got = adapter()
        .decode(&signed_inbound(THEIR_SECRET, &body))
        .unwrap();
    assert_eq!(
        got,
        Inbound::Ticket {
            message_id: Some("m-1".into()),
            partner_number: "P-100".into(),
            draft: Box::new(draft())
        }
    );
    let err = adapter()
        .decode(&signed_inbound(OUR_SECRET, &body))
        .unwrap_err();
    assert_eq!(err.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn inbound_errors_name_the_field() {
    let a = adapter();
    let cases = [
        ("{not json", StatusCode::BAD_REQUEST, None),
        (
            r#"{"type":"ticket","partner_number":"P"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("ticket"),
        ),
        (
            r#"{"type":"ticket","partner_number":"P","ticket":{"kind":"gossip"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("ticket.kind"),
        ),
        (
            r#"{"type":"event","event":{"kind":"urge"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("ticket_id"),
        ),
        (
            r#"{"type":"ack","message_id":"nope"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("message_id"),
        ),
        (
            r#"{"type":"teleport"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("type"),
        ),
    ];
    for (body, status, field) in cases {
        let err = a.decode(&signed_inbound(THEIR_SECRET, body)).unwrap_err();
        assert_eq!(err.status, status, "{body}: {err}");
        assert_eq!(err.field.as_deref(), field, "{body}: {err}");
        let wire = a.reject(&err);
        let v: serde_json::Value = serde_json::from_slice(&wire.body).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(wire.status, status);
    }
    let mut bad_phone = serde_json::to_value(draft()).unwrap();
    bad_phone["caller"]["phone"] = "123".into();
    let body =
        serde_json::json!({"type":"ticket","partner_number":"P","ticket":bad_phone}).to_string();
    let err = a.decode(&signed_inbound(THEIR_SECRET, &body)).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("ticket.caller.phone"));
}
