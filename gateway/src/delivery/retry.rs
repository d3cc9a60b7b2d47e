//! When to try a failed delivery again: exponential backoff with jitter (backon), per partner.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::RetryConfig;

/// Longest `Retry-After` we honour; a partner asking for more gets the normal schedule.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The longest wait between two reconnections to a broker.
pub const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Waits between reconnections to a broker (the delivery queue, a partner's bus): 200 ms,
/// doubling, at most [`RECONNECT_MAX`], never giving up.
pub fn reconnect_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(RECONNECT_MAX)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
}

impl RetryPolicy {
    pub fn new(config: RetryConfig) -> Self {
        Self { config }
    }

    pub fn max_attempts(&self) -> u32 {
        self.config.max_attempts
    }

    /// The wait before the next attempt, after `attempts` failed attempts in this round, or
    /// `None` when the round is used up. A `Retry-After` from the partner lengthens the wait.
    pub fn delay_after(&self, attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempts == 0 || attempts >= self.config.max_attempts {
            return None;
        }
        let c = &self.config;
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(c.min_delay)
            .with_max_delay(c.max_delay)
            .with_factor(c.factor.max(1.0))
            .with_max_times(c.max_attempts as usize);
        if c.jitter {
            builder = builder.with_jitter();
        }
        let backoff = builder.build().nth(attempts as usize - 1)?;
        Some(match retry_after {
            Some(after) if after <= MAX_RETRY_AFTER => backoff.max(after),
            _ => backoff,
        })
    }

    /// The whole schedule without jitter, for documentation and `check-config`.
    pub fn schedule(&self) -> Vec<Duration> {
        let plain = Self::new(RetryConfig {
            jitter: false,
            ..self.config.clone()
        });
        (1..self.config.max_attempts)
            .filter_map(|n| plain.delay_after(n, None))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnections_wait_200ms_doubling_up_to_10s_forever() {
        let ms: Vec<u128> = reconnect_delays().take(9).map(|d| d.as_millis()).collect();
        assert_eq!(
            ms,
            vec![200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
        assert!(reconnect_delays().nth(1000).is_some(), "never gives up");
    }

    fn policy(jitter: bool) -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            jitter,
            ..RetryConfig::default()
        })
    }

    #[test]
    fn the_default_schedule_spans_about_a_day() {
        let s = policy(false).schedule();
        let secs: Vec<u64> = s.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 20, 80, 320, 1280, 5120, 20480, 36000, 36000]);
        let total: u64 = secs.iter().sum();
        assert!((20 * 3600..=36 * 3600).contains(&total), "{total}s");
    }

    #[test]
    fn jitter_stays_between_the_delay_and_twice_it() {
        let p = policy(true);
        for n in 1..10 {
            let base = policy(false).delay_after(n, None).unwrap();
            for _ in 0..50 {
                let d = p.delay_after(n, None).unwrap();
                assert!(d >= base && d <= base * 2, "attempt {n}: {d:?} vs {base:?}");
            }
        }
    }

    #[test]
    fn the_round_ends_after_max_attempts() {
        let p = policy(false);
        assert!(p.delay_after(9, None).is_some());
        assert_eq!(p.delay_after(10, None), None);
        assert_eq!(p.delay_after(0, None), None);
    }

    #[test]
    fn retry_after_lengthens_but_never_shortens_the_wait() {
        let p = policy(false);
        let long = Duration::from_secs(600);
        assert_eq!(p.delay_after(1, Some(long)), Some(long));
        assert_eq!(
            p.delay_after(1, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(5))
        );
        let absurd = Duration::from_secs(100 * 24 * 3600);
        assert_eq!(p.delay_after(1, Some(absurd)), Some(Duration::from_secs(5)));
    }
}
