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

use std::time::Duration;

use pincer_actors::{
    ChildSpec, Intensity, RootHandle, Shutdown, Strategy, SupervisorError, SupervisorSpec,
};

use crate::gateway::{Gateway, ROOT};
use crate::router::Router;
use crate::store::StoreActor;
use crate::{agent, channel, config_watcher, health, provider, secrets};

/// The whole tree for `gw`.
pub fn spec(gw: &Gateway) -> SupervisorSpec {
    let store = gw.store().clone();
    // The root's children are independent parts: one of them crashing often must not end
    // the process (that would be the full restart Pincer promises to avoid), so the root
    // gives up only on a storm no chaos test reaches. Each part's own supervisor keeps its
    // tighter limit, and readiness shows a part that gave up.
    SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(10_000, Duration::from_secs(10)))
        .child(health::spec(gw))
        .child(
            ChildSpec::new("store", move |ctx| {
                (StoreActor, (store.clone(), ctx.scope().clone()))
            })
            // The writer finishes the group it holds before the store stops.
            .shutdown(Shutdown::Timeout(Duration::from_secs(10))),
        )
        .child(config_watcher::spec(gw))
        .child(secrets::spec(gw.secrets_ctx()))
        .child(provider::providers_spec(gw))
        .child(agent::agents_spec(gw))
        .child(crate::gateway::child(gw, "router", Router))
        .child(channels_spec(gw))
}

fn channels_spec(gw: &Gateway) -> ChildSpec {
    let mut spec = SupervisorSpec::new(Strategy::OneForOne).intensity(Intensity::default());
    for (kind, id) in gw.config().accounts() {
        if let Some(account) = channel::account_spec(gw, kind, id) {
            spec = spec.child(account);
        }
    }
    let (spec, handle) = spec.into_child_spec("channels");
    gw.set_supervisor("channels", handle);
    spec
}

/// Starts the tree and marks the gateway started.
pub async fn start(gw: &Gateway) -> Result<RootHandle, SupervisorError> {
    let root = spec(gw).start_root(ROOT, gw.registry()).await?;
    gw.mark_started();
    Ok(root)
}
