//! Where resolved secrets live between the watcher and their users: the current
//! [`Snapshot`] (swapped whole, never edited in place), its generation for those who wait
//! for rotations, and the access trail waiting to be written.
//!
//! [`Secrets`] belongs to the running gateway, not to the watcher actor: a killed watcher
//! loses nothing, and its successor starts from the last good snapshot.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use pincer_store::SecretAccess;

use super::refs::Key;
use pincer_config::Config;

/// A resolved value with the back end's version of it.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds a secret value
pub struct Held {
    /// The secret.
    pub value: Arc<str>,
    /// The back end's version.
    pub version: String,
    /// When this version was first seen.
    pub since: SystemTime,
}

/// Every resolved ref at one moment.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// Counts swaps that changed a value.
    pub generation: u64,
    /// The value of each key: the current one, or the last good one while its back end
    /// fails.
    pub values: BTreeMap<Key, Held>,
    /// Why a key's last resolution failed (no value in it).
    pub failures: BTreeMap<Key, String>,
    /// Back ends failing as a whole (alias → reason): their last good values stay.
    pub degraded: BTreeMap<String, String>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("failures", &self.failures)
            .field("degraded", &self.degraded)
            .finish()
    }
}

/// The last (outcome, version) noted for one actor and key.
type Noted = (String, String);

/// Rows kept while the store cannot take them; older ones are dropped past this.
const MAX_PENDING: usize = 10_000;

/// The gateway's resolved secrets; see the [module docs](self).
#[derive(Debug)]
pub struct Secrets {
    snapshot: RwLock<Arc<Snapshot>>,
    changes: watch::Sender<u64>,
    /// The last outcome recorded per (actor, key): a row is written when it changes, so
    /// a key read on every call leaves one row per version, not one per call.
    seen: Mutex<HashMap<String, HashMap<Key, Noted>>>,
    pending: Mutex<Vec<SecretAccess>>,
    /// Owners whose readiness the watcher marked, to clear them when fixed.
    marked: Mutex<BTreeSet<String>>,
    /// Each owner's keys for one config (recomputed when the config is replaced).
    scopes: RwLock<Option<(Arc<Config>, Arc<Scopes>)>>,
}

/// What each owner may read.
pub type Scopes = BTreeMap<String, BTreeSet<Key>>;

impl Default for Secrets {
    fn default() -> Self {
        Self {
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            changes: watch::channel(0).0,
            seen: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            marked: Mutex::new(BTreeSet::new()),
            scopes: RwLock::new(None),
        }
    }
}

impl Secrets {
    /// The snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().clone()
    }

    /// Swaps in `next`; subscribers hear of it when a value changed.
    pub fn publish(&self, mut next: Snapshot) -> bool {
        let mut current = self.snapshot.write();
        let changed = current.values.len() != next.values.len()
            || current
                .values
                .iter()
                .zip(&next.values)
                .any(|((ka, a), (kb, b))| ka != kb || a.value != b.value);
        next.generation = current.generation + u64::from(changed);
        *current = Arc::new(next);
        drop(current);
        if changed {
            // Not `send_replace(borrow() + 1)`: the read guard would be held while the
            // write lock is taken.
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        changed
    }

    /// The scopes of `config`'s owners.
    pub fn scopes(&self, config: &Arc<Config>) -> Arc<Scopes> {
        {
            let cached = self.scopes.read();
            if let Some((seen, scopes)) = &*cached
                && Arc::ptr_eq(seen, config)
            {
                return scopes.clone();
            }
        }
        let scopes = Arc::new(super::refs::scopes(config));
        *self.scopes.write() = Some((config.clone(), scopes.clone()));
        scopes
    }

    /// A receiver that sees every swap that changed a value.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Notes that `actor` asked for `key` with `outcome` (and got `version`): a row when
    /// either differs from the last one noted for that actor and key.
    pub fn record(&self, actor: &str, key: &Key, outcome: &str, version: &str) {
        // Called on every provider call: the common case (nothing new) allocates nothing.
        let mut seen = self.seen.lock();
        let last = seen.get(actor).and_then(|keys| keys.get(key));
        if last.is_some_and(|(o, v)| o == outcome && v == version) {
            return;
        }
        seen.entry(actor.to_string())
            .or_default()
            .insert(key.clone(), (outcome.to_string(), version.to_string()));
        drop(seen);
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
        }
        pending.push(SecretAccess {
            at,
            actor: actor.to_string(),
            reference: key.to_string(),
            outcome: outcome.to_string(),
        });
    }

    /// Replaces the owners marked not ready by the watcher; returns the previous ones (those
    /// not marked again are to be cleared).
    pub fn swap_marked(&self, now: BTreeSet<String>) -> BTreeSet<String> {
        std::mem::replace(&mut *self.marked.lock(), now)
    }

    /// Takes the rows not yet written.
    pub fn take_pending(&self) -> Vec<SecretAccess> {
        std::mem::take(&mut *self.pending.lock())
    }

    /// Puts back rows the store could not take (they go first next time).
    pub fn requeue(&self, mut rows: Vec<SecretAccess>) {
        let mut pending = self.pending.lock();
        rows.append(&mut pending);
        rows.truncate(MAX_PENDING);
        *pending = rows;
    }
}
