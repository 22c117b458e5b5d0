//! The tree registry: one live record per supervised actor, read without messages.
//!
//! Supervisors write a child's record at each transition (starting, running, restarting,
//! stopping, stopped, failed); readers take a [`Snapshot`] under a read lock, so a health
//! endpoint never waits on a busy actor's mailbox. Records are keyed by path
//! (`pincer/channels/channel:telegram:main/link`), and the same paths name actors for
//! [`Registry::kill`] and [`Registry::stop`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use ractor::ActorCell;
use serde::Serialize;
use tokio::sync::watch;

use crate::child_spec::{ChildKind, Restart};

/// Reason given to an actor stopped by [`Registry::stop`].
pub const STOPPED_BY_CONTROL: &str = "stopped by control";

/// The shared registry of one supervision tree. Cloning gives another handle to it.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    entries: RwLock<BTreeMap<String, Entry>>,
    changes: watch::Sender<u64>,
}

struct Entry {
    kind: ChildKind,
    restart: Option<Restart>,
    state: ActorState,
    restarts_total: u64,
    restart_times: VecDeque<Instant>,
    window: Duration,
    last_error: Option<String>,
    started: Option<(SystemTime, Instant)>,
    cell: Option<ActorCell>,
    /// Named counts its owner publishes (a supervisor's children kept outside the tree);
    /// empty (no allocation) for almost every record.
    counts: BTreeMap<&'static str, u64>,
}

/// Where an actor is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ActorState {
    /// Its start function is running.
    Starting,
    /// Started and not known to have ended.
    Running,
    /// Ended; its supervisor will start it again after `next_delay_ms`.
    Restarting {
        /// Consecutive restart number (1 for the first restart after a stable run).
        attempt: u32,
        /// Delay before the replacement starts, in milliseconds.
        next_delay_ms: u64,
    },
    /// Being stopped by its supervisor.
    Stopping,
    /// Ended normally and will not be restarted.
    Stopped,
    /// Ended abnormally and will not be restarted (a temporary child that crashed, a
    /// supervisor that gave up, a start that failed).
    Failed,
}

/// A copy of one actor's record, as of the snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct ActorRecord {
    /// Slash-separated path from the root.
    pub path: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Restart type; `None` for a root.
    pub restart: Option<Restart>,
    /// Current state.
    #[serde(flatten)]
    pub state: ActorState,
    /// Restarts since the path was first registered, across supervisor restarts.
    pub restarts_total: u64,
    /// Restarts within the supervisor's intensity window, as of the snapshot.
    pub restarts_in_window: u32,
    /// Text of the last abnormal exit, if any.
    pub last_error: Option<String>,
    /// When the current instance started, in milliseconds since the Unix epoch.
    pub started_at_ms: Option<u64>,
    /// How long the current instance has been running, in milliseconds.
    pub uptime_ms: Option<u64>,
    /// Named counts published for this path (e.g. a `sessions` supervisor's hibernated
    /// sessions, which are rows in a store, not actors); see [`Registry::set_count`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<&'static str, u64>,
}

/// All records of a tree, sorted by path, as of one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Registry version the snapshot was taken at (see [`Registry::changes`]).
    pub version: u64,
    /// The records, sorted segment by segment (a parent, then its whole subtree).
    pub actors: Vec<ActorRecord>,
}

/// A snapshot arranged as a tree, for display.
#[derive(Debug, Clone, Serialize)]
pub struct TreeNode {
    /// The actor's record.
    #[serde(flatten)]
    pub record: ActorRecord,
    /// Its children, in path order.
    pub children: Vec<TreeNode>,
}

/// The children of one supervisor, counted by state instead of listed: what a view of a
/// tree with thousands of like children (sessions, connections) shows of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Children registered.
    pub total: usize,
    /// Of those, starting.
    pub starting: usize,
    /// Running.
    pub running: usize,
    /// Waiting to be restarted.
    pub restarting: usize,
    /// Being stopped.
    pub stopping: usize,
    /// Stopped.
    pub stopped: usize,
    /// Failed.
    pub failed: usize,
    /// Restarts of the children, summed.
    pub restarts_total: u64,
}

