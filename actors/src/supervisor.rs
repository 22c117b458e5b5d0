//! OTP supervisors on ractor.
//!
//! A supervisor starts its children in declaration order (each start finishes before the
//! next begins), watches them through ractor's links, restarts them by [`Strategy`] and
//! [`Restart`] type, optionally after a [`Backoff`], and stops them in reverse order.
//! Every way a child can end counts the same: an error returned from a handler, a panic,
//! a kill, a graceful stop, and a failing `pre_start` of a restarted instance (a restart
//! attempt that failed, retried and counted, never a silent stop). One restart more than
//! its [`Intensity`] allows and the supervisor stops all children and fails, so its own
//! supervisor handles it.
//!
//! Before a replacement starts, the old instance's [`Scope`] is closed: its task has ended
//! (after a graceful stop, `post_stop` ran), its state is dropped, and every task, timer
//! and descendant it owned is gone.
//!
//! [`Restart`]: crate::Restart
//! [`Backoff`]: crate::Backoff

mod children;
mod handle;
mod intensity;
mod spec;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use crate::child_spec::{ChildKind, ChildSpec, Restart, Shutdown, StartCtx, validate_id};
use crate::registry::{ActorState, Registry, child_path};
use crate::scope::Scope;
use children::{Child, Children, Instance};
pub(crate) use handle::Link;
pub use handle::{ChildInfo, DEFAULT_CALL_TIMEOUT, RootExit, RootHandle, SupervisorHandle};
pub use intensity::Intensity;
use intensity::RestartLog;
pub use spec::{Strategy, SupervisorSpec};

/// Reason given to a child that its supervisor stops.
pub const SHUTDOWN_REASON: &str = "shutdown";

// === messages ===

/// A supervisor's message. Opaque: talk to a supervisor through [`SupervisorHandle`].
#[derive(Debug)]
pub struct SupervisorMsg(pub(crate) Command);

#[derive(Debug)]
pub(crate) enum Command {
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    TerminateChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    RestartChild(String, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    /// A delayed restart of these children (in start order) is due.
    RestartDue(Vec<u64>),
}

/// Why a supervisor operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// The supervisor has as many children as its cap allows.
    #[error("supervisor `{path}` is full ({max} children)")]
    Full {
        /// The supervisor's path.
        path: String,
        /// Its cap.
        max: usize,
    },
    /// A child with this id exists already.
    #[error("child `{0}` already exists")]
    AlreadyStarted(String),
    /// No child with this id.
    #[error("no child `{0}`")]
    UnknownChild(String),
    /// The spec is not valid (empty or duplicate id, `/` in an id).
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The child's start function failed.
    #[error("child `{id}` failed to start: {error}")]
    StartFailed {
        /// The child's id.
        id: String,
        /// What went wrong.
        error: String,
    },
    /// The supervisor is not running (restarting, stopped) or did not answer in time.
    #[error("supervisor `{0}` is unavailable")]
    Unavailable(String),
    /// The restart intensity was exceeded; the supervisor stopped its children and failed.
    #[error("restart intensity exceeded ({max} restarts in {window:?}): {last}")]
    IntensityExceeded {
        /// Allowed restarts.
        max: u32,
        /// The window.
        window: Duration,
        /// The failure that went over the limit.
        last: String,
    },
}

// === state ===

/// The supervisor actor. Start one through [`SupervisorSpec::start_root`] or
/// [`SupervisorSpec::into_child_spec`].
#[derive(Debug)]
pub(crate) struct Supervisor;

#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) path: String,
    pub(crate) registry: Registry,
    pub(crate) scope: Scope,
    pub(crate) spec: SupervisorSpec,
    pub(crate) link: Arc<Link>,
}

#[derive(Debug)]
pub(crate) struct State {
    myself: ActorRef<SupervisorMsg>,
    path: String,
    registry: Registry,
    scope: Scope,
    strategy: Strategy,
    intensity: Intensity,
    log: RestartLog,
    max_children: Option<usize>,
    children: Children,
    link: Arc<Link>,
}

/// How a child ended.
#[derive(Debug)]
enum Exit {
    /// A graceful stop, with its reason if any.
    Normal,
    /// An error, a panic, a kill: the text says which.
    Abnormal(String),
}

