//! What the SQLite and PostgreSQL stores share: the column lists, the status sets, time and
//! enum encoding, and the mapping from a row to a delivery, ticket, clock or alert. Both
//! schemas keep the same columns (times as Unix milliseconds, ids and documents as text); they
//! differ only in how a flag is stored, which [`Fields`] hides.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use hotline_model::{Event, EventBody, EventKind, Ticket, TicketDraft};
use sqlx::Row;
use uuid::Uuid;

use super::{
    Alert, Claim, ClaimToken, Clock, Delivery, DeliveryStatus, Handoff, Result, StoreError,
};

/// What a purged caller's name reads.
pub const PURGED: &str = "已清除";

/// Ticket statuses after which personal data may be purged.
pub(super) const ENDED_STATUSES: &str = "('closed', 'withdrawn', 'merged')";
/// Transfers whose offer retention may blank: ended, nothing left to do for them.
pub(super) const ENDED_TRANSFERS: &str = "state IN ('refused', 'completed', 'failed', 'expired') \
     AND fallback_due = FALSE AND notify_pending = FALSE AND purged_at IS NULL";

pub(super) const OPEN_STATUSES: &str = "('pending', 'retrying', 'sending', 'awaiting_ack')";
/// Statuses that let the next message for the same ticket and partner go.
pub(super) const SETTLED_STATUSES: &str = "('acknowledged', 'skipped')";

pub(super) const DELIVERY_COLUMNS: &str = "d.id, d.ticket_id, d.event_id, d.partner, \
     d.message_id, d.kind, d.status, d.attempts, d.round_base, d.due_at, d.partner_ref, \
     d.last_error, d.created_at, d.updated_at, d.acked_at";

pub(super) const TICKET_COLUMNS: &str = "t.id, t.origin, t.external_id, t.status, t.draft, \
     t.created_at, t.updated_at";

pub(super) const CLOCK_COLUMNS: &str = "id, ticket_id, kind, party, urgent, started_at, due_at, \
     urge_at, provisional, extended_days, state, stopped_at, urged_at, overdue_at";

/// Reading a column of either engine's row.
pub(super) trait Fields {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    /// A boolean: an integer in SQLite, a `BOOLEAN` in PostgreSQL.
    fn flag(&self, col: &str) -> Result<bool>;
}

