//! The scale-out store: PostgreSQL, shared by any number of gateway instances.
//!
//! Each business operation is one transaction on a pooled connection. Deliveries are claimed
//! with `FOR UPDATE SKIP LOCKED`, so instances never claim the same row; a transaction that
//! loses a race (a unique key taken meanwhile, a serialization failure, a deadlock) is run again
//! from the start, as is one whose connection was lost. The schema mirrors the SQLite one (times
//! in Unix milliseconds, ids and documents as text), so the row mapping is the same.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hotline_model::{Event, EventKind, Ticket, TicketStatus};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use uuid::Uuid;

use super::rows::*;
use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A running clock's next wake, in the words of the index `sla_clocks_wake` (migration 4),
/// which a query uses only when it says the same.
const WAKE: &str = "(CASE WHEN urged_at IS NULL THEN LEAST(urge_at, due_at) ELSE due_at END)";

/// Times a transaction that lost a race or its connection is run again.
const TRIES: u32 = 8;
/// The advisory lock key that orders audit-log appends (any constant unique to this use).
const AUDIT_CHAIN_LOCK: i64 = 0x1234_8a0d;

pub struct PgStore {
    pool: PgPool,
    seal: Seal,
}

type BoxFut<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

impl PgStore {
    /// Connects to `url` (retrying while the server starts) and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Database(format!("bad PostgreSQL URL: {e}")))?;
        Self::open_with(options).await
    }

    /// As [`Self::open`], with options built by the caller (e.g. another `search_path`).
    pub async fn open_with(options: PgConnectOptions) -> Result<Self> {
        use backon::{ExponentialBuilder, Retryable};
        let pool = (|| {
            PgPoolOptions::new()
                .max_connections(16)
                // No ping before each use: a connection found broken by its first statement is
                // an I/O error, and the work runs again on another (see `run`).
                .test_before_acquire(false)
                .connect_with(options.clone())
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(10),
        )
        .notify(|e, after| tracing::warn!(error = %e, ?after, "PostgreSQL not reachable yet"))
        .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migration failed: {e}")))?;
        Ok(Self {
            pool,
            seal: Seal::default(),
        })
    }

    /// Seals callers' personal data with these keys from now on.
    pub fn sealed(mut self, seal: Seal) -> Self {
        self.seal = seal;
        self
    }

    /// Runs `f` in a transaction and commits it; runs it again when it lost a race or the
    /// connection.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut PgConnection) -> BoxFut<'c, Result<T>> + Send + Sync,
    {
        self.run(true, f).await
    }

    /// Runs `f` on a connection of the pool, in a transaction of its own when `transaction`
    /// (else each statement commits by itself: for work that is one statement, or whose
    /// statements each stand alone); runs it again when it lost a race or the connection.
    async fn run<T, F>(&self, transaction: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut PgConnection) -> BoxFut<'c, Result<T>> + Send + Sync,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let result = async {
                if transaction {
                    let mut tx = self.pool.begin().await?;
                    let value = f(&mut tx).await?;
                    tx.commit().await?;
                    Ok(value)
                } else {
                    f(&mut *self.pool.acquire().await?).await
                }
            }
            .await;
            match result {
                Err(StoreError::Contention(why)) if tries < TRIES => {
                    tracing::debug!(%why, tries, "transaction lost a race; running it again");
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
                }
                other => return other,
            }
        }
    }

    /// A new ticket's writes, once its nonce (if any) is taken.
    async fn accept_taken(&self, cmd: NewTicket, draft: String, body: String) -> Result<Accepted> {
        // Usually one statement writes it all (a new ticket's clocks only start) and needs no
        // transaction around it.
        let single = after_event(&cmd.clocks).next().is_none();
        self.run(!single, move |conn| {
            let cmd = cmd.clone();
            let draft = draft.clone();
            let body = body.clone();
            Box::pin(async move {
                let t = &cmd.ticket;
                let duplicate = |(ticket_id, event_id)| Accepted::Duplicate {
                    ticket_id,
                    event_id,
                };
                // A failed statement ends a transaction, so there the keys are looked up first;
                // a statement of its own looks only once its keys clashed.
                if !single && let Some(earlier) = seen(conn, &t.origin, &cmd.keys).await? {
                    return Ok(duplicate(earlier));
                }
                let row = TicketRow {
                    ticket: t,
                    draft: &draft,
                    caller_hash: cmd.caller_hash.as_deref(),
                    repeat_since: cmd.repeat_since,
                };
                let (written, caller_tickets) = match insert_event(
                    conn,
                    Some(row),
                    &cmd.event,
                    &body,
                    &cmd.keys,
                    &cmd.numbers,
                    &cmd.targets,
                    cmd.handoff.as_ref(),
                    &cmd.clocks,
                )
                .await
                {
                    Ok(written) => written,
                    Err(StoreError::Contention(why)) if single => {
                        return match seen(conn, &t.origin, &cmd.keys).await? {
                            Some(earlier) => Ok(duplicate(earlier)),
                            None => Err(StoreError::Contention(why)),
                        };
                    }
                    Err(e) => return Err(e),
                };
                apply_clock_ops(conn, t.id, after_event(&cmd.clocks)).await?;
                let (ticket_id, event_id) = (t.id, cmd.event.id);
                Ok(Accepted::Created {
                    ticket_id,
                    event_id,
                    deliveries: written.iter().map(|(id, _)| *id).collect(),
                    caller_tickets,
                    claims: cmd.into_claims(&written),
                })
            })
        })
        .await
    }

    /// Forgets the nonce an accept took before it failed with `why`, so that the partner may
    /// send the same request again (SQLite undoes it with the accept). Were the accept in fact
    /// committed (a connection lost at its commit), the request sent again is the duplicate its
    /// keys make it.
    async fn give_back_nonce(&self, n: &Nonce, why: &StoreError) {
        let forget = self
            .run(false, move |conn| {
                let n = n.clone();
                Box::pin(async move {
                    sqlx::query(
                        "DELETE FROM seen_nonces WHERE partner = $1 AND nonce = $2 \
                         AND expires_at = $3",
                    )
                    .bind(&n.partner)
                    .bind(&n.value)
                    .bind(ms(n.until()))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await;
        if let Err(e) = forget {
            tracing::warn!(error = %e, accept = %why, nonce = %n.value,
                "an accept failed and its nonce could not be forgotten: \
                 the same request sent again is refused as a replay");
        }
    }
}

/// The filters of a [`DeliveryQuery`], bound as `?1`..`?7` by [`bind_delivery_filter`].
const DELIVERY_FILTER: &str = "($1 IS NULL OR d.status = $1) AND ($2 IS NULL OR d.partner = $2) \
     AND ($3 IS NULL OR d.ticket_id = $3) \
     AND ($4 IS NULL OR d.ticket_id = $4 \
          OR d.ticket_id IN (SELECT ticket_id FROM ticket_numbers WHERE number = $4)) \
     AND ($5 IS NULL OR d.kind = $5) AND ($6 IS NULL OR d.created_at >= $6) \
     AND ($7 IS NULL OR d.created_at < $7)";

fn bind_delivery_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    q: &'q DeliveryQuery,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(q.status.map(DeliveryStatus::as_str))
        .bind(&q.partner)
        .bind(q.ticket_id.map(|u| u.to_string()))
        .bind(q.number.as_deref().map(str::trim))
        .bind(q.message_type.map(|k| k.as_str()))
        .bind(q.since.map(ms))
        .bind(q.until.map(ms))
}

/// Tickets of the caller with this phone hash created since `since`, oldest first.
async fn caller_tickets(
    conn: &mut PgConnection,
    caller_hash: &str,
    since: DateTime<Utc>,
) -> Result<Vec<Uuid>> {
    let rows = sqlx::query(
        "SELECT id FROM tickets WHERE caller_hash = $1 AND created_at >= $2 ORDER BY created_at, id",
    )
    .bind(caller_hash)
    .bind(ms(since))
    .fetch_all(conn)
    .await?;
    rows.iter().map(|r| get_uuid(r, "id")).collect()
}

async fn numbers_of(conn: &mut PgConnection, ticket_id: Uuid) -> Result<BTreeMap<String, String>> {
    let rows = sqlx::query("SELECT system, number FROM ticket_numbers WHERE ticket_id = $1")
        .bind(ticket_id.to_string())
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("system")?, r.try_get("number")?)))
        .collect()
}

