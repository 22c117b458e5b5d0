//! Agents: the `agents` supervisor with one `agent:<id>` per configured agent. Each agent
//! is a dynamic supervisor of temporary `turn:<uuid>` children, one per turn (see
//! [`turn`]); the agent's settings are read from the config in force when a turn starts,
//! so an edited prompt or model applies from the next turn on.

pub mod turn;

use pincer_actors::{ChildSpec, Intensity, Strategy, SupervisorSpec};

pub use turn::{TurnEvent, TurnRequest};

use crate::gateway::Gateway;
use pincer_config::AgentConfig;

/// Turns one agent runs at once.
pub const MAX_TURNS: usize = 10_000;

/// Agents that can be added at run time by a config reload.
const MAX_AGENTS: usize = 1024;

/// The `agents` supervisor's child spec, with one child per agent in `gw`'s config.
pub fn agents_spec(gw: &Gateway) -> ChildSpec {
    let mut spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::default())
        .max_children(Some(MAX_AGENTS));
    for id in gw.config().agents.keys() {
        spec = spec.child(agent_spec(gw, id));
    }
    let (spec, handle) = spec.into_child_spec("agents");
    gw.set_supervisor("agents", handle);
    spec
}

/// The child spec of `agent:<id>`, registering its supervisor in `gw`.
pub fn agent_spec(gw: &Gateway, id: &str) -> ChildSpec {
    // Turns are temporary: a crashed turn is not restarted here (its session retries it),
    // so turn crashes never count against the agent's restart intensity.
    let (spec, handle) = SupervisorSpec::dynamic(MAX_TURNS).into_child_spec(format!("agent:{id}"));
    gw.set_agent(id, handle);
    spec
}

/// `provider/model` as shown to users.
pub fn model_label(agent: &AgentConfig) -> String {
    let (provider, name) = agent.model.clone().unwrap_or_default().resolved();
    format!("{provider}/{name}")
}
