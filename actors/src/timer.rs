//! Timers an actor can arm, reset, extend and cancel for the price of a lock.
//!
//! A [`Timer`] owns one parked task in the actor's [`Scope`]. Arming or pushing the
//! deadline later only stores the new deadline; the task notices when it wakes at the old
//! one and sleeps again. Only moving the deadline earlier wakes the task. So a session that
//! resets its idle timer on every message spawns nothing and leaks nothing, and dropping
//! the timer (or closing the scope) ends the task.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use pincer_actors::{Scope, Timer};
//! # use ractor::ActorRef;
//! # #[derive(Debug)] enum Msg { IdleExpired }
//! # fn demo(scope: &Scope, me: ActorRef<Msg>) {
//! let idle = Timer::new(scope, me, || Msg::IdleExpired);
//! idle.arm(Duration::from_secs(24 * 3600));
//! // On every message:
//! idle.arm(Duration::from_secs(24 * 3600));
//! // `/session extend 2h`:
//! idle.extend(Duration::from_secs(2 * 3600));
//! # }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractor::{ActorRef, Message};
use tokio::sync::Notify;

use crate::scope::{Scope, TaskHandle};

/// A one-shot timer that sends a message to an actor when its deadline passes.
///
/// After firing it is disarmed; arm it again to reuse it. See the [module docs](self).
pub struct Timer {
    shared: Arc<Shared>,
    task: TaskHandle,
}

struct Shared {
    deadline: Mutex<Option<Instant>>,
    wake: Notify,
}

impl Timer {
    /// A disarmed timer that will send `message()` to `target` each time it fires.
    /// Its task lives in `scope` and ends when the timer is dropped, when the scope closes,
    /// or when `target` is gone.
    pub fn new<M, F>(scope: &Scope, target: ActorRef<M>, message: F) -> Self
    where
        M: Message,
        F: Fn() -> M + Send + 'static,
    {
        let shared = Arc::new(Shared {
            deadline: Mutex::new(None),
            wake: Notify::new(),
        });
        let task = scope.spawn(run(shared.clone(), target, message));
        Self { shared, task }
    }

    /// Arms the timer to fire `after` from now, replacing any earlier deadline.
    pub fn arm(&self, after: Duration) {
        self.arm_at(Instant::now() + after);
    }

    /// Arms the timer to fire at `deadline`, replacing any earlier deadline.
    pub fn arm_at(&self, deadline: Instant) {
        let mut current = self.shared.deadline.lock();
        let sooner = current.is_none_or(|old| deadline < old);
        *current = Some(deadline);
        drop(current);
        if sooner {
            self.shared.wake.notify_one();
        }
    }

    /// Pushes an armed timer's deadline `by` later. A disarmed timer stays disarmed;
    /// returns the new deadline.
    pub fn extend(&self, by: Duration) -> Option<Instant> {
        let mut current = self.shared.deadline.lock();
        if let Some(deadline) = current.as_mut() {
            *deadline += by;
        }
        *current
    }

    /// Disarms the timer. Returns whether it was armed.
    pub fn cancel(&self) -> bool {
        self.shared.deadline.lock().take().is_some()
    }

    /// The deadline, if armed.
    pub fn deadline(&self) -> Option<Instant> {
        *self.shared.deadline.lock()
    }

    /// Time left until the deadline (zero once passed), if armed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("deadline", &self.deadline())
            .finish()
    }
}

async fn run<M, F>(shared: Arc<Shared>, target: ActorRef<M>, message: F)
where
    M: Message,
    F: Fn() -> M + Send + 'static,
{
    loop {
        let armed = *shared.deadline.lock();
        let Some(at) = armed else {
            shared.wake.notified().await;
            continue;
        };
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => {
                let fire = {
                    let mut current = shared.deadline.lock();
                    // A later deadline set while we slept: sleep again.
                    if *current == Some(at) {
                        *current = None;
                        true
                    } else {
                        false
                    }
                };
                if fire && target.cast(message()).is_err() {
                    return;
                }
            }
            () = shared.wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::{Actor, ActorProcessingErr};
    use tokio::sync::mpsc;

    struct Sink;
    impl Actor for Sink {
        type Msg = u32;
        type State = mpsc::UnboundedSender<(u32, Instant)>;
        type Arguments = mpsc::UnboundedSender<(u32, Instant)>;
        async fn pre_start(
            &self,
            _: ActorRef<u32>,
            tx: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(tx)
        }
        async fn handle(
            &self,
            _: ActorRef<u32>,
            msg: u32,
            tx: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            let _ = tx.send((msg, Instant::now()));
            Ok(())
        }
    }

    async fn sink() -> (ActorRef<u32>, mpsc::UnboundedReceiver<(u32, Instant)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(None, Sink, tx).await.expect("spawn");
        (actor, rx)
    }

    #[tokio::test]
    async fn fires_once_after_deadline() {
        let (actor, mut rx) = sink().await;
        let scope = Scope::root();
        let timer = Timer::new(&scope, actor.clone(), || 7);
        let start = Instant::now();
        timer.arm(Duration::from_millis(30));
        let (msg, at) = rx.recv().await.expect("fired");
        assert_eq!(msg, 7);
        assert!(at.duration_since(start) >= Duration::from_millis(30));
        assert_eq!(timer.deadline(), None);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(rx.try_recv().is_err(), "fired twice");
        actor.stop(None);
    }

    #[tokio::test]
    async fn reset_later_and_earlier() {
        let (actor, mut rx) = sink().await;
        let scope = Scope::root();
        let timer = Timer::new(&scope, actor.clone(), || 1);
        let start = Instant::now();
        timer.arm(Duration::from_millis(20));
        timer.arm(Duration::from_millis(80));
        let (_, at) = rx.recv().await.expect("fired");
        assert!(at.duration_since(start) >= Duration::from_millis(80));

        let start = Instant::now();
        timer.arm(Duration::from_secs(60));
        timer.arm(Duration::from_millis(10));
        let (_, at) = rx.recv().await.expect("fired");
        assert!(at.duration_since(start) < Duration::from_secs(5));
        actor.stop(None);
    }

    #[tokio::test]
    async fn extend_and_cancel() {
        let (actor, mut rx) = sink().await;
        let scope = Scope::root();
        let timer = Timer::new(&scope, actor.clone(), || 1);
        assert_eq!(timer.extend(Duration::from_secs(1)), None);
        let start = Instant::now();
        timer.arm(Duration::from_millis(20));
        timer.extend(Duration::from_millis(40));
        let (_, at) = rx.recv().await.expect("fired");
        assert!(at.duration_since(start) >= Duration::from_millis(60));

        timer.arm(Duration::from_millis(10));
        assert!(timer.cancel());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(rx.try_recv().is_err(), "cancelled timer fired");
        actor.stop(None);
    }

    #[tokio::test]
    async fn many_resets_leave_one_task() {
        let (actor, _rx) = sink().await;
        let scope = Scope::root();
        let timer = Timer::new(&scope, actor.clone(), || 1);
        for i in 0..10_000u64 {
            timer.arm(Duration::from_secs(3600 + i));
        }
        assert_eq!(scope.task_count(), 1);
        drop(timer);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(scope.task_count(), 0);
        actor.stop(None);
    }
}
