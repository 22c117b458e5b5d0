//! State shared between the test (through `VaultFake`) and the server thread: the knobs,
//! every secret's versions, the request log and the counters.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use parking_lot::{Mutex, MutexGuard};
use serde_json::{Map, Value};

use super::wire::request_id;
use super::{Counters, Knobs, Recorded};

/// Which counter a request feeds, besides `requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `GET` of `{mount}/data/{path}`.
    Read,
    /// `POST`/`PUT` of `{mount}/data/{path}`.
    Write,
    /// Anything else.
    Other,
}

/// One version of a secret.
#[derive(Debug, Clone)]
pub(super) struct Version {
    pub(super) data: Map<String, Value>,
    pub(super) created: SystemTime,
}

/// A secret: its versions still kept, by number, and the latest number written.
#[derive(Debug, Default)]
struct Secret {
    current: u64,
    versions: BTreeMap<u64, Version>,
}

/// What a write produced.
#[derive(Debug, Clone, Copy)]
pub(super) struct Written {
    pub(super) version: u64,
    pub(super) created: SystemTime,
}

/// Everything mutable, behind one lock: requests are few and short.
#[derive(Debug)]
pub(super) struct State {
    pub(super) knobs: Knobs,
    /// By (mount, path inside the mount).
    secrets: HashMap<(String, String), Secret>,
    pub(super) counters: Counters,
    pub(super) records: Vec<Recorded>,
    /// When the fake started: the tokens' creation time.
    pub(super) started: SystemTime,
    next_request: u64,
}

/// The lock around [`State`].
#[derive(Debug)]
pub(super) struct Shared(Mutex<State>);

// === impl State ===

impl State {
    /// Splits `<mount>/<rest>` on the longest configured mount; `rest` may be empty.
    pub(super) fn mount_of<'p>(&self, path: &'p str) -> Option<(String, &'p str)> {
        let path = path.trim_start_matches('/');
        self.knobs
            .mounts
            .iter()
            .map(|m| m.trim_matches('/'))
            .filter(|m| !m.is_empty())
            .filter_map(|m| {
                if path == m {
                    Some((m, ""))
                } else {
                    path.strip_prefix(m)?
                        .strip_prefix('/')
                        .map(|rest| (m, rest))
                }
            })
            .max_by_key(|(m, _)| m.len())
            .map(|(m, rest)| (m.to_owned(), rest))
    }

    /// `<mount>/<path>` as `vault kv` names a secret: the mount and a non-empty path that
    /// does not end with `/` (KV v2's own rule).
    pub(super) fn split_mount(&self, path: &str) -> Option<(String, String)> {
        let (mount, key) = self.mount_of(path)?;
        (!key.is_empty() && !key.ends_with('/')).then(|| (mount, key.to_owned()))
    }

    /// [`State::split_mount`], for the test-side API.
    pub(super) fn split_mount_or_panic(&self, path: &str) -> (String, String) {
        self.split_mount(path).unwrap_or_else(|| {
            panic!(
                "vault fake: {path:?} names no secret under the mounts {:?}",
                self.knobs.mounts
            )
        })
    }

    fn secret(&self, mount: &str, key: &str) -> Option<&Secret> {
        self.secrets.get(&(mount.to_owned(), key.to_owned()))
    }

    /// The latest version number, when the secret exists.
    pub(super) fn current_version(&self, mount: &str, key: &str) -> Option<u64> {
        self.secret(mount, key).map(|s| s.current)
    }

    /// The latest version.
    pub(super) fn latest(&self, mount: &str, key: &str) -> Option<&Version> {
        let secret = self.secret(mount, key)?;
        secret.versions.get(&secret.current)
    }

    /// Version `number`, if it was written and is still kept.
    pub(super) fn version(&self, mount: &str, key: &str, number: u64) -> Option<&Version> {
        self.secret(mount, key)?.versions.get(&number)
    }

    /// Writes the next version and forgets those beyond `max_versions`.
    pub(super) fn write(&mut self, mount: &str, key: &str, data: Map<String, Value>) -> Written {
        let keep = u64::from(self.knobs.max_versions.get());
        let secret = self
            .secrets
            .entry((mount.to_owned(), key.to_owned()))
            .or_default();
        secret.current += 1;
        let created = SystemTime::now();
        secret
            .versions
            .insert(secret.current, Version { data, created });
        let oldest_kept = secret.current.saturating_sub(keep) + 1;
        secret.versions.retain(|n, _| *n >= oldest_kept);
        Written {
            version: secret.current,
            created,
        }
    }

    /// A fresh `request_id`.
    pub(super) fn next_request_id(&mut self) -> String {
        self.next_request += 1;
        request_id(self.next_request)
    }
}

// === impl Shared ===

impl Shared {
    pub(super) fn new(knobs: Knobs) -> Shared {
        Shared(Mutex::new(State {
            knobs,
            secrets: HashMap::new(),
            counters: Counters::default(),
            records: Vec::new(),
            started: SystemTime::now(),
            next_request: 0,
        }))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock()
    }

    /// Logs a request as it arrives (no status yet) and counts it; returns its index.
    pub(super) fn record(&self, record: Recorded, kind: Kind) -> usize {
        let mut state = self.lock();
        state.counters.requests += 1;
        match kind {
            Kind::Read => state.counters.reads += 1,
            Kind::Write => state.counters.writes += 1,
            Kind::Other => {}
        }
        state.records.push(record);
        state.records.len() - 1
    }

    /// Sets the status of record `index` and counts it; `None`: dropped unanswered.
    pub(super) fn finish(&self, index: usize, status: Option<u16>) {
        let mut state = self.lock();
        if let Some(record) = state.records.get_mut(index) {
            record.status = status;
        }
        let counters = &mut state.counters;
        match status {
            None => counters.dropped += 1,
            Some(403) => counters.denied += 1,
            Some(404) => counters.not_found += 1,
            Some(503) => counters.sealed += 1,
            Some(_) => {}
        }
    }
}
