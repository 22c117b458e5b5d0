//! The running gateway, assembled: what its parts share (the registry, the store, the
//! config in force, the directories of running agents and accounts, metrics, secrets), and
//! the narrow context each kind of actor is given. The tree declaration ([`crate::tree`]),
//! the routes ([`crate::http`]) and the CLI see a [`Topology`]; no actor does.
//!
//! Building one binds nothing and starts nothing: the port is bound by the caller (and
//! handed in), and the tree starts with [`crate::tree::start`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pincer_actors::{Addr, Registry};
use pincer_channels::Links;
use pincer_config::live::{Publisher, View};
use pincer_config::{Config, Overrides, Sources};
use pincer_core::metrics::Metrics;
use pincer_core::metrics::catalog::Catalog;
use pincer_core::paths;
use pincer_secrets::Secrets;
use pincer_store::Store;
use ractor::Message;

use crate::agent::{Agents, TurnCtx};
use crate::channel::{Accounts, ChannelsCtx, Intake};
use crate::config_watcher::ConfigMsg;
use crate::provider::{Pools, Providers, ProvidersCtx};
use crate::readiness::Probe;
use crate::router::{RouterCtx, RouterMsg};
use crate::secrets::{SecretsCtx, SecretsMsg};
use crate::session::SessionCtx;
use crate::status::Status;
use crate::token::GatewayToken;

/// The running gateway; see the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Topology {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sources: Arc<Sources>,
    overrides: Overrides,
    config_file: Option<PathBuf>,
    registry: Registry,
    store: Store,
    publisher: Arc<Publisher>,
    config: View,
    token: Arc<GatewayToken>,
    listener: Arc<std::net::TcpListener>,
    catalog: Catalog,
    status: Arc<Status>,
    agents: Agents,
    accounts: Accounts,
    pools: Pools,
    links: Arc<Links>,
    secrets: Arc<Secrets>,
    http: reqwest::Client,
    toolbox: crate::tool::Toolbox,
}

/// What [`Topology::new`] is made from.
#[derive(Debug)]
pub struct Parts {
    /// Where config came from (`$PINCER_HOME` among it), kept for reloads.
    pub sources: Sources,
    /// The command-line flags over the config, kept for reloads.
    pub overrides: Overrides,
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
    /// The HTTP client of every upstream call.
    pub http: reqwest::Client,
}

// === impl Topology ===

impl Topology {
    /// A topology from its parts. Nothing runs yet.
    pub fn new(parts: Parts) -> Self {
        let pools = Pools::for_config(&parts.config, &parts.http);
        let (publisher, config) = pincer_config::live::channel(parts.config);
        let secrets: Arc<Secrets> = Arc::default();
        // The tool runtime reads `tools.webSearch.apiKey` as its own owner; no tool holds
        // a handle.
        let toolbox = crate::tool::Toolbox::new(pincer_secrets::Handle::new(
            secrets.clone(),
            config.clone(),
            pincer_secrets::refs::tool_owner("web_search"),
        ));
        Self {
            inner: Arc::new(Inner {
                sources: Arc::new(parts.sources),
                overrides: parts.overrides,
                config_file: parts.config_file,
                registry: Registry::new(),
                store: parts.store,
                publisher: Arc::new(publisher),
                config,
                token: Arc::new(GatewayToken::new(parts.token)),
                listener: Arc::new(parts.listener),
                catalog: Catalog::new(&Metrics::new()),
                status: Arc::default(),
                agents: Agents::default(),
                accounts: Accounts::default(),
                pools,
                links: Arc::default(),
                secrets,
                http: parts.http,
                toolbox,
            }),
        }
    }

    /// `$PINCER_HOME`.
    pub fn home(&self) -> &Path {
        &self.inner.sources.home
    }

    /// Where config is loaded from.
    pub fn sources(&self) -> &Arc<Sources> {
        &self.inner.sources
    }

    /// The command-line flags over the config (`--port`, `--bind`).
    pub fn overrides(&self) -> &Overrides {
        &self.inner.overrides
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
        self.inner.config.current()
    }

    /// A view of the config in force.
    pub fn view(&self) -> &View {
        &self.inner.config
    }