async fn ticket_with(conn: &mut PgConnection, id: Uuid, seal: &Seal) -> Result<Option<Ticket>> {
    let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets t WHERE t.id = $1");
    let Some(row) = sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let numbers = numbers_of(conn, id).await?;
    ticket_from_row(&row, numbers, seal).map(Some)
}

async fn delivery_with(conn: &mut PgConnection, id: Uuid) -> Result<Option<Delivery>> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = $1");
    sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
}

/// The rows that complete claims of the claimed `deliveries` (tagged `delivery`): their tickets
/// with every number and their events, tagged for [`claims_from`].
async fn claim_parts(conn: &mut PgConnection, deliveries: &[PgRow]) -> Result<Vec<PgRow>> {
    let ids = |col| {
        deliveries
            .iter()
            .map(|row| row.text(col))
            .collect::<Result<Vec<_>>>()
    };
    let (tickets, events) = (ids("ticket_id")?, ids("event_id")?);
    let mut rows = sqlx::query(
        "SELECT 'number' AS part, ticket_id, system, number FROM ticket_numbers \
         WHERE ticket_id = ANY($1)",
    )
    .bind(&tickets)
    .fetch_all(&mut *conn)
    .await?;
    let sql =
        format!("SELECT 'ticket' AS part, {TICKET_COLUMNS} FROM tickets t WHERE t.id = ANY($1)");
    rows.extend(
        sqlx::query(&sql)
            .bind(&tickets)
            .fetch_all(&mut *conn)
            .await?,
    );
    rows.extend(
        sqlx::query("SELECT 'event' AS part, id, body FROM events WHERE id = ANY($1)")
            .bind(&events)
            .fetch_all(&mut *conn)
            .await?,
    );
    Ok(rows)
}

/// Returns the earlier ticket and event when one of `keys` was already used by `source` (the
/// first such key's).
async fn seen(
    conn: &mut PgConnection,
    source: &str,
    keys: &[String],
) -> Result<Option<(Uuid, Uuid)>> {
    let row = sqlx::query(
        "SELECT ticket_id, event_id FROM inbound_keys WHERE source = $1 AND key = ANY($2) \
         ORDER BY array_position($2, key) LIMIT 1",
    )
    .bind(source)
    .bind(keys)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| Ok((get_uuid(&row, "ticket_id")?, get_uuid(&row, "event_id")?)))
        .transpose()
}

/// The common part of [`EVENT_INSERT`] and [`TICKET_INSERT`]: an event with its idempotency
/// keys, its numbers, its outbox rows and the clocks it starts (the arrays are unnested into
/// rows). Its keys clashing with an earlier event's is a unique violation that undoes the whole
/// statement.
static EVENT_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH e AS (INSERT INTO events (id, ticket_id, kind, source, at, body) \
             VALUES ($1, $2, $3, $4, $5, $6)), \
         k AS (INSERT INTO inbound_keys (source, key, ticket_id, event_id) \
             SELECT $4, key, $2, $1 FROM unnest($7::TEXT[]) AS key), \
         n AS (INSERT INTO ticket_numbers (system, number, ticket_id) \
             SELECT system, number, $2 FROM unnest($8::TEXT[], $9::TEXT[]) AS x (system, number) \
             ON CONFLICT DO NOTHING), \
         d AS (INSERT INTO deliveries (id, ticket_id, event_id, partner, message_id, kind, status, \
             attempts, lease_token, due_at, created_at, updated_at) \
             SELECT id, $2, $1, partner, message_id, $3, status, attempts, lease_token, due_at, $10, $10 \
             FROM unnest($11::TEXT[], $12::TEXT[], $13::TEXT[], $14::TEXT[], $15::BIGINT[], \
                 $16::TEXT[], $17::BIGINT[]) \
             AS x (id, partner, message_id, status, attempts, lease_token, due_at)), \
         c AS (INSERT INTO sla_clocks ({CLOCK_COLUMNS}) \
             SELECT id, ticket_id, kind, party, urgent, started_at, due_at, urge_at, provisional, \
                 extended_days, 'running', NULL::BIGINT, NULL::BIGINT, NULL::BIGINT \
             FROM unnest($18::TEXT[], $19::TEXT[], $20::TEXT[], $21::TEXT[], $22::BOOLEAN[], \
                 $23::BIGINT[], $24::BIGINT[], $25::BIGINT[], $26::BOOLEAN[], $27::BIGINT[]) \
             AS x (id, ticket_id, kind, party, urgent, started_at, due_at, urge_at, provisional, \
                 extended_days)) "
    )
});

/// An event on an existing ticket, in one statement.
static EVENT_INSERT: LazyLock<String> =
    LazyLock::new(|| format!("{} SELECT 1::BIGINT", *EVENT_ROWS));

/// A new ticket with its first event, in one statement; it returns the caller's earlier tickets
/// since `$37` when that is given (the statement's reads do not see its own writes: the new
/// ticket is not among them).
static TICKET_INSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}, t AS (INSERT INTO tickets (id, origin, external_id, status, kind, urgency, draft, \
             created_at, updated_at, caller_hash) \
             VALUES ($2, $28, $29, $30, $31, $32, $33, $34, $35, $36)) \
         SELECT id, created_at FROM tickets \
         WHERE $37::BIGINT IS NOT NULL AND caller_hash = $36 AND created_at >= $37",
        *EVENT_ROWS
    )
});

/// A new ticket's row for [`insert_event`].
struct TicketRow<'a> {
    ticket: &'a Ticket,
    draft: &'a str,
    caller_hash: Option<&'a str>,
    /// The caller's tickets since then are wanted.
    repeat_since: Option<DateTime<Utc>>,
}

