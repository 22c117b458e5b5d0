//! Shared test actors and helpers for the integration tests.
//!
//! - [`Probe`]: a worker that can be told to stop normally, return an error or panic, and
//!   that records its starts and stops into a shared [`Log`]; its start can be slowed down
//!   or made to fail on chosen calls, and its `post_stop` can be slowed down or made to hang.
//! - [`Holder`]: a worker that holds a shared resource through its state, a task in its
//!   scope and a timer, and records any overlap with a previous instance.
#![allow(dead_code, clippy::mod_module_files)]

use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use pincer_actors::{
    ActorRecord, ActorState, ChildSpec, Registry, Scope, SupervisorHandle, Timer, testkit,
};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};

/// Generous timeout for conditions that should hold quickly.
pub(crate) const T: Duration = Duration::from_secs(5);

/// The text of the panics the test actors raise on purpose.
pub(crate) const TEST_PANIC: &str = "test-panic: told to panic";

/// Keeps the deliberate panics of test actors out of the test output; any other panic is
/// reported by the default hook.
pub(crate) fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !payload.starts_with("test-panic") {
                default(info);
            }
        }));
    });
}

// === the log ===

/// A shared, ordered record of lifecycle events such as `start:a` and `stop:a`.
#[derive(Clone, Default, Debug)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&self, event: impl Into<String>) {
        self.0.lock().push(event.into());
    }

    /// All events so far.
    pub(crate) fn events(&self) -> Vec<String> {
        self.0.lock().clone()
    }

    /// Takes all events so far, leaving the log empty.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().len()
    }

    pub(crate) fn count(&self, event: &str) -> usize {
        self.0.lock().iter().filter(|e| *e == event).count()
    }
}

/// Shorthand for a list of expected events.
pub(crate) fn ev(events: &[&str]) -> Vec<String> {
    events.iter().map(|e| (*e).to_string()).collect()
}

// === the probe ===

/// What a [`Probe`] can be told to do.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Stop itself gracefully (a normal exit).
    Stop,
    /// Return an error from the handler.
    Fail,
    /// Panic in the handler.
    Panic,
    /// Do nothing.
    Noop,
}

/// What `post_stop` does after logging `stop:<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostStop {
    /// Returns at once.
    Quick,
    /// Sleeps, then logs `stopped:<name>`.
    Sleep(Duration),
    /// Never returns.
    Hang,
}

/// Decides, from the 1-based number of a start, whether that start fails.
pub(crate) type FailStart = Arc<dyn Fn(u32) -> bool + Send + Sync>;

/// Configuration of a [`Probe`] child; cheap to clone, shared across its restarts.
#[derive(Clone)]
pub(crate) struct ProbeCfg {
    pub(crate) name: String,
    pub(crate) log: Log,
    /// Number of calls of `pre_start` so far, across restarts.
    pub(crate) starts: Arc<AtomicU32>,
    /// Awaited in `pre_start` (then `started:<name>` is logged).
    pub(crate) start_delay: Option<Duration>,
    pub(crate) fail_start: Option<FailStart>,
    pub(crate) post_stop: PostStop,
    /// When each `pre_start` began, on tokio's clock (so paused time shows in it).
    pub(crate) start_times: Arc<Mutex<Vec<tokio::time::Instant>>>,
}

impl std::fmt::Debug for ProbeCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeCfg")
            .field("name", &self.name)
            .finish()
    }
}

impl ProbeCfg {
    pub(crate) fn new(name: &str, log: &Log) -> Self {
        Self {
            name: name.to_string(),
            log: log.clone(),
            starts: Arc::new(AtomicU32::new(0)),
            start_delay: None,
            fail_start: None,
            post_stop: PostStop::Quick,
            start_times: Arc::default(),
        }
    }

    pub(crate) fn start_delay(mut self, delay: Duration) -> Self {
        self.start_delay = Some(delay);
        self
    }

    pub(crate) fn fail_start(mut self, f: impl Fn(u32) -> bool + Send + Sync + 'static) -> Self {
        self.fail_start = Some(Arc::new(f));
        self
    }

    pub(crate) fn post_stop(mut self, post_stop: PostStop) -> Self {
        self.post_stop = post_stop;
        self
    }

