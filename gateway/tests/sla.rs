//! SLA clocks, reminders and escalation, repeat callers, the calendar and statistics.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use contract_tests::samples::random_draft;
use contract_tests::webhook_sim::Behaviour;
use hotline_gateway::sla::scan::Scanner;
use hotline_gateway::store::{AlertKind, AlertQuery, DeliveryStatus};
use hotline_model::EventBody;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

fn scanner(h: &Harness) -> Scanner {
    Scanner {
        store: h.gateway.store.clone(),
        intake: h.gateway.intake.clone(),
        sla: h.gateway.sla.clone(),
        every: Duration::from_secs(3600),
    }
}

async fn dispatched(h: &Harness, external_id: &str) -> (String, Value) {
    let (status, created) = h.post_ticket(external_id).await;
    assert_eq!(status, 201, "{created}");
    h.wait_for_status(
        &first_delivery(&created),
        DeliveryStatus::Acknowledged,
        WAIT,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, clocks) = h.get(&format!("/api/v1/tickets/{id}/clocks")).await;
    (id, clocks)
}

fn clock<'c>(clocks: &'c Value, kind: &str) -> &'c Value {
    clocks
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} clock in {clocks}"))
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn messages(h: &Harness, kind: &str) -> usize {
    h.sim
        .received()
        .iter()
        .filter(|r| r.message_type == kind)
        .count()
}

