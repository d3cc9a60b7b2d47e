//! Legal aid: applications filed for tickets, and the cases they become.
//!
//! - Filing: the home system asks for an application on a ticket; everything the case system
//!   would refuse is named at once (一次性告知), then the application is a `legal_aid` event on
//!   the ticket, delivered to partner `legal-aid` like any other message (retries, dead letters).
//! - Case updates: every update is kept by version, then applied in version order without gaps:
//!   a stale or repeated version changes nothing, an early one waits for the versions before it,
//!   which are asked of the case system at once. Each milestone becomes a `case_status` event on
//!   the ticket, forwarded to the partner the ticket came from (12345 hears that aid was granted).
//! - Clocks (Legal Aid Law, calendar days): the decision is due 7 days after the application
//!   was received, the assignment 3 days after the grant; a missed one raises an alert.
//! - Reconciliation compares every open case with the case system's list and repairs what
//!   differs, with a report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotline_adapters::legal_aid::LegalAidClient;
use hotline_adapters::{IngressError, IngressReply};
use hotline_model::EventBody;
use hotline_model::legal_aid::{CaseStatus, CaseUpdate};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;

use crate::intake::{Intake, Route};
use crate::store::{AlertKind, CaseQuery, LegalAidCase, NewAlert, Store, StoreError};

/// Calendar days from receipt to the decision (法律援助法 第四十三条).
pub const DECISION_DAYS: i64 = 7;
/// Calendar days from the grant to the assignment of a lawyer (第四十四条).
pub const ASSIGNMENT_DAYS: i64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum LegalAidError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the case system: {0}")]
    CaseSystem(#[from] hotline_adapters::TransportError),
}

pub struct LegalAid {
    store: Arc<dyn Store>,
    intake: Arc<Intake>,
    /// The case system, when partner `legal-aid` is configured.
    client: Option<Arc<LegalAidClient>>,
}

/// What reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Report {
    /// Open cases compared.
    pub checked: usize,
    /// Cases brought up to the case system's version: (case, from, to).
    pub repaired: Vec<(String, u64, u64)>,
    /// Cases the case system lists that the gateway has never heard of.
    pub unknown: Vec<String>,
    /// Cases where the gateway is ahead of the case system's list (reported, not changed).
    pub ahead: Vec<String>,
    /// Cases that could not be compared, with the reason.
    pub failed: Vec<(String, String)>,
}

impl LegalAid {
    pub fn new(
        store: Arc<dyn Store>,
        intake: Arc<Intake>,
        client: Option<Arc<LegalAidClient>>,
    ) -> Self {
        Self {
            store,
            intake,
            client,
        }
    }

    pub fn configured(&self) -> bool {
        self.client.is_some()
    }

    /// A case update from the case system: kept, then applied as far as the versions allow;
    /// missing versions before it are fetched from the case system in the background.
    pub async fn take(self: &Arc<Self>, u: CaseUpdate) -> Result<IngressReply, IngressError> {
        let unavailable = |e: StoreError| IngressError::unavailable(e.to_string());
        if self
            .store
            .ticket(u.ticket_id)
            .await
            .map_err(unavailable)?
            .is_none()
        {
            return Err(IngressError::invalid(
                "gatewayRef",
                format!("no ticket {}", u.ticket_id),
            ));
        }
        if let Some(case) = self
            .store
            .legal_aid_case(&u.case_no)
            .await
            .map_err(unavailable)?
            && case.ticket_id != u.ticket_id
        {
            return Err(IngressError::invalid(
                "gatewayRef",
                format!(
                    "case {} belongs to ticket {}, not {}",
                    u.case_no, case.ticket_id, u.ticket_id
                ),
            ));
        }
        self.store.put_case_update(&u).await.map_err(unavailable)?;
        let (version, missing) = self.catch_up(&u.case_no).await.map_err(unavailable)?;
        if !missing.is_empty() {
            tracing::info!(case = %u.case_no, ?missing, "case updates missing; asking the case system");
            let me = Arc::clone(self);
            let case_no = u.case_no.clone();
            tokio::spawn(async move {
                if let Err(e) = me.fetch_missing(&case_no).await {
                    tracing::warn!(case = %case_no, error = %e, "fetching missing case updates failed; reconciliation will retry");
                }
            });
        }
        Ok(IngressReply::CaseUpdate {
            applied: version >= u.version,
            missing,
        })
    }

