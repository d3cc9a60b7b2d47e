//! A transfer as the gateway keeps it, and the log of what happened to it.

use chrono::{DateTime, Utc};
use hotline_model::{RefusalReason, TransferGrant, TransferOffer};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::machine::TransferState;

/// Which way the caller goes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From a 12348 agent to a partner hotline.
    Outbound,
    /// From a partner hotline to 12348.
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        }
    }
}

/// One transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Transfer {
    pub id: Uuid,
    pub direction: Direction,
    /// The partner on the other end.
    pub partner: String,
    pub call_id: String,
    pub state: TransferState,
    /// The context handed over: the caller, the matter, the ticket numbers.
    pub offer: TransferOffer,
    /// Where to dial, once granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<TransferGrant>,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefusalReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The other side's id for the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_ref: Option<String>,
    pub requested_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringing_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originator_left_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// When the timer runs out: the answer bound while requested, the connection bound once
    /// granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at: Option<DateTime<Utc>>,
    /// The ticket filed because the transfer did not happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_ticket_id: Option<Uuid>,
    /// Why the fallback ticket could not be filed (an alert was raised); it is not tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_error: Option<String>,
    /// The home CTI has not yet been told of the latest outcome.
    pub notify_pending: bool,
    /// Bumped by every change; a change made on an older version is refused.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl Transfer {
    /// The fallback ticket is still to be filed.
    /// Why the caller did not reach the other side, in Chinese, for the agent and the ticket.
    pub fn why_zh(&self) -> &'static str {
        match (self.reason, self.state) {
            (Some(r), _) => r.label_zh(),
            (None, TransferState::Expired) => "转接超时未接通",
            (None, _) => "转接失败",
        }
    }

    pub fn fallback_due(&self) -> bool {
        self.state.needs_fallback()
            && self.fallback_ticket_id.is_none()
            && self.fallback_error.is_none()
    }
}

/// What became of a reported event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryOutcome {
    /// It moved the transfer on.
    Applied,
    /// It came after a later event; recorded, nothing changed.
    Late,
    /// It was impossible in the transfer's state; recorded and refused.
    Rejected,
}

impl EntryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Late => "late",
            Self::Rejected => "rejected",
        }
    }
}

/// One line of a transfer's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TransferEntry {
    pub transfer_id: Uuid,
    /// `requested`, `granted`, `refused`, `ringing`, `connected`, `originator_left`,
    /// `completed`, `failed`, `expired`, `fallback`, `notified`.
    pub kind: String,
    /// When it happened, as reported.
    pub at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    /// `cti` (the home CTI), `partner`, or `gateway`.
    pub source: String,
    pub outcome: EntryOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The reporter's event id, for deduplication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl TransferEntry {
    pub fn new(transfer_id: Uuid, kind: &str, source: &str, outcome: EntryOutcome) -> Self {
        let now = Utc::now();
        Self {
            transfer_id,
            kind: kind.to_owned(),
            at: now,
            recorded_at: now,
            source: source.to_owned(),
            outcome,
            detail: None,
            key: None,
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

/// Filters for listing transfers, newest first.
#[derive(Debug, Clone, Default)]
pub struct TransferQuery {
    pub partner: Option<String>,
    pub state: Option<TransferState>,
    pub direction: Option<Direction>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

/// What storing a new transfer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferInsert {
    New(Uuid),
    /// The partner offered the same transfer before (same partner id for it): that one.
    Duplicate(Uuid),
}
