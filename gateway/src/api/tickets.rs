use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hotline_model::{Event, EventKind, Ticket};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ValidJson, ValidPath, ValidQuery};
use super::{AppState, TICKETS};
use crate::intake::CreateTicket;
use crate::store::{Accepted, AttemptRecord, Delivery, RefusedEvent, TicketQuery};

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketCreated {
    /// The gateway's id for the ticket.
    pub id: Uuid,
    /// `true` when `external_id` was seen before and nothing new was created.
    pub duplicate: bool,
    /// Outbox rows queued for the dispatch (empty for a duplicate).
    pub deliveries: Vec<Uuid>,
}

/// Create a ticket and dispatch it to `target`.
///
/// Answers only after the ticket is committed to disk. A repeated `external_id` returns 200 with
/// the first ticket's id and creates nothing.
#[utoipa::path(post, path = "/api/v1/tickets", tag = TICKETS, request_body = CreateTicket,
    responses(
        (status = 201, description = "Created and queued for delivery", body = TicketCreated),
        (status = 200, description = "Seen before: the existing ticket", body = TicketCreated),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong", body = ErrorBody),
    ))]
pub async fn create_ticket(
    State(state): State<AppState>,
    ValidJson(req): ValidJson<CreateTicket>,
) -> Result<(StatusCode, Json<TicketCreated>), ApiError> {
    Ok(match state.intake.create_ticket(req).await? {
        Accepted::Created {
            ticket_id,
            deliveries,
            ..
        } => (
            StatusCode::CREATED,
            Json(TicketCreated {
                id: ticket_id,
                duplicate: false,
                deliveries,
            }),
        ),
        Accepted::Duplicate { ticket_id, .. } => (
            StatusCode::OK,
            Json(TicketCreated {
                id: ticket_id,
                duplicate: true,
                deliveries: Vec::new(),
            }),
        ),
    })
}

/// List tickets, oldest first, e.g. those partners sent to 12348 (`?origin=12345`).
#[utoipa::path(get, path = "/api/v1/tickets", tag = TICKETS, params(TicketQuery),
    responses((status = 200, body = Vec<Ticket>), (status = 400, body = ErrorBody)))]
pub async fn list_tickets(
    State(state): State<AppState>,
    ValidQuery(q): ValidQuery<TicketQuery>,
) -> Result<Json<Vec<Ticket>>, ApiError> {
    Ok(Json(state.store.tickets(&q).await?))
}

/// One ticket.
#[utoipa::path(get, path = "/api/v1/tickets/{id}", tag = TICKETS,
    params(("id" = Uuid, Path, description = "The gateway's ticket id")),
    responses((status = 200, body = Ticket), (status = 404, body = ErrorBody)))]
pub async fn get_ticket(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Ticket>, ApiError> {
    state
        .store
        .ticket(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no ticket {id}")))
}

/// One entry of a ticket's timeline.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum TimelineEntry {
    /// A message on the ticket, from whichever system.
    Event {
        #[schema(value_type = String, format = DateTime)]
        at: DateTime<Utc>,
        event: Event,
    },
    /// One delivery attempt to a partner.
    Attempt {
        #[schema(value_type = String, format = DateTime)]
        at: DateTime<Utc>,
        partner: String,
        message_type: String,
        attempt: AttemptRecord,
    },
    /// A message the lifecycle refused (e.g. a reply to a withdrawn ticket).
    Refused {
        #[schema(value_type = String, format = DateTime)]
        at: DateTime<Utc>,
        refused: RefusedEvent,
    },
    /// A partner's acknowledgement (synchronous or late).
    Acknowledged {
        #[schema(value_type = String, format = DateTime)]
        at: DateTime<Utc>,
        partner: String,
        delivery_id: Uuid,
        partner_ref: Option<String>,
    },
}

impl TimelineEntry {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Event { at, .. }
            | Self::Attempt { at, .. }
            | Self::Refused { at, .. }
            | Self::Acknowledged { at, .. } => *at,
        }
    }
}

/// How often things happened to a ticket (催办次数, 是否督办, 退回次数 …).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Counts {
    pub urged: u32,
    pub supervised: u32,
    pub returned: u32,
    pub extensions: u32,
    pub reopened: u32,
    pub refused: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub ticket_id: Uuid,
    pub counts: Counts,
    /// Events, attempts and acknowledgements in time order.
    pub entries: Vec<TimelineEntry>,
    /// Where each delivery of the ticket stands now.
    pub deliveries: Vec<Delivery>,
}

/// A ticket's timeline: every event and every delivery attempt.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/events", tag = TICKETS,
    params(("id" = Uuid, Path, description = "The gateway's ticket id")),
    responses((status = 200, body = Timeline), (status = 404, body = ErrorBody)))]
pub async fn ticket_events(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Timeline>, ApiError> {
    if state.store.ticket(id).await?.is_none() {
        return Err(ApiError::not_found(format!("no ticket {id}")));
    }
    let events = state.store.events(id).await?;
    let attempts = state.store.attempts_for_ticket(id).await?;
    let deliveries = state.store.ticket_deliveries(id).await?;
    let mut counts = Counts::default();
    for e in &events {
        match e.kind() {
            EventKind::Urge => counts.urged += 1,
            EventKind::Supervise => counts.supervised += 1,
            EventKind::Return => counts.returned += 1,
            EventKind::ExtensionRequest => counts.extensions += 1,
            EventKind::Reopen => counts.reopened += 1,
            _ => {}
        }
    }
    let mut entries: Vec<TimelineEntry> = events
        .into_iter()
        .map(|event| TimelineEntry::Event {
            at: event.at,
            event,
        })
        .collect();
    for attempt in attempts {
        let Some(d) = deliveries.iter().find(|d| d.id == attempt.delivery_id) else {
            continue;
        };
        entries.push(TimelineEntry::Attempt {
            at: attempt.started_at,
            partner: d.partner.clone(),
            message_type: d.message_type.to_string(),
            attempt,
        });
    }
    for d in &deliveries {
        if let Some(at) = d.acked_at {
            entries.push(TimelineEntry::Acknowledged {
                at,
                partner: d.partner.clone(),
                delivery_id: d.id,
                partner_ref: d.partner_ref.clone(),
            });
        }
    }
    for refused in state.store.refusals(id).await? {
        counts.refused += 1;
        entries.push(TimelineEntry::Refused {
            at: refused.at,
            refused,
        });
    }
    entries.sort_by_key(TimelineEntry::at);
    Ok(Json(Timeline {
        ticket_id: id,
        counts,
        entries,
        deliveries,
    }))
}