// === handlers ===

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = State;
    type Arguments = Args;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: Args,
    ) -> Result<State, ActorProcessingErr> {
        let Args {
            path,
            registry,
            scope,
            spec,
            link,
        } = args;
        let mut state = State {
            myself: myself.clone(),
            log: RestartLog::new(spec.intensity),
            strategy: spec.strategy,
            intensity: spec.intensity,
            max_children: spec.max_children,
            children: Children::default(),
            path,
            registry,
            scope,
            link,
        };
        for child in spec.children {
            state.add_child(child, false)?;
        }
        state.forget_stale_children();
        state.link.attach(&state.path, myself);
        // Declaration order; a failed first start fails the supervisor, as in OTP.
        for seq in state.children.seqs() {
            if let Err(error) = state.start_instance(seq).await {
                state.stop_all().await;
                // stop_all marks children without an instance stopped; this one failed.
                if let Some(c) = state.children.get(seq) {
                    state.registry.set_state(&c.path, ActorState::Failed);
                }
                return Err(error.into());
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        SupervisorMsg(command): SupervisorMsg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match command {
            Command::StartChild(spec, reply) => {
                let result = state.start_dynamic(spec).await;
                let _ = reply.send(result);
            }
            Command::TerminateChild(id, reply) => {
                let result = state.terminate_child(&id).await;
                let _ = reply.send(result);
            }
            Command::RestartChild(id, reply) => {
                let result = state.restart_child(&id).await;
                let _ = reply.send(result);
            }
            Command::WhichChildren(reply) => {
                let _ = reply.send(state.which_children());
            }
            Command::RestartDue(group) => state.restart_group(group).await?,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        // Consuming the event drops a killed child's state (ractor hands it over here).
        let Some((actor, exit)) = classify(event) else {
            return Ok(());
        };
        // Events of instances we stopped ourselves, or of older incarnations, are stale.
        let Some(seq) = state.children.seq_of_actor(actor) else {
            return Ok(());
        };
        state.on_exit(seq, exit).await?;
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_all().await;
        // Only a graceful stop runs post_stop: this is how a root tells it from a kill.
        state.registry.set_state(&state.path, ActorState::Stopped);
        state.link.detach(&myself);
        Ok(())
    }
}

fn classify(event: SupervisionEvent) -> Option<(ActorId, Exit)> {
    match event {
        SupervisionEvent::ActorTerminated(cell, _state, reason) => {
            let exit = match reason.as_deref() {
                Some(r @ ("killed" | "actor_task_cancelled")) => Exit::Abnormal(r.to_string()),
                _ => Exit::Normal,
            };
            Some((cell.get_id(), exit))
        }
        SupervisionEvent::ActorFailed(cell, error) => {
            Some((cell.get_id(), Exit::Abnormal(error.to_string())))
        }
        _ => None,
    }
}

// === impl State ===

impl State {
    fn add_child(&mut self, spec: ChildSpec, dynamic: bool) -> Result<u64, SupervisorError> {
        validate_id(&spec.id).map_err(SupervisorError::InvalidSpec)?;
        if self.children.contains(&spec.id) {
            return Err(SupervisorError::AlreadyStarted(spec.id));
        }
        let path = child_path(&self.path, &spec.id);
        Ok(self.children.push(Child {
            spec,
            path,
            instance: None,
            attempt: 0,
            held: false,
            dynamic,
        }))
    }

    /// Removes the records of children that a previous instance added at run time: they
    /// ended with it and are not coming back. Declared children keep their history.
    fn forget_stale_children(&self) {
        let prefix = format!("{}/", self.path);
        for record in self.registry.subtree(&self.path) {
            let Some(id) = record.path.strip_prefix(&prefix) else {
                continue;
            };
            if !id.contains('/') && !self.children.contains(id) {
                self.registry.remove(&record.path);
                self.registry.remove_below(&record.path);
            }
        }
    }

    /// Starts one instance of child `seq`, registering it on the way.
    async fn start_instance(&mut self, seq: u64) -> Result<ActorCell, SupervisorError> {
        let Some(child) = self.children.get(seq) else {
            return Err(SupervisorError::UnknownChild(seq.to_string()));
        };
        let (id, path, start) = (
            child.spec.id.clone(),
            child.path.clone(),
            child.spec.start.clone(),
        );
        self.registry
            .register(&path, child.spec.kind, Some(child.spec.restart));
        let scope = self.scope.child();
        let ctx = StartCtx {
            supervisor: self.myself.get_cell(),
            path: path.clone(),
            scope: scope.clone(),
            registry: self.registry.clone(),
        };
        match start(ctx).await {
            Ok(started) => {
                let cell = started.cell;
                self.children.set_instance(
                    seq,
                    Instance {
                        cell: cell.clone(),
                        scope,
                        started: Instant::now(),
                    },
                );
                self.registry.set_running(&path, cell.clone());
                self.link.insert(&id, cell.clone());
                Ok(cell)
            }
            Err(error) => {
                scope.close().await;
                self.registry.stop_below(&path);
                self.registry.set_error(&path, error.0.clone());
                self.registry.set_state(&path, ActorState::Failed);
                tracing::warn!(message = "Child failed to start.", path = %path, error = %error.0);
                Err(SupervisorError::StartFailed { id, error: error.0 })
            }
        }
    }

    /// A child's instance ended on its own (or was killed from outside).
    async fn on_exit(&mut self, seq: u64, exit: Exit) -> Result<(), SupervisorError> {
        let Some(instance) = self.take_instance(seq) else {
            return Ok(());
        };
        instance.scope.close().await;
        let Some(child) = self.children.get(seq) else {
            return Ok(());
        };
        let path = child.path.clone();
        self.registry.stop_below(&path);
        if let Exit::Abnormal(error) = &exit {
            tracing::warn!(message = "Child ended abnormally.", path = %path, error = %error);
            self.registry.set_error(&path, error.clone());
        }
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => matches!(exit, Exit::Abnormal(_)),
            Restart::Temporary => false,
        };
        if !restart {
            let end = match exit {
                Exit::Normal => ActorState::Stopped,
                Exit::Abnormal(_) => ActorState::Failed,
            };
            self.retire(seq, end);
            return Ok(());
        }
        let reason = match &exit {
            Exit::Normal => format!("{path} stopped"),
            Exit::Abnormal(error) => format!("{path}: {error}"),
        };
        if !self.log.record(Instant::now()) {
            return Err(self.give_up(reason, seq).await);
        }
        if let Some(child) = self.children.get_mut(seq) {
            let stable = child
                .spec
                .backoff
                .as_ref()
                .is_some_and(|b| instance.started.elapsed() >= b.reset_after);
            if stable {
                child.attempt = 0;
            }
            child.attempt += 1;
        }
        let group = match self.strategy {
            Strategy::OneForOne => vec![seq],
            Strategy::OneForAll => self.children.seqs(),
            Strategy::RestForOne => {
                let mut group = vec![seq];
                group.extend(self.children.seqs_after(seq));
                group
            }
        };
        // Siblings that go down with it: reverse start order; temporary ones are dropped.
        for &other in group.iter().rev().filter(|s| **s != seq) {
            self.terminate_instance(other).await;
            if self
                .children
                .get(other)
                .is_some_and(|c| c.spec.restart == Restart::Temporary)
            {
                self.retire(other, ActorState::Stopped);
            }
        }
        let group: Vec<u64> = group
            .into_iter()
            .filter(|s| self.children.get(*s).is_some_and(|c| !c.held))
            .collect();
        for &s in &group {
            if let Some(c) = self.children.get(s) {
                self.registry.count_restart(&c.path, self.intensity.window);
            }
        }
        self.schedule(group, seq);
        Ok(())
    }

    /// Restarts `group` now, or after the backoff of child `cause`.
    fn schedule(&mut self, group: Vec<u64>, cause: u64) {
        let (attempt, delay) = self
            .children
            .get(cause)
            .map(|c| {
                let delay = c.spec.backoff.as_ref().map(|b| b.delay(c.attempt));
                (c.attempt, delay.unwrap_or_default())
            })
            .unwrap_or_default();
        let next_delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        for &s in &group {
            if let Some(c) = self.children.get(s) {
                self.registry.set_state(
                    &c.path,
                    ActorState::Restarting {
                        attempt,
                        next_delay_ms,
                    },
                );
            }
        }
        if delay.is_zero() {
            // Through the mailbox, so a crash loop cannot starve other messages.
            let _ = self.myself.cast(SupervisorMsg(Command::RestartDue(group)));
        } else {
            let me = self.myself.clone();
            self.scope.spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = me.cast(SupervisorMsg(Command::RestartDue(group)));
            });
        }
    }

    /// Starts the children of `group` that are still due, in order. A failed start counts
    /// as a restart and is retried (with backoff) together with the rest of the group.
    async fn restart_group(&mut self, group: Vec<u64>) -> Result<(), SupervisorError> {
        for (i, &seq) in group.iter().enumerate() {
            let due = self
                .children
                .get(seq)
                .is_some_and(|c| c.instance.is_none() && !c.held);
            if !due {
                continue;
            }
            if let Err(error) = self.start_instance(seq).await {
                if !self.log.record(Instant::now()) {
                    return Err(self.give_up(error.to_string(), seq).await);
                }
                if let Some(child) = self.children.get_mut(seq) {
                    child.attempt += 1;
                    self.registry
                        .count_restart(&child.path, self.intensity.window);
                }
                self.schedule(group[i..].to_vec(), seq);
                return Ok(());
            }
        }
        Ok(())
    }

    /// Stops child `seq`'s instance per its shutdown spec and waits until it is gone.
    async fn terminate_instance(&mut self, seq: u64) {
        let Some(instance) = self.take_instance(seq) else {
            return;
        };
        let Some(child) = self.children.get(seq) else {
            return;
        };
        let path = child.path.clone();
        self.registry.set_state(&path, ActorState::Stopping);
        // Unlinked, the actor drops its state itself before its exit completes, instead of
        // handing it to us in a (stale) supervision event that would keep it alive in our
        // mailbox after this returns.
        instance.cell.unlink(self.myself.get_cell());
        let exit = instance.scope.actor_exit();
        match (child.spec.shutdown, exit) {
            (Shutdown::Brutal, _) | (_, None) => instance.cell.kill(),
            (Shutdown::Timeout(limit), Some(exit)) => {
                instance.cell.stop(Some(SHUTDOWN_REASON.to_string()));
                if tokio::time::timeout(limit, exit.wait()).await.is_err() {
                    tracing::warn!(
                        message = "Child did not stop within its shutdown time; killing it.",
                        path = %path,
                        timeout = ?limit
                    );
                    instance.cell.kill();
                }
            }
            (Shutdown::Infinity, Some(exit)) => {
                instance.cell.stop(Some(SHUTDOWN_REASON.to_string()));
                exit.wait().await;
            }
        }
        instance.scope.close().await;
        self.registry.stop_below(&path);
        self.registry.set_state(&path, ActorState::Stopped);
    }

    /// Stops every child in reverse start order; children waiting for a restart are
    /// marked stopped as well.
    async fn stop_all(&mut self) {
        for seq in self.children.seqs().into_iter().rev() {
            let waiting = self
                .children
                .get(seq)
                .is_some_and(|c| c.instance.is_none() && !c.held);
            if waiting {
                if let Some(c) = self.children.get(seq) {
                    self.registry.set_state(&c.path, ActorState::Stopped);
                }
            } else {
                self.terminate_instance(seq).await;
            }
            // Run-time and temporary children end with this instance: drop their records
            // too, or a stopped dynamic supervisor would leave one per child behind.
            let ends_here = self
                .children
                .get(seq)
                .is_some_and(|c| c.dynamic || c.spec.restart == Restart::Temporary);
            if ends_here {
                self.retire(seq, ActorState::Stopped);
            }
        }
    }

    /// Stops all children and returns the error the supervisor fails with; `cause` is
    /// the child whose failure went over the limit.
    async fn give_up(&mut self, last: String, cause: u64) -> SupervisorError {
        tracing::error!(
            message = "Restart intensity exceeded; stopping all children and escalating.",
            path = %self.path,
            max_restarts = self.intensity.max_restarts,
            window = ?self.intensity.window,
            last = %last
        );
        self.stop_all().await;
        if let Some(c) = self.children.get(cause) {
            self.registry.set_state(&c.path, ActorState::Failed);
        }
        let error = SupervisorError::IntensityExceeded {
            max: self.intensity.max_restarts,
            window: self.intensity.window,
            last,
        };
        self.registry.set_error(&self.path, error.to_string());
        self.registry.set_state(&self.path, ActorState::Failed);
        self.link.detach(&self.myself);
        error
    }

    /// A child that ended for good: run-time and temporary children leave the table and the
    /// registry; declared ones stay, held, in state `end`.
    fn retire(&mut self, seq: u64, end: ActorState) {
        let Some(child) = self.children.get_mut(seq) else {
            return;
        };
        if child.dynamic || child.spec.restart == Restart::Temporary {
            let path = child.path.clone();
            self.children.remove(seq);
            self.registry.remove(&path);
            self.registry.remove_below(&path);
        } else {
            child.held = true;
            self.registry.set_state(&child.path, end);
        }
    }

    fn take_instance(&mut self, seq: u64) -> Option<Instance> {
        let instance = self.children.take_instance(seq)?;
        if let Some(child) = self.children.get(seq) {
            self.link.remove(&child.spec.id);
        }
        Some(instance)
    }

    async fn start_dynamic(&mut self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        if let Some(max) = self.max_children
            && self.children.len() >= max
        {
            return Err(SupervisorError::Full {
                path: self.path.clone(),
                max,
            });
        }
        let seq = self.add_child(spec, true)?;
        let started = self.start_instance(seq).await;
        if started.is_err() {
            self.retire(seq, ActorState::Failed);
        }
        started
    }

    async fn terminate_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let seq = self
            .children
            .seq_of(id)
            .ok_or_else(|| SupervisorError::UnknownChild(id.to_string()))?;
        self.terminate_instance(seq).await;
        if let Some(child) = self.children.get_mut(seq) {
            child.held = true;
        }
        self.retire(seq, ActorState::Stopped);
        Ok(())
    }

    async fn restart_child(&mut self, id: &str) -> Result<ActorCell, SupervisorError> {
        let seq = self
            .children
            .seq_of(id)
            .ok_or_else(|| SupervisorError::UnknownChild(id.to_string()))?;
        match self.children.get_mut(seq) {
            Some(child) if child.instance.is_some() => {
                Err(SupervisorError::AlreadyStarted(id.to_string()))
            }
            Some(child) => {
                child.held = false;
                self.start_instance(seq).await
            }
            None => Err(SupervisorError::UnknownChild(id.to_string())),
        }
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.id.clone(),
                path: c.path.clone(),
                kind: c.spec.kind,
                restart: c.spec.restart,
                cell: c.instance.as_ref().map(|i| i.cell.clone()),
            })
            .collect()
    }
}