    /// Fetches what the case system has after our version, and applies it.
    async fn fetch_missing(&self, case_no: &str) -> Result<(u64, u64), LegalAidError> {
        let Some(client) = &self.client else {
            return Ok((0, 0));
        };
        let from = self.version_of(case_no).await?;
        for u in client.updates(case_no, from).await? {
            if u.case_no == case_no {
                self.store.put_case_update(&u).await?;
            }
        }
        let (to, _) = self.catch_up(case_no).await?;
        Ok((from, to))
    }

    async fn version_of(&self, case_no: &str) -> Result<u64, StoreError> {
        Ok(self
            .store
            .legal_aid_case(case_no)
            .await?
            .map_or(0, |c| c.version))
    }

    /// Applies the kept updates that follow the case's version without a gap; returns the
    /// version reached and the versions missing before later kept ones.
    pub async fn catch_up(&self, case_no: &str) -> Result<(u64, Vec<u64>), StoreError> {
        loop {
            let current = self.store.legal_aid_case(case_no).await?;
            let expected = current.as_ref().map_or(0, |c| c.version);
            let pending = self.store.case_updates_after(case_no, expected).await?;
            let mut case = current;
            let mut applied = Vec::new();
            for u in &pending {
                if u.version != case.as_ref().map_or(0, |c| c.version) + 1 {
                    break;
                }
                case = Some(advance(case, u));
                applied.push(u);
            }
            let reached = case.as_ref().map_or(0, |c| c.version);
            let latest = pending.last().map_or(reached, |u| u.version);
            let have: Vec<u64> = pending.iter().map(|u| u.version).collect();
            let missing: Vec<u64> = (reached + 1..latest)
                .filter(|v| !have.contains(v))
                .collect();
            let Some(case) = case.filter(|_| !applied.is_empty()) else {
                return Ok((reached, missing));
            };
            // Milestones first: each is recorded once (keyed by case and version), so applying
            // again after a crash or a lost race repeats nothing.
            for u in &applied {
                self.forward(u).await?;
            }
            if case.decided_at.is_some_and(|d| d > case.decision_due) {
                self.raise(&case, "decision", case.decision_due).await?;
            }
            if let (Some(done), Some(due)) = (case.assigned_at, case.assignment_due)
                && done > due
            {
                self.raise(&case, "assignment", due).await?;
            }
            if self.store.save_case(&case, expected).await? {
                metrics::counter!("hotline_legal_aid_updates_applied_total")
                    .increment(applied.len() as u64);
                return Ok((reached, missing));
            }
            // Another writer applied updates meanwhile: read again.
        }
    }

    /// Records a milestone on the ticket and forwards it to the partner the ticket came from.
    async fn forward(&self, u: &CaseUpdate) -> Result<(), StoreError> {
        let Some(note) = u.status.milestone() else {
            return Ok(());
        };
        let body = EventBody::CaseStatus {
            case_no: u.case_no.clone(),
            status: u.status.name().into(),
            note,
        };
        let key = format!("case:{}:{}", u.case_no, u.version);
        match self
            .intake
            .apply(
                u.ticket_id,
                hotline_adapters::legal_aid::PARTNER,
                body,
                vec![key],
                Vec::new(),
                Route::ToOriginPartner,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(crate::intake::ApplyError::Store(e)) => Err(e),
            Err(e) => {
                // A withdrawn or merged ticket takes no news; the case itself is still tracked.
                tracing::info!(case = %u.case_no, error = %e, "case milestone not recorded on the ticket");
                Ok(())
            }
        }
    }

