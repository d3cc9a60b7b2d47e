//! The HTTP API's contract: bad input gets a clear 4xx naming the field; ops endpoints answer.

mod common;

use std::time::Duration;

use common::*;
use contract_tests::samples::random_draft;
use contract_tests::webhook_sim::Behaviour;
use hotline_model::EventBody;
use serde_json::{Value, json};

async fn post_raw(h: &Harness, body: &str, content_type: &str) -> (u16, Value) {
    let r = h
        .http
        .post(format!("{}/api/v1/tickets", h.base))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn valid() -> Value {
    json!({"external_id": "SD-9", "target": PARTNER, "ticket": random_draft()})
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let h = Harness::start(Behaviour::Ack, fast_retry(3)).await;

    let (status, body) = post_raw(&h, "{\"external_id\": ", "application/json").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "malformed_json");

    let mut missing = valid();
    missing["ticket"].as_object_mut().unwrap().remove("caller");
    let mut wrong_type = valid();
    wrong_type["ticket"]["confidential"] = json!("yes");
    let mut bad_enum = valid();
    bad_enum["ticket"]["kind"] = json!("gossip");
    let mut bad_phone = valid();
    bad_phone["ticket"]["caller"]["phone"] = json!("12345");
    let mut bad_region = valid();
    bad_region["ticket"]["region_code"] = json!("37");
    let mut unknown_target = valid();
    unknown_target["target"] = json!("nobody");
    let mut no_target = valid();
    no_target.as_object_mut().unwrap().remove("target");
    let mut bad_time = valid();
    bad_time["ticket"]["received_at"] = json!("yesterday");
    let cases = [
        (missing, "ticket.caller"),
        (wrong_type, "ticket.confidential"),
        (bad_enum, "ticket.kind"),
        (bad_phone, "ticket.caller.phone"),
        (bad_region, "ticket.region_code"),
        (unknown_target, "target"),
        (no_target, "target"),
        (bad_time, "ticket.received_at"),
    ];
    for (body, field) in cases {
        let (status, answer) = h.post_json("/api/v1/tickets", &body).await;
        assert_eq!(status, 422, "{field}: {answer}");
        assert_eq!(answer["error"], "invalid", "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
        assert_eq!(answer["errors"][0]["field"], field, "{answer}");
        assert!(!answer["errors"][0]["reason"].as_str().unwrap().is_empty());
    }

    // Several problems at once are all reported (一次性告知).
    let mut many = valid();
    many["ticket"]["caller"]["phone"] = json!("1");
    many["ticket"]["title"] = json!("");
    many["target"] = json!("nobody");
    let (status, answer) = h.post_json("/api/v1/tickets", &many).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["target", "ticket.caller.phone", "ticket.title"]);

    let (status, body) = post_raw(&h, &valid().to_string(), "text/plain").await;
    assert_eq!(status, 415, "{body}");

    let huge = json!({"external_id": "SD-10", "target": PARTNER, "ticket": random_draft(),
                      "note": "x".repeat(100 * 1024)});
    let (status, body) = h.post_json("/api/v1/tickets", &huge).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large");

    // Nothing of the refused input was stored, nothing was sent.
    let (_, tickets) = h.get("/api/v1/tickets").await;
    assert_eq!(tickets, json!([]));
    assert!(h.sim.hits().is_empty());
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_things_are_404_with_a_json_body() {
    let h = Harness::start(Behaviour::Ack, fast_retry(3)).await;
    for path in [
        "/api/v1/tickets/0190a0a0-0000-7000-8000-000000000000",
        "/api/v1/tickets/0190a0a0-0000-7000-8000-000000000000/events",
        "/api/v1/deliveries/0190a0a0-0000-7000-8000-000000000000",
        "/api/v1/nothing",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"], "not_found", "{path}: {body}");
    }
    for path in [
        "/api/v1/tickets/not-a-uuid",
        "/api/v1/deliveries?status=lost",
        "/api/v1/tickets?limit=many",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("invalid_"),
            "{path}: {body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    let (status, body) = h.post_json("/partners/nobody/messages", &json!({})).await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("nobody"));
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn partner_tickets_are_stored_once_and_listed_for_the_home_systems() {
    let h = Harness::start(Behaviour::Ack, fast_retry(3)).await;
    let draft = random_draft();
    let (status, first) = h.sim.send_ticket("P1-000123", &draft).await.unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["duplicate"], false);
    let (status, again) = h.sim.send_ticket("P1-000123", &draft).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["ticket_id"], first["ticket_id"]);

    let (_, listed) = h.get(&format!("/api/v1/tickets?origin={PARTNER}")).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["external_id"], "P1-000123");
    assert_eq!(listed[0]["status"], "dispatched", "dispatched to 12348");
    assert_eq!(listed[0]["caller"]["name"], draft.caller.name.as_str());

    // A 签收 from the partner about a ticket we dispatched moves it on, once.
    let (_, created) = h.post_ticket("SD-2001").await;
    let ticket_id = created["id"].as_str().unwrap().parse().unwrap();
    let receipt = EventBody::Receipt {
        partner_number: Some("P1-RCPT-1".into()),
        unit: Some("市人社局".into()),
    };
    let (status, body) = h.sim.send_event(ticket_id, "r-1", &receipt).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, body) = h.sim.send_event(ticket_id, "r-2", &receipt).await.unwrap();
    assert_eq!(
        body["duplicate"], true,
        "a second receipt for the same ticket is a repeat"
    );
    let (_, ticket) = h.get(&format!("/api/v1/tickets/{ticket_id}")).await;
    assert_eq!(ticket["status"], "receipted");
    let (_, timeline) = h.get(&format!("/api/v1/tickets/{ticket_id}/events")).await;
    let receipts = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entry"] == "event" && e["event"]["kind"] == "receipt")
        .count();
    assert_eq!(receipts, 1);

    // An event about a ticket nobody knows is refused in the partner's dialect.
    let (status, body) = h
        .sim
        .send_event(
            "0190a0a0-0000-7000-8000-000000000000".parse().unwrap(),
            "r-3",
            &receipt,
        )
        .await
        .unwrap();
    assert_eq!(status, 404);
    assert_eq!(body["ok"], false);
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn unsigned_or_forged_partner_messages_are_refused() {
    let h = Harness::start(Behaviour::Ack, fast_retry(3)).await;
    let body = json!({"type": "ticket", "partner_number": "X-1", "ticket": random_draft()});
    let r = h
        .http
        .post(format!("{}/partners/{PARTNER}/messages", h.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["code"], "bad_signature");
    let (_, tickets) = h.get("/api/v1/tickets").await;
    assert_eq!(tickets, json!([]));
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn ops_endpoints_and_the_generated_openapi_document() {
    let h = Harness::start(Behaviour::Ack, fast_retry(3)).await;
    let health = h
        .http
        .get(format!("{}/healthz", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready = h
        .http
        .get(format!("{}/readyz", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    let (_, created) = h.post_ticket("SD-3001").await;
    h.wait_for_status(
        &first_delivery(&created),
        hotline_gateway::store::DeliveryStatus::Acknowledged,
        Duration::from_secs(10),
    )
    .await;
    let metrics = h.metrics().await;
    for needle in [
        "hotline_delivery_attempts_total{partner=\"p1\",outcome=\"acknowledged\"}",
        "hotline_deliveries{partner=\"p1\",status=\"acknowledged\"} 1",
        "hotline_delivery_attempt_duration_seconds_bucket",
        "hotline_oldest_pending_age_seconds{partner=\"p1\"}",
        "hotline_delivery_ack_latency_seconds_bucket",
        "hotline_partner_paused{partner=\"p1\"} 0",
        "hotline_alerts_open{kind=\"overdue\"}",
        "hotline_alerts_open{kind=\"partner_down\"}",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }

    let (status, doc) = h.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/tickets",
        "/api/v1/tickets/{id}",
        "/api/v1/tickets/{id}/events",
        "/api/v1/deliveries",
        "/api/v1/deliveries/{id}",
        "/api/v1/deliveries/{id}/retry",
        "/api/v1/tickets/{id}/actions/{action}",
        "/api/v1/tickets/{id}/clocks",
        "/api/v1/alerts",
        "/api/v1/alerts/summary",
        "/api/v1/alerts/{id}/ack",
        "/api/v1/stats",
        "/api/v1/stats/units",
        "/api/v1/admin/calendar/reload",
        "/api/v1/transfers",
        "/api/v1/transfers/{id}",
        "/api/v1/transfers/{id}/events",
        "/api/v1/stats/transfers",
        "/api/v1/partners",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    assert!(paths["/api/v1/tickets"]["post"]["responses"]["422"].is_object());
    assert!(doc["components"]["schemas"]["TicketDraft"].is_object());
    assert!(paths["/api/v1/transfers/{id}/events"]["post"]["responses"]["409"].is_object());
    assert!(doc["components"]["schemas"]["TransferState"].is_object());
    assert_eq!(
        doc,
        serde_json::to_value(hotline_gateway::api::openapi()).unwrap()
    );
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_partner_over_its_inbound_rate_gets_429_with_retry_after_in_its_dialect() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), |c| {
        if let Some(p) = c.partners.get_mut(PARTNER) {
            p.inbound_rate = Some(2);
            p.inbound_burst = Some(2);
        }
    })
    .await;
    let url = format!("{}/partners/{PARTNER}/messages", h.base);
    let mut answers = Vec::new();
    for _ in 0..5 {
        let r = h.http.post(&url).body("{}").send().await.unwrap();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        answers.push((status, retry_after, body));
    }
    // The burst passes on to the signature check (and fails it); the rest are turned away.
    assert_eq!(answers[0].0, 401, "{answers:?}");
    assert_eq!(answers[1].0, 401, "{answers:?}");
    for (status, retry_after, body) in &answers[2..] {
        assert_eq!(*status, 429, "{answers:?}");
        assert!(retry_after.is_some_and(|s| s >= 1), "{answers:?}");
        // The generic partner's dialect: its JSON error body.
        assert_eq!(body["code"], "rate_limited", "{body}");
    }
    // A second later there is room again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = h.http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    h.gateway.shutdown().await.unwrap();
}

/// The Grafana dashboard in `deploy/` asks only for metrics (and labels) the gateway exports.
#[test]
fn the_grafana_dashboard_uses_exported_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("../deploy/grafana/hotline-gateway.json")).unwrap(),
    )
    .unwrap();
    let mut sources = String::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut checked = 0;
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                let Some(name) = word.strip_prefix("hotline_") else {
                    continue;
                };
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                assert!(
                    sources.contains(&format!("\"hotline_{base}\"")),
                    "{} asks for hotline_{base}, which the gateway does not export",
                    panel["title"]
                );
                checked += 1;
            }
            if let Some(by) = expr.split("by (").nth(1) {
                for label in by.split(')').next().unwrap().split(',').map(str::trim) {
                    if label != "le" {
                        assert!(
                            sources.contains(&format!("\"{label}\" =>")),
                            "{}: no metric has the label {label}",
                            panel["title"]
                        );
                    }
                }
            }
        }
    }
    assert!(checked >= 15, "{checked} metric references");
}
