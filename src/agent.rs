//! Agents: the `agents` supervisor with one `agent:<id>` per configured agent. Each agent
//! is a dynamic supervisor of temporary `turn:<uuid>` children, one per turn (see
//! [`turn`]); the agent's settings are read from the config in force when a turn starts,
//! so an edited prompt or model applies from the next turn on.

pub mod summary;
pub mod turn;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use pincer_actors::{ChildSpec, Intensity, Strategy, SupervisorHandle, SupervisorSpec};
use pincer_config::AgentConfig;

pub use turn::{TurnCtx, TurnEvent, TurnRequest};

/// Turns one agent runs at once.
pub const MAX_TURNS: usize = 10_000;

/// Agents that can be added at run time by a config reload.
const MAX_AGENTS: usize = 1024;

/// Where each agent's turns run: its supervisor, by agent id. Filled by whoever starts the
/// agents (the tree at start, reconciliation after an edit); read by sessions.
#[derive(Debug, Clone, Default)]
pub struct Agents(Arc<RwLock<HashMap<String, SupervisorHandle>>>);

impl Agents {
    /// Agent `id`'s supervisor.
    pub fn get(&self, id: &str) -> Option<SupervisorHandle> {
        self.0.read().get(id).cloned()
    }

    /// Records agent `id`'s supervisor.
    pub fn insert(&self, id: &str, handle: SupervisorHandle) {
        self.0.write().insert(id.to_string(), handle);
    }
}

/// The `agents` supervisor's child spec with one child per agent in `ids`, its handle, and
/// each agent's handle.
pub fn agents_spec<'a>(
    ids: impl IntoIterator<Item = &'a str>,
) -> (ChildSpec, SupervisorHandle, Vec<(String, SupervisorHandle)>) {
    let mut spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::default())
        .max_children(Some(MAX_AGENTS));
    let mut agents = Vec::new();
    for id in ids {
        let (child, handle) = agent_spec(id);
        spec = spec.child(child);
        agents.push((id.to_string(), handle));
    }
    let (spec, handle) = spec.into_child_spec("agents");
    (spec, handle, agents)
}

/// The child spec of `agent:<id>` and the handle of its supervisor.
pub fn agent_spec(id: &str) -> (ChildSpec, SupervisorHandle) {
    // Turns are temporary: a crashed turn is not restarted here (its session retries it),
    // so turn crashes never count against the agent's restart intensity.
    SupervisorSpec::dynamic(MAX_TURNS).into_child_spec(pincer_core::paths::agent_id(id))
}

/// `provider/model` as shown to users.
pub fn model_label(agent: &AgentConfig) -> String {
    let (provider, name) = agent.model.clone().unwrap_or_default().resolved();
    format!("{provider}/{name}")
}
