//! Restart backoff: exponential delay with jitter and a reset after a stable run.
//!
//! A child without a [`Backoff`] is restarted at once, as in OTP. A child with one waits
//! `initial * factor^(attempt-1)` (capped at `max`, then jittered) before its replacement
//! starts; the supervisor stays responsive meanwhile and the registry shows the child as
//! restarting with the attempt number and the delay.

use std::time::Duration;

/// Exponential restart delay for one child.
///
/// `attempt` counts consecutive restarts of the child; it goes back to zero once an
/// instance has run for `reset_after` without failing, so a child that crashes once a day
/// is always restarted after `initial`, never after `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart. Default 100 ms.
    pub initial: Duration,
    /// Upper bound of the delay before jitter. Default 30 s.
    pub max: Duration,
    /// Growth per attempt; values below 1.0 are treated as 1.0. Default 2.0.
    pub factor: f64,
    /// Fraction of the delay that is randomised, 0.0 to 1.0: the delay is drawn uniformly
    /// from `[d * (1 - jitter), d]`, so jitter never lengthens a delay past `max`.
    /// Default 0.2.
    pub jitter: f64,
    /// An instance that ran this long without failing resets the attempt count. Default 60 s.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.2,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// A backoff starting at `initial` and growing by `factor` up to `max`, with the default
    /// jitter and reset.
    pub fn exponential(initial: Duration, max: Duration, factor: f64) -> Self {
        Self {
            initial,
            max,
            factor,
            ..Self::default()
        }
    }

    /// Sets the jitter fraction (clamped to 0.0..=1.0).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// Sets how long an instance must run before the attempt count resets.
    pub fn with_reset_after(mut self, reset_after: Duration) -> Self {
        self.reset_after = reset_after;
        self
    }

    /// The delay before jitter for restart number `attempt` (1-based; 0 is treated as 1).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let factor = if self.factor.is_finite() {
            self.factor.max(1.0)
        } else {
            1.0
        };
        let secs = self.initial.as_secs_f64() * factor.powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The jittered delay for restart number `attempt`, within
    /// `[base * (1 - jitter), base]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 || base.is_zero() {
            return base;
        }
        let cut = base.as_secs_f64() * jitter * fastrand::f64();
        base.saturating_sub(Duration::from_secs_f64(cut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_factor_and_caps_at_max() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1), 2.0);
        assert_eq!(b.base_delay(1), Duration::from_millis(100));
        assert_eq!(b.base_delay(2), Duration::from_millis(200));
        assert_eq!(b.base_delay(4), Duration::from_millis(800));
        assert_eq!(b.base_delay(5), Duration::from_secs(1));
        assert_eq!(b.base_delay(500), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10), 2.0)
            .with_jitter(0.5);
        for attempt in 1..8 {
            let base = b.base_delay(attempt);
            for _ in 0..200 {
                let d = b.delay(attempt);
                assert!(d <= base, "{d:?} > {base:?}");
                assert!(d >= base.mul_f64(0.5), "{d:?} < half of {base:?}");
            }
        }
    }

    #[test]
    fn odd_factors_do_not_shrink_or_overflow() {
        let b = Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1), 0.1);
        assert_eq!(b.base_delay(3), Duration::from_millis(10));
        let b = Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1), f64::NAN);
        assert_eq!(b.base_delay(3), Duration::from_millis(10));
        let b = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(5), 1e300);
        assert_eq!(b.base_delay(60), Duration::from_secs(5));
    }
}
