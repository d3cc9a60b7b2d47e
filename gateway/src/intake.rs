//! Intake: turns what the home systems and the partners send into store commands, with their
//! idempotency keys, and wakes the delivery workers for whatever it queued.

use std::sync::Arc;

use hotline_adapters::{Inbound, IngressError, IngressReply, TicketRef};
use hotline_model::{
    Event, EventBody, EventKind, FieldError, HOME, Ticket, TicketDraft, TicketStatus,
};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::RouteConfig;
use crate::delivery::DeliveryEngine;
use crate::store::{Accepted, LateAck, NewEvent, NewTicket, Store, StoreError};

/// A ticket from a 12348 home system, to be dispatched to `target`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateTicket {
    /// The home system's own ticket number. A repeat returns the first ticket.
    pub external_id: String,
    /// Partner id to dispatch the ticket to.
    pub target: String,
    pub ticket: TicketDraft,
    /// Units the partner should hand the ticket to.
    #[serde(default)]
    pub units: Vec<String>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Intake {
    store: Arc<dyn Store>,
    engine: Arc<DeliveryEngine>,
    routes: Vec<RouteConfig>,
}

/// The partner a ticket from `origin` goes on to, by the first matching route.
pub fn route(routes: &[RouteConfig], origin: &str, draft: &TicketDraft) -> Option<String> {
    routes
        .iter()
        .find(|r| {
            r.to != origin
                && r.from.as_deref().is_none_or(|f| f == origin)
                && (r.kinds.is_empty() || r.kinds.contains(&draft.kind))
                && r.classification_prefix.as_deref().is_none_or(|p| {
                    draft
                        .classification_code
                        .as_deref()
                        .is_some_and(|c| c.starts_with(p))
                })
                && r.region_prefix
                    .as_deref()
                    .is_none_or(|p| draft.region_code.starts_with(p))
        })
        .map(|r| r.to.clone())
}