#[tokio::test]
async fn a_dispatch_starts_receipt_and_reply_clocks_in_working_days() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let (_, clocks) = dispatched(&h, "SLA-1").await;
    let receipt = clock(&clocks, "receipt");
    let reply = clock(&clocks, "reply");
    assert_eq!(
        (receipt["party"].as_str(), reply["party"].as_str()),
        (Some(PARTNER), Some(PARTNER))
    );
    assert_eq!(reply["state"], "running");
    let cal = h.gateway.sla.calendar();
    let started = time(&reply["started_at"]).with_timezone(&hotline_gateway::sla::beijing());
    assert_eq!(time(&reply["due_at"]), cal.add_working_days(started, 5).at);
    if receipt["urgent"] == false {
        assert_eq!(
            time(&receipt["due_at"]),
            cal.add_working_days(started, 1).at
        );
    }
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn reminders_and_escalations_fire_once_even_across_a_restart() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let (id, clocks) = dispatched(&h, "SLA-2").await;
    // The partner signs for it, so only the reply clock runs on.
    let ticket: uuid::Uuid = id.parse().unwrap();
    let receipt = EventBody::Receipt {
        partner_number: None,
        unit: None,
    };
    assert_eq!(
        h.sim.send_event(ticket, "qs-1", &receipt).await.unwrap().0,
        200
    );
    let reply_due = time(&clock(&clocks, "reply")["due_at"]);
    let urge_at = time(&clock(&clocks, "reply")["urge_at"]);

    // Before the urge day: nothing.
    let r = scanner(&h)
        .scan(urge_at - chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!((r.urged, r.supervised), (0, 0));
    // On the day before the deadline: 催办 goes to the partner, once.
    let r = scanner(&h)
        .scan(urge_at + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(r.urged, 1, "{r:?}");
    assert!(
        wait_until(WAIT, || async { (messages(&h, "urge") == 1).then_some(()) })
            .await
            .is_some()
    );
    let r = scanner(&h)
        .scan(urge_at + chrono::Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(r.urged, 0, "urged once only");

    // A restart in between changes nothing.
    let h = h.restart(|_| {}).await;
    let r = scanner(&h)
        .scan(urge_at + chrono::Duration::minutes(3))
        .await
        .unwrap();
    assert_eq!(r.urged, 0);
    // Past the deadline: 督办, once, and the ticket shows it.
    let late = reply_due + chrono::Duration::hours(1);
    let r = scanner(&h).scan(late).await.unwrap();
    assert_eq!(r.supervised, 1, "{r:?}");
    let h = h.restart(|_| {}).await;
    assert_eq!(scanner(&h).scan(late).await.unwrap().supervised, 0);
    assert!(
        wait_until(WAIT, || async {
            (messages(&h, "supervise") == 1).then_some(())
        })
        .await
        .is_some()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((messages(&h, "urge"), messages(&h, "supervise")), (1, 1));

    let (_, clocks) = h.get(&format!("/api/v1/tickets/{id}/clocks")).await;
    let reply = clock(&clocks, "reply");
    assert!(
        !reply["urged_at"].is_null() && !reply["overdue_at"].is_null(),
        "{reply}"
    );
    let (_, alerts) = h.get(&format!("/api/v1/alerts?ticket_id={id}")).await;
    let kinds: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"due_soon") && kinds.contains(&"overdue"),
        "{alerts}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "overdue").count(), 1);

    // Ops acknowledge the overdue alert.
    let overdue = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "overdue")
        .unwrap();
    let (s, acked) = h
        .post_json(
            &format!("/api/v1/alerts/{}/ack", overdue["id"].as_str().unwrap()),
            &json!({"by": "ops-zhang"}),
        )
        .await;
    assert_eq!(s, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], "ops-zhang");
    let (_, open) = h
        .get(&format!("/api/v1/alerts?ticket_id={id}&open=true"))
        .await;
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .all(|a| a["kind"] != "overdue")
    );
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_approved_extension_moves_the_deadline_never_beyond_15_working_days() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let (id, clocks) = dispatched(&h, "SLA-3").await;
    let before = time(&clock(&clocks, "reply")["due_at"]);
    let ticket: uuid::Uuid = id.parse().unwrap();
    // The partner asks for 5 working days; 12348 approves.
    let ask = EventBody::ExtensionRequest {
        working_days: 5,
        reason: "多部门联办".into(),
    };
    let (s, body) = h.sim.send_event(ticket, "ext-1", &ask).await.unwrap();
    assert_eq!(s, 200, "{body}");
    let (s, body) = h
        .post_json(
            &format!("/api/v1/tickets/{id}/actions/approve-extension"),
            &json!({"approved": true, "working_days": 5}),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let (_, clocks) = h.get(&format!("/api/v1/tickets/{id}/clocks")).await;
    let reply = clock(&clocks, "reply");
    let cal = h.gateway.sla.calendar();
    let expected = cal
        .add_working_days(before.with_timezone(&hotline_gateway::sla::beijing()), 5)
        .at;
    assert_eq!(time(&reply["due_at"]), expected);
    assert_eq!(reply["extended_days"], 5);
    // A second request for 10 more gets only the 5 left under the 15-day cap.
    let ask = EventBody::ExtensionRequest {
        working_days: 10,
        reason: "仍需核实".into(),
    };
    h.sim.send_event(ticket, "ext-2", &ask).await.unwrap();
    h.post_json(
        &format!("/api/v1/tickets/{id}/actions/approve-extension"),
        &json!({"approved": true, "working_days": 10}),
    )
    .await;
    let (_, clocks) = h.get(&format!("/api/v1/tickets/{id}/clocks")).await;
    let reply = clock(&clocks, "reply");
    assert_eq!(
        reply["extended_days"], 10,
        "5 + 5: capped at 15 working days in total"
    );
    let started = time(&reply["started_at"]).with_timezone(&hotline_gateway::sla::beijing());
    assert_eq!(time(&reply["due_at"]), cal.add_working_days(started, 15).at);
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_reply_closes_the_clock_met_and_a_return_stops_it() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let (id, _) = dispatched(&h, "SLA-4").await;
    let ticket: uuid::Uuid = id.parse().unwrap();
    h.sim
        .send_event(
            ticket,
            "r-1",
            &EventBody::Receipt {
                partner_number: None,
                unit: None,
            },
        )
        .await
        .unwrap();
    h.sim
        .send_event(
            ticket,
            "b-1",
            &EventBody::Reply {
                content: "已办结".into(),
                unit: None,
            },
        )
        .await
        .unwrap();
    let (_, clocks) = h.get(&format!("/api/v1/tickets/{id}/clocks")).await;
    assert_eq!(clock(&clocks, "receipt")["state"], "met");
    assert_eq!(clock(&clocks, "reply")["state"], "met");

    let (id, _) = dispatched(&h, "SLA-5").await;
    let ticket: uuid::Uuid = id.parse().unwrap();
    h.sim
        .send_event(
            ticket,
            "t-1",
            &EventBody::Return {
                reason: "非本单位职责".into(),
            },
        )
        .await
        .unwrap();
    let (_, clocks) = h.get(&format!("/api/v1/tickets/{id}/clocks")).await;
    assert_eq!(
        clock(&clocks, "reply")["state"],
        "stopped",
        "a return stops the partner's clock"
    );
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_same_caller_three_times_in_30_days_raises_one_alert_without_the_number() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut draft = random_draft();
        draft.caller.phone = if i == 1 {
            "+8613912345678".into()
        } else {
            "13912345678".into()
        };
        let body = json!({"external_id": format!("RC-{i}"), "target": PARTNER, "ticket": draft});
        let (s, created) = h.post_json("/api/v1/tickets", &body).await;
        assert_eq!(s, 201);
        ids.push(created["id"].as_str().unwrap().to_owned());
        let (_, alerts) = h.get("/api/v1/alerts?kind=repeat_caller").await;
        assert_eq!(
            alerts.as_array().unwrap().len(),
            usize::from(i == 2),
            "after {} tickets",
            i + 1
        );
    }
    let (_, alerts) = h.get("/api/v1/alerts?kind=repeat_caller").await;
    let alert = &alerts[0];
    assert_eq!(alert["ticket_id"], ids[2].as_str());
    let linked: Vec<&str> = alert["detail"]["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(linked, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !alert.to_string().contains("13912345678"),
        "no phone number in the alert"
    );
    // Another caller does not count.
    let body = json!({"external_id": "RC-other", "target": PARTNER, "ticket": random_draft()});
    h.post_json("/api/v1/tickets", &body).await;
    let alerts = h
        .gateway
        .store
        .alerts(&AlertQuery {
            kind: Some(AlertKind::RepeatCaller),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_year_without_a_calendar_is_provisional_until_it_is_loaded() {
    // Only 2025 is loaded: every deadline now reaches 2026.
    let cal_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        mappings_dir().join("calendar/2025.toml"),
        cal_dir.path().join("2025.toml"),
    )
    .unwrap();
    let dir = cal_dir.path().to_owned();
    let h = Harness::start_with(Behaviour::Ack, fast_retry(5), |c| {
        c.sla.calendar_dir = dir.clone()
    })
    .await;
    let (id, clocks) = dispatched(&h, "CAL-1").await;
    assert_eq!(clock(&clocks, "reply")["provisional"], true);
    // Raised by this scan or by the gateway's own background scan: either way, once.
    scanner(&h).scan(Utc::now()).await.unwrap();
    let (_, alerts) = h.get("/api/v1/alerts?kind=calendar_missing").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts}");
    assert!(
        alerts[0]["message"].as_str().unwrap().contains("2026"),
        "{alerts}"
    );
    assert_eq!(
        scanner(&h).scan(Utc::now()).await.unwrap().alerts,
        0,
        "raised once"
    );

    // Ops add the 2026 notice and reload: the provisional deadline is computed again.
    std::fs::copy(
        mappings_dir().join("calendar/2026.toml"),
        cal_dir.path().join("2026.toml"),
    )
    .unwrap();
    let (s, body) = h
        .post_json("/api/v1/admin/calendar/reload", &Value::Null)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["years"], json!([2025, 2026]));
    // The reply clock at least (an urgent ticket's receipt hour is never provisional).
    assert!(body["recomputed"].as_u64().unwrap() >= 1, "{body}");
    let (_, clocks) = h.get(&format!("/api/v1/tickets/{id}/clocks")).await;
    let reply = clock(&clocks, "reply");
    assert_eq!(reply["provisional"], false);
    let cal = h.gateway.sla.calendar();
    let started = time(&reply["started_at"]).with_timezone(&hotline_gateway::sla::beijing());
    assert_eq!(time(&reply["due_at"]), cal.add_working_days(started, 5).at);
    // A broken file is refused with its name, and the loaded calendar stays.
    std::fs::write(cal_dir.path().join("2027.toml"), "year = 2027\n").unwrap();
    let (s, body) = h
        .post_json("/api/v1/admin/calendar/reload", &Value::Null)
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("2027.toml"),
        "{body}"
    );
    assert_eq!(
        h.gateway.sla.calendar().years().collect::<Vec<_>>(),
        [2025, 2026]
    );
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn stats_per_partner_as_json_and_csv() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (id, _) = dispatched(&h, &format!("ST-{i}")).await;
        ids.push(id.parse::<uuid::Uuid>().unwrap());
    }
    for (i, t) in ids.iter().take(2).enumerate() {
        h.sim
            .send_event(
                *t,
                &format!("b-{i}"),
                &EventBody::Reply {
                    content: "已办结".into(),
                    unit: None,
                },
            )
            .await
            .unwrap();
    }
    h.post_json(
        &format!("/api/v1/tickets/{}/actions/callback", ids[0]),
        &json!({"satisfaction": "satisfied"}),
    )
    .await;
    h.post_json(
        &format!("/api/v1/tickets/{}/actions/callback", ids[1]),
        &json!({"satisfaction": "unsatisfied"}),
    )
    .await;

    let (s, stats) = h.get(&format!("/api/v1/stats?partner={PARTNER}")).await;
    assert_eq!(s, 200, "{stats}");
    let row = &stats[0];
    assert_eq!(row["party"], PARTNER);
    assert_eq!(
        (row["assigned"].as_u64(), row["replied"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(row["completion_rate"], 0.667);
    assert_eq!(row["on_time_rate"], 1.0);
    assert_eq!(
        row["satisfaction"],
        json!({"satisfied": 1, "unsatisfied": 1})
    );
    assert!(row["avg_hours_to_reply"].as_f64().unwrap() >= 0.0);

    let csv = h
        .http
        .get(format!(
            "{}/api/v1/stats?format=csv&partner={PARTNER}",
            h.base
        ))
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("party,assigned,replied,completion_rate"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("{PARTNER},3,2,0.667,1,")),
        "{text}"
    );
    assert!(lines[1].ends_with(",0,1,0,1,0"), "{text}");
    let (s, body) = h
        .get("/api/v1/stats?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z")
        .await;
    assert_eq!((s, body["field"].as_str()), (422, Some("from")));
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_repeat_is_merged_into_the_open_ticket_on_request() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let (first, _) = dispatched(&h, "MG-1").await;
    let (repeat, _) = dispatched(&h, "MG-2").await;
    let (s, body) = h
        .post_json(
            &format!("/api/v1/tickets/{repeat}/actions/merge"),
            &json!({"into": first}),
        )
        .await;
    assert_eq!(
        (s, body["status"].as_str()),
        (202, Some("merged")),
        "{body}"
    );
    let (_, clocks) = h.get(&format!("/api/v1/tickets/{repeat}/clocks")).await;
    assert!(
        clocks
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "stopped"),
        "{clocks}"
    );
    let (_, timeline) = h.get(&format!("/api/v1/tickets/{repeat}/events")).await;
    assert!(
        timeline.to_string().contains(&first),
        "the merge names the ticket it joined"
    );
    // Merged is final; merging into itself or into a finished ticket is refused.
    let (s, _) = h
        .post_json(
            &format!("/api/v1/tickets/{repeat}/actions/urge"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 409);
    let (s, body) = h
        .post_json(
            &format!("/api/v1/tickets/{first}/actions/merge"),
            &json!({"into": first}),
        )
        .await;
    assert_eq!((s, body["field"].as_str()), (422, Some("into")));
    let (s, body) = h
        .post_json(
            &format!("/api/v1/tickets/{first}/actions/merge"),
            &json!({"into": repeat}),
        )
        .await;
    assert_eq!((s, body["field"].as_str()), (422, Some("into")), "{body}");
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn policies_per_kind_and_per_partner() {
    use hotline_gateway::sla::SlaPolicy;
    use hotline_model::TicketKind;
    let h = Harness::start_with(Behaviour::Ack, fast_retry(5), |c| {
        c.sla.kinds.insert(
            TicketKind::Consultation,
            SlaPolicy {
                reply_days: 2,
                ..SlaPolicy::default()
            },
        );
    })
    .await;
    let cal = h.gateway.sla.calendar();
    for (kind, days) in [(TicketKind::Consultation, 2), (TicketKind::Complaint, 5)] {
        let mut draft = random_draft();
        draft.kind = kind;
        let body =
            json!({"external_id": format!("K-{kind:?}"), "target": PARTNER, "ticket": draft});
        let (_, created) = h.post_json("/api/v1/tickets", &body).await;
        let (_, clocks) = h
            .get(&format!(
                "/api/v1/tickets/{}/clocks",
                created["id"].as_str().unwrap()
            ))
            .await;
        let reply = clock(&clocks, "reply");
        let started = time(&reply["started_at"]).with_timezone(&hotline_gateway::sla::beijing());
        assert_eq!(
            time(&reply["due_at"]),
            cal.add_working_days(started, days).at,
            "{kind:?}"
        );
    }
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn alert_counts_per_party_and_stats_per_unit() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let mut draft = random_draft();
    draft.units = vec!["历下区人社局".into()];
    let (_, created) = h
        .post_json(
            "/api/v1/tickets",
            &json!({"external_id": "U-0", "target": PARTNER, "ticket": draft}),
        )
        .await;
    assert!(created["id"].is_string(), "{created}");
    let (a, _) = dispatched(&h, "U-1").await;
    let (b, _) = dispatched(&h, "U-2").await;
    // A month on, every receipt and reply clock of the three tickets has run out.
    scanner(&h)
        .scan(Utc::now() + chrono::Duration::days(30))
        .await
        .unwrap();
    let (_, summary) = h.get("/api/v1/alerts/summary").await;
    let open: u64 = summary
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "overdue" && c["party"] == PARTNER)
        .map(|c| c["open"].as_u64().unwrap())
        .sum();
    assert_eq!(
        open, 6,
        "receipt and reply for each of 3 tickets: {summary}"
    );
    let by_unit = summary
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "overdue" && c["unit"] == "历下区人社局");
    assert_eq!(
        by_unit.map(|c| c["open"].as_u64()),
        Some(Some(2)),
        "{summary}"
    );

    for (i, t) in [&a, &b].into_iter().enumerate() {
        let unit = if i == 0 {
            "历下区司法局"
        } else {
            "市中区司法局"
        };
        let reply = EventBody::Reply {
            content: "已办结".into(),
            unit: Some(unit.into()),
        };
        h.sim
            .send_event(t.parse().unwrap(), &format!("u-{i}"), &reply)
            .await
            .unwrap();
    }
    h.post_json(
        &format!("/api/v1/tickets/{a}/actions/callback"),
        &json!({"satisfaction": "very_satisfied"}),
    )
    .await;
    let (s, units) = h.get("/api/v1/stats/units").await;
    assert_eq!(s, 200, "{units}");
    assert_eq!(
        units,
        json!([
            {"unit": "历下区司法局", "partner": PARTNER, "replied": 1, "satisfaction": {"very_satisfied": 1}},
            {"unit": "市中区司法局", "partner": PARTNER, "replied": 1, "satisfaction": {}},
        ])
    );
    h.gateway.shutdown().await.unwrap();
}
