//! One clock for many deadlines: a queue that a single task waits on.
//!
//! A [`Timer`](crate::Timer) is a parked task each; a supervisor with 100,000 children
//! that each want a deadline would hold 100,000 tasks. [`Deadlines`] keeps them in one
//! ordered structure instead (a key's deadline and a value to act on, such as the actor
//! to tell), and one task, whoever owns the queue, waits for the earliest with
//! [`Deadlines::next_due`]. Setting a deadline costs a lock and two tree operations;
//! only moving the earliest deadline sooner wakes the waiting task.
//!
//! ```no_run
//! # use std::time::{Duration, Instant};
//! # use pincer_actors::Deadlines;
//! # async fn demo() {
//! let queue: Deadlines<String, u32> = Deadlines::default();
//! queue.set("a".to_string(), Instant::now() + Duration::from_secs(5), 1);
//! queue.set("a".to_string(), Instant::now() + Duration::from_secs(9), 1); // moved later
//! for (key, value) in queue.next_due().await {
//!     println!("{key} is due ({value})");
//! }
//! # }
//! ```

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Deadlines by key, each with a value handed back when it is due. See the
/// [module docs](self).
pub struct Deadlines<K, V> {
    queue: Mutex<Queue<K, V>>,
    wake: Notify,
}

struct Queue<K, V> {
    by_key: HashMap<K, (Instant, V)>,
    order: BTreeSet<(Instant, K)>,
}

impl<K, V> Default for Deadlines<K, V> {
    fn default() -> Self {
        Self {
            queue: Mutex::new(Queue {
                by_key: HashMap::new(),
                order: BTreeSet::new(),
            }),
            wake: Notify::new(),
        }
    }
}

impl<K: Clone + Ord + Hash, V: Clone> Deadlines<K, V> {
    /// Sets `key`'s deadline to `at` (replacing any earlier one) with `value`.
    pub fn set(&self, key: K, at: Instant, value: V) {
        let mut queue = self.queue.lock();
        let head = queue.order.first().map(|(t, _)| *t);
        if let Some((old, _)) = queue.by_key.insert(key.clone(), (at, value)) {
            queue.order.remove(&(old, key.clone()));
        }
        queue.order.insert((at, key));
        drop(queue);
        // Only a new earliest deadline changes how long the waiting task sleeps.
        if head.is_none_or(|h| at < h) {
            self.wake.notify_one();
        }
    }

    /// Removes `key`'s deadline; returns its value if it had one.
    pub fn remove(&self, key: &K) -> Option<V> {
        let mut queue = self.queue.lock();
        let (at, value) = queue.by_key.remove(key)?;
        queue.order.remove(&(at, key.clone()));
        Some(value)
    }

    /// `key`'s deadline and value, if set.
    pub fn get(&self, key: &K) -> Option<(Instant, V)> {
        self.queue.lock().by_key.get(key).cloned()
    }

    /// Keeps only the deadlines for which `keep` says so.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut queue = self.queue.lock();
        let doomed: Vec<(Instant, K)> = queue
            .by_key
            .iter()
            .filter(|(k, (_, v))| !keep(k, v))
            .map(|(k, (at, _))| (*at, k.clone()))
            .collect();
        for (at, key) in doomed {
            queue.by_key.remove(&key);
            queue.order.remove(&(at, key));
        }
    }

    /// Number of deadlines set.
    pub fn len(&self) -> usize {
        self.queue.lock().by_key.len()
    }

    /// Whether no deadline is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The earliest deadline, if any.
    pub fn earliest(&self) -> Option<Instant> {
        self.queue.lock().order.first().map(|(at, _)| *at)
    }

    /// Removes and returns every deadline at or before `now`, earliest first.
    pub fn take_due(&self, now: Instant) -> Vec<(K, V)> {
        let mut queue = self.queue.lock();
        let mut due = Vec::new();
        while let Some((at, _)) = queue.order.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = queue.order.pop_first()
                && let Some((_, value)) = queue.by_key.remove(&key)
            {
                due.push((key, value));
            }
        }
        due
    }

    /// Waits until at least one deadline is due and returns those due, earliest first.
    /// Meant for one waiting task; a deadline set sooner meanwhile wakes it.
    pub async fn next_due(&self) -> Vec<(K, V)> {
        loop {
            let due = self.take_due(Instant::now());
            if !due.is_empty() {
                return due;
            }
            // Registered before reading the head, so a `set` in between is not missed.
            let notified = self.wake.notified();
            match self.earliest() {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at.into()) => {}
                        () = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

impl<K, V> std::fmt::Debug for Deadlines<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadlines")
            .field("len", &self.queue.lock().by_key.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn fires_in_order_and_moves() {
        let q: Arc<Deadlines<u32, &str>> = Arc::default();
        let now = Instant::now();
        q.set(1, now + Duration::from_millis(40), "one");
        q.set(2, now + Duration::from_millis(10), "two");
        q.set(3, now + Duration::from_secs(60), "three");
        // Moved later: fires after 1.
        q.set(2, now + Duration::from_millis(60), "two");
        assert_eq!(q.len(), 3);
        let first = q.next_due().await;
        assert_eq!(first, vec![(1, "one")]);
        assert!(now.elapsed() >= Duration::from_millis(40));
        let second = q.next_due().await;
        assert_eq!(second, vec![(2, "two")]);
        assert_eq!(q.remove(&3), Some("three"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_the_waiter() {
        let q: Arc<Deadlines<u32, ()>> = Arc::default();
        q.set(1, Instant::now() + Duration::from_secs(3600), ());
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.next_due().await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let start = Instant::now();
        q.set(2, Instant::now() + Duration::from_millis(10), ());
        let due = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert_eq!(due, vec![(2, ())]);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn retain_and_take_due() {
        let q: Deadlines<u32, u32> = Deadlines::default();
        let now = Instant::now();
        for i in 0..10 {
            q.set(i, now + Duration::from_millis(u64::from(i)), i * 10);
        }
        q.retain(|k, _| k % 2 == 0);
        assert_eq!(q.len(), 5);
        let due = q.take_due(now + Duration::from_millis(4));
        assert_eq!(due, vec![(0, 0), (2, 20), (4, 40)]);
        assert_eq!(q.earliest(), Some(now + Duration::from_millis(6)));
        assert_eq!(q.get(&8), Some((now + Duration::from_millis(8), 80)));
    }
}