/// Writes an event with its idempotency keys, numbers, outbox rows and the clocks `clocks`
/// starts (other clock changes are the caller's), and `ticket`, a new ticket's row, when given:
/// one statement. Returns the ids and message ids of the outbox rows, in the order of `targets`,
/// and, for a new ticket with `repeat_since`, its caller's tickets since then, this one included,
/// oldest first. The rows of partners the `handoff` names are written already claimed under its
/// lease.
#[allow(clippy::too_many_arguments)]
async fn insert_event(
    conn: &mut PgConnection,
    ticket: Option<TicketRow<'_>>,
    event: &Event,
    body: &str,
    keys: &[String],
    numbers: &[(String, String)],
    targets: &[String],
    handoff: Option<&Handoff>,
    clocks: &[ClockOp],
) -> Result<(Vec<(Uuid, Uuid)>, Vec<Uuid>)> {
    let now = ms(Utc::now());
    let mut ids = Vec::with_capacity(targets.len());
    let mut outbox = Outbox::default();
    for partner in targets {
        let (id, message_id) = (Uuid::now_v7(), Uuid::now_v7());
        let first = first_state(handoff, partner, now);
        outbox.id.push(id.to_string());
        outbox.partner.push(partner.clone());
        outbox.message_id.push(message_id.to_string());
        outbox.status.push(first.status);
        outbox.attempts.push(first.attempts);
        outbox.lease.push(first.lease);
        outbox.due.push(first.due);
        ids.push((id, message_id));
    }
    let starts: Vec<&Clock> = clocks
        .iter()
        .filter_map(|op| match op {
            ClockOp::Start(c) => Some(c),
            _ => None,
        })
        .collect();
    let column = |f: &dyn Fn(&Clock) -> String| starts.iter().map(|c| f(c)).collect::<Vec<_>>();
    let times =
        |f: &dyn Fn(&Clock) -> DateTime<Utc>| starts.iter().map(|c| ms(f(c))).collect::<Vec<_>>();
    let sql = if ticket.is_some() {
        &*TICKET_INSERT
    } else {
        &*EVENT_INSERT
    };
    let query = sqlx::query(sql)
        .bind(event.id.to_string())
        .bind(event.ticket_id.to_string())
        .bind(event.kind().as_str())
        .bind(&event.source)
        .bind(ms(event.at))
        .bind(body)
        .bind(keys)
        .bind(numbers.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>())
        .bind(numbers.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>())
        .bind(now)
        .bind(outbox.id)
        .bind(outbox.partner)
        .bind(outbox.message_id)
        .bind(outbox.status)
        .bind(outbox.attempts)
        .bind(outbox.lease)
        .bind(outbox.due)
        .bind(column(&|c| c.id.to_string()))
        .bind(column(&|c| c.ticket_id.to_string()))
        .bind(column(&|c| c.kind.as_str().to_owned()))
        .bind(column(&|c| c.party.clone()))
        .bind(starts.iter().map(|c| c.urgent).collect::<Vec<_>>())
        .bind(times(&|c| c.started_at))
        .bind(times(&|c| c.due_at))
        .bind(times(&|c| c.urge_at))
        .bind(starts.iter().map(|c| c.provisional).collect::<Vec<_>>())
        .bind(
            starts
                .iter()
                .map(|c| i64::from(c.extended_days))
                .collect::<Vec<_>>(),
        );
    let Some(row) = ticket else {
        query.execute(&mut *conn).await?;
        return Ok((ids, Vec::new()));
    };
    let t = row.ticket;
    let since = row.repeat_since.map(ms);
    let earlier = query
        .bind(&t.origin)
        .bind(&t.external_id)
        .bind(t.status.as_str())
        .bind(enum_str(&t.draft.kind))
        .bind(enum_str(&t.draft.urgency))
        .bind(row.draft)
        .bind(ms(t.created_at))
        .bind(ms(t.updated_at))
        .bind(row.caller_hash)
        .bind(since)
        .fetch_all(&mut *conn)
        .await?;
    let mut callers = earlier
        .iter()
        .map(|r| Ok((r.int("created_at")?, get_uuid(r, "id")?)))
        .collect::<Result<Vec<_>>>()?;
    if row.caller_hash.is_some() && since.is_some_and(|since| ms(t.created_at) >= since) {
        callers.push((ms(t.created_at), t.id));
    }
    // As `ORDER BY created_at, id` orders them (a UUID's bytes sort as its text does).
    callers.sort_unstable();
    Ok((ids, callers.into_iter().map(|(_, id)| id).collect()))
}

/// The clock changes of `ops` that [`insert_event`] leaves to the caller: all but starts.
fn after_event(ops: &[ClockOp]) -> impl Iterator<Item = &ClockOp> {
    ops.iter().filter(|op| !matches!(op, ClockOp::Start(_)))
}

/// An event's outbox rows, column by column, as [`EVENT_INSERT`] takes them.
#[derive(Default)]
struct Outbox {
    id: Vec<String>,
    partner: Vec<String>,
    message_id: Vec<String>,
    status: Vec<&'static str>,
    attempts: Vec<i64>,
    lease: Vec<Option<String>>,
    due: Vec<i64>,
}

