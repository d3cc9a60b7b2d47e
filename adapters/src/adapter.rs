use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use hotline_model::{
    Event, EventBody, EventKind, Ticket, TicketDraft, TransferAnswer, TransferOffer,
};
use http::{HeaderMap, Method, StatusCode};
use uuid::Uuid;

/// A canonical message on its way to one partner.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// Stable across every attempt: the partner deduplicates on it.
    pub message_id: Uuid,
    /// The ticket as it stands when the attempt is made.
    pub ticket: Ticket,
    pub event: Event,
}

/// A request in the partner's own dialect, ready to send.
#[derive(Debug, Clone)]
pub struct WireRequest {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the partner answered.
#[derive(Debug, Clone)]
pub struct WireResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl WireResponse {
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        Self {
            status,
            headers,
            body: body.into(),
        }
    }
}

/// How one delivery attempt ended, as far as the delivery engine needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The partner took the message; `partner_ref` is its own ticket number when it gave one.
    Acknowledged { partner_ref: Option<String> },
    /// The partner only confirmed receipt; its real acknowledgement arrives later as its own
    /// message. Without it by `within`, the message is sent again.
    AwaitingAck { within: Duration },
    /// Worth trying again (timeouts, connection errors, 408, 429, 5xx, retryable partner codes).
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (other 4xx, permanent partner codes).
    Permanent { reason: String },
    /// The partner does not take this message type at all.
    Unsupported { reason: String },
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Acknowledged { .. } => "acknowledged",
            Self::AwaitingAck { .. } => "awaiting_ack",
            Self::Retryable { .. } => "retryable",
            Self::Permanent { .. } => "permanent",
            Self::Unsupported { .. } => "unsupported",
        }
    }

    pub fn error_text(&self) -> Option<&str> {
        match self {
            Self::Retryable { reason, .. }
            | Self::Permanent { reason }
            | Self::Unsupported { reason } => Some(reason),
            Self::Acknowledged { .. } | Self::AwaitingAck { .. } => None,
        }
    }
}

/// One attempt, fully described, for the record.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    /// The partner's own result code when its dialect has one.
    pub partner_code: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("partner does not support message type `{0}`")]
    Unsupported(EventKind),
    #[error("cannot encode field `{field}`: {reason}")]
    Field { field: String, reason: String },
    #[error("signing failed: {0}")]
    Signing(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("request could not be built: {0}")]
    Request(String),
    #[error("TLS settings: {0}")]
    Tls(String),
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    fn outcome(&self) -> Outcome {
        match self {
            Self::Request(reason) | Self::Tls(reason) => Outcome::Permanent {
                reason: reason.clone(),
            },
            other => Outcome::Retryable {
                reason: other.to_string(),
                retry_after: None,
            },
        }
    }
}

/// An HTTP request a partner made to its ingress, `/partners/{partner}/{path}`.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    pub method: Method,
    /// What follows `/partners/{partner}/`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How a partner refers to one of the gateway's tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketRef {
    /// The gateway's id, as the partner received it with the dispatch.
    Gateway(Uuid),
    /// The partner's own number for the ticket.
    Partner(String),
}

/// A partner's message, decoded into canonical terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A new ticket from the partner (转办 to 12348).
    Ticket {
        message_id: Option<String>,
        partner_number: String,
        draft: Box<TicketDraft>,
    },
    /// A business message about an existing ticket (签收, 退回, 办结 ...).
    Event {
        message_id: Option<String>,
        ticket: TicketRef,
        body: EventBody,
    },
    /// A late acknowledgement of one of our deliveries.
    Ack {
        /// The message id we sent.
        message_id: Uuid,
        partner_ref: Option<String>,
        /// `false` when the partner refused the message after all.
        accepted: bool,
        reason: Option<String>,
    },
    /// The partner offers us a caller on a three-way call (转接 to 12348).
    Transfer {
        message_id: Option<String>,
        offer: Box<TransferOffer>,
    },
    /// The legal-aid case system reports a case's status.
    CaseUpdate(Box<hotline_model::legal_aid::CaseUpdate>),
}

/// What the gateway did with an inbound message, for the adapter to answer in its dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressReply {
    TicketAccepted {
        ticket_id: Uuid,
        duplicate: bool,
    },
    EventRecorded {
        ticket_id: Uuid,
        duplicate: bool,
    },
    AckApplied {
        known: bool,
    },
    /// Our answer to the partner's transfer offer `offer_id`.
    Transfer {
        offer_id: String,
        answer: TransferAnswer,
    },
    /// A case update taken: whether it was applied now (or held until the versions before it
    /// arrive), and the versions still missing, which we ask the case system for.
    CaseUpdate {
        applied: bool,
        missing: Vec<u64>,
    },
}

/// A refused inbound message: the status, a stable code, the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {}{reason}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct IngressError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<String>,
    pub reason: String,
}

impl IngressError {
    pub fn malformed(field: Option<String>, reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "malformed",
            field,
            reason: reason.into(),
        }
    }
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            field: Some(field.into()),
            reason: reason.into(),
        }
    }
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "bad_signature",
            field: None,
            reason: reason.into(),
        }
    }
    /// A correctly signed request whose one-time nonce came before.
    pub fn replayed(nonce: &str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "replayed",
            field: None,
            reason: format!("nonce `{nonce}` was already used; a replayed request is refused"),
        }
    }
    pub fn not_found(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            field: None,
            reason: reason.into(),
        }
    }
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            field: None,
            reason: reason.into(),
        }
    }
}