/// A snapshot with the children of some supervisors counted instead of listed (see
/// [`Registry::folded`]).
#[derive(Debug, Clone, Serialize)]
pub struct Folded {
    /// The records listed: everything but the folded children and their subtrees.
    pub snapshot: Snapshot,
    /// Per folded supervisor path, its children by state.
    pub tallies: BTreeMap<String, Tally>,
}

/// Why a control call by path failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No actor is registered at the path.
    #[error("no actor at path `{0}`")]
    UnknownPath(String),
    /// The path is registered but no instance is running there now.
    #[error("actor at path `{path}` is not running (state: {state})")]
    NotRunning {
        /// The path.
        path: String,
        /// Its current state, in words.
        state: String,
    },
}

// === impl Registry ===

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                entries: RwLock::new(BTreeMap::new()),
                changes: watch::channel(0).0,
            }),
        }
    }

    /// All records, sorted by path. Costs one read lock and a copy of the records.
    pub fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let entries = self.inner.entries.read();
        let mut actors: Vec<ActorRecord> = entries
            .iter()
            .map(|(path, entry)| entry.record(path, now))
            .collect();
        drop(entries);
        actors.sort_by(|a, b| path_order(&a.path, &b.path));
        Snapshot {
            version: *self.inner.changes.borrow(),
            actors,
        }
    }

    /// A snapshot in which the children of every path `fold` picks are counted, not
    /// copied: their records are tallied by state under that path and their own subtrees
    /// left out. Costs one read lock and a pass over the paths, but copies only the records
    /// listed, so a view of a tree with 100,000 sessions stays small and cheap.
    pub fn folded(&self, fold: impl Fn(&str) -> bool) -> Folded {
        let now = Instant::now();
        let mut actors = Vec::new();
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        let entries = self.inner.entries.read();
        'entries: for (path, entry) in entries.iter() {
            // The nearest folded ancestor decides: a direct child is tallied, anything
            // deeper is left out.
            for (at, _) in path.match_indices('/') {
                let ancestor = &path[..at];
                if fold(ancestor) {
                    if path[at + 1..].contains('/') {
                        continue 'entries;
                    }
                    let tally = match tallies.get_mut(ancestor) {
                        Some(t) => t,
                        None => tallies.entry(ancestor.to_string()).or_default(),
                    };
                    tally.count(&entry.state, entry.restarts_total);
                    continue 'entries;
                }
            }
            actors.push(entry.record(path, now));
        }
        let version = *self.inner.changes.borrow();
        drop(entries);
        actors.sort_by(|a, b| path_order(&a.path, &b.path));
        Folded {
            snapshot: Snapshot { version, actors },
            tallies,
        }
    }

    /// The record at `path`.
    pub fn get(&self, path: &str) -> Option<ActorRecord> {
        let now = Instant::now();
        self.inner
            .entries
            .read()
            .get(path)
            .map(|entry| entry.record(path, now))
    }

    /// Records whose path begins with `prefix`, character for character (`a/s:x` finds
    /// `a/s:xy` and `a/s:x/turn`): the children of one supervisor whose ids share a
    /// beginning, found without a pass over the whole tree.
    pub fn starting_with(&self, prefix: &str) -> Vec<ActorRecord> {
        let now = Instant::now();
        let entries = self.inner.entries.read();
        entries
            .range(prefix.to_string()..)
            .take_while(|(path, _)| path.starts_with(prefix))
            .map(|(path, entry)| entry.record(path, now))
            .collect()
    }

    /// Records whose path is `prefix` or below it.
    pub fn subtree(&self, prefix: &str) -> Vec<ActorRecord> {
        let now = Instant::now();
        let entries = self.inner.entries.read();
        entries
            .range(prefix.to_string()..)
            .take_while(|(path, _)| path.starts_with(prefix))
            .filter(|(path, _)| is_at_or_below(path, prefix))
            .map(|(path, entry)| entry.record(path, now))
            .collect()
    }

    /// Number of registered actors.
    pub fn len(&self) -> usize {
        self.inner.entries.read().len()
    }

    /// Whether no actor is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver of the registry version, bumped on every change: a cheap way for a UI to
    /// know when to take a new snapshot.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Kills the actor at `path` abruptly, as a crash would: no `post_stop`, its
    /// supervisor sees an abnormal exit.
    pub fn kill(&self, path: &str) -> Result<(), ControlError> {
        self.running_cell(path)?.kill();
        Ok(())
    }

    /// Stops the actor at `path` gracefully: it finishes the message in hand, runs
    /// `post_stop`, and its supervisor sees a normal exit (so a permanent child is
    /// restarted, a transient or temporary one is not).
    pub fn stop(&self, path: &str) -> Result<(), ControlError> {
        self.running_cell(path)?
            .stop(Some(STOPPED_BY_CONTROL.to_string()));
        Ok(())
    }

    /// The ractor cell running at `path`.
    pub fn cell(&self, path: &str) -> Option<ActorCell> {
        self.running_cell(path).ok()
    }

    fn running_cell(&self, path: &str) -> Result<ActorCell, ControlError> {
        let entries = self.inner.entries.read();
        let entry = entries
            .get(path)
            .ok_or_else(|| ControlError::UnknownPath(path.to_string()))?;
        match (&entry.state, &entry.cell) {
            (ActorState::Running | ActorState::Starting, Some(cell)) => Ok(cell.clone()),
            (state, _) => Err(ControlError::NotRunning {
                path: path.to_string(),
                state: state.name().to_string(),
            }),
        }
    }

    // --- writes, by supervisors ---

    pub(crate) fn register(&self, path: &str, kind: ChildKind, restart: Option<Restart>) {
        self.write(|entries| {
            let entry = entries.entry(path.to_string()).or_insert_with(|| Entry {
                kind,
                restart,
                state: ActorState::Starting,
                restarts_total: 0,
                restart_times: VecDeque::new(),
                window: Duration::ZERO,
                last_error: None,
                started: None,
                cell: None,
                counts: BTreeMap::new(),
            });
            entry.kind = kind;
            entry.restart = restart;
            entry.state = ActorState::Starting;
            entry.cell = None;
        });
    }

    pub(crate) fn set_running(&self, path: &str, cell: ActorCell) {
        self.update(path, |entry| {
            entry.state = ActorState::Running;
            entry.started = Some((SystemTime::now(), Instant::now()));
            entry.cell = Some(cell);
        });
    }

    pub(crate) fn set_state(&self, path: &str, state: ActorState) {
        self.update(path, |entry| {
            if !matches!(state, ActorState::Running | ActorState::Starting) {
                entry.cell = None;
                entry.started = None;
            }
            entry.state = state;
        });
    }

    pub(crate) fn set_error(&self, path: &str, error: String) {
        self.update(path, |entry| entry.last_error = Some(error));
    }

    /// Counts a restart of `path`, keeping the times within `window` for the live count.
    pub(crate) fn count_restart(&self, path: &str, window: Duration) {
        self.update(path, |entry| {
            let now = Instant::now();
            entry.restarts_total += 1;
            entry.window = window;
            entry.restart_times.push_back(now);
            prune(&mut entry.restart_times, window, now);
        });
    }

    pub(crate) fn remove(&self, path: &str) {
        self.write(|entries| {
            entries.remove(path);
        });
    }

    /// Marks every record strictly below `prefix` as stopped (their instances died with
    /// `prefix`), leaving records already stopped or failed as they are.
    pub(crate) fn stop_below(&self, prefix: &str) {
        self.write_if(|entries| {
            let mut changed = false;
            for (path, entry) in entries.range_mut(format!("{prefix}/")..) {
                if !path.starts_with(prefix) || !is_at_or_below(path, prefix) {
                    break;
                }
                if !matches!(entry.state, ActorState::Failed | ActorState::Stopped) {
                    entry.state = ActorState::Stopped;
                    changed = true;
                }
                changed |= entry.cell.take().is_some();
                entry.started = None;
            }
            changed
        });
    }

    /// Removes every record strictly below `prefix`.
    pub(crate) fn remove_below(&self, prefix: &str) {
        self.write_if(|entries| {
            let below = format!("{prefix}/");
            let doomed: Vec<String> = entries
                .range(below.clone()..)
                .take_while(|(path, _)| path.starts_with(&below))
                .map(|(path, _)| path.clone())
                .collect();
            let changed = !doomed.is_empty();
            for path in doomed {
                entries.remove(&path);
            }
            changed
        });
    }

    /// Publishes a named count for `path` (shown with its record in snapshots and trees);
    /// watchers wake only when the value changes. Nothing happens for an unknown path.
    pub fn set_count(&self, path: &str, name: &'static str, value: u64) {
        self.write_if(|entries| {
            let Some(entry) = entries.get_mut(path) else {
                return false;
            };
            entry.counts.insert(name, value) != Some(value)
        });
    }

    fn update(&self, path: &str, f: impl FnOnce(&mut Entry)) {
        self.write(|entries| {
            if let Some(entry) = entries.get_mut(path) {
                f(entry);
            }
        });
    }

    fn write(&self, f: impl FnOnce(&mut BTreeMap<String, Entry>)) {
        self.write_if(|entries| {
            f(entries);
            true
        });
    }

    /// Applies `f`; bumps the version (waking watchers) only when `f` says it changed
    /// something.
    fn write_if(&self, f: impl FnOnce(&mut BTreeMap<String, Entry>) -> bool) {
        let changed = f(&mut self.inner.entries.write());
        if changed {
            self.inner.changes.send_modify(|v| *v += 1);
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("actors", &self.len())
            .finish()
    }
}

