//! Legal aid (法律援助): the application the gateway files with the legal-aid case system for a
//! ticket, and the case's status as the case system reports it (Legal Aid Law, in force
//! 2022-01-01).

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::FieldError;
use crate::validate::{check_id_number, is_phone};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
}

/// 申请人.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Applicant {
    pub name: String,
    pub sex: Sex,
    /// 居民身份证号码 (GB 11643, 18 characters with its check digit).
    pub id_number: String,
    pub phone: String,
    pub address: String,
}

impl Applicant {
    /// The applicant's personal data, which is sealed at rest and blanked by retention: name,
    /// ID number, phone and address.
    pub fn personal_mut(&mut self) -> [&mut String; 4] {
        [
            &mut self.name,
            &mut self.id_number,
            &mut self.phone,
            &mut self.address,
        ]
    }
}

/// 经济困难证明: a statement of financial hardship, or a good-faith pledge (诚信承诺).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hardship {
    Statement { text: String },
    Pledge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    pub name: String,
    pub url: String,
}

/// 法律援助申请, as the home system files it for a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Application {
    pub applicant: Applicant,
    /// 对方当事人.
    pub opposing_party: String,
    /// 案件类型, e.g. `labor`, `marriage`, `traffic`.
    pub case_type: String,
    /// 是否追索劳动报酬 (unpaid wages).
    #[serde(default)]
    pub unpaid_wages: bool,
    /// 案情描述.
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    pub hardship: Hardship,
    /// 先行提供: urgent (a limitation period under 7 days, urgent preservation).
    #[serde(default)]
    pub urgent: bool,
}

const MAX_TEXT: usize = 200;
const MAX_DESCRIPTION: usize = 8000;

impl Application {
    /// A complete, valid application (documentation, demo and tests).
    pub fn example() -> Self {
        Self {
            applicant: Applicant {
                name: "陈红".into(),
                sex: Sex::Female,
                id_number: "11010519491231002X".into(),
                phone: "13605310011".into(),
                address: "济南市市中区经七路".into(),
            },
            opposing_party: "某建筑劳务公司".into(),
            case_type: "labor".into(),
            unpaid_wages: true,
            description: "在工地干了四个月，包工头拖欠工资三万元。".into(),
            attachments: vec![],
            hardship: Hardship::Pledge,
            urgent: false,
        }
    }

    /// Everything the case system would refuse, all at once (一次性告知), under `prefix`.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        let a = &self.applicant;
        let mut required = |value: &str, field: &str, max: usize| {
            if value.trim().is_empty() {
                out.push(FieldError::new(field, "is required"));
            } else if value.chars().count() > max {
                out.push(FieldError::new(
                    field,
                    format!("must be at most {max} characters"),
                ));
            }
        };
        required(&a.name, "applicant.name", 50);
        required(&a.address, "applicant.address", MAX_TEXT);
        required(&self.opposing_party, "opposing_party", MAX_TEXT);
        required(&self.case_type, "case_type", 32);
        required(&self.description, "description", MAX_DESCRIPTION);
        if let Hardship::Statement { text } = &self.hardship {
            required(text, "hardship.text", MAX_DESCRIPTION);
        }
        for (i, att) in self.attachments.iter().enumerate() {
            required(&att.name, &format!("attachments[{i}].name"), MAX_TEXT);
            required(&att.url, &format!("attachments[{i}].url"), 1000);
        }
        if a.id_number.trim().is_empty() {
            out.push(FieldError::new("applicant.id_number", "is required"));
        } else if let Err(reason) = check_id_number(&a.id_number) {
            out.push(FieldError::new("applicant.id_number", reason));
        } else if let Some(sex) = id_sex(&a.id_number)
            && sex != a.sex
        {
            out.push(FieldError::new(
                "applicant.sex",
                "does not match the ID number (its 17th digit is odd for men, even for women)",
            ));
        }
        if a.phone.trim().is_empty() {
            out.push(FieldError::new("applicant.phone", "is required"));
        } else if !is_phone(&a.phone) {
            out.push(FieldError::new(
                "applicant.phone",
                "must be a mainland mobile (11 digits) or landline number",
            ));
        }
        out
    }
}

/// The sex an ID number records (its 17th character).
fn id_sex(id: &str) -> Option<Sex> {
    let d = id.chars().nth(16)?.to_digit(10)?;
    Some(if d % 2 == 1 { Sex::Male } else { Sex::Female })
}