/// Applies clock changes in order.
async fn apply_clock_ops<'a>(
    conn: &mut PgConnection,
    ticket_id: Uuid,
    ops: impl IntoIterator<Item = &'a ClockOp>,
) -> Result<()> {
    for op in ops {
        match op {
            ClockOp::Start(c) => {
                sqlx::query(&format!(
                    "INSERT INTO sla_clocks ({CLOCK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', NULL, NULL, NULL)"
                ))
                .bind(c.id.to_string())
                .bind(c.ticket_id.to_string())
                .bind(c.kind.as_str())
                .bind(&c.party)
                .bind(c.urgent)
                .bind(ms(c.started_at))
                .bind(ms(c.due_at))
                .bind(ms(c.urge_at))
                .bind(c.provisional)
                .bind(i64::from(c.extended_days))
                .execute(&mut *conn)
                .await?;
            }
            ClockOp::Close { kind, party, at } | ClockOp::Stop { kind, party, at } => {
                let state = if matches!(op, ClockOp::Stop { .. }) {
                    "'stopped'"
                } else {
                    "CASE WHEN $1 <= due_at THEN 'met' ELSE 'missed' END"
                };
                sqlx::query(&format!(
                    "UPDATE sla_clocks SET state = {state}, stopped_at = $1 \
                     WHERE ticket_id = $2 AND kind = $3 AND ($4 IS NULL OR party = $4) AND state = 'running'"
                ))
                .bind(ms(*at))
                .bind(ticket_id.to_string())
                .bind(kind.as_str())
                .bind(party)
                .execute(&mut *conn)
                .await?;
            }
            ClockOp::Reschedule {
                id,
                due_at,
                urge_at,
                provisional,
                extended_days,
            } => {
                sqlx::query(
                    "UPDATE sla_clocks SET due_at = $1, urge_at = $2, provisional = $3, extended_days = $4, \
                     urged_at = CASE WHEN $5 > COALESCE(urged_at, 0) THEN NULL ELSE urged_at END, \
                     overdue_at = CASE WHEN $6 > COALESCE(overdue_at, 0) THEN NULL ELSE overdue_at END \
                     WHERE id = $7 AND state = 'running'",
                )
                .bind(ms(*due_at))
                .bind(ms(*urge_at))
                .bind(provisional)
                .bind(i64::from(*extended_days))
                .bind(ms(*urge_at))
                .bind(ms(*due_at))
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(())
}

async fn insert_transfer_entry(conn: &mut PgConnection, e: &TransferEntry) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO transfer_entries (transfer_id, kind, at, recorded_at, source, \
         outcome, detail, key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(e.transfer_id.to_string())
    .bind(&e.kind)
    .bind(ms(e.at))
    .bind(ms(e.recorded_at))
    .bind(&e.source)
    .bind(e.outcome.as_str())
    .bind(&e.detail)
    .bind(&e.key)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

async fn remember_partner_ref(
    conn: &mut PgConnection,
    delivery_id: Uuid,
    partner_ref: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ticket_numbers (system, number, ticket_id) \
         SELECT partner, $1, ticket_id FROM deliveries WHERE id = $2 ON CONFLICT DO NOTHING",
    )
    .bind(partner_ref)
    .bind(delivery_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Retention's rewrite: each row `select` finds (its `id` and `doc`, given the cutoff and a
/// limit) gets `purge(doc)` written back by `update` (the new doc, now, the id); returns the ids.
async fn purge_rows(
    conn: &mut PgConnection,
    select: &str,
    update: &'static str,
    before: DateTime<Utc>,
    limit: u32,
    purge: impl Fn(&str) -> Result<String>,
) -> Result<Vec<Uuid>> {
    let rows = sqlx::query(select)
        .bind(ms(before))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
    let now = ms(Utc::now());
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let id = get_uuid(row, "id")?;
        sqlx::query(update)
            .bind(purge(&row.text("doc")?)?)
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        ids.push(id);
    }
    Ok(ids)
}

#[async_trait]
impl Store for PgStore {
    async fn accept_ticket(&self, cmd: NewTicket) -> Result<Accepted> {
        let draft = self.seal.draft_out(&cmd.ticket.draft)?;
        let body = self.seal.event_out(&cmd.event)?;
        // The request's nonce in a statement of its own before: were it lost in a crash, so is
        // the ticket after it, and a replay is then the duplicate its keys make it. Should the
        // accept fail, the nonce is given back below.
        let nonce = cmd.nonce.clone();
        if let Some(n) = &nonce
            && !self.remember_nonce(n).await?
        {
            return Err(StoreError::Replayed(n.value.clone()));
        }
        let accepted = self.accept_taken(cmd, draft, body).await;
        if let (Err(e), Some(n)) = (&accepted, &nonce) {
            self.give_back_nonce(n, e).await;
        }
        accepted
    }

    async fn record_event(&self, cmd: NewEvent) -> Result<Accepted> {
        let body = self.seal.event_out(&cmd.event)?;
        self.write(move |conn| {
            let cmd = cmd.clone();
            let body = body.clone();
            Box::pin(async move {
                let e = &cmd.event;
                if let Some((ticket_id, event_id)) = seen(conn, &e.source, &cmd.keys).await? {
                    return Ok(Accepted::Duplicate {
                        ticket_id,
                        event_id,
                    });
                }
                let expected = cmd.expected_status.map(TicketStatus::as_str);
                let updated = sqlx::query(
                    "UPDATE tickets SET status = COALESCE($1, status), updated_at = $2 \
                     WHERE id = $3 AND ($4 IS NULL OR status = $5)",
                )
                .bind(cmd.status.map(TicketStatus::as_str))
                .bind(ms(Utc::now()))
                .bind(e.ticket_id.to_string())
                .bind(expected)
                .bind(expected)
                .execute(&mut *conn)
                .await?;
                if updated.rows_affected() == 0 {
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT 1::BIGINT FROM tickets WHERE id = $1")
                            .bind(e.ticket_id.to_string())
                            .fetch_optional(&mut *conn)
                            .await?;
                    return Err(match exists {
                        Some(_) => StoreError::StatusChanged,
                        None => StoreError::Conflict(format!("no ticket {}", e.ticket_id)),
                    });
                }
                let (written, _) = insert_event(
                    conn,
                    None,
                    e,
                    &body,
                    &cmd.keys,
                    &cmd.numbers,
                    &cmd.targets,
                    None,
                    &cmd.clocks,
                )
                .await?;
                apply_clock_ops(conn, e.ticket_id, after_event(&cmd.clocks)).await?;
                Ok(Accepted::Created {
                    ticket_id: e.ticket_id,
                    event_id: e.id,
                    deliveries: written.into_iter().map(|(id, _)| id).collect(),
                    caller_tickets: Vec::new(),
                    claims: Vec::new(),
                })
            })
        })
        .await
    }

    async fn seen(&self, source: &str, keys: &[String]) -> Result<Option<(Uuid, Uuid)>> {
        let mut conn = self.pool.acquire().await?;
        seen(&mut conn, source, keys).await
    }

    async fn record_refusal(&self, r: RefusedEvent) -> Result<()> {
        self.write(move |conn| {
            let r = r.clone();
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO refused_events (id, ticket_id, source, kind, status, reason, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(Uuid::now_v7().to_string())
                .bind(r.ticket_id.to_string())
                .bind(&r.source)
                .bind(r.kind.as_str())
                .bind(r.status.as_str())
                .bind(&r.reason)
                .bind(ms(r.at))
                .execute(conn)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn refusals(&self, ticket_id: Uuid) -> Result<Vec<RefusedEvent>> {
        let rows = sqlx::query(
            "SELECT source, kind, status, reason, at FROM refused_events WHERE ticket_id = $1 \
             ORDER BY at, id",
        )
        .bind(ticket_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(RefusedEvent {
                    ticket_id,
                    source: r.try_get("source")?,
                    kind: EventKind::from_str(&kind).map_err(StoreError::Corrupt)?,
                    status: get_enum(r, "status")?,
                    reason: r.try_get("reason")?,
                    at: from_ms(r.try_get("at")?)?,
                })
            })
            .collect()
    }

    async fn resolve_number(&self, system: &str, number: &str) -> Result<Option<Uuid>> {
        let row =
            sqlx::query("SELECT ticket_id FROM ticket_numbers WHERE system = $1 AND number = $2")
                .bind(system)
                .bind(number)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| get_uuid(&r, "ticket_id")).transpose()
    }

    async fn ticket(&self, id: Uuid) -> Result<Option<Ticket>> {
        let mut conn = self.pool.acquire().await?;
        ticket_with(&mut conn, id, &self.seal).await
    }

    async fn tickets(&self, q: &TicketQuery) -> Result<Vec<Ticket>> {
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets t \
             WHERE ($1 IS NULL OR t.origin = $1) AND ($2 IS NULL OR t.status = $2) \
               AND ($3 IS NULL OR t.id > $3) \
             ORDER BY t.id LIMIT $4"
        );
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query(&sql)
            .bind(&q.origin)
            .bind(q.status.map(TicketStatus::as_str))
            .bind(q.after.map(|u| u.to_string()))
            .bind(i64::from(page_limit(q.limit)))
            .fetch_all(&mut *conn)
            .await?;
        // Every listed ticket's numbers in one query.
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<std::result::Result<_, _>>()?;
        let mut numbers: std::collections::HashMap<String, BTreeMap<String, String>> =
            std::collections::HashMap::new();
        if !ids.is_empty() {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "SELECT ticket_id, system, number FROM ticket_numbers WHERE ticket_id IN (",
            );
            let mut list = qb.separated(", ");
            for id in &ids {
                list.push_bind(id);
            }
            qb.push(")");
            for r in qb.build().fetch_all(&mut *conn).await? {
                numbers
                    .entry(r.try_get("ticket_id")?)
                    .or_default()
                    .insert(r.try_get("system")?, r.try_get("number")?);
            }
        }
        rows.iter()
            .zip(&ids)
            .map(|(row, id)| {
                ticket_from_row(row, numbers.remove(id).unwrap_or_default(), &self.seal)
            })
            .collect()
    }

    async fn events(&self, ticket_id: Uuid) -> Result<Vec<Event>> {
        let rows = sqlx::query("SELECT body FROM events WHERE ticket_id = $1 ORDER BY at, id")
            .bind(ticket_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| self.seal.event_in(r.try_get("body")?))
            .collect()
    }

    async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>> {
        let mut conn = self.pool.acquire().await?;
        delivery_with(&mut conn, id).await
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d \
             WHERE {DELIVERY_FILTER} AND ($8 IS NULL OR d.id > $8) \
             ORDER BY d.id LIMIT $9"
        );
        let rows = bind_delivery_filter(sqlx::query(&sql), q)
            .bind(q.after.map(|u| u.to_string()))
            .bind(i64::from(page_limit(q.limit)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn count_deliveries(&self, q: &DeliveryQuery) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) AS n FROM deliveries d WHERE {DELIVERY_FILTER}");
        let row = bind_delivery_filter(sqlx::query(&sql), q)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }

    async fn attempts_for_ticket(&self, ticket_id: Uuid) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(
            "SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE d.ticket_id = $1 ORDER BY a.started_at, a.number",
        )
        .bind(ticket_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRecord {
                    delivery_id: get_uuid(r, "delivery_id")?,
                    number: r.try_get::<i64, _>("number")? as u32,
                    started_at: from_ms(r.try_get("started_at")?)?,
                    duration_ms: r.try_get::<i64, _>("duration_ms")? as u64,
                    outcome: r.try_get("outcome")?,
                    http_status: r
                        .try_get::<Option<i64>, _>("http_status")?
                        .map(|s| s as u16),
                    partner_code: r.try_get("partner_code")?,
                    error: r.try_get("error")?,
                    partner_ref: r.try_get("partner_ref")?,
                })
            })
            .collect()
    }

    async fn claim(
        &self,
        partner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Claim>> {
        let partner = partner.to_owned();
        let lease_until = now + crate::time::span(lease);
        let seal = self.seal.clone();
        // One lease token for the batch: a claim is its delivery id with the token.
        let token = Uuid::now_v7();
        self.write(move |conn| {
            let partner = partner.clone();
            let seal = seal.clone();
            Box::pin(async move {
                let sql = format!(
                    "UPDATE deliveries AS d SET status = 'sending', attempts = d.attempts + 1, \
                     lease_token = $1, due_at = $2, updated_at = $3 \
                     WHERE d.id IN (SELECT c.id FROM deliveries c \
                         WHERE c.partner = $4 AND c.status IN {OPEN_STATUSES} AND c.due_at <= $3 \
                           AND NOT EXISTS (SELECT 1 FROM deliveries e \
                               WHERE e.ticket_id = c.ticket_id AND e.partner = c.partner \
                                 AND e.seq < c.seq AND e.status NOT IN {SETTLED_STATUSES}) \
                         ORDER BY c.due_at LIMIT $5 FOR UPDATE OF c SKIP LOCKED) \
                     RETURNING 'delivery' AS part, {DELIVERY_COLUMNS}, d.seq"
                );
                let mut rows = sqlx::query(&sql)
                    .bind(token.to_string())
                    .bind(ms(lease_until))
                    .bind(ms(now))
                    .bind(&partner)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let parts = claim_parts(conn, &rows).await?;
                rows.extend(parts);
                claims_from(&rows, token, &seal)
            })
        })
        .await
    }

    async fn claimed(&self, token: &ClaimToken) -> Result<Option<Claim>> {
        let mut conn = self.pool.acquire().await?;
        let sql = format!(
            "SELECT 'delivery' AS part, {DELIVERY_COLUMNS}, d.seq FROM deliveries d \
             WHERE d.id = $1 AND d.lease_token = $2 AND d.status = 'sending'"
        );
        let mut rows = sqlx::query(&sql)
            .bind(token.delivery_id.to_string())
            .bind(token.lease_token.to_string())
            .fetch_all(&mut *conn)
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let parts = claim_parts(&mut conn, &rows).await?;
        rows.extend(parts);
        let claims = claims_from(&rows, token.lease_token, &self.seal)?;
        Ok(claims.into_iter().next())
    }

    async fn finish_attempt(
        &self,
        claim: &ClaimToken,
        attempt: AttemptRecord,
        next: Next,
    ) -> Result<bool> {
        let claim = claim.clone();
        // One statement: the attempt, the delivery's next state while the claim holds, and the
        // partner's number for the ticket when it gave one.
        self.run(false, move |conn| {
            let next = next.clone();
            let attempt = attempt.clone();
            Box::pin(async move {
                let now = ms(Utc::now());
                let (status, due, error, partner_ref, acked) = match &next {
                    Next::Acknowledged { partner_ref } => {
                        ("acknowledged", None, None, partner_ref.clone(), Some(now))
                    }
                    Next::AwaitingAck { until } => {
                        ("awaiting_ack", Some(ms(*until)), None, None, None)
                    }
                    Next::Retry { at, error } => {
                        ("retrying", Some(ms(*at)), Some(error.clone()), None, None)
                    }
                    Next::Dead { error } => ("dead", None, Some(error.clone()), None, None),
                    Next::Skipped { reason } => ("skipped", None, Some(reason.clone()), None, None),
                };
                let held: i64 = sqlx::query_scalar(
                    "WITH a AS (INSERT INTO attempts (delivery_id, number, started_at, \
                         duration_ms, outcome, http_status, partner_code, error, partner_ref) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING), \
                     u AS (UPDATE deliveries SET status = $10, due_at = COALESCE($11, due_at), \
                         last_error = $12, partner_ref = COALESCE($13, partner_ref), \
                         acked_at = COALESCE($14, acked_at), lease_token = NULL, updated_at = $15 \
                         WHERE id = $16 AND lease_token = $17 AND status = 'sending' \
                         RETURNING partner, ticket_id), \
                     n AS (INSERT INTO ticket_numbers (system, number, ticket_id) \
                         SELECT partner, $13, ticket_id FROM u WHERE $13::TEXT IS NOT NULL \
                         ON CONFLICT DO NOTHING) \
                     SELECT count(*) FROM u",
                )
                .bind(attempt.delivery_id.to_string())
                .bind(i64::from(attempt.number))
                .bind(ms(attempt.started_at))
                .bind(attempt.duration_ms as i64)
                .bind(&attempt.outcome)
                .bind(attempt.http_status.map(i64::from))
                .bind(&attempt.partner_code)
                .bind(&attempt.error)
                .bind(&attempt.partner_ref)
                .bind(status)
                .bind(due)
                .bind(error)
                .bind(&partner_ref)
                .bind(acked)
                .bind(now)
                .bind(claim.delivery_id.to_string())
                .bind(claim.lease_token.to_string())
                .fetch_one(&mut *conn)
                .await?;
                Ok(held == 1)
            })
        })
        .await
    }

    async fn acknowledge(
        &self,
        partner: &str,
        message_id: Uuid,
        ack: LateAck,
    ) -> Result<Option<Delivery>> {
        let partner = partner.to_owned();
        self.write(move |conn| {
            let partner = partner.clone();
            let ack = ack.clone();
            Box::pin(async move {
                let Some(row) = sqlx::query(
                    "SELECT id, status FROM deliveries WHERE message_id = $1 AND partner = $2",
                )
                .bind(message_id.to_string())
                .bind(&partner)
                .fetch_optional(&mut *conn)
                .await?
                else {
                    return Ok(None);
                };
                let id = get_uuid(&row, "id")?;
                let status: String = row.try_get("status")?;
                let now = ms(Utc::now());
                if status != "acknowledged" {
                    if ack.accepted {
                        sqlx::query(
                            "UPDATE deliveries SET status = 'acknowledged', lease_token = NULL, \
                             partner_ref = COALESCE($1, partner_ref), last_error = NULL, \
                             acked_at = $2, updated_at = $3 WHERE id = $4",
                        )
                        .bind(&ack.partner_ref)
                        .bind(now)
                        .bind(now)
                        .bind(id.to_string())
                        .execute(&mut *conn)
                        .await?;
                        if let Some(r) = &ack.partner_ref {
                            remember_partner_ref(conn, id, r).await?;
                        }
                    } else {
                        let reason = format!(
                            "refused by partner: {}",
                            ack.reason.as_deref().unwrap_or("no reason given")
                        );
                        sqlx::query(
                            "UPDATE deliveries SET status = 'dead', lease_token = NULL, \
                             last_error = $1, updated_at = $2 WHERE id = $3",
                        )
                        .bind(reason)
                        .bind(now)
                        .bind(id.to_string())
                        .execute(&mut *conn)
                        .await?;
                    }
                }
                delivery_with(conn, id).await
            })
        })
        .await
    }

    async fn retry(&self, id: Uuid, now: DateTime<Utc>) -> Result<RetryResult> {
        self.write(move |conn| {
            Box::pin(async move {
                let Some(d) = delivery_with(conn, id).await? else {
                    return Ok(RetryResult::NotFound);
                };
                if d.status != DeliveryStatus::Dead {
                    return Ok(RetryResult::NotDead(d.status));
                }
                sqlx::query(
                    "UPDATE deliveries SET status = 'pending', due_at = $1, round_base = attempts, \
                     updated_at = $2 WHERE id = $3 AND status = 'dead'",
                )
                .bind(ms(now))
                .bind(ms(now))
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
                let d = delivery_with(conn, id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("delivery {id} vanished")))?;
                Ok(RetryResult::Requeued(d))
            })
        })
        .await
    }

    async fn next_due(&self, partner: &str) -> Result<Option<DateTime<Utc>>> {
        let sql = format!(
            "SELECT MIN(due_at) FROM deliveries WHERE partner = $1 AND status IN {OPEN_STATUSES}"
        );
        let v: Option<i64> = sqlx::query_scalar(&sql)
            .bind(partner)
            .fetch_one(&self.pool)
            .await?;
        v.map(from_ms).transpose()
    }

    async fn release_claims(&self, tokens: &[ClaimToken], now: DateTime<Utc>) -> Result<u64> {
        let (ids, leases): (Vec<String>, Vec<String>) = tokens
            .iter()
            .map(|t| (t.delivery_id.to_string(), t.lease_token.to_string()))
            .unzip();
        self.write(move |conn| {
            let (ids, leases) = (ids.clone(), leases.clone());
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE deliveries d SET attempts = d.attempts - 1, \
                     status = CASE WHEN d.attempts > 1 THEN 'retrying' ELSE 'pending' END, \
                     lease_token = NULL, due_at = $1, updated_at = $1 \
                     FROM UNNEST($2::text[], $3::text[]) AS c(id, lease) \
                     WHERE d.id = c.id AND d.lease_token = c.lease AND d.status = 'sending'",
                )
                .bind(ms(now))
                .bind(ids)
                .bind(leases)
                .execute(conn)
                .await?;
                Ok(r.rows_affected())
            })
        })
        .await
    }

    async fn release_retries(
        &self,
        partner: &str,
        now: DateTime<Utc>,
        limit: Option<u32>,
    ) -> Result<u64> {
        let partner = partner.to_owned();
        self.write(move |conn| {
            let partner = partner.clone();
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE deliveries SET due_at = $1, updated_at = $1 WHERE id IN ( \
                     SELECT id FROM deliveries WHERE partner = $2 AND status = 'retrying' \
                     AND due_at > $1 ORDER BY due_at LIMIT $3)",
                )
                .bind(ms(now))
                .bind(&partner)
                .bind(limit.map(i64::from))
                .execute(conn)
                .await?;
                Ok(r.rows_affected())
            })
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<StatusCount>> {
        let rows = sqlx::query(
            "SELECT partner, status, COUNT(*) AS n, MIN(created_at) AS oldest \
             FROM deliveries GROUP BY partner, status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(StatusCount {
                    partner: r.try_get("partner")?,
                    status: DeliveryStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
                    count: r.try_get::<i64, _>("n")? as u64,
                    oldest: r
                        .try_get::<Option<i64>, _>("oldest")?
                        .map(from_ms)
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn clocks(&self, ticket_id: Uuid) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE ticket_id = $1 ORDER BY started_at, id"
        ))
        .bind(ticket_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn clocks_waking(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks \
             WHERE state = 'running' AND overdue_at IS NULL AND {WAKE} <= $1 \
             ORDER BY {WAKE} LIMIT $2"
        ))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn mark_clock(&self, id: Uuid, mark: ClockMark, at: DateTime<Utc>) -> Result<bool> {
        let col = match mark {
            ClockMark::Urged => "urged_at",
            ClockMark::Overdue => "overdue_at",
        };
        self.write(move |conn| {
            Box::pin(async move {
                let r = sqlx::query(&format!(
                    "UPDATE sla_clocks SET {col} = $1 WHERE id = $2 AND {col} IS NULL"
                ))
                .bind(ms(at))
                .bind(id.to_string())
                .execute(conn)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn provisional_clocks(&self) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE state = 'running' AND provisional"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn change_clocks(&self, ops: Vec<ClockOp>) -> Result<()> {
        self.write(move |conn| {
            let ops = ops.clone();
            Box::pin(async move { apply_clock_ops(conn, Uuid::nil(), &ops).await })
        })
        .await
    }

    async fn clocks_started(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE started_at >= $1 AND started_at < $2"
        ))
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn events_between(
        &self,
        kind: EventKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT body FROM events WHERE kind = $1 AND at >= $2 AND at < $3 ORDER BY at",
        )
        .bind(kind.as_str())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| self.seal.event_in(r.try_get("body")?))
            .collect()
    }

    async fn put_case_update(&self, u: &CaseUpdate) -> Result<bool> {
        let (case_no, version, body) = (
            u.case_no.clone(),
            u.version as i64,
            serde_json::to_string(u)?,
        );
        self.write(move |conn| {
            let (case_no, body) = (case_no.clone(), body.clone());
            Box::pin(async move {
                let r = sqlx::query(
                    "INSERT INTO legal_aid_updates (case_no, version, body, received_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(&case_no)
                .bind(version)
                .bind(&body)
                .bind(ms(Utc::now()))
                .execute(conn)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn case_updates_after(&self, case_no: &str, version: u64) -> Result<Vec<CaseUpdate>> {
        let rows = sqlx::query(
            "SELECT body FROM legal_aid_updates WHERE case_no = $1 AND version > $2 ORDER BY version",
        )
        .bind(case_no)
        .bind(version as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(doc_from_row).collect()
    }

    async fn legal_aid_case(&self, case_no: &str) -> Result<Option<LegalAidCase>> {
        let row = sqlx::query("SELECT body FROM legal_aid_cases WHERE case_no = $1")
            .bind(case_no)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(doc_from_row).transpose()
    }

    async fn save_case(&self, case: &LegalAidCase, expected: u64) -> Result<bool> {
        let c = case.clone();
        let body = serde_json::to_string(case)?;
        self.write(move |conn| {
            let (c, body) = (c.clone(), body.clone());
            Box::pin(async move {
                let r = if expected == 0 {
                    sqlx::query(
                        "INSERT INTO legal_aid_cases \
                         (case_no, ticket_id, version, open, body, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    )
                    .bind(&c.case_no)
                    .bind(c.ticket_id.to_string())
                    .bind(c.version as i64)
                    .bind(!c.status.is_final())
                    .bind(&body)
                    .bind(ms(c.updated_at))
                    .execute(conn)
                    .await?
                } else {
                    sqlx::query(
                        "UPDATE legal_aid_cases SET version = $1, open = $2, body = $3, updated_at = $4 \
                         WHERE case_no = $5 AND version = $6",
                    )
                    .bind(c.version as i64)
                    .bind(!c.status.is_final())
                    .bind(&body)
                    .bind(ms(c.updated_at))
                    .bind(&c.case_no)
                    .bind(expected as i64)
                    .execute(conn)
                    .await?
                };
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn legal_aid_cases(&self, q: &CaseQuery) -> Result<Vec<LegalAidCase>> {
        let rows = sqlx::query(
            "SELECT body FROM legal_aid_cases WHERE ($1::text IS NULL OR ticket_id = $1) \
             AND ($2::boolean IS NULL OR open = $2) ORDER BY case_no",
        )
        .bind(q.ticket_id.map(|t| t.to_string()))
        .bind(q.open)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(doc_from_row).collect()
    }

    async fn raise_alert(&self, a: NewAlert) -> Result<bool> {
        self.write(move |conn| {
            let a = a.clone();
            Box::pin(async move {
                let r = sqlx::query(
                    "INSERT INTO alerts (id, key, kind, ticket_id, party, message, detail, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(Uuid::now_v7().to_string())
                .bind(&a.key)
                .bind(a.kind.as_str())
                .bind(a.ticket_id.map(|t| t.to_string()))
                .bind(&a.party)
                .bind(&a.message)
                .bind(a.detail.to_string())
                .bind(ms(Utc::now()))
                .execute(conn)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>> {
        let rows = sqlx::query(
            "SELECT * FROM alerts WHERE ($1::BOOLEAN IS NULL OR $1 = (acknowledged_at IS NULL)) \
             AND ($2 IS NULL OR kind = $2) AND ($3 IS NULL OR ticket_id = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(q.open)
        .bind(q.kind.map(AlertKind::as_str))
        .bind(q.ticket_id.map(|t| t.to_string()))
        .bind(i64::from(page_limit(q.limit)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn open_alert_counts(&self) -> Result<Vec<AlertCount>> {
        let rows = sqlx::query(
            "SELECT a.kind, a.party, (t.draft::JSON -> 'units' ->> 0) AS unit, COUNT(*) AS n \
             FROM alerts a LEFT JOIN tickets t ON t.id = a.ticket_id \
             WHERE a.acknowledged_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertCount {
                    kind: get_enum(r, "kind")?,
                    party: r.try_get("party")?,
                    unit: r.try_get("unit")?,
                    open: r.try_get::<i64, _>("n")? as u64,
                })
            })
            .collect()
    }

    async fn ack_alert(&self, id: Uuid, by: &str) -> Result<Option<Alert>> {
        let by = by.to_owned();
        self.write(move |conn| {
            let by = by.clone();
            Box::pin(async move {
                sqlx::query(
                    "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2 \
                     WHERE id = $3 AND acknowledged_at IS NULL",
                )
                .bind(ms(Utc::now()))
                .bind(&by)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
                sqlx::query("SELECT * FROM alerts WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(conn)
                    .await?
                    .as_ref()
                    .map(alert_from_row)
                    .transpose()
            })
        })
        .await
    }

    async fn caller_tickets(&self, caller_hash: &str, since: DateTime<Utc>) -> Result<Vec<Uuid>> {
        let mut conn = self.pool.acquire().await?;
        caller_tickets(&mut conn, caller_hash, since).await
    }

    async fn cursor(&self, partner: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT cursor FROM partner_cursors WHERE partner = $1")
                .bind(partner)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_cursor(&self, partner: &str, cursor: &str) -> Result<()> {
        let (partner, cursor) = (partner.to_owned(), cursor.to_owned());
        self.write(move |conn| {
            let partner = partner.clone();
            let cursor = cursor.clone();
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO partner_cursors (partner, cursor, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (partner) DO UPDATE SET cursor = excluded.cursor, \
                     updated_at = excluded.updated_at",
                )
                .bind(&partner)
                .bind(&cursor)
                .bind(ms(Utc::now()))
                .execute(conn)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn insert_transfer(
        &self,
        transfer: &Transfer,
        entry: TransferEntry,
    ) -> Result<TransferInsert> {
        let t = transfer.clone();
        let doc = self.seal.transfer_out(&t)?;
        self.write(move |conn| {
            let t = t.clone();
            let entry = entry.clone();
            let doc = doc.clone();
            Box::pin(async move {
                if t.direction == crate::transfer::record::Direction::Inbound
                    && let Some(r) = &t.partner_ref
                {
                    let existing: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM transfers WHERE direction = 'inbound' AND partner = $1 \
                         AND partner_ref = $2",
                    )
                    .bind(&t.partner)
                    .bind(r)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if let Some(id) = existing {
                        let id =
                            Uuid::from_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                        return Ok(TransferInsert::Duplicate(id));
                    }
                }
                sqlx::query(
                    "INSERT INTO transfers (id, direction, partner, call_id, partner_ref, state, \
                     requested_at, deadline_at, fallback_ticket_id, fallback_due, notify_pending, \
                     version, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(t.id.to_string())
                .bind(t.direction.as_str())
                .bind(&t.partner)
                .bind(&t.call_id)
                .bind(&t.partner_ref)
                .bind(t.state.as_str())
                .bind(ms(t.requested_at))
                .bind(t.deadline_at.map(ms))
                .bind(t.fallback_ticket_id.map(|u| u.to_string()))
                .bind(t.fallback_due())
                .bind(t.notify_pending)
                .bind(t.version)
                .bind(&doc)
                .execute(&mut *conn)
                .await?;
                insert_transfer_entry(conn, &entry).await?;
                Ok(TransferInsert::New(t.id))
            })
        })
        .await
    }

    async fn update_transfer(
        &self,
        transfer: &Transfer,
        entries: Vec<TransferEntry>,
    ) -> Result<()> {
        let t = transfer.clone();
        let doc = self.seal.transfer_out(&t)?;
        self.write(move |conn| {
            let t = t.clone();
            let entries = entries.clone();
            let doc = doc.clone();
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE transfers SET partner_ref = $1, state = $2, deadline_at = $3, \
                     fallback_ticket_id = $4, fallback_due = $5, notify_pending = $6, version = $7, \
                     doc = $8 WHERE id = $9 AND version = $10",
                )
                .bind(&t.partner_ref)
                .bind(t.state.as_str())
                .bind(t.deadline_at.map(ms))
                .bind(t.fallback_ticket_id.map(|u| u.to_string()))
                .bind(t.fallback_due())
                .bind(t.notify_pending)
                .bind(t.version)
                .bind(&doc)
                .bind(t.id.to_string())
                .bind(t.version - 1)
                .execute(&mut *conn)
                .await?;
                if r.rows_affected() != 1 {
                    return Err(StoreError::StatusChanged);
                }
                for e in &entries {
                    insert_transfer_entry(conn, e).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn record_transfer_entry(&self, entry: TransferEntry) -> Result<bool> {
        self.write(move |conn| {
            let entry = entry.clone();
            Box::pin(async move { insert_transfer_entry(conn, &entry).await })
        })
        .await
    }

    async fn transfer(&self, id: Uuid) -> Result<Option<Transfer>> {
        let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM transfers WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        doc.map(|d| self.seal.transfer_in(&d)).transpose()
    }

    async fn transfer_entries(&self, id: Uuid) -> Result<Vec<TransferEntry>> {
        let rows =
            sqlx::query("SELECT * FROM transfer_entries WHERE transfer_id = $1 ORDER BY seq")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(TransferEntry {
                    transfer_id: get_uuid(r, "transfer_id")?,
                    kind: r.try_get("kind")?,
                    at: from_ms(r.try_get("at")?)?,
                    recorded_at: from_ms(r.try_get("recorded_at")?)?,
                    source: r.try_get("source")?,
                    outcome: get_enum(r, "outcome")?,
                    detail: r.try_get("detail")?,
                    key: r.try_get("key")?,
                })
            })
            .collect()
    }

    async fn transfers_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Transfer>> {
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT doc FROM transfers WHERE deadline_at <= $1 OR fallback_due \
             OR notify_pending ORDER BY requested_at LIMIT $2",
        )
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        docs.iter().map(|d| self.seal.transfer_in(d)).collect()
    }

    async fn transfers(&self, q: &TransferQuery) -> Result<Vec<Transfer>> {
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT doc FROM transfers WHERE ($1 IS NULL OR partner = $1) \
             AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR direction = $3) \
             AND ($4 IS NULL OR requested_at >= $4) ORDER BY requested_at DESC, id DESC LIMIT $5",
        )
        .bind(&q.partner)
        .bind(q.state.map(|s| s.as_str()))
        .bind(q.direction.map(|d| d.as_str()))
        .bind(q.since.map(ms))
        .bind(i64::from(page_limit(q.limit)))
        .fetch_all(&self.pool)
        .await?;
        docs.iter().map(|d| self.seal.transfer_in(d)).collect()
    }

    async fn running_clocks(&self, limit: u32) -> Result<Vec<Clock>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLOCK_COLUMNS} FROM sla_clocks WHERE state = 'running' \
             ORDER BY due_at, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(clock_from_row).collect()
    }

    async fn record_audit(&self, entry: NewAudit) -> Result<AuditEntry> {
        self.write(move |conn| {
            let entry = entry.clone();
            Box::pin(async move {
                // One chain across every instance: appends take turns (the lock ends with the
                // transaction) instead of racing for the next sequence number and retrying.
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(AUDIT_CHAIN_LOCK)
                    .execute(&mut *conn)
                    .await?;
                let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await?;
                let (seq, prev_hash) = match last {
                    Some(r) => (
                        r.try_get::<i64, _>("seq")? as u64 + 1,
                        r.try_get::<String, _>("hash")?,
                    ),
                    None => (1, crate::audit::GENESIS.to_owned()),
                };
                // Millisecond precision, as stored, so the hash can be checked later.
                let at = from_ms(ms(Utc::now()))?;
                let hash = crate::audit::entry_hash(&prev_hash, seq, at, &entry);
                sqlx::query(
                    "INSERT INTO audit_log (seq, at, actor, role, action, target, reason, detail, \
                     prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(seq as i64)
                .bind(ms(at))
                .bind(&entry.actor)
                .bind(&entry.role)
                .bind(&entry.action)
                .bind(&entry.target)
                .bind(&entry.reason)
                .bind(entry.detail.to_string())
                .bind(&prev_hash)
                .bind(&hash)
                .execute(&mut *conn)
                .await?;
                Ok(AuditEntry {
                    seq,
                    at,
                    actor: entry.actor,
                    role: entry.role,
                    action: entry.action,
                    target: entry.target,
                    reason: entry.reason,
                    detail: entry.detail,
                    prev_hash,
                    hash,
                })
            })
        })
        .await
    }

    async fn audit_log(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE ($1 IS NULL OR actor = $1) \
             AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR seq < $3) \
             ORDER BY seq DESC LIMIT $4",
        )
        .bind(&q.actor)
        .bind(&q.action)
        .bind(q.before.map(|b| b as i64))
        .bind(i64::from(page_limit(q.limit)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(AuditEntry {
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    at: from_ms(r.try_get("at")?)?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    reason: r.try_get("reason")?,
                    detail: serde_json::from_str(&detail)?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }

    async fn set_pause(&self, partner: &str, pause: Option<Pause>) -> Result<()> {
        let partner = partner.to_owned();
        self.write(move |conn| {
            let pause = pause.clone();
            let partner = partner.clone();
            Box::pin(async move {
                match pause {
                    Some(p) => {
                        sqlx::query(
                            "INSERT INTO partner_pauses (partner, since, by, reason) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (partner) DO UPDATE SET \
                             since = excluded.since, by = excluded.by, reason = excluded.reason",
                        )
                        .bind(&partner)
                        .bind(ms(p.since))
                        .bind(&p.by)
                        .bind(&p.reason)
                        .execute(conn)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM partner_pauses WHERE partner = $1")
                            .bind(&partner)
                            .execute(conn)
                            .await?;
                    }
                }
                Ok(())
            })
        })
        .await
    }

    async fn pauses(&self) -> Result<Vec<Pause>> {
        let rows = sqlx::query("SELECT * FROM partner_pauses ORDER BY partner")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Pause {
                    partner: r.try_get("partner")?,
                    since: from_ms(r.try_get("since")?)?,
                    by: r.try_get("by")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    async fn try_lease(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        let (job, holder) = (job.to_owned(), holder.to_owned());
        let until = now
            .checked_add_signed(crate::time::span(ttl))
            .unwrap_or(now);
        self.write(move |conn| {
            let (job, holder) = (job.clone(), holder.clone());
            Box::pin(async move {
                let got: Option<String> = sqlx::query_scalar(
                    "INSERT INTO job_leases (job, holder, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE job_leases.until < $4 OR job_leases.holder = excluded.holder \
                     RETURNING holder",
                )
                .bind(&job)
                .bind(&holder)
                .bind(ms(until))
                .bind(ms(now))
                .fetch_optional(conn)
                .await?;
                Ok(got.is_some())
            })
        })
        .await
    }

    async fn remember_nonce(&self, n: &Nonce) -> Result<bool> {
        // One statement: the expired nonces go, and this one is taken unless it is still kept
        // (an expired copy of it is taken over in place rather than deleted).
        self.run(false, move |conn| {
            let n = n.clone();
            Box::pin(async move {
                let r = sqlx::query(
                    "WITH gone AS (DELETE FROM seen_nonces WHERE expires_at < $4 \
                         AND NOT (partner = $1 AND nonce = $2)) \
                     INSERT INTO seen_nonces (partner, nonce, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (partner, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at \
                     WHERE seen_nonces.expires_at < $4",
                )
                .bind(&n.partner)
                .bind(&n.value)
                .bind(ms(n.until()))
                .bind(ms(n.now))
                .execute(&mut *conn)
                .await?;
                Ok(r.rows_affected() == 1)
            })
        })
        .await
    }

    async fn purge_personal_data(
        &self,
        closed_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>> {
        let seal = self.seal.clone();
        self.write(move |conn| {
            let seal = seal.clone();
            Box::pin(async move {
                let ids = purge_rows(
                    conn,
                    &format!(
                        "SELECT id, draft AS doc FROM tickets WHERE status IN {ENDED_STATUSES} \
                         AND updated_at < $1 AND purged_at IS NULL ORDER BY updated_at LIMIT $2"
                    ),
                    "UPDATE tickets SET draft = $1, caller_hash = NULL, purged_at = $2 WHERE id = $3",
                    closed_before,
                    limit,
                    |doc| seal.draft_purged(doc),
                )
                .await?;
                // A legal-aid application on the ticket holds the applicant's data too.
                for id in &ids {
                    let events = sqlx::query(
                        "SELECT id, body FROM events WHERE ticket_id = $1 AND kind = $2",
                    )
                    .bind(id.to_string())
                    .bind(EventKind::LegalAid.as_str())
                    .fetch_all(&mut *conn)
                    .await?;
                    for e in &events {
                        if let Some(body) = seal.event_purged(&e.text("body")?)? {
                            sqlx::query("UPDATE events SET body = $1 WHERE id = $2")
                                .bind(body)
                                .bind(e.text("id")?)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                }
                Ok(ids)
            })
        })
        .await
    }

    async fn purge_transfers(
        &self,
        requested_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Uuid>> {
        let seal = self.seal.clone();
        self.write(move |conn| {
            let seal = seal.clone();
            Box::pin(async move {
                purge_rows(
                    conn,
                    &format!(
                        "SELECT id, doc FROM transfers WHERE {ENDED_TRANSFERS} \
                         AND requested_at < $1 ORDER BY requested_at LIMIT $2"
                    ),
                    "UPDATE transfers SET doc = $1, purged_at = $2 WHERE id = $3",
                    requested_before,
                    limit,
                    |doc| seal.transfer_purged(doc),
                )
                .await
            })
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