    async fn raise(
        &self,
        case: &LegalAidCase,
        which: &str,
        due: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (what, days) = match which {
            "decision" => ("作出是否给予法律援助的决定 decision", DECISION_DAYS),
            _ => ("指派律师 assignment", ASSIGNMENT_DAYS),
        };
        self.store
            .raise_alert(NewAlert {
                key: format!("legal-aid:{which}:{}", case.case_no),
                kind: AlertKind::LegalAidOverdue,
                ticket_id: Some(case.ticket_id),
                party: Some(hotline_adapters::legal_aid::PARTNER.into()),
                message: format!(
                    "法律援助案件 {} 超过{days}日未{what} (due {})",
                    case.case_no,
                    due.with_timezone(&crate::sla::calendar::beijing())
                        .format("%Y-%m-%d %H:%M")
                ),
                detail: serde_json::json!({
                    "case_no": case.case_no,
                    "clock": which,
                    "due": due,
                    "status": case.status.name(),
                }),
            })
            .await
    }

    /// Raises an alert for every open case whose decision or assignment is overdue now.
    pub async fn check_clocks(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut raised = 0;
        let open = self
            .store
            .legal_aid_cases(&CaseQuery {
                open: Some(true),
                ..CaseQuery::default()
            })
            .await?;
        for case in open {
            if case.decided_at.is_none()
                && now > case.decision_due
                && self.raise(&case, "decision", case.decision_due).await?
            {
                raised += 1;
            }
            if let Some(due) = case.assignment_due
                && case.assigned_at.is_none()
                && now > due
                && self.raise(&case, "assignment", due).await?
            {
                raised += 1;
            }
        }
        Ok(raised)
    }

    /// Compares every open case with the case system's list and repairs what differs;
    /// `progress(done, total)` is called as cases are compared.
    pub async fn reconcile(
        &self,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Report, LegalAidError> {
        let Some(client) = &self.client else {
            return Ok(Report::default());
        };
        let theirs: BTreeMap<String, u64> = client
            .open_cases()
            .await?
            .into_iter()
            .map(|c| (c.case_no, c.version))
            .collect();
        let ours = self
            .store
            .legal_aid_cases(&CaseQuery {
                open: Some(true),
                ..CaseQuery::default()
            })
            .await?;
        let mut report = Report {
            checked: ours.len(),
            ..Report::default()
        };
        let total = ours.len();
        progress(0, total);
        for (i, case) in ours.iter().enumerate() {
            match theirs.get(&case.case_no) {
                Some(v) if *v == case.version => {}
                Some(v) if *v < case.version => report.ahead.push(case.case_no.clone()),
                // Behind, or no longer open there (closed, terminated or refused meanwhile).
                _ => match self.fetch_missing(&case.case_no).await {
                    Ok((from, to)) if to > from => {
                        report.repaired.push((case.case_no.clone(), from, to));
                    }
                    Ok(_) => {}
                    Err(e) => report.failed.push((case.case_no.clone(), e.to_string())),
                },
            }
            progress(i + 1, total);
        }
        let known: Vec<&String> = ours.iter().map(|c| &c.case_no).collect();
        for case_no in theirs.keys() {
            if !known.contains(&case_no) {
                // Filed by us but never reported, or lost: take its whole history.
                match self.fetch_missing(case_no).await {
                    Ok((_, to)) if to > 0 => report.repaired.push((case_no.clone(), 0, to)),
                    Ok(_) => report.unknown.push(case_no.clone()),
                    Err(e) => report.failed.push((case_no.clone(), e.to_string())),
                }
            }
        }
        metrics::counter!("hotline_legal_aid_reconciled_total").increment(1);
        Ok(report)
    }

    /// Checks the clocks every `every`, and reconciles every `reconcile_every`, under leases.
    pub fn spawn(
        self: &Arc<Self>,
        every: Duration,
        reconcile_every: Duration,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        leases: crate::cluster::Leases,
    ) {
        let me = Arc::clone(self);
        tracker.spawn(async move {
            let mut last_reconcile = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {},
                    () = shutdown.cancelled() => return,
                }
                if leases.hold("legal-aid-clocks", every).await
                    && let Err(e) = me.check_clocks(Utc::now()).await
                {
                    tracing::warn!(error = %e, "checking legal-aid clocks failed");
                }
                if me.configured()
                    && last_reconcile.elapsed() >= reconcile_every
                    && leases.hold("legal-aid-reconcile", reconcile_every).await
                {
                    last_reconcile = tokio::time::Instant::now();
                    match me.reconcile(|_, _| {}).await {
                        Ok(r) => tracing::info!(
                            checked = r.checked,
                            repaired = r.repaired.len(),
                            unknown = r.unknown.len(),
                            failed = r.failed.len(),
                            "legal-aid reconciliation"
                        ),
                        Err(e) => tracing::warn!(error = %e, "legal-aid reconciliation failed"),
                    }
                }
            }
        });
    }
}

