//! `provider:anthropic` and its connection actors `conn:anthropic:<n>` (the protocol is
//! `pincer_providers::anthropic`). Each connection actor is an HTTP client carrying many
//! calls in its scope; a killed one ends its calls (their sessions try again on another).

use std::sync::Arc;

use pincer_actors::{ChildSpec, Intensity, Scope, Strategy, SupervisorSpec};
use pincer_config::Config;
use pincer_config::live::View;
use pincer_core::metrics::catalog::ProviderMetrics;
use pincer_core::paths;
use pincer_providers::anthropic::{self, Settings};
use pincer_providers::emit::Emitter;
use pincer_providers::{ErrorKind, Pool, ProviderError};
use pincer_secrets::Handle;
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use pincer_providers::anthropic::NAME;

use super::{ProviderMsg, ProvidersCtx, keep_keys_fresh, keys_handle, resolve_keys};

/// What a connection actor works with.
#[derive(Debug, Clone)]
pub struct ConnCtx {
    /// The provider's pool (its keys).
    pub pool: Arc<Pool>,
    /// The provider's metrics.
    pub metrics: Arc<ProviderMetrics>,
    /// The config in force (settings are read at each call).
    pub config: View,
    /// The provider's keys.
    pub keys: Handle,
}

/// A connection actor.
#[derive(Debug, Clone, Copy)]
pub struct Conn;

/// Its state.
#[derive(Debug)]
pub struct ConnState {
    ctx: ConnCtx,
    scope: Scope,
}

/// The child spec of `provider:anthropic` with `config`'s pool size; calls come to its
/// connections through `pool`.
pub fn spec(ctx: &ProvidersCtx, pool: Arc<Pool>, config: &Config) -> ChildSpec {
    let size = config
        .providers
        .anthropic
        .as_ref()
        .map_or(1, |a| a.pool_size.get());
    let conn = ConnCtx {
        pool,
        metrics: ctx
            .catalog
            .provider(NAME)
            .unwrap_or_else(|| Arc::new(ProviderMetrics::detached())),
        config: ctx.config.clone(),
        keys: keys_handle(ctx, NAME),
    };
    let mut spec = SupervisorSpec::new(Strategy::OneForOne).intensity(Intensity::default());
    for n in 0..size {
        spec = spec.child(ChildSpec::scoped(
            paths::conn_id(NAME, n),
            Conn,
            conn.clone(),
        ));
    }
    spec.into_child_spec(paths::provider_id(NAME)).0
}

impl Actor for Conn {
    type Msg = ProviderMsg;
    type State = ConnState;
    type Arguments = (ConnCtx, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<ProviderMsg>,
        (ctx, scope): (ConnCtx, Scope),
    ) -> Result<ConnState, ActorProcessingErr> {
        keep_keys_fresh(
            &scope,
            ctx.pool.clone(),
            ctx.config.clone(),
            ctx.keys.clone(),
            NAME,
        );
        Ok(ConnState { ctx, scope })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ProviderMsg>,
        msg: ProviderMsg,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        let ProviderMsg::Stream {
            request,
            events,
            lease,
        } = msg;
        let metrics = state.ctx.metrics.clone();
        let emitter = Emitter::new(metrics.clone(), events, NAME, &request.request_id);
        let config = state.ctx.config.current();
        let settings = config.providers.anthropic.as_ref().and_then(|a| {
            let keys = resolve_keys(NAME, &state.ctx.keys, a.api_key.as_ref(), &a.api_keys);
            Settings::from_config(&config, keys)
        });
        let (Some(settings), Some(lease)) = (settings, lease) else {
            let error = ProviderError::new(
                ErrorKind::Rejected,
                "[providers.anthropic] is not configured",
            );
            emitter.fail_in(&state.scope, error);
            return Ok(());
        };
        lease.pool().keys.lock().set(settings.keys.clone());
        let emitter = emitter.pacing(settings.chunk_size, settings.latency_threshold);
        state
            .scope
            .spawn(anthropic::run(metrics, settings, request, emitter, lease));
        Ok(())
    }
}
