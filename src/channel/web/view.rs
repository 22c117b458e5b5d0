//! The supervision tree as the web chat shows it: one frame, built once per change and
//! shared by every socket.
//!
//! Each account's sessions and each agent's turns are counted by state, never listed: the
//! frame stays a few kB with 100,000 sessions, and no page sees another user's session
//! key. A page asks for the
//! list of its own sessions ([`own_sessions`]). The frame is rebuilt after a change of the
//! tree (at most every [`PUSH_INTERVAL`]) and every [`READINESS_REFRESH`] for what changes
//! without the tree (readiness: the store, keys refused), and published only when it
//! differs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_actors::{Folded, Registry, Scope, Tally, TreeNode};
use pincer_core::{paths, session_key};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::owner::Owner;
use crate::readiness::{Probe, counted};

/// A new frame after a change of the tree at most this often: a chaos run changes the
/// tree thousands of times a second, and a person reads a few frames a second at most.
pub(super) const PUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Readiness changes without the tree changing (the gateway started, the store, keys
/// refused): looked at this often, from the last view of the tree.
const READINESS_REFRESH: Duration = Duration::from_millis(250);

/// The view of the tree is taken again this often even when the tree did not change, for
/// the restarts within each supervisor's window, which age.
const REFOLD: Duration = Duration::from_secs(5);

/// Sessions a page may ask for at once.
pub(super) const MAX_PAGE: usize = 100;

/// The latest tree frame, as sent.
pub(super) type Frame = Arc<str>;

/// Builds the first frame and keeps it current in a task of `scope`.
pub(super) fn start(probe: Probe, scope: &Scope) -> watch::Receiver<Frame> {
    let mut view = probe.registry.folded(folded);
    let (tx, rx) = watch::channel(frame(&probe, &view));
    scope.spawn(async move {
        let mut changes = probe.registry.changes();
        let mut tick = tokio::time::interval(READINESS_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut taken = Instant::now();
        loop {
            let changed = tokio::select! {
                changed = changes.changed() => match changed {
                    Ok(()) => true,
                    Err(_) => return,
                },
                _ = tick.tick() => false,
            };
            // The periodic fold only ages restart counts for pages: with none open (the
            // link keeps the first receiver) it waits; a page that opens gets it within a
            // tick. With 10,000 live sessions it was most of an idle gateway's CPU.
            let watched = tx.receiver_count() > 1;
            if changed || (watched && taken.elapsed() >= REFOLD) {
                view = probe.registry.folded(folded);
                taken = Instant::now();
            }
            let new = frame(&probe, &view);
            tx.send_if_modified(|current| {
                let differs = *current != new;
                if differs {
                    *current = new;
                }
                differs
            });
            if changed {
                // Changes that come meanwhile make one frame.
                tokio::time::sleep(PUSH_INTERVAL).await;
            }
        }
    });
    rx
}

fn folded(path: &str) -> bool {
    counted(path).is_some()
}

/// The `tree` frame: readiness and the tree, sessions counted.
fn frame(probe: &Probe, view: &Folded) -> Frame {
    let readiness = probe.readiness_of_view(view);
    let tree: Vec<Value> = view
        .snapshot
        .tree()
        .iter()
        .map(|node| node_json(node, &view.tallies))
        .collect();
    let frame = json!({
        "type": "tree",
        "ready": readiness.ready,
        "failing": readiness.failing_json(),
        "tree": tree,
    });
    Arc::from(frame.to_string())
}

/// A node as the page reads it: its record (without its uptime, which would make every
/// frame new: the page counts from `started_at_ms`), its children, and for a folded
/// supervisor the count of its sessions or turns.
fn node_json(node: &TreeNode, tallies: &std::collections::BTreeMap<String, Tally>) -> Value {
    let mut value = serde_json::to_value(&node.record).unwrap_or(Value::Null);
    if let Some(fields) = value.as_object_mut() {
        fields.remove("uptime_ms");
        let children: Vec<Value> = node
            .children
            .iter()
            .map(|child| node_json(child, tallies))
            .collect();
        fields.insert("children".into(), Value::Array(children));
        if let Some(what) = counted(&node.record.path) {
            let tally = tallies.get(&node.record.path).cloned().unwrap_or_default();
            fields.insert(
                what.into(),
                serde_json::to_value(tally).unwrap_or(Value::Null),
            );
        }
    }
    value
}

/// The `sessions` frame: the running sessions of `owner` on web account `account`, for
/// each agent of `agents`, sorted, `limit` (at most [`MAX_PAGE`]) from `offset`.
pub(super) fn own_sessions<'a>(
    registry: &Registry,
    account: &str,
    agents: impl IntoIterator<Item = &'a String>,
    owner: &Owner,
    offset: usize,
    limit: usize,
) -> Value {
    let sessions = format!("{}/sessions/", paths::account("web", account));
    let mut items = Vec::new();
    for agent in agents {
        let key = format!("agent:{agent}:web:{account}:user:{}", owner.peer(""));
        let prefix = format!("{sessions}{}", session_key::child_id(&key));
        for record in registry.starting_with(&prefix) {
            let Some(child) = record.path.strip_prefix(&sessions) else {
                continue;
            };
            // The session itself, not its turn; ids the page makes need no escaping.
            let Some(peer) = child
                .strip_prefix("session:")
                .filter(|c| !c.contains('/'))
                .and_then(|c| c.rsplit(':').next())
            else {
                continue;
            };
            if let Some(session) = owner.session_in(peer) {
                items.push(json!({
                    "session": session,
                    "agent": agent,
                    "state": record.state.name(),
                    "started_at_ms": record.started_at_ms,
                }));
            }
        }
    }
    let total = items.len();
    let limit = limit.clamp(1, MAX_PAGE);
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    json!({"type": "sessions", "offset": offset, "total": total, "items": page})
}