/// Where a legal-aid case stands, as the case system reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CaseStatus {
    /// Filed, not yet acknowledged by an update.
    Submitted,
    /// 受理.
    Accepted,
    /// 审查.
    Reviewing,
    /// 补充材料: the missing materials, listed all at once.
    MaterialsRequested { materials: Vec<String> },
    /// 决定给予法律援助.
    Granted,
    /// 决定不予法律援助, with the reasons.
    Refused { reasons: String },
    /// 指派: the lawyer and the firm.
    Assigned { lawyer: String, firm: String },
    /// 承办.
    Handling,
    /// 结案.
    Closed,
    /// 终止, with the ground.
    Terminated { ground: String },
}

impl CaseStatus {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Accepted => "accepted",
            Self::Reviewing => "reviewing",
            Self::MaterialsRequested { .. } => "materials_requested",
            Self::Granted => "granted",
            Self::Refused { .. } => "refused",
            Self::Assigned { .. } => "assigned",
            Self::Handling => "handling",
            Self::Closed => "closed",
            Self::Terminated { .. } => "terminated",
        }
    }

    /// Closed, terminated or refused: nothing more will happen.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Closed | Self::Terminated { .. } | Self::Refused { .. }
        )
    }

    /// Whether a decision (grant or refusal) was made by this status.
    pub fn decided(&self) -> bool {
        !matches!(
            self,
            Self::Submitted | Self::Accepted | Self::Reviewing | Self::MaterialsRequested { .. }
        )
    }

    /// Whether a lawyer was assigned by this status.
    pub fn assigned(&self) -> bool {
        matches!(
            self,
            Self::Assigned { .. } | Self::Handling | Self::Closed | Self::Terminated { .. }
        )
    }

    /// What the caller is told, in Chinese: the milestone forwarded to the ticket's origin.
    pub fn milestone(&self) -> Option<String> {
        Some(match self {
            Self::Accepted => "法律援助申请已受理".into(),
            Self::MaterialsRequested { materials } => {
                format!("法律援助申请需补充材料：{}", materials.join("、"))
            }
            Self::Granted => "已决定给予法律援助".into(),
            Self::Refused { reasons } => format!("决定不予法律援助：{reasons}"),
            Self::Assigned { lawyer, firm } => format!("已指派{firm}{lawyer}律师承办"),
            Self::Closed => "法律援助案件已结案".into(),
            Self::Terminated { ground } => format!("法律援助已终止：{ground}"),
            Self::Submitted | Self::Reviewing | Self::Handling => return None,
        })
    }
}

/// One numbered update of a case, as the case system sends it (or lists it when asked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaseUpdate {
    /// The case system's number for the case (案号).
    pub case_no: String,
    /// 1, 2, 3 ... per case, without gaps.
    pub version: u64,
    /// The ticket the application was filed for (our reference, echoed).
    pub ticket_id: uuid::Uuid,
    /// When the case system received the application: the decision is due 7 days later.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: DateTime<FixedOffset>,
    /// When this status took effect.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<FixedOffset>,
    #[serde(flatten)]
    pub status: CaseStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named_at_once() {
        let mut a = Application::example();
        assert!(a.problems().is_empty(), "{:?}", a.problems());
        a.applicant.sex = Sex::Male;
        assert_eq!(
            a.problems()
                .iter()
                .map(|p| p.field.as_str())
                .collect::<Vec<_>>(),
            vec!["applicant.sex"],
            "the sample ID number is a woman's"
        );
        a.applicant.sex = Sex::Female;
        a.applicant.id_number = "110105194912310021".into(); // wrong check digit
        a.applicant.phone = "12345".into();
        a.opposing_party = " ".into();
        a.hardship = Hardship::Statement { text: "".into() };
        let fields: Vec<_> = a.problems().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec![
                "opposing_party",
                "hardship.text",
                "applicant.id_number",
                "applicant.phone"
            ]
        );
    }

    #[test]
    fn statuses_know_decisions_assignments_and_milestones() {
        assert!(!CaseStatus::Reviewing.decided());
        assert!(CaseStatus::Granted.decided());
        assert!(!CaseStatus::Granted.assigned());
        let assigned = CaseStatus::Assigned {
            lawyer: "张伟".into(),
            firm: "山东某律师事务所".into(),
        };
        assert!(assigned.assigned());
        assert_eq!(
            assigned.milestone().as_deref(),
            Some("已指派山东某律师事务所张伟律师承办")
        );
        assert!(CaseStatus::Reviewing.milestone().is_none());
        let u: CaseUpdate = serde_json::from_value(serde_json::json!({
            "case_no": "FY-2026-001", "version": 3,
            "ticket_id": "019ab2c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d",
            "received_at": "2026-11-24T09:00:00+08:00", "at": "2026-11-25T09:00:00+08:00",
            "status": "refused", "reasons": "经济状况不符合条件"
        }))
        .unwrap();
        assert!(u.status.is_final());
    }
}
