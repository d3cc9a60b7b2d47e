//! A circuit breaker per partner: after `failures` attempts in a row fail in a way worth retrying
//! (timeouts, refused connections, 5xx), deliveries to the partner pause for a cool-down; then
//! one delivery probes. If it goes through, the breaker closes and the partner's waiting retries
//! are released at once; if not, the pause starts again, twice as long (up to `max_cooldown`).
//! A dead partner then costs one attempt per cool-down instead of eating the workers.
//!
//! A probe whose outcome never comes back to this breaker (its claim went stale in a queue, or
//! another instance's consumer sent it) is made again after `probe_within` (the delivery lease:
//! the claim is void by then), so that the partner is never left half-open for good.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::BreakerConfig;
use crate::time::span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Deliveries flow.
    Closed,
    /// Paused until `open_until`.
    Open,
    /// One delivery is probing.
    HalfOpen,
}

/// What the worker may claim now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// As many as it has room for.
    All,
    /// One probe.
    Probe,
    /// Nothing until then.
    Wait(DateTime<Utc>),
}

/// How one attempt went, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The partner answered (even with a refusal): it is up.
    Up,
    /// Timed out, unreachable, 5xx, 429.
    Down,
}

/// The breaker as ops see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CircuitView {
    pub state: CircuitState,
    /// Failed attempts in a row.
    pub failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub open_until: Option<DateTime<Utc>>,
    /// Times it opened since the start.
    pub opened: u64,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    failures: u32,
    open_until: Option<DateTime<Utc>>,
    cooldown: Duration,
    opened: u64,
    /// While half-open: when the probe counts as lost if no verdict came.
    probe_until: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    /// How long a probe may take before another is made.
    probe_within: Duration,
    inner: Mutex<Inner>,
}

/// How long a probe may take unless [`Breaker::probe_within`] says otherwise.
const PROBE_WITHIN: Duration = Duration::from_secs(60);

/// What a recorded verdict changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    Opened,
    /// Closed after a good probe: release the waiting retries.
    Closed,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                failures: 0,
                open_until: None,
                cooldown: config.cooldown,
                opened: 0,
                probe_until: None,
            }),
            config,
            probe_within: PROBE_WITHIN,
        }
    }

    /// A probe without a verdict after `d` is made again (the delivery lease: a claim is void
    /// after it).
    pub fn probe_within(mut self, d: Duration) -> Self {
        self.probe_within = d;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn view(&self) -> CircuitView {
        let i = self.lock();
        CircuitView {
            state: i.state,
            failures: i.failures,
            open_until: i.open_until,
            opened: i.opened,
        }
    }

    /// What may be claimed at `now`; an open breaker whose cool-down is over starts a probe.
    pub fn allow(&self, now: DateTime<Utc>) -> Allowance {
        if self.config.failures == 0 {
            return Allowance::All;
        }
        let mut i = self.lock();
        match i.state {
            CircuitState::Closed => Allowance::All,
            CircuitState::HalfOpen => match i.probe_until {
                Some(until) if until > now => {
                    Allowance::Wait((now + chrono::Duration::milliseconds(200)).min(until))
                }
                _ => {
                    tracing::info!(
                        "a probe's outcome never came back (its claim went stale, or another \
                         instance sent it): probing again"
                    );
                    i.probe_until = Some(now + span(self.probe_within));
                    Allowance::Probe
                }
            },
            CircuitState::Open => match i.open_until {
                Some(until) if until > now => Allowance::Wait(until),
                _ => {
                    i.state = CircuitState::HalfOpen;
                    i.probe_until = Some(now + span(self.probe_within));
                    Allowance::Probe
                }
            },
        }
    }

    /// A probe found nothing to send: back to open for another cool-down.
    pub fn no_probe(&self, now: DateTime<Utc>) {
        let mut i = self.lock();
        if i.state == CircuitState::HalfOpen {
            i.state = CircuitState::Open;
            i.open_until = Some(now + span(i.cooldown));
            i.probe_until = None;
        }
    }

    pub fn record(&self, verdict: Verdict, now: DateTime<Utc>) -> Change {
        if self.config.failures == 0 {
            return Change::None;
        }
        let mut i = self.lock();
        match (verdict, i.state) {
            (Verdict::Up, CircuitState::Closed) => {
                i.failures = 0;
                Change::None
            }
            (Verdict::Up, _) => {
                i.state = CircuitState::Closed;
                i.failures = 0;
                i.open_until = None;
                i.probe_until = None;
                i.cooldown = self.config.cooldown;
                Change::Closed
            }
            (Verdict::Down, CircuitState::Closed) => {
                i.failures += 1;
                if i.failures >= self.config.failures {
                    open(&mut i, now);
                    Change::Opened
                } else {
                    Change::None
                }
            }
            (Verdict::Down, CircuitState::HalfOpen) => {
                i.cooldown = (i.cooldown * 2).min(self.config.max_cooldown);
                open(&mut i, now);
                Change::Opened
            }
            // Attempts that started before it opened.
            (Verdict::Down, CircuitState::Open) => {
                i.failures += 1;
                Change::None
            }
        }
    }
}

