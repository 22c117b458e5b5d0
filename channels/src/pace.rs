//! Pacing of sends: a token bucket per conversation and one for the whole bot.
//!
//! Telegram asks for about one message a second per chat, twenty a minute per group and
//! thirty a second in all; Discord has per-route buckets and 50 requests a second. A
//! bucket lets a short burst through and then spaces sends out, so a long reply split in
//! parts never trips the upstream's limit. A 429 that comes anyway pauses the bucket for
//! the time the upstream asked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Buckets kept before idle, full ones are dropped.
const MAX_LANES: usize = 4096;

/// A rate: `burst` sends at once, then one every `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sends allowed back to back.
    pub burst: u32,
    /// Time to earn one more.
    pub per: Duration,
}

/// One token bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: Rate,
    tokens: f64,
    at: Instant,
    paused_until: Option<Instant>,
}

/// The buckets of one account: a global one and one per lane (chat, channel).
#[derive(Debug)]
pub struct Pacer {
    global: Mutex<Bucket>,
    lanes: Mutex<HashMap<String, Bucket>>,
}

// === impl Bucket ===

impl Bucket {
    /// A full bucket.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            tokens: f64::from(rate.burst.max(1)),
            at: Instant::now(),
            paused_until: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let per = self.rate.per.as_secs_f64().max(1e-6);
        let earned = now.saturating_duration_since(self.at).as_secs_f64() / per;
        self.tokens = (self.tokens + earned).min(f64::from(self.rate.burst.max(1)));
        self.at = now;
    }

    /// Takes a token; returns how long to wait before using it (zero when one was there).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        let mut wait = if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            self.rate.per.mul_f64(-self.tokens)
        };
        if let Some(until) = self.paused_until {
            wait = wait.max(until.saturating_duration_since(now));
        }
        wait
    }

    /// Takes a token only if one is there now (for sends that may be skipped).
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.paused_until.is_some_and(|u| u > now) || self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Nothing goes out before `until`.
    pub fn pause(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
        self.tokens = self.tokens.min(0.0);
    }

    fn idle_and_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= f64::from(self.rate.burst.max(1))
            && self.paused_until.is_none_or(|u| u <= now)
    }
}

// === impl Pacer ===

impl Pacer {
    /// A pacer with a `global` rate over all lanes.
    pub fn new(global: Rate) -> Self {
        Self {
            global: Mutex::new(Bucket::new(global)),
            lanes: Mutex::default(),
        }
    }

    /// Waits for a send slot in `lane` (created at `rate`) and in the global bucket.
    pub async fn wait(&self, lane: &str, rate: Rate) {
        let now = Instant::now();
        let lane_wait = self.with_lane(lane, rate, |b| b.reserve(now));
        let global_wait = self.global.lock().reserve(now);
        let wait = lane_wait.max(global_wait);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a slot only if both buckets have one now.
    pub fn try_take(&self, lane: &str, rate: Rate) -> bool {
        let now = Instant::now();
        let mut global = self.global.lock();
        let mut probe = global.clone();
        if !probe.try_take(now) {
            return false;
        }
        if self.with_lane(lane, rate, |b| b.try_take(now)) {
            *global = probe;
            true
        } else {
            false
        }
    }

    /// Pauses `lane` (or, with `None`, everything) for `for_`.
    pub fn pause(&self, lane: Option<&str>, rate: Rate, for_: Duration) {
        let until = Instant::now() + for_;
        match lane {
            Some(lane) => self.with_lane(lane, rate, |b| b.pause(until)),
            None => self.global.lock().pause(until),
        }
    }

    fn with_lane<T>(&self, lane: &str, rate: Rate, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut lanes = self.lanes.lock();
        if lanes.len() > MAX_LANES {
            let now = Instant::now();
            lanes.retain(|_, b| !b.idle_and_full(now));
        }
        f(lanes
            .entry(lane.to_string())
            .or_insert_with(|| Bucket::new(rate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_sends_are_spaced_by_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(Rate {
            burst: 3,
            per: Duration::from_secs(1),
        });
        b.at = t0;
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::ZERO);
        assert_eq!(b.reserve(t0), Duration::from_secs(1));
        assert_eq!(b.reserve(t0), Duration::from_secs(2));
        // Two seconds later both reserved tokens are earned: the next waits one more.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(b.reserve(later), Duration::from_secs(1));
        assert!(!b.try_take(later));
    }

    #[test]
    fn a_pause_holds_every_send_until_it_ends() {
        let t0 = Instant::now();
        let mut b = Bucket::new(Rate {
            burst: 5,
            per: Duration::from_millis(100),
        });
        b.pause(t0 + Duration::from_secs(3));
        assert!(!b.try_take(t0));
        assert!(b.reserve(t0) >= Duration::from_millis(2900));
    }
}
