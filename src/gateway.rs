//! What every actor of one running gateway shares: the registry, the store, the current
//! config, metrics and the handles of the supervisors that take children at run time.
//!
//! [`Gateway`] is a cheap clone. It holds no actor state: an actor's state lives in the
//! actor and dies with it; what is here outlives any one actor (the listening socket, the
//! waiters of HTTP requests, the config in force).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use pincer_actors::{ChildSpec, Registry, Scope, SupervisorHandle};
use pincer_config::live::{Publisher, View};
use pincer_secrets::Secrets;
use ractor::{Actor, ActorRef, Message};
use tokio::sync::watch;

use crate::channel::{Links, Outbox};
use crate::provider::Pool;
use crate::stats::Stats;
use pincer_config::{Config, Sources};
use pincer_core::metrics::Metrics;
use pincer_store::Store;

use crate::status::Status;
use crate::token::GatewayToken;

/// The root's name: every path starts with it.
pub const ROOT: &str = "pincer";

/// Shared context of one running gateway; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    home: PathBuf,
    sources: Sources,
    config_file: Option<PathBuf>,
    registry: Registry,
    store: Store,
    config: Publisher,
    view: View,
    token: Arc<GatewayToken>,
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    metrics: Metrics,
    stats: Stats,
    agents: RwLock<HashMap<String, SupervisorHandle>>,
    accounts: RwLock<HashMap<String, Account>>,
    supervisors: RwLock<HashMap<&'static str, SupervisorHandle>>,
    pools: RwLock<HashMap<&'static str, Arc<Pool>>>,
    links: Links,
    secrets: Arc<Secrets>,
    status: Arc<Status>,
    http: reqwest::Client,
}

/// One channel account as the gateway knows it.
#[derive(Clone, Debug)]
pub struct Account {
    /// Channel kind: `web`, `http`, `telegram`, `discord`.
    pub kind: &'static str,
    /// Account id.
    pub id: String,
    /// Its `sessions` supervisor.
    pub sessions: SupervisorHandle,
    /// Where replies for this account go.
    pub outbox: Outbox,
}

/// What [`Gateway::new`] needs.
#[derive(Debug)]
pub struct GatewayParts {
    /// `$PINCER_HOME`.
    pub home: PathBuf,
    /// Where config came from (kept for reloads).
    pub sources: Sources,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// The config in force at start.
    pub config: Config,
    /// The store handle.
    pub store: Store,
    /// The bound gateway port.
    pub listener: std::net::TcpListener,
    /// The gateway token, if any.
    pub token: Option<String>,
}

// === impl Gateway ===

impl Gateway {
    /// A context from its parts. Nothing runs yet.
    pub fn new(parts: GatewayParts) -> std::io::Result<Self> {
        let local_addr = parts.listener.local_addr()?;
        let metrics = Metrics::new();
        let stats = Stats::new(&metrics);
        let (config, view) = pincer_config::live::channel(parts.config);
        let http = pincer_core::net::http_client().map_err(std::io::Error::other)?;
        Ok(Self {
            inner: Arc::new(Inner {
                home: parts.home,
                sources: parts.sources,
                config_file: parts.config_file,
                registry: Registry::new(),
                store: parts.store,
                config,
                view,
                token: Arc::new(GatewayToken::new(parts.token)),
                listener: parts.listener,
                local_addr,
                metrics,
                stats,
                agents: RwLock::default(),
                accounts: RwLock::default(),
                supervisors: RwLock::default(),
                pools: RwLock::default(),
                links: Links::default(),
                secrets: Arc::default(),
                status: Arc::default(),
                http,
            }),
        })
    }

    /// `$PINCER_HOME`.
    pub fn home(&self) -> &Path {
        &self.inner.home
    }

    /// Where config is loaded from.
    pub fn sources(&self) -> &Sources {
        &self.inner.sources
    }

    /// The config file, if one was read at start.
    pub fn config_file(&self) -> Option<&Path> {
        self.inner.config_file.as_deref()
    }

    /// The tree registry.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The config in force (a snapshot: later changes do not alter it).
    pub fn config(&self) -> Arc<Config> {
        self.inner.view.current()
    }

    /// A view of the config in force.
    pub fn config_view(&self) -> &View {
        &self.inner.view
    }

    /// Changes of the config in force.
    pub fn config_changes(&self) -> watch::Receiver<Arc<Config>> {
        self.inner.view.changes()
    }

    /// Puts a new config in force.
    pub fn set_config(&self, config: Config) {
        self.inner.config.publish(config);
    }

    /// The gateway token, if one is set.
    pub fn token(&self) -> Option<Arc<str>> {
        self.inner.token.get()
    }

    /// The gateway token holder.
    pub fn token_holder(&self) -> &Arc<GatewayToken> {
        &self.inner.token
    }

