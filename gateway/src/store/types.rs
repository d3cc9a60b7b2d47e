use chrono::{DateTime, Utc};
use hotline_model::{Event, EventKind, Ticket, TicketStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Where a delivery stands: `pending → sending → acknowledged`, or `awaiting_ack` (the partner
/// confirmed receipt, its acknowledgement follows), `retrying`, `dead` (replayable), or `skipped`
/// (the partner does not take this message type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Sending,
    AwaitingAck,
    Retrying,
    Acknowledged,
    Dead,
    Skipped,
}

impl DeliveryStatus {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Sending,
        Self::AwaitingAck,
        Self::Retrying,
        Self::Acknowledged,
        Self::Dead,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::AwaitingAck => "awaiting_ack",
            Self::Retrying => "retrying",
            Self::Acknowledged => "acknowledged",
            Self::Dead => "dead",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One outbox row: one message to one partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub event_id: Uuid,
    pub partner: String,
    /// Stable across attempts; the partner deduplicates on it.
    pub message_id: Uuid,
    pub message_type: EventKind,
    pub status: DeliveryStatus,
    /// Attempts made so far, over all rounds.
    pub attempts: u32,
    /// Attempts made since the last manual retry.
    pub attempts_this_round: u32,
    /// Pending/retrying: when the next attempt is due. Sending/awaiting_ack: when the lease or the
    /// wait for an acknowledgement runs out.
    #[schema(value_type = String, format = DateTime)]
    pub due_at: DateTime<Utc>,
    /// The partner's receipt: its own ticket number.
    pub partner_ref: Option<String>,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acked_at: Option<DateTime<Utc>>,
}

/// One delivery attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttemptRecord {
    pub delivery_id: Uuid,
    pub number: u32,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// acknowledged, awaiting_ack, retryable, permanent or unsupported.
    pub outcome: String,
    pub http_status: Option<u16>,
    pub partner_code: Option<String>,
    pub error: Option<String>,
    pub partner_ref: Option<String>,
}

/// A new ticket for the store.
#[derive(Debug, Clone)]
pub struct NewTicket {
    pub ticket: Ticket,
    /// Its first event (a dispatch when it goes on to partners).
    pub event: Event,
    pub targets: Vec<String>,
    /// Idempotency keys within the ticket's origin.
    pub keys: Vec<String>,
    /// Numbers the origin knows the ticket by, as (system, number).
    pub numbers: Vec<(String, String)>,
    /// Keyed hash of the caller's phone number, for repeat-caller matching.
    pub caller_hash: Option<String>,
    /// With `caller_hash`: the caller's tickets created since then are read in the same write
    /// and reported in [`Accepted::Created::caller_tickets`] (the repeat-caller check).
    pub repeat_since: Option<DateTime<Utc>>,
    pub clocks: Vec<ClockOp>,
    /// Targets whose delivery worker takes the new delivery straight from the intake: their
    /// rows are written already claimed, and come back as [`Accepted::Created::claims`].
    pub handoff: Option<Handoff>,
    /// The replay nonce of the partner request that carried the ticket: remembered with it;
    /// when it was remembered before, nothing is written and the accept fails with
    /// [`StoreError::Replayed`](super::StoreError::Replayed).
    pub nonce: Option<Nonce>,
}

/// A partner request's one-time nonce, kept until `keep` after `now`
/// ([`Store::remember_nonce`](super::Store::remember_nonce)).
#[derive(Debug, Clone)]
pub struct Nonce {
    pub partner: String,
    pub value: String,
    /// When the request came.
    pub now: DateTime<Utc>,
    pub keep: std::time::Duration,
}

impl Nonce {
    pub fn new(
        partner: impl Into<String>,
        value: impl Into<String>,
        now: DateTime<Utc>,
        keep: std::time::Duration,
    ) -> Self {
        Self {
            partner: partner.into(),
            value: value.into(),
            now,
            keep,
        }
    }

    /// Until when it is kept (`now` when the sum overflows).
    pub fn until(&self) -> DateTime<Utc> {
        self.now
            .checked_add_signed(crate::time::span(self.keep))
            .unwrap_or(self.now)
    }
}

