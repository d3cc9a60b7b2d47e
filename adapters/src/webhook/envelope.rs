//! The generic partner's JSON envelopes.

use hotline_model::{Event, EventBody, EventKind, Ticket, TicketDraft};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Inbound, IngressError, OutboundMessage, TicketRef};

/// What we POST to the partner.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutboundEnvelope<T = Ticket, E = Event> {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub message_id: Uuid,
    pub ticket: T,
    pub event: E,
}

impl<'a> OutboundEnvelope<&'a Ticket, &'a Event> {
    /// The envelope of `msg` carrying `ticket` (the message's ticket, or a copy without the
    /// caller's identity).
    pub fn new(msg: &'a OutboundMessage, ticket: &'a Ticket) -> Self {
        Self {
            kind: msg.event.kind(),
            message_id: msg.message_id,
            ticket,
            event: &msg.event,
        }
    }
}

/// The partner's synchronous answer to a delivery.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PartnerAck {
    #[serde(default)]
    pub partner_ticket_number: Option<String>,
}

/// What the partner POSTs to us. One flat shape so that errors name the exact field.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct InboundEnvelope {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketDraft>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn required<T>(v: Option<T>, field: &str, kind: &str) -> Result<T, IngressError> {
    v.ok_or_else(|| IngressError::invalid(field, format!("is required for type `{kind}`")))
}

impl InboundEnvelope {
    pub fn parse(body: &[u8]) -> Result<Self, IngressError> {
        crate::json::from_slice(body)
    }

    pub fn into_inbound(self) -> Result<Inbound, IngressError> {
        let kind = self.kind.as_str();
        match kind {
            "ticket" => {
                let draft = required(self.ticket, "ticket", kind)?;
                if let Some(p) = draft.problems_at("ticket").into_iter().next() {
                    return Err(IngressError::invalid(p.field, p.reason));
                }
                Ok(Inbound::Ticket {
                    message_id: self.message_id,
                    partner_number: required(self.partner_number, "partner_number", kind)?,
                    draft: Box::new(draft),
                })
            }
            "event" => {
                let ticket = match (self.ticket_id, self.partner_number) {
                    (Some(id), _) => TicketRef::Gateway(id),
                    (None, Some(n)) => TicketRef::Partner(n),
                    (None, None) => {
                        return Err(IngressError::invalid(
                            "ticket_id",
                            "`ticket_id` or `partner_number` is required for type `event`",
                        ));
                    }
                };
                Ok(Inbound::Event {
                    message_id: self.message_id,
                    ticket,
                    body: required(self.event, "event", kind)?,
                })
            }
            "ack" => {
                let id = required(self.message_id, "message_id", kind)?;
                let message_id = id.parse().map_err(|_| {
                    IngressError::invalid("message_id", "must be the message id we sent (a UUID)")
                })?;
                Ok(Inbound::Ack {
                    message_id,
                    partner_ref: self.partner_number,
                    accepted: self.accepted.unwrap_or(true),
                    reason: self.reason,
                })
            }
            other => Err(IngressError::invalid(
                "type",
                format!("unknown message type `{other}`; expected ticket, event or ack"),
            )),
        }
    }
}
