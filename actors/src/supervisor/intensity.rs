//! Restart intensity: at most `max_restarts` restarts within `window`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many restarts a supervisor tolerates within a sliding window before it gives up.
///
/// One restart more than `max_restarts` within `window` and the supervisor stops all its
/// children in reverse start order and exits abnormally, so that its own supervisor deals
/// with the failure (escalation). The default, 3 restarts in 5 seconds, tolerates a short
/// burst (a flapping upstream) while still escalating a child that cannot stay up; OTP's
/// classic default was the same before it moved to 1 in 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within `window`. Zero means the first failure escalates.
    pub max_restarts: u32,
    /// Length of the sliding window.
    pub window: Duration,
}

impl Default for Intensity {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            window: Duration::from_secs(5),
        }
    }
}

impl Intensity {
    /// `max_restarts` within `window`.
    pub const fn new(max_restarts: u32, window: Duration) -> Self {
        Self {
            max_restarts,
            window,
        }
    }
}

/// The restarts a supervisor instance performed recently.
#[derive(Debug)]
pub(crate) struct RestartLog {
    intensity: Intensity,
    times: VecDeque<Instant>,
}

impl RestartLog {
    pub(crate) fn new(intensity: Intensity) -> Self {
        Self {
            intensity,
            times: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; false when it exceeds the intensity.
    pub(crate) fn record(&mut self, now: Instant) -> bool {
        self.times.push_back(now);
        while let Some(first) = self.times.front() {
            if now.duration_since(*first) > self.intensity.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        self.times.len() as u64 <= u64::from(self.intensity.max_restarts)
    }

    #[cfg(test)]
    fn in_window(&self) -> usize {
        self.times.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_max_then_refuses_within_window() {
        let mut log = RestartLog::new(Intensity::new(2, Duration::from_secs(5)));
        let t0 = Instant::now();
        assert!(log.record(t0));
        assert!(log.record(t0 + Duration::from_secs(1)));
        assert!(!log.record(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn old_restarts_slide_out() {
        let mut log = RestartLog::new(Intensity::new(1, Duration::from_secs(5)));
        let t0 = Instant::now();
        assert!(log.record(t0));
        assert!(log.record(t0 + Duration::from_secs(6)));
        assert_eq!(log.in_window(), 1);
    }

    #[test]
    fn zero_escalates_at_once() {
        let mut log = RestartLog::new(Intensity::new(0, Duration::from_secs(5)));
        assert!(!log.record(Instant::now()));
    }
}
