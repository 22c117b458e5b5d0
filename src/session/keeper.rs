//! `deadlines`: the keeper of one account's sessions, beside its `sessions` supervisor.
//!
//! Live sessions do not each hold timer tasks: their next deadline (idle, max age, or
//! hibernation, whichever comes first) is one entry in the account's [`Deadlines`] queue,
//! and this actor's one task tells a session when its deadline comes. Hibernated sessions
//! have no entry anywhere in memory: their expiry is the `expires_at` column of their
//! store row, and the keeper ends those past their time in the store, batch by batch,
//! without waking them. It only remembers the earliest such time and the count of
//! hibernated sessions, which it publishes on its supervisor's record in the tree.
//!
//! The queue, the gate and the count live in [`Keeper`], shared with the router and the
//! sessions, so they outlive a restart of this actor. When the whole `sessions`
//! supervisor restarts, its sessions are gone: the first deadline that finds no instance
//! (or the keeper's own start) has the rows still marked live without an actor rest
//! again, and counts them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pincer_actors::{ChildSpec, Deadlines, Registry, Restart, Scope, SupervisorHandle};
use pincer_core::now_ms;
use pincer_store::{Rest, Store};
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus};
use tokio::sync::Notify;

use super::SessionMsg;
use super::gate::Gate;

/// Hibernated sessions ended per store transaction; the keeper comes back at once while
/// more are past their time, so a backlog never holds the writer long.
const EXPIRE_BATCH: usize = 1000;

/// How long a new instance waits for the old one to leave its supervisor at most.
const WAKE_PATIENCE: Duration = Duration::from_secs(10);

/// What one account's sessions share: the deadlines of the live ones, the gate, and the
/// count of the hibernated ones. See the [module docs](self).
#[derive(Debug)]
pub struct Keeper {
    account: String,
    /// Each live session's next deadline, and where to tell it.
    pub(crate) deadlines: Deadlines<Arc<str>, ActorRef<SessionMsg>>,
    /// Messages waiting for a session on its way out.
    pub(crate) gate: Gate,
    /// Hibernated sessions of the account, as the store counts them.
    hibernated: AtomicU64,
    /// The earliest expiry among the hibernated (ms since the epoch; `u64::MAX`: none).
    next_expiry: AtomicU64,
    /// An earlier expiry than the keeper sleeps for, or a changed count.
    changed: Notify,
    /// The account's `sessions` supervisor (set once it is declared).
    sessions: OnceLock<SupervisorHandle>,
}

/// The keeper actor.
#[derive(Debug)]
pub struct KeeperActor;

/// What the keeper starts from.
#[derive(Debug)]
pub struct KeeperArgs {
    keeper: Arc<Keeper>,
    store: Store,
    scope: Scope,
    registry: Registry,
    /// The path of its `sessions` supervisor, where the count is published.
    sessions_path: String,
}

// === impl Keeper ===

impl Keeper {
    /// The keeper of `account`'s sessions.
    pub fn new(account: &str) -> Arc<Self> {
        Arc::new(Self {
            account: account.to_string(),
            deadlines: Deadlines::default(),
            gate: Gate::default(),
            hibernated: AtomicU64::new(0),
            next_expiry: AtomicU64::new(u64::MAX),
            changed: Notify::new(),
            sessions: OnceLock::new(),
        })
    }

    /// Records the account's `sessions` supervisor (once).
    pub fn set_sessions(&self, sessions: SupervisorHandle) {
        let _ = self.sessions.set(sessions);
    }

    /// The account's `sessions` supervisor.
    pub fn sessions(&self) -> Option<&SupervisorHandle> {
        self.sessions.get()
    }

    /// The account.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// Hibernated sessions of the account now.
    pub fn hibernated(&self) -> u64 {
        self.hibernated.load(Ordering::Relaxed)
    }

    /// A session rested in the store; it ends at `expires_at_ms` unless woken first.
    pub(crate) fn rested(&self, expires_at_ms: u64) {
        self.hibernated.fetch_add(1, Ordering::Relaxed);
        let before = self.next_expiry.fetch_min(expires_at_ms, Ordering::Relaxed);
        let _ = before;
        self.changed.notify_one();
    }

    /// A hibernated session woke (its row moved back to live).
    pub(crate) fn woke(&self) {
        let _ = self
            .hibernated
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        self.changed.notify_one();
    }

    /// Whether session `key` has a running instance.
    fn is_live(&self, key: &str) -> bool {
        self.sessions()
            .is_some_and(|s| s.get(&pincer_core::session_key::child_id(key)).is_some())
    }

