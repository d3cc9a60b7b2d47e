//! Service-level clocks: deadlines counted in Chinese working days, reminders (催办) and
//! escalation (督办).

pub mod calendar;
mod clocks;
pub mod policy;
pub mod scan;

/// Helpers shared by the SLA unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use chrono::{DateTime, FixedOffset};

    use super::Calendar;

    /// The repository's calendar.
    pub fn cal() -> Calendar {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings/calendar");
        Calendar::load_dir(&dir).expect("the shipped calendar loads")
    }

    pub fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("an RFC 3339 time")
    }
}

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub use calendar::{Calendar, CalendarProblems, Deadline, beijing};
pub use clocks::Change;
pub use policy::{ClockKind, SlaPolicy, urge_at};

use hotline_model::TicketKind;

use crate::store::{ClockOp, Store, StoreError};

/// The SLA rules in force: the calendar (reloadable) and the policies.
pub struct Sla {
    calendar: RwLock<Arc<Calendar>>,
    calendar_dir: PathBuf,
    default: SlaPolicy,
    per_party: BTreeMap<String, SlaPolicy>,
    per_kind: BTreeMap<TicketKind, SlaPolicy>,
}

impl Sla {
    pub fn new(
        calendar: Calendar,
        calendar_dir: PathBuf,
        default: SlaPolicy,
        per_party: BTreeMap<String, SlaPolicy>,
        per_kind: BTreeMap<TicketKind, SlaPolicy>,
    ) -> Self {
        Self {
            calendar: RwLock::new(Arc::new(calendar)),
            calendar_dir,
            default,
            per_party,
            per_kind,
        }
    }

    pub fn calendar(&self) -> Arc<Calendar> {
        Arc::clone(&self.calendar.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The policy for the party that must act on a ticket of `kind`: the party's own, else the
    /// kind's, else the default.
    pub fn policy(&self, party: &str, kind: Option<TicketKind>) -> &SlaPolicy {
        self.per_party
            .get(party)
            .or_else(|| kind.and_then(|k| self.per_kind.get(&k)))
            .unwrap_or(&self.default)
    }

    /// Reads the calendar folder again and recomputes every provisional deadline; returns how
    /// many deadlines changed.
    pub async fn reload(&self, store: &dyn Store) -> Result<usize, ReloadError> {
        let cal = Calendar::load_dir(&self.calendar_dir)?;
        *self.calendar.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cal);
        let cal = self.calendar();
        let mut ops = Vec::new();
        for c in store.provisional_clocks().await? {
            let kind = store.ticket(c.ticket_id).await?.map(|t| t.draft.kind);
            let policy = self.policy(&c.party, kind);
            let Some(days) = policy.working_days(c.kind, c.urgent) else {
                continue;
            };
            let start = c.started_at.with_timezone(&beijing());
            let due = cal.add_working_days(start, days + c.extended_days);
            ops.push(ClockOp::Reschedule {
                id: c.id,
                due_at: due.at.with_timezone(&chrono::Utc),
                urge_at: urge_at(&cal, start, due.at).with_timezone(&chrono::Utc),
                provisional: due.provisional,
                extended_days: c.extended_days,
            });
        }
        let n = ops.len();
        store.change_clocks(ops).await?;
        tracing::info!(years = ?cal.years().collect::<Vec<_>>(), recomputed = n, "calendar reloaded");
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Calendar(#[from] CalendarProblems),
    #[error(transparent)]
    Store(#[from] StoreError),
}
