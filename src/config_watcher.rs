//! The `config` actor: watches the config file and puts each valid edit in force.
//!
//! It polls the file's size and modification time (cheap, and immune to editors that
//! replace the file instead of writing it). An edit that does not load is logged with the
//! reason and the config in force stays. A valid one is published to everyone reading
//! [`Gateway::config`]; the router and new turns use it from their next message, and
//! agents added or removed get their `agent:<id>` started or stopped. Sessions in a turn
//! are not touched. The gateway's port, bind address and store path are not reloadable:
//! a change to them is logged and waits for a restart.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use pincer_actors::{ChildSpec, Scope, SupervisorError, Timer};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::gateway::Gateway;
use pincer_config::{Config, load};

/// How often the file is looked at. Editors save in bursts; four looks a second is
/// quick enough for "within a second" and costs one `stat`.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Messages of the config actor.
#[derive(Debug)]
pub enum ConfigMsg {
    /// Look at the file now.
    Poll,
    /// Load the file now, changed or not (`POST /admin/config/reload`, SIGHUP).
    Reload(Option<RpcReplyPort<Result<ReloadOutcome, String>>>),
}

/// What a reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadOutcome {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Agents started.
    pub agents_added: Vec<String>,
    /// Agents stopped.
    pub agents_removed: Vec<String>,
    /// Channel accounts started.
    pub accounts_added: Vec<String>,
    /// Channel accounts stopped.
    pub accounts_removed: Vec<String>,
    /// Channel accounts whose settings changed, started again.
    pub accounts_restarted: Vec<String>,
    /// Changes that need a restart, and other warnings.
    pub warnings: Vec<String>,
}

/// The config actor.
#[derive(Debug, Clone, Copy)]
pub struct ConfigWatcher;

/// Its state.
#[derive(Debug)]
pub struct ConfigState {
    gw: Gateway,
    poll: Timer,
    /// Size and mtime of the file as last loaded (or rejected).
    seen: Option<(u64, SystemTime)>,
}

/// The child spec of `config`.
pub fn spec(gw: &Gateway) -> ChildSpec {
    crate::gateway::child(gw, "config", ConfigWatcher)
}