impl NewTicket {
    /// The claims of the deliveries the hand-off took, given the (id, message id) written for
    /// each target in order. They carry the ticket and its event, moved into the last claim
    /// (copied only for the others, when more than one target took its delivery).
    pub fn into_claims(self, written: &[(Uuid, Uuid)]) -> Vec<Claim> {
        let Some(h) = &self.handoff else {
            return Vec::new();
        };
        let now = Utc::now();
        // The ticket as reading it back would give it: its numbers, its times to the
        // millisecond the store keeps.
        let mut ticket = self.ticket;
        ticket.partner_numbers.extend(self.numbers);
        let as_kept = |t: DateTime<Utc>| super::rows::from_ms(super::rows::ms(t)).unwrap_or(t);
        ticket.created_at = as_kept(ticket.created_at);
        ticket.updated_at = as_kept(ticket.updated_at);
        let event = self.event;
        let mut taken = self
            .targets
            .iter()
            .zip(written)
            .filter(|(partner, _)| h.takes(partner))
            .peekable();
        let mut claims = Vec::new();
        while let Some((partner, ids)) = taken.next() {
            if taken.peek().is_some() {
                claims.push(h.claim(ticket.clone(), event.clone(), partner, *ids, now));
            } else {
                claims.push(h.claim(ticket, event, partner, *ids, now));
                break;
            }
        }
        claims
    }
}

/// Deliveries written already claimed under one lease, for workers that have room for them:
/// a new ticket's first message is sent without waiting for a claim of its own.
#[derive(Debug, Clone)]
pub struct Handoff {
    pub lease_token: Uuid,
    pub lease_until: DateTime<Utc>,
    pub partners: Vec<String>,
}

impl Handoff {
    /// The claim of a delivery written under this hand-off (its first attempt, as a claim
    /// query would have made it).
    pub fn claim(
        &self,
        ticket: Ticket,
        event: Event,
        partner: &str,
        (id, message_id): (Uuid, Uuid),
        now: DateTime<Utc>,
    ) -> Claim {
        Claim {
            token: ClaimToken {
                delivery_id: id,
                lease_token: self.lease_token,
            },
            delivery: Delivery {
                id,
                ticket_id: ticket.id,
                event_id: event.id,
                partner: partner.to_owned(),
                message_id,
                message_type: event.kind(),
                status: DeliveryStatus::Sending,
                attempts: 1,
                attempts_this_round: 1,
                due_at: self.lease_until,
                partner_ref: None,
                last_error: None,
                created_at: now,
                updated_at: now,
                acked_at: None,
            },
            ticket,
            event,
        }
    }

    pub fn takes(&self, partner: &str) -> bool {
        self.partners.iter().any(|p| p == partner)
    }
}

/// A new event on an existing ticket.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event: Event,
    /// The ticket's status after the event, if it changes.
    pub status: Option<TicketStatus>,
    /// Apply only if the ticket is still in this status (compare-and-set).
    pub expected_status: Option<TicketStatus>,
    pub targets: Vec<String>,
    /// Idempotency keys within the event's source.
    pub keys: Vec<String>,
    pub numbers: Vec<(String, String)>,
    pub clocks: Vec<ClockOp>,
}

/// What became of a new ticket or event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Created {
        ticket_id: Uuid,
        event_id: Uuid,
        deliveries: Vec<Uuid>,
        /// The caller's tickets since [`NewTicket::repeat_since`], this one included, oldest
        /// first; empty when not asked for.
        caller_tickets: Vec<Uuid>,
        /// The deliveries written already claimed ([`NewTicket::handoff`]), for their workers.
        claims: Vec<Claim>,
    },
    /// Already seen under one of its idempotency keys: nothing was written.
    Duplicate { ticket_id: Uuid, event_id: Uuid },
}

impl Accepted {
    pub fn ticket_id(&self) -> Uuid {
        match self {
            Self::Created { ticket_id, .. } | Self::Duplicate { ticket_id, .. } => *ticket_id,
        }
    }
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate { .. })
    }
}

/// Proof of a claim: only its holder may finish the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    pub delivery_id: Uuid,
    pub lease_token: Uuid,
}

/// A claimed delivery with what is needed to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub token: ClaimToken,
    pub delivery: Delivery,
    pub ticket: Ticket,
    pub event: Event,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Acknowledged { partner_ref: Option<String> },
    AwaitingAck { until: DateTime<Utc> },
    Retry { at: DateTime<Utc>, error: String },
    Dead { error: String },
    Skipped { reason: String },
}

