//! The `health` actor: serves the gateway port. It is first in the tree, so `/healthz`
//! answers while the rest starts (and `/readyz` says 503 until it has).
//!
//! The port is bound once, before the tree starts, and stays open for the life of the
//! process: each incarnation of this actor accepts on a fresh handle of it, so a restart
//! drops no connection waiting in the backlog. What is served (every route of the
//! gateway) is given by the topology, which alone knows all of them.
//!
//! Connections are accepted by a loop of ours rather than warp's, because warp's knows no
//! limits: each one is held in a [`registry`] bounded by `gateway.maxConnections` (the
//! connection idle the longest makes room for a new one; with none idle, the newcomer is
//! turned away), cut off when its request head takes longer than
//! `gateway.headerReadTimeout`, it idles between requests for `gateway.idleTimeout`, or
//! its client takes nothing of what it is sent for `gateway.writeTimeout`, and served by
//! hyper ([`connection`]). Connections outlive a restart of this actor (as
//! they did under warp) and the registry with them, so the cap holds across restarts.

mod accept;
mod connection;
mod registry;

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use hyper::Request;
use hyper::body::Incoming;
use pincer_actors::{ChildSpec, Scope};
use pincer_core::metrics::catalog::ConnectionMetrics;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use warp::Filter;

pub use registry::Registry;

/// Answers one request: every route of the gateway. The request carries its
/// connection's [`Peer`] in its extensions.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> BoxFuture<'static, warp::reply::Response> + Send + Sync>;

/// What the server works with: the bound port, what to serve on it, and the connections
/// it holds.
#[derive(Clone)]
pub struct ServerCtx {
    /// The gateway port, bound at start.
    pub listener: Arc<std::net::TcpListener>,
    /// The routes.
    pub handler: Handler,
    /// The connections held, shared by every incarnation.
    pub connections: Arc<Registry>,
}

/// The limits on connections, read at start (not reloadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at most.
    pub max_connections: NonZeroUsize,
    /// Time for a request head: from accept for a connection's first request, from the
    /// first byte for later ones.
    pub header_read_timeout: Duration,
    /// Time a connection may idle between requests.
    pub idle_timeout: Duration,
    /// Time a connection may have bytes to send while its client takes none of them.
    pub write_timeout: Duration,
}

/// The remote address of a request's connection, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The server actor.
#[derive(Debug, Clone, Copy)]
pub struct Server;

/// The child spec of `health`.
pub fn spec(ctx: ServerCtx) -> ChildSpec {
    ChildSpec::scoped("health", Server, ctx)
}

/// The remote address of the request's connection (`None` when it did not come through
/// this server, as in filter tests). Replaces `warp::addr::remote`, which only warp's own
/// server fills in.
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Copy {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.map(|Peer(addr)| addr))
}

/// Raises the soft limit on open files to the hard limit. Called once, before the
/// runtime starts: distributions start services with a soft limit of 1024 (under a hard
/// limit of 512Ki or more), which caps the gateway's connections well below
/// `gateway.maxConnections`. What happened is logged at debug when the server starts.
pub fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let outcome = match (before.current, before.maximum) {
        (Some(soft), Some(hard)) if soft < hard => {
            let raised = rustix::process::Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => FdLimit::Raised {
                    from: soft,
                    to: hard,
                },
                Err(e) => FdLimit::Failed {
                    soft,
                    hard,
                    error: e.to_string(),
                },
            }
        }
        // Already at the hard limit, or unlimited (which no soft limit may be set to).
        (soft, hard) => FdLimit::Kept { soft, hard },
    };
    let _ = FD_LIMIT.set(outcome);
}

/// What [`raise_fd_limit`] did, kept to be logged once logging is set up.
static FD_LIMIT: std::sync::OnceLock<FdLimit> = std::sync::OnceLock::new();

#[derive(Debug)]
enum FdLimit {
    Raised {
        from: u64,
        to: u64,
    },
    Kept {
        soft: Option<u64>,
        hard: Option<u64>,
    },
    Failed {
        soft: u64,
        hard: u64,
        error: String,
    },
}

/// Logs what [`raise_fd_limit`] did, the first time it is called.
fn log_fd_limit() {
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(|| match FD_LIMIT.get() {
        Some(FdLimit::Raised { from, to }) => {
            tracing::debug!(from, to, "Open files soft limit raised to the hard limit.");
        }
        Some(FdLimit::Kept { soft, hard }) => {
            let shown = |n: Option<u64>| n.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
            tracing::debug!(soft = %shown(*soft), hard = %shown(*hard), "Open files soft limit kept.");
        }
        Some(FdLimit::Failed { soft, hard, error }) => {
            tracing::debug!(soft, hard, %error, "Open files soft limit not raised.");
        }
        None => {}
    });
}

// === impl ServerCtx ===

impl ServerCtx {
    /// A context serving `handler` on `listener` within `limits`.
    pub fn new(
        listener: Arc<std::net::TcpListener>,
        handler: Handler,
        limits: Limits,
        metrics: ConnectionMetrics,
    ) -> Self {
        Self {
            listener,
            handler,
            connections: Registry::new(limits, metrics),
        }
    }
}

impl fmt::Debug for ServerCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCtx")
            .field("listener", &self.listener)
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

// === impl Server ===

impl Actor for Server {
    type Msg = ();
    type State = ();
    type Arguments = (ServerCtx, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        (ctx, scope): (ServerCtx, Scope),
    ) -> Result<(), ActorProcessingErr> {
        log_fd_limit();
        let std_listener = ctx.listener.try_clone()?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        scope.spawn(accept::run(listener, ctx.connections, ctx.handler));
        Ok(())
    }
}