macro_rules! fields {
    ($row:ty, $flag:expr) => {
        impl Fields for $row {
            fn text(&self, col: &str) -> Result<String> {
                Ok(self.try_get(col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>> {
                Ok(self.try_get(col)?)
            }
            fn int(&self, col: &str) -> Result<i64> {
                Ok(self.try_get(col)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>> {
                Ok(self.try_get(col)?)
            }
            fn flag(&self, col: &str) -> Result<bool> {
                $flag(self, col)
            }
        }
    };
}

fields!(
    sqlx::sqlite::SqliteRow,
    |r: &sqlx::sqlite::SqliteRow, c: &str| { Ok(r.try_get::<i64, _>(c)? != 0) }
);
fields!(
    sqlx::postgres::PgRow,
    |r: &sqlx::postgres::PgRow, c: &str| { Ok(r.try_get::<bool, _>(c)?) }
);

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| StoreError::Corrupt(format!("time {v}")))
}

pub(super) fn get_uuid(row: &impl Fields, col: &str) -> Result<Uuid> {
    let s = row.text(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(super) fn get_enum<T: serde::de::DeserializeOwned>(row: &impl Fields, col: &str) -> Result<T> {
    let s = row.text(col)?;
    serde_json::from_value(serde_json::Value::String(s))
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// An enum's serialized name (`snake_case`), e.g. for a column or a page.
pub(crate) fn enum_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

pub(super) fn opt_time(row: &impl Fields, col: &str) -> Result<Option<DateTime<Utc>>> {
    row.opt_int(col)?.map(from_ms).transpose()
}

pub(super) fn delivery_from_row(row: &impl Fields) -> Result<Delivery> {
    let kind = row.text("kind")?;
    let status = row.text("status")?;
    let attempts = row.int("attempts")?;
    let round_base = row.int("round_base")?;
    Ok(Delivery {
        id: get_uuid(row, "id")?,
        ticket_id: get_uuid(row, "ticket_id")?,
        event_id: get_uuid(row, "event_id")?,
        partner: row.text("partner")?,
        message_id: get_uuid(row, "message_id")?,
        message_type: EventKind::from_str(&kind).map_err(StoreError::Corrupt)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery status {status}")))?,
        attempts: attempts as u32,
        attempts_this_round: (attempts - round_base) as u32,
        due_at: from_ms(row.int("due_at")?)?,
        partner_ref: row.opt_text("partner_ref")?,
        last_error: row.opt_text("last_error")?,
        created_at: from_ms(row.int("created_at")?)?,
        updated_at: from_ms(row.int("updated_at")?)?,
        acked_at: opt_time(row, "acked_at")?,
    })
}

pub(super) fn ticket_from_row(
    row: &impl Fields,
    numbers: BTreeMap<String, String>,
    seal: &Seal,
) -> Result<Ticket> {
    let draft = seal.draft_in(&row.text("draft")?)?;
    Ok(Ticket {
        id: get_uuid(row, "id")?,
        origin: row.text("origin")?,
        external_id: row.opt_text("external_id")?,
        partner_numbers: numbers,
        status: get_enum(row, "status")?,
        draft,
        created_at: from_ms(row.int("created_at")?)?,
        updated_at: from_ms(row.int("updated_at")?)?,
    })
}

pub(super) fn clock_from_row(row: &impl Fields) -> Result<Clock> {
    let kind = row.text("kind")?;
    Ok(Clock {
        id: get_uuid(row, "id")?,
        ticket_id: get_uuid(row, "ticket_id")?,
        kind: crate::sla::ClockKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("clock kind {kind}")))?,
        party: row.text("party")?,
        urgent: row.flag("urgent")?,
        started_at: from_ms(row.int("started_at")?)?,
        due_at: from_ms(row.int("due_at")?)?,
        urge_at: from_ms(row.int("urge_at")?)?,
        provisional: row.flag("provisional")?,
        extended_days: row.int("extended_days")? as u32,
        state: get_enum(row, "state")?,
        stopped_at: opt_time(row, "stopped_at")?,
        urged_at: opt_time(row, "urged_at")?,
        overdue_at: opt_time(row, "overdue_at")?,
    })
}

/// A legal-aid case or case update, kept as its JSON document.
pub(super) fn doc_from_row<T: serde::de::DeserializeOwned>(row: &impl Fields) -> Result<T> {
    Ok(serde_json::from_str(&row.text("body")?)?)
}

pub(super) fn alert_from_row(row: &impl Fields) -> Result<Alert> {
    Ok(Alert {
        id: get_uuid(row, "id")?,
        kind: get_enum(row, "kind")?,
        ticket_id: row
            .opt_text("ticket_id")?
            .map(|s| Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()?,
        party: row.opt_text("party")?,
        message: row.text("message")?,
        detail: serde_json::from_str(&row.text("detail")?)?,
        created_at: from_ms(row.int("created_at")?)?,
        acknowledged_at: opt_time(row, "acknowledged_at")?,
        acknowledged_by: row.opt_text("acknowledged_by")?,
    })
}

/// How a store writes and reads callers' personal data: sealed ([`crate::seal`]) when
/// encryption is configured, as is otherwise.
#[derive(Clone, Default)]
pub struct Seal(Option<std::sync::Arc<crate::seal::Sealer>>);

impl Seal {
    pub fn new(sealer: Option<crate::seal::Sealer>) -> Self {
        Self(sealer.map(std::sync::Arc::new))
    }

    pub(super) fn draft_out(&self, d: &TicketDraft) -> Result<String> {
        Ok(match &self.0 {
            Some(s) => serde_json::to_string(&s.seal_draft(d))?,
            None => serde_json::to_string(d)?,
        })
    }

    pub(super) fn draft_in(&self, text: &str) -> Result<TicketDraft> {
        let d: TicketDraft = serde_json::from_str(text)?;
        match &self.0 {
            Some(s) => s.open_draft(d).map_err(opened),
            None => Ok(d),
        }
    }

    /// The stored draft with the caller's personal data blanked (retention).
    pub(super) fn draft_purged(&self, text: &str) -> Result<String> {
        let mut d = self.draft_in(text)?;
        purge_draft(&mut d);
        self.draft_out(&d)
    }

    /// A stored transfer with the caller's personal data in its offer blanked (retention).
    pub(super) fn transfer_purged(&self, text: &str) -> Result<String> {
        let mut t = self.transfer_in(text)?;
        purge_draft(&mut t.offer.ticket);
        self.transfer_out(&t)
    }

    /// An event as stored: a legal-aid application's applicant sealed.
    pub(super) fn event_out(&self, e: &Event) -> Result<String> {
        if let (Some(s), EventBody::LegalAid { application }) = (&self.0, &e.body) {
            let mut application = application.clone();
            s.seal_applicant(&mut application.applicant);
            let sealed = Event {
                body: EventBody::LegalAid { application },
                ..e.clone()
            };
            return Ok(serde_json::to_string(&sealed)?);
        }
        Ok(serde_json::to_string(e)?)
    }

    pub(super) fn event_in(&self, text: &str) -> Result<Event> {
        let mut e: Event = serde_json::from_str(text)?;
        if let (Some(s), EventBody::LegalAid { application }) = (&self.0, &mut e.body) {
            s.open_applicant(&mut application.applicant)
                .map_err(opened)?;
        }
        Ok(e)
    }

    /// A stored legal-aid event with the applicant's personal data blanked (retention); `None`
    /// for other events, which hold none.
    pub(super) fn event_purged(&self, text: &str) -> Result<Option<String>> {
        let mut e = self.event_in(text)?;
        let EventBody::LegalAid { application } = &mut e.body else {
            return Ok(None);
        };
        let a = &mut application.applicant;
        a.personal_mut().into_iter().for_each(String::clear);
        a.name = PURGED.into();
        self.event_out(&e).map(Some)
    }

    pub(super) fn transfer_out(&self, t: &super::Transfer) -> Result<String> {
        Ok(match &self.0 {
            Some(s) => {
                let mut t = t.clone();
                t.offer.ticket = s.seal_draft(&t.offer.ticket);
                serde_json::to_string(&t)?
            }
            None => serde_json::to_string(t)?,
        })
    }

    pub(super) fn transfer_in(&self, text: &str) -> Result<super::Transfer> {
        let mut t: super::Transfer = serde_json::from_str(text)?;
        if let Some(s) = &self.0 {
            t.offer.ticket = s.open_draft(t.offer.ticket).map_err(opened)?;
        }
        Ok(t)
    }
}

fn purge_draft(d: &mut TicketDraft) {
    d.caller.name = PURGED.into();
    d.caller.phone = String::new();
    d.caller.id_number = None;
    d.address = None;
    d.transcript.clear();
}

fn opened(e: crate::seal::SealError) -> StoreError {
    StoreError::Corrupt(format!("personal data: {e}"))
}

/// Claims under `token` out of rows tagged by their `part` column: the claimed deliveries
/// (`delivery`, with `seq`), their tickets (`ticket`) with every number (`number`) and their
/// events (`event`); in the order they fell due (oldest row first on a tie).
pub(super) fn claims_from<R: Fields>(rows: &[R], token: Uuid, seal: &Seal) -> Result<Vec<Claim>> {
    let mut deliveries = Vec::new();
    let mut numbers: HashMap<Uuid, BTreeMap<String, String>> = HashMap::new();
    let mut ticket_rows = Vec::new();
    let mut events = HashMap::new();
    for row in rows {
        let part = row.text("part")?;
        match part.as_str() {
            "delivery" => deliveries.push((row.int("seq")?, delivery_from_row(row)?)),
            "number" => {
                numbers
                    .entry(get_uuid(row, "ticket_id")?)
                    .or_default()
                    .insert(row.text("system")?, row.text("number")?);
            }
            "ticket" => ticket_rows.push(row),
            "event" => {
                let body = row.text("body")?;
                events.insert(get_uuid(row, "id")?, seal.event_in(&body)?);
            }
            other => return Err(StoreError::Corrupt(format!("claim read part {other}"))),
        }
    }
    let mut tickets = HashMap::new();
    for row in ticket_rows {
        let id = get_uuid(row, "id")?;
        let ticket = ticket_from_row(row, numbers.remove(&id).unwrap_or_default(), seal)?;
        tickets.insert(id, ticket);
    }
    deliveries.sort_by_key(|(seq, d)| (d.due_at, *seq));
    deliveries
        .into_iter()
        .map(|(_, delivery)| {
            let ticket = tickets
                .get(&delivery.ticket_id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("ticket of {} missing", delivery.id)))?;
            let event = events
                .get(&delivery.event_id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("event of {} missing", delivery.id)))?;
            Ok(Claim {
                token: ClaimToken {
                    delivery_id: delivery.id,
                    lease_token: token,
                },
                delivery,
                ticket,
                event,
            })
        })
        .collect()
}

/// How a new outbox row is first written (times in ms).
pub(super) struct FirstState {
    pub status: &'static str,
    pub attempts: i64,
    pub lease: Option<String>,
    pub due: i64,
}

/// A new delivery to `partner`: pending and due `now`, or, when the `handoff` takes the partner,
/// as its claim leaves it: sending, the first attempt counted, under the hand-off's lease and
/// due when that ends.
pub(super) fn first_state(handoff: Option<&Handoff>, partner: &str, now: i64) -> FirstState {
    match handoff.filter(|h| h.takes(partner)) {
        None => FirstState {
            status: "pending",
            attempts: 0,
            lease: None,
            due: now,
        },
        Some(h) => FirstState {
            status: "sending",
            attempts: 1,
            lease: Some(h.lease_token.to_string()),
            due: ms(h.lease_until),
        },
    }
}
