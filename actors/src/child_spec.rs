//! Child specs: how a supervisor starts, restarts and stops one child.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell};
use serde::Serialize;

use crate::backoff::Backoff;
use crate::registry::Registry;
use crate::scope::{Exit, Scope};

/// When a child that ended is started again (OTP's restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted, whatever the exit.
    Permanent,
    /// Restarted only after an abnormal exit (error, panic, kill, failed start).
    Transient,
    /// Never restarted; also not when a sibling's failure makes `one_for_all` or
    /// `rest_for_one` stop it. It is removed from the supervisor when it ends.
    Temporary,
}

/// How a supervisor stops a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Kill at once: no `post_stop`, as in a crash.
    Brutal,
    /// Stop gracefully (`post_stop` runs), and kill if it has not ended within the time.
    Timeout(Duration),
    /// Stop gracefully and wait as long as it takes. The default for supervisors, whose
    /// own children have timeouts.
    Infinity,
}

/// Whether a child is a worker or a supervisor of its own children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// Does work; default shutdown 5 s.
    Worker,
    /// Supervises; default shutdown [`Shutdown::Infinity`].
    Supervisor,
}

/// Default graceful-stop time for workers.
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

/// The start function of a child: called for the first start and again for every restart.
pub type StartFn =
    Arc<dyn Fn(StartCtx) -> BoxFuture<'static, Result<Started, StartError>> + Send + Sync>;

/// How to start, restart and stop one child of a supervisor.
///
/// ```no_run
/// # use std::time::Duration;
/// # use pincer_actors::{Backoff, ChildSpec, Restart};
/// # use ractor::{Actor, ActorRef, ActorProcessingErr};
/// # struct Poller;
/// # impl Actor for Poller {
/// #     type Msg = (); type State = (); type Arguments = String;
/// #     async fn pre_start(&self, _: ActorRef<()>, _: String) -> Result<(), ActorProcessingErr> { Ok(()) }
/// # }
/// let token = "bot-token".to_string();
/// let spec = ChildSpec::new("link", move |_ctx| (Poller, token.clone()))
///     .restart(Restart::Permanent)
///     .backoff(Backoff::exponential(Duration::from_millis(100), Duration::from_secs(30), 2.0));
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) kind: ChildKind,
}

/// What a start function hands to the actor it starts: where it sits in the tree and the
/// [`Scope`] that owns its tasks and timers.
#[derive(Debug, Clone)]
pub struct StartCtx {
    pub(crate) supervisor: ActorCell,
    pub(crate) path: String,
    pub(crate) scope: Scope,
    pub(crate) registry: Registry,
}

/// A started child, as returned by [`StartCtx::spawn`].
#[derive(Debug, Clone)]
pub struct Started {
    pub(crate) cell: ActorCell,
}

/// Why a child did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

// === impl ChildSpec ===

impl ChildSpec {
    /// A permanent worker built by `factory` on every (re)start, spawned linked to its
    /// supervisor. The factory gets the [`StartCtx`], so the actor can be given its scope
    /// and path through its arguments.
    pub fn new<A, F>(id: impl Into<String>, factory: F) -> Self
    where
        A: Actor,
        F: Fn(&StartCtx) -> (A, A::Arguments) + Send + Sync + 'static,
    {
        Self::from_start_fn(
            id,
            Arc::new(move |ctx: StartCtx| {
                let (actor, args) = factory(&ctx);
                Box::pin(async move { ctx.spawn(actor, args).await })
            }),
        )
    }

    /// A permanent worker whose actor starts from a copy of `args` and the [`Scope`] it owns
    /// (`Arguments = (T, Scope)`): the shape most actors have, given the context they
    /// work with.
    ///
    /// [`Scope`]: crate::Scope
    pub fn scoped<A, T>(id: impl Into<String>, actor: A, args: T) -> Self
    where
        A: Actor<Arguments = (T, crate::Scope)> + Clone + Sync,
        T: Clone + Send + Sync + 'static,
    {
        Self::new(id, move |ctx| {
            (actor.clone(), (args.clone(), ctx.scope().clone()))
        })
    }

