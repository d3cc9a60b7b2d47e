//! A partner call centre's business hours (Beijing time). Outside them the gateway does not try
//! a transfer and files the ticket straight away.

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::sla::{Calendar, calendar::beijing};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// Opening time, `HH:MM`.
    #[serde(with = "hhmm")]
    pub open: NaiveTime,
    /// Closing time, `HH:MM`; calls at or after it are outside the hours. A closing time before
    /// the opening time spans midnight.
    #[serde(with = "hhmm")]
    pub close: NaiveTime,
    /// Only on working days of the calendar (weekends and public holidays off, adjusted working
    /// days on).
    #[serde(default)]
    pub working_days_only: bool,
}

impl BusinessHours {
    pub fn is_open(&self, now: DateTime<Utc>, calendar: &Calendar) -> bool {
        let local = now.with_timezone(&beijing());
        if self.working_days_only && !calendar.is_working_day(local.date_naive()).0 {
            return false;
        }
        let t = local.time().with_nanosecond(0).unwrap_or(local.time());
        if self.open <= self.close {
            self.open <= t && t < self.close
        } else {
            t >= self.open || t < self.close
        }
    }
}

impl BusinessHours {
    /// Hours that are closed at `now`: they open `hours` later, for an hour. For demos and tests
    /// that need a partner outside its hours whatever the time of day.
    pub fn closed_at(now: DateTime<Utc>, hours: i64) -> Self {
        let local = now.with_timezone(&beijing());
        let at = |h: i64| {
            let t = (local + chrono::Duration::hours(h)).time();
            NaiveTime::from_hms_opt(t.hour(), t.minute(), 0).unwrap_or(t)
        };
        Self {
            open: at(hours),
            close: at(hours + 1),
            working_days_only: false,
        }
    }
}

mod hhmm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.format("%H:%M").to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
        let s = String::deserialize(d)?;
        NaiveTime::parse_from_str(&s, "%H:%M")
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a time like 08:30")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::testing::cal;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hours(open: &str, close: &str, working_days_only: bool) -> BusinessHours {
        BusinessHours {
            open: NaiveTime::parse_from_str(open, "%H:%M").unwrap(),
            close: NaiveTime::parse_from_str(close, "%H:%M").unwrap(),
            working_days_only,
        }
    }

    #[test]
    fn open_between_the_times_in_beijing() {
        let h = hours("08:30", "17:30", false);
        let c = cal();
        assert!(h.is_open(at("2026-11-23T08:30:00+08:00"), &c));
        assert!(h.is_open(at("2026-11-23T01:00:00Z"), &c), "09:00 Beijing");
        assert!(!h.is_open(at("2026-11-23T17:30:00+08:00"), &c));
        assert!(!h.is_open(at("2026-11-23T08:29:59+08:00"), &c));
    }

    #[test]
    fn weekends_and_holidays_are_closed_when_working_days_only() {
        let c = cal();
        let h = hours("08:30", "17:30", true);
        assert!(!h.is_open(at("2026-11-22T10:00:00+08:00"), &c), "a Sunday");
        assert!(
            !h.is_open(at("2026-10-01T10:00:00+08:00"), &c),
            "National Day"
        );
        assert!(h.is_open(at("2026-11-23T10:00:00+08:00"), &c), "a Monday");
        assert!(hours("08:30", "17:30", false).is_open(at("2026-11-22T10:00:00+08:00"), &c));
    }

    #[test]
    fn hours_across_midnight() {
        let h = hours("20:00", "08:00", false);
        let c = cal();
        assert!(h.is_open(at("2026-11-23T23:00:00+08:00"), &c));
        assert!(h.is_open(at("2026-11-24T07:59:00+08:00"), &c));
        assert!(!h.is_open(at("2026-11-24T12:00:00+08:00"), &c));
    }

    #[test]
    fn hours_closed_now_are_closed_now_and_open_later() {
        let c = cal();
        let now = Utc::now();
        let h = BusinessHours::closed_at(now, 2);
        assert!(!h.is_open(now, &c));
        assert!(h.is_open(now + chrono::Duration::minutes(150), &c));
    }

    #[test]
    fn times_are_read_as_hh_mm() {
        let h: BusinessHours = toml::from_str("open = \"08:30\"\nclose = \"17:30\"").unwrap();
        assert_eq!(h, hours("08:30", "17:30", false));
        let e = toml::from_str::<BusinessHours>("open = \"8.30\"\nclose = \"17:30\"").unwrap_err();
        assert!(e.to_string().contains("not a time like 08:30"), "{e}");
    }
}