    /// Starts the next instance of `key` once the old one has left its supervisor, if
    /// messages wait for it; else opens the gate. Runs outside any actor (the old one is
    /// ending), bounded by [`WAKE_PATIENCE`].
    pub(crate) fn wake(
        self: &Arc<Self>,
        key: Arc<str>,
        spec: impl FnOnce() -> ChildSpec + Send + 'static,
    ) {
        let keeper = self.clone();
        tokio::spawn(async move {
            let Some(sessions) = keeper.sessions().cloned() else {
                keeper.gate.reopen(&key);
                return;
            };
            let child = pincer_core::session_key::child_id(&key);
            let until = Instant::now() + WAKE_PATIENCE;
            // Held but not running: the old instance is still leaving.
            while sessions.holds(&child) && sessions.get(&child).is_none() && Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if keeper.gate.release_if_empty(&key) {
                return;
            }
            tracing::debug!(session = %key, "Waking a session for the messages that waited.");
            // The new instance takes what waits in the gate when it starts.
            if let Err(error) = sessions.get_or_start(&child, spec).await {
                // Still pending in the inbox: the router's sweep brings them back.
                keeper.gate.reopen(&key);
                tracing::warn!(session = %key, %error, "Cannot wake a session; its messages wait for the next sweep.");
            }
        });
    }
}

/// The keeper's child spec, to declare in the account's supervisor after `sessions`.
pub fn spec(keeper: &Arc<Keeper>, store: &Store) -> ChildSpec {
    let (keeper, store) = (keeper.clone(), store.clone());
    ChildSpec::new("deadlines", move |start| {
        let path = start.path();
        let account = path.rsplit_once('/').map_or("", |(p, _)| p);
        let sessions_path = pincer_actors::registry::child_path(account, "sessions");
        let args = KeeperArgs {
            keeper: keeper.clone(),
            store: store.clone(),
            scope: start.scope().clone(),
            registry: start.registry().clone(),
            sessions_path,
        };
        (KeeperActor, args)
    })
    .restart(Restart::Permanent)
}

impl Actor for KeeperActor {
    type Msg = ();
    type State = ();
    type Arguments = KeeperArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: KeeperArgs,
    ) -> Result<(), ActorProcessingErr> {
        let scope = args.scope.clone();
        scope.spawn(run(args));
        Ok(())
    }
}

/// The keeper's one task: settles what a restart left, then tells live sessions their
/// deadlines and ends hibernated ones past their time.
async fn run(args: KeeperArgs) {
    let KeeperArgs {
        keeper,
        store,
        registry,
        sessions_path,
        ..
    } = args;
    // The store may not be open yet at start: try until it answers.
    let mut pause = Duration::from_millis(50);
    while !recover(&keeper, &store).await {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    let publish = |k: &Keeper| registry.set_count(&sessions_path, "hibernated", k.hibernated());
    publish(&keeper);
    loop {
        let next = keeper.next_expiry.load(Ordering::Relaxed);
        let wait = Duration::from_millis(next.saturating_sub(now_ms()));
        let changed = keeper.changed.notified();
        tokio::select! {
            due = keeper.deadlines.next_due() => {
                let mut orphans = false;
                for (_, session) in due {
                    // Killed without a word (or with its whole supervisor): it rests.
                    orphans |= session.cast(SessionMsg::Due).is_err();
                }
                if orphans {
                    let _ = recover(&keeper, &store).await;
                }
            }
            () = tokio::time::sleep(wait), if next != u64::MAX => {
                expire(&keeper, &store).await;
            }
            () = changed => {}
        }
        publish(&keeper);
    }
}

/// Rows left live by instances that no longer run (a crash, a killed `sessions`) rest
/// again; then the count and the earliest expiry are read from the store (indexed
/// queries over the account's live rows and its hibernated count, no rows loaded).
/// False if the store could not be read.
async fn recover(keeper: &Keeper, store: &Store) -> bool {
    match store.live_keys(keeper.account()).await {
        Ok(keys) => {
            for key in keys.iter().filter(|k| !keeper.is_live(k)) {
                let _ = store.set_rest(key, Rest::Live, Rest::Hibernated).await;
            }
        }
        Err(error) => {
            tracing::debug!(account = %keeper.account, %error, "Cannot read the sessions left live yet.");
            return false;
        }
    }
    keeper
        .deadlines
        .retain(|_, actor| actor.get_status() < ActorStatus::Stopping);
    keeper.gate.forget_dead();
    match store.hibernated_of(keeper.account()).await {
        Ok((count, next)) => {
            keeper.hibernated.store(count, Ordering::Relaxed);
            keeper
                .next_expiry
                .fetch_min(next.unwrap_or(u64::MAX), Ordering::Relaxed);
            true
        }
        Err(error) => {
            tracing::debug!(account = %keeper.account, %error, "Cannot count the hibernated sessions yet.");
            false
        }
    }
}

/// Ends the hibernated sessions past their time, a batch at a time.
async fn expire(keeper: &Keeper, store: &Store) {
    // Taken before the pass: an expiry set meanwhile lowers it again.
    keeper.next_expiry.store(u64::MAX, Ordering::Relaxed);
    match store
        .expire_hibernated(keeper.account(), now_ms(), EXPIRE_BATCH)
        .await
    {
        Ok((ended, next)) => {
            if ended > 0 {
                tracing::debug!(account = %keeper.account, ended, "Hibernated sessions ended.");
            }
            let _ = keeper
                .hibernated
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(ended))
                });
            keeper
                .next_expiry
                .fetch_min(next.unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        Err(error) => {
            tracing::warn!(account = %keeper.account, %error, "Cannot end hibernated sessions; trying again.");
            let retry = now_ms().saturating_add(1000);
            keeper.next_expiry.fetch_min(retry, Ordering::Relaxed);
        }
    }
}
