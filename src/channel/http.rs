//! `channel:http:http/link`: the intake of `POST /v1/chat/completions`.
//!
//! The warp route parses and authenticates the request, then asks this link to take the
//! message in. While the link is down (killed, restarting) the route answers 503 and takes
//! nothing, so a client retry with the same `Idempotency-Key` is always safe.

use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{IntakeError, intake};
use crate::gateway::Gateway;
use pincer_core::Inbound;
use pincer_store::Accepted;

/// Messages of the HTTP link.
#[derive(Debug)]
pub enum HttpLinkMsg {
    /// Take `inbound` in; answer once it is durable.
    Submit {
        /// The message.
        inbound: Box<Inbound>,
        /// Where the outcome goes.
        reply: RpcReplyPort<Result<Accepted, IntakeError>>,
    },
}

/// The HTTP link actor.
#[derive(Debug, Clone, Copy)]
pub struct HttpLink;

/// Its state: the scope its intake tasks run in.
#[derive(Debug)]
pub struct HttpLinkState {
    gw: Gateway,
    scope: Scope,
}

/// The link's child spec.
pub fn link_spec(gw: &Gateway) -> ChildSpec {
    crate::gateway::child(gw, "link", HttpLink)
}

impl Actor for HttpLink {
    type Msg = HttpLinkMsg;
    type State = HttpLinkState;
    type Arguments = (Gateway, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<HttpLinkMsg>,
        (gw, scope): (Gateway, Scope),
    ) -> Result<HttpLinkState, ActorProcessingErr> {
        Ok(HttpLinkState { gw, scope })
    }

    async fn handle(
        &self,
        _myself: ActorRef<HttpLinkMsg>,
        msg: HttpLinkMsg,
        state: &mut HttpLinkState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HttpLinkMsg::Submit { inbound, reply } => {
                // Each intake waits on the store's group commit; running them as tasks lets
                // concurrent requests share one commit.
                let gw = state.gw.clone();
                state.scope.spawn(async move {
                    let _ = reply.send(intake(&gw, *inbound).await);
                });
            }
        }
        Ok(())
    }
}
