//! Handles to running supervisors: calls by message, lookups without one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, ActorStatus, RpcReplyPort};

use super::{Command, SupervisorError, SupervisorMsg};
use crate::child_spec::{ChildKind, ChildSpec, Restart};
use crate::registry::{ActorState, Registry};
use crate::scope::Scope;

/// Default time a [`SupervisorHandle`] call waits for the supervisor's answer. Starting a
/// child waits for its `pre_start`, so this is generous.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a handle and every incarnation of its supervisor share: the current actor and the
/// running children by id (kept by the supervisor, read without a message).
#[derive(Debug, Default)]
pub(crate) struct Link {
    current: RwLock<Option<ActorRef<SupervisorMsg>>>,
    path: RwLock<String>,
    index: RwLock<HashMap<String, ActorCell>>,
}

/// A handle to a supervisor that stays valid across its restarts.
///
/// Lookups ([`get`](Self::get), [`len`](Self::len)) read a shared index and never wait
/// on the supervisor; the other calls are messages answered by it.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    link: Arc<Link>,
    timeout: Duration,
}

/// One child as the supervisor sees it.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    /// Its id.
    pub id: String,
    /// Its path in the registry.
    pub path: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Restart type.
    pub restart: Restart,
    /// The running instance, if any.
    pub cell: Option<ActorCell>,
}

/// The root of a tree, as returned by [`SupervisorSpec::start_root`].
///
/// [`SupervisorSpec::start_root`]: crate::SupervisorSpec::start_root
#[derive(Debug)]
pub struct RootHandle {
    path: String,
    cell: ActorCell,
    scope: Scope,
    registry: Registry,
    handle: SupervisorHandle,
}

/// How a root ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootExit {
    /// Stopped on request.
    Normal,
    /// Gave up (restart intensity) or was killed; the text says why.
    Failed(String),
}

// === impl Link ===

impl Link {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub(crate) fn attach(&self, path: &str, actor: ActorRef<SupervisorMsg>) {
        self.index.write().clear();
        *self.path.write() = path.to_string();
        *self.current.write() = Some(actor);
    }

    pub(crate) fn detach(&self, actor: &ActorRef<SupervisorMsg>) {
        let mut current = self.current.write();
        if current
            .as_ref()
            .is_some_and(|c| c.get_id() == actor.get_id())
        {
            *current = None;
            self.index.write().clear();
        }
    }

    pub(crate) fn insert(&self, id: &str, cell: ActorCell) {
        self.index.write().insert(id.to_string(), cell);
    }

    pub(crate) fn remove(&self, id: &str) {
        self.index.write().remove(id);
    }
}

// === impl SupervisorHandle ===

impl SupervisorHandle {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        Self {
            link,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// The same handle with another call timeout.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The supervisor's path (empty until it has started once).
    pub fn path(&self) -> String {
        self.link.path.read().clone()
    }

    /// Whether an instance of the supervisor is running.
    pub fn is_running(&self) -> bool {
        self.current().is_some()
    }

    /// The running child `id`, without a message to the supervisor.
    pub fn get(&self, id: &str) -> Option<ActorCell> {
        self.link
            .index
            .read()
            .get(id)
            .filter(|cell| cell.get_status() <= ActorStatus::Running)
            .cloned()
    }

    /// Whether the supervisor still holds child `id`, running or on its way out: once this
    /// is false after the child stopped, a start of the same id is not refused as taken.
    pub fn holds(&self, id: &str) -> bool {
        self.current().is_some() && self.link.index.read().contains_key(id)
    }

    /// The typed reference of the running child `id`.
    pub fn get_ref<M: ractor::Message>(&self, id: &str) -> Option<ActorRef<M>> {
        self.get(id).map(ActorRef::from)
    }

    /// Number of running children, without a message to the supervisor.
    pub fn len(&self) -> usize {
        // A supervisor that was killed leaves its index behind until it restarts.
        if self.current().is_none() {
            return 0;
        }
        self.link.index.read().len()
    }

