//! Behaviour every `Store` implementation must show. Each check takes a fresh, empty store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contract_tests::samples::random_draft;
use hotline_gateway::store::*;
use hotline_gateway::transfer::machine::TransferState;
use hotline_gateway::transfer::record::{Direction, EntryOutcome};
use hotline_model::{Event, EventBody, HOME, TicketStatus};
use uuid::Uuid;

#[path = "../common/tickets.rs"]
mod tickets;
pub use tickets::new_ticket;

pub const P: &str = "p1";

/// Calls `$m!` with the name of every check below: each engine's test file turns them into
/// tests, so no engine can skip one.
macro_rules! every_check {
    ($m:ident) => {
        $m!(
            accept_is_idempotent,
            concurrent_accepts_all_commit,
            one_ticket_goes_in_order_many_go_in_parallel,
            expired_leases_come_back_and_stale_holders_lose,
            handed_off_deliveries_are_written_claimed,
            retries_wait_for_their_time_and_dead_letters_wait_for_ops,
            late_acks_complete_deliveries_and_win_races,
            events_on_unknown_tickets_are_refused_and_statuses_move,
            transfers_change_only_from_the_version_they_were_read_at,
            a_partner_offering_the_same_transfer_twice_gets_the_first,
            transfers_with_work_to_do_are_found,
            released_retries_fall_due_at_once,
            deliveries_are_found_by_any_number_type_and_time,
            the_audit_log_is_a_hash_chain,
            pauses_are_kept_until_resumed,
            clocks_alerts_refusals_and_cursors_round_trip,
            a_clock_wakes_at_its_deadline_when_that_comes_before_its_urge_time,
            a_job_lease_has_one_holder_until_it_runs_out,
            a_claim_is_found_by_its_token_while_it_holds,
            claims_never_sent_are_given_back,
            accepts_report_the_callers_tickets,
            a_nonce_is_taken_once_until_it_expires,
            a_new_tickets_nonce_is_taken_with_it,
            an_accept_that_fails_keeps_no_nonce,
            ended_tickets_lose_personal_data_once_retention_passes,
            ended_transfers_lose_the_callers_data_once_retention_passes,
            case_updates_are_kept_once_and_cases_save_from_their_version,
        );
    };
}
pub(crate) use every_check;

fn urge(ticket_id: Uuid) -> NewEvent {
    NewEvent {
        event: Event::new(ticket_id, HOME, EventBody::Urge { note: None }),
        status: None,
        expected_status: None,
        targets: vec![P.into()],
        keys: vec![],
        numbers: vec![],
        clocks: vec![],
    }
}

/// A legal-aid application filed for the ticket (the applicant's personal data in it).
pub fn legal_aid(ticket_id: Uuid) -> NewEvent {
    NewEvent {
        event: Event::new(
            ticket_id,
            HOME,
            EventBody::LegalAid {
                application: Box::new(hotline_model::legal_aid::Application::example()),
            },
        ),
        status: None,
        expected_status: None,
        targets: vec![],
        keys: vec![],
        numbers: vec![],
        clocks: vec![],
    }
}

fn record(d: &Delivery, outcome: &str) -> AttemptRecord {
    AttemptRecord {
        delivery_id: d.id,
        number: d.attempts,
        started_at: Utc::now(),
        duration_ms: 3,
        outcome: outcome.into(),
        http_status: Some(200),
        partner_code: None,
        error: None,
        partner_ref: None,
    }
}

/// Records a failed attempt on a claimed delivery, to be retried at `at`.
async fn fail_until(store: &dyn Store, c: &Claim, at: chrono::DateTime<Utc>) {
    let held = store
        .finish_attempt(
            &c.token,
            record(&c.delivery, "retryable"),
            Next::Retry {
                at,
                error: "HTTP 503".into(),
            },
        )
        .await
        .unwrap();
    assert!(held, "the lease was held");
}

const LEASE: Duration = Duration::from_secs(30);

pub async fn accept_is_idempotent(store: Arc<dyn Store>) {
    let first = store.accept_ticket(new_ticket("A-1", &[P])).await.unwrap();
    let Accepted::Created {
        ticket_id,
        deliveries,
        ..
    } = &first
    else {
        panic!("{first:?}")
    };
    assert_eq!(deliveries.len(), 1);
    let again = store.accept_ticket(new_ticket("A-1", &[P])).await.unwrap();
    assert_eq!(
        again,
        Accepted::Duplicate {
            ticket_id: *ticket_id,
            event_id: match first {
                Accepted::Created { event_id, .. } => event_id,
                _ => unreachable!(),
            }
        }
    );
    assert_eq!(
        store.tickets(&TicketQuery::default()).await.unwrap().len(),
        1
    );
    assert_eq!(
        store
            .deliveries(&DeliveryQuery::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.resolve_number(HOME, "A-1").await.unwrap(),
        Some(*ticket_id)
    );
    assert_eq!(store.events(*ticket_id).await.unwrap().len(), 1);
}

pub async fn concurrent_accepts_all_commit(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            s.accept_ticket(new_ticket(&format!("C-{}", i % 150), &[P]))
                .await
        }));
    }
    let mut created = 0;
    for t in tasks {
        if !t.await.unwrap().unwrap().is_duplicate() {
            created += 1;
        }
    }
    assert_eq!(created, 150, "50 repeats among 200 submissions");
    let q = DeliveryQuery {
        limit: Some(1000),
        ..Default::default()
    };
    assert_eq!(store.deliveries(&q).await.unwrap().len(), 150);
    // A repeat writes nothing: not even the rows its script wrote before the key refused it.
    let q = TicketQuery {
        limit: Some(1000),
        ..Default::default()
    };
    assert_eq!(store.tickets(&q).await.unwrap().len(), 150);
    for i in 0..150 {
        let number = format!("C-{i}");
        let id = store.resolve_number(HOME, &number).await.unwrap();
        let id = id.unwrap_or_else(|| panic!("{number} has its ticket"));
        assert_eq!(
            store.events(id).await.unwrap().len(),
            1,
            "{number}: one event"
        );
    }
}

