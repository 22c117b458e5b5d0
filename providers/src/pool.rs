//! Which connection takes a call. One [`Pool`] per provider outlives its connection
//! actors (the gateway keeps it beside them), so a restarted connection
//! finds its slot, and the provider's API keys keep their cooldowns.
//!
//! A slot holds at most `capacity` calls: 1 for an OpenAI WebSocket (one response in
//! flight per socket), more for SSE clients. A call whose conversation continues the last
//! response a slot produced goes to that slot, so the connection can send only the new
//! items (`previous_response_id`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::keys::KeyRing;

/// A provider's connection slots and API keys.
#[derive(Debug)]
pub struct Pool {
    slots: Mutex<Vec<Slot>>,
    freed: Notify,
    /// The provider's API keys (auth profiles).
    pub keys: Mutex<KeyRing>,
    /// The provider's HTTP client (its connection pool outlives connection actors).
    pub http: reqwest::Client,
}

#[derive(Debug)]
struct Slot {
    path: String,
    capacity: usize,
    in_flight: usize,
    chain: Option<Chain>,
}

/// Where a connection's last response left the conversation: the fingerprint of the
/// request's items plus the response's output items (see
/// [`prefix_hashes`](super::prefix_hashes)), and how many items that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// Fingerprint of the first `len` items.
    pub hash: u64,
    /// Items covered.
    pub len: usize,
}

/// A call's hold on a slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    index: usize,
    path: String,
    continues: Option<Chain>,
    request: Chain,
    overflow: bool,
}

// === impl Chain ===

impl Chain {
    /// The chain with `item` after it.
    pub fn then(self, item: &crate::Item) -> Self {
        Self {
            hash: crate::chain_step(self.hash, item),
            len: self.len + 1,
        }
    }
}

// === impl Pool ===

impl Pool {
    /// A pool of connections at `paths`, each taking `capacity` calls at once.
    pub fn new(paths: Vec<String>, capacity: usize, http: reqwest::Client) -> Arc<Self> {
        let slots = paths
            .into_iter()
            .map(|path| Slot {
                path,
                capacity: capacity.max(1),
                in_flight: 0,
                chain: None,
            })
            .collect();
        Arc::new(Self {
            slots: Mutex::new(slots),
            freed: Notify::new(),
            keys: Mutex::new(KeyRing::default()),
            http,
        })
    }

    /// Slot `index`'s connection now ends at `chain` (or at nothing, after a reconnect).
    pub fn set_chain(&self, index: usize, chain: Option<Chain>) {
        if let Some(slot) = self.slots.lock().get_mut(index) {
            slot.chain = chain;
        }
    }

