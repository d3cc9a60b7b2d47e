//! The legal-aid board: the cases still open in the case system, with their statutory deadlines
//! (the decision 7 days after receipt, a lawyer 3 days after the grant).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use hotline_model::legal_aid::CaseStatus;

use super::auth::Viewer;
use super::page::{Chrome, PageError, fmt_opt_time, fmt_time, render};
use crate::api::AppState;
use crate::store::{CaseQuery, LegalAidCase};

struct CaseRow {
    case_no: String,
    ticket_id: String,
    status: &'static str,
    detail: String,
    version: u64,
    received: String,
    decision_due: String,
    /// The decision is late: not taken by its deadline.
    decision_late: bool,
    assignment_due: String,
    /// The lawyer is late: not assigned by the deadline.
    assignment_late: bool,
    updated: String,
}

impl CaseRow {
    fn new(c: &LegalAidCase, now: DateTime<Utc>) -> Self {
        let late = |due: Option<DateTime<Utc>>, done: Option<DateTime<Utc>>| {
            done.is_none() && due.is_some_and(|due| due < now)
        };
        Self {
            case_no: c.case_no.clone(),
            ticket_id: c.ticket_id.to_string(),
            status: c.status.name(),
            detail: detail(&c.status),
            version: c.version,
            received: fmt_time(c.received_at),
            decision_due: fmt_time(c.decision_due),
            decision_late: late(Some(c.decision_due), c.decided_at),
            assignment_due: fmt_opt_time(c.assignment_due),
            assignment_late: late(c.assignment_due, c.assigned_at),
            updated: fmt_time(c.updated_at),
        }
    }
}

/// What a status carries besides its name.
fn detail(status: &CaseStatus) -> String {
    match status {
        CaseStatus::MaterialsRequested { materials } => materials.join("、"),
        CaseStatus::Refused { reasons } => reasons.clone(),
        CaseStatus::Assigned { lawyer, firm } => format!("{lawyer} · {firm}"),
        CaseStatus::Terminated { ground } => ground.clone(),
        _ => String::new(),
    }
}

#[derive(Template)]
#[template(path = "legal_aid.html")]
struct LegalAidPage {
    chrome: Chrome,
    rows: Vec<CaseRow>,
    late: usize,
}

pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let mut cases = state
        .store
        .legal_aid_cases(&CaseQuery {
            open: Some(true),
            ..CaseQuery::default()
        })
        .await?;
    // The nearest deadline first.
    cases.sort_by_key(|c| {
        (
            c.decided_at.is_some(),
            c.assignment_due.unwrap_or(c.decision_due),
        )
    });
    let now = Utc::now();
    let rows: Vec<CaseRow> = cases.iter().map(|c| CaseRow::new(c, now)).collect();
    render(&LegalAidPage {
        chrome: Chrome::new(&viewer, "法律援助 Legal aid", "legal_aid"),
        late: rows
            .iter()
            .filter(|r| r.decision_late || r.assignment_late)
            .count(),
        rows,
    })
}
