//! The canonical document: what mappings translate to and from.

use chrono::FixedOffset;
use hotline_model::{EventBody, TicketDraft};
use serde_json::{Map, Value, json};

use super::Mapping;
use super::engine::{TranslateError, Translation};
use crate::{Inbound, OutboundMessage, TicketRef};

/// The canonical document of an outbound message to `partner`.
pub fn outbound_document(msg: &OutboundMessage, partner: &str) -> Value {
    let mut ticket = serde_json::to_value(&msg.ticket).unwrap_or_else(|_| json!({}));
    if let Some(n) = msg.ticket.partner_numbers.get(partner) {
        ticket["partner_number"] = Value::String(n.clone());
    }
    let event = serde_json::to_value(&msg.event).unwrap_or_else(|_| json!({}));
    let beijing = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    json!({
        "message": {
            "id": msg.message_id.to_string(),
            "type": msg.event.kind().as_str(),
            "sent_at": msg.event.at.with_timezone(&beijing).to_rfc3339(),
        },
        "ticket": ticket,
        "event": event,
    })
}

impl Mapping {
    /// The partner's name for a canonical field in a message type, for error messages.
    pub fn partner_name(&self, message_type: &str, canonical: &str) -> String {
        self.messages
            .get(message_type)
            .and_then(|m| m.fields.iter().find(|f| f.canonical_label == canonical))
            .map(|f| f.label.clone())
            .unwrap_or_else(|| canonical.to_owned())
    }

    fn fault(&self, t: &Translation, canonical: &str, reason: impl Into<String>) -> TranslateError {
        TranslateError::Field {
            field: self.partner_name(&t.message_type, canonical),
            reason: reason.into(),
        }
    }

    /// A decoded translation as a typed inbound message.
    pub fn into_inbound(&self, t: Translation) -> Result<Inbound, TranslateError> {
        let doc = &t.doc;
        let text = |path: &[&str]| -> Option<String> {
            path.iter()
                .try_fold(doc, |v, k| v.get(*k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let message_id = text(&["message", "id"]);
        let partner_number = text(&["ticket", "partner_number"]);
        match t.message_type.as_str() {
            "dispatch" => {
                let ticket = doc.get("ticket").cloned().unwrap_or_else(|| json!({}));
                let draft: TicketDraft = serde_path_to_error::deserialize(ticket).map_err(|e| {
                    let path = e.path().to_string();
                    let inner = e.into_inner().to_string();
                    match crate::json::missing_field(&inner) {
                        Some((name, _)) => {
                            let at = if path == "." {
                                name.to_owned()
                            } else {
                                format!("{path}.{name}")
                            };
                            self.fault(&t, &format!("ticket.{at}"), "is required")
                        }
                        None => self.fault(&t, &format!("ticket.{path}"), inner),
                    }
                })?;
                if let Some(p) = draft.problems().into_iter().next() {
                    return Err(self.fault(&t, &format!("ticket.{}", p.field), p.reason));
                }
                let partner_number = partner_number
                    .ok_or_else(|| self.fault(&t, "ticket.partner_number", "is required"))?;
                Ok(Inbound::Ticket {
                    message_id,
                    partner_number,
                    draft: Box::new(draft),
                })
            }
            "ack" => {
                let id = text(&["message", "ref"])
                    .ok_or_else(|| self.fault(&t, "message.ref", "is required"))?;
                let message_id = id.parse().map_err(|_| {
                    self.fault(
                        &t,
                        "message.ref",
                        format!("`{id}` is not a message id we sent"),
                    )
                })?;
                Ok(Inbound::Ack {
                    message_id,
                    partner_ref: partner_number,
                    accepted: doc["message"]["accepted"].as_bool().unwrap_or(true),
                    reason: text(&["message", "reason"]),
                })
            }
            kind => {
                let ticket = match (text(&["ticket", "id"]), partner_number.clone()) {
                    (Some(id), _) => TicketRef::Gateway(id.parse().map_err(|_| {
                        self.fault(
                            &t,
                            "ticket.id",
                            format!("`{id}` is not a ticket id we sent"),
                        )
                    })?),
                    (None, Some(n)) => TicketRef::Partner(n),
                    (None, None) => {
                        return Err(self.fault(
                            &t,
                            "ticket.partner_number",
                            "is required to name the ticket",
                        ));
                    }
                };
                let mut event = match doc.get("event") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                event.insert("kind".into(), Value::String(kind.to_owned()));
                if kind == "receipt" && !event.contains_key("partner_number") {
                    event.insert(
                        "partner_number".into(),
                        partner_number.map_or(Value::Null, Value::String),
                    );
                }
                let body: EventBody = serde_path_to_error::deserialize(Value::Object(event))
                    .map_err(|e| {
                        let inner = e.into_inner().to_string();
                        match crate::json::missing_field(&inner) {
                            Some((name, _)) => {
                                self.fault(&t, &format!("event.{name}"), "is required")
                            }
                            None => self.fault(&t, "event", inner),
                        }
                    })?;
                Ok(Inbound::Event {
                    message_id,
                    ticket,
                    body,
                })
            }
        }
    }
}
