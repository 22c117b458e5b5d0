//! Readiness, computed from the registry snapshot, the gateway's [`Status`] and the
//! store's health: never from a message round trip, so probes answer fast however busy the
//! actors are.
//!
//! Ready means: the tree has started once, the store can write, no part reports a problem,
//! no actor has failed for good, and no supervisor is waiting to restart after giving up
//! (its restart intensity was exceeded). Workers restarting within their backoff do not make
//! the gateway unready.

use std::sync::Arc;

use pincer_actors::{ActorState, ChildKind, Registry, Restart, Snapshot};
use pincer_core::paths::{self, ROOT};
use pincer_store::Store;
use serde_json::{Value, json};

use crate::status::Status;

/// Readiness, with the reasons when not ready.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Ready to take traffic.
    pub ready: bool,
    /// `(path, reason)` of each failing part.
    pub failing: Vec<(String, String)>,
}

/// What readiness is computed from. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The tree registry.
    pub registry: Registry,
    /// Started, draining, problems.
    pub status: Arc<Status>,
    /// The store, whose writability counts.
    pub store: Store,
}

impl Readiness {
    /// `[{"path", "reason"}, ...]`.
    pub fn failing_json(&self) -> Value {
        self.failing
            .iter()
            .map(|(path, reason)| json!({"path": path, "reason": reason}))
            .collect()
    }
}

impl Probe {
    /// Readiness now.
    pub fn readiness(&self) -> Readiness {
        self.readiness_of(&self.registry.snapshot())
    }

    /// Readiness given a snapshot (so a caller that shows the tree too reads it once).
    pub fn readiness_of(&self, snapshot: &Snapshot) -> Readiness {
        let mut failing = Vec::new();
        if self.status.is_draining() {
            failing.push((ROOT.to_string(), "shutting down".to_string()));
        } else if !self.status.is_started() {
            failing.push((ROOT.to_string(), "starting".to_string()));
        }
        if let Some(reason) = self.store.health().reason() {
            failing.push((paths::top("store"), reason));
        }
        failing.extend(self.status.problems());
        for record in &snapshot.actors {
            if record.restart == Some(Restart::Temporary) {
                continue; // turns come and go; a crashed one is retried by its session
            }
            let error = || record.last_error.clone().unwrap_or_default();
            let reason = match &record.state {
                ActorState::Failed => Some(format!("failed: {}", error())),
                ActorState::Restarting { next_delay_ms, .. }
                    if record.kind == ChildKind::Supervisor
                        && error().contains("restart intensity exceeded") =>
                {
                    Some(format!(
                        "gave up, restarting in {next_delay_ms} ms: {}",
                        error()
                    ))
                }
                _ => None,
            };
            if let Some(reason) = reason {
                failing.push((record.path.clone(), reason));
            }
        }
        Readiness {
            ready: failing.is_empty(),
            failing,
        }
    }
}
