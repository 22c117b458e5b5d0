//! `channel:web:web/link`: the web chat's WebSocket connections.
//!
//! warp upgrades `GET /ws` and hands the socket to this link, which serves it in a task of
//! its scope ([`socket`]): a killed link drops its sockets (browsers reconnect and resend
//! unanswered messages by the same id, which the inbox dedupes) and nothing else. The link
//! keeps the tree frame every socket shares ([`view`]).
//!
//! Frames (JSON text): the page sends `hello` (its secret, [`owner`]) first, then `send`,
//! `stop`, `sessions`, and for its past chats ([`chats`]) `chats`, `open`, `rename`,
//! `delete`; the link sends `agents` and `tree` on connect, `tree` again when the
//! supervision tree changes, `accepted`, `delta`, `step`, `notice`, `done` (with `failed`
//! or `stopped`), `error`, `restart` for each message, and `sessions`, `chats`,
//! `transcript`, `renamed`, `deleted` when asked.

mod chats;
mod outbound;
mod owner;
mod socket;
mod view;

use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use warp::ws::WebSocket;

use super::{Delivery, IntakeError, LinkCtx};
use crate::readiness::Probe;

/// Largest frame a browser may send.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Messages of the web link.
#[derive(Debug)]
pub enum WebLinkMsg {
    /// A browser connected.
    Connected(Box<WebSocket>),
}

/// What the web link works with: its account's link context, and readiness for the
/// tree frames.
#[derive(Debug, Clone)]
pub struct WebCtx {
    /// The `web` account.
    pub link: LinkCtx,
    /// Readiness and the tree.
    pub probe: Probe,
}

/// The web link actor.
#[derive(Debug, Clone, Copy)]
pub struct WebLink;

/// Its state.
#[derive(Debug)]
pub struct WebLinkState {
    ctx: WebCtx,
    scope: Scope,
    tree: watch::Receiver<view::Frame>,
}

/// The link's child spec.
pub fn link_spec(link: LinkCtx, probe: Probe) -> ChildSpec {
    let ctx = WebCtx { link, probe };
    ChildSpec::scoped("link", WebLink, ctx)
}

impl Actor for WebLink {
    type Msg = WebLinkMsg;
    type State = WebLinkState;
    type Arguments = (WebCtx, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<WebLinkMsg>,
        (ctx, scope): (WebCtx, Scope),
    ) -> Result<WebLinkState, ActorProcessingErr> {
        let tree = view::start(ctx.probe.clone(), &scope);
        Ok(WebLinkState { ctx, scope, tree })
    }

    async fn handle(
        &self,
        _myself: ActorRef<WebLinkMsg>,
        msg: WebLinkMsg,
        state: &mut WebLinkState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WebLinkMsg::Connected(socket) => {
                let (ctx, tree) = (state.ctx.clone(), state.tree.clone());
                let conn_scope = state.scope.child();
                let inner = conn_scope.clone();
                state
                    .scope
                    .spawn(async move { socket::serve(ctx, tree, *socket, inner).await });
            }
        }
        Ok(())
    }
}
