use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The type of a message between systems about a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// 转办: hand the ticket to a partner.
    Dispatch,
    /// 签收: the handling side signs for it.
    Receipt,
    /// 退回: sent back as outside the receiver's remit.
    Return,
    /// 延期申请.
    ExtensionRequest,
    /// 延期审批.
    ExtensionDecision,
    /// 过程反馈.
    Progress,
    /// 办结 / 答复.
    Reply,
    /// 催办.
    Urge,
    /// 督办.
    Supervise,
    /// 回访.
    Callback,
    /// 退回重办.
    Reopen,
    /// 撤单.
    Withdraw,
    /// 并单: the ticket repeats another open one and is merged into it.
    Merge,
    /// 法律援助申请: an application filed with the legal-aid case system for the ticket.
    LegalAid,
    /// 法律援助进展: a milestone of the ticket's legal-aid case (granted, assigned, closed ...).
    CaseStatus,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        Self::Dispatch,
        Self::Receipt,
        Self::Return,
        Self::ExtensionRequest,
        Self::ExtensionDecision,
        Self::Progress,
        Self::Reply,
        Self::Urge,
        Self::Supervise,
        Self::Callback,
        Self::Reopen,
        Self::Withdraw,
        Self::Merge,
        Self::LegalAid,
        Self::CaseStatus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispatch => "dispatch",
            Self::Receipt => "receipt",
            Self::Return => "return",
            Self::ExtensionRequest => "extension_request",
            Self::ExtensionDecision => "extension_decision",
            Self::Progress => "progress",
            Self::Reply => "reply",
            Self::Urge => "urge",
            Self::Supervise => "supervise",
            Self::Callback => "callback",
            Self::Reopen => "reopen",
            Self::Withdraw => "withdraw",
            Self::Merge => "merge",
            Self::LegalAid => "legal_aid",
            Self::CaseStatus => "case_status",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown message type `{s}`"))
    }
}

/// 满意度, the five-level scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    VerySatisfied,
    Satisfied,
    BasicallySatisfied,
    Unsatisfied,
    VeryUnsatisfied,
}

/// What a message says, by type. The `kind` tag is the [`EventKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    Dispatch {
        /// Units the receiver should hand the ticket to.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        units: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Receipt {
        /// The receiver's own number for the ticket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partner_number: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
    Return {
        reason: String,
    },
    ExtensionRequest {
        working_days: u32,
        reason: String,
    },
    ExtensionDecision {
        approved: bool,
        #[serde(default)]
        working_days: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Progress {
        note: String,
    },
    Reply {
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
    Urge {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Supervise {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Callback {
        satisfaction: Satisfaction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Reopen {
        reason: String,
    },
    Withdraw {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Merge {
        /// The open ticket this one is merged into.
        into: Uuid,
    },
    LegalAid {
        application: Box<crate::legal_aid::Application>,
    },
    CaseStatus {
        /// The case system's number for the case (案号).
        case_no: String,
        /// The case's status name (`granted`, `assigned`, ...).
        status: String,
        /// What the caller is told.
        note: String,
    },
}

impl EventBody {
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Dispatch { .. } => EventKind::Dispatch,
            Self::Receipt { .. } => EventKind::Receipt,
            Self::Return { .. } => EventKind::Return,
            Self::ExtensionRequest { .. } => EventKind::ExtensionRequest,
            Self::ExtensionDecision { .. } => EventKind::ExtensionDecision,
            Self::Progress { .. } => EventKind::Progress,
            Self::Reply { .. } => EventKind::Reply,
            Self::Urge { .. } => EventKind::Urge,
            Self::Supervise { .. } => EventKind::Supervise,
            Self::Callback { .. } => EventKind::Callback,
            Self::Reopen { .. } => EventKind::Reopen,
            Self::Withdraw { .. } => EventKind::Withdraw,
            Self::Merge { .. } => EventKind::Merge,
            Self::LegalAid { .. } => EventKind::LegalAid,
            Self::CaseStatus { .. } => EventKind::CaseStatus,
        }
    }
}

/// One message on a ticket's timeline, whichever system caused it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: Uuid,
    pub ticket_id: Uuid,
    /// The system that caused the event (`12348` or a partner id).
    pub source: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    pub fn new(ticket_id: Uuid, source: &str, body: EventBody) -> Self {
        Self {
            id: Uuid::now_v7(),
            ticket_id,
            source: source.to_owned(),
            at: Utc::now(),
            body,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.body.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_round_trip_through_their_wire_names() {
        for kind in EventKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::Value::String(kind.as_str().to_owned()));
            assert_eq!(kind.as_str().parse::<EventKind>().unwrap(), kind);
        }
        assert!("teleport".parse::<EventKind>().is_err());
    }

    #[test]
    fn event_body_is_tagged_by_kind_in_snake_case() {
        let e = Event::new(
            Uuid::nil(),
            "12345",
            EventBody::ExtensionRequest {
                working_days: 5,
                reason: "多部门联办".into(),
            },
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "extension_request");
        assert_eq!(v["working_days"], 5);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.kind(), EventKind::ExtensionRequest);
    }
}