/// A partner's asynchronous acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateAck {
    pub partner_ref: Option<String>,
    pub accepted: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryResult {
    Requeued(Delivery),
    NotDead(DeliveryStatus),
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    pub partner: String,
    pub status: DeliveryStatus,
    pub count: u64,
    /// Oldest `created_at` among the rows, for pending-age figures.
    pub oldest: Option<DateTime<Utc>>,
}

/// Filters for listing tickets.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// Only tickets from this system (`12348` or a partner id).
    pub origin: Option<String>,
    pub status: Option<TicketStatus>,
    /// Tickets whose id sorts after this one (ids are time-ordered): the next page.
    pub after: Option<Uuid>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Filters for listing deliveries.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    pub partner: Option<String>,
    pub ticket_id: Option<Uuid>,
    /// Deliveries of tickets that any system knows by this number (or whose gateway id it is).
    pub number: Option<String>,
    pub message_type: Option<EventKind>,
    /// Created at or after this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<DateTime<Utc>>,
    /// Created before this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<DateTime<Utc>>,
    /// Deliveries whose id sorts after this one: the next page.
    pub after: Option<Uuid>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

pub fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(100).clamp(1, 1000)
}

/// A message the lifecycle refused, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefusedEvent {
    pub ticket_id: Uuid,
    /// The system that sent it.
    pub source: String,
    pub kind: EventKind,
    /// The ticket's status when it was refused.
    pub status: TicketStatus,
    pub reason: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    Running,
    /// Done in time.
    Met,
    /// Done, but late.
    Missed,
    /// No longer applies (returned, withdrawn, closed).
    Stopped,
}

impl ClockState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Met => "met",
            Self::Missed => "missed",
            Self::Stopped => "stopped",
        }
    }
}

/// An SLA clock: `party` must do `kind` by `due_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Clock {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub kind: crate::sla::ClockKind,
    /// `12348` or a partner id.
    pub party: String,
    pub urgent: bool,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub due_at: DateTime<Utc>,
    /// When 催办 is due (the working day before the deadline).
    #[schema(value_type = String, format = DateTime)]
    pub urge_at: DateTime<Utc>,
    /// The deadline reaches a year whose calendar is not loaded.
    pub provisional: bool,
    /// Working days added by approved extensions.
    pub extended_days: u32,
    pub state: ClockState,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stopped_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub urged_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub overdue_at: Option<DateTime<Utc>>,
}

/// A change to a ticket's clocks, committed with the event that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockOp {
    Start(Clock),
    /// The party did it: `met` if by the deadline, else `missed`.
    Close {
        kind: crate::sla::ClockKind,
        party: Option<String>,
        at: DateTime<Utc>,
    },
    /// The clock no longer applies.
    Stop {
        kind: crate::sla::ClockKind,
        party: Option<String>,
        at: DateTime<Utc>,
    },
    /// A new deadline (an approved extension, a loaded calendar).
    Reschedule {
        id: Uuid,
        due_at: DateTime<Utc>,
        urge_at: DateTime<Utc>,
        provisional: bool,
        extended_days: u32,
    },
}

/// Which mark a scan sets on a clock, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMark {
    Urged,
    Overdue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// 即将到期: a deadline is today or tomorrow (催办 sent).
    DueSoon,
    /// 已超期: a deadline passed (督办 raised).
    Overdue,
    /// 重复来电预警.
    RepeatCaller,
    /// A deadline reaches a year whose working-day calendar is not loaded.
    CalendarMissing,
    /// 转接工单未生成: a transfer that did not happen could not become a ticket.
    TransferUnfiled,
    /// 合作方故障: a partner's circuit breaker opened.
    PartnerDown,
    /// 法律援助时限超期: a legal-aid decision (7 days) or assignment (3 days) is overdue.
    LegalAidOverdue,
}

impl AlertKind {
    pub const ALL: [Self; 7] = [
        Self::DueSoon,
        Self::Overdue,
        Self::RepeatCaller,
        Self::CalendarMissing,
        Self::TransferUnfiled,
        Self::PartnerDown,
        Self::LegalAidOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DueSoon => "due_soon",
            Self::Overdue => "overdue",
            Self::RepeatCaller => "repeat_caller",
            Self::CalendarMissing => "calendar_missing",
            Self::TransferUnfiled => "transfer_unfiled",
            Self::PartnerDown => "partner_down",
            Self::LegalAidOverdue => "legal_aid_overdue",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// Raising the same key again does nothing.
    pub key: String,
    pub kind: AlertKind,
    pub ticket_id: Option<Uuid>,
    pub party: Option<String>,
    pub message: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    pub id: Uuid,
    pub kind: AlertKind,
    pub ticket_id: Option<Uuid>,
    pub party: Option<String>,
    pub message: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

/// Filters for listing alerts.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Only alerts nobody acknowledged yet.
    #[serde(default)]
    pub open: Option<bool>,
    pub kind: Option<AlertKind>,
    pub ticket_id: Option<Uuid>,
    pub limit: Option<u32>,
}

/// Open alerts of one kind for one party.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlertCount {
    pub kind: AlertKind,
    pub party: Option<String>,
    /// The ticket's first unit involved (涉及单位), if any.
    pub unit: Option<String>,
    pub open: u64,
}