    /// The one writer of the config in force (the config watcher's).
    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.inner.publisher
    }

    /// The gateway token.
    pub fn token(&self) -> &Arc<GatewayToken> {
        &self.inner.token
    }

    /// The bound gateway port.
    pub fn listener(&self) -> &Arc<std::net::TcpListener> {
        &self.inner.listener
    }

    /// Metrics.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// Started, draining, problems.
    pub fn status(&self) -> &Arc<Status> {
        &self.inner.status
    }

    /// Where each agent's turns run.
    pub fn agents(&self) -> &Agents {
        &self.inner.agents
    }

    /// The running channel accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// What outlives channel links.
    pub fn links(&self) -> &Arc<Links> {
        &self.inner.links
    }

    /// Resolved secrets.
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.inner.secrets
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The address of the root's child `child` (`router`, `secrets`, `config`).
    pub fn top<M: Message>(&self, child: &str) -> Addr<M> {
        Addr::new(&self.inner.registry, paths::top(child))
    }

    /// The address of account `account`'s link.
    pub fn link<M: Message>(&self, kind: &str, account: &str) -> Addr<M> {
        Addr::new(&self.inner.registry, paths::link(kind, account))
    }

    /// The config watcher.
    pub fn config_watcher(&self) -> Addr<ConfigMsg> {
        self.top("config")
    }

    /// The secrets watcher.
    pub fn secrets_watcher(&self) -> Addr<SecretsMsg> {
        self.top("secrets")
    }

    // --- contexts ---

    /// What readiness is computed from.
    pub fn probe(&self) -> Probe {
        Probe {
            registry: self.inner.registry.clone(),
            status: self.inner.status.clone(),
            store: self.inner.store.clone(),
            config: self.inner.config.clone(),
            pools: self.inner.pools.clone(),
        }
    }

    /// The context of the `secrets` actor.
    pub fn secrets_ctx(&self) -> SecretsCtx {
        SecretsCtx {
            config: self.inner.config.clone(),
            home: self.inner.sources.home.clone(),
            env: Arc::new(self.inner.sources.env.clone()),
            secrets: self.inner.secrets.clone(),
            store: self.inner.store.clone(),
            status: self.inner.status.clone(),
            token: self.inner.token.clone(),
            http: self.inner.http.clone(),
        }
    }

    /// What the provider actors are built from.
    pub fn providers_ctx(&self) -> ProvidersCtx {
        ProvidersCtx {
            config: self.inner.config.clone(),
            secrets: self.inner.secrets.clone(),
            catalog: self.inner.catalog.clone(),
            pools: self.inner.pools.clone(),
        }
    }

    /// Where turns send model calls.
    pub fn providers(&self) -> Providers {
        Providers::new(
            &self.inner.registry,
            self.inner.pools.clone(),
            self.inner.config.clone(),
        )
    }

    /// What turns work with.
    pub fn turn_ctx(&self) -> TurnCtx {
        TurnCtx {
            config: self.inner.config.clone(),
            providers: self.providers(),
            secrets: self.inner.secrets.clone(),
            toolbox: self.inner.toolbox.clone(),
            home: self.inner.sources.home.clone(),
        }
    }

    /// What sessions work with (the router gives each its account's outbox).
    pub fn session_ctx(&self) -> SessionCtx {
        SessionCtx {
            store: self.inner.store.clone(),
            config: self.inner.config.clone(),
            agents: self.inner.agents.clone(),
            turns: self.turn_ctx(),
            outbox: Default::default(),
            catalog: self.inner.catalog.clone(),
            // Each account's own, set where its sessions start (the router).
            keeper: crate::session::keeper::Keeper::new(""),
        }
    }

    /// The context of the router.
    pub fn router_ctx(&self) -> RouterCtx {
        RouterCtx {
            store: self.inner.store.clone(),
            config: self.inner.config.clone(),
            accounts: self.inner.accounts.clone(),
            sessions: self.session_ctx(),
            status: self.inner.status.clone(),
            per_account: Default::default(),
        }
    }

    /// Where inbound messages go.
    pub fn intake(&self) -> Intake {
        Intake {
            store: self.inner.store.clone(),
            router: self.top::<RouterMsg>("router"),
            status: self.inner.status.clone(),
            catalog: self.inner.catalog.clone(),
        }
    }

    /// What channel accounts are built from.
    pub fn channels_ctx(&self) -> ChannelsCtx {
        ChannelsCtx {
            intake: self.intake(),
            config: self.inner.config.clone(),
            links: self.inner.links.clone(),
            status: self.inner.status.clone(),
            secrets: self.inner.secrets.clone(),
            store: self.inner.store.clone(),
            http: self.inner.http.clone(),
            probe: self.probe(),
        }
    }
}
