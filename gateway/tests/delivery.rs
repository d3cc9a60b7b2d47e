//! The delivery engine against a partner simulator over real HTTP.

mod common;

use std::time::Duration;

use common::*;
use contract_tests::webhook_sim::Behaviour;
use hotline_gateway::store::DeliveryStatus;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_posted_ticket_is_delivered_signed_and_acknowledged() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let (status, created) = h.post_ticket("SD-0001").await;
    assert_eq!(status, 201, "{created}");
    let ticket_id = created["id"].as_str().unwrap().to_owned();
    let d = h
        .wait_for_status(
            &first_delivery(&created),
            DeliveryStatus::Acknowledged,
            WAIT,
        )
        .await;

    // The simulator verified the Standard Webhooks signature and took the message once.
    let received = h.sim.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.message_type, "dispatch");
    assert_eq!(r.message_id, d.message_id.to_string());
    assert_eq!(r.envelope["ticket"]["id"], ticket_id.as_str());
    assert_eq!(r.envelope["ticket"]["external_id"], "SD-0001");
    assert!(h.sim.hits().iter().all(|hit| hit.status == 200));

    // The partner's receipt number is kept on the delivery and the ticket.
    assert_eq!(d.partner_ref.as_deref(), Some(r.partner_number.as_str()));
    assert_eq!(d.attempts, 1);
    let (_, ticket) = h.get(&format!("/api/v1/tickets/{ticket_id}")).await;
    assert_eq!(ticket["status"], "dispatched");
    assert_eq!(
        ticket["partner_numbers"][PARTNER],
        r.partner_number.as_str()
    );
    assert_eq!(ticket["partner_numbers"]["12348"], "SD-0001");

    // The timeline shows the dispatch, the attempt and the acknowledgement, in order.
    let (_, timeline) = h.get(&format!("/api/v1/tickets/{ticket_id}/events")).await;
    let kinds: Vec<&str> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["event", "attempt", "acknowledged"], "{timeline}");
    let attempt = &timeline["entries"][1]["attempt"];
    assert_eq!(attempt["http_status"], 200);
    assert_eq!(attempt["outcome"], "acknowledged");
    assert_eq!(attempt["number"], 1);
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_partner_failing_n_times_gets_one_delivery_after_n_plus_1_attempts_with_growing_gaps() {
    const N: u32 = 4;
    let h = Harness::start(
        Behaviour::FailTimes {
            times: N,
            status: 503,
        },
        fast_retry(8),
    )
    .await;
    let (_, created) = h.post_ticket("SD-0002").await;
    let d = h
        .wait_for_status(
            &first_delivery(&created),
            DeliveryStatus::Acknowledged,
            WAIT,
        )
        .await;
    assert_eq!(d.attempts, N + 1);
    assert_eq!(h.sim.received().len(), 1, "exactly one message taken");

    let hits = h.sim.hits();
    let statuses: Vec<u16> = hits.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [503, 503, 503, 503, 200]);
    assert!(
        hits.iter()
            .all(|hit| hit.message_id == d.message_id.to_string()),
        "same message id every time"
    );
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (i, gap) in gaps.iter().enumerate() {
        // The i-th retry waits at least 100 ms × 2^i (jitter only adds).
        let floor = Duration::from_millis(100 * 2u64.pow(i as u32));
        assert!(
            *gap >= floor,
            "gap {i} is {gap:?}, below {floor:?}: {gaps:?}"
        );
    }
    // Jitter and a busy machine blur neighbours; across the schedule the growth is plain.
    assert!(gaps[gaps.len() - 1] > gaps[0], "gaps grow: {gaps:?}");

    let (_, timeline) = h
        .get(&format!(
            "/api/v1/tickets/{}/events",
            created["id"].as_str().unwrap()
        ))
        .await;
    let attempts: Vec<&Value> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entry"] == "attempt")
        .map(|e| &e["attempt"])
        .collect();
    assert_eq!(attempts.len(), 5);
    for (i, a) in attempts.iter().enumerate() {
        assert_eq!(a["number"], i + 1);
        if i < 4 {
            assert_eq!(a["outcome"], "retryable");
            assert_eq!(a["http_status"], 503);
            assert!(a["error"].as_str().unwrap().contains("503"));
        } else {
            assert_eq!(a["outcome"], "acknowledged");
        }
    }
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_partner_that_always_fails_ends_dead_and_retry_revives_it() {
    let h = Harness::start(Behaviour::Fail { status: 500 }, fast_retry(3)).await;
    let (_, created) = h.post_ticket("SD-0003").await;
    let id = first_delivery(&created);
    let d = h.wait_for_status(&id, DeliveryStatus::Dead, WAIT).await;
    assert_eq!(d.attempts, 3);
    assert!(
        d.last_error
            .as_deref()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{d:?}"
    );

    let (status, dead) = h.get("/api/v1/deliveries?status=dead").await;
    assert_eq!(status, 200);
    assert_eq!(dead.as_array().unwrap().len(), 1);
    assert_eq!(dead[0]["id"], id.as_str());

    // Still dead after a while: nothing is retried behind ops' back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.sim.hits().len(), 3);

    h.sim.set_behaviour(Behaviour::Ack);
    let (status, body) = h
        .post_json(&format!("/api/v1/deliveries/{id}/retry"), &Value::Null)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    let d = h
        .wait_for_status(&id, DeliveryStatus::Acknowledged, WAIT)
        .await;
    assert_eq!(d.attempts, 4);
    assert_eq!(d.attempts_this_round, 1);
    assert_eq!(h.sim.received().len(), 1);

    let (status, body) = h
        .post_json(&format!("/api/v1/deliveries/{id}/retry"), &Value::Null)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "not_dead");
    let (status, _) = h
        .post_json(
            "/api/v1/deliveries/0190a0a0-0000-7000-8000-000000000000/retry",
            &Value::Null,
        )
        .await;
    assert_eq!(status, 404);
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    // Pointing back at itself: a client that followed would hit it again and again.
    h.sim.set_behaviour(Behaviour::Redirect { to: h.sim.url() });
    let (_, created) = h.post_ticket("SD-0009").await;
    let d = h
        .wait_for_status(&first_delivery(&created), DeliveryStatus::Dead, WAIT)
        .await;
    assert_eq!(d.attempts, 1);
    assert!(
        d.last_error.as_deref().unwrap_or_default().contains("307"),
        "{d:?}"
    );
    assert_eq!(h.sim.hits().len(), 1, "the redirect was not followed");
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_permanent_refusal_is_dead_at_once() {
    let h = Harness::start(Behaviour::Fail { status: 400 }, fast_retry(5)).await;
    let (_, created) = h.post_ticket("SD-0004").await;
    let d = h
        .wait_for_status(&first_delivery(&created), DeliveryStatus::Dead, WAIT)
        .await;
    assert_eq!(d.attempts, 1);
    assert!(d.last_error.unwrap().contains("400"));
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn retry_after_from_a_429_is_honoured() {
    let h = Harness::start(Behaviour::RetryAfter { times: 1, secs: 1 }, fast_retry(5)).await;
    let (_, created) = h.post_ticket("SD-0005").await;
    h.wait_for_status(
        &first_delivery(&created),
        DeliveryStatus::Acknowledged,
        WAIT,
    )
    .await;
    let hits = h.sim.hits();
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        [429, 200]
    );
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_malformed_acknowledgement_is_retried_not_ignored() {
    let h = Harness::start(Behaviour::Malformed, fast_retry(5)).await;
    let (_, created) = h.post_ticket("SD-0006").await;
    let id = first_delivery(&created);
    let d = h.wait_for_status(&id, DeliveryStatus::Retrying, WAIT).await;
    assert!(d.last_error.unwrap().contains("malformed acknowledgement"));
    h.sim.set_behaviour(Behaviour::Ack);
    h.wait_for_status(&id, DeliveryStatus::Acknowledged, WAIT)
        .await;
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_late_acknowledgement_completes_the_delivery() {
    let h = Harness::start(
        Behaviour::Async {
            delay: Duration::from_millis(300),
        },
        fast_retry(5),
    )
    .await;
    let (_, created) = h.post_ticket("SD-0007").await;
    let id = first_delivery(&created);
    let waiting = h
        .wait_for_status(&id, DeliveryStatus::AwaitingAck, WAIT)
        .await;
    assert_eq!(waiting.partner_ref, None);
    let d = h
        .wait_for_status(&id, DeliveryStatus::Acknowledged, WAIT)
        .await;
    let number = &h.sim.received()[0].partner_number;
    assert_eq!(d.partner_ref.as_ref(), Some(number));
    assert_eq!(d.attempts, 1, "no resend while the ack was on its way");
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_repeated_external_id_creates_no_second_ticket() {
    let h = Harness::start(Behaviour::Ack, fast_retry(5)).await;
    let (s1, first) = h.post_ticket("SD-0008").await;
    let (s2, again) = h.post_ticket("SD-0008").await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["id"], again["id"]);
    assert_eq!(again["duplicate"], true);
    h.wait_for_status(&first_delivery(&first), DeliveryStatus::Acknowledged, WAIT)
        .await;
    let (_, tickets) = h.get("/api/v1/tickets?origin=12348").await;
    assert_eq!(tickets.as_array().unwrap().len(), 1);
    let (_, deliveries) = h.get("/api/v1/deliveries").await;
    assert_eq!(deliveries.as_array().unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.sim.hits().len(), 1);
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn many_tickets_are_delivered_in_parallel_each_once() {
    let h = Harness::start(Behaviour::Flaky { percent: 30 }, fast_retry(10)).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let (status, created) = h.post_ticket(&format!("SD-1{i:03}")).await;
        assert_eq!(status, 201);
        ids.push(first_delivery(&created));
    }
    for id in &ids {
        h.wait_for_status(id, DeliveryStatus::Acknowledged, WAIT)
            .await;
    }
    let received = h.sim.received();
    assert_eq!(received.len(), 40);
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_dead_partner_trips_the_breaker_and_its_recovery_releases_the_backlog() {
    // Retries far apart: only the breaker's release can bring them back within the test.
    let slow = hotline_gateway::config::RetryConfig {
        min_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(600),
        factor: 2.0,
        max_attempts: 10,
        jitter: false,
    };
    let h = Harness::start_with(Behaviour::Fail { status: 503 }, slow, |c| {
        if let Some(p) = c.partners.get_mut(PARTNER) {
            p.breaker = hotline_gateway::config::BreakerConfig {
                failures: 3,
                cooldown: Duration::from_millis(700),
                max_cooldown: Duration::from_secs(3),
            };
        }
    })
    .await;
    for i in 0..6 {
        let (status, body) = h.post_ticket(&format!("BR-{i}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let circuit = || async {
        let (_, partners) = h.get("/api/v1/partners").await;
        partners[0]["circuit"].clone()
    };
    let opened = wait_until(WAIT, || async {
        let c = circuit().await;
        (c["state"] == "open").then_some(c)
    })
    .await
    .expect("the breaker opens");
    assert!(opened["failures"].as_u64().unwrap() >= 3, "{opened}");
    // Ops hear of it: a partner-down alert names the partner.
    let (_, alerts) = h.get("/api/v1/alerts?kind=partner_down").await;
    let alerts = alerts.as_array().expect("alert list");
    assert!(!alerts.is_empty(), "a partner-down alert is raised");
    assert_eq!(alerts[0]["party"], PARTNER);
    assert!(
        alerts[0]["message"]
            .as_str()
            .unwrap()
            .contains("deliveries paused")
    );
    // While open, nothing goes to the partner (a failed probe may reopen it; no more than one).
    let hits = h.sim.hits().len();
    assert!((3..=6).contains(&hits), "{hits} attempts before it opened");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.sim.hits().len(), hits, "attempts while open");

    // The partner comes back: the probe gets through, the breaker closes, and the tickets that
    // were waiting a minute for their retry go at once.
    h.sim.set_behaviour(Behaviour::Ack);
    let all = wait_until(Duration::from_secs(8), || async {
        (h.sim.received().len() == 6).then_some(())
    })
    .await;
    assert!(
        all.is_some(),
        "only {} of 6 delivered",
        h.sim.received().len()
    );
    let c = circuit().await;
    assert_eq!(c["state"], "closed", "{c}");
    assert_eq!(c["failures"], 0, "{c}");
    assert!(c["opened"].as_u64().unwrap() >= 1, "{c}");
    h.gateway.shutdown().await.unwrap();
}

#[tokio::test]
async fn outbound_pacing_spaces_deliveries_evenly() {
    let h = Harness::start_with(Behaviour::Ack, fast_retry(3), |c| {
        if let Some(p) = c.partners.get_mut(PARTNER) {
            p.outbound_rate = Some(10);
        }
    })
    .await;
    for i in 0..6 {
        let (status, body) = h.post_ticket(&format!("PACE-{i}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let all = wait_until(WAIT, || async {
        let hits = h.sim.hits();
        (hits.len() >= 6).then_some(hits)
    })
    .await
    .expect("all six delivered");
    // Ten a second, one at a time: six deliveries take at least half a second, every gap ≥ ~0.1 s.
    let span = all[5].at - all[0].at;
    assert!(span >= Duration::from_millis(450), "span {span:?}");
    for w in all.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(80),
            "gap {:?}",
            w[1].at - w[0].at
        );
    }
    h.gateway.shutdown().await.unwrap();
}

/// Slow partner (a second per delivery), one slot: six tickets posted; their delivery ids.
/// One goes out at a time and up to four wait claimed ahead, so what a test does next has a few
/// seconds before nothing is left ahead, even on a slow machine.
async fn slow_partner_with_six_tickets(prefix: &str) -> (Harness, Vec<String>) {
    let slow = Behaviour::Slow {
        delay: Duration::from_millis(1000),
    };
    let h = Harness::start_with(slow, fast_retry(5), |c| {
        if let Some(p) = c.partners.get_mut(PARTNER) {
            p.concurrency = 1;
        }
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let (status, created) = h.post_ticket(&format!("{prefix}{i:03}")).await;
        assert_eq!(status, 201, "{created}");
        ids.push(first_delivery(&created));
    }
    (h, ids)
}

/// Waits until several of `ids` are claimed at once: one in flight at the slow partner, the
/// others ahead (the lookahead is a multiple of the concurrency, 1 here); those claimed.
async fn claimed_ahead(h: &Harness, ids: &[String]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut sending = Vec::new();
        for id in ids {
            if h.delivery(id).await.status == DeliveryStatus::Sending {
                sending.push(id.clone());
            }
        }
        if sending.len() >= 2 {
            return sending;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never claimed ahead"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker claims as many deliveries ahead as may be in flight, so a slot coming free sends
/// the next at once. When the gateway stops, what it claimed ahead and never sent is given
/// back: due at once, its attempt uncounted, no lease; the next start sends it.
#[tokio::test]
async fn deliveries_claimed_ahead_are_given_back_when_the_gateway_stops() {
    let (h, ids) = slow_partner_with_six_tickets("SD-7").await;
    let claimed = claimed_ahead(&h, &ids).await;
    let h = h
        .restart(|c| {
            // Started again with no partner worker at all, to see what the stop left.
            c.partners.clear();
            c.routes.clear();
        })
        .await;
    // What was in flight finished before the stop (on a slow machine a slot may have come
    // free once more before it, sending one more); what was still ahead was given back, unsent:
    // pending, its attempt uncounted, due again at once, not when its lease would have run out.
    let mut given_back = 0;
    for id in &claimed {
        let d = h.delivery(id).await;
        let state = (d.status, d.attempts);
        match state {
            (DeliveryStatus::Acknowledged, 1) => {}
            (DeliveryStatus::Pending, 0) if d.due_at <= chrono::Utc::now() => given_back += 1,
            _ => panic!("{id}: {state:?} due {} among {claimed:?}", d.due_at),
        }
    }
    assert!(
        given_back >= 1,
        "nothing was left ahead at the stop: {claimed:?}"
    );
    let acknowledged = {
        let mut n = 0;
        for id in &ids {
            if h.delivery(id).await.status == DeliveryStatus::Acknowledged {
                n += 1;
            }
        }
        n
    };
    assert_eq!(h.sim.received().len(), acknowledged, "only those were sent");
    h.gateway.shutdown().await.unwrap();
}

/// Pausing a partner gives back what its worker claimed ahead: those deliveries wait as
/// `pending`, not `sending`, until ops resume it; then they go out.
#[tokio::test]
async fn pausing_a_partner_gives_back_what_was_claimed_ahead() {
    let (h, ids) = slow_partner_with_six_tickets("SD-8").await;
    let claimed = claimed_ahead(&h, &ids).await;
    let pause = hotline_gateway::store::Pause {
        partner: PARTNER.into(),
        since: chrono::Utc::now(),
        by: "test".into(),
        reason: "维护 maintenance".into(),
    };
    assert!(h.gateway.engine.pause(pause).await.unwrap());
    // The one in flight finishes; those claimed ahead wait unsent and unclaimed.
    let deadline = tokio::time::Instant::now() + WAIT;
    let statuses = loop {
        let mut statuses = Vec::new();
        for id in &claimed {
            statuses.push(h.delivery(id).await.status);
        }
        if !statuses.contains(&DeliveryStatus::Sending) {
            break statuses;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {statuses:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Each was either sent before the pause took hold or is waiting, unclaimed.
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, DeliveryStatus::Acknowledged | DeliveryStatus::Pending)),
        "{statuses:?} for {claimed:?}"
    );
    assert!(statuses.contains(&DeliveryStatus::Pending), "{statuses:?}");
    // Still nothing goes out while paused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut acknowledged = 0;
    for id in &ids {
        if h.delivery(id).await.status == DeliveryStatus::Acknowledged {
            acknowledged += 1;
        }
    }
    assert_eq!(h.sim.received().len(), acknowledged);
    assert!(acknowledged < ids.len());
    h.gateway.engine.resume(PARTNER).await.unwrap();
    for id in &ids {
        h.wait_for_status(id, DeliveryStatus::Acknowledged, WAIT)
            .await;
    }
    assert_eq!(h.sim.received().len(), ids.len(), "each sent once");
    h.gateway.shutdown().await.unwrap();
}

/// A new ticket's delivery can be written already claimed and handed straight to its worker:
/// with nothing else to make the worker look (no wake, polling once an hour), it goes out.
#[tokio::test]
async fn a_delivery_handed_to_its_worker_goes_out_without_a_claim() {
    use hotline_gateway::store::Accepted;

    let h = Harness::start_with(Behaviour::Ack, fast_retry(5), |c| {
        c.delivery.poll_interval = Duration::from_secs(3600);
    })
    .await;
    // Through the intake: the ticket's target takes it from the hand-off.
    let (status, created) = h.post_ticket("SD-H001").await;
    assert_eq!(status, 201, "{created}");
    let first = first_delivery(&created);
    h.wait_for_status(&first, DeliveryStatus::Acknowledged, WAIT)
        .await;

    // The same, step by step.
    let (handoff, reserved) = h
        .gateway
        .engine
        .reserve_handoff(&[PARTNER.to_owned()])
        .expect("the worker has room");
    let mut cmd = store_new_ticket("SD-H002");
    cmd.handoff = Some(handoff.clone());
    let accepted = h.gateway.store.accept_ticket(cmd).await.unwrap();
    let Accepted::Created {
        deliveries, claims, ..
    } = accepted
    else {
        panic!("a new ticket")
    };
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].token.lease_token, handoff.lease_token);
    let written = h.delivery(&deliveries[0].to_string()).await;
    assert_eq!(written.status, DeliveryStatus::Sending);
    assert_eq!(written.attempts, 1);
    assert_eq!(
        written.due_at.timestamp_millis(),
        handoff.lease_until.timestamp_millis()
    );
    reserved.hand_over(claims);
    let d = h
        .wait_for_status(
            &deliveries[0].to_string(),
            DeliveryStatus::Acknowledged,
            WAIT,
        )
        .await;
    assert_eq!(d.attempts, 1);
    assert_eq!(h.sim.received().len(), 2);
    h.gateway.shutdown().await.unwrap();
}

/// A stopping worker waits for hand-overs reserved before it stopped: one whose write commits
/// meanwhile is given back (due again at once), not left claimed until its lease runs out.
#[tokio::test]
async fn a_hand_off_arriving_while_its_worker_stops_is_given_back() {
    use hotline_gateway::store::Accepted;

    let h = Harness::start_with(Behaviour::Ack, fast_retry(5), |c| {
        c.delivery.poll_interval = Duration::from_secs(3600);
    })
    .await;
    // Once the worker runs, it takes hand-offs.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (handoff, reserved) = loop {
        if let Some(room) = h.gateway.engine.reserve_handoff(&[PARTNER.to_owned()]) {
            break room;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker has room"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut cmd = store_new_ticket("SD-H003");
    cmd.handoff = Some(handoff);
    let store = std::sync::Arc::clone(&h.gateway.store);
    let Accepted::Created {
        deliveries, claims, ..
    } = store.accept_ticket(cmd).await.unwrap()
    else {
        panic!("a new ticket")
    };
    // The worker stops while the committed claim is still on its way to it.
    let stopping = tokio::spawn(h.gateway.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = chrono::Utc::now();
    reserved.hand_over(claims);
    stopping.await.unwrap().unwrap();
    let d = store.delivery(deliveries[0]).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.attempts),
        (DeliveryStatus::Pending, 0),
        "given back, not left claimed until its lease runs out"
    );
    assert!(d.due_at <= chrono::Utc::now() && d.due_at >= before - chrono::Duration::seconds(1));
    assert!(h.sim.received().is_empty());
}
