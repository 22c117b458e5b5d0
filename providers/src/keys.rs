//! Auth profiles: a provider's API keys, tried in turn. A key that gets a 429 or an auth
//! error cools down for a while and the next one is used; when every key is cooling, the
//! caller learns how long until the first comes back.

use std::time::{Duration, Instant};

/// How long a key rests after an auth error (401/403): long enough not to hammer, short
/// enough that a key fixed upstream comes back by itself.
pub const AUTH_COOLDOWN: Duration = Duration::from_secs(600);

/// How long a key rests after a 429 without a retry hint.
pub const RATE_COOLDOWN: Duration = Duration::from_secs(30);

/// A provider's keys with their cooldowns. Keys are identified by position: the ring is
/// rebuilt (cooldowns kept by value) when the configured keys change.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Key>,
    next: usize,
}

#[derive(Debug)]
struct Key {
    value: String,
    resting_until: Option<Instant>,
    /// The upstream refused it (401/403), saying this; cleared when a call with it
    /// succeeds or the key is replaced.
    rejected: Option<String>,
}

/// Why no call can be made with a provider's keys, whatever the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// None configured (or none resolved).
    NoKeys,
    /// Every key was refused by the upstream; the last reason it gave.
    Rejected(String),
}

/// Which key a call uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// Position in the ring (for [`KeyRing::rest`]); logged as the profile number.
    pub index: usize,
    /// The key.
    pub value: String,
}

/// No key is usable now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoKey {
    /// None configured (or none resolved).
    None,
    /// All cooling; the first is back after this long.
    Resting(Duration),
}

impl KeyRing {
    /// Makes the ring hold exactly `values`, in order, keeping the cooldown of any key
    /// that stays.
    pub fn set(&mut self, values: Vec<String>) {
        if self.keys.len() == values.len()
            && self.keys.iter().zip(&values).all(|(k, v)| &k.value == v)
        {
            return;
        }
        let old = std::mem::take(&mut self.keys);
        self.keys = values
            .into_iter()
            .map(|value| {
                let kept = old.iter().find(|k| k.value == value);
                Key {
                    resting_until: kept.and_then(|k| k.resting_until),
                    rejected: kept.and_then(|k| k.rejected.clone()),
                    value,
                }
            })
            .collect();
        self.next = 0;
    }

    /// The next usable key, round robin from the last one used.
    pub fn pick(&mut self, now: Instant) -> Result<Pick, NoKey> {
        let n = self.keys.len();
        if n == 0 {
            return Err(NoKey::None);
        }
        for step in 0..n {
            let index = (self.next + step) % n;
            let key = &self.keys[index];
            if key.resting_until.is_none_or(|t| t <= now) {
                // Stay on a working key: only a rest moves the ring on.
                self.next = index;
                return Ok(Pick {
                    index,
                    value: key.value.clone(),
                });
            }
        }
        let first_back = self
            .keys
            .iter()
            .filter_map(|k| k.resting_until)
            .min()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        Err(NoKey::Resting(first_back))
    }

    /// Key `index` rests for `how_long` from `now`.
    pub fn rest(&mut self, index: usize, how_long: Duration, now: Instant) {
        if let Some(key) = self.keys.get_mut(index) {
            key.resting_until = Some(now + how_long);
        }
        if self.next == index && !self.keys.is_empty() {
            self.next = (index + 1) % self.keys.len();
        }
    }

    /// Key `index` was refused by the upstream (`why`: its status and message); it rests
    /// for `how_long`, and counts as rejected until a call with it succeeds.
    pub fn reject(&mut self, index: usize, why: &str, how_long: Duration, now: Instant) {
        if let Some(key) = self.keys.get_mut(index) {
            key.rejected = Some(why.to_string());
        }
        self.rest(index, how_long, now);
    }

    /// A call with key `index` succeeded: it is not rejected.
    pub fn accepted(&mut self, index: usize) {
        if let Some(key) = self.keys.get_mut(index) {
            key.rejected = None;
        }
    }

    /// Whether a call can be made at all: `Err` when there is no key, or when every key
    /// was refused (a key resting after a rate limit still counts as usable).
    pub fn usable(&self) -> Result<(), Unusable> {
        if self.keys.is_empty() {
            return Err(Unusable::NoKeys);
        }
        match self
            .keys
            .iter()
            .map(|k| k.rejected.as_ref())
            .collect::<Option<Vec<_>>>()
        {
            // The first key's: the one configured as `apiKey`.
            Some(reasons) => Err(Unusable::Rejected(
                reasons.first().map(|r| r.to_string()).unwrap_or_default(),
            )),
            None => Ok(()),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether `value` is one of the keys.
    pub fn contains(&self, value: &str) -> bool {
        self.keys.iter().any(|k| k.value == value)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resting_key_is_skipped_until_it_is_back() {
        let mut ring = KeyRing::default();
        ring.set(vec!["a".into(), "b".into()]);
        let t0 = Instant::now();
        assert_eq!(ring.pick(t0).map(|p| p.value), Ok("a".into()));
        assert_eq!(ring.pick(t0).map(|p| p.value), Ok("a".into()));
        ring.rest(0, Duration::from_secs(10), t0);
        assert_eq!(ring.pick(t0).map(|p| p.value), Ok("b".into()));
        ring.rest(1, Duration::from_secs(20), t0);
        assert_eq!(ring.pick(t0), Err(NoKey::Resting(Duration::from_secs(10))));
        let later = t0 + Duration::from_secs(11);
        assert_eq!(ring.pick(later).map(|p| p.value), Ok("a".into()));
    }

    #[test]
    fn a_ring_whose_keys_were_all_refused_is_unusable_until_one_works_or_changes() {
        let mut ring = KeyRing::default();
        assert_eq!(ring.usable(), Err(Unusable::NoKeys));
        ring.set(vec!["a".into(), "b".into()]);
        assert_eq!(ring.usable(), Ok(()));
        let t0 = Instant::now();
        ring.rest(0, Duration::from_secs(30), t0); // a rate limit is not a refusal
        ring.reject(1, "401 invalid_api_key: bad", Duration::from_secs(600), t0);
        assert_eq!(ring.usable(), Ok(()));
        ring.reject(0, "403 forbidden", Duration::from_secs(600), t0);
        assert_eq!(
            ring.usable(),
            Err(Unusable::Rejected("403 forbidden".into()))
        );
        ring.accepted(0);
        assert_eq!(ring.usable(), Ok(()));
        ring.reject(0, "401 invalid_api_key: bad", Duration::from_secs(600), t0);
        ring.set(vec!["c".into()]);
        assert_eq!(ring.usable(), Ok(()), "a new key is not rejected");
    }

    #[test]
    fn rebuilding_keeps_the_rest_of_keys_that_stay() {
        let mut ring = KeyRing::default();
        ring.set(vec!["a".into(), "b".into()]);
        let t0 = Instant::now();
        ring.rest(1, Duration::from_secs(10), t0);
        ring.set(vec!["b".into(), "c".into()]);
        assert_eq!(ring.pick(t0).map(|p| p.value), Ok("c".into()));
        assert_eq!(KeyRing::default().pick(t0), Err(NoKey::None));
    }
}