fn open(i: &mut Inner, now: DateTime<Utc>) {
    i.state = CircuitState::Open;
    i.open_until = Some(now + span(i.cooldown));
    i.probe_until = None;
    i.opened += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(25),
        })
    }

    #[test]
    fn opens_after_failures_in_a_row_and_an_answer_resets_the_count() {
        let b = breaker();
        let t = Utc::now();
        assert_eq!(b.record(Verdict::Down, t), Change::None);
        assert_eq!(b.record(Verdict::Down, t), Change::None);
        assert_eq!(b.record(Verdict::Up, t), Change::None);
        assert_eq!(b.view().failures, 0);
        for _ in 0..2 {
            b.record(Verdict::Down, t);
        }
        assert_eq!(b.record(Verdict::Down, t), Change::Opened);
        assert_eq!(b.view().state, CircuitState::Open);
        assert_eq!(
            b.allow(t),
            Allowance::Wait(t + chrono::Duration::seconds(10))
        );
    }

    #[test]
    fn after_the_cooldown_one_probe_decides() {
        let b = breaker();
        let t = Utc::now();
        for _ in 0..3 {
            b.record(Verdict::Down, t);
        }
        let later = t + chrono::Duration::seconds(11);
        assert_eq!(b.allow(later), Allowance::Probe);
        assert!(
            matches!(b.allow(later), Allowance::Wait(_)),
            "one probe at a time"
        );
        // A failed probe: open again, for twice as long.
        assert_eq!(b.record(Verdict::Down, later), Change::Opened);
        assert_eq!(
            b.view().open_until,
            Some(later + chrono::Duration::seconds(20))
        );
        let later = later + chrono::Duration::seconds(21);
        assert_eq!(b.allow(later), Allowance::Probe);
        assert_eq!(b.record(Verdict::Down, later), Change::Opened);
        assert_eq!(
            b.view().open_until,
            Some(later + chrono::Duration::seconds(25)),
            "capped at max_cooldown"
        );
        let later = later + chrono::Duration::seconds(26);
        assert_eq!(b.allow(later), Allowance::Probe);
        assert_eq!(b.record(Verdict::Up, later), Change::Closed);
        assert_eq!(b.allow(later), Allowance::All);
        assert_eq!(b.view().opened, 3);
    }

    #[test]
    fn a_probe_with_nothing_to_send_waits_another_cooldown() {
        let b = breaker();
        let t = Utc::now();
        for _ in 0..3 {
            b.record(Verdict::Down, t);
        }
        let later = t + chrono::Duration::seconds(11);
        assert_eq!(b.allow(later), Allowance::Probe);
        b.no_probe(later);
        assert_eq!(b.view().state, CircuitState::Open);
    }

    #[test]
    fn a_probe_whose_outcome_never_comes_is_made_again_after_probe_within() {
        let b = breaker().probe_within(Duration::from_secs(3));
        let t = Utc::now();
        for _ in 0..3 {
            b.record(Verdict::Down, t);
        }
        let later = t + chrono::Duration::seconds(11);
        assert_eq!(b.allow(later), Allowance::Probe);
        // Its claim went stale in a queue, or another instance sent it: no verdict here.
        let waiting = later + chrono::Duration::milliseconds(2_900);
        assert_eq!(
            b.allow(waiting),
            Allowance::Wait(later + chrono::Duration::seconds(3)),
            "not past its probe's deadline"
        );
        let lost = later + chrono::Duration::seconds(3);
        assert_eq!(
            b.allow(lost),
            Allowance::Probe,
            "the lost probe is made again"
        );
        assert!(matches!(b.allow(lost), Allowance::Wait(_)), "one at a time");
        assert_eq!(b.record(Verdict::Up, lost), Change::Closed);
        assert_eq!(b.allow(lost), Allowance::All);
    }

    #[test]
    fn zero_failures_disables_it() {
        let b = Breaker::new(BreakerConfig {
            failures: 0,
            ..BreakerConfig::default()
        });
        let t = Utc::now();
        for _ in 0..100 {
            b.record(Verdict::Down, t);
        }
        assert_eq!(b.allow(t), Allowance::All);
    }
}
