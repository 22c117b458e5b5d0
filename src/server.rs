//! The `health` actor: serves the gateway port. It is first in the tree, so `/healthz`
//! answers while the rest starts (and `/readyz` says 503 until it has).
//!
//! The port is bound once, before the tree starts, and stays open for the life of the
//! process: each incarnation of this actor serves on a fresh handle of it, so a restart
//! drops no connection waiting in the backlog. What is served (every route of the
//! gateway) is given by the topology, which alone knows all of them.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// Serves every route on an accepted listener until the listener is dropped.
pub type Serve = Arc<dyn Fn(tokio::net::TcpListener) -> BoxFuture<'static, ()> + Send + Sync>;

/// What the server works with: the bound port and what to serve on it.
#[derive(Clone)]
pub struct ServerCtx {
    /// The gateway port, bound at start.
    pub listener: Arc<std::net::TcpListener>,
    /// The routes.
    pub serve: Serve,
}

impl fmt::Debug for ServerCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCtx")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// The server actor.
#[derive(Debug, Clone, Copy)]
pub struct Server;

/// The child spec of `health`.
pub fn spec(ctx: ServerCtx) -> ChildSpec {
    ChildSpec::scoped("health", Server, ctx)
}

impl Actor for Server {
    type Msg = ();
    type State = ();
    type Arguments = (ServerCtx, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        (ctx, scope): (ServerCtx, Scope),
    ) -> Result<(), ActorProcessingErr> {
        let std_listener = ctx.listener.try_clone()?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        scope.spawn((ctx.serve)(listener));
        Ok(())
    }
}
