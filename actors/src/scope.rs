//! Scopes: everything an actor owns that must not outlive it.
//!
//! A [`Scope`] holds the tasks an actor spawned, its timers, the exit of the actor itself
//! and the scopes of the actors it supervises. When a supervised actor ends, in any way,
//! its supervisor closes the scope before anything replaces the actor: closing kills
//! whatever is still alive in it, aborts every task and *waits* until each task, each
//! actor and each nested scope is gone. After a kill or a panic ractor runs no `post_stop`
//! and a dropped `JoinHandle` does not stop a task; the scope is what makes "the old poller
//! has ended" a fact rather than a hope.
//!
//! ```no_run
//! # use pincer_actors::Scope;
//! # async fn demo(scope: Scope) {
//! // A loop that dies with the actor that owns the scope.
//! let poller = scope.spawn(async move {
//!     loop {
//!         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
//!     }
//! });
//! // It can also be stopped on its own.
//! poller.abort();
//! # }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use ractor::ActorCell;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

/// How often a close that is still waiting logs a warning: an actor that does not end
/// after a kill is blocking its thread, and a silent wait would hide it.
const SLOW_CLOSE_WARNING: Duration = Duration::from_secs(5);

static NEXT_SCOPE_ID: AtomicU64 = AtomicU64::new(1);

/// An actor's exit: [`Exit::wait`] returns once the actor's task has ended and its state
/// is dropped. Clones wait for the same exit; whichever waits first polls the task's join
/// handle and the others queue behind it. (A shared boxed future did this in about 0.4 kB
/// an actor; with 10,000 live sessions that was 4 MB.)
#[derive(Clone)]
pub(crate) struct Exit(Arc<tokio::sync::Mutex<Option<JoinHandle<()>>>>);

/// What one actor owns: spawned tasks, timers, nested scopes, and the actor's own exit.
///
/// Cloning gives another handle to the same scope. See the [module docs](self).
#[derive(Clone)]
pub struct Scope {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    parent: Weak<Inner>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    closed: bool,
    tasks: JoinSet<()>,
    actor: Option<(ActorCell, Exit)>,
    children: HashMap<u64, Scope>,
}

/// A task spawned in a [`Scope`]. Dropping the handle does not stop the task; the scope
/// does when its actor ends, or [`TaskHandle::abort`] does earlier.
#[derive(Debug, Clone)]
pub struct TaskHandle {
    abort: Option<AbortHandle>,
}

// === impl Scope ===

impl Scope {
    /// A scope with no parent: the root of a tree, or a test.
    pub fn root() -> Self {
        Self::with_parent(Weak::new())
    }

    fn with_parent(parent: Weak<Inner>) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: NEXT_SCOPE_ID.fetch_add(1, Ordering::Relaxed),
                parent,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A nested scope, closed when this one closes. A child of a closed scope starts
    /// closed.
    pub fn child(&self) -> Scope {
        let child = Self::with_parent(Arc::downgrade(&self.inner));
        let mut state = self.inner.state.lock();
        if state.closed {
            child.inner.state.lock().closed = true;
        } else {
            state.children.insert(child.inner.id, child.clone());
        }
        child
    }