    /// A permanent worker with a hand-written start function, which must start exactly one
    /// actor through [`StartCtx::spawn`].
    pub fn from_start_fn(id: impl Into<String>, start: StartFn) -> Self {
        Self {
            id: id.into(),
            start,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
            backoff: None,
            kind: ChildKind::Worker,
        }
    }

    /// Sets the restart type (default permanent).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped (default 5 s for workers, infinity for supervisors).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Delays restarts with `backoff` (default: restart at once).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Marks the child as a supervisor (for the registry and the default shutdown).
    pub fn kind(mut self, kind: ChildKind) -> Self {
        if kind == ChildKind::Supervisor && self.kind == ChildKind::Worker {
            self.shutdown = Shutdown::Infinity;
        }
        self.kind = kind;
        self
    }

    /// Runs the task `task` makes in the child's [`Scope`] after each successful start, so
    /// it ends with that instance. The task gets the start context and the started actor:
    /// a supervisor whose children serve one piece of work (a turn and its tool calls)
    /// runs that work as this task and stops itself when it is done.
    ///
    /// ```no_run
    /// # use pincer_actors::{ChildSpec, Restart, SupervisorSpec};
    /// let (spec, children) = SupervisorSpec::dynamic(16).into_child_spec("job");
    /// let spec = spec.restart(Restart::Temporary).with_task(move |_ctx, started| {
    ///     let (children, me) = (children.clone(), started.cell().clone());
    ///     async move {
    ///         // ... start children through `children`, wait for them ...
    ///         me.stop(None);
    ///     }
    /// });
    /// ```
    pub fn with_task<F, Fut>(mut self, task: F) -> Self
    where
        F: Fn(&StartCtx, &Started) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (start, task) = (self.start, Arc::new(task));
        self.start = Arc::new(move |ctx: StartCtx| {
            let (start, task) = (start.clone(), task.clone());
            Box::pin(async move {
                let started = start(ctx.clone()).await?;
                ctx.scope.spawn(task(&ctx, &started));
                Ok(started)
            })
        });
        self
    }

    /// The child's id, unique among its siblings; the last segment of its path.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The restart type.
    pub fn restart_type(&self) -> Restart {
        self.restart
    }
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("backoff", &self.backoff)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Checks a child id: non-empty, without `/` (the path separator) or control characters.
pub(crate) fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        Err("child id is empty".to_string())
    } else if let Some(c) = id.chars().find(|c| *c == '/' || c.is_control()) {
        Err(format!("child id `{id}` contains {c:?}"))
    } else {
        Ok(())
    }
}

// === impl StartCtx ===

impl StartCtx {
    /// The path the child is registered at.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The scope that owns everything the child starts; closed when the child ends.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The registry of the tree.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Spawns `actor` linked to the supervisor and ties its life to the child's scope.
    /// Returns once `pre_start` has finished; a `pre_start` error is a failed start.
    pub async fn spawn<A: Actor>(
        &self,
        actor: A,
        args: A::Arguments,
    ) -> Result<Started, StartError> {
        let (actor_ref, join) = Actor::spawn_linked(None, actor, args, self.supervisor.clone())
            .await
            .map_err(|e| StartError(spawn_error_text(&e)))?;
        let cell = actor_ref.get_cell();
        self.scope.set_actor(cell.clone(), Exit::new(join));
        Ok(Started { cell })
    }
}

impl Started {
    /// The started actor.
    pub fn cell(&self) -> &ActorCell {
        &self.cell
    }
}

fn spawn_error_text(e: &ractor::SpawnErr) -> String {
    match e {
        ractor::SpawnErr::StartupFailed(inner) => format!("start failed: {inner}"),
        other => format!("start failed: {other}"),
    }
}
