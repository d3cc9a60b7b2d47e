//! SLA policies (Shandong rules by default) and which clocks each message starts and stops.
//!
//! Clocks, each owned by the *party* that must act:
//! - `receipt`: the receiving side takes the ticket on (签收) or passes it on (改派) within
//!   1 working day, urgent matters within 1 hour (wall clock) — the forwarding rule;
//! - `reply`: the result is fed back (办结) within 5 working days; approved extensions move it,
//!   never beyond 15 working days in total;
//! - `callback`: urgent matters are called back (回访) within 3 working days of the reply;
//! - `unsatisfied_report`: an unsatisfied callback is reported to the unit within 1 working day.

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use super::calendar::{Calendar, Deadline};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    Receipt,
    Reply,
    Callback,
    UnsatisfiedReport,
}

impl ClockKind {
    pub const ALL: [Self; 4] = [
        Self::Receipt,
        Self::Reply,
        Self::Callback,
        Self::UnsatisfiedReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Reply => "reply",
            Self::Callback => "callback",
            Self::UnsatisfiedReport => "unsatisfied_report",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Time limits; working days unless said otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    #[serde(default = "d1")]
    pub receipt_days: u32,
    /// Urgent matters: wall-clock time to take on or pass on the ticket.
    #[serde(default = "hour", with = "humantime_serde")]
    pub receipt_urgent: Duration,
    #[serde(default = "d5")]
    pub reply_days: u32,
    /// Most working days a reply may take with every extension.
    #[serde(default = "d15")]
    pub extension_cap_days: u32,
    #[serde(default = "d3")]
    pub callback_urgent_days: u32,
    #[serde(default = "d1")]
    pub unsatisfied_report_days: u32,
}

fn d1() -> u32 {
    1
}
fn d3() -> u32 {
    3
}
fn d5() -> u32 {
    5
}
fn d15() -> u32 {
    15
}
fn hour() -> Duration {
    Duration::from_secs(3600)
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            receipt_days: d1(),
            receipt_urgent: hour(),
            reply_days: d5(),
            extension_cap_days: d15(),
            callback_urgent_days: d3(),
            unsatisfied_report_days: d1(),
        }
    }
}

impl SlaPolicy {
    /// When a clock of `kind` started at `from` falls due; `urgent` for urgent matters.
    pub fn due(
        &self,
        cal: &Calendar,
        kind: ClockKind,
        from: DateTime<FixedOffset>,
        urgent: bool,
    ) -> Deadline {
        match kind {
            ClockKind::Receipt if urgent => Deadline {
                at: from
                    + chrono::Duration::from_std(self.receipt_urgent)
                        .unwrap_or(chrono::Duration::hours(1)),
                provisional: false,
            },
            ClockKind::Receipt => cal.add_working_days(from, self.receipt_days),
            ClockKind::Reply => cal.add_working_days(from, self.reply_days),
            ClockKind::Callback => cal.add_working_days(from, self.callback_urgent_days),
            ClockKind::UnsatisfiedReport => {
                cal.add_working_days(from, self.unsatisfied_report_days)
            }
        }
    }

    /// The working days a clock of `kind` runs for (none for wall-clock limits).
    pub fn working_days(&self, kind: ClockKind, urgent: bool) -> Option<u32> {
        match kind {
            ClockKind::Receipt if urgent => None,
            ClockKind::Receipt => Some(self.receipt_days),
            ClockKind::Reply => Some(self.reply_days),
            ClockKind::Callback => Some(self.callback_urgent_days),
            ClockKind::UnsatisfiedReport => Some(self.unsatisfied_report_days),
        }
    }
}

/// The moment to urge a clock: 00:00 of the working day before the due day (催办 on the deadline
/// day or the day before), never before the clock started.
pub fn urge_at(
    cal: &Calendar,
    started: DateTime<FixedOffset>,
    due: DateTime<FixedOffset>,
) -> DateTime<FixedOffset> {
    let due = due.with_timezone(&super::beijing());
    let mut day = due.date_naive();
    loop {
        day -= chrono::Duration::days(1);
        if cal.is_working_day(day).0 || day <= started.date_naive() {
            break;
        }
    }
    let at = day
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(super::beijing()).single())
        .unwrap_or(due);
    at.max(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sla::testing::{cal, t};

    #[test]
    fn each_default_policy_across_weekends_holidays_and_make_up_days() {
        let (p, c) = (SlaPolicy::default(), cal());
        // Receipt: 1 working day; Friday before the make-up Sunday 2026-09-20.
        assert_eq!(
            p.due(
                &c,
                ClockKind::Receipt,
                t("2026-09-18T15:00:00+08:00"),
                false
            )
            .at,
            t("2026-09-20T15:00:00+08:00")
        );
        // Urgent receipt: 1 hour, wall clock, even over a weekend.
        assert_eq!(
            p.due(&c, ClockKind::Receipt, t("2026-11-21T23:30:00+08:00"), true)
                .at,
            t("2026-11-22T00:30:00+08:00")
        );
        // Reply: 5 working days from Wednesday 2026-09-30 spans the National Day holiday and the
        // make-up Saturday 10-10: 10-08, 10-09, 10-10, 10-12, 10-13.
        assert_eq!(
            p.due(&c, ClockKind::Reply, t("2026-09-30T10:00:00+08:00"), false)
                .at,
            t("2026-10-13T10:00:00+08:00")
        );
        // Callback for urgent matters: 3 working days; from Friday 2026-11-20 → Wednesday 11-25.
        assert_eq!(
            p.due(
                &c,
                ClockKind::Callback,
                t("2026-11-20T17:00:00+08:00"),
                true
            )
            .at,
            t("2026-11-25T17:00:00+08:00")
        );
        // Unsatisfied report: 1 working day; from Saturday → Tuesday 00:00.
        assert_eq!(
            p.due(
                &c,
                ClockKind::UnsatisfiedReport,
                t("2026-11-21T10:00:00+08:00"),
                false
            )
            .at,
            t("2026-11-24T00:00:00+08:00")
        );
        // A reply clock started late in December reaches 2027, which is not loaded.
        assert!(
            p.due(&c, ClockKind::Reply, t("2026-12-28T10:00:00+08:00"), false)
                .provisional
        );
    }

    #[test]
    fn urging_starts_on_the_working_day_before_the_deadline() {
        let c = cal();
        // Due Monday 2026-11-30 10:00 → urge from Friday 11-27 00:00.
        assert_eq!(
            urge_at(
                &c,
                t("2026-11-23T10:00:00+08:00"),
                t("2026-11-30T10:00:00+08:00")
            ),
            t("2026-11-27T00:00:00+08:00")
        );
        // Due Thursday 2026-10-08 (after National Day) → urge from Wednesday 09-30 00:00.
        assert_eq!(
            urge_at(
                &c,
                t("2026-09-29T09:00:00+08:00"),
                t("2026-10-08T16:00:00+08:00")
            ),
            t("2026-09-30T00:00:00+08:00")
        );
        // Never before the clock started.
        let start = t("2026-11-23T09:00:00+08:00");
        assert_eq!(urge_at(&c, start, t("2026-11-23T10:00:00+08:00")), start);
    }
}
