//! What a partner's deliveries did in the last hour, per minute, for the live dashboard: counts
//! by outcome, acknowledgement latency as a bounded histogram, and the latest errors. Memory is
//! fixed per partner whatever the traffic; it starts empty when the process starts.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Minutes kept.
const MINUTES: usize = 60;
/// Latency buckets grow by a quarter: bucket `i` holds latencies up to `1.25^i` ms.
const BUCKETS: usize = 80;
const GROWTH: f64 = 1.25;
/// Errors kept.
const ERRORS: usize = 10;

/// How an attempt went, as the dashboard counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// The partner took it (acknowledged, or receipt confirmed with the ack to follow).
    Delivered,
    /// It will be tried again.
    Failed,
    /// Given up: a dead letter.
    Dead,
}

#[derive(Debug, Clone)]
struct Minute {
    /// Minutes since the Unix epoch.
    at: i64,
    delivered: u32,
    failed: u32,
    dead: u32,
    latency: [u32; BUCKETS],
}

impl Minute {
    fn new(at: i64) -> Self {
        Self {
            at,
            delivered: 0,
            failed: 0,
            dead: 0,
            latency: [0; BUCKETS],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentError {
    pub at: DateTime<Utc>,
    pub text: String,
}

/// One minute of the chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinutePoint {
    /// Start of the minute, as Unix milliseconds.
    pub at_ms: i64,
    pub delivered: u32,
    pub failed: u32,
    pub dead: u32,
    /// 95th percentile of acknowledgement latency in the minute, when anything was acknowledged.
    pub p95_ms: Option<f64>,
}

/// Figures over a span of minutes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Span {
    pub delivered: u64,
    pub failed: u64,
    pub dead: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentView {
    pub last_5m: Span,
    pub last_hour: Span,
    /// Acknowledgement latency over the last hour (an upper bound within 25 %).
    pub ack_p50_ms: Option<f64>,
    pub ack_p95_ms: Option<f64>,
    /// The last hour, oldest minute first, one point per minute (empty minutes included).
    pub series: Vec<MinutePoint>,
    /// Newest first.
    pub errors: Vec<RecentError>,
}

#[derive(Debug, Default)]
struct Inner {
    minutes: VecDeque<Minute>,
    errors: VecDeque<RecentError>,
}

impl Inner {
    /// The minute `at` falls in, started if it is the newest; older minutes beyond the hour go.
    /// `None` for a minute already dropped.
    fn slot(&mut self, at: DateTime<Utc>) -> Option<&mut Minute> {
        let minute = minute_of(at);
        if self.minutes.back().is_none_or(|m| m.at < minute) {
            self.minutes.push_back(Minute::new(minute));
        }
        while self
            .minutes
            .front()
            .is_some_and(|m| m.at <= minute - MINUTES as i64)
        {
            self.minutes.pop_front();
        }
        // An attempt that finished a little out of order lands in its own minute if kept.
        self.minutes.iter_mut().rev().find(|m| m.at == minute)
    }
}

#[derive(Debug, Default)]
pub struct Recent {
    inner: Mutex<Inner>,
}

fn minute_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

fn bucket(latency: Duration) -> usize {
    let ms = latency.as_secs_f64() * 1e3;
    if ms <= 1.0 {
        return 0;
    }
    ((ms.ln() / GROWTH.ln()).ceil() as usize).min(BUCKETS - 1)
}

fn bucket_bound_ms(i: usize) -> f64 {
    GROWTH.powi(i as i32)
}

fn percentile(hist: &[u32; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = hist.iter().map(|&n| u64::from(n)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &n) in hist.iter().enumerate() {
        seen += u64::from(n);
        if seen >= rank {
            return Some((bucket_bound_ms(i) * 10.0).round() / 10.0);
        }
    }
    None
}

impl Recent {
    /// Counts an attempt; `latency` is the acknowledgement latency of a delivered one, `error`
    /// the reason of a failed or dead one.
    pub fn record(
        &self,
        at: DateTime<Utc>,
        tally: Tally,
        latency: Option<Duration>,
        error: Option<&str>,
    ) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(m) = inner.slot(at) {
            match tally {
                Tally::Delivered => m.delivered += 1,
                Tally::Failed => m.failed += 1,
                Tally::Dead => m.dead += 1,
            }
            if let Some(l) = latency {
                m.latency[bucket(l)] += 1;
            }
        }
        if let Some(text) = error {
            inner.errors.push_front(RecentError {
                at,
                text: text.chars().take(300).collect(),
            });
            inner.errors.truncate(ERRORS);
        }
    }

    /// Adds an acknowledgement latency on its own: the partner's late acknowledgement of a
    /// delivery already counted when its receipt was confirmed.
    pub fn ack_latency(&self, at: DateTime<Utc>, latency: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if let Some(m) = inner.slot(at) {
            m.latency[bucket(latency)] += 1;
        }
    }

    /// The last hour as of `now`.
    pub fn view(&self, now: DateTime<Utc>) -> RecentView {
        let Ok(inner) = self.inner.lock() else {
            return RecentView {
                last_5m: Span::default(),
                last_hour: Span::default(),
                ack_p50_ms: None,
                ack_p95_ms: None,
                series: Vec::new(),
                errors: Vec::new(),
            };
        };
        let current = minute_of(now);
        let first = current - MINUTES as i64 + 1;
        let mut series = Vec::with_capacity(MINUTES);
        let mut last_5m = Span::default();
        let mut last_hour = Span::default();
        let mut hour_hist = [0u32; BUCKETS];
        let mut kept = inner.minutes.iter().filter(|m| m.at >= first).peekable();
        for at in first..=current {
            let m = match kept.peek() {
                Some(m) if m.at == at => kept.next(),
                _ => None,
            };
            let point = match m {
                Some(m) => {
                    for span in [&mut last_hour]
                        .into_iter()
                        .chain((at > current - 5).then_some(&mut last_5m))
                    {
                        span.delivered += u64::from(m.delivered);
                        span.failed += u64::from(m.failed);
                        span.dead += u64::from(m.dead);
                    }
                    for (sum, n) in hour_hist.iter_mut().zip(m.latency.iter()) {
                        *sum += n;
                    }
                    MinutePoint {
                        at_ms: at * 60_000,
                        delivered: m.delivered,
                        failed: m.failed,
                        dead: m.dead,
                        p95_ms: percentile(&m.latency, 0.95),
                    }
                }
                None => MinutePoint {
                    at_ms: at * 60_000,
                    delivered: 0,
                    failed: 0,
                    dead: 0,
                    p95_ms: None,
                },
            };
            series.push(point);
        }
        RecentView {
            last_5m,
            last_hour,
            ack_p50_ms: percentile(&hour_hist, 0.5),
            ack_p95_ms: percentile(&hour_hist, 0.95),
            series,
            errors: inner.errors.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(minute * 60 + second, 0).unwrap()
    }

    #[test]
    fn counts_by_minute_and_span() {
        let r = Recent::default();
        let base = 29_000_000;
        for _ in 0..3 {
            r.record(
                at(base, 1),
                Tally::Delivered,
                Some(Duration::from_millis(40)),
                None,
            );
        }
        r.record(at(base + 50, 5), Tally::Failed, None, Some("HTTP 503"));
        r.record(at(base + 58, 5), Tally::Dead, None, Some("HTTP 400"));
        r.record(
            at(base + 59, 5),
            Tally::Delivered,
            Some(Duration::from_millis(900)),
            None,
        );
        let v = r.view(at(base + 59, 30));
        assert_eq!(v.series.len(), 60);
        assert_eq!(v.series[0].at_ms, base * 60_000);
        assert_eq!(v.series[0].delivered, 3);
        assert_eq!(v.series[50].failed, 1);
        assert_eq!(
            v.last_hour,
            Span {
                delivered: 4,
                failed: 1,
                dead: 1
            }
        );
        assert_eq!(
            v.last_5m,
            Span {
                delivered: 1,
                failed: 0,
                dead: 1
            }
        );
        assert_eq!(v.errors[0].text, "HTTP 400", "newest error first");
        assert_eq!(v.errors.len(), 2);
        // An hour later only the newest minute is left.
        let later = r.view(at(base + 60 + 58, 0));
        assert_eq!(later.last_hour.delivered, 1);
    }

    #[test]
    fn latency_percentiles_are_upper_bounds_within_a_quarter() {
        let r = Recent::default();
        let now = at(29_000_000, 10);
        for ms in 1..=100u64 {
            r.record(now, Tally::Delivered, Some(Duration::from_millis(ms)), None);
        }
        let v = r.view(now);
        let p50 = v.ack_p50_ms.unwrap();
        let p95 = v.ack_p95_ms.unwrap();
        assert!((50.0..=62.5).contains(&p50), "p50 {p50}");
        assert!((95.0..=118.75).contains(&p95), "p95 {p95}");
        assert_eq!(v.series[59].p95_ms, Some(p95));
        assert_eq!(Recent::default().view(now).ack_p50_ms, None);
        // A late acknowledgement adds its latency without counting a delivery again.
        let late = Recent::default();
        late.record(now, Tally::Delivered, None, None);
        late.ack_latency(at(29_000_001, 5), Duration::from_secs(3));
        let v = late.view(at(29_000_001, 6));
        assert_eq!(v.last_hour.delivered, 1);
        assert!(
            (3000.0..=3750.0).contains(&v.ack_p95_ms.unwrap()),
            "{:?}",
            v.ack_p95_ms
        );
    }

    #[test]
    fn memory_is_bounded() {
        let r = Recent::default();
        for m in 0..500 {
            r.record(at(29_000_000 + m, 0), Tally::Failed, None, Some("x"));
        }
        let inner = r.inner.lock().unwrap();
        assert!(inner.minutes.len() <= MINUTES);
        assert_eq!(inner.errors.len(), ERRORS);
    }
}
