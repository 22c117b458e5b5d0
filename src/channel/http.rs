//! `channel:http:http/link`: the intake of `POST /v1/chat/completions`.
//!
//! The warp route parses and authenticates the request, then asks this link to take the
//! message in. While the link is down (killed, restarting) the route answers 503 and takes
//! nothing, so a client retry with the same `Idempotency-Key` is always safe.

use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{Intake, IntakeError};
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

/// Its state: where messages go in, and the scope its intake tasks run in.
#[derive(Debug)]
pub struct HttpLinkState {
    intake: Intake,
    scope: Scope,
}

/// The link's child spec.
pub fn link_spec(intake: Intake) -> ChildSpec {
    ChildSpec::scoped("link", HttpLink, intake)
}

impl Actor for HttpLink {
    type Msg = HttpLinkMsg;
    type State = HttpLinkState;
    type Arguments = (Intake, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<HttpLinkMsg>,
        (intake, scope): (Intake, Scope),
    ) -> Result<HttpLinkState, ActorProcessingErr> {
        Ok(HttpLinkState { intake, scope })
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
                let intake = state.intake.clone();
                state.scope.spawn(async move {
                    let _ = reply.send(intake.take(*inbound).await);
                });
            }
        }
        Ok(())
    }
}
