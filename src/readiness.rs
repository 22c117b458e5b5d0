//! Readiness, computed from the registry snapshot, the gateway's [`Status`] and the
//! store's health: never from a message round trip, so probes answer fast however busy the
//! actors are.
//!
//! Ready means: the tree has started once, the store can write, no part reports a problem,
//! every agent can answer (some model of its chain has a configured provider with a key the
//! upstream has not refused), no actor has failed for good, and no supervisor is waiting to
//! restart after giving up (its restart intensity was exceeded). Workers restarting within
//! their backoff do not make the gateway unready.

use std::sync::Arc;

use pincer_actors::{ActorState, ChildKind, Folded, Registry, Restart, Snapshot};
use pincer_config::live::View;
use pincer_config::{AgentConfig, Config};
use pincer_core::paths::{self, ROOT};
use pincer_providers::keys::Unusable;
use pincer_store::Store;
use serde_json::{Value, json};

use crate::agent::turn::models;
use crate::provider::{self, Pools};
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
    /// The config in force (each agent's chain of models).
    pub config: View,
    /// The providers' pools (whether their keys were refused).
    pub pools: Pools,
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

/// What the children of `path` are, if cheap views count them instead of listing them: an
/// account's sessions, an agent's turns (as many as chats in flight).
pub fn counted(path: &str) -> Option<&'static str> {
    match paths::kind(path) {
        "sessions" => Some("sessions"),
        "agent" => Some("turns"),
        _ => None,
    }
}

impl Probe {
    /// Readiness now, from a view with sessions and turns counted: a probe every few
    /// seconds (and the service manager's status line every second) does not copy the
    /// record of every live session.
    pub fn readiness(&self) -> Readiness {
        self.readiness_of_view(&self.registry.folded(|p| counted(p).is_some()))
    }

    /// Readiness given a view with sessions and turns counted ([`counted`]).
    pub fn readiness_of_view(&self, view: &Folded) -> Readiness {
        let mut readiness = self.readiness_of(&view.snapshot);
        for (path, tally) in &view.tallies {
            // Turns are retried by their sessions; a failed session counts.
            if tally.failed > 0 && counted(path) == Some("sessions") {
                readiness
                    .failing
                    .push((path.clone(), format!("{} sessions failed", tally.failed)));
            }
        }
        readiness.ready = readiness.failing.is_empty();
        readiness
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
        let config = self.config.current();
        for (id, agent) in &config.agents {
            if let Some(why) = cannot_answer(&config, &self.pools, agent) {
                failing.push((
                    paths::agent(id),
                    format!("agent `{id}` cannot answer: {why}"),
                ));
            }
        }
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

/// Why no model of `agent`'s chain can answer, if none can; the reasons of each model
/// otherwise are joined.
fn cannot_answer(config: &Config, pools: &Pools, agent: &AgentConfig) -> Option<String> {
    let own_key = agent.model.as_ref().is_some_and(|m| m.api_key.is_some());
    let mut reasons = Vec::new();
    for (n, (name, model)) in models(agent).into_iter().enumerate() {
        let why = if name == provider::echo::NAME || (n == 0 && own_key) {
            None
        } else if !provider::is_configured(config, &name) {
            Some(format!(
                "provider `{name}` is not configured (add [providers.{name}])"
            ))
        } else {
            match pools.get(&name).map(|p| p.keys.lock().usable()) {
                // Added to the config after start: a restart brings it up.
                None => Some(format!("provider `{name}` starts with the next restart")),
                Some(Ok(())) => None,
                // Named but unresolved: the provider's own entry says why.
                Some(Err(Unusable::NoKeys)) if provider::names_a_key(config, &name) => Some(
                    format!("the API key of provider `{name}` is unresolved (see provider:{name})"),
                ),
                Some(Err(Unusable::NoKeys)) => Some(format!(
                    "provider `{name}` has no API key (set providers.{name}.apiKey)"
                )),
                Some(Err(Unusable::Rejected(reason))) => {
                    Some(format!("the API key of `{name}` was rejected ({reason})"))
                }
            }
        };
        match why {
            None => return None,
            Some(why) => reasons.push(format!("{name}/{model}: {why}")),
        }
    }
    Some(reasons.join("; "))
}