    /// A child spec (permanent, default shutdown) that starts a probe with this config.
    pub(crate) fn spec(&self, id: &str) -> ChildSpec {
        let cfg = self.clone();
        ChildSpec::new(id, move |_| (Probe, cfg.clone()))
    }

    /// When the `n`th (1-based) `pre_start` began.
    pub(crate) fn start_time(&self, n: usize) -> tokio::time::Instant {
        self.start_times.lock()[n - 1]
    }

    pub(crate) fn start_count(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }
}

/// A child spec for a probe called `id` logging into `log`.
pub(crate) fn probe(id: &str, log: &Log) -> ChildSpec {
    ProbeCfg::new(id, log).spec(id)
}

/// The worker of most tests; see the module docs.
#[derive(Debug)]
pub(crate) struct Probe;

impl Actor for Probe {
    type Msg = Cmd;
    type State = ProbeCfg;
    type Arguments = ProbeCfg;

    async fn pre_start(
        &self,
        _myself: ActorRef<Cmd>,
        cfg: ProbeCfg,
    ) -> Result<ProbeCfg, ActorProcessingErr> {
        cfg.start_times.lock().push(tokio::time::Instant::now());
        let n = cfg.starts.fetch_add(1, Ordering::SeqCst) + 1;
        cfg.log.push(format!("start:{}", cfg.name));
        if let Some(delay) = cfg.start_delay {
            tokio::time::sleep(delay).await;
            cfg.log.push(format!("started:{}", cfg.name));
        }
        if cfg.fail_start.as_ref().is_some_and(|f| f(n)) {
            cfg.log.push(format!("start-failed:{}", cfg.name));
            return Err(format!("{} refused start #{n}", cfg.name).into());
        }
        Ok(cfg)
    }