/// An entry for the audit log: an operator action or a view of personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    pub actor: String,
    pub role: String,
    /// What was done, e.g. `delivery.retry`, `partner.pause`, `ticket.unmask`.
    pub action: String,
    /// What it was done to (a delivery, ticket or partner id, or a filter).
    pub target: Option<String>,
    pub reason: Option<String>,
    pub detail: serde_json::Value,
}

/// One audit log entry as stored, chained to the one before by `prev_hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: u64,
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub role: String,
    pub action: String,
    pub target: Option<String>,
    pub reason: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for browsing the audit log, newest first.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Entries older than this sequence number: the next page.
    pub before: Option<u64>,
    pub limit: Option<u32>,
}

/// A partner whose deliveries ops paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pause {
    pub partner: String,
    #[schema(value_type = String, format = DateTime)]
    pub since: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

/// A legal-aid case as the gateway knows it: the last update applied, and its statutory clocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LegalAidCase {
    /// The case system's number (案号).
    pub case_no: String,
    /// The ticket the application was filed for.
    pub ticket_id: Uuid,
    /// The last update applied; updates are applied in version order, without gaps.
    pub version: u64,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub status: hotline_model::legal_aid::CaseStatus,
    /// When the case system received the application.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: DateTime<Utc>,
    /// The decision is due 7 days after receipt (calendar days, Legal Aid Law).
    #[schema(value_type = String, format = DateTime)]
    pub decision_due: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<DateTime<Utc>>,
    /// A lawyer is due 3 days after the grant.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub assignment_due: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub assigned_at: Option<DateTime<Utc>>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// Filters for listing legal-aid cases.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CaseQuery {
    pub ticket_id: Option<Uuid>,
    /// Only cases still open (not closed, terminated or refused).
    pub open: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_model::EventBody;

    /// Every partner the hand-off takes gets a claim carrying the ticket as it reads back (its
    /// numbers, its times to the millisecond) and its event; the others get none.
    #[test]
    fn each_partner_handed_off_gets_the_ticket_as_it_reads_back() {
        let ticket = Ticket::new("12345", None, contract_tests::samples::random_draft());
        let event = Event::new(
            ticket.id,
            "12345",
            EventBody::Dispatch {
                units: vec![],
                note: None,
            },
        );
        let now = Utc::now();
        let cmd = NewTicket {
            ticket: ticket.clone(),
            event: event.clone(),
            targets: vec!["12315".into(), "12333".into(), "12338".into()],
            keys: vec![],
            numbers: vec![("12345".into(), "SD-1".into())],
            caller_hash: None,
            repeat_since: None,
            clocks: vec![],
            handoff: Some(Handoff {
                lease_token: Uuid::now_v7(),
                lease_until: now,
                partners: vec!["12315".into(), "12338".into()],
            }),
            nonce: None,
        };
        let written: Vec<(Uuid, Uuid)> = (0..3).map(|_| (Uuid::now_v7(), Uuid::now_v7())).collect();
        let claims = cmd.into_claims(&written);
        let partners: Vec<&str> = claims.iter().map(|c| c.delivery.partner.as_str()).collect();
        assert_eq!(partners, ["12315", "12338"]);
        assert_eq!(claims[1].delivery.id, written[2].0);
        for c in &claims {
            assert_eq!(c.ticket.id, ticket.id);
            assert_eq!(
                c.ticket.partner_numbers.get("12345").map(String::as_str),
                Some("SD-1")
            );
            assert_eq!(
                c.ticket.created_at.timestamp_millis() * 1_000_000,
                c.ticket
                    .created_at
                    .timestamp_nanos_opt()
                    .unwrap_or_default(),
                "kept to the millisecond"
            );
            assert_eq!(c.event, event);
        }
    }
}
