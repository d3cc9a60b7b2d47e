//! The SLA scan: on a schedule, finds clocks whose urge time or deadline has come (indexed
//! queries, not a table walk), sends 催办 / raises 督办 to the party that must act, and raises
//! alerts for ops. Each clock is urged once and escalated once, also across restarts: the
//! messages carry idempotency keys and the marks are stored.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use hotline_model::{EventBody, HOME};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ClockKind, Sla, beijing};
use crate::intake::{ApplyError, Intake, Route};
use crate::store::{AlertKind, Clock, ClockMark, NewAlert, Store, StoreError};

pub struct Scanner {
    pub store: Arc<dyn Store>,
    pub intake: Arc<Intake>,
    pub sla: Arc<Sla>,
    pub every: Duration,
}

/// What one scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub urged: usize,
    pub supervised: usize,
    pub alerts: usize,
}

fn kind_zh(kind: ClockKind) -> &'static str {
    match kind {
        ClockKind::Receipt => "签收/转办",
        ClockKind::Reply => "办结答复",
        ClockKind::Callback => "回访",
        ClockKind::UnsatisfiedReport => "不满意反馈",
    }
}

impl Scanner {
    /// Scans every `every` while this instance holds the `sla-scan` lease.
    pub fn spawn(
        self,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
        leases: crate::cluster::Leases,
    ) {
        tracker.spawn(async move {
            loop {
                if leases.hold("sla-scan", self.every).await
                    && let Err(e) = self.scan(Utc::now()).await
                {
                    tracing::warn!(error = %e, "SLA scan failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(self.every) => {},
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }

    /// One scan at `now`.
    pub async fn scan(&self, now: DateTime<Utc>) -> Result<ScanReport, StoreError> {
        let mut report = ScanReport::default();
        for c in self.store.clocks_waking(now, 500).await? {
            // A clock whose deadline passed before it was urged is urged, then escalated.
            if c.urged_at.is_none() && c.urge_at <= now {
                self.wake(&c, ClockMark::Urged, now, &mut report).await?;
            }
            if c.due_at < now {
                self.wake(&c, ClockMark::Overdue, now, &mut report).await?;
            }
        }
        // Provisional deadlines: ask ops, once per year, to load that year's calendar.
        let cal = self.sla.calendar();
        let loaded: BTreeSet<i32> = cal.years().collect();
        let mut missing = BTreeSet::new();
        for c in self.store.provisional_clocks().await? {
            let (a, b) = (
                c.started_at.with_timezone(&beijing()).year(),
                c.due_at.with_timezone(&beijing()).year(),
            );
            missing.extend((a..=b).filter(|y| !loaded.contains(y)));
        }
        for year in missing {
            report.alerts += self
                .store
                .raise_alert(NewAlert {
                    key: format!("calendar_missing:{year}"),
                    kind: AlertKind::CalendarMissing,
                    ticket_id: None,
                    party: None,
                    message: format!(
                        "请加载 {year} 年节假日安排 load the {year} working-day calendar: deadlines reaching {year} are provisional"
                    ),
                    detail: json!({"year": year}),
                })
                .await? as usize;
        }
        Ok(report)
    }

    /// Sends what `mark` asks for about `c` (a 催办 or 督办 to the party that must act, an
    /// alert for ops) and marks the clock.
    async fn wake(
        &self,
        c: &Clock,
        mark: ClockMark,
        now: DateTime<Utc>,
        report: &mut ScanReport,
    ) -> Result<(), StoreError> {
        // 催办 is about the result: only reply clocks are urged; the others are escalated when
        // overdue.
        if mark == ClockMark::Urged && c.kind != ClockKind::Reply {
            self.store.mark_clock(c.id, mark, now).await?;
            return Ok(());
        }
        let due = c.due_at.with_timezone(&beijing()).format("%Y-%m-%d %H:%M");
        let what = kind_zh(c.kind);
        let (key, body, alert, text) = match mark {
            ClockMark::Urged => (
                "sla-urge",
                EventBody::Urge {
                    note: Some(format!("自动催办：{what}将于 {due} 到期")),
                },
                AlertKind::DueSoon,
                format!("即将到期 due soon: {what} by {due}"),
            ),
            ClockMark::Overdue => (
                "sla-supervise",
                EventBody::Supervise {
                    note: Some(format!("督办：{what}已于 {due} 超期")),
                },
                AlertKind::Overdue,
                format!("已超期 overdue: {what} was due {due}"),
            ),
        };
        if self.message(c, key, body).await? {
            match mark {
                ClockMark::Urged => report.urged += 1,
                ClockMark::Overdue => report.supervised += 1,
            }
            metrics::counter!("hotline_sla_messages_total", "party" => c.party.clone(), "kind" => key)
                .increment(1);
        }
        report.alerts += self.alert(c, alert, text).await? as usize;
        self.store.mark_clock(c.id, mark, now).await?;
        Ok(())
    }

    /// Sends 催办/督办 to the partner that must act on a receipt or reply clock; `true` if sent.
    async fn message(&self, c: &Clock, key: &str, body: EventBody) -> Result<bool, StoreError> {
        if c.party == HOME || !matches!(c.kind, ClockKind::Receipt | ClockKind::Reply) {
            return Ok(false); // 12348's own clocks, and callbacks, are for ops to see
        }
        let keys = vec![format!("{key}:{}", c.id)];
        match self
            .intake
            .apply(
                c.ticket_id,
                HOME,
                body,
                keys,
                Vec::new(),
                Route::To(vec![c.party.clone()]),
            )
            .await
        {
            Ok(applied) => Ok(!applied.accepted.is_duplicate()),
            Err(ApplyError::Store(e)) => Err(e),
            Err(e) => {
                tracing::info!(clock = %c.id, error = %e, "no SLA message sent");
                Ok(false)
            }
        }
    }

    async fn alert(&self, c: &Clock, kind: AlertKind, message: String) -> Result<bool, StoreError> {
        self.store
            .raise_alert(NewAlert {
                key: format!("{}:{}", kind.as_str(), c.id),
                kind,
                ticket_id: Some(c.ticket_id),
                party: Some(c.party.clone()),
                message,
                detail: json!({
                    "clock": c.kind, "due_at": c.due_at, "provisional": c.provisional,
                    "extended_days": c.extended_days,
                }),
            })
            .await
    }
}
