//! The canonical document: what mappings translate to and from.

use std::borrow::Cow;
use std::sync::OnceLock;

use chrono::FixedOffset;
use hotline_model::{
    EventBody, RefusalReason, TicketDraft, TransferAnswer, TransferGrant, TransferOffer,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Mapping;
use super::doc::Doc;
use super::engine::{TranslateError, Translation, get_doc};
use crate::{Inbound, OutboundMessage, TicketRef};

/// Canonical values read by path (`["ticket", "caller", "name"]`): what a mapping encodes from.
/// A canonical document is one; an outbound message, read field by field, is another.
pub trait Canonical {
    /// The value at `path`, if there is one.
    fn get(&self, path: &[String]) -> Option<Cow<'_, Value>>;
}

impl Canonical for Value {
    fn get(&self, path: &[String]) -> Option<Cow<'_, Value>> {
        get_doc(self, path).map(Cow::Borrowed)
    }
}

/// A decoded document, encoded again (to another partner, or back for a check).
impl Canonical for Doc {
    fn get(&self, path: &[String]) -> Option<Cow<'_, Value>> {
        self.at(path).map(|v| Cow::Owned(v.clone().into()))
    }
}

/// The canonical document of an outbound message to `partner`.
pub fn outbound_document<'a>(msg: &'a OutboundMessage, partner: &'a str) -> OutboundDocument<'a> {
    OutboundDocument {
        msg,
        partner,
        event: OnceLock::new(),
    }
}

/// An outbound message as its canonical document, read field by field from the typed message:
/// only the fields a partner's mapping asks for become values (serialising the whole ticket
/// into a tree first was a fifth of a relay's translation time). [`OutboundDocument::to_value`]
/// is the whole document as one tree; both agree on every canonical field (a test holds them to
/// it).
pub struct OutboundDocument<'a> {
    msg: &'a OutboundMessage,
    partner: &'a str,
    /// The event as a tree, made on first use (events are small).
    event: OnceLock<Value>,
}

impl OutboundDocument<'_> {
    /// The whole document: `{"message": {...}, "ticket": {...}, "event": {...}}`.
    pub fn to_value(&self) -> Value {
        let msg = self.msg;
        let mut ticket = serde_json::to_value(&msg.ticket).unwrap_or_else(|_| json!({}));
        if let Some(n) = msg.ticket.partner_numbers.get(self.partner) {
            ticket["partner_number"] = Value::String(n.clone());
        }
        json!({
            "message": {
                "id": msg.message_id.to_string(),
                "type": msg.event.kind().as_str(),
                "sent_at": self.sent_at(),
            },
            "ticket": ticket,
            "event": self.event(),
        })
    }

    fn sent_at(&self) -> String {
        beijing_time(self.msg.event.at)
    }

    fn event(&self) -> &Value {
        self.event
            .get_or_init(|| serde_json::to_value(&self.msg.event).unwrap_or_else(|_| json!({})))
    }

    /// A `ticket.*` canonical field (see [`super::CANONICAL_FIELDS`]), as the ticket's own
    /// serialisation writes it: absent where that skips it.
    fn ticket(&self, path: &[String]) -> Option<Value> {
        let t = &self.msg.ticket;
        let d = &t.draft;
        let text = |s: &str| Some(Value::String(s.to_owned()));
        let optional = |s: &Option<String>| s.as_deref().and_then(text);
        let list = |items: &[String]| {
            (!items.is_empty()).then(|| items.iter().map(|i| Value::String(i.clone())).collect())
        };
        let keys = match path {
            [a] => (a.as_str(), None),
            [a, b] => (a.as_str(), Some(b.as_str())),
            _ => ("", None),
        };
        match keys {
            ("id", None) => text(&t.id.to_string()),
            ("origin", None) => text(&t.origin),
            ("external_id", None) => optional(&t.external_id),
            ("partner_number", None) => t.partner_numbers.get(self.partner).and_then(|n| text(n)),
            ("kind", None) => serde_json::to_value(d.kind).ok(),
            ("urgency", None) => serde_json::to_value(d.urgency).ok(),
            ("caller", Some("name")) => text(&d.caller.name),
            ("caller", Some("phone")) => text(&d.caller.phone),
            ("caller", Some("id_number")) => optional(&d.caller.id_number),
            ("confidential", None) => Some(Value::Bool(d.confidential)),
            ("region_code", None) => text(&d.region_code),
            ("address", None) => optional(&d.address),
            ("classification_code", None) => optional(&d.classification_code),
            ("title", None) => text(&d.title),
            ("content", None) => text(&d.content),
            ("remarks", None) => optional(&d.remarks),
            ("received_at", None) => serde_json::to_value(d.received_at).ok(),
            ("units", None) => list(&d.units),
            ("channel", None) => optional(&d.channel),
            ("transcript", None) => list(&d.transcript),
            // Not a field a mapping may name: read from the whole ticket.
            _ => {
                let whole = serde_json::to_value(t).ok()?;
                Canonical::get(&whole, path).map(Cow::into_owned)
            }
        }
    }
}