    /// Takes a slot for a call whose prefix fingerprints are `prefixes`: the idle slot
    /// whose chain the call continues, else the least busy running slot with room. Waits
    /// up to `wait` for one; `None` after that.
    ///
    /// With `overflow`, when no slot has room the least busy running slot is taken
    /// anyway, marked [`Lease::overflow`]: the call must go another way than the slot's
    /// exclusive transport (an OpenAI call over SSE when every socket is busy).
    pub async fn acquire(
        self: &Arc<Self>,
        prefixes: &[u64],
        running: &(dyn Fn(&str) -> bool + Sync),
        wait: Duration,
        overflow: bool,
    ) -> Option<Lease> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.freed.notified();
            if let Some(lease) = self.try_acquire(prefixes, running, overflow) {
                return Some(lease);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            // Also wake now and then: a restarted connection does not notify.
            let nap = left.min(Duration::from_millis(100));
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    fn try_acquire(
        self: &Arc<Self>,
        prefixes: &[u64],
        running: &(dyn Fn(&str) -> bool + Sync),
        overflow: bool,
    ) -> Option<Lease> {
        let mut slots = self.slots.lock();
        let continues = |slot: &Slot| {
            slot.chain
                .filter(|c| c.len < prefixes.len() && prefixes[c.len] == c.hash)
        };
        let candidates = || slots.iter().enumerate().filter(|(_, s)| running(&s.path));
        let pick = candidates()
            .filter(|(_, s)| s.in_flight < s.capacity)
            .max_by_key(|(i, s)| {
                // Prefer the slot holding the chain, then the least busy, then the first
                // (so an idle provider uses the same socket, keeping its chains).
                (
                    continues(s).is_some(),
                    std::cmp::Reverse(s.in_flight),
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(i, _)| (i, false))
            .or_else(|| {
                overflow
                    .then(|| candidates().min_by_key(|(_, s)| s.in_flight))
                    .flatten()
                    .map(|(i, _)| (i, true))
            });
        let (index, overflowed) = pick?;
        let slot = &mut slots[index];
        slot.in_flight += 1;
        Some(Lease {
            pool: Arc::clone(self),
            index,
            path: slot.path.clone(),
            continues: if overflowed { None } else { continues(slot) },
            request: Chain {
                hash: prefixes.last().copied().unwrap_or_default(),
                len: prefixes.len().saturating_sub(1),
            },
            overflow: overflowed,
        })
    }

    /// Calls in flight on every slot (for tests and metrics).
    pub fn in_flight(&self) -> Vec<usize> {
        self.slots.lock().iter().map(|s| s.in_flight).collect()
    }
}

// === impl Lease ===

impl Lease {
    /// The connection's registry path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The slot's index in its pool.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The chain this call continues on this connection, when it does.
    pub fn continues(&self) -> Option<Chain> {
        self.continues
    }

    /// Where the call's request ends: the connection's chain once the response's output
    /// items are added to it ([`Chain::then`]).
    pub fn request(&self) -> Chain {
        self.request
    }

    /// Whether the slot was full: the call must not use the slot's exclusive transport
    /// (the socket) and goes by the shared one (SSE).
    pub fn overflow(&self) -> bool {
        self.overflow
    }

    /// The pool this lease is from.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(slot) = self.pool.slots.lock().get_mut(self.index) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
        }
        self.pool.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, capacity: usize) -> Arc<Pool> {
        Pool::new(
            (0..n).map(|i| format!("conn:{i}")).collect(),
            capacity,
            reqwest::Client::new(),
        )
    }

    #[tokio::test]
    async fn a_full_pool_waits_for_a_release() {
        let pool = pool(1, 1);
        let all = |_: &str| true;
        let first = pool.acquire(&[1], &all, Duration::ZERO, false).await;
        assert!(first.is_some());
        assert!(
            pool.acquire(&[1], &all, Duration::ZERO, false)
                .await
                .is_none()
        );
        let waiter = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                pool.acquire(&[1], &|_: &str| true, Duration::from_secs(5), false)
                    .await
                    .map(|l| l.index())
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert_eq!(waiter.await.ok().flatten(), Some(0));
    }

    #[tokio::test]
    async fn the_slot_holding_the_chain_wins() {
        let pool = pool(3, 1);
        pool.set_chain(2, Some(Chain { hash: 7, len: 1 }));
        let all = |_: &str| true;
        let lease = pool.acquire(&[0, 7, 9], &all, Duration::ZERO, false).await;
        let lease = lease.expect("a slot");
        assert_eq!(lease.index(), 2);
        assert_eq!(lease.continues(), Some(Chain { hash: 7, len: 1 }));
        // A conversation that does not extend the chain gets no continuation.
        let other = pool.acquire(&[0, 8], &all, Duration::ZERO, false).await;
        assert!(other.is_some_and(|l| l.continues().is_none()));
    }

    #[tokio::test]
    async fn stopped_connections_are_skipped_and_overflow_shares_a_busy_one() {
        let pool = pool(2, 1);
        let only_one = |p: &str| p == "conn:1";
        let first = pool.acquire(&[0], &only_one, Duration::ZERO, false).await;
        assert_eq!(first.as_ref().map(Lease::index), Some(1));
        assert!(
            pool.acquire(&[0], &only_one, Duration::ZERO, false)
                .await
                .is_none()
        );
        let extra = pool
            .acquire(&[0], &only_one, Duration::ZERO, true)
            .await
            .expect("overflow");
        assert!(extra.overflow());
        assert_eq!(pool.in_flight(), vec![0, 2]);
        drop((first, extra));
        assert_eq!(pool.in_flight(), vec![0, 0]);
    }
}
