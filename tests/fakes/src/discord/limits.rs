//! REST rate limits: the global per-token cap (fixed one-second windows), the per-channel
//! bucket of `POST /channels/{id}/messages` (fixed windows of [`Limit::per`] starting with
//! the first request, as `X-RateLimit-Reset-After` counts down) and injected 429s.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::Limit;

/// One fixed window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

/// A bucket's state after a request, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    pub(super) limit: u32,
    pub(super) remaining: u32,
    pub(super) reset_after: Duration,
}

/// A refused request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal {
    pub(super) retry_after: Duration,
    pub(super) global: bool,
    /// The route bucket, for non-global refusals.
    pub(super) bucket: Option<Bucket>,
}

/// All rate-limit state of one fake.
#[derive(Debug, Default)]
pub(super) struct Limits {
    routes: HashMap<String, Window>,
    global: HashMap<String, Window>,
    /// `(left, retry_after, global)` batches of injected 429s, oldest first.
    injected: VecDeque<(u32, Duration, bool)>,
}

impl Limits {
    pub(super) fn inject(&mut self, count: u32, retry_after: Duration, global: bool) {
        if count > 0 {
            self.injected.push_back((count, retry_after, global));
        }
    }

    /// Takes one injected 429, if any is pending.
    pub(super) fn take_injected(&mut self, route: Option<Limit>) -> Option<Refusal> {
        let front = self.injected.front_mut()?;
        front.0 -= 1;
        let (_, retry_after, global) = *front;
        if front.0 == 0 {
            self.injected.pop_front();
        }
        Some(Refusal {
            retry_after,
            global,
            bucket: (!global).then(|| Bucket {
                limit: route.map_or(5, |l| l.requests),
                remaining: 0,
                reset_after: retry_after,
            }),
        })
    }

    /// Counts one request against the token's global window (`per_second == 0`: no limit).
    pub(super) fn global(
        &mut self,
        token: &str,
        per_second: u32,
        now: Instant,
    ) -> Result<(), Refusal> {
        if per_second == 0 {
            return Ok(());
        }
        let window = roll(
            self.global.entry(token.to_owned()).or_insert(Window {
                start: now,
                count: 0,
            }),
            Duration::from_secs(1),
            now,
        );
        if window.count >= per_second {
            return Err(Refusal {
                retry_after: (window.start + Duration::from_secs(1)).saturating_duration_since(now),
                global: true,
                bucket: None,
            });
        }
        window.count += 1;
        Ok(())
    }

    /// Counts one request against the channel's bucket. `Ok(None)` when there is no route
    /// limit.
    pub(super) fn route(
        &mut self,
        channel_id: &str,
        limit: Option<Limit>,
        now: Instant,
    ) -> Result<Option<Bucket>, Refusal> {
        let Some(limit) = limit else {
            return Ok(None);
        };
        let window = roll(
            self.routes.entry(channel_id.to_owned()).or_insert(Window {
                start: now,
                count: 0,
            }),
            limit.per,
            now,
        );
        let reset_after = (window.start + limit.per).saturating_duration_since(now);
        if window.count >= limit.requests {
            return Err(Refusal {
                retry_after: reset_after,
                global: false,
                bucket: Some(Bucket {
                    limit: limit.requests,
                    remaining: 0,
                    reset_after,
                }),
            });
        }
        window.count += 1;
        Ok(Some(Bucket {
            limit: limit.requests,
            remaining: limit.requests - window.count,
            reset_after,
        }))
    }
}

/// Starts a new window when the current one is over.
fn roll(window: &mut Window, per: Duration, now: Instant) -> &mut Window {
    if now.saturating_duration_since(window.start) >= per {
        *window = Window {
            start: now,
            count: 0,
        };
    }
    window
}
