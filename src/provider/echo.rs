//! `provider:echo`: the built-in offline model (see `pincer_providers::echo`), one actor
//! whose calls stream in its scope: killing it ends them, and their turns see their
//! streams close.

use pincer_actors::{ChildSpec, Scope};
use pincer_config::live::View;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::ProviderMsg;

pub use pincer_providers::echo::NAME;

/// The echo provider actor.
#[derive(Debug, Clone, Copy)]
pub struct Echo;

/// Its state: the config it reads `[providers.echo]` from, the scope its streams run in.
#[derive(Debug)]
pub struct EchoState {
    config: View,
    scope: Scope,
}

/// The child spec of `provider:echo`.
pub fn spec(config: View) -> ChildSpec {
    ChildSpec::scoped(pincer_core::paths::provider_id(NAME), Echo, config)
}

impl Actor for Echo {
    type Msg = ProviderMsg;
    type State = EchoState;
    type Arguments = (View, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<ProviderMsg>,
        (config, scope): (View, Scope),
    ) -> Result<EchoState, ActorProcessingErr> {
        Ok(EchoState { config, scope })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ProviderMsg>,
        msg: ProviderMsg,
        state: &mut EchoState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProviderMsg::Stream {
                request, events, ..
            } => {
                let config = state.config.current().providers.echo.clone();
                let reply = pincer_providers::echo::reply_to(&request);
                let usage = pincer_providers::echo::usage(&request, &reply);
                let chunk = config.chunk_size.get();
                let delay = config.chunk_delay_ms;
                let stream = pincer_providers::echo::stream(reply, usage, chunk, delay, events);
                state.scope.spawn(stream);
            }
        }
        Ok(())
    }
}
