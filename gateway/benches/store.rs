//! What the embedded store (SQLite) costs per relayed ticket, without HTTP or translation: the
//! writes one ticket makes on the relay path, in the order the gateway makes them, with
//! `concurrency` tickets in flight so that they share group commits as they do under load:
//!
//! 1. the accept: the replay nonce of the partner's signed request, ticket, dispatch event, two
//!    idempotency keys, the partner's number, the outbox row handed straight to the worker
//!    (written claimed), two SLA clocks (receipt and reply), and the repeat-caller read (a
//!    random caller hash, as callers' phones are);
//! 2. the acknowledged attempt with the partner's own number.
//!
//! Prints tickets/s and the store's time per ticket; asserts nothing (figures are reported in
//! docs/benchmarks.md). Under `valgrind --tool=callgrind` (one runtime thread, so that every
//! instruction counts the same on every machine) the instructions per ticket compare schema and
//! statement changes exactly.
//!
//! `cargo bench -p hotline-gateway --bench store -- [tickets] [concurrency]`

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use hotline_gateway::sla::ClockKind;
use hotline_gateway::store::{
    Accepted, AttemptRecord, Clock, ClockOp, ClockState, Handoff, NewTicket, Next, Nonce,
    SqliteStore, Store,
};
use hotline_model::{Event, EventBody, Ticket};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const PARTNER: &str = "12315";
const SOURCE: &str = "12345";

fn clock(ticket: &Ticket, kind: ClockKind, days: i64) -> ClockOp {
    let now = Utc::now();
    ClockOp::Start(Clock {
        id: Uuid::now_v7(),
        ticket_id: ticket.id,
        kind,
        party: PARTNER.into(),
        urgent: false,
        started_at: now,
        due_at: now + chrono::Duration::days(days),
        urge_at: now + chrono::Duration::days(days - 1),
        provisional: false,
        extended_days: 0,
        state: ClockState::Running,
        stopped_at: None,
        urged_at: None,
        overdue_at: None,
    })
}

/// One ticket's writes, as the relay makes them.
async fn relay_one(store: &SqliteStore, n: usize, hash: String) -> anyhow::Result<()> {
    let now = Utc::now();
    let number = format!("BENCH-{n:08}");
    let ticket = Ticket::new(
        SOURCE,
        Some(number.clone()),
        contract_tests::samples::random_draft(),
    );
    let event = Event::new(
        ticket.id,
        SOURCE,
        EventBody::Dispatch {
            units: vec![],
            note: None,
        },
    );
    let clocks = vec![
        clock(&ticket, ClockKind::Receipt, 1),
        clock(&ticket, ClockKind::Reply, 7),
    ];
    let cmd = NewTicket {
        keys: vec![
            format!("dispatch:{number}"),
            format!("message:{}", Uuid::now_v7()),
        ],
        numbers: vec![(SOURCE.into(), number)],
        caller_hash: Some(hash),
        repeat_since: Some(now - chrono::Duration::days(30)),
        clocks,
        targets: vec![PARTNER.into()],
        ticket,
        event,
        handoff: Some(Handoff {
            lease_token: Uuid::now_v7(),
            lease_until: now + chrono::Duration::seconds(60),
            partners: vec![PARTNER.into()],
        }),
        nonce: Some(Nonce::new(
            SOURCE,
            Uuid::now_v7().simple().to_string(),
            now,
            Duration::from_secs(600),
        )),
    };
    let Accepted::Created { claims, .. } = store.accept_ticket(cmd).await? else {
        anyhow::bail!("a new ticket was taken as a duplicate");
    };
    for claim in claims {
        let attempt = AttemptRecord {
            delivery_id: claim.delivery.id,
            number: claim.delivery.attempts,
            started_at: Utc::now(),
            duration_ms: 2,
            outcome: "acknowledged".into(),
            http_status: Some(200),
            partner_code: None,
            error: None,
            partner_ref: Some(format!("{PARTNER}-SIM-{n:08}")),
        };
        let next = Next::Acknowledged {
            partner_ref: Some(format!("{PARTNER}-SIM-{n:08}")),
        };
        anyhow::ensure!(
            store.finish_attempt(&claim.token, attempt, next).await?,
            "the hand-off's lease was lost"
        );
    }
    Ok(())
}

/// A caller hash spread like real callers' (the same series every run).
fn caller_hash(rng: &mut StdRng) -> String {
    format!("{:032x}", rng.random::<u128>())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let tickets = args.first().copied().unwrap_or(20_000);
    let concurrency = args.get(1).copied().unwrap_or(64).max(1);
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("bench.db")).await?;
    // Warm up: the first statements prepare and the first pages come into the cache.
    let mut rng = StdRng::seed_from_u64(12348);
    futures::stream::iter(0..concurrency)
        .map(|n| relay_one(&store, tickets + n, caller_hash(&mut rng)))
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..tickets)
        .map(|n| relay_one(&store, n, caller_hash(&mut rng)))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let took = started.elapsed();
    results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let per_s = tickets as f64 / took.as_secs_f64();
    println!(
        "store (SQLite) relay writes: {tickets} tickets, {concurrency} in flight, one runtime \
         thread: {per_s:.0} tickets/s, {:.1} µs per ticket (commits' fsyncs included)",
        took.as_secs_f64() * 1e6 / tickets as f64
    );
    println!(
        "{}",
        serde_json::json!({"bench": "store", "tickets": tickets, "concurrency": concurrency,
            "tickets_per_s": per_s.round()})
    );
    Ok(())
}
