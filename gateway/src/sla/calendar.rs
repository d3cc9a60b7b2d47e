//! Chinese working days (工作日): weekends off, statutory holidays off, make-up working days
//! (调休上班) on, from one data file per year in `mappings/calendar/<year>.toml`.
//!
//! Deadline rule: a start on a non-working day moves to 00:00 of the next working day; then N
//! working days are added, keeping the time of day. A day in a year with no calendar loaded is
//! judged on weekends alone and the result is marked **provisional**, never a silent guess.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Weekday};
use serde::{Deserialize, Serialize};

/// Beijing time, in which working days are counted.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    year: i32,
    source: String,
    holidays: Vec<NaiveDate>,
    workdays: Vec<NaiveDate>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Year {
    off: BTreeSet<NaiveDate>,
    on: BTreeSet<NaiveDate>,
    source: String,
}

/// A computed deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deadline {
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<FixedOffset>,
    /// It reaches into a year whose calendar is not loaded: counted on weekends alone.
    pub provisional: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    years: BTreeMap<i32, Year>,
}

/// Problems in a calendar folder, each with its file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct CalendarProblems(pub Vec<String>);

impl Calendar {
    /// Loads every `<year>.toml` in `dir`, checking each date.
    pub fn load_dir(dir: &Path) -> Result<Self, CalendarProblems> {
        let mut problems = Vec::new();
        let mut years = BTreeMap::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| CalendarProblems(vec![format!("{}: {e}", dir.display())]))?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for file in files {
            let shown = file.display().to_string();
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{shown}: {e}"));
                    continue;
                }
            };
            let parsed: YearFile = match toml::from_str(&text) {
                Ok(p) => p,
                Err(e) => {
                    let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
                    problems.push(format!(
                        "{shown}{}: {}",
                        line.map(|l| format!(":{l}")).unwrap_or_default(),
                        e.message().trim()
                    ));
                    continue;
                }
            };
            let y = parsed.year;
            if file.file_stem().and_then(|s| s.to_str()) != Some(&y.to_string()) {
                problems.push(format!(
                    "{shown}: `year = {y}` does not match the file name"
                ));
            }
            for d in &parsed.holidays {
                if d.year() != y {
                    problems.push(format!("{shown}: holiday {d} is not in {y}"));
                } else if is_weekend(*d) {
                    problems.push(format!(
                        "{shown}: holiday {d} is a weekend day; list only weekdays off"
                    ));
                }
            }
            for d in &parsed.workdays {
                if d.year() != y {
                    problems.push(format!("{shown}: workday {d} is not in {y}"));
                } else if !is_weekend(*d) {
                    problems.push(format!(
                        "{shown}: workday {d} is a weekday; list only weekend days worked"
                    ));
                }
            }
            years.insert(
                y,
                Year {
                    off: parsed.holidays.into_iter().collect(),
                    on: parsed.workdays.into_iter().collect(),
                    source: parsed.source,
                },
            );
        }
        if problems.is_empty() {
            Ok(Self { years })
        } else {
            Err(CalendarProblems(problems))
        }
    }

    /// The years loaded.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.years.keys().copied()
    }

    /// Where a year's calendar comes from.
    pub fn source(&self, year: i32) -> Option<&str> {
        self.years.get(&year).map(|y| y.source.as_str())
    }

    /// Whether `d` is a working day, and whether that is provisional (its year is not loaded).
    pub fn is_working_day(&self, d: NaiveDate) -> (bool, bool) {
        match self.years.get(&d.year()) {
            Some(y) if y.on.contains(&d) => (true, false),
            Some(y) if y.off.contains(&d) => (false, false),
            Some(_) => (!is_weekend(d), false),
            None => (!is_weekend(d), true),
        }
    }

    /// `from` plus `days` working days, in Beijing time.
    pub fn add_working_days(&self, from: DateTime<FixedOffset>, days: u32) -> Deadline {
        let start = from.with_timezone(&beijing());
        let mut provisional = false;
        let mut date = start.date_naive();
        let mut time = start.time();
        let (working, p) = self.is_working_day(date);
        provisional |= p;
        if !working {
            date = self.next_working_day(date, &mut provisional);
            time = NaiveTime::MIN;
        }
        for _ in 0..days {
            date = self.next_working_day(date, &mut provisional);
        }
        let at = beijing()
            .from_local_datetime(&date.and_time(time))
            .single()
            .expect("a fixed offset has no gaps");
        Deadline { at, provisional }
    }

    fn next_working_day(&self, mut d: NaiveDate, provisional: &mut bool) -> NaiveDate {
        loop {
            d += Duration::days(1);
            let (working, p) = self.is_working_day(d);
            *provisional |= p;
            if working {
                return d;
            }
        }
    }
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sla::testing::{cal, t};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn friday_before_a_make_up_sunday() {
        // The issue's own example: Friday 2026-09-18 15:00 + 1 working day = Sunday 2026-09-20
        // 15:00, a make-up working day.
        let r = cal().add_working_days(t("2026-09-18T15:00:00+08:00"), 1);
        assert_eq!(r.at, t("2026-09-20T15:00:00+08:00"));
        assert!(!r.provisional);
    }

    #[test]
    fn weekends_holidays_and_make_up_days() {
        let c = cal();
        assert_eq!(c.is_working_day(d("2026-11-23")), (true, false)); // Monday
        assert_eq!(c.is_working_day(d("2026-11-22")), (false, false)); // Sunday
        assert_eq!(c.is_working_day(d("2026-10-01")), (false, false)); // 国庆
        assert_eq!(c.is_working_day(d("2026-10-10")), (true, false)); // Saturday, 调休上班
        assert_eq!(c.is_working_day(d("2025-01-26")), (true, false));
        assert_eq!(c.is_working_day(d("2025-10-08")), (false, false));
        // National Day 2026: Wed 09-30 16:00 + 1 → Thu 10-08 16:00 (10-01..07 off, 10-03/04 weekend).
        assert_eq!(
            c.add_working_days(t("2026-09-30T16:00:00+08:00"), 1).at,
            t("2026-10-08T16:00:00+08:00")
        );
        // 5 working days from Friday 2026-02-13 10:00: 02-14 (Sat, worked), then the Spring
        // Festival (02-16..20 and 02-23 off), 02-24, 02-25, 02-26, 02-27.
        assert_eq!(
            c.add_working_days(t("2026-02-13T10:00:00+08:00"), 5).at,
            t("2026-02-27T10:00:00+08:00")
        );
        // Zero days from a working day is the same time.
        assert_eq!(
            c.add_working_days(t("2026-11-23T09:00:00+08:00"), 0).at,
            t("2026-11-23T09:00:00+08:00")
        );
    }

    #[test]
    fn a_start_on_a_day_off_moves_to_midnight_of_the_next_working_day() {
        let c = cal();
        // Saturday 2026-11-21 20:00 → Monday 00:00 → +1 = Tuesday 00:00.
        assert_eq!(
            c.add_working_days(t("2026-11-21T20:00:00+08:00"), 1).at,
            t("2026-11-24T00:00:00+08:00")
        );
        // Start given in UTC: Sunday 2026-05-03 23:30 UTC is Monday 05-04 07:30 Beijing, a holiday;
        // next working day is Wednesday 05-06 00:00; +3 = 05-07, 05-08, Saturday 05-09 (worked).
        assert_eq!(
            c.add_working_days(t("2026-05-03T23:30:00Z"), 3).at,
            t("2026-05-09T00:00:00+08:00")
        );
    }

    #[test]
    fn a_year_without_a_calendar_is_provisional_never_a_silent_guess() {
        let c = cal();
        let r = c.add_working_days(t("2026-12-30T10:00:00+08:00"), 3);
        // 12-31 (Thu), then 2027: 01-01 (Fri, weekend-only rule) and 01-04 (Mon).
        assert_eq!(r.at, t("2027-01-04T10:00:00+08:00"));
        assert!(r.provisional);
        assert_eq!(c.is_working_day(d("2027-01-01")), (true, true));
        assert!(
            !c.add_working_days(t("2026-12-28T10:00:00+08:00"), 3)
                .provisional
        );
    }

    #[test]
    fn bad_calendar_files_are_reported_with_their_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("2027.toml"),
            "year = 2027\nsource = \"x\"\nholidays = [\"2027-01-02\", \"2026-12-31\"]\nworkdays = [\"2027-01-05\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("2028.toml"),
            "year = 2028\nsource = \"x\"\nholidays = [\"2028-13-01\"]\nworkdays = []\n",
        )
        .unwrap();
        let problems = Calendar::load_dir(dir.path()).unwrap_err().0;
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].ends_with("holiday 2027-01-02 is a weekend day; list only weekdays off")
        );
        assert!(problems[1].contains("holiday 2026-12-31 is not in 2027"));
        assert!(problems[2].contains("workday 2027-01-05 is a weekday"));
        assert!(problems[3].contains("2028.toml:3"), "{}", problems[3]);
    }
}