    /// The gateway's status (started, draining, problems).
    pub fn status(&self) -> &Arc<Status> {
        &self.inner.status
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// A fresh handle on the listening socket (each incarnation of `health` serves on one;
    /// the socket itself stays open for the life of the process, so a restart drops no
    /// connection waiting in the backlog).
    pub fn listener(&self) -> std::io::Result<std::net::TcpListener> {
        self.inner.listener.try_clone()
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Pre-registered counters and histograms of the message path.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Whether the tree has started once.
    pub fn is_started(&self) -> bool {
        self.inner.status.is_started()
    }

    /// Marks the tree as started.
    pub fn mark_started(&self) {
        self.inner.status.mark_started();
    }

    /// Whether the gateway is shutting down (no new input).
    pub fn is_draining(&self) -> bool {
        self.inner.status.is_draining()
    }

    /// Stops taking input.
    pub fn start_draining(&self) {
        self.inner.status.start_draining();
    }

    /// Time since the context was made.
    pub fn uptime(&self) -> std::time::Duration {
        self.inner.status.uptime()
    }

    /// Remembers the handle of a supervisor by role (`agents`, `providers`, `channels`).
    pub fn set_supervisor(&self, role: &'static str, handle: SupervisorHandle) {
        self.inner.supervisors.write().insert(role, handle);
    }

    /// The handle of a supervisor by role.
    pub fn supervisor(&self, role: &str) -> Option<SupervisorHandle> {
        self.inner.supervisors.read().get(role).cloned()
    }

    /// Remembers agent `id`'s supervisor (where its turns run).
    pub fn set_agent(&self, id: &str, handle: SupervisorHandle) {
        self.inner.agents.write().insert(id.to_string(), handle);
    }

    /// Agent `id`'s supervisor.
    pub fn agent(&self, id: &str) -> Option<SupervisorHandle> {
        self.inner.agents.read().get(id).cloned()
    }

    /// Registers provider `name`'s connection pool. The first one stays: a restarted
    /// provider finds its keys' cooldowns and its HTTP connections.
    pub fn set_pool(&self, name: &'static str, pool: Arc<Pool>) {
        self.inner.pools.write().entry(name).or_insert(pool);
    }

    /// Provider `name`'s connection pool.
    pub fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.inner.pools.read().get(name).cloned()
    }

    /// What channel links keep across restarts.
    pub fn links(&self) -> &Links {
        &self.inner.links
    }

    /// Resolved secrets.
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.inner.secrets
    }

    /// The secrets handle of `owner`.
    pub fn secret_handle(&self, owner: impl Into<String>) -> pincer_secrets::Handle {
        pincer_secrets::Handle::new(self.inner.secrets.clone(), self.inner.view.clone(), owner)
    }

    /// The context of the `secrets` actor.
    pub fn secrets_ctx(&self) -> crate::secrets::SecretsCtx {
        crate::secrets::SecretsCtx {
            config: self.inner.view.clone(),
            home: self.inner.home.clone(),
            env: Arc::new(self.inner.sources.env.clone()),
            secrets: self.inner.secrets.clone(),
            store: self.inner.store.clone(),
            status: self.inner.status.clone(),
            token: self.inner.token.clone(),
            http: self.inner.http.clone(),
        }
    }

    /// Marks `path` not ready for `reason`, or (with `None`) clears it.
    pub fn set_problem(&self, path: &str, reason: Option<String>) {
        self.inner.status.set_problem(path, reason);
    }

    /// Every problem, by path.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.inner.status.problems()
    }

    /// Forgets account `id` (removed from config).
    pub fn remove_account(&self, id: &str) {
        self.inner.accounts.write().remove(id);
        self.inner.links.forget(id);
    }

    /// Remembers an account.
    pub fn set_account(&self, account: Account) {
        self.inner
            .accounts
            .write()
            .insert(account.id.clone(), account);
    }

    /// Account `id`.
    pub fn account(&self, id: &str) -> Option<Account> {
        self.inner.accounts.read().get(id).cloned()
    }

    /// Every account.
    pub fn accounts(&self) -> Vec<Account> {
        let mut all: Vec<Account> = self.inner.accounts.read().values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The address of the root's child `child` (`router`, `secrets`, `config`).
    pub fn addr<M: Message>(&self, child: &str) -> pincer_actors::Addr<M> {
        pincer_actors::Addr::new(&self.inner.registry, pincer_core::paths::top(child))
    }

    /// The running actor at `path`, typed. `None` while it is not running.
    pub fn actor<M: Message>(&self, path: &str) -> Option<ActorRef<M>> {
        self.inner.registry.cell(path).map(ActorRef::from)
    }
}

/// The registry path of a direct child of the root.
pub fn path(child: &str) -> String {
    format!("{ROOT}/{child}")
}

/// The child spec of an actor that starts from the gateway and the scope it owns (most
/// actors of the tree).
pub fn child<A>(gw: &Gateway, id: impl Into<String>, actor: A) -> ChildSpec
where
    A: Actor<Arguments = (Gateway, Scope)> + Clone + Sync,
{
    let gw = gw.clone();
    ChildSpec::new(id, move |ctx| {
        (actor.clone(), (gw.clone(), ctx.scope().clone()))
    })
}