// === impl SupervisorSpec (entry points) ===

impl SupervisorSpec {
    /// This supervisor as a child of another, and a handle to it that stays valid across
    /// its restarts.
    pub fn into_child_spec(self, id: impl Into<String>) -> (ChildSpec, SupervisorHandle) {
        let link = Link::new();
        let handle = SupervisorHandle::new(link.clone());
        let spec = ChildSpec::new(id, move |ctx: &StartCtx| {
            let args = Args {
                path: ctx.path.clone(),
                registry: ctx.registry.clone(),
                scope: ctx.scope.clone(),
                spec: self.clone(),
                link: link.clone(),
            };
            (Supervisor, args)
        })
        .kind(ChildKind::Supervisor);
        (spec, handle)
    }

    /// Starts this supervisor as the root of a tree registered in `registry` under `name`.
    /// Returns once every child has started; a child that fails its first start fails the
    /// whole start, after the children already started have been stopped.
    pub async fn start_root(
        self,
        name: &str,
        registry: &Registry,
    ) -> Result<RootHandle, SupervisorError> {
        validate_id(name).map_err(SupervisorError::InvalidSpec)?;
        registry.register(name, ChildKind::Supervisor, None);
        let link = Link::new();
        let scope = Scope::root();
        let args = Args {
            path: name.to_string(),
            registry: registry.clone(),
            scope: scope.clone(),
            spec: self,
            link: link.clone(),
        };
        match Actor::spawn(None, Supervisor, args).await {
            Ok((actor, join)) => {
                let cell = actor.get_cell();
                scope.set_actor(cell.clone(), crate::scope::Exit::new(join));
                registry.set_running(name, cell.clone());
                Ok(RootHandle::new(
                    name.to_string(),
                    cell,
                    scope,
                    registry.clone(),
                    SupervisorHandle::new(link),
                ))
            }
            Err(error) => {
                scope.close().await;
                let error = error.to_string();
                registry.set_error(name, error.clone());
                registry.set_state(name, ActorState::Failed);
                Err(SupervisorError::StartFailed {
                    id: name.to_string(),
                    error,
                })
            }
        }
    }
}