/// One message taken from a polled partner.
#[derive(Debug, Clone)]
pub struct PolledItem {
    /// The partner's id for the item, to acknowledge it.
    pub id: String,
    pub message: Result<Inbound, IngressError>,
}

/// What one poll returned.
#[derive(Debug, Clone)]
pub struct PollBatch {
    pub items: Vec<PolledItem>,
    /// Where the next poll starts; `None` keeps the current cursor.
    pub next_cursor: Option<String>,
}

/// One partner, as the gateway sees it.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// The partner id (`12345`, `legal-aid`, ...).
    fn partner(&self) -> &str;
    /// Whether the partner takes this message type at all.
    fn supports(&self, kind: EventKind) -> bool;
    /// Canonical → the partner's wire request, signed.
    fn encode(&self, msg: &OutboundMessage) -> Result<WireRequest, EncodeError>;
    /// Puts the request on the partner's transport.
    async fn send(&self, req: WireRequest) -> Result<WireResponse, TransportError>;
    /// Reads the partner's answer to a delivery.
    fn classify(&self, resp: &WireResponse) -> Outcome;
    /// The partner's own result code in an answer, if its dialect has one.
    fn partner_code(&self, _resp: &WireResponse) -> Option<String> {
        None
    }
    /// Partner wire → canonical, after checking the signature.
    fn decode(&self, req: &InboundRequest) -> Result<Inbound, IngressError>;
    /// The answer to an accepted inbound message, in the partner's dialect.
    fn respond(&self, reply: &IngressReply) -> WireResponse;
    /// The answer to a refused inbound message, in the partner's dialect.
    fn reject(&self, err: &IngressError) -> WireResponse;

    /// Whether the gateway polls this partner for its messages.
    fn polled(&self) -> bool {
        false
    }

    /// Takes the partner's messages after `cursor`.
    async fn poll(&self, _cursor: Option<&str>) -> Result<PollBatch, TransportError> {
        Err(TransportError::Request(format!(
            "partner {} is not polled",
            self.partner()
        )))
    }

    /// For a request whose signature covers a one-time nonce: the nonce, and how long it must
    /// be remembered (longer than the timestamp window on both sides). The gateway refuses a
    /// nonce it has seen, also after a restart.
    fn replay_guard(&self, _req: &InboundRequest) -> Option<(String, Duration)> {
        None
    }

    /// The mapping the adapter speaks, as (partner, version), when it is mapping-driven.
    fn mapping_version(&self) -> Option<(&str, &str)> {
        None
    }

    /// Whether the partner's CTI takes three-way call transfers through this adapter.
    fn transfers(&self) -> bool {
        false
    }

    /// Offers the partner's CTI a caller and waits for its answer. Transport failures and
    /// partner errors come back as refusals (`unreachable`, `partner_error`), so the caller can
    /// always be told what happens next.
    async fn offer_transfer(&self, _offer: &TransferOffer) -> TransferAnswer {
        TransferAnswer::refused(
            hotline_model::RefusalReason::PartnerError,
            format!("partner {} takes no transfers", self.partner()),
        )
    }

    /// Reads the partner's outbound TLS files again (`[partners.<id>.outbound_tls]`); new
    /// connections use them. A failure leaves the current ones in place. `false`: the partner
    /// has no outbound TLS settings.
    fn reload_tls(&self) -> Result<bool, TransportError> {
        Ok(false)
    }

    /// The partner's message bus, when it is reached over one instead of HTTP.
    fn bus(&self) -> Option<&crate::bus::BusLink> {
        None
    }

    /// Opens a subscription to the messages the partner publishes for us, when it is on a bus.
    async fn subscribe(&self) -> Option<Result<crate::bus::Subscription, TransportError>> {
        None
    }

    /// Tells the partner which polled items were taken, and which were refused and why.
    async fn ack_polled(
        &self,
        _taken: &[String],
        _refused: &[(String, String)],
    ) -> Result<(), TransportError> {
        Ok(())
    }
}

/// One delivery attempt: encode, send, classify, timed.
pub async fn deliver(adapter: &dyn Adapter, msg: &OutboundMessage) -> Attempt {
    let started = Instant::now();
    let kind = msg.event.kind();
    if !adapter.supports(kind) {
        return Attempt {
            outcome: Outcome::Unsupported {
                reason: format!(
                    "partner {} does not support message type `{kind}`",
                    adapter.partner()
                ),
            },
            http_status: None,
            partner_code: None,
            duration: started.elapsed(),
        };
    }
    let req = match adapter.encode(msg) {
        Ok(req) => req,
        Err(e) => {
            let outcome = match e {
                EncodeError::Unsupported(_) => Outcome::Unsupported {
                    reason: e.to_string(),
                },
                _ => Outcome::Permanent {
                    reason: e.to_string(),
                },
            };
            return Attempt {
                outcome,
                http_status: None,
                partner_code: None,
                duration: started.elapsed(),
            };
        }
    };
    match adapter.send(req).await {
        Ok(resp) => Attempt {
            outcome: adapter.classify(&resp),
            http_status: Some(resp.status.as_u16()),
            partner_code: adapter.partner_code(&resp),
            duration: started.elapsed(),
        },
        Err(e) => Attempt {
            outcome: e.outcome(),
            http_status: None,
            partner_code: None,
            duration: started.elapsed(),
        },
    }
}
