//! State shared by every connection of one fake: knobs, script queue, records, the store of
//! responses retrievable by id, id allocation and counters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::{Counters, Knobs, Recorded, Script};

/// Everything the server tasks share; owned through an `Arc` by the handle and the server.
#[derive(Debug)]
pub(super) struct Shared {
    knobs: Mutex<Knobs>,
    /// Bumped on every knob change so open sockets re-read their age limit.
    knobs_changed: watch::Sender<u64>,
    /// Bumped by `drop_all_sockets`; every socket and stream watches it.
    kill: watch::Sender<u64>,
    scripts: Mutex<VecDeque<Script>>,
    records: Mutex<Vec<Recorded>>,
    /// Ids of responses created with `store: true`, visible from every connection.
    stored: Mutex<HashSet<String>>,
    /// Each completed response's context in tokens (its input plus output): where a
    /// continuation of it starts counting.
    contexts: Mutex<HashMap<String, u64>>,
    ids: Mutex<HashMap<&'static str, u64>>,
    pub(super) counters: CounterCells,
}

impl Shared {
    pub(super) fn new(knobs: Knobs) -> Shared {
        Shared {
            knobs: Mutex::new(knobs),
            knobs_changed: watch::Sender::new(0),
            kill: watch::Sender::new(0),
            scripts: Mutex::new(VecDeque::new()),
            records: Mutex::new(Vec::new()),
            stored: Mutex::new(HashSet::new()),
            contexts: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
            counters: CounterCells::default(),
        }
    }

    pub(super) fn knobs(&self) -> Knobs {
        self.knobs.lock().clone()
    }

    pub(super) fn update_knobs<F: FnOnce(&mut Knobs)>(&self, f: F) {
        f(&mut self.knobs.lock());
        self.knobs_changed.send_modify(|n| *n += 1);
    }

    pub(super) fn knobs_watch(&self) -> watch::Receiver<u64> {
        self.knobs_changed.subscribe()
    }

    pub(super) fn kill_watch(&self) -> watch::Receiver<u64> {
        self.kill.subscribe()
    }

    pub(super) fn kill_all(&self) {
        self.kill.send_modify(|n| *n += 1);
    }

    pub(super) fn push_script(&self, script: Script) {
        self.scripts.lock().push_back(script);
    }

    pub(super) fn scripts_pending(&self) -> usize {
        self.scripts.lock().len()
    }

    pub(super) fn clear_scripts(&self) {
        self.scripts.lock().clear();
    }

    /// Takes the first script that applies to `model`: an unrestricted one, or a
    /// `ForModel` naming it (unwrapped).
    pub(super) fn pop_script(&self, model: &str) -> Option<Script> {
        let mut queue = self.scripts.lock();
        let index = queue.iter().position(|s| match s {
            Script::ForModel(m, _) => m == model,
            _ => true,
        })?;
        let mut script = queue.remove(index)?;
        while let Script::ForModel(_, inner) = script {
            script = *inner;
        }
        Some(script)
    }

    pub(super) fn record(&self, record: Recorded) {
        self.records.lock().push(record);
    }

    pub(super) fn records(&self) -> Vec<Recorded> {
        self.records.lock().clone()
    }

    pub(super) fn take_records(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.records.lock())
    }

    pub(super) fn clear_records(&self) {
        self.records.lock().clear();
    }

    pub(super) fn store_response(&self, id: &str) {
        self.stored.lock().insert(id.to_owned());
    }

    pub(super) fn is_stored(&self, id: &str) -> bool {
        self.stored.lock().contains(id)
    }

    pub(super) fn remember_context(&self, id: &str, tokens: u64) {
        self.contexts.lock().insert(id.to_owned(), tokens);
    }

    /// The tokens of response `id`'s whole context; 0 when unknown (a warm-up).
    pub(super) fn context_of(&self, id: &str) -> u64 {
        self.contexts.lock().get(id).copied().unwrap_or(0)
    }

    /// Next id with this prefix: `resp_1`, `msg_1`, `req_7`, ...
    pub(super) fn next_id(&self, prefix: &'static str) -> String {
        format!("{prefix}_{}", self.next_number(prefix))
    }

    pub(super) fn next_number(&self, kind: &'static str) -> u64 {
        let mut ids = self.ids.lock();
        let n = ids.entry(kind).or_insert(0);
        *n += 1;
        *n
    }
}

/// The live counters behind [`Counters`].
#[derive(Debug, Default)]
pub(super) struct CounterCells {
    pub(super) sockets_opened: AtomicU64,
    pub(super) sockets_open: AtomicU64,
    pub(super) upgrades_refused: AtomicU64,
    pub(super) warmups: AtomicU64,
    pub(super) ws_requests: AtomicU64,
    pub(super) sse_requests: AtomicU64,
    pub(super) continuations: AtomicU64,
    pub(super) models_calls: AtomicU64,
    pub(super) rate_limited: AtomicU64,
    pub(super) unauthorized: AtomicU64,
    pub(super) previous_not_found: AtomicU64,
    pub(super) already_in_flight: AtomicU64,
    pub(super) context_exceeded: AtomicU64,
    pub(super) abandoned: AtomicU64,
}

impl CounterCells {
    pub(super) fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        Counters {
            sockets_opened: get(&self.sockets_opened),
            sockets_open: get(&self.sockets_open),
            upgrades_refused: get(&self.upgrades_refused),
            warmups: get(&self.warmups),
            ws_requests: get(&self.ws_requests),
            sse_requests: get(&self.sse_requests),
            continuations: get(&self.continuations),
            models_calls: get(&self.models_calls),
            rate_limited: get(&self.rate_limited),
            unauthorized: get(&self.unauthorized),
            previous_not_found: get(&self.previous_not_found),
            already_in_flight: get(&self.already_in_flight),
            context_exceeded: get(&self.context_exceeded),
            abandoned: get(&self.abandoned),
        }
    }
}

/// Adds one to a counter.
pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::SeqCst);
}

/// Removes one from a counter.
pub(super) fn drop_one(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::SeqCst);
}