impl Canonical for OutboundDocument<'_> {
    fn get(&self, path: &[String]) -> Option<Cow<'_, Value>> {
        let (part, rest) = path.split_first()?;
        match part.as_str() {
            "message" => match rest {
                [k] if k == "id" => Some(Value::String(self.msg.message_id.to_string())),
                [k] if k == "type" => Some(Value::String(self.msg.event.kind().as_str().into())),
                [k] if k == "sent_at" => Some(Value::String(self.sent_at())),
                _ => None,
            }
            .map(Cow::Owned),
            "ticket" => self.ticket(rest).map(Cow::Owned),
            "event" => Canonical::get(self.event(), rest),
            _ => None,
        }
    }
}

/// The canonical document of a transfer offer.
pub fn offer_document(offer: &TransferOffer, message_id: &str) -> Value {
    json!({
        "message": {
            "id": message_id,
            "type": "transfer_request",
            "sent_at": now_beijing(),
        },
        "transfer": {
            "id": offer.id,
            "call_id": offer.call_id,
            "agent_id": offer.agent_id,
            "ticket_number": offer.ticket_number,
        },
        "ticket": serde_json::to_value(&offer.ticket).unwrap_or_else(|_| json!({})),
    })
}

/// The canonical document of the answer to the transfer offer `transfer_id`.
pub fn answer_document(transfer_id: &str, answer: &TransferAnswer, message_id: &str) -> Value {
    let transfer = match answer {
        TransferAnswer::Granted(g) => json!({
            "id": transfer_id,
            "granted": true,
            "dial_target": g.dial_target,
            "token": g.token,
            "expires_at": g.expires_at.map(|t| t.to_rfc3339()),
            "partner_ref": g.partner_ref,
        }),
        TransferAnswer::Refused {
            reason,
            detail,
            ticket_number,
        } => json!({
            "id": transfer_id,
            "granted": false,
            "reason": reason.as_str(),
            "detail": detail,
            "ticket_number": ticket_number,
        }),
    };
    json!({
        "message": {
            "id": message_id,
            "type": "transfer_answer",
            "sent_at": now_beijing(),
        },
        "transfer": transfer,
    })
}

fn now_beijing() -> String {
    beijing_time(chrono::Utc::now())
}

/// A time as RFC 3339 in Beijing time (UTC+8), as canonical documents carry it.
fn beijing_time(t: chrono::DateTime<chrono::Utc>) -> String {
    let beijing = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    t.with_timezone(&beijing).to_rfc3339()
}

