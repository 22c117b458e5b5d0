//! The supervision tree, declared in one place. Children start top to bottom and stop
//! bottom to top:
//!
//! ```text
//! pincer (one_for_one)
//! ├── health        the gateway port: probes, admin, HTTP API, web chat (up first)
//! ├── store         the SQLite writer
//! ├── config        watches the config file
//! ├── secrets       resolves secret refs
//! ├── providers     provider:<name>
//! ├── agents        agent:<id> → turn:<uuid>
//! ├── router        bindings → sessions; sweeps the inbox
//! └── channels      channel:<kind>:<account> → link, sessions → session:<key>
//! ```
//!
//! Each child spec is built from the narrow context its actor uses, taken from the
//! [`Topology`]; building the specs starts nothing. [`start`] records the agents and
//! accounts the tree declares, then starts it.

use std::sync::Arc;
use std::time::Duration;

use pincer_actors::{
    ChildSpec, Intensity, RootHandle, Shutdown, Strategy, SupervisorError, SupervisorHandle,
    SupervisorSpec,
};
use pincer_core::paths::ROOT;

use crate::channel::{self, Account};
use crate::config_watcher::WatcherCtx;
use crate::reconcile::Reconciler;
use crate::router::Router;
use crate::server::{Handler, Limits, ServerCtx};
use crate::store::{StoreActor, StoreCtx};
use crate::topology::Topology;
use crate::{agent, config_watcher, provider, secrets, server};

/// The declared tree: its spec, and the agents and accounts in it.
#[derive(Debug)]
pub struct Tree {
    /// The root's spec.
    pub spec: SupervisorSpec,
    /// Each agent's turn supervisor.
    pub agents: Vec<(String, SupervisorHandle)>,
    /// Each account.
    pub accounts: Vec<Account>,
}

/// The whole tree of `topology`.
pub fn spec(topology: &Topology) -> Tree {
    let config = topology.config();
    let (agents, agents_sup, agent_handles) =
        agent::agents_spec(config.agents.keys().map(String::as_str));
    let channel_ctx = topology.channels_ctx();
    let mut channels = SupervisorSpec::new(Strategy::OneForOne).intensity(Intensity::default());
    let mut accounts = Vec::new();
    for (kind, id) in config.accounts() {
        if let Some((spec, account)) = channel::account_spec(&channel_ctx, kind, id) {
            channels = channels.child(spec);
            accounts.push(account);
        }
    }
    let (channels, channels_sup) = channels.into_child_spec("channels");
    let reconcile = Reconciler {
        registry: topology.registry().clone(),
        agents: agents_sup,
        channels: channels_sup,
        agent_dir: topology.agents().clone(),
        account_dir: topology.accounts().clone(),
        channel_ctx,
        links: topology.links().clone(),
        status: topology.status().clone(),
    };
    let watcher = WatcherCtx {
        sources: topology.sources().clone(),
        overrides: topology.overrides().clone(),
        publisher: topology.publisher().clone(),
        reconcile: Arc::new(reconcile),
    };
    let store = StoreCtx {
        store: topology.store().clone(),
        config: topology.view().clone(),
    };
    let router = topology.router_ctx();
    // The root's children are independent parts: one of them crashing often must not end
    // the process (that would be the full restart Pincer promises to avoid), so the root
    // gives up only on a storm no chaos test reaches. Each part's own supervisor keeps its
    // tighter limit, and readiness shows a part that gave up.
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10_000, Duration::from_secs(10)))
        .child(server::spec(server_ctx(topology)))
        .child(
            ChildSpec::scoped("store", StoreActor, store)
                // The writer finishes the group it holds before the store stops.
                .shutdown(Shutdown::Timeout(Duration::from_secs(10))),
        )
        .child(config_watcher::spec(watcher))
        .child(secrets::spec(topology.secrets_ctx()))
        .child(provider::providers_spec(&topology.providers_ctx()))
        .child(agents)
        .child(ChildSpec::scoped("router", Router, router))
        .child(channels);
    Tree {
        spec,
        agents: agent_handles,
        accounts,
    }
}

/// The server serves every route of `topology` on its port, within the connection limits
/// of the config at start (they are not reloadable).
fn server_ctx(topology: &Topology) -> ServerCtx {
    use hyper::service::Service as _;
    let service = hyper_util::service::TowerToHyperService::new(warp::service(
        crate::http::routes(topology.clone()),
    ));
    let handler: Handler = Arc::new(move |request| {
        let answer = service.call(request);
        Box::pin(async move {
            match answer.await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    });
    let gateway = &topology.config().gateway;
    let limits = Limits {
        max_connections: gateway.max_connections,
        header_read_timeout: gateway.header_read_timeout,
        idle_timeout: gateway.idle_timeout,
        write_timeout: gateway.write_timeout,
    };
    ServerCtx::new(
        topology.listener().clone(),
        handler,
        limits,
        topology.catalog().connections().clone(),
    )
}

/// Starts the tree of `topology` and marks the gateway started.
pub async fn start(topology: &Topology) -> Result<RootHandle, SupervisorError> {
    let tree = spec(topology);
    for (id, handle) in tree.agents {
        topology.agents().insert(&id, handle);
    }
    for account in tree.accounts {
        topology.accounts().insert(account);
    }
    let root = tree.spec.start_root(ROOT, topology.registry()).await?;
    topology.status().mark_started();
    Ok(root)
}
