//! The `config` actor: watches the config file, and loads, checks and publishes each valid
//! edit. It does not start or stop anything itself: after each edit (and on each look, to
//! bring back what a restart lost) it asks its [`Reconcile`] to bring the running tree in
//! line, which the topology provides.
//!
//! It polls the file's size and modification time (cheap, and immune to editors that
//! replace the file instead of writing it). An edit that does not load is logged with the
//! reason and the config in force stays; so does a file that is not a regular file of at
//! most 4 MB, or a dangling link (the rules of a start, [`pincer_config::read_file`]). A
//! file emptied (or left blank) or, when one was in use, deleted is an edit in progress
//! (editors truncate or replace before they write): logged, and the config in force
//! stays until the file holds a config again. A valid edit is published to every config
//! view, with the command-line flags (`--port`, `--bind`) applied on top as at start; the
//! router and new turns use it from their next message. The gateway's port, bind address
//! and store path are not reloadable: a change to them is logged and waits for a restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use pincer_actors::{ChildSpec, Scope, Timer};
use pincer_config::live::Publisher;
use pincer_config::{Config, Overrides, Sources, load_from, read_file};
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
    /// The command-line flags, applied after every load as at start.
    pub overrides: Overrides,
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
    /// Whether the config in force was read from a file: that file vanishing is then an
    /// edit in progress, not a return to the defaults.
    from_file: bool,
}

/// Why a reload put nothing in force.
#[derive(Debug)]
enum Refused {
    /// The file is being written (emptied, or gone for a moment): not a config yet.
    InProgress(String),
    /// The file does not load, or what it says cannot be put in force.
    Rejected(String),
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
        let from_file = ctx.sources.file.is_some();
        Ok(ConfigState {
            ctx,
            poll,
            seen,
            from_file,
        })
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
                    match reload(&state.ctx, &mut state.from_file).await {
                        Ok(_) => {}
                        Err(Refused::InProgress(why)) => {
                            tracing::warn!(reason = %why, "Config file edit in progress; the config in force stays.");
                        }
                        Err(Refused::Rejected(error)) => {
                            tracing::error!(%error, "Config edit rejected; the config in force stays.");
                        }
                    }
                }
                let current = state.ctx.publisher.view().current();
                state.ctx.reconcile.apply(None, &current).await;
            }
            ConfigMsg::Reload(reply) => {
                state.seen = stamp(&watched_file(&state.ctx.sources));
                let outcome = match reload(&state.ctx, &mut state.from_file).await {
                    Ok(outcome) => Ok(outcome),
                    Err(Refused::InProgress(why)) => {
                        tracing::warn!(reason = %why, "Config reload asked while a config file edit is in progress; the config in force stays.");
                        Err(why)
                    }
                    Err(Refused::Rejected(error)) => {
                        tracing::error!(%error, "Config reload rejected; the config in force stays.");
                        Err(error)
                    }
                };
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

/// Loads the config again and puts it in force if it is valid; `from_file` says whether
/// the config in force came from a file, and is kept up to date.
async fn reload(ctx: &WatcherCtx, from_file: &mut bool) -> Result<ReloadOutcome, Refused> {
    let path = watched_file(&ctx.sources);
    let sources = ctx.sources.clone();
    let in_use = *from_file;
    let mut loaded = tokio::task::spawn_blocking(move || {
        let file = read_watched(&path, in_use)?;
        load_from(&sources, file).map_err(|e| Refused::Rejected(e.to_string()))
    })
    .await
    .map_err(|e| Refused::Rejected(e.to_string()))??;
    ctx.overrides.apply(&mut loaded.config);
    // An empty or short token is never put in force: the one in force stays.
    loaded
        .check_gateway_token()
        .map_err(|e| Refused::Rejected(e.to_string()))?;
    pincer_tools::ssrf::Policy::new(&loaded.config.tools.web_fetch.allow_private)
        .map_err(|e| Refused::Rejected(e.to_string()))?;
    *from_file = loaded.file.is_some();
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
        file = %outcome.file.as_deref().map_or_else(|| "none (built-in defaults)".into(), |f| f.display().to_string()),
        added = %a.agents_added.join(","),
        removed = %a.agents_removed.join(","),
        accounts_added = %a.accounts_added.join(","),
        accounts_removed = %a.accounts_removed.join(","),
        accounts_restarted = %a.accounts_restarted.join(","),
        "Config reloaded."
    );
    Ok(outcome)
}

/// Reads the watched file for a reload, with the rules of a start (a regular file of at
/// most 4 MB, no dangling link): `None` when there is none and none was `in_use`. An
/// empty or blank file, or one gone while in use, is an edit in progress.
fn read_watched(path: &Path, in_use: bool) -> Result<Option<(PathBuf, String)>, Refused> {
    let shown = path.display();
    let gone = || {
        Refused::InProgress(format!(
            "config file {shown} no longer exists: taken as an edit in progress (editors replace files); the config in force stays until it is back (to run on the defaults, leave a file with a comment)"
        ))
    };
    match read_file(path, false) {
        Ok(Some(text)) if text.trim().is_empty() => Err(Refused::InProgress(format!(
            "config file {shown} is empty: taken as an edit in progress (editors truncate before they write); the config in force stays until it holds a config"
        ))),
        Ok(Some(text)) => Ok(Some((path.to_path_buf(), text))),
        Ok(None) if in_use => Err(gone()),
        Ok(None) => Ok(None),
        Err(e) => Err(Refused::Rejected(e.to_string())),
    }
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