    /// Whether no child is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds and starts a child. Fails with [`SupervisorError::Full`] at the cap and
    /// [`SupervisorError::AlreadyStarted`] when the id is taken.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        self.call(|reply| Command::StartChild(spec, reply)).await?
    }

    /// The running child `id`, or a new one from `spec()` if there is none.
    pub async fn get_or_start(
        &self,
        id: &str,
        spec: impl FnOnce() -> ChildSpec,
    ) -> Result<ActorCell, SupervisorError> {
        if let Some(cell) = self.get(id) {
            return Ok(cell);
        }
        match self.start_child(spec()).await {
            Err(SupervisorError::AlreadyStarted(id)) => {
                self.get(&id).ok_or(SupervisorError::AlreadyStarted(id))
            }
            other => other,
        }
    }

    /// Stops child `id` (per its shutdown spec) and does not restart it. A child added at
    /// run time is removed; a declared one stays until [`restart_child`](Self::restart_child).
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_string();
        self.call(|reply| Command::TerminateChild(id, reply))
            .await?
    }

    /// Starts again a declared child stopped by [`terminate_child`](Self::terminate_child)
    /// or that ended for good.
    pub async fn restart_child(&self, id: &str) -> Result<ActorCell, SupervisorError> {
        let id = id.to_string();
        self.call(|reply| Command::RestartChild(id, reply)).await?
    }

    /// The children in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.call(Command::WhichChildren).await
    }

    fn current(&self) -> Option<ActorRef<SupervisorMsg>> {
        self.link
            .current
            .read()
            .clone()
            .filter(|actor| actor.get_status() <= ActorStatus::Running)
    }

    async fn call<T: Send + 'static>(
        &self,
        command: impl FnOnce(RpcReplyPort<T>) -> Command,
    ) -> Result<T, SupervisorError> {
        let unavailable = || SupervisorError::Unavailable(self.path());
        let actor = self.current().ok_or_else(unavailable)?;
        match actor
            .call(|reply| SupervisorMsg(command(reply)), Some(self.timeout))
            .await
        {
            Ok(CallResult::Success(value)) => Ok(value),
            _ => Err(unavailable()),
        }
    }
}

// === impl RootHandle ===

impl RootHandle {
    pub(crate) fn new(
        path: String,
        cell: ActorCell,
        scope: Scope,
        registry: Registry,
        handle: SupervisorHandle,
    ) -> Self {
        Self {
            path,
            cell,
            scope,
            registry,
            handle,
        }
    }

    /// The root's path (its name).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The registry of the tree.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A handle to the root supervisor.
    pub fn supervisor(&self) -> &SupervisorHandle {
        &self.handle
    }

    /// Stops the tree gracefully: children stop in reverse start order, each within its
    /// shutdown time, and this returns once everything is gone.
    pub async fn stop(&self) -> RootExit {
        self.cell.stop(Some(super::SHUTDOWN_REASON.to_string()));
        self.wait().await
    }

    /// Kills the root abruptly (ractor kills every descendant) and waits until all of it
    /// is gone.
    pub async fn kill(&self) -> RootExit {
        self.cell.kill();
        self.wait().await
    }

    /// Waits until the root has ended, for whatever reason, and everything it owned is
    /// gone.
    pub async fn wait(&self) -> RootExit {
        if let Some(exit) = self.scope.actor_exit() {
            exit.wait().await;
        }
        self.scope.close().await;
        let record = self.registry.get(&self.path);
        match record {
            Some(r) if r.state == ActorState::Failed => {
                RootExit::Failed(r.last_error.unwrap_or_default())
            }
            Some(r) if r.state == ActorState::Running => {
                // Ended without giving up and without post_stop (which marks a graceful
                // stop): killed from outside.
                let reason = "killed".to_string();
                self.registry.stop_below(&self.path);
                self.registry.set_error(&self.path, reason.clone());
                self.registry.set_state(&self.path, ActorState::Failed);
                RootExit::Failed(reason)
            }
            _ => RootExit::Normal,
        }
    }
}
