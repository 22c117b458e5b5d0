//! `health`: serves the gateway port (every route of [`crate::http`], probes first) and
//! computes readiness from the registry snapshot, never from a message round trip, so
//! probes answer fast however busy the actors are.
//!
//! Ready means: the tree has started once, the store can write, no actor has failed for
//! good, and no supervisor is waiting to restart after giving up (its restart intensity
//! was exceeded). Workers restarting within their backoff do not make the gateway unready.

use pincer_actors::{ActorState, ChildKind, ChildSpec, Restart, Scope, Snapshot};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};

use crate::gateway::{Gateway, ROOT};

/// Readiness, with the reasons when not ready.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Ready to take traffic.
    pub ready: bool,
    /// `(path, reason)` of each failing part.
    pub failing: Vec<(String, String)>,
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

/// Readiness now.
pub fn readiness(gw: &Gateway) -> Readiness {
    readiness_of(gw, &gw.registry().snapshot())
}

/// Readiness given a snapshot (so a caller that shows the tree too reads it once).
pub fn readiness_of(gw: &Gateway, snapshot: &Snapshot) -> Readiness {
    let mut failing = Vec::new();
    if gw.is_draining() {
        failing.push((ROOT.to_string(), "shutting down".to_string()));
    } else if !gw.is_started() {
        failing.push((ROOT.to_string(), "starting".to_string()));
    }
    if let Some(reason) = gw.store().health().reason() {
        failing.push((pincer_core::paths::top("store"), reason));
    }
    failing.extend(gw.problems());
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

/// The health actor: owns the HTTP server task.
#[derive(Debug, Clone, Copy)]
pub struct Health;

/// The child spec of `health`.
pub fn spec(gw: &Gateway) -> ChildSpec {
    crate::gateway::child(gw, "health", Health)
}

impl Actor for Health {
    type Msg = ();
    type State = ();
    type Arguments = (Gateway, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        (gw, scope): (Gateway, Scope),
    ) -> Result<(), ActorProcessingErr> {
        let std_listener = gw.listener()?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let routes = crate::http::routes(gw);
        scope.spawn(async move {
            warp::serve(routes).incoming(listener).run().await;
        });
        Ok(())
    }
}