impl Mapping {
    /// A decoded `transfer_answer`: the id of the offer it answers, and the answer.
    pub fn into_answer(&self, t: Translation) -> Result<(String, TransferAnswer), TranslateError> {
        if t.message_type != "transfer_answer" {
            return Err(self.fault(
                &t,
                "message.type",
                format!("expected a transfer answer, got `{}`", t.message_type),
            ));
        }
        let tr = t.doc.get("transfer");
        let text = |k: &str| {
            tr.and_then(|tr| tr.get(k))
                .and_then(Doc::as_str)
                .map(str::to_owned)
        };
        let id = text("id").ok_or_else(|| self.fault(&t, "transfer.id", "is required"))?;
        let granted = tr
            .and_then(|tr| tr.get("granted"))
            .and_then(Doc::as_bool)
            .ok_or_else(|| self.fault(&t, "transfer.granted", "is required"))?;
        let answer = if granted {
            let dial_target = text("dial_target").ok_or_else(|| {
                self.fault(&t, "transfer.dial_target", "is required when granted")
            })?;
            let expires_at = text("expires_at")
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(&s)
                        .map_err(|e| self.fault(&t, "transfer.expires_at", e.to_string()))
                })
                .transpose()?;
            TransferAnswer::Granted(TransferGrant {
                dial_target,
                token: text("token"),
                expires_at,
                partner_ref: text("partner_ref"),
            })
        } else {
            let reason = text("reason")
                .ok_or_else(|| self.fault(&t, "transfer.reason", "is required when refused"))?
                .parse::<RefusalReason>()
                .map_err(|e| self.fault(&t, "transfer.reason", e))?;
            TransferAnswer::Refused {
                reason,
                detail: text("detail"),
                ticket_number: text("ticket_number"),
            }
        };
        Ok((id, answer))
    }

    /// The `ticket` part of a decoded message as a checked draft.
    fn draft(&self, t: &Translation) -> Result<TicketDraft, TranslateError> {
        let none = Doc::map();
        let ticket = t.doc.get("ticket").unwrap_or(&none);
        // Tracking the path costs a fifth of reading the draft: only a draft that fails is
        // read again with it, to name the field at fault.
        let draft = match TicketDraft::deserialize(ticket) {
            Ok(d) => Ok(d),
            Err(_) => serde_path_to_error::deserialize::<_, TicketDraft>(ticket),
        };
        let draft = draft.map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            match crate::json::missing_field(&inner) {
                Some((name, _)) => {
                    let at = if path == "." {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    };
                    self.fault(t, &format!("ticket.{at}"), "is required")
                }
                None => self.fault(t, &format!("ticket.{path}"), inner),
            }
        })?;
        if let Some(p) = draft.problems_at("ticket").into_iter().next() {
            return Err(self.fault(t, &p.field, p.reason));
        }
        Ok(draft)
    }

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
        let at = |path: &[&str]| path.iter().try_fold(doc, |v, k| v.get(k));
        let text = |path: &[&str]| at(path).and_then(Doc::as_str).map(str::to_owned);
        let message_id = text(&["message", "id"]);
        let partner_number = text(&["ticket", "partner_number"]);
        match t.message_type.as_str() {
            "dispatch" => {
                let draft = self.draft(&t)?;
                let partner_number = partner_number
                    .ok_or_else(|| self.fault(&t, "ticket.partner_number", "is required"))?;
                Ok(Inbound::Ticket {
                    message_id,
                    partner_number,
                    draft: Box::new(draft),
                })
            }
            "transfer_request" => {
                let id = text(&["transfer", "id"])
                    .ok_or_else(|| self.fault(&t, "transfer.id", "is required"))?;
                let call_id = text(&["transfer", "call_id"])
                    .ok_or_else(|| self.fault(&t, "transfer.call_id", "is required"))?;
                let offer = TransferOffer {
                    id,
                    call_id,
                    agent_id: text(&["transfer", "agent_id"]),
                    ticket_number: text(&["transfer", "ticket_number"]),
                    ticket: self.draft(&t)?,
                };
                Ok(Inbound::Transfer {
                    message_id,
                    offer: Box::new(offer),
                })
            }
            "transfer_answer" => Err(self.fault(
                &t,
                "message.type",
                "a transfer answer comes only as the answer to our offer",
            )),
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
                    accepted: at(&["message", "accepted"])
                        .and_then(Doc::as_bool)
                        .unwrap_or(true),
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
                let mut event = match doc.get("event").cloned().map(Value::from) {
                    Some(Value::Object(m)) => m,
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