impl Actor for ConfigWatcher {
    type Msg = ConfigMsg;
    type State = ConfigState;
    type Arguments = (Gateway, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<ConfigMsg>,
        (gw, scope): (Gateway, Scope),
    ) -> Result<ConfigState, ActorProcessingErr> {
        let poll = Timer::new(&scope, myself, || ConfigMsg::Poll);
        poll.arm(POLL_INTERVAL);
        let seen = stamp(&watched_file(&gw));
        Ok(ConfigState { gw, poll, seen })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ConfigMsg>,
        msg: ConfigMsg,
        state: &mut ConfigState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConfigMsg::Poll => {
                state.poll.arm(POLL_INTERVAL);
                let now = stamp(&watched_file(&state.gw));
                if now != state.seen {
                    state.seen = now;
                    if let Err(error) = reload(&state.gw).await {
                        tracing::error!(%error, "Config edit rejected; the config in force stays.");
                    }
                }
                reconcile_agents(&state.gw, &state.gw.config()).await;
                reconcile_accounts(&state.gw, None, &state.gw.config()).await;
            }
            ConfigMsg::Reload(reply) => {
                state.seen = stamp(&watched_file(&state.gw));
                let outcome = reload(&state.gw).await;
                if let Err(error) = &outcome {
                    tracing::error!(%error, "Config reload rejected; the config in force stays.");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
        }
        Ok(())
    }
}

/// The file to watch: the one read at start, else where one would be created.
fn watched_file(gw: &Gateway) -> PathBuf {
    gw.sources()
        .file
        .clone()
        .unwrap_or_else(|| gw.home().join("pincer.toml"))
}

fn stamp(path: &PathBuf) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Loads the config again and puts it in force if it is valid.
async fn reload(gw: &Gateway) -> Result<ReloadOutcome, String> {
    let mut sources = gw.sources().clone();
    let file = watched_file(gw);
    if file.exists() {
        sources.file = Some(file);
    }
    let loaded = tokio::task::spawn_blocking(move || load(&sources))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let old = gw.config();
    let mut outcome = ReloadOutcome {
        file: loaded.file.clone(),
        warnings: loaded.warnings.clone(),
        ..ReloadOutcome::default()
    };
    outcome
        .warnings
        .extend(not_reloadable(&old, &loaded.config));
    for warning in &outcome.warnings {
        tracing::warn!(message = %warning);
    }
    gw.set_config(loaded.config);
    let new = gw.config();
    outcome.agents_removed = old
        .agents
        .keys()
        .filter(|id| !new.agents.contains_key(*id))
        .cloned()
        .collect();
    if let Some(agents) = gw.supervisor("agents") {
        for id in &outcome.agents_removed {
            // Its handle stays known: the same id may come back with a later edit.
            let _ = agents.terminate_child(&format!("agent:{id}")).await;
        }
    }
    outcome.agents_added = reconcile_agents(gw, &new).await;
    let (added, removed, restarted) = reconcile_accounts(gw, Some(&old), &new).await;
    outcome.accounts_added = added;
    outcome.accounts_removed = removed;
    outcome.accounts_restarted = restarted;
    tracing::info!(
        file = ?outcome.file,
        added = ?outcome.agents_added,
        removed = ?outcome.agents_removed,
        accounts_added = ?outcome.accounts_added,
        accounts_removed = ?outcome.accounts_removed,
        accounts_restarted = ?outcome.accounts_restarted,
        "Config reloaded."
    );
    Ok(outcome)
}

/// Starts `agent:<id>` for every agent in `config` that has none running (added by an
/// edit, or lost with a restart of the `agents` supervisor). Returns the ids started.
async fn reconcile_agents(gw: &Gateway, config: &Config) -> Vec<String> {
    let Some(agents) = gw.supervisor("agents") else {
        return Vec::new();
    };
    if !agents.is_running() {
        return Vec::new();
    }
    let mut started = Vec::new();
    for id in config.agents.keys() {
        let child = format!("agent:{id}");
        if agents.get(&child).is_some() {
            continue;
        }
        let path = format!("{}/{child}", agents.path());
        let restarting = gw.registry().get(&path).is_some_and(|r| {
            matches!(
                r.state,
                pincer_actors::ActorState::Restarting { .. }
                    | pincer_actors::ActorState::Starting
                    | pincer_actors::ActorState::Running
            )
        });
        if restarting {
            continue;
        }
        let previous = gw.agent(id);
        let result = match agents.start_child(crate::agent::agent_spec(gw, id)).await {
            // Declared at start and stopped by an edit since: start that child again,
            // under the handle it had.
            Err(SupervisorError::AlreadyStarted(_)) => {
                if let Some(previous) = previous {
                    gw.set_agent(id, previous);
                }
                agents.restart_child(&child).await
            }
            other => other,
        };
        match result {
            Ok(_) => started.push(id.clone()),
            Err(error) => tracing::warn!(agent = %id, %error, "Cannot start agent."),
        }
    }
    started
}

/// Brings the channel accounts in line with `new`: accounts removed are stopped, accounts
/// whose settings changed since `old` are stopped and started again (the old link fully
/// ends first: one poller per token), and accounts with nothing running are started.
/// Returns (added, removed, restarted).
async fn reconcile_accounts(
    gw: &Gateway,
    old: Option<&Config>,
    new: &Config,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut added, mut removed, mut restarted) = (Vec::new(), Vec::new(), Vec::new());
    let Some(channels) = gw.supervisor("channels") else {
        return (added, removed, restarted);
    };
    if !channels.is_running() {
        return (added, removed, restarted);
    }
    let wanted = new.accounts();
    if let Some(old) = old {
        for (kind, id) in old.accounts() {
            let child = format!("channel:{kind}:{id}");
            let gone = !wanted.contains(&(kind, id));
            if !gone && old.same_account(new, kind, id) {
                continue;
            }
            let _ = channels.terminate_child(&child).await;
            gw.set_problem(&pincer_core::paths::link(kind, id), None);
            // New settings may be a new bot: its old Discord session is not to be resumed.
            gw.links().forget(id);
            if gone {
                removed.push(id.to_string());
            } else {
                match channels.restart_child(&child).await {
                    Ok(_) => restarted.push(id.to_string()),
                    Err(error) => tracing::warn!(account = %id, %error, "Cannot restart account."),
                }
            }
        }
    }
    for (kind, id) in wanted {
        let child = format!("channel:{kind}:{id}");
        if channels.get(&child).is_some() {
            continue;
        }
        let path = format!("{}/{child}", channels.path());
        let busy = gw.registry().get(&path).is_some_and(|r| {
            matches!(
                r.state,
                pincer_actors::ActorState::Restarting { .. }
                    | pincer_actors::ActorState::Starting
                    | pincer_actors::ActorState::Running
                    | pincer_actors::ActorState::Stopping
            )
        });
        if busy {
            continue;
        }
        let previous = gw.account(id);
        let Some(spec) = crate::channel::account_spec(gw, kind, id) else {
            continue;
        };
        let result = match channels.start_child(spec).await {
            // Declared before and stopped since: start it again under the handles it had.
            Err(SupervisorError::AlreadyStarted(_)) => {
                if let Some(previous) = previous {
                    gw.set_account(previous);
                }
                channels.restart_child(&child).await
            }
            other => other,
        };
        match result {
            Ok(_) => added.push(id.to_string()),
            Err(error) => tracing::warn!(account = %id, %error, "Cannot start account."),
        }
    }
    (added, removed, restarted)
}

fn not_reloadable(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.gateway.port != new.gateway.port {
        out.push(format!(
            "gateway.port changed from {} to {}: it takes effect after a restart",
            old.gateway.port, new.gateway.port
        ));
    }
    if old.gateway.bind != new.gateway.bind {
        out.push(format!(
            "gateway.bind changed from {} to {}: it takes effect after a restart",
            old.gateway.bind, new.gateway.bind
        ));
    }
    if old.store.path != new.store.path {
        out.push("store.path changed: it takes effect after a restart".to_string());
    }
    out
}
