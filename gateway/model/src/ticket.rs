use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// 诉求类型: what the caller wants.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// 咨询
    Consultation,
    /// 投诉
    Complaint,
    /// 建议
    Suggestion,
    /// 求助
    Help,
    /// 举报
    Report,
    /// 表扬
    Praise,
}

/// 紧急程度.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    #[default]
    Normal,
    /// Urgent matters are forwarded within 1 hour (紧急事项1小时内完成转办).
    Urgent,
}

/// Where a ticket stands in its life across systems.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Accepted by the gateway, not yet dispatched anywhere.
    #[default]
    Received,
    /// Handed to a partner (转办).
    Dispatched,
    /// The handling side signed for it (签收).
    Receipted,
    /// Being handled; progress reported.
    InProgress,
    /// Sent back by the handling side (退回).
    Returned,
    /// An extension (延期) is awaiting a decision.
    ExtensionRequested,
    /// The result was fed back (办结).
    Replied,
    /// The caller was called back (回访).
    CalledBack,
    /// Sent back for rework (退回重办).
    Reopened,
    /// Withdrawn (撤单).
    Withdrawn,
    /// Merged into another open ticket (并单).
    Merged,
    /// Closed.
    Closed,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Dispatched => "dispatched",
            Self::Receipted => "receipted",
            Self::InProgress => "in_progress",
            Self::Returned => "returned",
            Self::ExtensionRequested => "extension_requested",
            Self::Replied => "replied",
            Self::CalledBack => "called_back",
            Self::Reopened => "reopened",
            Self::Withdrawn => "withdrawn",
            Self::Merged => "merged",
            Self::Closed => "closed",
        }
    }
}

/// The person who called (联系人). Personal data: masked wherever the viewer may not see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Caller {
    pub name: String,
    /// Mobile (11 digits) or landline (area code, optional dash) number.
    pub phone: String,
    /// 18-character resident identity number (GB 11643), when the caller gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
}

/// A ticket as a home system or a partner submits it: everything but the gateway's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TicketDraft {
    pub kind: TicketKind,
    #[serde(default)]
    pub urgency: Urgency,
    pub caller: Caller,
    /// 是否保密: a confidential ticket never hands the caller's identity to a partner.
    #[serde(default)]
    pub confidential: bool,
    /// 行政区划代码, 6 digits (GB/T 2260).
    pub region_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// 问题分类 code from the classification taxonomy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_code: Option<String>,
    pub title: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    /// When the call or message was received (来电时间), with its offset.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: DateTime<FixedOffset>,
    /// 涉及单位: units involved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
    /// 受理渠道: how the matter reached its origin (`phone`, `online_consultation`, `web`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// An online consultation handed to the hotline: the chat so far, one line per message.
    /// Personal data: sealed at rest, withheld from partners for confidential tickets, purged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<String>,
}

/// What a partner reads as the caller's name of a confidential (保密) ticket.
pub const WITHHELD: &str = "（保密）";

impl TicketDraft {
    /// The caller's identity removed (name, phone, ID number, address), for a partner that must
    /// not receive it: a confidential ticket never hands the caller's identity to a partner.
    pub fn withhold_identity(&mut self) {
        self.caller.name = WITHHELD.into();
        self.caller.phone = String::new();
        self.caller.id_number = None;
        self.address = None;
        self.transcript.clear();
    }
}

/// A ticket as the gateway keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ticket {
    /// The gateway's own id.
    pub id: Uuid,
    /// The system the ticket came from: `12348` for the home systems, or a partner id.
    pub origin: String,
    /// The origin system's own ticket number (工单编号), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Each partner's own number for this ticket, keyed by partner id.
    #[serde(default)]
    pub partner_numbers: BTreeMap<String, String>,
    pub status: TicketStatus,
    #[serde(flatten)]
    pub draft: TicketDraft,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl Ticket {
    /// A new ticket from a draft, stamped now.
    pub fn new(origin: &str, external_id: Option<String>, draft: TicketDraft) -> Self {
        let now = Utc::now();
        Self {
            id: Uuid::now_v7(),
            origin: origin.to_owned(),
            external_id,
            partner_numbers: BTreeMap::new(),
            status: TicketStatus::Received,
            draft,
            created_at: now,
            updated_at: now,
        }
    }
}
