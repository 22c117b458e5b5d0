//! The `config` actor: watches the config file, and loads, checks and publishes each valid
//! edit. It does not start or stop anything itself: after each edit (and on each look, to
//! bring back what a restart lost) it asks its [`Reconcile`] to bring the running tree in
//! line, which the topology provides.
//!
//! It polls the file's size and modification time (cheap, and immune to editors that
//! replace the file instead of writing it). An edit that does not load is logged with the
//! reason and the config in force stays. A valid one is published to every config view;
//! the router and new turns use it from their next message. The gateway's port, bind
//! address and store path are not reloadable: a change to them is logged and waits for a
//! restart.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use pincer_actors::{ChildSpec, Scope, Timer};
use pincer_config::live::Publisher;
use pincer_config::{Config, Sources, load};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

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
    /// What changed in the running tree.
    #[serde(flatten)]
    pub applied: Applied,
    /// Changes that need a restart, and other warnings.
    pub warnings: Vec<String>,
}

/// What bringing the running tree in line with a config changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Applied {
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
}

/// Brings the running tree in line with a config: agents and channel accounts added or
/// removed are started or stopped, accounts whose settings changed restart.
pub trait Reconcile: Send + Sync + fmt::Debug + 'static {
    /// Applies `new`; `old` is the config it replaces (`None`: nothing was edited, only
    /// restore what should run and does not).
    fn apply<'a>(&'a self, old: Option<&'a Config>, new: &'a Config) -> BoxFuture<'a, Applied>;
}

/// What the watcher works with.
#[derive(Debug, Clone)]
pub struct WatcherCtx {
    /// Where config is loaded from.
    pub sources: Arc<Sources>,
    /// Where a valid config is put in force.
    pub publisher: Arc<Publisher>,
    /// What brings the running tree in line.
    pub reconcile: Arc<dyn Reconcile>,
}

/// The config actor.
#[derive(Debug, Clone, Copy)]
pub struct ConfigWatcher;

/// Its state.
#[derive(Debug)]
pub struct ConfigState {
    ctx: WatcherCtx,
    poll: Timer,
    /// Size and mtime of the file as last loaded (or rejected).
    seen: Option<(u64, SystemTime)>,
}

/// The child spec of `config`.
pub fn spec(ctx: WatcherCtx) -> ChildSpec {
    ChildSpec::scoped("config", ConfigWatcher, ctx)
}

impl Actor for ConfigWatcher {
    type Msg = ConfigMsg;
    type State = ConfigState;
    type Arguments = (WatcherCtx, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<ConfigMsg>,
        (ctx, scope): (WatcherCtx, Scope),
    ) -> Result<ConfigState, ActorProcessingErr> {
        let poll = Timer::new(&scope, myself, || ConfigMsg::Poll);
        poll.arm(POLL_INTERVAL);
        let seen = stamp(&watched_file(&ctx.sources));
        Ok(ConfigState { ctx, poll, seen })
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
                let now = stamp(&watched_file(&state.ctx.sources));
                if now != state.seen {
                    state.seen = now;
                    if let Err(error) = reload(&state.ctx).await {
                        tracing::error!(%error, "Config edit rejected; the config in force stays.");
                    }
                }
                let current = state.ctx.publisher.view().current();
                state.ctx.reconcile.apply(None, &current).await;
            }
            ConfigMsg::Reload(reply) => {
                state.seen = stamp(&watched_file(&state.ctx.sources));
                let outcome = reload(&state.ctx).await;
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
fn watched_file(sources: &Sources) -> PathBuf {
    sources
        .file
        .clone()
        .unwrap_or_else(|| sources.home.join("pincer.toml"))
}

fn stamp(path: &PathBuf) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Loads the config again and puts it in force if it is valid.
async fn reload(ctx: &WatcherCtx) -> Result<ReloadOutcome, String> {
    let mut sources = (*ctx.sources).clone();
    let file = watched_file(&ctx.sources);
    if file.exists() {
        sources.file = Some(file);
    }
    let loaded = tokio::task::spawn_blocking(move || load(&sources))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    // An empty or short token is never put in force: the one in force stays.
    loaded.check_gateway_token().map_err(|e| e.to_string())?;
    let view = ctx.publisher.view();
    let old = view.current();
    let mut warnings = loaded.warnings.clone();
    warnings.extend(not_reloadable(&old, &loaded.config));
    for warning in &warnings {
        tracing::warn!(message = %warning);
    }
    ctx.publisher.publish(loaded.config);
    let new = view.current();
    let applied = ctx.reconcile.apply(Some(&old), &new).await;
    let outcome = ReloadOutcome {
        file: loaded.file,
        applied,
        warnings,
    };
    let a = &outcome.applied;
    tracing::info!(
        file = ?outcome.file,
        added = ?a.agents_added,
        removed = ?a.agents_removed,
        accounts_added = ?a.accounts_added,
        accounts_removed = ?a.accounts_removed,
        accounts_restarted = ?a.accounts_restarted,
        "Config reloaded."
    );
    Ok(outcome)
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