/// Joins a parent path and a child id.
pub fn child_path(parent: &str, id: &str) -> String {
    if parent.is_empty() {
        id.to_string()
    } else {
        format!("{parent}/{id}")
    }
}

/// Orders paths segment by segment, so that a parent's whole subtree comes right after it.
fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

fn is_at_or_below(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

fn prune(times: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        times.pop_front();
    }
}

// === impl Entry ===

impl Entry {
    fn record(&self, path: &str, mono: Instant) -> ActorRecord {
        let in_window = self
            .restart_times
            .iter()
            .filter(|t| mono.duration_since(**t) <= self.window)
            .count();
        ActorRecord {
            path: path.to_string(),
            kind: self.kind,
            restart: self.restart,
            state: self.state.clone(),
            restarts_total: self.restarts_total,
            restarts_in_window: u32::try_from(in_window).unwrap_or(u32::MAX),
            last_error: self.last_error.clone(),
            started_at_ms: self.started.map(|(at, _)| {
                at.duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }),
            uptime_ms: self.started.map(|(_, since)| {
                let up = mono.saturating_duration_since(since);
                u64::try_from(up.as_millis()).unwrap_or(u64::MAX)
            }),
            counts: self.counts.clone(),
        }
    }
}

// === impl Tally ===

impl Tally {
    fn count(&mut self, state: &ActorState, restarts: u64) {
        self.total += 1;
        self.restarts_total += restarts;
        match state {
            ActorState::Starting => self.starting += 1,
            ActorState::Running => self.running += 1,
            ActorState::Restarting { .. } => self.restarting += 1,
            ActorState::Stopping => self.stopping += 1,
            ActorState::Stopped => self.stopped += 1,
            ActorState::Failed => self.failed += 1,
        }
    }
}

// === impl ActorState ===

impl ActorState {
    /// The state's name, as serialized.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting { .. } => "restarting",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }
}

// === impl Snapshot ===

impl Snapshot {
    /// The record at `path`.
    pub fn get(&self, path: &str) -> Option<&ActorRecord> {
        self.actors
            .binary_search_by(|r| path_order(&r.path, path))
            .ok()
            .map(|i| &self.actors[i])
    }

    /// The records arranged as a forest (normally one root). A record whose parent path
    /// is not registered becomes a root of its own.
    pub fn tree(&self) -> Vec<TreeNode> {
        fn build(records: &[ActorRecord], i: &mut usize) -> TreeNode {
            let record = records[*i].clone();
            *i += 1;
            let mut children = Vec::new();
            while *i < records.len() && is_at_or_below(&records[*i].path, &record.path) {
                children.push(build(records, i));
            }
            TreeNode { record, children }
        }
        let mut roots = Vec::new();
        let mut i = 0;
        while i < self.actors.len() {
            roots.push(build(&self.actors, &mut i));
        }
        roots
    }

    /// The snapshot as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