pub async fn one_ticket_goes_in_order_many_go_in_parallel(store: Arc<dyn Store>) {
    let a = store
        .accept_ticket(new_ticket("O-1", &[P]))
        .await
        .unwrap()
        .ticket_id();
    store.record_event(urge(a)).await.unwrap();
    store.record_event(urge(a)).await.unwrap();
    let b = store
        .accept_ticket(new_ticket("O-2", &[P]))
        .await
        .unwrap()
        .ticket_id();

    // Only the first message of each ticket is claimable.
    let claims = store.claim(P, Utc::now(), LEASE, 10).await.unwrap();
    let mut got: Vec<(Uuid, String)> = claims
        .iter()
        .map(|c| (c.ticket.id, c.event.kind().to_string()))
        .collect();
    got.sort();
    let mut want = vec![(a, "dispatch".to_string()), (b, "dispatch".to_string())];
    want.sort();
    assert_eq!(got, want);
    assert!(
        store
            .claim(P, Utc::now(), LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Acknowledging ticket a's dispatch releases its first urge, and only that.
    let ca = claims.iter().find(|c| c.ticket.id == a).unwrap();
    let ok = store
        .finish_attempt(
            &ca.token,
            record(&ca.delivery, "acknowledged"),
            Next::Acknowledged {
                partner_ref: Some("P-A".into()),
            },
        )
        .await
        .unwrap();
    assert!(ok);
    let next = store.claim(P, Utc::now(), LEASE, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].ticket.id, a);
    assert_eq!(next[0].event.kind().to_string(), "urge");
    assert_eq!(
        next[0].ticket.partner_numbers.get(P).map(String::as_str),
        Some("P-A")
    );
    assert_eq!(store.resolve_number(P, "P-A").await.unwrap(), Some(a));
}

/// A hand-off writes its partners' deliveries as a claim leaves them; the others stay pending.
pub async fn handed_off_deliveries_are_written_claimed(store: Arc<dyn Store>) {
    let t0 = Utc::now();
    let handoff = Handoff {
        lease_token: Uuid::now_v7(),
        lease_until: t0 + chrono::Duration::seconds(30),
        partners: vec![P.into()],
    };
    let mut cmd = new_ticket("H-1", &[P, "p2"]);
    cmd.handoff = Some(handoff.clone());
    let Accepted::Created {
        deliveries, claims, ..
    } = store.accept_ticket(cmd).await.unwrap()
    else {
        panic!("a new ticket")
    };
    assert_eq!(claims.len(), 1);
    let handed = &claims[0];
    assert_eq!(handed.delivery.id, deliveries[0]);
    assert_eq!(handed.token.lease_token, handoff.lease_token);
    // The stored row is what the claim says it is.
    let stored = store.delivery(deliveries[0]).await.unwrap().unwrap();
    assert_eq!(stored.status, DeliveryStatus::Sending);
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.message_id, handed.delivery.message_id);
    assert_eq!(
        stored.due_at.timestamp_millis(),
        handoff.lease_until.timestamp_millis()
    );
    let read = store.claimed(&handed.token).await.unwrap().expect("held");
    assert_eq!(
        (read.ticket, read.event, read.delivery.attempts_this_round),
        (handed.ticket.clone(), handed.event.clone(), 1)
    );
    // Not claimed again while its lease holds; the other partner's row is claimable.
    let now = Utc::now();
    assert!(store.claim(P, now, LEASE, 10).await.unwrap().is_empty());
    let other = store.claim("p2", now, LEASE, 10).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].delivery.id, deliveries[1]);
    // Its holder records the outcome.
    assert!(
        store
            .finish_attempt(
                &handed.token,
                record(&handed.delivery, "acknowledged"),
                Next::Acknowledged { partner_ref: None },
            )
            .await
            .unwrap()
    );
    let done = store.delivery(deliveries[0]).await.unwrap().unwrap();
    assert_eq!(done.status, DeliveryStatus::Acknowledged);
}

pub async fn expired_leases_come_back_and_stale_holders_lose(store: Arc<dyn Store>) {
    store.accept_ticket(new_ticket("L-1", &[P])).await.unwrap();
    let t0 = Utc::now();
    let first = store.claim(P, t0, Duration::from_secs(5), 1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].delivery.attempts, 1);
    assert!(
        store
            .claim(P, t0 + chrono::Duration::seconds(4), LEASE, 1)
            .await
            .unwrap()
            .is_empty()
    );

    // The worker "crashed": after the lease, another takes it over as attempt 2.
    let second = store
        .claim(P, t0 + chrono::Duration::seconds(6), LEASE, 1)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].delivery.attempts, 2);

    // The first holder's late result does not overwrite the second's claim.
    let stale = store
        .finish_attempt(
            &first[0].token,
            record(&first[0].delivery, "acknowledged"),
            Next::Acknowledged { partner_ref: None },
        )
        .await
        .unwrap();
    assert!(!stale);
    let d = store
        .delivery(second[0].delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Sending);
    let fresh = store
        .finish_attempt(
            &second[0].token,
            record(&second[0].delivery, "acknowledged"),
            Next::Acknowledged { partner_ref: None },
        )
        .await
        .unwrap();
    assert!(fresh);
}