/// The case after update `u`, the next version.
fn advance(case: Option<LegalAidCase>, u: &CaseUpdate) -> LegalAidCase {
    let received = u.received_at.with_timezone(&Utc);
    let at = u.at.with_timezone(&Utc);
    let mut c = case.unwrap_or_else(|| LegalAidCase {
        case_no: u.case_no.clone(),
        ticket_id: u.ticket_id,
        version: 0,
        status: CaseStatus::Submitted,
        received_at: received,
        decision_due: received + chrono::Duration::days(DECISION_DAYS),
        decided_at: None,
        assignment_due: None,
        assigned_at: None,
        updated_at: Utc::now(),
    });
    c.version = u.version;
    c.received_at = received;
    c.decision_due = received + chrono::Duration::days(DECISION_DAYS);
    if u.status.decided() && c.decided_at.is_none() {
        c.decided_at = Some(at);
    }
    let granted = matches!(u.status, CaseStatus::Granted) || u.status.assigned();
    if granted && c.assignment_due.is_none() {
        c.assignment_due = Some(at + chrono::Duration::days(ASSIGNMENT_DAYS));
    }
    if u.status.assigned() && c.assigned_at.is_none() {
        c.assigned_at = Some(at);
    }
    c.status = u.status.clone();
    c.updated_at = Utc::now();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn update(version: u64, status: CaseStatus, at: &str) -> CaseUpdate {
        let t = |s: &str| DateTime::<FixedOffset>::parse_from_rfc3339(s).unwrap();
        CaseUpdate {
            case_no: "FY-1".into(),
            version,
            ticket_id: uuid::Uuid::nil(),
            received_at: t("2026-11-24T09:00:00+08:00"),
            at: t(at),
            status,
        }
    }

    #[test]
    fn clocks_follow_the_law_in_calendar_days() {
        let c = advance(
            None,
            &update(1, CaseStatus::Accepted, "2026-11-24T10:00:00+08:00"),
        );
        assert_eq!(c.decision_due.to_rfc3339(), "2026-12-01T01:00:00+00:00");
        assert!(c.decided_at.is_none() && c.assignment_due.is_none());
        let c = advance(
            Some(c),
            &update(2, CaseStatus::Granted, "2026-11-27T10:00:00+08:00"),
        );
        assert_eq!(
            c.decided_at.map(|d| d.to_rfc3339()).as_deref(),
            Some("2026-11-27T02:00:00+00:00")
        );
        assert_eq!(
            c.assignment_due.map(|d| d.to_rfc3339()).as_deref(),
            Some("2026-11-30T02:00:00+00:00"),
            "three calendar days, a weekend included"
        );
        let c = advance(
            Some(c),
            &update(
                3,
                CaseStatus::Assigned {
                    lawyer: "张伟".into(),
                    firm: "某律所".into(),
                },
                "2026-11-28T10:00:00+08:00",
            ),
        );
        assert!(c.assigned_at.is_some());
        assert_eq!(c.version, 3);
        let refused = advance(
            None,
            &update(
                1,
                CaseStatus::Refused {
                    reasons: "不符合经济困难标准".into(),
                },
                "2026-11-25T10:00:00+08:00",
            ),
        );
        assert!(refused.decided_at.is_some() && refused.assignment_due.is_none());
    }
}