    /// Spawns a task owned by this scope. In a closed scope the task is dropped unstarted.
    ///
    /// Must be called within a Tokio runtime.
    pub fn spawn<F>(&self, task: F) -> TaskHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut state = self.inner.state.lock();
        if state.closed {
            return TaskHandle { abort: None };
        }
        // Reap finished tasks so that a long-lived actor spawning short tasks stays small.
        while state.tasks.try_join_next().is_some() {}
        TaskHandle {
            abort: Some(state.tasks.spawn(task)),
        }
    }

    /// Whether [`Scope::close`] has begun.
    pub fn is_closed(&self) -> bool {
        self.inner.state.lock().closed
    }

    /// Number of tasks not yet known to have finished.
    pub fn task_count(&self) -> usize {
        let mut state = self.inner.state.lock();
        while state.tasks.try_join_next().is_some() {}
        state.tasks.len()
    }

    /// Records the actor whose life this scope follows.
    pub(crate) fn set_actor(&self, cell: ActorCell, exit: Exit) {
        let mut state = self.inner.state.lock();
        if state.closed {
            cell.kill();
        }
        state.actor = Some((cell, exit));
    }

    /// The actor's exit, if one was recorded.
    pub(crate) fn actor_exit(&self) -> Option<Exit> {
        self.inner
            .state
            .lock()
            .actor
            .as_ref()
            .map(|(_, exit)| exit.clone())
    }

    /// Kills what is still alive in the scope and waits until all of it is gone: the actor
    /// (its task ended, its state dropped), every task, and every nested scope. Idempotent;
    /// a second close returns once the first has taken everything out.
    pub fn close(&self) -> BoxFuture<'static, ()> {
        let this = self.clone();
        async move {
            let (actor, mut tasks, children) = {
                let mut state = this.inner.state.lock();
                state.closed = true;
                (
                    state.actor.take(),
                    std::mem::take(&mut state.tasks),
                    std::mem::take(&mut state.children),
                )
            };
            if let Some((cell, exit)) = actor {
                cell.kill();
                wait_logged(exit, "actor", &cell).await;
            }
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            for child in children.into_values() {
                child.close().await;
            }
            if let Some(parent) = this.inner.parent.upgrade() {
                parent.state.lock().children.remove(&this.inner.id);
            }
        }
        .boxed()
    }
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.lock();
        f.debug_struct("Scope")
            .field("id", &self.inner.id)
            .field("closed", &state.closed)
            .field("tasks", &state.tasks.len())
            .field("children", &state.children.len())
            .finish()
    }
}

// === impl TaskHandle ===

impl TaskHandle {
    /// Stops the task at its next await point. The scope still waits for it on close.
    pub fn abort(&self) {
        if let Some(abort) = &self.abort {
            abort.abort();
        }
    }

    /// Whether the task has ended (or never started because the scope was closed).
    pub fn is_finished(&self) -> bool {
        self.abort.as_ref().is_none_or(AbortHandle::is_finished)
    }
}

// === impl Exit ===

impl Exit {
    /// The exit of the actor whose task `join` is.
    pub(crate) fn new(join: JoinHandle<()>) -> Self {
        Self(Arc::new(tokio::sync::Mutex::new(Some(join))))
    }

    /// Returns once the actor has ended. Cancel-safe: a waiter dropped midway leaves the
    /// handle to the next one.
    pub(crate) async fn wait(&self) {
        let mut join = self.0.lock().await;
        if let Some(handle) = join.as_mut() {
            let _ = handle.await;
            *join = None;
        }
    }
}

/// Awaits `exit`, logging every few seconds while it is still pending.
async fn wait_logged(exit: Exit, what: &str, cell: &ActorCell) {
    let mut fut = std::pin::pin!(exit.wait());
    loop {
        match tokio::time::timeout(SLOW_CLOSE_WARNING, &mut fut).await {
            Ok(()) => return,
            Err(_) => tracing::warn!(
                message = "Still waiting for a killed actor to end; is it blocking its thread?",
                what,
                actor = %cell.get_id()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct DropCount(Arc<AtomicUsize>);
    impl Drop for DropCount {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn an_exit_wakes_every_waiter_and_outlives_one_that_gave_up() {
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        let exit = Exit::new(tokio::spawn(async move {
            let _ = ended.await;
        }));
        // A waiter that gives up leaves the join handle to the next.
        let early = tokio::time::timeout(Duration::from_millis(20), exit.wait()).await;
        assert!(early.is_err());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let exit = exit.clone();
                tokio::spawn(async move { exit.wait().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()));
        end.send(()).expect("task waits");
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("woken")
                .expect("joined");
        }
        // And a later one returns at once.
        tokio::time::timeout(Duration::from_secs(1), exit.wait())
            .await
            .expect("at once");
    }

    #[tokio::test]
    async fn close_aborts_and_awaits_tasks_in_nested_scopes() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let root = Scope::root();
        let child = root.child();
        for scope in [&root, &child, &child.child()] {
            let guard = DropCount(dropped.clone());
            scope.spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
        }
        root.close().await;
        assert_eq!(dropped.load(Ordering::SeqCst), 3);
        assert!(child.is_closed());
        assert!(child.spawn(async {}).is_finished());
    }

    #[tokio::test]
    async fn closed_child_leaves_parent() {
        let root = Scope::root();
        let child = root.child();
        child.close().await;
        assert!(root.inner.state.lock().children.is_empty());
        assert!(!root.is_closed());
    }

    #[tokio::test]
    async fn finished_tasks_are_reaped() {
        let scope = Scope::root();
        for _ in 0..100 {
            scope.spawn(async {});
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(scope.task_count(), 0);
    }
}
