//! Bringing the running tree in line with the config in force: agents and channel
//! accounts added by an edit start, removed ones stop, accounts whose settings changed
//! stop and start again (the old link fully ends first: one poller per token), and
//! whatever should run but does not (lost with a restart of its supervisor) starts.
//!
//! The config watcher calls this after each edit it puts in force and on each look at the
//! file; it knows nothing of agents or accounts itself.

use std::sync::Arc;

use futures::future::BoxFuture;
use pincer_actors::{ActorState, Registry, SupervisorError, SupervisorHandle};
use pincer_channels::Links;
use pincer_config::Config;
use pincer_core::paths;

use crate::agent::{self, Agents};
use crate::channel::{self, Accounts, ChannelsCtx};
use crate::config_watcher::{Applied, Reconcile};
use crate::status::Status;

/// The reconciler of one running tree.
#[derive(Debug)]
pub struct Reconciler {
    /// The registry (to tell a child that is restarting from one that is gone).
    pub registry: Registry,
    /// The `agents` supervisor.
    pub agents: SupervisorHandle,
    /// The `channels` supervisor.
    pub channels: SupervisorHandle,
    /// Where agents' turn supervisors are recorded.
    pub agent_dir: Agents,
    /// Where running accounts are recorded.
    pub account_dir: Accounts,
    /// What new accounts are built from.
    pub channel_ctx: ChannelsCtx,
    /// What outlives links (a changed account's Discord session is forgotten).
    pub links: Arc<Links>,
    /// Readiness problems (a changed account's are cleared).
    pub status: Arc<Status>,
}

impl Reconcile for Reconciler {
    fn apply<'a>(&'a self, old: Option<&'a Config>, new: &'a Config) -> BoxFuture<'a, Applied> {
        Box::pin(async move {
            let mut applied = Applied::default();
            if let Some(old) = old {
                applied.agents_removed = old
                    .agents
                    .keys()
                    .filter(|id| !new.agents.contains_key(*id))
                    .cloned()
                    .collect();
                for id in &applied.agents_removed {
                    // Its handle stays known: the same id may come back with a later edit.
                    let _ = self.agents.terminate_child(&paths::agent_id(id)).await;
                }
            }
            applied.agents_added = self.agents(new).await;
            self.accounts(old, new, &mut applied).await;
            applied
        })
    }
}

impl Reconciler {
    /// Starts `agent:<id>` for every agent in `config` that has none running. Returns the
    /// ids started.
    async fn agents(&self, config: &Config) -> Vec<String> {
        if !self.agents.is_running() {
            return Vec::new();
        }
        let mut started = Vec::new();
        for id in config.agents.keys() {
            let child = paths::agent_id(id);
            if self.agents.get(&child).is_some() || self.busy(&self.agents, &child, false) {
                continue;
            }
            let (spec, handle) = agent::agent_spec(id);
            let result = match self.agents.start_child(spec).await {
                Ok(cell) => {
                    self.agent_dir.insert(id, handle);
                    Ok(cell)
                }
                // Declared at start and stopped by an edit since: start that child again,
                // under the handle it had (still recorded).
                Err(SupervisorError::AlreadyStarted(_)) => self.agents.restart_child(&child).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(_) => started.push(id.clone()),
                Err(error) => tracing::warn!(agent = %id, %error, "Cannot start agent."),
            }
        }
        started
    }

    /// Brings the channel accounts in line with `new`: accounts removed are stopped,
    /// accounts whose settings changed since `old` are stopped and started again, and
    /// accounts with nothing running are started.
    async fn accounts(&self, old: Option<&Config>, new: &Config, applied: &mut Applied) {
        let channels = &self.channels;
        if !channels.is_running() {
            return;
        }
        let wanted = new.accounts();
        if let Some(old) = old {
            for (kind, id) in old.accounts() {
                let child = paths::account_id(kind, id);
                let gone = !wanted.contains(&(kind, id));
                if !gone && old.same_account(new, kind, id) {
                    continue;
                }
                let _ = channels.terminate_child(&child).await;
                self.status.set_problem(&paths::link(kind, id), None);
                // New settings may be a new bot: its old Discord session is not to be resumed.
                self.links.forget(id);
                if gone {
                    applied.accounts_removed.push(id.to_string());
                } else {
                    match channels.restart_child(&child).await {
                        Ok(_) => applied.accounts_restarted.push(id.to_string()),
                        Err(error) => {
                            tracing::warn!(account = %id, %error, "Cannot restart account.")
                        }
                    }
                }
            }
        }
        for (kind, id) in wanted {
            let child = paths::account_id(kind, id);
            if channels.get(&child).is_some() || self.busy(channels, &child, true) {
                continue;
            }
            let Some((spec, account)) = channel::account_spec(&self.channel_ctx, kind, id) else {
                continue;
            };
            let result = match channels.start_child(spec).await {
                Ok(cell) => {
                    self.account_dir.insert(account);
                    Ok(cell)
                }
                // Declared before and stopped since: start it again under the handles it
                // had (still recorded).
                Err(SupervisorError::AlreadyStarted(_)) => channels.restart_child(&child).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(_) => applied.accounts_added.push(id.to_string()),
                Err(error) => tracing::warn!(account = %id, %error, "Cannot start account."),
            }
        }
    }

    /// Whether `child` of `parent` is on its way up or down (restarting, starting,
    /// running; with `stopping`, also stopping): not to be started again.
    fn busy(&self, parent: &SupervisorHandle, child: &str, stopping: bool) -> bool {
        let path = format!("{}/{child}", parent.path());
        self.registry.get(&path).is_some_and(|r| match r.state {
            ActorState::Restarting { .. } | ActorState::Starting | ActorState::Running => true,
            ActorState::Stopping => stopping,
            _ => false,
        })
    }
}