    async fn handle(
        &self,
        myself: ActorRef<Cmd>,
        cmd: Cmd,
        cfg: &mut ProbeCfg,
    ) -> Result<(), ActorProcessingErr> {
        match cmd {
            Cmd::Stop => {
                myself.stop(Some("done".to_string()));
                Ok(())
            }
            Cmd::Fail => Err(format!("{} failed on request", cfg.name).into()),
            Cmd::Panic => panic!("{TEST_PANIC}"),
            Cmd::Noop => Ok(()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Cmd>,
        cfg: &mut ProbeCfg,
    ) -> Result<(), ActorProcessingErr> {
        cfg.log.push(format!("stop:{}", cfg.name));
        match cfg.post_stop {
            PostStop::Quick => {}
            PostStop::Sleep(d) => {
                tokio::time::sleep(d).await;
                cfg.log.push(format!("stopped:{}", cfg.name));
            }
            PostStop::Hang => std::future::pending::<()>().await,
        }
        Ok(())
    }
}

// === the holder ===

/// Counts holders of a shared resource and how often a new instance found it still held.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resource {
    pub(crate) holders: Arc<AtomicUsize>,
    pub(crate) violations: Arc<AtomicUsize>,
    pub(crate) starts: Arc<AtomicUsize>,
    /// Whether any instance's timer fired (so the timer was really in use).
    pub(crate) ticked: Arc<AtomicBool>,
}

/// Releases one hold on the resource when dropped.
#[derive(Debug)]
pub(crate) struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Holds taken by one running [`Holder`]: its state, its poller task and its timer.
pub(crate) const HOLDS_PER_INSTANCE: usize = 3;

/// Arguments of a [`Holder`].
#[derive(Debug, Clone)]
pub(crate) struct HolderArgs {
    pub(crate) resource: Resource,
    pub(crate) scope: Scope,
}

/// State of a [`Holder`]: a guard, and a timer whose message closure holds another one.
#[derive(Debug)]
pub(crate) struct HolderState {
    _guard: Guard,
    timer: Timer,
    resource: Resource,
}

/// Messages of a [`Holder`].
#[derive(Debug)]
pub(crate) enum HolderMsg {
    Tick,
    Cmd(Cmd),
}

/// A worker holding a shared resource three ways: its state, a forgotten poller task in
/// its scope, and a timer re-armed on every tick. Its `pre_start` checks that nothing
/// holds the resource any more and records a violation otherwise.
#[derive(Debug)]
pub(crate) struct Holder;

impl Actor for Holder {
    type Msg = HolderMsg;
    type State = HolderState;
    type Arguments = HolderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HolderMsg>,
        args: HolderArgs,
    ) -> Result<HolderState, ActorProcessingErr> {
        let HolderArgs { resource, scope } = args;
        resource.starts.fetch_add(1, Ordering::SeqCst);
        let before = resource
            .holders
            .fetch_add(HOLDS_PER_INSTANCE, Ordering::SeqCst);
        if before != 0 {
            resource.violations.fetch_add(1, Ordering::SeqCst);
        }
        // Give a predecessor that is still around a chance to show itself.
        tokio::task::yield_now().await;
        let poller_guard = Guard(resource.holders.clone());
        scope.spawn(async move {
            let _guard = poller_guard;
            loop {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        });
        let timer_guard = Guard(resource.holders.clone());
        let timer = Timer::new(&scope, myself, move || {
            let _ = &timer_guard;
            HolderMsg::Tick
        });
        timer.arm(Duration::from_millis(2));
        Ok(HolderState {
            _guard: Guard(resource.holders.clone()),
            timer,
            resource,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<HolderMsg>,
        msg: HolderMsg,
        state: &mut HolderState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HolderMsg::Tick => {
                state.resource.ticked.store(true, Ordering::SeqCst);
                state.timer.arm(Duration::from_millis(2));
                // Be busy for a moment, so that kills land mid-handler too.
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(())
            }
            HolderMsg::Cmd(Cmd::Stop) => {
                myself.stop(None);
                Ok(())
            }
            HolderMsg::Cmd(Cmd::Fail) => Err("holder failed on request".into()),
            HolderMsg::Cmd(Cmd::Panic) => panic!("{TEST_PANIC}"),
            HolderMsg::Cmd(Cmd::Noop) => Ok(()),
        }
    }
}

/// A child spec for a [`Holder`] of `resource`, given its scope through its arguments.
pub(crate) fn holder(id: &str, resource: &Resource) -> ChildSpec {
    let resource = resource.clone();
    ChildSpec::new(id, move |ctx| {
        (
            Holder,
            HolderArgs {
                resource: resource.clone(),
                scope: ctx.scope().clone(),
            },
        )
    })
}

// === helpers ===

/// Sends `cmd` to the probe running at `path`.
pub(crate) fn send(registry: &Registry, path: &str, cmd: Cmd) {
    let cell = registry
        .cell(path)
        .unwrap_or_else(|| panic!("no running actor at {path}"));
    ActorRef::<Cmd>::from(cell)
        .cast(cmd)
        .unwrap_or_else(|e| panic!("cast to {path} failed: {e}"));
}

/// The running cell at `path`; panics if there is none.
pub(crate) fn cell(registry: &Registry, path: &str) -> ActorCell {
    registry
        .cell(path)
        .unwrap_or_else(|| panic!("no running actor at {path}: {:?}", registry.get(path)))
}

/// The state name of the record at `path`, or `"absent"`.
pub(crate) fn state_of(registry: &Registry, path: &str) -> &'static str {
    registry.get(path).map_or("absent", |r| r.state.name())
}

/// Waits until the record at `path` is running with a live cell.
pub(crate) async fn wait_running(registry: &Registry, path: &str) -> ActorRecord {
    wait_for_state(registry, path, |s| *s == ActorState::Running).await;
    let ok = testkit::wait_until(T, || registry.cell(path).is_some()).await;
    assert!(ok, "{path} has no live cell");
    registry.get(path).expect("record")
}

/// Waits until the record at `path` is in a state satisfying `check`.
pub(crate) async fn wait_for_state(
    registry: &Registry,
    path: &str,
    check: impl Fn(&ActorState) -> bool,
) -> ActorRecord {
    testkit::wait_for_record(registry, path, T, |r| check(&r.state)).await
}

/// Waits until no record exists at `path`.
pub(crate) async fn wait_absent(registry: &Registry, path: &str) {
    let ok = testkit::wait_until(T, || registry.get(path).is_none()).await;
    assert!(
        ok,
        "{path} still registered: {:?}",
        registry.get(path).map(|r| r.state)
    );
}

/// A round trip through the supervisor's mailbox: every event it had received before is
/// handled once this returns.
pub(crate) async fn barrier(handle: &SupervisorHandle) {
    handle
        .which_children()
        .await
        .expect("supervisor answers which_children");
}
