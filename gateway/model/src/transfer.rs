//! Three-way call transfers (三方通话): what one call centre offers another, and the answer.
//!
//! The gateway carries no audio. It hands the context of a call (the screen pop) to the other
//! side's CTI system and relays whether that side takes the call and where to dial.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::TicketDraft;

/// An offer to take a caller on a three-way call, with the context the receiving agent sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferOffer {
    /// The offering side's id for the transfer; the answer names it again.
    pub id: String,
    /// The offering call centre's id of the call.
    pub call_id: String,
    /// The agent who is on the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The offering hotline's ticket number for the matter, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_number: Option<String>,
    /// The matter as a draft ticket: caller, category, urgency, summary. It is also what the
    /// fallback ticket carries when the transfer does not happen.
    pub ticket: TicketDraft,
}

/// Why a call centre did not take a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// 坐席忙: every agent is on a call.
    Busy,
    /// 非工作时间: outside the partner's business hours.
    Closed,
    /// 无可用坐席: no agent for this matter is signed in.
    NoAgent,
    /// 无法连接: the partner's CTI did not answer in time or could not be reached.
    Unreachable,
    /// 对方报错: the partner answered with an error of its own.
    PartnerError,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 5] = [
        Self::Busy,
        Self::Closed,
        Self::NoAgent,
        Self::Unreachable,
        Self::PartnerError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::Closed => "closed",
            Self::NoAgent => "no_agent",
            Self::Unreachable => "unreachable",
            Self::PartnerError => "partner_error",
        }
    }

    /// What the agent tells the caller, in Chinese.
    pub fn label_zh(self) -> &'static str {
        match self {
            Self::Busy => "对方坐席忙",
            Self::Closed => "对方非工作时间",
            Self::NoAgent => "对方无可用坐席",
            Self::Unreachable => "对方系统无法连接",
            Self::PartnerError => "对方系统报错",
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RefusalReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a refusal reason"))
    }
}

/// Where to dial: what a call centre that takes a transfer grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TransferGrant {
    /// A phone number or a SIP URI.
    pub dial_target: String,
    /// One-time token to pass along with the call, so the receiving agent's screen pops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The grant is void after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<DateTime<FixedOffset>>,
    /// The receiving side's own id for the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_ref: Option<String>,
}

/// The answer to a [`TransferOffer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum TransferAnswer {
    Granted(TransferGrant),
    Refused {
        reason: RefusalReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// The ticket filed instead, when the answering side filed one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket_number: Option<String>,
    },
}

impl TransferAnswer {
    pub fn refused(reason: RefusalReason, detail: impl Into<String>) -> Self {
        Self::Refused {
            reason,
            detail: Some(detail.into()),
            ticket_number: None,
        }
    }
}
