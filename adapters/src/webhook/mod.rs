//! The generic partner: canonical JSON over HTTP, signed the Standard Webhooks way
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`), so any receiver with a Standard Webhooks library can verify it.
//!
//! Outbound, one POST per message to the partner's URL:
//! `{"type": "<message type>", "message_id": "...", "ticket": {canonical}, "event": {canonical}}`.
//! The partner answers 200/201, optionally with `{"partner_ticket_number": "..."}` (acknowledged),
//! or 202 (received; the real acknowledgement follows as an `ack` message).
//!
//! Inbound, the partner POSTs to `/partners/{id}/messages`, signed with its own secret:
//! - `{"type": "ticket", "message_id", "partner_number", "ticket": {draft}}`: a new ticket;
//! - `{"type": "event", "message_id", "ticket_id" | "partner_number", "event": {kind, ...}}`;
//! - `{"type": "ack", "message_id": "<ours>", "partner_number", "accepted", "reason"}`.

mod envelope;

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hotline_model::EventKind;
use http::{HeaderValue, Method, StatusCode};
use standardwebhooks::Webhook;

use crate::http::{HttpTransport, body_snippet, classify_status};
use crate::{
    Adapter, EncodeError, Inbound, InboundRequest, IngressError, IngressReply, OutboundMessage,
    Outcome, TransportError, WireRequest, WireResponse,
};

pub use envelope::{InboundEnvelope, OutboundEnvelope, PartnerAck};

/// Settings of one generic partner.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub partner: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// `whsec_…` secret we sign our deliveries with.
    pub signing_secret: String,
    /// `whsec_…` secret the partner signs its messages to us with.
    pub verify_secret: String,
    pub timeout: Duration,
    /// How long to wait for an asynchronous acknowledgement after a 202.
    pub ack_timeout: Duration,
    /// Client certificate and trust roots for the partner's HTTPS endpoint.
    pub tls: Option<crate::http::OutboundTls>,
}

pub struct WebhookAdapter {
    settings: WebhookSettings,
    signer: Webhook,
    verifier: Webhook,
    transport: HttpTransport,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("`{field}` is not a valid `whsec_` base64 secret")]
    Secret { field: &'static str },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Whether `secret` is usable: `whsec_` + base64 of at least 16 bytes (the prefix is optional).
pub fn is_valid_secret(secret: &str) -> bool {
    use base64::Engine as _;
    let raw = secret.strip_prefix("whsec_").unwrap_or(secret);
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .is_ok_and(|key| key.len() >= 16)
}

impl WebhookAdapter {
    pub fn new(settings: WebhookSettings) -> Result<Self, SettingsError> {
        let signer = Webhook::new(&settings.signing_secret).map_err(|_| SettingsError::Secret {
            field: "signing_secret",
        })?;
        let verifier =
            Webhook::new(&settings.verify_secret).map_err(|_| SettingsError::Secret {
                field: "verify_secret",
            })?;
        let transport = HttpTransport::new(settings.timeout, settings.tls.clone())?;
        Ok(Self {
            settings,
            signer,
            verifier,
            transport,
        })
    }
}

const JSON: &str = "application/json";

#[async_trait]
impl Adapter for WebhookAdapter {
    fn reload_tls(&self) -> Result<bool, TransportError> {
        self.transport.reload()
    }

    fn partner(&self) -> &str {
        &self.settings.partner
    }

    fn supports(&self, _kind: EventKind) -> bool {
        true
    }

    fn encode(&self, msg: &OutboundMessage) -> Result<WireRequest, EncodeError> {
        // A confidential ticket never hands the caller's identity to a partner.
        let withheld;
        let ticket = if msg.ticket.draft.confidential {
            let mut t = msg.ticket.clone();
            t.draft.withhold_identity();
            withheld = t;
            &withheld
        } else {
            &msg.ticket
        };
        let body = serde_json::to_vec(&OutboundEnvelope::new(msg, ticket)).map_err(|e| {
            EncodeError::Field {
                field: "ticket".into(),
                reason: e.to_string(),
            }
        })?;
        let id = msg.message_id.to_string();
        let ts = Utc::now().timestamp();
        let sig = self
            .signer
            .sign(&id, ts, &body)
            .map_err(|e| EncodeError::Signing(e.to_string()))?;
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        let value =
            |s: String| HeaderValue::try_from(s).map_err(|e| EncodeError::Signing(e.to_string()));
        headers.insert(standardwebhooks::HEADER_WEBHOOK_ID, value(id)?);
        headers.insert(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            value(ts.to_string())?,
        );
        headers.insert(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, value(sig)?);
        Ok(WireRequest {
            method: Method::POST,
            url: self.settings.url.clone(),
            headers,
            body: body.into(),
        })
    }

    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError> {
        self.transport.send(req).await
    }

    fn classify(&self, resp: &WireResponse) -> Outcome {
        if let Some(failure) = classify_status(resp) {
            return failure;
        }
        if resp.status == StatusCode::ACCEPTED {
            return Outcome::AwaitingAck {
                within: self.settings.ack_timeout,
            };
        }
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Outcome::Acknowledged { partner_ref: None };
        }
        match serde_json::from_slice::<PartnerAck>(&resp.body) {
            Ok(ack) => Outcome::Acknowledged {
                partner_ref: ack.partner_ticket_number,
            },
            Err(e) => Outcome::Retryable {
                reason: format!(
                    "malformed acknowledgement ({e}): {}",
                    body_snippet(&resp.body)
                ),
                retry_after: None,
            },
        }
    }

    fn decode(&self, req: &InboundRequest) -> Result<Inbound, IngressError> {
        if req.method != Method::POST || req.path != "messages" {
            return Err(IngressError::not_found(format!(
                "no such endpoint: {} {}; messages are POSTed to `messages`",
                req.method, req.path
            )));
        }
        self.verifier
            .verify(&req.body, &req.headers)
            .map_err(|e| IngressError::unauthorized(format!("Standard Webhooks signature: {e}")))?;
        InboundEnvelope::parse(&req.body)?.into_inbound()
    }

    fn respond(&self, reply: &IngressReply) -> WireResponse {
        let body = match reply {
            IngressReply::TicketAccepted {
                ticket_id,
                duplicate,
            }
            | IngressReply::EventRecorded {
                ticket_id,
                duplicate,
            } => serde_json::json!({"ok": true, "ticket_id": ticket_id, "duplicate": duplicate}),
            IngressReply::AckApplied { known } => serde_json::json!({"ok": true, "known": known}),
            IngressReply::CaseUpdate { applied, missing } => {
                serde_json::json!({"ok": true, "applied": applied, "missing": missing})
            }
            IngressReply::Transfer { offer_id, answer } => {
                serde_json::json!({"ok": true, "transfer_id": offer_id, "answer": answer})
            }
        };
        WireResponse::new(StatusCode::OK, JSON, body.to_string())
    }

    fn reject(&self, err: &IngressError) -> WireResponse {
        let body = serde_json::json!({
            "ok": false,
            "code": err.code,
            "field": err.field,
            "reason": err.reason,
        });
        WireResponse::new(err.status, JSON, body.to_string())
    }
}

#[cfg(test)]
mod tests;