pub async fn retries_wait_for_their_time_and_dead_letters_wait_for_ops(store: Arc<dyn Store>) {
    let t = store
        .accept_ticket(new_ticket("R-1", &[P]))
        .await
        .unwrap()
        .ticket_id();
    let now = Utc::now();
    let c = store.claim(P, now, LEASE, 1).await.unwrap().remove(0);
    let at = now + chrono::Duration::seconds(60);
    fail_until(store.as_ref(), &c, at).await;
    assert!(store.claim(P, now, LEASE, 1).await.unwrap().is_empty());
    assert_eq!(
        store
            .next_due(P)
            .await
            .unwrap()
            .map(|d| d.timestamp_millis()),
        Some(at.timestamp_millis())
    );
    let c = store.claim(P, at, LEASE, 1).await.unwrap().remove(0);
    assert_eq!(c.delivery.attempts, 2);
    store
        .finish_attempt(
            &c.token,
            record(&c.delivery, "permanent"),
            Next::Dead {
                error: "HTTP 400".into(),
            },
        )
        .await
        .unwrap();
    let far = at + chrono::Duration::days(30);
    assert!(
        store.claim(P, far, LEASE, 1).await.unwrap().is_empty(),
        "dead stays dead"
    );
    assert_eq!(store.next_due(P).await.unwrap(), None);

    let dead = store
        .deliveries(&DeliveryQuery {
            status: Some(DeliveryStatus::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 400"));
    let RetryResult::Requeued(d) = store.retry(dead[0].id, far).await.unwrap() else {
        panic!("dead delivery must be requeued")
    };
    assert_eq!(
        (d.status, d.attempts, d.attempts_this_round),
        (DeliveryStatus::Pending, 2, 0)
    );
    assert_eq!(
        store.retry(d.id, far).await.unwrap(),
        RetryResult::NotDead(DeliveryStatus::Pending)
    );
    assert_eq!(
        store.retry(Uuid::now_v7(), far).await.unwrap(),
        RetryResult::NotFound
    );
    let c = store.claim(P, far, LEASE, 1).await.unwrap().remove(0);
    assert_eq!(
        (c.delivery.attempts, c.delivery.attempts_this_round),
        (3, 1)
    );
    let attempts = store.attempts_for_ticket(t).await.unwrap();
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retryable", "permanent"]);
}

pub async fn late_acks_complete_deliveries_and_win_races(store: Arc<dyn Store>) {
    let t = store
        .accept_ticket(new_ticket("K-1", &[P]))
        .await
        .unwrap()
        .ticket_id();
    let c = store
        .claim(P, Utc::now(), LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    let until = Utc::now() + chrono::Duration::minutes(10);
    store
        .finish_attempt(
            &c.token,
            record(&c.delivery, "awaiting_ack"),
            Next::AwaitingAck { until },
        )
        .await
        .unwrap();
    assert_eq!(
        store.delivery(c.delivery.id).await.unwrap().unwrap().status,
        DeliveryStatus::AwaitingAck
    );
    let ack = LateAck {
        partner_ref: Some("P-77".into()),
        accepted: true,
        reason: None,
    };
    let d = store
        .acknowledge(P, c.delivery.message_id, ack.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.status, d.partner_ref.as_deref()),
        (DeliveryStatus::Acknowledged, Some("P-77"))
    );
    assert!(d.acked_at.is_some());
    assert_eq!(store.resolve_number(P, "P-77").await.unwrap(), Some(t));
    // A repeated ack changes nothing; an ack from another partner or for an unknown id finds nothing.
    assert_eq!(
        store
            .acknowledge(P, c.delivery.message_id, ack.clone())
            .await
            .unwrap()
            .unwrap()
            .status,
        DeliveryStatus::Acknowledged
    );
    assert_eq!(
        store
            .acknowledge("other", c.delivery.message_id, ack.clone())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .acknowledge(P, Uuid::now_v7(), ack.clone())
            .await
            .unwrap(),
        None
    );

    // An ack that overtakes the HTTP answer wins over it.
    store.accept_ticket(new_ticket("K-2", &[P])).await.unwrap();
    let c = store
        .claim(P, Utc::now(), LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    store
        .acknowledge(P, c.delivery.message_id, ack)
        .await
        .unwrap();
    let held = store
        .finish_attempt(
            &c.token,
            record(&c.delivery, "awaiting_ack"),
            Next::AwaitingAck { until },
        )
        .await
        .unwrap();
    assert!(!held);
    assert_eq!(
        store.delivery(c.delivery.id).await.unwrap().unwrap().status,
        DeliveryStatus::Acknowledged
    );

    // A refusal after the fact dead-letters the delivery with the partner's reason.
    store.accept_ticket(new_ticket("K-3", &[P])).await.unwrap();
    let c = store
        .claim(P, Utc::now(), LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    let no = LateAck {
        partner_ref: None,
        accepted: false,
        reason: Some("缺少来电号码".into()),
    };
    let d = store
        .acknowledge(P, c.delivery.message_id, no)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.status, DeliveryStatus::Dead);
    assert!(d.last_error.unwrap().contains("缺少来电号码"));
}

pub async fn events_on_unknown_tickets_are_refused_and_statuses_move(store: Arc<dyn Store>) {
    let err = store.record_event(urge(Uuid::now_v7())).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        store
            .deliveries(&DeliveryQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing half-stored"
    );
    let t = store
        .accept_ticket(new_ticket("S-1", &[]))
        .await
        .unwrap()
        .ticket_id();
    let receipt = NewEvent {
        event: Event::new(
            t,
            P,
            EventBody::Receipt {
                partner_number: Some("P-9".into()),
                unit: None,
            },
        ),
        status: Some(TicketStatus::Receipted),
        expected_status: None,
        targets: vec![],
        keys: vec!["msg:m1".into()],
        numbers: vec![(P.into(), "P-9".into())],
        clocks: vec![],
    };
    assert!(
        !store
            .record_event(receipt.clone())
            .await
            .unwrap()
            .is_duplicate()
    );
    assert!(store.record_event(receipt).await.unwrap().is_duplicate());
    let ticket = store.ticket(t).await.unwrap().unwrap();
    assert_eq!(ticket.status, TicketStatus::Receipted);
    assert_eq!(
        ticket.partner_numbers.get(P).map(String::as_str),
        Some("P-9")
    );
    assert_eq!(store.events(t).await.unwrap().len(), 2);
}

fn transfer(direction: Direction, partner_ref: Option<&str>) -> Transfer {
    let now = Utc::now();
    let id = Uuid::now_v7();
    Transfer {
        id,
        direction,
        partner: "12333".into(),
        call_id: format!("CALL-{id}"),
        state: TransferState::Requested,
        offer: hotline_model::TransferOffer {
            id: partner_ref.map_or_else(|| id.to_string(), str::to_owned),
            call_id: format!("CALL-{id}"),
            agent_id: None,
            ticket_number: None,
            ticket: random_draft(),
        },
        grant: None,
        reason: None,
        detail: None,
        partner_ref: partner_ref.map(str::to_owned),
        requested_at: now,
        answered_at: None,
        ringing_at: None,
        connected_at: None,
        originator_left_at: None,
        ended_at: None,
        deadline_at: Some(now + chrono::Duration::seconds(60)),
        fallback_ticket_id: None,
        fallback_error: None,
        notify_pending: false,
        version: 1,
        updated_at: now,
    }
}

fn entry(t: &Transfer, kind: &str, key: Option<&str>) -> TransferEntry {
    let mut e = TransferEntry::new(t.id, kind, "cti", EntryOutcome::Applied);
    e.key = key.map(str::to_owned);
    e
}

pub async fn transfers_change_only_from_the_version_they_were_read_at(store: Arc<dyn Store>) {
    let t = transfer(Direction::Outbound, None);
    assert_eq!(
        store
            .insert_transfer(&t, entry(&t, "requested", None))
            .await
            .unwrap(),
        TransferInsert::New(t.id)
    );
    assert_eq!(store.transfer(t.id).await.unwrap().as_ref(), Some(&t));

    let mut granted = t.clone();
    granted.state = TransferState::Granted;
    granted.version = 2;
    store
        .update_transfer(&granted, vec![entry(&t, "granted", None)])
        .await
        .unwrap();
    // A second writer that read version 1 loses, and writes nothing.
    let mut stale = t.clone();
    stale.state = TransferState::Refused;
    stale.version = 2;
    assert!(matches!(
        store
            .update_transfer(&stale, vec![entry(&t, "refused", None)])
            .await,
        Err(StoreError::StatusChanged)
    ));
    let now = store.transfer(t.id).await.unwrap().unwrap();
    assert_eq!((now.state, now.version), (TransferState::Granted, 2));
    let kinds: Vec<_> = store
        .transfer_entries(t.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["requested", "granted"]);

    // Keyed entries are kept once.
    assert!(
        store
            .record_transfer_entry(entry(&t, "ringing", Some("k1")))
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_transfer_entry(entry(&t, "ringing", Some("k1")))
            .await
            .unwrap()
    );
    assert_eq!(store.transfer_entries(t.id).await.unwrap().len(), 3);
}

pub async fn a_partner_offering_the_same_transfer_twice_gets_the_first(store: Arc<dyn Store>) {
    let first = transfer(Direction::Inbound, Some("ZJ-1"));
    let again = transfer(Direction::Inbound, Some("ZJ-1"));
    store
        .insert_transfer(&first, entry(&first, "requested", None))
        .await
        .unwrap();
    assert_eq!(
        store
            .insert_transfer(&again, entry(&again, "requested", None))
            .await
            .unwrap(),
        TransferInsert::Duplicate(first.id)
    );
    assert!(store.transfer(again.id).await.unwrap().is_none());
    // Outbound transfers carry the partner's reference too, and may repeat it.
    let out1 = transfer(Direction::Outbound, Some("ZJ-1"));
    let out2 = transfer(Direction::Outbound, Some("ZJ-1"));
    for t in [&out1, &out2] {
        assert_eq!(
            store
                .insert_transfer(t, entry(t, "requested", None))
                .await
                .unwrap(),
            TransferInsert::New(t.id)
        );
    }
    let inbound = store
        .transfers(&TransferQuery {
            direction: Some(Direction::Inbound),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(inbound.len(), 1);
}

pub async fn transfers_with_work_to_do_are_found(store: Arc<dyn Store>) {
    let now = Utc::now();
    let mut soon = transfer(Direction::Outbound, None);
    soon.deadline_at = Some(now - chrono::Duration::seconds(1));
    let mut later = transfer(Direction::Outbound, None);
    later.deadline_at = Some(now + chrono::Duration::seconds(60));
    let mut fallback = transfer(Direction::Outbound, None);
    fallback.state = TransferState::Refused;
    fallback.deadline_at = None;
    let mut tell = transfer(Direction::Outbound, None);
    tell.state = TransferState::Completed;
    tell.deadline_at = None;
    tell.notify_pending = true;
    let mut done = transfer(Direction::Outbound, None);
    done.state = TransferState::Expired;
    done.deadline_at = None;
    done.fallback_ticket_id = Some(Uuid::now_v7());
    for t in [&soon, &later, &fallback, &tell, &done] {
        store
            .insert_transfer(t, entry(t, "requested", None))
            .await
            .unwrap();
    }
    let mut due: Vec<_> = store
        .transfers_due(now, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    due.sort();
    let mut expected = vec![soon.id, fallback.id, tell.id];
    expected.sort();
    assert_eq!(due, expected);
    // Once the fallback ticket is filed, the refused transfer has nothing left to do.
    let mut filed = fallback.clone();
    filed.fallback_ticket_id = Some(Uuid::now_v7());
    filed.version = 2;
    store.update_transfer(&filed, vec![]).await.unwrap();
    assert!(
        !store
            .transfers_due(now, 100)
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == fallback.id)
    );
    let refused = store
        .transfers(&TransferQuery {
            state: Some(TransferState::Refused),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].fallback_ticket_id, filed.fallback_ticket_id);
}

pub async fn ended_transfers_lose_the_callers_data_once_retention_passes(store: Arc<dyn Store>) {
    let active = transfer(Direction::Outbound, None);
    let mut fallback = transfer(Direction::Outbound, None);
    fallback.state = TransferState::Refused;
    let mut tell = transfer(Direction::Outbound, None);
    tell.state = TransferState::Completed;
    tell.notify_pending = true;
    let mut done = transfer(Direction::Outbound, None);
    done.state = TransferState::Expired;
    done.fallback_ticket_id = Some(Uuid::now_v7());
    for t in [&active, &fallback, &tell, &done] {
        store
            .insert_transfer(t, entry(t, "requested", None))
            .await
            .unwrap();
    }
    assert!(
        store
            .purge_transfers(Utc::now() - chrono::Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "not yet past retention"
    );
    let cutoff = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(
        store.purge_transfers(cutoff, 10).await.unwrap(),
        vec![done.id],
        "only ended transfers with nothing left to do"
    );
    assert!(
        store.purge_transfers(cutoff, 10).await.unwrap().is_empty(),
        "once"
    );
    let purged = store.transfer(done.id).await.unwrap().unwrap();
    let caller = &purged.offer.ticket.caller;
    assert_eq!(caller.name, PURGED);
    assert!(caller.phone.is_empty() && caller.id_number.is_none());
    assert_eq!(
        purged.state,
        TransferState::Expired,
        "the record itself stays"
    );
    for kept in [&active, &fallback, &tell] {
        let t = store.transfer(kept.id).await.unwrap().unwrap();
        assert_eq!(t.offer.ticket.caller, kept.offer.ticket.caller);
    }
}

pub async fn released_retries_fall_due_at_once(store: Arc<dyn Store>) {
    for i in 0..3 {
        store
            .accept_ticket(new_ticket(&format!("REL-{i}"), &[P]))
            .await
            .unwrap();
    }
    let now = Utc::now();
    let claims = store.claim(P, now, LEASE, 10).await.unwrap();
    assert_eq!(claims.len(), 3);
    for (i, c) in claims.iter().enumerate() {
        let at = now + chrono::Duration::minutes(60 + i as i64);
        fail_until(store.as_ref(), c, at).await;
    }
    assert!(store.claim(P, now, LEASE, 10).await.unwrap().is_empty());
    // A probe: the earliest one only.
    assert_eq!(store.release_retries(P, now, Some(1)).await.unwrap(), 1);
    let probe = store.claim(P, now, LEASE, 10).await.unwrap();
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].delivery.id, claims[0].delivery.id);
    // Closed: all the others; another partner's are not touched.
    assert_eq!(store.release_retries("other", now, None).await.unwrap(), 0);
    assert_eq!(store.release_retries(P, now, None).await.unwrap(), 2);
    assert_eq!(store.claim(P, now, LEASE, 10).await.unwrap().len(), 2);
}

pub async fn deliveries_are_found_by_any_number_type_and_time(store: Arc<dyn Store>) {
    let before = Utc::now() - chrono::Duration::seconds(1);
    let mut first = new_ticket("F-1", &[P, "p2"]);
    first.numbers.push(("12345".into(), "ZJ2026-0001".into()));
    let first_id = first.ticket.id;
    store.accept_ticket(first).await.unwrap();
    store.accept_ticket(new_ticket("F-2", &[P])).await.unwrap();
    store.record_event(urge(first_id)).await.unwrap();

    let by = |q: DeliveryQuery| {
        let store = Arc::clone(&store);
        async move {
            let listed = store.deliveries(&q).await.unwrap();
            let counted = store.count_deliveries(&q).await.unwrap();
            assert_eq!(listed.len() as u64, counted, "count agrees with the list");
            listed
        }
    };
    let partner_number = by(DeliveryQuery {
        number: Some("ZJ2026-0001".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(partner_number.len(), 3, "two dispatches and an urge");
    assert!(partner_number.iter().all(|d| d.ticket_id == first_id));
    let home_number = by(DeliveryQuery {
        number: Some(" F-2 ".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(home_number.len(), 1, "the number is trimmed");
    let gateway_id = by(DeliveryQuery {
        number: Some(first_id.to_string()),
        ..Default::default()
    })
    .await;
    assert_eq!(gateway_id.len(), 3, "the gateway's own id is a number too");
    let urges = by(DeliveryQuery {
        message_type: Some(hotline_model::EventKind::Urge),
        ..Default::default()
    })
    .await;
    assert_eq!(urges.len(), 1);
    assert_eq!(
        by(DeliveryQuery {
            since: Some(before),
            partner: Some(P.into()),
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    assert!(
        by(DeliveryQuery {
            until: Some(before),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert!(
        by(DeliveryQuery {
            number: Some("nobody".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
}

pub async fn the_audit_log_is_a_hash_chain(store: Arc<dyn Store>) {
    let mut written = Vec::new();
    for (i, actor) in ["wang", "li", "wang"].into_iter().enumerate() {
        written.push(
            store
                .record_audit(NewAudit {
                    actor: actor.into(),
                    role: "operator".into(),
                    action: if i == 1 {
                        "partner.pause"
                    } else {
                        "delivery.retry"
                    }
                    .into(),
                    target: Some(format!("t{i}")),
                    reason: Some("维护 maintenance".into()),
                    detail: serde_json::json!({ "i": i }),
                })
                .await
                .unwrap(),
        );
    }
    assert_eq!(written[0].prev_hash, hotline_gateway::audit::GENESIS);
    assert_eq!(written[1].prev_hash, written[0].hash);
    assert_eq!(written[2].prev_hash, written[1].hash);
    let all = store.audit_log(&AuditQuery::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 2, 1],
        "newest first"
    );
    assert!(all.iter().all(hotline_gateway::audit::entry_intact));
    assert_eq!(all[2], written[0], "read back as written");
    let wang = store
        .audit_log(&AuditQuery {
            actor: Some("wang".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(wang.len(), 2);
    let older = store
        .audit_log(&AuditQuery {
            before: Some(3),
            action: Some("delivery.retry".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    let mut edited = all[1].clone();
    edited.actor = "zhao".into();
    assert!(!hotline_gateway::audit::entry_intact(&edited));
}

pub async fn pauses_are_kept_until_resumed(store: Arc<dyn Store>) {
    assert!(store.pauses().await.unwrap().is_empty());
    let since = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let pause = Pause {
        partner: P.into(),
        since,
        by: "wang".into(),
        reason: "系统升级 upgrade".into(),
    };
    store.set_pause(P, Some(pause.clone())).await.unwrap();
    store.set_pause(P, Some(pause.clone())).await.unwrap();
    assert_eq!(store.pauses().await.unwrap(), vec![pause]);
    store.set_pause(P, None).await.unwrap();
    assert!(store.pauses().await.unwrap().is_empty());
}

pub fn clock(ticket_id: Uuid, kind: hotline_gateway::sla::ClockKind, due_in_h: i64) -> Clock {
    let now = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    Clock {
        id: Uuid::now_v7(),
        ticket_id,
        kind,
        party: P.into(),
        urgent: true,
        started_at: now,
        due_at: now + chrono::Duration::hours(due_in_h),
        urge_at: now + chrono::Duration::hours(due_in_h - 1),
        provisional: true,
        extended_days: 2,
        state: ClockState::Running,
        stopped_at: None,
        urged_at: None,
        overdue_at: None,
    }
}

/// A deadline moved earlier than the urge time (or a calendar with no working day between them)
/// must not wait for the urge time to be escalated.
pub async fn a_clock_wakes_at_its_deadline_when_that_comes_before_its_urge_time(
    store: Arc<dyn Store>,
) {
    use hotline_gateway::sla::ClockKind;
    let mut cmd = new_ticket("K-W", &[P]);
    let mut c = clock(cmd.ticket.id, ClockKind::Reply, 4);
    c.urge_at = c.due_at + chrono::Duration::hours(2);
    cmd.clocks = vec![ClockOp::Start(c.clone())];
    store.accept_ticket(cmd).await.unwrap();
    let before = c.due_at - chrono::Duration::seconds(1);
    assert!(store.clocks_waking(before, 10).await.unwrap().is_empty());
    let after = c.due_at + chrono::Duration::seconds(1);
    assert_eq!(
        store.clocks_waking(after, 10).await.unwrap(),
        vec![c],
        "awake at its deadline, before its urge time"
    );
}

/// Marks the clock `id` with `mark`, which only the first time changes it.
async fn marks_once(store: &Arc<dyn Store>, id: Uuid, mark: ClockMark, at: DateTime<Utc>) {
    assert!(
        store.mark_clock(id, mark, at).await.unwrap(),
        "{mark:?} marked"
    );
    assert!(
        !store.mark_clock(id, mark, at).await.unwrap(),
        "{mark:?} marked once only"
    );
}

pub async fn clocks_alerts_refusals_and_cursors_round_trip(store: Arc<dyn Store>) {
    use hotline_gateway::sla::ClockKind;
    let since = Utc::now() - chrono::Duration::seconds(1);
    let mut cmd = new_ticket("K-1", &[P]);
    cmd.caller_hash = Some("hash-1".into());
    cmd.ticket.draft.units = vec!["历下区人社局".into()];
    let t = cmd.ticket.id;
    let receipt = clock(t, ClockKind::Receipt, -2);
    let reply = clock(t, ClockKind::Reply, 48);
    cmd.clocks = vec![
        ClockOp::Start(receipt.clone()),
        ClockOp::Start(reply.clone()),
    ];
    store.accept_ticket(cmd).await.unwrap();
    store.accept_ticket(new_ticket("K-2", &[P])).await.unwrap();

    // Listing with numbers, paging, caller matching.
    let all = store.tickets(&TicketQuery::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].partner_numbers.get(HOME).map(String::as_str),
        Some("K-1")
    );
    let page = store
        .tickets(&TicketQuery {
            after: Some(all[0].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        store.caller_tickets("hash-1", since).await.unwrap(),
        vec![t]
    );

    // Clocks: read back exactly, found when due, marked once, rescheduled, closed.
    let stored = store.clocks(t).await.unwrap();
    assert_eq!(stored, vec![receipt.clone(), reply.clone()]);
    assert_eq!(store.running_clocks(10).await.unwrap()[0].id, receipt.id);
    assert_eq!(store.provisional_clocks().await.unwrap().len(), 2);
    let now = Utc::now();
    // The receipt clock is past its urge time and its deadline; the reply clock is not yet due.
    let waking = store.clocks_waking(now, 10).await.unwrap();
    assert_eq!(
        waking.iter().map(|c| c.id).collect::<Vec<_>>(),
        [receipt.id]
    );
    marks_once(&store, receipt.id, ClockMark::Urged, now).await;
    assert_eq!(
        store.clocks_waking(now, 10).await.unwrap().len(),
        1,
        "urged, the receipt clock still wakes for its deadline"
    );
    marks_once(&store, receipt.id, ClockMark::Overdue, now).await;
    assert!(
        store.clocks_waking(now, 10).await.unwrap().is_empty(),
        "a clock marked overdue wakes no more"
    );
    // The reply clock wakes at its urge time, then (urged) at its deadline, earliest first.
    let at_urge = reply.urge_at + chrono::Duration::seconds(1);
    assert_eq!(
        store.clocks_waking(at_urge, 10).await.unwrap()[0].id,
        reply.id
    );
    assert!(
        store
            .mark_clock(reply.id, ClockMark::Urged, now)
            .await
            .unwrap()
    );
    assert!(store.clocks_waking(at_urge, 10).await.unwrap().is_empty());
    let past_due = reply.due_at + chrono::Duration::seconds(1);
    assert_eq!(
        store.clocks_waking(past_due, 10).await.unwrap()[0].id,
        reply.id
    );
    store
        .change_clocks(vec![ClockOp::Reschedule {
            id: reply.id,
            due_at: reply.due_at + chrono::Duration::days(1),
            urge_at: reply.urge_at + chrono::Duration::days(1),
            provisional: false,
            extended_days: 3,
        }])
        .await
        .unwrap();
    let re = store.clocks(t).await.unwrap();
    assert!(!re[1].provisional);
    assert_eq!(re[1].extended_days, 3);
    assert_eq!(store.provisional_clocks().await.unwrap().len(), 1);
    assert_eq!(
        store
            .clocks_started(since, Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap()
            .len(),
        2
    );
    let mut close = urge(t);
    close.clocks = vec![ClockOp::Close {
        kind: ClockKind::Reply,
        party: Some(P.into()),
        at: Utc::now(),
    }];
    store.record_event(close).await.unwrap();
    assert_eq!(store.clocks(t).await.unwrap()[1].state, ClockState::Met);
    assert_eq!(
        store
            .events_between(
                hotline_model::EventKind::Urge,
                since,
                Utc::now() + chrono::Duration::seconds(1)
            )
            .await
            .unwrap()
            .len(),
        1
    );

    // Alerts: raised once per key, counted with the ticket's first unit, acknowledged.
    let alert = NewAlert {
        key: format!("overdue:{}", receipt.id),
        kind: AlertKind::Overdue,
        ticket_id: Some(t),
        party: Some(P.into()),
        message: "已超期".into(),
        detail: serde_json::json!({"clock": receipt.id}),
    };
    assert!(store.raise_alert(alert.clone()).await.unwrap());
    assert!(!store.raise_alert(alert).await.unwrap());
    let counts = store.open_alert_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].unit.as_deref(), Some("历下区人社局"));
    let open = store
        .alerts(&AlertQuery {
            open: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].detail["clock"], receipt.id.to_string());
    let acked = store.ack_alert(open[0].id, "li").await.unwrap().unwrap();
    assert_eq!(acked.acknowledged_by.as_deref(), Some("li"));
    assert!(
        store
            .alerts(&AlertQuery {
                open: Some(true),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .alerts(&AlertQuery {
                open: Some(false),
                kind: Some(AlertKind::Overdue),
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .ack_alert(Uuid::now_v7(), "li")
            .await
            .unwrap()
            .is_none()
    );

    // Refusals, cursors, counts and attempts.
    let at = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let refused = RefusedEvent {
        ticket_id: t,
        source: P.into(),
        kind: hotline_model::EventKind::Reply,
        status: TicketStatus::Withdrawn,
        reason: "已撤单".into(),
        at,
    };
    store.record_refusal(refused.clone()).await.unwrap();
    assert_eq!(store.refusals(t).await.unwrap(), vec![refused]);
    assert_eq!(store.cursor(P).await.unwrap(), None);
    store.set_cursor(P, "c-1").await.unwrap();
    store.set_cursor(P, "c-2").await.unwrap();
    assert_eq!(store.cursor(P).await.unwrap().as_deref(), Some("c-2"));
    let c = store.claim(P, Utc::now(), LEASE, 10).await.unwrap();
    assert_eq!(
        c.len(),
        2,
        "one per ticket (the urge waits behind K-1's dispatch)"
    );
    for claim in &c {
        store
            .finish_attempt(
                &claim.token,
                record(&claim.delivery, "acknowledged"),
                Next::Acknowledged {
                    partner_ref: Some(format!("REF-{}", claim.delivery.ticket_id)),
                },
            )
            .await
            .unwrap();
    }
    let attempts = store.attempts_for_ticket(t).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].http_status, Some(200));
    assert_eq!(
        store.resolve_number(P, &format!("REF-{t}")).await.unwrap(),
        Some(t),
        "the partner's number is remembered"
    );
    let counts = store.delivery_counts().await.unwrap();
    let count = |s: DeliveryStatus| counts.iter().find(|c| c.status == s).map_or(0, |c| c.count);
    assert_eq!(count(DeliveryStatus::Acknowledged), 2);
    assert_eq!(count(DeliveryStatus::Pending), 1);
    store.ping().await.unwrap();
}

pub async fn a_job_lease_has_one_holder_until_it_runs_out(store: Arc<dyn Store>) {
    let now = Utc::now();
    let ttl = Duration::from_secs(10);
    assert!(store.try_lease("sla-scan", "a", now, ttl).await.unwrap());
    assert!(!store.try_lease("sla-scan", "b", now, ttl).await.unwrap());
    assert!(
        store.try_lease("poll:p1", "b", now, ttl).await.unwrap(),
        "jobs are separate"
    );
    let later = now + chrono::Duration::seconds(5);
    assert!(
        store.try_lease("sla-scan", "a", later, ttl).await.unwrap(),
        "renewed"
    );
    let expired_first = now + chrono::Duration::seconds(12);
    assert!(
        !store
            .try_lease("sla-scan", "b", expired_first, ttl)
            .await
            .unwrap(),
        "the renewal counts from the renewal"
    );
    let gone = later + chrono::Duration::seconds(11);
    assert!(
        store.try_lease("sla-scan", "b", gone, ttl).await.unwrap(),
        "taken over"
    );
    assert!(!store.try_lease("sla-scan", "a", gone, ttl).await.unwrap());
}

pub async fn accepts_report_the_callers_tickets(store: Arc<dyn Store>) {
    let since = Utc::now() - chrono::Duration::seconds(1);
    let caller_tickets = |a: &Accepted| match a {
        Accepted::Created { caller_tickets, .. } => caller_tickets.clone(),
        other => panic!("{other:?}"),
    };
    let mut ids = Vec::new();
    for (i, hash) in ["hash-1", "hash-2", "hash-1"].into_iter().enumerate() {
        let mut cmd = new_ticket(&format!("R-{i}"), &[P]);
        cmd.caller_hash = Some(hash.into());
        cmd.repeat_since = Some(since);
        ids.push(cmd.ticket.id);
        let accepted = store.accept_ticket(cmd).await.unwrap();
        let want: Vec<Uuid> = match i {
            0 => vec![ids[0]],
            1 => vec![ids[1]],
            _ => vec![ids[0], ids[2]],
        };
        // The caller's tickets since then, this one included, oldest first, read in the write.
        assert_eq!(caller_tickets(&accepted), want, "R-{i}");
    }
    let mut later = new_ticket("R-3", &[P]);
    later.caller_hash = Some("hash-1".into());
    later.repeat_since = Some(Utc::now() + chrono::Duration::hours(1));
    let accepted = store.accept_ticket(later).await.unwrap();
    assert!(caller_tickets(&accepted).is_empty(), "none since then");
    let mut not_asked = new_ticket("R-4", &[P]);
    not_asked.caller_hash = Some("hash-1".into());
    let accepted = store.accept_ticket(not_asked).await.unwrap();
    assert!(caller_tickets(&accepted).is_empty(), "not asked for");
    assert_eq!(
        store.caller_tickets("hash-1", since).await.unwrap().len(),
        4
    );
}

pub async fn claims_never_sent_are_given_back(store: Arc<dyn Store>) {
    for i in 0..3 {
        store
            .accept_ticket(new_ticket(&format!("G-{i}"), &[P]))
            .await
            .unwrap();
    }
    let t0 = Utc::now();
    let claims = store.claim(P, t0, LEASE, 3).await.unwrap();
    assert_eq!(claims.len(), 3);
    // The third was sent and failed: a retry, its attempt counted. Claimed again, then given
    // back with the first; the second's token is stale (another lease) and is left alone.
    store
        .finish_attempt(
            &claims[2].token,
            record(&claims[2].delivery, "retryable"),
            Next::Retry {
                at: t0,
                error: "503".into(),
            },
        )
        .await
        .unwrap();
    let again = store.claim(P, Utc::now(), LEASE, 3).await.unwrap();
    assert_eq!(again.len(), 1, "only the retry was due");
    let stale = ClaimToken {
        delivery_id: claims[1].token.delivery_id,
        lease_token: Uuid::now_v7(),
    };
    let now = Utc::now();
    let n = store
        .release_claims(
            &[claims[0].token.clone(), stale, again[0].token.clone()],
            now,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let first = store
        .delivery(claims[0].delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.status, first.attempts), (DeliveryStatus::Pending, 0));
    let second = store
        .delivery(claims[1].delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.status, DeliveryStatus::Sending, "its lease holds");
    let third = store.delivery(again[0].delivery.id).await.unwrap().unwrap();
    assert_eq!(
        (third.status, third.attempts),
        (DeliveryStatus::Retrying, 1)
    );
    // Both are due at once and claimed by the next worker; the second is not.
    let next = store.claim(P, Utc::now(), LEASE, 3).await.unwrap();
    let mut ids: Vec<_> = next.iter().map(|c| c.delivery.id).collect();
    ids.sort();
    let mut want = vec![claims[0].delivery.id, again[0].delivery.id];
    want.sort();
    assert_eq!(ids, want);
}

pub async fn a_claim_is_found_by_its_token_while_it_holds(store: Arc<dyn Store>) {
    store.accept_ticket(new_ticket("Q-1", &[P])).await.unwrap();
    let c = store
        .claim(P, Utc::now(), LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    let found = store.claimed(&c.token).await.unwrap().expect("held");
    assert_eq!(found.delivery, c.delivery);
    assert_eq!(found.ticket, c.ticket);
    assert_eq!(found.event, c.event);
    let stale = ClaimToken {
        delivery_id: c.token.delivery_id,
        lease_token: Uuid::now_v7(),
    };
    assert!(
        store.claimed(&stale).await.unwrap().is_none(),
        "another lease"
    );
    store
        .finish_attempt(
            &c.token,
            record(&c.delivery, "acknowledged"),
            Next::Acknowledged { partner_ref: None },
        )
        .await
        .unwrap();
    assert!(store.claimed(&c.token).await.unwrap().is_none(), "finished");
}

pub async fn a_nonce_is_taken_once_until_it_expires(store: Arc<dyn Store>) {
    let now = Utc::now();
    let keep = Duration::from_secs(600);
    assert!(
        store
            .remember_nonce(&Nonce::new("12345", "n-1", now, keep))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remember_nonce(&Nonce::new("12345", "n-1", now, keep))
            .await
            .unwrap(),
        "a replay"
    );
    assert!(
        store
            .remember_nonce(&Nonce::new("12315", "n-1", now, keep))
            .await
            .unwrap(),
        "per partner"
    );
    let later = now + chrono::Duration::seconds(601);
    assert!(
        store
            .remember_nonce(&Nonce::new("12345", "n-1", later, keep))
            .await
            .unwrap(),
        "forgotten once expired"
    );
}

pub async fn a_new_tickets_nonce_is_taken_with_it(store: Arc<dyn Store>) {
    let now = Utc::now();
    let nonce = |value: &str, now| Nonce::new("12345", value, now, Duration::from_secs(600));
    let with = |number: &str, n: Nonce| NewTicket {
        nonce: Some(n),
        ..new_ticket(number, &[P])
    };
    let first = store
        .accept_ticket(with("NC-1", nonce("n-1", now)))
        .await
        .unwrap();
    assert!(!first.is_duplicate());

    // Another ticket under the same nonce: refused, and nothing of it written.
    let replay = with("NC-2", nonce("n-1", now));
    let replay_id = replay.ticket.id;
    match store.accept_ticket(replay).await {
        Err(StoreError::Replayed(n)) => assert_eq!(n, "n-1"),
        other => panic!("a replayed nonce was taken: {other:?}"),
    }
    assert!(store.ticket(replay_id).await.unwrap().is_none());
    assert!(
        store
            .seen(HOME, &["external_id:NC-2".into()])
            .await
            .unwrap()
            .is_none()
    );

    // The first ticket again under a new nonce: the duplicate it is, and the nonce is kept.
    let again = store
        .accept_ticket(with("NC-1", nonce("n-2", now)))
        .await
        .unwrap();
    assert!(again.is_duplicate());
    assert_eq!(again.ticket_id(), first.ticket_id());
    let keep = Duration::from_secs(600);
    assert!(
        !store
            .remember_nonce(&Nonce::new("12345", "n-2", now, keep))
            .await
            .unwrap(),
        "a repeated ticket's nonce is remembered too"
    );
    // A nonce taken by `remember_nonce` refuses a ticket as well; once expired it is free.
    assert!(
        store
            .remember_nonce(&Nonce::new("12345", "n-3", now, keep))
            .await
            .unwrap()
    );
    assert!(matches!(
        store.accept_ticket(with("NC-3", nonce("n-3", now))).await,
        Err(StoreError::Replayed(_))
    ));
    let later = now + chrono::Duration::seconds(601);
    let taken = store
        .accept_ticket(with("NC-3", nonce("n-1", later)))
        .await
        .unwrap();
    assert!(!taken.is_duplicate(), "an expired nonce is free again");
}

pub async fn ended_tickets_lose_personal_data_once_retention_passes(store: Arc<dyn Store>) {
    let mut open = new_ticket("RT-OPEN", &[P]);
    open.caller_hash = Some("h-open".into());
    let open_id = open.ticket.id;
    store.accept_ticket(open).await.unwrap();
    let mut done = new_ticket("RT-DONE", &[P]);
    done.caller_hash = Some("h-done".into());
    let done_id = done.ticket.id;
    let before = done.ticket.draft.clone();
    store.accept_ticket(done).await.unwrap();
    store.record_event(legal_aid(done_id)).await.unwrap();
    let mut close = urge(done_id);
    close.status = Some(TicketStatus::Closed);
    store.record_event(close).await.unwrap();

    let cutoff = Utc::now() + chrono::Duration::seconds(1);
    assert!(
        store
            .purge_personal_data(Utc::now() - chrono::Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty(),
        "not yet past retention"
    );
    assert_eq!(
        store.purge_personal_data(cutoff, 10).await.unwrap(),
        vec![done_id]
    );
    assert!(
        store
            .purge_personal_data(cutoff, 10)
            .await
            .unwrap()
            .is_empty(),
        "once"
    );
    let t = store.ticket(done_id).await.unwrap().unwrap();
    assert_eq!(t.draft.caller.name, hotline_gateway::store::PURGED);
    assert!(t.draft.caller.phone.is_empty());
    assert_eq!(t.draft.caller.id_number, None);
    assert_eq!(t.draft.address, None);
    assert_eq!(t.draft.content, before.content, "the matter itself stays");
    let application = store
        .events(done_id)
        .await
        .unwrap()
        .into_iter()
        .find_map(|e| match e.body {
            EventBody::LegalAid { application } => Some(application),
            _ => None,
        })
        .expect("the legal-aid application stays on the timeline");
    let a = &application.applicant;
    assert_eq!(a.name, hotline_gateway::store::PURGED);
    assert!(a.id_number.is_empty() && a.phone.is_empty() && a.address.is_empty());
    assert_eq!(
        application.description,
        hotline_model::legal_aid::Application::example().description,
        "the matter itself stays"
    );
    assert!(
        store
            .caller_tickets("h-done", Utc::now() - chrono::Duration::days(1))
            .await
            .unwrap()
            .is_empty(),
        "the phone hash goes too"
    );
    let kept = store.ticket(open_id).await.unwrap().unwrap();
    assert_ne!(
        kept.draft.caller.name,
        hotline_gateway::store::PURGED,
        "open tickets keep theirs"
    );
}

pub async fn case_updates_are_kept_once_and_cases_save_from_their_version(store: Arc<dyn Store>) {
    use hotline_gateway::store::{CaseQuery, LegalAidCase};
    use hotline_model::legal_aid::{CaseStatus, CaseUpdate};
    let ticket = uuid::Uuid::now_v7();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T09:00:00+08:00").unwrap();
    let update = |version: u64, status: CaseStatus| CaseUpdate {
        case_no: format!("FY-{ticket}"),
        version,
        ticket_id: ticket,
        received_at: at,
        at,
        status,
    };
    let case_no = format!("FY-{ticket}");
    assert!(
        store
            .put_case_update(&update(2, CaseStatus::Reviewing))
            .await
            .unwrap()
    );
    assert!(
        store
            .put_case_update(&update(1, CaseStatus::Accepted))
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_case_update(&update(1, CaseStatus::Granted))
            .await
            .unwrap(),
        "a version is kept once; the first wins"
    );
    let after0 = store.case_updates_after(&case_no, 0).await.unwrap();
    assert_eq!(
        after0
            .iter()
            .map(|u| (u.version, u.status.name()))
            .collect::<Vec<_>>(),
        vec![(1, "accepted"), (2, "reviewing")]
    );
    assert_eq!(
        store.case_updates_after(&case_no, 1).await.unwrap().len(),
        1
    );

    let now = Utc::now();
    let mut case = LegalAidCase {
        case_no: case_no.clone(),
        ticket_id: ticket,
        version: 1,
        status: CaseStatus::Accepted,
        received_at: now,
        decision_due: now + chrono::Duration::days(7),
        decided_at: None,
        assignment_due: None,
        assigned_at: None,
        updated_at: now,
    };
    assert!(store.save_case(&case, 0).await.unwrap());
    assert!(!store.save_case(&case, 0).await.unwrap(), "created once");
    case.version = 3;
    case.status = CaseStatus::Closed;
    assert!(
        !store.save_case(&case, 2).await.unwrap(),
        "not from a version it is not at"
    );
    assert!(store.save_case(&case, 1).await.unwrap());
    assert_eq!(
        store.legal_aid_case(&case_no).await.unwrap(),
        Some(case.clone())
    );
    let mine = CaseQuery {
        ticket_id: Some(ticket),
        ..CaseQuery::default()
    };
    assert_eq!(store.legal_aid_cases(&mine).await.unwrap(), vec![case]);
    let open = CaseQuery {
        ticket_id: Some(ticket),
        open: Some(true),
    };
    assert!(
        store.legal_aid_cases(&open).await.unwrap().is_empty(),
        "closed"
    );
}

/// A nonce is kept only with what it let in: when the accept fails otherwise, the partner may
/// send the same request again.
pub async fn an_accept_that_fails_keeps_no_nonce(store: Arc<dyn Store>) {
    let now = Utc::now();
    let keep = Duration::from_secs(600);
    // A clock for a ticket that does not exist breaks a foreign key: the accept fails whole.
    let broken = NewTicket {
        clocks: vec![ClockOp::Start(clock(
            Uuid::now_v7(),
            hotline_gateway::sla::ClockKind::Receipt,
            24,
        ))],
        nonce: Some(Nonce::new("12345", "n-failed", now, keep)),
        ..new_ticket("NF-1", &[P])
    };
    let failed = store.accept_ticket(broken).await;
    assert!(
        matches!(failed, Err(ref e) if !matches!(e, StoreError::Replayed(_))),
        "{failed:?}"
    );
    // The partner may send the same request again: its nonce was not kept.
    assert!(
        store
            .remember_nonce(&Nonce::new("12345", "n-failed", now, keep))
            .await
            .unwrap()
    );
}