impl Intake {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<DeliveryEngine>,
        routes: Vec<RouteConfig>,
    ) -> Self {
        Self {
            store,
            engine,
            routes,
        }
    }

    /// Stores a home system's ticket and queues its dispatch; returns after the commit.
    pub async fn create_ticket(&self, req: CreateTicket) -> Result<Accepted, IntakeError> {
        let mut problems = Vec::new();
        let external_id = req.external_id.trim().to_owned();
        if external_id.is_empty() || external_id.len() > 64 {
            problems.push(FieldError::new("external_id", "must be 1-64 characters"));
        }
        if self.engine.partner(&req.target).is_none() {
            let known: Vec<_> = self.engine.partner_ids().collect();
            problems.push(FieldError::new(
                "target",
                format!(
                    "unknown partner `{}`; configured: {}",
                    req.target,
                    known.join(", ")
                ),
            ));
        }
        problems.extend(req.ticket.problems().into_iter().map(|p| FieldError {
            field: format!("ticket.{}", p.field),
            reason: p.reason,
        }));
        if !problems.is_empty() {
            return Err(IntakeError::Invalid(problems));
        }
        let mut ticket = Ticket::new(HOME, Some(external_id.clone()), req.ticket);
        ticket.status = TicketStatus::Dispatched;
        let event = Event::new(
            ticket.id,
            HOME,
            EventBody::Dispatch {
                units: req.units,
                note: req.note,
            },
        );
        let accepted = self
            .store
            .accept_ticket(NewTicket {
                keys: vec![format!("external_id:{external_id}")],
                numbers: vec![(HOME.to_owned(), external_id)],
                targets: vec![req.target.clone()],
                ticket,
                event,
            })
            .await?;
        if !accepted.is_duplicate() {
            metrics::counter!("hotline_tickets_accepted_total", "origin" => HOME).increment(1);
            self.engine.wake(&req.target);
        }
        Ok(accepted)
    }

    /// Stores what a partner sent; the adapter has already checked its signature and shape.
    pub async fn partner_message(
        &self,
        partner: &str,
        inbound: Inbound,
    ) -> Result<IngressReply, IngressError> {
        match inbound {
            Inbound::Ticket {
                message_id,
                partner_number,
                draft,
            } => {
                let mut ticket = Ticket::new(partner, Some(partner_number.clone()), *draft);
                let targets: Vec<String> = route(&self.routes, partner, &ticket.draft)
                    .into_iter()
                    .collect();
                if !targets.is_empty() {
                    ticket.status = TicketStatus::Dispatched;
                }
                let event = Event::new(
                    ticket.id,
                    partner,
                    EventBody::Dispatch {
                        units: Vec::new(),
                        note: None,
                    },
                );
                let mut keys = vec![format!("dispatch:{partner_number}")];
                keys.extend(message_id.map(|m| format!("msg:{m}")));
                let accepted = self
                    .store
                    .accept_ticket(NewTicket {
                        ticket,
                        event,
                        targets: targets.clone(),
                        keys,
                        numbers: vec![(partner.to_owned(), partner_number)],
                    })
                    .await
                    .map_err(unavailable)?;
                if !accepted.is_duplicate() {
                    metrics::counter!("hotline_tickets_accepted_total", "origin" => partner.to_owned())
                        .increment(1);
                    for t in &targets {
                        tracing::info!(from = partner, to = %t, ticket = %accepted.ticket_id(), "ticket routed on");
                        self.engine.wake(t);
                    }
                }
                Ok(IngressReply::TicketAccepted {
                    ticket_id: accepted.ticket_id(),
                    duplicate: accepted.is_duplicate(),
                })
            }
            Inbound::Event {
                message_id,
                ticket,
                body,
            } => {
                let ticket_id = self.resolve(partner, &ticket).await?;
                let mut keys: Vec<String> = message_id.iter().map(|m| format!("msg:{m}")).collect();
                if once_only(body.kind()) {
                    keys.push(format!("{}:{ticket_id}", body.kind()));
                }
                let numbers = match &body {
                    EventBody::Receipt {
                        partner_number: Some(n),
                        ..
                    } => vec![(partner.to_owned(), n.clone())],
                    _ => Vec::new(),
                };
                let status = status_after(body.kind());
                let accepted = self
                    .store
                    .record_event(NewEvent {
                        event: Event::new(ticket_id, partner, body),
                        status,
                        targets: Vec::new(),
                        keys,
                        numbers,
                    })
                    .await
                    .map_err(unavailable)?;
                Ok(IngressReply::EventRecorded {
                    ticket_id,
                    duplicate: accepted.is_duplicate(),
                })
            }
            Inbound::Ack {
                message_id,
                partner_ref,
                accepted,
                reason,
            } => {
                let delivery = self
                    .store
                    .acknowledge(
                        partner,
                        message_id,
                        LateAck {
                            partner_ref,
                            accepted,
                            reason,
                        },
                    )
                    .await
                    .map_err(unavailable)?;
                if delivery.is_some() {
                    self.engine.wake(partner);
                }
                Ok(IngressReply::AckApplied {
                    known: delivery.is_some(),
                })
            }
        }
    }

    async fn resolve(&self, partner: &str, r: &TicketRef) -> Result<Uuid, IngressError> {
        let found = match r {
            TicketRef::Gateway(id) => self
                .store
                .ticket(*id)
                .await
                .map_err(unavailable)?
                .map(|t| t.id),
            TicketRef::Partner(n) => self
                .store
                .resolve_number(partner, n)
                .await
                .map_err(unavailable)?,
        };
        found.ok_or_else(|| IngressError::not_found(format!("no ticket known as {r:?}")))
    }
}

fn unavailable(e: StoreError) -> IngressError {
    tracing::error!(error = %e, "store failed on partner ingress");
    IngressError::unavailable("temporarily unable to store the message; send it again")
}

/// Messages that happen at most once per ticket and sender, so a repeat without a message id is
/// still recognised.
fn once_only(kind: EventKind) -> bool {
    matches!(kind, EventKind::Receipt | EventKind::Withdraw)
}

/// The ticket's status after a partner's event. The full lifecycle state machine replaces this
/// direct mapping when it lands.
fn status_after(kind: EventKind) -> Option<TicketStatus> {
    Some(match kind {
        EventKind::Receipt => TicketStatus::Receipted,
        EventKind::Return => TicketStatus::Returned,
        EventKind::ExtensionRequest => TicketStatus::ExtensionRequested,
        EventKind::Progress => TicketStatus::InProgress,
        EventKind::Reply => TicketStatus::Replied,
        EventKind::Callback => TicketStatus::CalledBack,
        EventKind::Reopen => TicketStatus::Reopened,
        EventKind::Withdraw => TicketStatus::Withdrawn,
        EventKind::Dispatch
        | EventKind::ExtensionDecision
        | EventKind::Urge
        | EventKind::Supervise => return None,
    })
}
